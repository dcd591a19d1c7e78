"""Pretraining throughput of every molecule objective against GraphMAE, in one run.

All arms train the same backbone (the zoo's GINE 5 x 128 with batch norm) on the same MOSES
batches (built with ``data.descriptors: fast`` so that descriptor prediction has its targets;
the other objectives ignore the vector). A step is forward + backward + Adam + the objective's
``after_step`` (the EMA move of BGRL and graph JEPA). Arms alternate step by step, in an order
that rotates at every batch, so that a change in machine load hits them alike; per round, each
arm's ratio is GraphMAE's seconds over the arm's, and the median over rounds is reported.
One-off preprocessing (Hi-GMAE's coarsening, descriptor scaling statistics) is timed apart.

    python benchmarks/objective_speed.py --out benchmarks/results/objective_speed
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch_geometric.data import Data

from graphssl.core.config import DataConfig, ModelConfig
from graphssl.data.dataset import load_dataset
from graphssl.engine.runtime import library_versions, machine_description
from graphssl.molecule.features import molecule_feature_spec

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: its sibling modules
from interleaved import build_arms, run_rounds, save, table_rows  # noqa: E402

ARMS: list[tuple[str, dict]] = [
    ("graphmae", {}),
    ("attrmask", {}),
    ("higmae", {}),
    ("descriptors", {}),
    ("graphcl", {}),
    ("graphcl", {"loss": "bgrl"}),
    ("jepa", {}),
]


def moses(n: int) -> list[Data]:
    dataset = load_dataset(DataConfig(name="moses", limit=n, descriptors="fast"), progress=False, verbose=False)
    return [dataset[i] for i in range(len(dataset))]


def measure(graphs: list[Data], batches: int, batch_size: int, rounds: int) -> dict:
    model = ModelConfig(backbone="gine", hidden=128, num_layers=5, norm="batch_norm", pooling="mean")
    arms = build_arms(ARMS, model, molecule_feature_spec(), graphs, batches, batch_size)
    return {**run_rounds(arms, batches, batch_size, rounds), "graphs": len(graphs)}


def markdown(result: dict, command: str) -> str:
    lines = ["# Pretraining throughput per objective", "",
             f"`{command}`; {result['machine']['cpu']}, {result['machine']['cores']} cores, "
             f"{result['machine']['memory']} (shared with other jobs); torch threads {result['threads']}; "
             f"{result['rounds']} rounds of {result['batches']} batches of {result['batch_size']} MOSES graphs, "
             f"arms interleaved step by step; wall time {result['wall_s'] / 60:.1f} min.", "",
             "| objective | graphs/s (median) | vs GraphMAE, median of per-round ratios (min - max) "
             "| one-off preprocessing, graphs/s | trainable parameters |", "|---|---|---|---|---|"]
    lines += table_rows(result, unit="graphs", digits=0)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=2048, help="MOSES molecules to draw the batches from")
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/objective_speed"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    result = measure(moses(args.graphs), args.batches, args.batch_size, args.rounds)
    result.update(wall_s=time.perf_counter() - start, machine=machine_description(), versions=library_versions())
    save(args, "objective_speed.py", result, markdown)

if __name__ == "__main__":
    main()
