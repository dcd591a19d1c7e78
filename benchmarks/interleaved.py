"""Pretraining throughput of several objectives on the same batches, measured interleaved.

Shared by the throughput benchmarks (``objective_speed.py``, ``brepmae_speed.py``): every arm
trains its own copy of one backbone on the same batches; arms alternate step by step in an order
that rotates at every batch, so that a change in machine load hits them alike; per round, each
arm's ratio is the first arm's seconds over its own, and the median over rounds is reported.
One-off preprocessing (an objective's transform, e.g. coarsening) is timed apart.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from graphssl.core.config import ModelConfig
from graphssl.nn import build_encoder
from graphssl.nn.features import FeatureSpec
from graphssl.objectives import build_objective


def arm_name(method: str, options: dict) -> str:
    """``graphcl[loss=bgrl]``: the method and its non-default options."""
    return method + "".join(f"[{k}={v}]" for k, v in options.items())


def build_arms(specs: list[tuple[str, dict]], model: ModelConfig, features: FeatureSpec, graphs: list[Data],
               batches: int, batch_size: int) -> dict[str, dict[str, Any]]:
    """One objective per ``(method, options)``, with its optimiser, its first ``batches`` batches
    of ``graphs`` (after its transform) and the transform's rate in graphs/s (NaN: none)."""
    arms: dict[str, dict[str, Any]] = {}
    for method, options in specs:
        torch.manual_seed(0)
        objective = build_objective(method, build_encoder(model, features), dict(options))
        data, prep = graphs, float("nan")
        if objective.transform is not None:
            start = time.perf_counter()
            data = objective.transform.many(graphs)
            prep = len(graphs) / (time.perf_counter() - start)
        objective.train()
        arms[arm_name(method, options)] = {
            "objective": objective, "optimiser": torch.optim.Adam(objective.parameters(), lr=1e-3),
            "batches": list(DataLoader(data, batch_size=batch_size))[:batches], "seconds": [],
            "preprocess_per_s": prep,
            "parameters": sum(p.numel() for p in objective.parameters() if p.requires_grad)}
    return arms


def _step(arm: dict[str, Any], i: int) -> float:
    """Seconds of one training step: forward, backward, Adam, and ``after_step`` (EMA moves)."""
    start = time.perf_counter()
    loss = arm["objective"](arm["batches"][i])
    arm["optimiser"].zero_grad()
    loss.backward()
    arm["optimiser"].step()
    arm["objective"].after_step()
    return time.perf_counter() - start


def run_rounds(arms: dict[str, dict[str, Any]], batches: int, batch_size: int, rounds: int,
               unit: str = "graphs", baseline: str = "graphmae") -> dict[str, Any]:
    """Run ``rounds`` interleaved rounds over every arm's batches and summarise: per arm the
    median ``unit``/s, the per-round ratios against the first arm (``baseline``, as the keys
    name it: median, min, max), the preprocessing rate and the trainable parameters."""
    names = list(arms)
    for arm in arms.values():  # the first steps pay one-off allocation costs
        _step(arm, 0)
    for r in range(rounds):
        totals = dict.fromkeys(names, 0.0)
        for i in range(batches):
            shift = (r * batches + i) % len(names)
            for name in names[shift:] + names[:shift]:
                totals[name] += _step(arms[name], i)
        for name in names:
            arms[name]["seconds"].append(totals[name])
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {batches * batch_size / totals[n]:.1f}" for n in names),
              flush=True)
    base, over = arms[names[0]]["seconds"], f"ratio_over_{baseline}"
    out: dict[str, Any] = {"batches": batches, "batch_size": batch_size, "rounds": rounds,
                           "threads": torch.get_num_threads(), "arms": {}}
    for name, arm in arms.items():
        rates = [batches * batch_size / s for s in arm["seconds"]]
        ratios = [b / s for b, s in zip(base, arm["seconds"])]
        out["arms"][name] = {f"{unit}_per_s_median": float(np.median(rates)), f"{unit}_per_s_rounds": rates,
                             f"{over}_median": float(np.median(ratios)), f"{over}_min": float(min(ratios)),
                             f"{over}_max": float(max(ratios)), f"preprocess_{unit}_per_s": arm["preprocess_per_s"],
                             "trainable_parameters": arm["parameters"]}
    return out


def table_rows(result: dict[str, Any], unit: str = "graphs", digits: int = 0) -> list[str]:
    """The Markdown rows of :func:`run_rounds`'s summary: arm, median rate, ratio against
    GraphMAE (min - max), one-off preprocessing rate, trainable parameters."""
    rows = []
    for name, arm in result["arms"].items():
        prep = arm[f"preprocess_{unit}_per_s"]
        rows.append(f"| {name} | {arm[f'{unit}_per_s_median']:,.{digits}f} | {arm['ratio_over_graphmae_median']:.2f}x "
                    f"({arm['ratio_over_graphmae_min']:.2f} - {arm['ratio_over_graphmae_max']:.2f}) | "
                    f"{'-' if prep != prep else f'{prep:,.0f}'} | {arm['trainable_parameters']:,} |")
    return rows


def save(args: Any, script: str, result: dict[str, Any], markdown: Callable[[dict, str], str]) -> None:
    """Write ``results.json`` and ``results.md`` (made by ``markdown(result, command)``) into
    ``args.out``, with the command line rebuilt from ``args``, and print the Markdown."""
    command = (f"python benchmarks/{script} " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out") + f" --out {args.out}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result, command)
    (args.out / "results.md").write_text(text)
    print(text)
