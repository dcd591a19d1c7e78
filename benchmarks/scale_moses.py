"""The full MOSES corpus on this machine: featurisation speed, preparation, streaming memory.

(a) Featurisation throughput on the same SMILES, in one run: graphssl's featuriser with 1 and
    2 worker processes (``graphssl data prepare``'s code path) against
    ``torch_geometric.utils.from_smiles`` in one process, with peak resident memory.
(b) Preparation of the whole corpus (``moses-full``: 1,936,962 SMILES) into shards with
    ``--workers`` processes: wall time, molecules/s, peak resident memory of the process tree,
    size on disk.
(c) Streaming from the prepared shards: one full epoch of batches through the data loader
    (every graph read and collated), then GraphMAE pretraining steps, with peak memory.

Peak memory is the proportional set size (PSS) of the process and its children, sampled every
100 ms with psutil: worker processes count, and pages they share (torch, RDKit) count once.

    python benchmarks/scale_moses.py --out benchmarks/results/scale_moses --shards /tmp/moses-shards
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import psutil
import torch

from graphssl.core.config import DataConfig, load_config
from graphssl.data.dataset import resolve_source
from graphssl.data.sampler import StepSampler
from graphssl.molecule.shards import ShardedDataset, prepare_shards
from graphssl.engine.runtime import library_versions, machine_description

MB = 2**20


class PeakMemory:
    """Peak memory (PSS) of this process plus its children, sampled in a background thread."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def _tree_rss(self) -> int:
        # proportional set size: pages shared between the workers (torch, RDKit) count once in
        # total, where summing RSS would count them once per process
        me = psutil.Process()
        total = me.memory_full_info().pss
        for child in me.children(recursive=True):
            try:
                total += child.memory_full_info().pss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._tree_rss())
            time.sleep(self.interval)

    def __enter__(self) -> "PeakMemory":
        self.peak = self._tree_rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mb(self) -> float:
        return self.peak / MB


def featuriser_throughput(n: int, out: Path) -> list[dict]:
    from torch_geometric.utils import from_smiles

    config = DataConfig(name="moses-full", limit=n)
    smiles = [r.smiles for r in resolve_source(config).records]
    rows = []
    with PeakMemory() as memory:
        t0 = time.perf_counter()
        for s in smiles:
            from_smiles(s)
        seconds = time.perf_counter() - t0
    rows.append({"method": "torch_geometric.utils.from_smiles (1 process)", "molecules": n, "seconds": seconds,
                 "molecules_per_s": n / seconds, "peak_pss_mb": memory.mb})
    print(rows[-1], flush=True)
    for workers in (1, 2):
        with PeakMemory() as memory:
            report = prepare_shards(resolve_source(config), config, out / f"featurise-{workers}", workers=workers,
                                    shard_size=100_000, progress=False)
        rows.append({"method": f"graphssl data prepare, {workers} worker{'s' * (workers > 1)}", "molecules": n,
                     "seconds": report.seconds, "molecules_per_s": report.per_second, "peak_pss_mb": memory.mb,
                     "written_to_disk": True})
        print(rows[-1], flush=True)
    for r in rows:
        r["ratio_vs_from_smiles"] = r["molecules_per_s"] / rows[0]["molecules_per_s"]
    return rows


def prepare_full(shards: Path, workers: int, limit: int | None) -> dict:
    config = DataConfig(name="moses-full", on_error="skip", limit=limit)
    with PeakMemory() as memory:
        report = prepare_shards(resolve_source(config), config, shards, workers=workers, shard_size=100_000)
    size = sum(p.stat().st_size for p in shards.glob("shard-*.pt"))
    row = {"read": report.read, "kept": report.kept, "skipped": report.skipped, "shards": report.shards,
           "workers": workers, "seconds": report.seconds, "molecules_per_s": report.per_second,
           "peak_pss_mb": memory.mb, "disk_mb": size / MB}
    print(row, flush=True)
    return row


def stream_epoch(shards: Path, batch_size: int) -> dict:
    from torch_geometric.loader import DataLoader
    from tqdm.auto import tqdm

    dataset = ShardedDataset(shards)
    sampler = StepSampler(dataset.shard_sizes, batch_size, seed=0, epoch=0)
    graphs = nodes = 0
    with PeakMemory() as memory:
        t0 = time.perf_counter()
        for batch in tqdm(DataLoader(dataset, batch_sampler=sampler), total=len(sampler), unit="batch",
                          mininterval=5):
            graphs += batch.num_graphs
            nodes += batch.num_nodes
        seconds = time.perf_counter() - t0
    row = {"graphs": graphs, "nodes": nodes, "seconds": seconds, "graphs_per_s": graphs / seconds,
           "peak_pss_mb": memory.mb}
    print(row, flush=True)
    return row


