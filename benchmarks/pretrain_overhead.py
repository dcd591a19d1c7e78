"""What graphssl costs on top of the backbone: GraphMAE pretraining throughput on the CPU.

Measured in one process, in one run:

(a) MOSES molecules from graphssl's registry, cut into a fixed list of batches that every arm
    trains on.
(b) Throughput (graphs/s of forward + backward + Adam step) of three arms, interleaved in
    rounds (arm order reversed every other round) so that drift in machine load hits every
    arm alike; medians over rounds:

    - ``graphssl``: ``build_objective("graphmae", build_encoder(gin, 5 layers, hidden 300))``;
    - ``plain``: the same GraphMAE written by hand in plain PyTorch Geometric (below:
      ``PlainGraphMAE``): the same ``torch_geometric.nn.GIN``, atom embeddings, masking
      (25 %, of which 10 % random and 10 % unchanged), re-mask, one-layer GIN decoder and
      scaled cosine error, with the same random draws in the same order, so with equal
      weights and seed it computes the same loss (tests/test_pretrain_overhead_bench.py);
    - ``backbone``: the atom embeddings and the GIN alone with a trivial loss (the floor:
      what the backbone itself costs).

(c) Time per graph of a GraphMAE forward + backward as graphs grow from 20 to 5,000 nodes
    (synthetic molecule-like graphs, random OGB atom features, batches with a constant total
    number of nodes), and the same for Hi-GMAE.
(d) The real loop: ``graphssl.pretrain(config)`` end to end (data loaded from the cache, model
    built, the loop with its random-stream swap, finite checks and loss bookkeeping, ``last.pt``
    every epoch, ``encoder.pt``, config and history files), in process with progress bars off,
    against the loop one writes by hand in plain PyG (the same data from the same cache, the
    same batches as index lists drawn by graphssl's sampler before timing, the same steps and
    threads, the model's weights saved at the end), for ``PlainGraphMAE`` and for graphssl's own
    objective. Runs interleaved in rounds, wall time of each run; medians of per-round ratios.

    python benchmarks/pretrain_overhead.py --out benchmarks/results/pretrain_overhead
    python benchmarks/pretrain_overhead.py --parts loop --threads 1   # (d) alone; (b), (c) kept
    python benchmarks/pretrain_overhead.py --quick --out /tmp/overhead   # seconds: a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader
from torch_geometric.nn import GIN

import graphssl
from graphssl.molecule.features import ATOM_FEATURE_DIMS, molecule_feature_spec
from graphssl.core.config import DataConfig, ModelConfig, RunConfig, from_dict
from graphssl.data.dataset import load_dataset
from graphssl.data.sampler import StepSampler
from graphssl.nn import build_encoder
from graphssl.objectives import build_objective

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: its sibling modules
from synthetic_graphs import molecule_like_graph  # noqa: E402

MB = 2.0**20


# --------------------------------------------------------------------------- the baseline
class PlainGraphMAE(nn.Module):
    """GraphMAE as one would write it in plain PyTorch Geometric, without graphssl.

    Atom features are 9 categorical columns (OGB layout), embedded by a sum of tables; a
    share ``mask_rate`` of nodes is masked, of which ``replace_rate`` take a random node's
    (detached) embedding, ``keep_rate`` keep theirs and the rest get a learned token; the
    GIN's output is projected, masked nodes are zeroed again, and a one-layer GIN decoder
    predicts the element (one-hot over ``dims[0]`` classes), scored with the scaled cosine
    error on the masked nodes.
    """

    def __init__(self, dims=ATOM_FEATURE_DIMS, hidden: int = 300, num_layers: int = 5, mask_rate: float = 0.25,
                 replace_rate: float = 0.1, keep_rate: float = 0.1, alpha: float = 1.0) -> None:
        super().__init__()
        self.dims = tuple(dims)
        self.mask_rate, self.replace_rate, self.keep_rate, self.alpha = mask_rate, replace_rate, keep_rate, alpha
        self.atom_embedding = nn.ModuleList(nn.Embedding(d, hidden) for d in self.dims)
        for table in self.atom_embedding:
            nn.init.xavier_uniform_(table.weight)
        self.gnn = GIN(hidden, hidden, num_layers, norm="batch_norm")
        self.mask_token = nn.Parameter(torch.zeros(1, hidden))
        self.encoder_to_decoder = nn.Linear(hidden, hidden, bias=False)
        self.decoder = GIN(hidden, hidden, 1, out_channels=self.dims[0])

    def embed(self, x: Tensor) -> Tensor:
        h = self.atom_embedding[0](x[:, 0])
        for i in range(1, len(self.atom_embedding)):
            h = h + self.atom_embedding[i](x[:, i])
        return h

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        h = self.embed(x)
        n = h.size(0)
        num_mask = max(1, round(self.mask_rate * n))
        masked = torch.randperm(n)[:num_mask]
        num_random = round(self.replace_rate * num_mask)
        num_keep = round(self.keep_rate * num_mask)
        order = masked[torch.randperm(num_mask)]
        random_nodes, token_nodes = order[:num_random], order[num_random + num_keep:]
        source = torch.randint(0, n, (num_random,))
        h = h.clone()
        h[random_nodes] = h[source].detach()
        h[token_nodes] = self.mask_token
        z = self.encoder_to_decoder(self.gnn(h, edge_index))
        z[masked] = 0.0  # re-mask
        recon = self.decoder(z, edge_index)[masked]
        target = F.one_hot(x[masked, 0], self.dims[0]).float()
        return sce(recon, target, self.alpha)

    @staticmethod
    def state_from_graphssl(state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Rename a graphssl GraphMAE(gin) state dict to this module's names."""
        renames = [("encoder.node_embedding.tables.", "atom_embedding."), ("encoder.backbone.", "gnn."),
                   ("enc_mask_token", "mask_token"), ("decoder.layer.", "decoder.")]
        out = {}
        for key, value in state.items():
            for old, new in renames:
                if key.startswith(old):
                    key = new + key[len(old):]
                    break
            out[key] = value
        return out


