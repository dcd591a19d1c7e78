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
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from graphssl.core.config import DataConfig, ModelConfig
from graphssl.data.dataset import load_dataset
from graphssl.engine.runtime import library_versions, machine_description
from graphssl.molecule.features import molecule_feature_spec
from graphssl.nn import build_encoder
from graphssl.objectives import build_objective

ARMS: list[tuple[str, dict]] = [
    ("graphmae", {}),
    ("attrmask", {}),
    ("higmae", {}),
    ("descriptors", {}),
    ("graphcl", {}),
    ("graphcl", {"loss": "bgrl"}),
    ("jepa", {}),
]


def arm_name(method: str, options: dict) -> str:
    return method + "".join(f"[{k}={v}]" for k, v in options.items())


def moses(n: int) -> list[Data]:
    dataset = load_dataset(DataConfig(name="moses", limit=n, descriptors="fast"), progress=False, verbose=False)
    return [dataset[i] for i in range(len(dataset))]


def measure(graphs: list[Data], batches: int, batch_size: int, rounds: int) -> dict:
    model = ModelConfig(backbone="gine", hidden=128, num_layers=5, norm="batch_norm", pooling="mean")
    arms: dict[str, dict] = {}
    for method, options in ARMS:
        torch.manual_seed(0)
        objective = build_objective(method, build_encoder(model, molecule_feature_spec()), dict(options))
        data, prep = graphs, float("nan")
        if objective.transform is not None:
            t0 = time.perf_counter()
            data = objective.transform.many(graphs)
            prep = len(graphs) / (time.perf_counter() - t0)
        objective.train()
        arms[arm_name(method, options)] = {
            "objective": objective, "optimiser": torch.optim.Adam(objective.parameters(), lr=1e-3),
            "batches": list(DataLoader(data, batch_size=batch_size))[:batches], "seconds": [],
            "preprocess_graphs_per_s": prep,
            "parameters": sum(p.numel() for p in objective.parameters() if p.requires_grad)}

    def step(arm: dict, i: int) -> float:
        start = time.perf_counter()
        loss = arm["objective"](arm["batches"][i])
        arm["optimiser"].zero_grad()
        loss.backward()
        arm["optimiser"].step()
        arm["objective"].after_step()
        return time.perf_counter() - start

    names = list(arms)
    for arm in arms.values():  # the first steps pay one-off allocation costs
        step(arm, 0)
    for r in range(rounds):
        totals = dict.fromkeys(names, 0.0)
        for i in range(batches):
            shift = (r * batches + i) % len(names)
            for name in names[shift:] + names[:shift]:
                totals[name] += step(arms[name], i)
        for name in names:
            arms[name]["seconds"].append(totals[name])
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {batches * batch_size / totals[n]:.0f}" for n in names),
              flush=True)
    base = arms["graphmae"]["seconds"]
    out: dict = {"batches": batches, "batch_size": batch_size, "rounds": rounds,
                 "threads": torch.get_num_threads(), "graphs": len(graphs), "arms": {}}
    for name, arm in arms.items():
        rates = [batches * batch_size / s for s in arm["seconds"]]
        ratios = [g / s for g, s in zip(base, arm["seconds"])]
        out["arms"][name] = {"graphs_per_s_median": float(np.median(rates)), "graphs_per_s_rounds": rates,
                             "ratio_over_graphmae_median": float(np.median(ratios)),
                             "ratio_over_graphmae_min": float(min(ratios)),
                             "ratio_over_graphmae_max": float(max(ratios)),
                             "preprocess_graphs_per_s": arm["preprocess_graphs_per_s"],
                             "trainable_parameters": arm["parameters"]}
    return out


def markdown(result: dict, command: str) -> str:
    lines = ["# Pretraining throughput per objective", "",
             f"`{command}`; {result['machine']['cpu']}, {result['machine']['cores']} cores, "
             f"{result['machine']['memory']} (shared with other jobs); torch threads {result['threads']}; "
             f"{result['rounds']} rounds of {result['batches']} batches of {result['batch_size']} MOSES graphs, "
             f"arms interleaved step by step; wall time {result['wall_s'] / 60:.1f} min.", "",
             "| objective | graphs/s (median) | vs GraphMAE, median of per-round ratios (min - max) "
             "| one-off preprocessing, graphs/s | trainable parameters |", "|---|---|---|---|---|"]
    for name, arm in result["arms"].items():
        prep = arm["preprocess_graphs_per_s"]
        lines.append(f"| {name} | {arm['graphs_per_s_median']:,.0f} | {arm['ratio_over_graphmae_median']:.2f}x "
                     f"({arm['ratio_over_graphmae_min']:.2f} - {arm['ratio_over_graphmae_max']:.2f}) | "
                     f"{'-' if prep != prep else f'{prep:,.0f}'} | {arm['trainable_parameters']:,} |")
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
    command = ("python benchmarks/objective_speed.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out") + f" --out {args.out}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "results.md").write_text(markdown(result, command))
    print(markdown(result, command))


if __name__ == "__main__":
    main()
