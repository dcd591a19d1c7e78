"""The scaling curve: downstream score against pretraining graph passes, from benchmark runs
whose methods are scratch (0 graph passes) and ``encoder:`` methods labelled ``NAME-sSTEP``
(the state of pretraining run NAME after STEP optimiser steps of ``--batch-size`` graphs).
Each NAME is one curve (e.g. graphmae and higmae), all starting from the same scratch runs.

    python benchmarks/scaling_plot.py runs/bench-scaling-graphmae/results.json \
        --out benchmarks/results/scaling

Writes ``scaling.png`` (one column per task: mean test score over seeds with a band of one
sample standard deviation, and the paired difference against scratch with its 95% interval)
and ``scaling.md`` (the table), next to a copy of the harness's reports.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np

from graphssl.bench.stats import paired_difference
from graphssl.tasks.metrics import HIGHER_IS_BETTER

STEP = re.compile(r"^(?P<name>.+)-s(?P<step>\d+)$")


def passes_of(method: str, batch_size: int) -> int | None:
    """Graph passes of a method: 0 for scratch, STEP x batch for ``NAME-sSTEP``, else None."""
    if method == "scratch":
        return 0
    match = STEP.match(method)
    return int(match["step"]) * batch_size if match else None


def family_of(method: str) -> str | None:
    """NAME of a ``NAME-sSTEP`` method; None for scratch and anything else."""
    match = STEP.match(method)
    return match["name"] if match else None


def curves(runs: list[dict], batch_size: int) -> dict[str, dict[str, list[dict]]]:
    """Per task and pretraining run NAME, one row per budget (scratch first): graph passes,
    scores over seeds, and the paired difference against scratch (same seed and split)."""
    scratch: dict[str, dict[tuple, float]] = defaultdict(dict)
    by_task: dict[str, dict[str, dict[int, dict[tuple, float]]]] = defaultdict(lambda: defaultdict(dict))
    metric_of = {run["task"]: run["metric"] for run in runs}
    for run in runs:
        passes = passes_of(run["method"], batch_size)
        if passes is None:
            continue
        key = (run.get("split", ""), run["seed"])
        if passes == 0:
            scratch[run["task"]][key] = float(run["test"])
        else:
            by_task[run["task"]][family_of(run["method"])].setdefault(passes, {})[key] = float(run["test"])
    return {task: {name: _rows({0: scratch[task], **budgets}, metric_of[task])
                   for name, budgets in sorted(families.items())}
            for task, families in by_task.items()}


def _rows(budgets: dict[int, dict[tuple, float]], metric: str) -> list[dict]:
    scratch = budgets.get(0, {})
    rows = []
    for passes in sorted(budgets):
        scores = budgets[passes]
        pairs = sorted(set(scores) & set(scratch))
        diff = (paired_difference([scores[k] for k in pairs], [scratch[k] for k in pairs], HIGHER_IS_BETTER[metric])
                if passes else None)
        values = np.array(list(scores.values()))
        rows.append({"graph_passes": passes, "mean": float(values.mean()),
                     "std": float(values.std(ddof=1)) if len(values) > 1 else float("nan"), "n": len(values),
                     "diff": None if diff is None else {"mean": diff.mean, "low": diff.low, "high": diff.high}})
    return rows


def plot(table: dict[str, dict[str, list[dict]]], metric: dict[str, str], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0 * len(table), 7.0))
    for col, (task, families) in enumerate(table.items()):
        ax = fig.add_subplot(2, len(table), col + 1)
        ax2 = fig.add_subplot(2, len(table), len(table) + col + 1, sharex=ax)
        for k, (name, rows) in enumerate(families.items()):
            color = f"C{k}"
            x = np.array([max(r["graph_passes"], 1) for r in rows], dtype=float)
            mean = np.array([r["mean"] for r in rows])
            std = np.nan_to_num(np.array([r["std"] for r in rows]))
            ax.plot(x, mean, "o-", color=color, label=name)
            ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.15)
            diff = [(r["graph_passes"], r["diff"]) for r in rows if r["diff"] is not None]
            if diff:
                # a small horizontal offset per curve keeps the intervals apart
                dx = np.array([d[0] for d in diff], dtype=float) * (1.0 + 0.04 * k)
                dm = np.array([d[1]["mean"] for d in diff])
                err = np.array([[d[1]["mean"] - d[1]["low"] for d in diff],
                                [d[1]["high"] - d[1]["mean"] for d in diff]])
                ax2.errorbar(dx, dm, yerr=err, fmt="o-", color=color, capsize=4, label=name)
        ax.set_xscale("symlog", linthresh=1e5)
        ax.set_title(task)
        ax.set_ylabel(f"test {metric.get(task, 'score')} (mean ± sample std)")
        ax.legend(fontsize=8)
        ax2.axhline(0.0, color="grey", lw=0.8)
        ax2.set_xlabel("pretraining graph passes (0 = scratch)")
        ax2.set_ylabel("minus scratch, mean [95% CI]")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def markdown(table: dict[str, dict[str, list[dict]]], metric: dict[str, str]) -> str:
    lines = []
    for task, families in table.items():
        for name, rows in families.items():
            lines += [f"### {task}, {name} (test {metric.get(task, 'score')})", "",
                      "| graph passes | mean ± sample std (n) | minus scratch, mean [95% CI] |", "|---|---|---|"]
            for r in rows:
                d = r["diff"]
                diff = "-" if d is None else f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
                lines.append(f"| {r['graph_passes']:,} | {r['mean']:.3f} ± {r['std']:.3f} ({r['n']}) | {diff} |")
            lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+",
                        help="results.json of the benchmark run(s); runs of several (e.g. later budgets) are joined, "
                             "a (method, task, split, seed) given twice must have the same score")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=256, help="graphs per pretraining step")
    args = parser.parse_args()
    runs: dict[tuple, dict] = {}
    for path in args.results:
        for run in json.loads(path.read_text())["runs"]:
            key = (run["method"], run["task"], run.get("split", ""), run["seed"])
            if key in runs and runs[key]["test"] != run["test"]:
                raise SystemExit(f"{key} scores {runs[key]['test']} in one file and {run['test']} in {path}: "
                                 "the runs differ, so they cannot be joined")
            runs[key] = run
    metric = {r["task"]: r.get("metric", "score") for r in runs.values()}
    table = curves(list(runs.values()), args.batch_size)
    args.out.mkdir(parents=True, exist_ok=True)
    for k, path in enumerate(args.results):
        for name in ("results.md", "results.json", "results.png", "paired.png"):
            if (path.parent / name).is_file():
                shutil.copy(path.parent / name, args.out / (name if k == 0 else f"part{k + 1}_{name}"))
    plot(table, metric, args.out / "scaling.png")
    (args.out / "scaling.md").write_text(markdown(table, metric))
    print(markdown(table, metric))


if __name__ == "__main__":
    main()
