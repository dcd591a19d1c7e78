"""Hi-GMAE speed and memory, measured in one run.

(a) Coarsening throughput (graphs/s) of graphssl's batched sparse coarsening against the
    reference Hi-GMAE preprocessing (pygsp-based Loukas coarsening, run the way the
    reference runs it) on the same MOSES molecules.
(b) Pretraining throughput of Hi-GMAE against GraphMAE on the same backbone and batches, the
    arms alternating step by step in rounds (medians of per-round ratios).
(c) Time and peak memory of one Hi-GMAE training step as graph size grows, from MOSES
    molecules to synthetic molecule-like graphs of 5,000 nodes (one subprocess per size,
    so peak resident memory is that size's own).

The reference is not part of graphssl: pass the folder of a checkout of its public
repository (LiuChuang0059/Hi-GMAE) with --reference; without it, (a) measures graphssl only.

    python benchmarks/higmae_speed.py --reference /path/to/Hi-GMAE --out benchmarks/results/higmae_speed
    python benchmarks/higmae_speed.py --parts pretraining --threads 1   # (b) alone; (a), (c) kept
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from graphssl.core.config import DataConfig, ModelConfig
from graphssl.data.dataset import load_dataset
from graphssl.molecule.features import molecule_feature_spec
from graphssl.nn import build_encoder
from graphssl.objectives import build_objective
from graphssl.engine.runtime import library_versions, machine_description
from graphssl.transforms.coarsen import Coarsen

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: its sibling modules
from synthetic_graphs import molecule_like_graph as synthetic_graph  # noqa: E402


def moses(n: int) -> list[Data]:
    dataset = load_dataset(DataConfig(name="moses", limit=n), progress=False, verbose=False)
    return [dataset[i] for i in range(len(dataset))]


# ---------------------------------------------------------------- (a) coarsening throughput
def reference_coarsening(path: Path, graphs: list[Data], rate: float, method: str, pe_steps: int) -> float:
    """Graphs/s of the reference preprocessing: its ``graphmae.datasets.data_util.coarsen_graph``
    with two coarse layers (one coarsening step) and its own ``AddRandomWalkPE``, i.e. pygsp
    ``coarsen(G, K=10, r, method)``, dense projection, dense coarse adjacency and RW-PE."""
    import types

    import numpy
    import scipy

    numpy.Inf = numpy.inf  # numpy 2 removed these aliases that the reference still uses
    scipy.newaxis = numpy.newaxis
    # The module imports ogb for node-level data sets that coarsening never touches; ogb
    # does not install here, so a stand-in satisfies the import.
    for name in ("ogb", "ogb.nodeproppred"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["ogb.nodeproppred"].PygNodePropPredDataset = None
    sys.path.insert(0, str(path))
    from graphmae.datasets.data_util import coarsen_graph  # the reference's own code
    from graphmae.transform.posec import AddRandomWalkPE

    transform = AddRandomWalkPE(pe_steps)
    start = time.perf_counter()
    for data in graphs:
        plain = Data(x=data.x.float(), edge_index=data.edge_index, num_nodes=data.num_nodes)
        coarsen_graph(plain, 2, rate, method, transform)
    return len(graphs) / (time.perf_counter() - start)


def graphssl_coarsening(graphs: list[Data], rate: float, method: str, pe_steps: int, chunk: int) -> float:
    transform = Coarsen(levels=1, ratio=rate, method=method, pe_steps=pe_steps)
    start = time.perf_counter()
    if chunk == 1:
        for g in graphs:
            transform(g)
    else:
        transform.many(graphs, chunk_size=chunk)
    return len(graphs) / (time.perf_counter() - start)


# ---------------------------------------------------------------- (b) pretraining throughput
def pretraining_throughput(graphs: list[Data], batches: int, batch_size: int, rounds: int) -> dict:
    """Graphs/s of training steps (forward + backward + Adam) of GraphMAE and Hi-GMAE on the same
    5-layer GINE 300 and the same batches. Hi-GMAE runs twice: with CoFi-R's recovery share of
    the first epoch (0.5: fewer masked fine nodes) and of the epochs after the first quarter (0).
    The arms alternate step by step (order reversed at every batch), so a change in machine load
    hits them alike; the ratio of each round is GraphMAE's seconds over the arm's, and the median
    over rounds is reported."""
    model = ModelConfig(backbone="gine", hidden=300, num_layers=5)
    arms = {}
    for name, method, options, epoch in [("graphmae", "graphmae", {}, None),
                                         ("higmae", "higmae", {"levels": 2, "ratio": 0.25}, 0),
                                         ("higmae_no_recovery", "higmae", {"levels": 2, "ratio": 0.25}, 3)]:
        torch.manual_seed(0)
        objective = build_objective(method, build_encoder(model, molecule_feature_spec()), options)
        if epoch is not None:
            objective.set_epoch(epoch, total_epochs=4)  # recovery 0.5 at epoch 0, 0 from epoch 1 of 4
        data, prep = graphs, float("nan")
        if objective.transform is not None:
            t0 = time.perf_counter()
            data = objective.transform.many(graphs)
            prep = len(graphs) / (time.perf_counter() - t0)
        objective.train()
        arms[name] = {"objective": objective, "optimiser": torch.optim.Adam(objective.parameters(), lr=1e-3),
                      "batches": list(DataLoader(data, batch_size=batch_size))[:batches], "seconds": [],
                      "preprocess_graphs_per_s": prep, "recovery": getattr(objective, "recovery", None)}

    def step(arm: dict, i: int) -> float:
        start = time.perf_counter()
        loss = arm["objective"](arm["batches"][i])
        arm["optimiser"].zero_grad()
        loss.backward()
        arm["optimiser"].step()
        return time.perf_counter() - start

    names = list(arms)
    for arm in arms.values():  # the first steps pay one-off allocation costs
        step(arm, 0)
    for r in range(rounds):
        totals = dict.fromkeys(names, 0.0)
        for i in range(batches):
            for name in (names if (r * batches + i) % 2 == 0 else names[::-1]):
                totals[name] += step(arms[name], i)
        for name in names:
            arms[name]["seconds"].append(totals[name])
        print(f"    round {r + 1}/{rounds}: " + ", ".join(f"{n} {batches * batch_size / totals[n]:.0f} graphs/s"
                                                        for n in names), flush=True)
    out: dict = {"batches": batches, "batch_size": batch_size, "rounds": rounds,
                 "threads": torch.get_num_threads(), "arms": {}}
    base = arms["graphmae"]["seconds"]
    for name, arm in arms.items():
        rates = [batches * batch_size / s for s in arm["seconds"]]
        out["arms"][name] = {"graphs_per_s_median": float(np.median(rates)), "graphs_per_s_rounds": rates,
                             "preprocess_graphs_per_s": arm["preprocess_graphs_per_s"], "recovery": arm["recovery"]}
        if name != "graphmae":
            ratios = [g / s for g, s in zip(base, arm["seconds"])]
            out["arms"][name]["ratio_over_graphmae_rounds"] = ratios
            out["arms"][name]["ratio_over_graphmae_median"] = float(np.median(ratios))
    out["ratio_higmae_over_graphmae"] = out["arms"]["higmae"]["ratio_over_graphmae_median"]
    return out


def reference_projection_bytes(graphs: list[Data], batch_size: int) -> tuple[float, float]:
    """Bytes of the reference's dense block-diagonal float32 projection for one batch vs our
    int64 cluster vector, for the same coarsening (levels 1, ratio 0.25)."""
    coarse = Coarsen(levels=1, ratio=0.25).many(graphs[:batch_size])
    n_fine = sum(g.num_nodes for g in coarse)
    n_coarse = sum(g.n_1 for g in coarse)
    return 4.0 * n_fine * n_coarse, 8.0 * n_fine


# ---------------------------------------------------------------- (c) growth with graph size
def molecule_like_graph(n: int, seed: int) -> Data:
    """The graphs this benchmark was measured on: n // 12 ring closures, element index only."""
    return synthetic_graph(n, np.random.default_rng(seed), rings=n // 12,
                           element_p=(0.7, 0.12, 0.12, 0.03, 0.03), random_features=False)


