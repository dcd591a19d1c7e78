"""Summaries of benchmark results: mean +- std tables and paired differences in Markdown, and
PNG plots.

A run (one row of ``results.json``) carries ``method``, ``task``, ``metric``, ``seed``,
``valid``, ``test`` and ``label_fraction``; optionally ``split`` and ``split_seed`` (the split's
name and seed; a task can run several splits) and ``label_count`` (a fixed number of labelled
training items instead of a fraction). A *cell* is one task, split name and label setting; it
holds one run per method, fine-tuning seed and split seed. Paired differences pair two
methods' runs of a cell on (seed, split seed).
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np

from graphssl.bench.stats import PairedDifference, paired_difference
from graphssl.core.io import atomic_write_bytes
from graphssl.tasks.metrics import HIGHER_IS_BETTER

STD_NOTE = ("± is the sample standard deviation (ddof = 1) over the runs of a cell (fine-tuning seeds, "
            "times splits where a task runs several); n is the number of runs.")
VERDICT_NOTE = ("W/T/L: per pair, a win when the method beats {b} on that seed and split by more than the task's "
                "tie tolerance, a loss when it is worse by more, else a tie; in the last column, per cell, a win "
                "when the 95% interval excludes zero on the better side and the mean difference exceeds the "
                "tolerance, a loss in the mirror case, a tie otherwise. Tie tolerances: {t}.")

LABEL_EFFICIENCY_PNG = "label_efficiency.png"
LABEL_EFFICIENCY_NOTE = ("line: mean over the runs of a point (fine-tuning seeds, times splits where a task runs "
                         "several);\nband: ± their sample standard deviation (ddof = 1)")


class Cell(NamedTuple):
    """One task, split and label setting: ``labels`` is ``("fraction", f)`` or ``("count", n)``."""

    task: str
    split: str
    labels: tuple[str, float]


def cell_of(row: dict[str, Any]) -> Cell:
    count = row.get("label_count")
    labels = ("count", int(count)) if count is not None else ("fraction", float(row["label_fraction"]))
    return Cell(row["task"], str(row.get("split") or ""), labels)


def _pair_key(row: dict[str, Any]) -> tuple[int, int]:
    return int(row["seed"]), int(row.get("split_seed") or 0)


def labels_text(labels: tuple[str, float]) -> str:
    kind, value = labels
    return f"{int(value):,} labels" if kind == "count" else f"label fraction {value:g}"


def sample_std(values: np.ndarray) -> float:
    """Sample standard deviation (ddof = 1) of the finite values; NaN with fewer than two."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(np.std(values, ddof=1)) if values.size > 1 else float("nan")


