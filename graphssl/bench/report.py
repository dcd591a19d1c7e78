"""Summaries of benchmark results: mean +- std tables in Markdown and a PNG plot."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from graphssl.bench.stats import paired_difference
from graphssl.tasks.metrics import HIGHER_IS_BETTER


def summarise(rows: list[dict[str, Any]]) -> dict[tuple[str, str, float], dict[str, float]]:
    """(method, task, label_fraction) -> mean/std of the test and valid scores over seeds."""
    groups: dict[tuple[str, str, float], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["method"], row["task"], row["label_fraction"])].append(row)
    out = {}
    for key, items in groups.items():
        test = np.array([r["test"] for r in items], dtype=float)
        valid = np.array([r["valid"] for r in items], dtype=float)
        out[key] = {
            "test_mean": float(np.nanmean(test)) if np.isfinite(test).any() else float("nan"),
            "test_std": float(np.nanstd(test)) if np.isfinite(test).any() else float("nan"),
            "valid_mean": float(np.nanmean(valid)) if np.isfinite(valid).any() else float("nan"),
            "n": len(items),
            "metric": items[0]["metric"],
        }
    return out


def _order(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """One table per label fraction: methods as rows, tasks as columns, test mean +- std;
    the best mean per column is in bold."""
    stats = summarise(rows)
    methods = _order([r["method"] for r in rows])
    tasks = _order([r["task"] for r in rows])
    fractions = sorted(_order([r["label_fraction"] for r in rows]), reverse=True)
    metrics = {r["task"]: r["metric"] for r in rows}
    lines: list[str] = []
    for fraction in fractions:
        if len(fractions) > 1:
            lines.append(f"\n**Label fraction {fraction:g}** (share of the training split with labels)\n")
        head = ["method"] + [f"{t} ({metrics[t]} {'↑' if HIGHER_IS_BETTER[metrics[t]] else '↓'})" for t in tasks]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        best = {}
        for t in tasks:
            means = [stats[(m, t, fraction)]["test_mean"] for m in methods if (m, t, fraction) in stats]
            means = [v for v in means if np.isfinite(v)]
            if means:
                best[t] = max(means) if HIGHER_IS_BETTER[metrics[t]] else min(means)
        for m in methods:
            cells = [m]
            for t in tasks:
                s = stats.get((m, t, fraction))
                if s is None:
                    cells.append("n/a")
                    continue
                text = f"{s['test_mean']:.3f} ± {s['test_std']:.3f} (n={s['n']})"
                cells.append(f"**{text}**" if best.get(t) == s["test_mean"] else text)
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(rows: list[dict[str, Any]], baseline: str = "scratch") -> str:
    """Each method against ``baseline`` on the same task, label fraction and seed: the mean paired
    difference of the test score, its 95% confidence interval and (wins/ties/losses); "" without
    the baseline. Intervals that exclude zero are in bold."""
    methods = [m for m in _order([r["method"] for r in rows]) if m != baseline]
    if not methods or not any(r["method"] == baseline for r in rows):
        return ""
    tasks = _order([r["task"] for r in rows])
    fractions = sorted(_order([r["label_fraction"] for r in rows]), reverse=True)
    metrics = {r["task"]: r["metric"] for r in rows}
    head = ["method", *([f"{t} @ {f:g}" for t in tasks for f in fractions] if len(fractions) > 1 else tasks)]
    lines = [f"Paired difference against {baseline} (method - {baseline}, same seed and split), mean "
             "[95% CI] (wins/ties/losses):", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by_key = {(r["method"], r["task"], r["label_fraction"], r["seed"]): r["test"] for r in rows}
    for m in methods:
        cells = [m]
        for t in tasks:
            for f in fractions:
                seeds = sorted(s for (mm, tt, ff, s) in by_key if (mm, tt, ff) == (m, t, f)
                               and (baseline, t, f, s) in by_key)
                if not seeds:
                    cells.append("n/a")
                    continue
                d = paired_difference([by_key[(m, t, f, s)] for s in seeds],
                                      [by_key[(baseline, t, f, s)] for s in seeds], HIGHER_IS_BETTER[metrics[t]])
                cells.append(f"**{d}**" if d.separated else str(d))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_results(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Bars of mean +- std test score per task and method (lines over label fractions when
    several fractions were run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = summarise(rows)
    methods = _order([r["method"] for r in rows])
    tasks = _order([r["task"] for r in rows])
    fractions = sorted(_order([r["label_fraction"] for r in rows]))
    metrics = {r["task"]: r["metric"] for r in rows}
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        if len(fractions) > 1:
            for m in methods:
                xs = [f for f in fractions if (m, task, f) in stats]
                mu = np.array([stats[(m, task, f)]["test_mean"] for f in xs])
                sd = np.array([stats[(m, task, f)]["test_std"] for f in xs])
                ax.errorbar(xs, mu, yerr=sd, marker="o", capsize=3, label=m)
            ax.set_xscale("log")
            ax.set_xlabel("label fraction of the training split")
        else:
            f = fractions[0]
            mu = [stats.get((m, task, f), {}).get("test_mean", np.nan) for m in methods]
            sd = [stats.get((m, task, f), {}).get("test_std", np.nan) for m in methods]
            # Points with error bars rather than bars: the scores' range, not zero, matters.
            for i, m in enumerate(methods):
                ax.errorbar([i], [mu[i]], yerr=[sd[i]], fmt="o", capsize=5, color=f"C{i}")
                seeds = [r["test"] for r in rows if r["method"] == m and r["task"] == task and r["label_fraction"] == f]
                ax.scatter([i + 0.12] * len(seeds), seeds, s=10, color=f"C{i}", alpha=0.5)  # each seed
            ax.set_xticks(range(len(methods)), methods, rotation=20)
            ax.set_xlim(-0.6, len(methods) - 0.4)
        arrow = "higher is better" if HIGHER_IS_BETTER[metrics[task]] else "lower is better"
        ax.set_title(f"{task}: test {metrics[task]} ({arrow})", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    if len(fractions) > 1:
        axes[0][0].legend(fontsize=8)
    fig.suptitle("test score at the best validation epoch: mean ± std over seeds (small dots: single seeds)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.92))  # leave room for the title
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
