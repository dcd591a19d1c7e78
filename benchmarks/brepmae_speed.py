"""Pretraining throughput of BRepMAE against GraphMAE (and Hi-GMAE) on B-rep parts, in one run.

All arms train the same backbone (the B-rep few-shot tier's GINE 3 x 64 with batch norm, behind
the face- and edge-grid CNNs) on the same batches of generated parts (``graphssl data generate
brep``, seed ``--seed``). GraphMAE and Hi-GMAE reconstruct the masked faces' UV grids with MSE
(``loss: mse``, as ``brep_fewshot_quick.yaml`` runs them); BRepMAE runs with its defaults (mask
0.6 per part, UV-grid points and normals over untrimmed samples, surface type, log area, log
degree). A step is forward + backward + Adam (``benchmarks/interleaved.py``). Arms alternate step by step, in an order that
rotates at every batch, so that a change in machine load hits them alike; per round, each arm's
ratio is GraphMAE's seconds over the arm's, and the median over rounds is reported. One-off
preprocessing (the coarsening of Hi-GMAE and BRepMAE) is timed apart.

    python benchmarks/brepmae_speed.py --out benchmarks/results/brepmae_speed
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch_geometric.data import Data

from graphssl.brep.adapter import step_to_graphs
from graphssl.brep.encoders import brep_feature_spec
from graphssl.brep.generate import generate_dataset
from graphssl.core.config import ModelConfig
from graphssl.engine.runtime import library_versions, machine_description

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: its sibling modules
from interleaved import build_arms, run_rounds, save, table_rows  # noqa: E402

ARMS: list[tuple[str, dict]] = [
    ("graphmae", {"loss": "mse"}),
    ("higmae", {"loss": "mse"}),
    ("brepmae", {}),
]


def parts(n: int, seed: int) -> list[Data]:
    """``n`` generated parts as face graphs (the adapter's default 10 x 10 grids)."""
    with tempfile.TemporaryDirectory() as folder:
        generate_dataset(n, folder, seed=seed, progress=False)
        return [g for path in sorted(Path(folder).glob("*.step")) for g in step_to_graphs(path)]


def measure(graphs: list[Data], batches: int, batch_size: int, rounds: int) -> dict:
    model = ModelConfig(backbone="gine", hidden=64, num_layers=3, norm="batch_norm", pooling="mean")
    arms = build_arms(ARMS, model, brep_feature_spec(), graphs, batches, batch_size)
    faces = sum(int(b.num_nodes) for b in next(iter(arms.values()))["batches"])
    return {**run_rounds(arms, batches, batch_size, rounds, unit="parts"), "parts": len(graphs),
            "faces_per_round": faces, "model": "gine 3 x 64, batch norm"}


def markdown(result: dict, command: str) -> str:
    machine, versions = result["machine"], result["versions"]
    lines = ["# BRepMAE pretraining throughput against GraphMAE", "",
             f"`{command}`; {machine['cpu']}, {machine['cores']} cores, {machine['memory']} (shared with other "
             f"jobs); torch threads {result['threads']}; {', '.join(f'{k} {v}' for k, v in versions.items())}; "
             f"{result['model']}; "
             f"{result['rounds']} rounds of {result['batches']} batches of {result['batch_size']} generated parts "
             f"({result['faces_per_round']:,} faces per round), arms interleaved step by step; wall time "
             f"{result['wall_s'] / 60:.1f} min (part generation and conversion included).", "",
             "| objective | parts/s (median) | vs GraphMAE, median of per-round ratios (min - max) "
             "| one-off coarsening, parts/s | trainable parameters |", "|---|---|---|---|---|"]
    lines += table_rows(result, unit="parts", digits=1)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=192, help="generated parts to draw the batches from")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (1: the pretraining corpus's)")
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/brepmae_speed"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    result = measure(parts(args.parts, args.seed), args.batches, args.batch_size, args.rounds)
    result.update(wall_s=time.perf_counter() - start, machine=machine_description(), versions=library_versions())
    save(args, "brepmae_speed.py", result, markdown)

if __name__ == "__main__":
    main()