def sce(pred: Tensor, target: Tensor, alpha: float = 1.0) -> Tensor:
    """Scaled cosine error, as in the GraphMAE paper's code."""
    pred, target = F.normalize(pred, p=2, dim=-1), F.normalize(target, p=2, dim=-1)
    return (1 - (pred * target).sum(dim=-1)).pow(alpha).mean()


class BackboneOnly(nn.Module):
    """The floor: atom embeddings and the same GIN with a trivial loss (mean of squares)."""

    def __init__(self, dims=ATOM_FEATURE_DIMS, hidden: int = 300, num_layers: int = 5) -> None:
        super().__init__()
        self.atom_embedding = nn.ModuleList(nn.Embedding(d, hidden) for d in dims)
        self.gnn = GIN(hidden, hidden, num_layers, norm="batch_norm")

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        h = self.atom_embedding[0](x[:, 0])
        for i in range(1, len(self.atom_embedding)):
            h = h + self.atom_embedding[i](x[:, i])
        return self.gnn(h, edge_index).pow(2).mean()


# --------------------------------------------------------------------------- arms
def graphssl_graphmae(hidden: int, layers: int, name: str = "graphmae", options: dict | None = None) -> nn.Module:
    encoder = build_encoder(ModelConfig(backbone="gin", hidden=hidden, num_layers=layers), molecule_feature_spec())
    return build_objective(name, encoder, options or {})


class Arm:
    """A model, its optimiser and how it is called on a batch; accumulates step timings."""

    def __init__(self, name: str, model: nn.Module, call) -> None:
        self.name, self.model, self.call = name, model, call
        self.optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.rounds: list[dict[str, float]] = []
        self.rss_after_forward = 0.0
        self.losses: list[float] = []
        model.train()

    def step(self, batch: Batch) -> float:
        """One timed training step; returns its seconds."""
        start = time.perf_counter()
        self.optimiser.zero_grad(set_to_none=True)
        loss = self.call(self.model, batch)
        rss = _rss()  # activations are alive here
        loss.backward()
        self.optimiser.step()
        seconds = time.perf_counter() - start
        self.rss_after_forward = max(self.rss_after_forward, rss)
        self.losses.append(float(loss.detach()))
        return seconds