def stream_pretraining(shards: Path, out: Path, steps: int) -> dict:
    from graphssl.engine.pretrain import pretrain

    config = load_config(None, [
        f"data.path={shards}", f"output_dir={out / 'pretrain'}", "pretrain.resume=false", "pretrain.epochs=1",
        f"pretrain.max_steps={steps}", "pretrain.batch_size=256", "objective.name=graphmae",
        "model.backbone=gin", "model.hidden=300", "model.num_layers=5", "progress=true",
    ])
    with PeakMemory() as memory:
        t0 = time.perf_counter()
        pretrain(config)
        seconds = time.perf_counter() - t0
    history = json.loads((out / "pretrain" / "pretrain_history.json").read_text())
    row = {"steps": steps, "batch_size": 256, "backbone": "GIN 5 x 300", "seconds": seconds,
           "graphs_per_s": history[-1]["graphs_per_s"], "peak_pss_mb": memory.mb, "corpus_graphs": None}
    row["corpus_graphs"] = len(ShardedDataset(shards))
    print(row, flush=True)
    return row


def write_markdown(report: dict, path: Path) -> None:
    lines = ["# MOSES at scale", "", f"Command: `{report['command']}`", ""]
    m, v = report["machine"], report["versions"]
    lines += [f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}, torch threads {m['torch_threads']}",
              "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()), ""]
    if "featuriser" in report:
        lines += ["## Featurisation, same SMILES", "", "| method | molecules | s | molecules/s | vs from_smiles | peak PSS (MB) |",
                  "|---|---|---|---|---|---|"]
        for r in report["featuriser"]:
            lines.append(f"| {r['method']} | {r['molecules']:,} | {r['seconds']:.1f} | {r['molecules_per_s']:,.0f} | "
                         f"{r['ratio_vs_from_smiles']:.2f}x | {r['peak_pss_mb']:,.0f} |")
        lines.append("")
    if "prepare" in report:
        r = report["prepare"]
        lines += ["## Preparing the whole corpus", "",
                  f"read {r['read']:,}, kept {r['kept']:,}, skipped {r['skipped']:,}; {r['shards']} shards, "
                  f"{r['disk_mb']:,.0f} MB on disk; {r['workers']} workers, {r['seconds'] / 60:.1f} min, "
                  f"{r['molecules_per_s']:,.0f} molecules/s, peak PSS of all processes {r['peak_pss_mb']:,.0f} MB", ""]
    if "stream_epoch" in report:
        r = report["stream_epoch"]
        lines += ["## Streaming one epoch (read and collate every graph)", "",
                  f"{r['graphs']:,} graphs ({r['nodes']:,} nodes) in {r['seconds']:.0f} s, {r['graphs_per_s']:,.0f} "
                  f"graphs/s, peak PSS {r['peak_pss_mb']:,.0f} MB", ""]
    if "stream_pretraining" in report:
        r = report["stream_pretraining"]
        lines += ["## GraphMAE pretraining streamed from the shards", "",
                  f"{r['steps']} steps of {r['batch_size']} graphs, {r['backbone']}, corpus of {r['corpus_graphs']:,} "
                  f"graphs: {r['graphs_per_s']:,.0f} graphs/s, peak PSS {r['peak_pss_mb']:,.0f} MB", ""]
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scale_moses"))
    parser.add_argument("--shards", type=Path, default=Path("moses-shards"), help="where the prepared corpus goes")
    parser.add_argument("--featurise", type=int, default=50_000, help="SMILES for the featuriser comparison")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, help="prepare only the first LIMIT SMILES (a smoke test)")
    parser.add_argument("--steps", type=int, default=300, help="pretraining steps streamed from the shards")
    parser.add_argument("--skip", nargs="*", default=[], choices=["featuriser", "prepare", "stream", "pretrain"])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "results.json"
    report = json.loads(json_path.read_text()) if json_path.is_file() else {}
    report.update({"command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine_description(),
                   "versions": library_versions()})
    scratch = args.shards.parent / f"{args.shards.name}-featuriser"
    if "featuriser" not in args.skip:
        report["featuriser"] = featuriser_throughput(args.featurise, scratch)
    if "prepare" not in args.skip:
        report["prepare"] = prepare_full(args.shards, args.workers, args.limit)
    if "stream" not in args.skip:
        report["stream_epoch"] = stream_epoch(args.shards, 256)
    if "pretrain" not in args.skip:
        report["stream_pretraining"] = stream_pretraining(args.shards, scratch, args.steps)
    json_path.write_text(json.dumps(report, indent=1))
    write_markdown(report, args.out / "results.md")
    print(f"written to {args.out}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