def one_size(n: int, method: str, repeats: int) -> dict[str, float]:
    """Run in a fresh process: one training step of `method` on a batch of one graph of n
    nodes (n = 0: a batch of 256 MOSES molecules, about 24 atoms each)."""
    torch.manual_seed(0)
    graphs = moses(256) if n == 0 else [molecule_like_graph(n, 0)]
    objective = build_objective(method, build_encoder(ModelConfig(backbone="gine", hidden=300, num_layers=5), molecule_feature_spec()),
                                {"levels": 2, "ratio": 0.25} if method == "higmae" else {})
    if objective.transform is not None:
        graphs = objective.transform.many(graphs)
    batch = Batch.from_data_list(graphs)
    gc.collect()
    # the process's high-water mark is set by imports and data loading, not by the steps: sample
    # the resident size during the steps instead and report their peak above the level before
    process = psutil.Process()
    before = process.memory_info().rss
    peak, done = [before], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        loss = objective(batch)
        loss.backward()
        objective.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    done.set()
    sampler.join()
    return {"nodes": int(batch.num_nodes), "edges": int(batch.num_edges), "graphs": int(batch.num_graphs),
            "seconds_per_step": float(np.median(times[1:])), "step_rss_growth_mb": (peak[0] - before) / 2**20}


def growth(sizes: list[int], repeats: int, threads: int) -> list[dict[str, float]]:
    rows = []
    for method in ("graphmae", "higmae"):
        for n in sizes:
            result = subprocess.run([sys.executable, __file__, "--one-size", str(n), "--method", method,
                                     "--repeats", str(repeats), "--threads", str(threads)],
                                    capture_output=True, text=True, check=True)
            row = json.loads(result.stdout.strip().splitlines()[-1])
            row["method"] = method
            rows.append(row)
            print(f"  {method:8s} {row['nodes']:6d} nodes: {row['seconds_per_step'] * 1e3:8.1f} ms/step, "
                  f"step memory +{row['step_rss_growth_mb']:.0f} MB", flush=True)
    return rows