def _rss() -> float:
    return psutil.Process().memory_info().rss / MB


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_arms(hidden: int, layers: int, seed: int) -> list[Arm]:
    torch.manual_seed(seed)
    ours = graphssl_graphmae(hidden, layers)
    torch.manual_seed(seed)
    plain = PlainGraphMAE(hidden=hidden, num_layers=layers)
    torch.manual_seed(seed)
    floor = BackboneOnly(hidden=hidden, num_layers=layers)
    return [
        Arm("graphssl", ours, lambda m, b: m(b)),
        Arm("plain", plain, lambda m, b: m(b.x, b.edge_index)),
        Arm("backbone", floor, lambda m, b: m(b.x, b.edge_index)),
    ]


def throughput(batches: list[Batch], rounds: int, warmup: int, hidden: int, layers: int, seed: int) -> dict:
    arms = make_arms(hidden, layers, seed)
    for arm in arms:  # one-off allocation and first-call costs, not timed
        for i in range(warmup):
            arm.step(batches[i % len(batches)])
        arm.losses.clear()
    graphs = sum(b.num_graphs for b in batches)
    nodes = sum(b.num_nodes for b in batches)
    for r in range(rounds):
        order = arms if r % 2 == 0 else arms[::-1]
        for arm in order:
            seconds = [arm.step(b) for b in batches]
            total = sum(seconds)
            arm.rounds.append({"seconds": total, "graphs_per_s": graphs / total, "nodes_per_s": nodes / total,
                               "ms_per_step_median": 1e3 * statistics.median(seconds)})
        line = ", ".join(f"{a.name} {a.rounds[-1]['graphs_per_s']:.0f}" for a in arms)
        print(f"  round {r + 1}/{rounds}: graphs/s {line}", flush=True)
    by_name = {a.name: a for a in arms}
    out: dict = {"arms": {}}
    for arm in arms:
        rates = [r["graphs_per_s"] for r in arm.rounds]
        out["arms"][arm.name] = {
            "graphs_per_s_median": statistics.median(rates),
            "graphs_per_s_rounds": rates,
            "nodes_per_s_median": statistics.median(r["nodes_per_s"] for r in arm.rounds),
            "ms_per_step_median": statistics.median(r["ms_per_step_median"] for r in arm.rounds),
            "rss_after_forward_mb_max": arm.rss_after_forward,
            "first_loss": arm.losses[0], "last_loss": arm.losses[-1],
            "parameters": sum(p.numel() for p in arm.model.parameters()),
        }

    def paired(a: str, b: str) -> float:
        return statistics.median(x["graphs_per_s"] / y["graphs_per_s"]
                                 for x, y in zip(by_name[a].rounds, by_name[b].rounds))

    out["ratio_graphssl_over_plain"] = paired("graphssl", "plain")
    out["ratio_plain_over_backbone"] = paired("plain", "backbone")
    out["ratio_graphssl_over_backbone"] = paired("graphssl", "backbone")
    return out


# --------------------------------------------------------------------------- the real loop
def loop_config(out_dir: Path, cache_dir: Path, molecules: int, batch_size: int, epochs: int, hidden: int,
                layers: int, threads: int, seed: int, clean_batch_norm: int) -> RunConfig:
    """The run ``graphssl pretrain`` does for this benchmark's model, objective and data."""
    return from_dict(RunConfig, {
        "seed": seed, "device": "cpu", "output_dir": str(out_dir), "cache_dir": str(cache_dir),
        "threads": threads, "progress": False,
        "data": {"name": "moses", "limit": molecules},
        "model": {"backbone": "gin", "hidden": hidden, "num_layers": layers},
        "objective": {"name": "graphmae"},
        "pretrain": {"epochs": epochs, "batch_size": batch_size, "lr": 1e-3, "resume": False,
                     "clean_batch_norm": clean_batch_norm},
    })


def run_pretrain(config: RunConfig) -> dict:
    """``graphssl.pretrain(config)``, timed from the call to its return."""
    start = time.perf_counter()
    path = graphssl.pretrain(config)
    seconds = time.perf_counter() - start
    history = json.loads((path.parent / "pretrain_history.json").read_text())
    return {"seconds": seconds, "loop_seconds": sum(h["seconds"] for h in history),
            "losses": [h["loss"] for h in history]}