def summarise(rows: list[dict[str, Any]]) -> dict[tuple[str, Cell], dict[str, Any]]:
    """(method, cell) -> mean and sample std (ddof = 1) of the test score, mean valid score, n."""
    groups: dict[tuple[str, Cell], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["method"], cell_of(row))].append(row)
    out = {}
    for key, items in groups.items():
        test = np.array([r["test"] for r in items], dtype=float)
        valid = np.array([r["valid"] for r in items], dtype=float)
        out[key] = {
            "test_mean": float(np.nanmean(test)) if np.isfinite(test).any() else float("nan"),
            "test_std": sample_std(test),
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


def _label_settings(cells: list[Cell]) -> list[tuple[str, float]]:
    """Fractions from the largest, then counts from the largest."""
    settings = _order([c.labels for c in cells])
    return sorted(settings, key=lambda s: (s[0] != "fraction", -s[1]))


def _columns(cells: list[Cell], labels: tuple[str, float]) -> list[Cell]:
    return [c for c in cells if c.labels == labels]


def _column_name(cell: Cell, show_split: bool, metrics: dict[str, str]) -> str:
    metric = metrics[cell.task]
    name = f"{cell.task} / {cell.split}" if show_split and cell.split else cell.task
    return f"{name} ({metric} {'↑' if HIGHER_IS_BETTER[metric] else '↓'})"


def _fmt(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "n/a"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """One table per label setting: methods as rows, (task, split) as columns, test mean ± sample
    std (ddof = 1) and the number of runs; the best mean per column is in bold."""
    stats = summarise(rows)
    methods = _order([r["method"] for r in rows])
    cells = _order([cell_of(r) for r in rows])
    settings = _label_settings(cells)
    show_split = len({c.split for c in cells}) > 1
    metrics = {r["task"]: r["metric"] for r in rows}
    lines: list[str] = []
    for labels in settings:
        columns = _columns(cells, labels)
        if len(settings) > 1:
            where = ("share of the training split with labels" if labels[0] == "fraction"
                     else "labelled items drawn from the training split, seeded by the run's seed")
            lines.append(f"\n**{labels_text(labels).capitalize()}** ({where})\n")
        head = ["method"] + [_column_name(c, show_split, metrics) for c in columns]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        best = {}
        for c in columns:
            means = [stats[(m, c)]["test_mean"] for m in methods if (m, c) in stats]
            means = [v for v in means if np.isfinite(v)]
            if means:
                best[c] = max(means) if HIGHER_IS_BETTER[metrics[c.task]] else min(means)
        for m in methods:
            cells_text = [m]
            for c in columns:
                s = stats.get((m, c))
                if s is None:
                    cells_text.append("n/a")
                    continue
                spread = f" ± {s['test_std']:.3f}" if math.isfinite(s["test_std"]) else ""
                text = f"{_fmt(s['test_mean'])}{spread} (n={s['n']})"
                cells_text.append(f"**{text}**" if best.get(c) == s["test_mean"] else text)
            lines.append("| " + " | ".join(cells_text) + " |")
    curve = label_efficiency_table(rows)
    if curve:
        lines += ["", curve]
    lines += ["", STD_NOTE]
    return "\n".join(lines)


def _differences(rows: list[dict[str, Any]], baseline: str, tolerances: dict[str, float] | None,
                 group: Callable[[dict[str, Any]], tuple], pair: Callable[[dict[str, Any]], tuple]
                 ) -> dict[tuple[str, tuple], PairedDifference]:
    """(method, group) -> the paired difference ``method - baseline`` of the test score over the
    runs of the group (``group(row)``, whose first item is the task) that both have with the same
    ``pair(row)``."""
    tolerances = tolerances or {}
    by_key = {(r["method"], group(r), pair(r)): r["test"] for r in rows}
    metrics = {r["task"]: r["metric"] for r in rows}
    out = {}
    for method in _order([r["method"] for r in rows]):
        if method == baseline:
            continue
        for g in _order([group(r) for r in rows]):
            pairs = sorted(p for (m, c, p) in by_key if (m, c) == (method, g) and (baseline, g, p) in by_key)
            if not pairs:
                continue
            out[(method, g)] = paired_difference(
                [by_key[(method, g, p)] for p in pairs], [by_key[(baseline, g, p)] for p in pairs],
                HIGHER_IS_BETTER[metrics[g[0]]], tolerance=float(tolerances.get(g[0], 0.0)))
    return out


def paired_differences(rows: list[dict[str, Any]], baseline: str = "scratch",
                       tolerances: dict[str, float] | None = None) -> dict[tuple[str, Cell], PairedDifference]:
    """(method, cell) -> the paired difference ``method - baseline`` of the test score over the
    runs both have on the same seed and split seed."""
    return _differences(rows, baseline, tolerances, cell_of, _pair_key)


def task_differences(rows: list[dict[str, Any]], baseline: str = "scratch",
                     tolerances: dict[str, float] | None = None
                     ) -> dict[tuple[str, str, tuple[str, float]], PairedDifference]:
    """(method, task, label setting) -> the paired difference ``method - baseline`` over the
    pairs of every split the task runs, taken together (a pair is still one seed on one split)."""
    diffs = _differences(rows, baseline, tolerances, lambda r: (r["task"], cell_of(r).labels),
                         lambda r: (cell_of(r).split, *_pair_key(r)))
    return {(method, task, labels): d for (method, (task, labels)), d in diffs.items()}


def _task_table(rows: list[dict[str, Any]], baseline: str, tolerances: dict[str, float], methods: list[str],
                cells: list[Cell], metrics: dict[str, str]) -> list[str]:
    """Lines of the per-task table (every split's pairs together), for tasks that run several splits."""
    several = [t for t in _order([c.task for c in cells]) if len({c.split for c in cells if c.task == t}) > 1]
    if not several:
        return []
    diffs = task_differences([r for r in rows if r["task"] in several], baseline, tolerances)
    columns = _order([(c.task, c.labels) for c in cells if c.task in several])
    labelled = len({lab for _, lab in columns}) > 1
    arrows = {t: "↑" if HIGHER_IS_BETTER[metrics[t]] else "↓" for t in several}
    head = ["method", *(f"{t}{' / ' + labels_text(lab) if labelled else ''} ({metrics[t]} {arrows[t]})"
                        for t, lab in columns), "tasks W/T/L"]
    lines = ["", "Per task, the pairs of all its splits together (each pair: one seed on one split):", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [_difference_row(m, [diffs.get((m, t, lab)) for t, lab in columns]) for m in methods]
    return lines


def _difference_row(method: str, diffs: list[PairedDifference | None]) -> str:
    """A Markdown row: each paired difference (bold when it is a win or a loss, n/a when there
    are no pairs) and the count of wins, ties and losses over them."""
    texts, verdicts = [method], []
    for d in diffs:
        if d is None or d.n == 0:
            texts.append("n/a")
            continue
        verdicts.append(d.verdict)
        texts.append(f"**{d}**" if d.verdict != "tie" else str(d))
    texts.append("/".join(str(verdicts.count(v)) for v in ("win", "tie", "loss")))
    return "| " + " | ".join(texts) + " |"


def paired_table(rows: list[dict[str, Any]], baseline: str = "scratch",
                 tolerances: dict[str, float] | None = None) -> str:
    """Each method against ``baseline`` on the same task, split, label setting, seed and split
    seed: the mean paired difference of the test score, its 95% confidence interval and the
    per-pair (wins/ties/losses), one table per label setting, with a last column counting the
    cells the method wins, ties and loses; "" without the baseline. Cells that are a win or a
    loss are in bold. ``tolerances``: task -> tie tolerance in the metric's units (default 0)."""
    methods = [m for m in _order([r["method"] for r in rows]) if m != baseline]
    if not methods or not any(r["method"] == baseline for r in rows):
        return ""
    tolerances = tolerances or {}
    diffs = paired_differences(rows, baseline, tolerances)
    cells = _order([cell_of(r) for r in rows])
    settings = _label_settings(cells)
    show_split = len({c.split for c in cells}) > 1
    metrics = {r["task"]: r["metric"] for r in rows}
    lines = [f"Paired difference against {baseline} (method - {baseline}, same seed and split), mean "
             "[95% CI] (wins/ties/losses over pairs):"]
    for labels in settings:
        columns = _columns(cells, labels)
        if len(settings) > 1:
            lines += ["", f"**{labels_text(labels).capitalize()}**"]
        head = ["method", *(_column_name(c, show_split, metrics) for c in columns), "cells W/T/L"]
        lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += [_difference_row(m, [diffs.get((m, c)) for c in columns]) for m in methods]
    lines += _task_table(rows, baseline, tolerances, methods, cells, metrics)
    tol_text = ", ".join(f"{t} {tolerances.get(t, 0.0):g}" for t in _order([c.task for c in cells]))
    lines += ["", VERDICT_NOTE.format(b=baseline, t=tol_text)]
    return "\n".join(lines)


def _title(cell: Cell, metric: str, several_splits: bool, several_labels: bool) -> str:
    parts = [cell.task]
    if several_splits and cell.split:
        parts.append(cell.split)
    if several_labels:
        parts.append(labels_text(cell.labels))
    arrow = "higher is better" if HIGHER_IS_BETTER[metric] else "lower is better"
    return f"{', '.join(parts)}\ntest {metric} ({arrow})"


def plot_results(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Mean ± sample std of the test score per (task, split) and method, with each run as a dot
    (lines over the label settings when a column has several). When a column has several label
    settings, ``label_efficiency.png`` is drawn next to ``path`` too (:func:`plot_label_efficiency`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = summarise(rows)
    methods = _order([r["method"] for r in rows])
    cells = _order([cell_of(r) for r in rows])
    columns = _order([(c.task, c.split) for c in cells])
    several_splits = len({c.split for c in cells}) > 1
    metrics = {r["task"]: r["metric"] for r in rows}
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.8), squeeze=False)
    for ax, (task, split) in zip(axes[0], columns):
        settings = _label_settings([c for c in cells if (c.task, c.split) == (task, split)])
        if len(settings) > 1:
            for m in methods:
                keys = [Cell(task, split, s) for s in settings if (m, Cell(task, split, s)) in stats]
                xs = [k.labels[1] for k in keys]
                mu = np.array([stats[(m, k)]["test_mean"] for k in keys])
                sd = np.array([stats[(m, k)]["test_std"] for k in keys])
                ax.errorbar(xs, mu, yerr=sd, marker="o", capsize=3, label=m)
            ax.set_xscale("log")
            ticks = sorted({s[1] for s in settings})
            ax.set_xticks(ticks, [f"{v:,g}" for v in ticks])
            ax.minorticks_off()
            counts = settings[0][0] == "count"
            ax.set_xlabel("labelled training items" if counts else "label fraction of the training split")
            ax.legend(fontsize=7)
        else:
            cell = Cell(task, split, settings[0])
            # Points with error bars rather than bars: the scores' range, not zero, matters.
            for i, m in enumerate(methods):
                s = stats.get((m, cell), {})
                ax.errorbar([i], [s.get("test_mean", np.nan)], yerr=[s.get("test_std", np.nan)], fmt="o",
                            capsize=5, color=f"C{i % 10}")
                runs = [r["test"] for r in rows if r["method"] == m and cell_of(r) == cell]
                ax.scatter([i + 0.12] * len(runs), runs, s=10, color=f"C{i % 10}", alpha=0.5)  # each run
            ax.set_xticks(range(len(methods)), methods, rotation=20)
            ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.set_title(_title(Cell(task, split, settings[0]), metrics[task], several_splits, False), fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("test score at the selected epoch (grid point): mean ± sample std (ddof = 1); small dots: "
                 "single runs", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.92))  # leave room for the title
    fig.savefig(path, dpi=120)
    plt.close(fig)
    plot_label_efficiency(rows, Path(path).with_name(LABEL_EFFICIENCY_PNG))
    return Path(path)


def plot_paired(rows: list[dict[str, Any]], path: str | Path, baseline: str = "scratch",
                tolerances: dict[str, float] | None = None) -> Path | None:
    """Paired differences ``method - baseline`` per cell (one panel each): every pair as a dot,
    the mean with its 95% confidence interval as a bar, zero as a line. None (nothing written)
    without the baseline or another method."""
    diffs = paired_differences(rows, baseline, tolerances)
    if not diffs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [c for c in _order([cell_of(r) for r in rows]) if any(k[1] == c for k in diffs)]
    methods = [m for m in _order([r["method"] for r in rows]) if any(k[0] == m for k in diffs)]
    metrics = {r["task"]: r["metric"] for r in rows}
    several_splits = len({c.split for c in cells}) > 1
    several_labels = len({c.labels for c in cells}) > 1
    by_key = {(r["method"], cell_of(r), _pair_key(r)): r["test"] for r in rows}
    ncols = min(4, len(cells))
    nrows = math.ceil(len(cells) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.6 * nrows), squeeze=False)
    rng = np.random.default_rng(0)  # jitter only, so the dots of one method do not overlap
    for ax, cell in zip(axes.flat, cells):
        for i, m in enumerate(methods):
            d = diffs.get((m, cell))
            if d is None:
                continue
            pairs = [p for (mm, c, p) in by_key if (mm, c) == (m, cell) and (baseline, cell, p) in by_key]
            values = np.array([by_key[(m, cell, p)] - by_key[(baseline, cell, p)] for p in pairs], dtype=float)
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=9, alpha=0.45, color=f"C{i % 10}")
            if d.n:
                low = d.mean - d.low if math.isfinite(d.low) else 0.0
                high = d.high - d.mean if math.isfinite(d.high) else 0.0
                ax.errorbar([i + 0.3], [d.mean], yerr=[[low], [high]], fmt="D", color="black", capsize=5,
                            markersize=5)
        ax.axhline(0.0, color="grey", linewidth=1)
        ax.set_xticks(range(len(methods)), methods, rotation=20, fontsize=8)
        ax.set_xlim(-0.6, len(methods) - 0.2)
        ax.set_title(_title(cell, metrics[cell.task], several_splits, several_labels), fontsize=9)
        ax.set_ylabel(f"{metrics[cell.task]}: method - {baseline}", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(cells):]:
        ax.set_visible(False)
    fig.suptitle(f"paired test-score differences against {baseline} (same seed and split): dots are pairs, "
                 "black diamonds the mean with its 95% CI", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _curve_columns(rows: list[dict[str, Any]]) -> list[tuple[str, str, list[tuple[str, float]]]]:
    """(task, split, label settings from the fewest labels up) of every column with several settings."""
    cells = _order([cell_of(r) for r in rows])
    out = []
    for task, split in _order([(c.task, c.split) for c in cells]):
        settings = sorted({c.labels for c in cells if (c.task, c.split) == (task, split)}, key=lambda s: (s[0], s[1]))
        if len(settings) > 1 and len({kind for kind, _ in settings}) == 1:
            out.append((task, split, settings))
    return out


def _axis_name(kind: str) -> str:
    return "labelled training items" if kind == "count" else "share of the training labels used"


def label_efficiency_table(rows: list[dict[str, Any]]) -> str:
    """Per (task, split) with several label settings, one table: methods as rows, label settings
    (fewest labels first, with the number of labelled training items) as columns, test mean ±
    sample std (ddof = 1); "" when no column has several settings."""
    columns = _curve_columns(rows)
    if not columns:
        return ""
    stats = summarise(rows)
    methods = _order([r["method"] for r in rows])
    metrics = {r["task"]: r["metric"] for r in rows}
    show_split = len({split for _, split, _ in columns}) > 1
    lines = [f"Label efficiency: test score against the {_axis_name(columns[0][2][0][0])}, mean ± sample std "
             f"(ddof = 1); the curves are in `{LABEL_EFFICIENCY_PNG}`.", "", f"![label efficiency]({LABEL_EFFICIENCY_PNG})"]
    for task, split, settings in columns:
        metric = metrics[task]
        name = f"{task} / {split}" if show_split and split else task
        lines += ["", f"**{name}** ({metric} {'↑' if HIGHER_IS_BETTER[metric] else '↓'})", ""]
        head = ["method"]
        for labels in settings:
            sizes = [r["train_size"] for r in rows if cell_of(r) == Cell(task, split, labels) and r.get("train_size")]
            size = f" ({int(np.median(sizes)):,} labels)" if sizes and labels[0] == "fraction" else ""
            head.append(f"{labels[1]:,g}{size}")
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for m in methods:
            texts = [m]
            for labels in settings:
                st = stats.get((m, Cell(task, split, labels)))
                if st is None:
                    texts.append("n/a")
                    continue
                spread = f" ± {st['test_std']:.3f}" if math.isfinite(st["test_std"]) else ""
                texts.append(f"{_fmt(st['test_mean'])}{spread}")
            lines.append("| " + " | ".join(texts) + " |")
    return "\n".join(lines)


def label_efficiency_figure(rows: list[dict[str, Any]]) -> Any | None:
    """One panel per (task, split) with several label settings: the test score against the label
    fraction (or count), log x axis, one line per method (the mean over its runs) with a band of
    ± the sample std (ddof = 1). None when no column has several label settings."""
    columns = _curve_columns(rows)
    if not columns:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    stats = summarise(rows)
    methods = _order([r["method"] for r in rows])
    metrics = {r["task"]: r["metric"] for r in rows}
    show_split = len({split for _, split, _ in columns}) > 1
    fig = Figure(figsize=(max(6.4, 4.6 * len(columns)), 4.4))
    FigureCanvasAgg(fig)
    for i, (task, split, settings) in enumerate(columns):
        ax = fig.add_subplot(1, len(columns), i + 1)
        for k, m in enumerate(methods):
            points = [(labels[1], stats[(m, Cell(task, split, labels))]) for labels in settings
                      if (m, Cell(task, split, labels)) in stats]
            if not points:
                continue
            xs = np.array([x for x, _ in points], dtype=float)
            mean = np.array([st["test_mean"] for _, st in points])
            std = np.array([st["test_std"] for _, st in points])
            color = f"C{k % 10}"
            ax.plot(xs, mean, marker="o", color=color, label=m)
            spread = np.isfinite(std)  # a point with a single run has no spread, and no band
            if spread.any():
                ax.fill_between(xs[spread], (mean - std)[spread], (mean + std)[spread], color=color, alpha=0.18,
                                linewidth=0)
        ax.set_xscale("log")
        ticks = [labels[1] for labels in settings]
        ax.set_xticks(ticks, [f"{v:,g}" for v in ticks])
        ax.minorticks_off()
        ax.set_xlabel(_axis_name(settings[0][0]) + " (log scale)")
        metric = metrics[task]
        ax.set_ylabel(f"test {metric} ({'higher' if HIGHER_IS_BETTER[metric] else 'lower'} is better)")
        ax.set_title(f"{task} / {split}" if show_split and split else task, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("label efficiency: test score at the selected epoch (grid point)\n" + LABEL_EFFICIENCY_NOTE,
                 fontsize=8.5)
    fig.tight_layout()  # makes room for the title too
    return fig


def plot_label_efficiency(rows: list[dict[str, Any]], path: str | Path) -> Path | None:
    """Write :func:`label_efficiency_figure` to ``path`` (atomically); None, nothing written,
    when no column has several label settings."""
    fig = label_efficiency_figure(rows)
    if fig is None:
        return None
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    return atomic_write_bytes(buffer.getvalue(), path)