def plot_growth(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for method in ("graphmae", "higmae"):
        sel = [r for r in rows if r["method"] == method and r["graphs"] == 1]
        nodes = [r["nodes"] for r in sel]
        axes[0].plot(nodes, [r["seconds_per_step"] * 1e3 for r in sel], "o-", label=method)
        axes[1].plot(nodes, [r["step_rss_growth_mb"] for r in sel], "o-", label=method)
    axes[0].set(xlabel="nodes in the graph", ylabel="ms per training step (forward + backward)")
    axes[1].set(xlabel="nodes in the graph", ylabel="resident memory added by the steps (MB)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("one graph per batch, 5-layer GINE 300; Hi-GMAE: 2 levels, ratio 0.25", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, help="checkout of the Hi-GMAE repository (for (a))")
    parser.add_argument("--molecules", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=12, help="batches of 256 molecules per round in (b)")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds in (b)")
    parser.add_argument("--parts", nargs="+", default=["coarsening", "pretraining", "growth"],
                        choices=["coarsening", "pretraining", "growth"],
                        help="parts to run; the others keep their numbers from the previous results file")
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 100, 500, 1000, 2000, 5000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/higmae_speed"))
    parser.add_argument("--one-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--method", default="higmae", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one_size is not None:
        print(json.dumps(one_size(args.one_size, args.method, args.repeats)))
        return

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "higmae_speed.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    command = " ".join(([f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"] if "OMP_NUM_THREADS" in os.environ
                        else []) + ["python", *sys.argv])
    report: dict = {"command": command, "machine": machine_description(), "versions": library_versions(),
                    "parts": args.parts, "load_average_1_5_15min": {"start": os.getloadavg()}}
    kept = {}
    for part in ("coarsening", "pretraining", "growth"):
        if part not in args.parts and part in previous:  # a part not run keeps its last measurement
            report[part] = previous[part]
            kept[part] = previous.get("kept_from_earlier_runs", {}).get(part) or {
                key: previous.get(key) for key in ("command", "machine", "versions")}
            if part == "pretraining" and "projection_bytes_per_batch" in previous:
                report["projection_bytes_per_batch"] = previous["projection_bytes_per_batch"]
    if kept:
        report["kept_from_earlier_runs"] = kept
    graphs = moses(args.molecules)
    if "coarsening" in args.parts:
        print(f"(a) coarsening {len(graphs)} MOSES molecules")
        settings = [("greedy", 0.25, 8, "algebraic"), ("algebraic_JC", 0.5, 20, "algebraic")]
        coarsening = []
        for ref_method, rate, pe, ours in settings:
            row = {"reference_method": ref_method, "ratio": rate, "pe_steps": pe, "graphssl_method": ours,
                   "graphssl_batched": graphssl_coarsening(graphs, rate, ours, pe, chunk=1024),
                   "graphssl_one_by_one": graphssl_coarsening(graphs, rate, ours, pe, chunk=1)}
            if args.reference is not None:
                row["reference"] = reference_coarsening(args.reference, graphs, rate, ref_method, pe)
                row["speedup_batched"] = row["graphssl_batched"] / row["reference"]
            coarsening.append(row)
            print("   ", {k: (round(v, 1) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
        report["coarsening"] = coarsening

    if "pretraining" in args.parts:
        print(f"(b) pretraining throughput, {args.batches} batches of 256 MOSES molecules, 5-layer GINE 300, "
              f"{args.rounds} interleaved rounds")
        report["pretraining"] = pretraining_throughput(moses(256 * args.batches), args.batches, 256, args.rounds)
        dense, sparse = reference_projection_bytes(graphs, 256)
        report["projection_bytes_per_batch"] = {"reference_dense": dense, "graphssl_cluster_index": sparse}
        print(f"    ratio Hi-GMAE / GraphMAE {report['pretraining']['ratio_higmae_over_graphmae']:.3f}; "
              f"without recovery {report['pretraining']['arms']['higmae_no_recovery']['ratio_over_graphmae_median']:.3f}",
              flush=True)

    if "growth" in args.parts:
        print("(c) one training step as graphs grow (fresh process per size)")
        report["growth"] = growth(args.sizes, args.repeats, args.threads)
        plot_growth(report["growth"], args.out / "growth.png")
    report["load_average_1_5_15min"]["end"] = os.getloadavg()
    path.write_text(json.dumps(report, indent=1))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