def run_plain(kind: str, config: RunConfig, batches: list[list[list[int]]]) -> dict:
    """The loop written by hand: load the data, build the model, train on the given batches
    (one list of index lists per epoch), keep each epoch's mean loss, save the weights."""
    start = time.perf_counter()
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    dataset = load_dataset(config.data, config.cache_dir, progress=False, verbose=False)
    if kind == "plain":
        model = PlainGraphMAE(hidden=config.model.hidden, num_layers=config.model.num_layers)

        def call(batch):
            return model(batch.x, batch.edge_index)
    else:
        model = graphssl_graphmae(config.model.hidden, config.model.num_layers)
        call = model
    optimiser = torch.optim.Adam(model.parameters(), lr=config.pretrain.lr)
    model.train()
    losses, loop_seconds = [], 0.0
    for epoch_batches in batches:
        total, graphs = 0.0, 0
        t0 = time.perf_counter()
        for batch in DataLoader(dataset, batch_sampler=epoch_batches):
            optimiser.zero_grad(set_to_none=True)
            loss = call(batch)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * batch.num_graphs
            graphs += batch.num_graphs
        loop_seconds += time.perf_counter() - t0
        losses.append(total / graphs)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "model.pt")
    return {"seconds": time.perf_counter() - start, "loop_seconds": loop_seconds, "losses": losses}


LOOP_ARMS = {
    "pretrain": "graphssl.pretrain(config), pretrain.clean_batch_norm 0",
    "plain": "plain PyG loop, PlainGraphMAE",
    "plain_graphssl_model": "plain PyG loop, graphssl's GraphMAE objective",
    "pretrain_default": "graphssl.pretrain(config), clean_batch_norm 10,000 (the default)",
}


def real_loop(cache_dir: Path, molecules: int, batch_size: int, epochs: int, hidden: int, layers: int,
              threads: int, seed: int, rounds: int, arms: list[str]) -> dict:
    """Wall time of whole runs of each arm, interleaved in rounds (order reversed every other
    round) after one untimed warm-up round; medians of per-round ratios against ``plain``."""
    work = Path(tempfile.mkdtemp(prefix="graphssl-loop-"))

    def config(arm: str, r: int) -> RunConfig:
        clean = 10_000 if arm == "pretrain_default" else 0
        return loop_config(work / f"{arm}-{r}", cache_dir, molecules, batch_size, epochs, hidden, layers, threads,
                           seed, clean)

    probe = config("plain", 0)
    dataset = load_dataset(probe.data, cache_dir, progress=False, verbose=False)  # builds the cache, untimed
    sizes = [len(dataset)]
    batches = [list(StepSampler(sizes, batch_size, seed, epoch)) for epoch in range(epochs)]
    results: dict[str, list[dict]] = {arm: [] for arm in arms}
    try:
        for r in range(rounds + 1):
            for arm in (arms if r % 2 == 0 else arms[::-1]):
                cfg = config(arm, r)
                result = run_pretrain(cfg) if arm.startswith("pretrain") else run_plain(arm, cfg, batches)
                shutil.rmtree(cfg.output_dir, ignore_errors=True)
                if r:  # round 0 warms up file caches, the allocator and first calls
                    results[arm].append(result)
            if r:
                print(f"  loop round {r}/{rounds}: " + ", ".join(f"{arm} {results[arm][-1]['seconds']:.1f} s"
                                                                 for arm in arms), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    steps = sum(len(b) for b in batches)
    out: dict = {"molecules": len(dataset), "epochs": epochs, "steps": steps, "batch_size": batch_size,
                 "rounds": rounds, "threads": threads, "arms": {}}
    for arm in arms:
        runs = results[arm]
        out["arms"][arm] = {
            "what": LOOP_ARMS[arm],
            "seconds_median": statistics.median(x["seconds"] for x in runs),
            "seconds_rounds": [x["seconds"] for x in runs],
            "loop_seconds_median": statistics.median(x["loop_seconds"] for x in runs),
            "outside_loop_seconds_median": statistics.median(x["seconds"] - x["loop_seconds"] for x in runs),
            "final_loss": runs[-1]["losses"][-1],
        }
        if arm != "plain":
            base = results["plain"]
            out["arms"][arm]["ratio_over_plain_rounds"] = [x["seconds"] / y["seconds"] for x, y in zip(runs, base)]
            out["arms"][arm]["ratio_over_plain_median"] = statistics.median(out["arms"][arm]["ratio_over_plain_rounds"])
            out["arms"][arm]["loop_ratio_over_plain_median"] = statistics.median(
                x["loop_seconds"] / y["loop_seconds"] for x, y in zip(runs, base))
    return out


# --------------------------------------------------------------------------- growth


def growth(sizes: list[int], total_nodes: int, repeats: int, hidden: int, layers: int, seed: int,
           methods: list[str]) -> dict:
    """Median seconds of one forward + backward per batch of ``total_nodes // n`` graphs of ``n``
    nodes, sizes interleaved within each repeat."""
    rng = np.random.default_rng(seed)
    graphs = {n: [molecule_like_graph(n, rng) for _ in range(max(1, total_nodes // n))] for n in sizes}
    out: dict = {"total_nodes_per_batch": total_nodes, "methods": {}}
    for method in methods:
        torch.manual_seed(seed)
        options = {"levels": 2, "ratio": 0.25} if method == "higmae" else {}
        try:
            objective = graphssl_graphmae(hidden, layers, method, options)
            objective.train()
            batches, prep = {}, {}
            for n in sizes:
                data = graphs[n]
                t0 = time.perf_counter()
                if objective.transform is not None:
                    data = objective.transform.many(data)
                prep[n] = time.perf_counter() - t0
                batches[n] = Batch.from_data_list(data)
            times: dict[int, list[float]] = {n: [] for n in sizes}
            rss: dict[int, float] = {n: 0.0 for n in sizes}
            for r in range(repeats + 1):
                for n in (sizes if r % 2 == 0 else sizes[::-1]):
                    objective.zero_grad(set_to_none=True)
                    start = time.perf_counter()
                    loss = objective(batches[n])
                    rss[n] = max(rss[n], _rss())
                    loss.backward()
                    if r:  # the first pass over the sizes is warm-up
                        times[n].append(time.perf_counter() - start)
        except Exception as exc:  # report what happened instead of dropping the method
            out["methods"][method] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"  {method}: failed: {exc}", flush=True)
            continue
        rows = []
        for n in sizes:
            b = batches[n]
            step = statistics.median(times[n])
            row = {"nodes_per_graph": n, "graphs_per_batch": int(b.num_graphs), "batch_nodes": int(b.num_nodes),
                   "batch_edges": int(b.num_edges), "seconds_per_step": step, "ms_per_graph": 1e3 * step / b.num_graphs,
                   "us_per_node": 1e6 * step / b.num_nodes, "rss_after_forward_mb": rss[n],
                   "preprocess_seconds": prep[n]}
            if method == "higmae":
                row["coarsest_supernodes_per_graph"] = float(b["n_2"].float().mean())
            rows.append(row)
            print(f"  {method:8s} n={n:5d}: {row['ms_per_graph']:9.3f} ms/graph, {row['us_per_node']:6.2f} us/node",
                  flush=True)
        n_arr = np.array([r["nodes_per_graph"] for r in rows], float)
        t_arr = np.array([r["ms_per_graph"] for r in rows], float)
        slope, intercept = np.polyfit(np.log(n_arr), np.log(t_arr), 1)
        lin = np.polyfit(n_arr, t_arr, 1)
        out["methods"][method] = {"rows": rows, "loglog_slope": float(slope),
                                  "linear_fit_ms_per_graph": {"ms_per_node": float(lin[0]), "ms_offset": float(lin[1])},
                                  "us_per_node_max_over_min": float(max(r["us_per_node"] for r in rows)
                                                                    / min(r["us_per_node"] for r in rows))}
    return out


# --------------------------------------------------------------------------- report
def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    methods = {k: v for k, v in report["growth"]["methods"].items() if "rows" in v}
    for method, res in methods.items():
        n = [r["nodes_per_graph"] for r in res["rows"]]
        axes[0].loglog(n, [r["ms_per_graph"] for r in res["rows"]], "o-",
                       label=f"{method} (log-log slope {res['loglog_slope']:.2f})")
        axes[1].semilogx(n, [r["us_per_node"] for r in res["rows"]], "o-", label=method)
    if "graphmae" in methods:
        rows = methods["graphmae"]["rows"]
        per_node = statistics.median(r["ms_per_graph"] / r["nodes_per_graph"] for r in rows)
        n = np.array([rows[0]["nodes_per_graph"], rows[-1]["nodes_per_graph"]], float)
        axes[0].loglog(n, per_node * n, "k--", lw=1, label="linear reference (slope 1)")
    axes[0].set(xlabel="nodes per graph", ylabel="ms per graph (forward + backward)")
    axes[1].set(xlabel="nodes per graph", ylabel="µs per node (forward + backward)", ylim=(0, None))
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=8)
    tp = report["throughput"]
    s = report["settings"]
    fig.suptitle(f"GraphMAE / Hi-GMAE on a {s['layers']}-layer GIN {s['hidden']}, batches of "
                 f"{report['growth']['total_nodes_per_batch']:,} nodes; "
                 f"MOSES throughput graphssl/plain = {tp['ratio_graphssl_over_plain']:.3f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _settings(report: dict, part: str) -> tuple[dict, str]:
    """The settings a part was measured with, and a note when it comes from an earlier run."""
    kept = report.get("kept_from_earlier_runs", {}).get(part)
    if kept:
        return kept["settings"], f"Measured by an earlier run: `{kept['command']}`, torch threads " \
                                 f"{kept['settings']['threads']}."
    return report["settings"], ""


def markdown(report: dict) -> str:
    s = report["settings"]
    lines = [
        "# GraphMAE pretraining overhead: graphssl vs plain PyG", "",
        f"Command: `{report['command']}`", "",
        f"Machine: {report['machine']['cpu']}, {os.cpu_count()} cores, torch threads {s['threads']}; "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items()), "",
        f"Wall time {report['wall_seconds']:.0f} s; peak RSS of the process {report['peak_rss_mb']:.0f} MB; "
        f"1-min load average {report['load_average_1_5_15min']['start'][0]:.2f} at the start, "
        f"{report['load_average_1_5_15min']['end'][0]:.2f} at the end (this run included).", "",
    ]
    if "throughput" in report:
        tp = report["throughput"]
        t, note = _settings(report, "throughput")
        lines += [
            f"## Throughput on MOSES ({t['layers']}-layer GIN {t['hidden']}, GraphMAE mask 0.25, Adam 1e-3)", "",
            *([note, ""] if note else []),
            f"{t['batches']} fixed batches of {t['batch_size']} molecules ({t['molecules']} MOSES molecules, "
            f"{t['mean_nodes']:.1f} atoms and {t['mean_directed_edges_per_node']:.2f} directed edges per atom on "
            f"average), {t['warmup']} warm-up steps per arm, then {t['rounds']} rounds of all batches per arm, arms "
            "interleaved (order reversed every other round); medians over rounds. A step is zero_grad + forward + "
            "backward + Adam step.", "",
            "| arm | graphs/s | ms/step | RSS after forward (MB, max) | first → last loss |",
            "|---|---|---|---|---|",
        ]
        for name, label in [("graphssl", "graphssl GraphMAE"), ("plain", "plain PyG GraphMAE"),
                            ("backbone", "backbone only (embeddings + GIN, trivial loss)")]:
            a = tp["arms"][name]
            lines.append(f"| {label} | {a['graphs_per_s_median']:.0f} | {a['ms_per_step_median']:.1f} | "
                         f"{a['rss_after_forward_mb_max']:.0f} | {a['first_loss']:.3f} → {a['last_loss']:.3f} |")
        lines += ["",
                  f"Ratio graphssl / plain: **{tp['ratio_graphssl_over_plain']:.3f}** (median of per-round ratios); "
                  f"plain / backbone-only: {tp['ratio_plain_over_backbone']:.3f}; "
                  f"graphssl / backbone-only: {tp['ratio_graphssl_over_backbone']:.3f}.", ""]
    if "loop" in report:
        lp = report["loop"]
        t, note = _settings(report, "loop")
        lines += [
            "## The real loop: `graphssl.pretrain` against a hand-written PyG loop", "",
            *([note, ""] if note else []),
            f"GraphMAE on a {t['layers']}-layer GIN {t['hidden']}, {lp['molecules']} MOSES molecules from the cache, "
            f"{lp['epochs']} epochs of batch {lp['batch_size']} ({lp['steps']} steps), torch threads {lp['threads']}. "
            f"Each run is timed whole (load the data, build the model, train, write its files); the arms alternate "
            f"(order reversed every other round), one untimed warm-up round, then {lp['rounds']} rounds; medians. "
            "The plain loops train on the index lists graphssl's sampler draws (computed before timing) and save "
            "the weights at the end; `graphssl.pretrain` also swaps one random stream per micro-batch, checks "
            "losses and gradients for NaN/inf, writes `last.pt` every epoch, then `encoder.pt`, the config and "
            "the history.", "",
            "| arm | seconds per run | of which in the loop | outside the loop | run time / plain | loop time / plain | final loss |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, a in lp["arms"].items():
            ratio = f"{a['ratio_over_plain_median']:.3f}" if "ratio_over_plain_median" in a else "1"
            loop_ratio = f"{a['loop_ratio_over_plain_median']:.3f}" if "loop_ratio_over_plain_median" in a else "1"
            lines.append(f"| {a['what']} | {a['seconds_median']:.2f} | {a['loop_seconds_median']:.2f} | "
                         f"{a['outside_loop_seconds_median']:.2f} | {ratio} | {loop_ratio} | {a['final_loss']:.3f} |")
        if "pretrain" in lp["arms"]:
            rounds = ", ".join(f"{x:.3f}" for x in lp["arms"]["pretrain"]["ratio_over_plain_rounds"])
            lines += ["", f"Per-round run-time ratios `graphssl.pretrain` / plain: {rounds}."]
        lines.append("")
    if "growth" in report:
        gr = report["growth"]
        t, note = _settings(report, "growth")
        lines += [f"## Time per graph as graphs grow (batches of {gr['total_nodes_per_batch']:,} nodes)", "",
                  *([note, ""] if note else []),
                  "Synthetic molecule-like graphs (random tree + ring closures, about 2.2 directed edges per node, "
                  f"random OGB atom features); forward + backward, median of {t['growth_repeats']} repeats after one "
                  "warm-up pass.", ""]
        for method, res in gr["methods"].items():
            if "error" in res:
                lines += [f"**{method}**: failed: `{res['error']}`", ""]
                continue
            extra = " | coarsest supernodes / graph" if method == "higmae" else ""
            lines += [f"**{method}** (log-log slope of ms/graph against nodes: {res['loglog_slope']:.3f}; "
                      f"µs/node varies by a factor {res['us_per_node_max_over_min']:.2f} from smallest to largest)", "",
                      f"| nodes/graph | graphs/batch | ms/graph | µs/node | RSS after forward (MB){extra} |",
                      "|---|---|---|---|---|" + ("---|" if extra else "")]
            for r in res["rows"]:
                tail = f" | {r['coarsest_supernodes_per_graph']:.0f}" if method == "higmae" else ""
                lines.append(f"| {r['nodes_per_graph']} | {r['graphs_per_batch']} | {r['ms_per_graph']:.3f} | "
                             f"{r['us_per_node']:.2f} | {r['rss_after_forward_mb']:.0f}{tail} |")
            lines.append("")
        lines += ["![growth](pretrain_overhead.png)", ""]
    return "\n".join(lines)


PARTS = ("throughput", "loop", "growth")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pretrain_overhead"))
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS,
                        help="parts to run; the others keep their numbers from the previous results.json in --out")
    parser.add_argument("--steps", type=int, default=240, help="timed steps per arm (split into --rounds)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=300)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--loop-molecules", type=int, default=2560, help="(d): MOSES molecules per run")
    parser.add_argument("--loop-epochs", type=int, default=2, help="(d): epochs per run")
    parser.add_argument("--loop-rounds", type=int, default=6, help="(d): timed rounds (after one warm-up round)")
    parser.add_argument("--loop-arms", nargs="+", default=list(LOOP_ARMS), choices=list(LOOP_ARMS))
    parser.add_argument("--cache-dir", type=Path, default=Path(".graphssl_cache"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 100, 200, 500, 1000, 2000, 5000])
    parser.add_argument("--growth-nodes", type=int, default=10_000, help="nodes per batch in the growth test")
    parser.add_argument("--growth-repeats", type=int, default=5)
    parser.add_argument("--no-higmae", action="store_true", help="growth test for GraphMAE only")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS or torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds: checks that it runs")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.rounds, args.batch_size, args.warmup = 4, 2, 16, 1
        args.hidden, args.sizes, args.growth_nodes, args.growth_repeats = 32, [20, 100, 500], 500, 1
        args.loop_molecules, args.loop_epochs, args.loop_rounds = 64, 2, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    if "plain" not in args.loop_arms:
        args.loop_arms.insert(0, "plain")  # the reference of every ratio
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    from graphssl.engine.runtime import library_versions, machine_description

    command = " ".join(([f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"] if "OMP_NUM_THREADS" in os.environ
                        else []) + ["python", *sys.argv])
    settings = {
        "threads": torch.get_num_threads(), "batch_size": args.batch_size, "rounds": args.rounds,
        "warmup": args.warmup, "hidden": args.hidden, "layers": args.layers, "growth_sizes": args.sizes,
        "growth_repeats": args.growth_repeats, "seed": args.seed, "quick": args.quick,
    }
    report: dict = {"command": command, "machine": machine_description(), "versions": library_versions(),
                    "platform": platform.platform(), "parts": args.parts, "settings": settings}
    previous_path = args.out / "results.json"
    previous = json.loads(previous_path.read_text()) if previous_path.is_file() else {}
    kept = {}
    for part in PARTS:
        if part not in args.parts and part in previous:  # a part not run keeps its last measurement
            report[part] = previous[part]
            kept[part] = previous.get("kept_from_earlier_runs", {}).get(part) or {
                "command": previous["command"], "settings": previous["settings"], "versions": previous["versions"]}
    if kept:
        report["kept_from_earlier_runs"] = kept

    if "throughput" in args.parts:
        per_round = max(1, args.steps // args.rounds)
        n_mol = per_round * args.batch_size
        print(f"loading {n_mol} MOSES molecules", flush=True)
        dataset = load_dataset(DataConfig(name="moses", limit=n_mol), args.cache_dir, progress=False, verbose=False)
        mols = [dataset[i] for i in range(len(dataset))]
        order = np.random.default_rng(args.seed).permutation(len(mols))
        mols = [mols[i] for i in order]
        batches = [Batch.from_data_list(mols[i:i + args.batch_size]) for i in range(0, len(mols), args.batch_size)]
        settings.update({
            "batches": len(batches), "molecules": len(mols), "mean_nodes": sum(b.num_nodes for b in batches) / len(mols),
            "mean_directed_edges_per_node": sum(b.num_edges for b in batches) / sum(b.num_nodes for b in batches),
        })
        print(f"throughput: {len(batches)} batches x {args.rounds} rounds per arm", flush=True)
        report["throughput"] = throughput(batches, args.rounds, args.warmup, args.hidden, args.layers, args.seed)
        print(f"  ratio graphssl/plain {report['throughput']['ratio_graphssl_over_plain']:.3f}", flush=True)
    if "loop" in args.parts:
        print(f"real loop: {args.loop_rounds} rounds of {', '.join(args.loop_arms)}", flush=True)
        report["loop"] = real_loop(args.cache_dir, args.loop_molecules, args.batch_size, args.loop_epochs,
                                   args.hidden, args.layers, torch.get_num_threads(), args.seed, args.loop_rounds,
                                   args.loop_arms)
        if "pretrain" in report["loop"]["arms"]:
            print(f"  run time graphssl.pretrain / plain {report['loop']['arms']['pretrain']['ratio_over_plain_median']:.3f}",
                  flush=True)
    if "growth" in args.parts:
        print("growth", flush=True)
        methods = ["graphmae"] + ([] if args.no_higmae else ["higmae"])
        report["growth"] = growth(args.sizes, args.growth_nodes, args.growth_repeats, args.hidden, args.layers,
                                  args.seed, methods)
    report.update({"wall_seconds": time.perf_counter() - t_start, "peak_rss_mb": _peak_rss_mb(),
                   "load_average_1_5_15min": {"start": load_start, "end": os.getloadavg()}})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=1))
    if "growth" in report and "throughput" in report:
        plot(report, args.out / "pretrain_overhead.png")
    (args.out / "results.md").write_text(markdown(report))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
