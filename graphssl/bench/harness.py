"""Run a benchmark from one config: methods x tasks x splits x label settings x seeds.

Each pretraining method is pretrained once; every (task, split, label setting, seed) is then
fine-tuned from each method's encoder and from scratch with the same backbone, budget, split
and seed, and the classical baselines (``ecfp-rf``, ``rdkit-rf``) are fitted on the same split
and label subset with the same seed. Scores are test scores at the best validation epoch (grid
point, for the baselines).

A task in ``benchmark.tasks`` is a data set name or a mapping of ``data:`` options plus these
harness options:

- ``label``: its name in the tables (default: the data set's name, with the selected
  ``label_columns`` of a registered data set appended, e.g. ``qm9:gap``);
- ``splits``: the splits to run, each a split name (seed ``finetune.split_seed``) or a mapping
  ``{name: balanced_scaffold, seeds: [0, 1, 2]}``; ``seeds: finetune`` gives each fine-tuning
  seed its own split (split seed = fine-tuning seed). Default: ``finetune.split`` alone;
- ``label_counts``: numbers of labelled training items (drawn from the training split with the
  run's seed, as ``label_fraction`` is) to run instead of ``benchmark.label_fractions``;
- ``tie_tolerance``: the difference, in the metric's units, within which a paired comparison
  counts as a tie (default 0: only equal scores tie);
- ``eval_count``: score at most this many validation and this many test items, drawn once per
  split (with the split's seed) from its validation and test parts, so every method and seed on
  that split scores the same items (a large set's evaluation then costs what its training does).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from graphssl import zoo
from graphssl.bench import baselines
from graphssl.bench.report import markdown_table, paired_table, plot_paired, plot_results
from graphssl.core.config import (
    BENCHMARK_TASK_OPTIONS,
    DataConfig,
    FinetuneConfig,
    ObjectiveConfig,
    RunConfig,
    benchmark_task_data,
    check_int,
    same_settings,
    save_config,
)
from graphssl.core.errors import ConfigError
from graphssl.data.dataset import domain_of, load_dataset
from graphssl.data.splits import SPLITS, Split, make_split, subsample_fraction
from graphssl.engine.finetune import SELECTION_RULE, finetune
from graphssl.engine.pretrain import pretrain
from graphssl.engine.pretrained import load_pretrained
from graphssl.engine.runtime import library_versions, machine_description, prepare_cache, set_threads
from graphssl.objectives.registry import OBJECTIVES

BASELINE = "scratch"  # what paired differences are taken against
ENCODER_PREFIX = "encoder:"  # a method fine-tuning the encoder.pt of an earlier pretraining run


@dataclasses.dataclass
class Method:
    label: str
    objective: str | None  # None: trained from scratch (or a classical baseline)
    options: dict[str, Any]
    baseline: str | None = None  # "ecfp-rf" / "rdkit-rf": a random forest instead of a network
    checkpoint: str | None = None  # "zoo:NAME" or an encoder.pt path: fine-tuned from it, nothing pretrained here


@dataclasses.dataclass
class SplitSpec:
    name: str
    seeds: list[int] | None  # None: the fine-tuning seed is the split seed


@dataclasses.dataclass
class TaskSpec:
    label: str | None  # None: the data set's name, known once it is loaded (files)
    data: DataConfig
    splits: list[SplitSpec]
    label_counts: list[int] | None = None
    tie_tolerance: float = 0.0
    eval_count: int | None = None


def parse_methods(specs: list[Any]) -> list[Method]:
    """Methods are names (``graphmae``) or mappings (``{name: graphmae, label: g50, mask_rate: 0.5}``)."""
    methods = []
    for i, spec in enumerate(specs):
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError(f"benchmark.methods entries must be names or mappings with 'name', got {spec!r}")
        spec = dict(spec)
        given = str(spec.pop("name"))
        name = given.lower()
        label = str(spec.pop("label", name))
        if name == "scratch":
            if spec:
                raise ConfigError(f"method 'scratch' takes no options, got {sorted(spec)}")
            methods.append(Method(label, None, {}))
        elif name in baselines.BASELINES:
            methods.append(Method(label, None, baselines.check_options(name, spec, f"benchmark.methods[{i}]"),
                                  baseline=name))
        elif name.startswith(ENCODER_PREFIX):
            if spec:
                raise ConfigError(f"method '{name}' (a pretrained encoder) takes no options besides 'label', got "
                                  f"{sorted(spec)}")
            path = Path(given[len(ENCODER_PREFIX):]).expanduser()
            if not path.is_file():
                raise ConfigError(f"benchmark.methods[{i}]: encoder file '{path}' does not exist (the encoder.pt "
                                  "of a `graphssl pretrain` run; paths are relative to the working folder)")
            if "label" not in (specs[i] if isinstance(specs[i], dict) else {}):
                label = path.parent.name or path.stem  # the run folder names the encoder
            methods.append(Method(label, None, {}, checkpoint=str(path)))
        elif zoo.is_zoo_name(name):
            if spec:
                raise ConfigError(f"method '{name}' (a zoo entry) takes no options besides 'label', got {sorted(spec)}")
            zoo.card(name)  # an unknown entry fails here, before any work
            methods.append(Method(label, None, {}, checkpoint=name))
        elif name in OBJECTIVES:
            methods.append(Method(label, name, spec))
        else:
            raise ConfigError(f"unknown method '{name}'. Choose scratch, {', '.join(baselines.BASELINES)}, zoo:NAME, "
                              f"encoder:PATH "
                              f"(`graphssl zoo list`) or one of: {', '.join(sorted(OBJECTIVES))}")
    labels = [m.label for m in methods]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"benchmark method labels must be unique, got {labels}; add 'label:' to tell them apart")
    return methods


def _int_list(value: Any, where: str, minimum: int) -> list[int]:
    values = value if isinstance(value, list) else [value]
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in values):
        raise ConfigError(f"option '{where}' must be a non-empty list of integers >= {minimum}, got {value!r}")
    if len(set(values)) != len(values):
        raise ConfigError(f"option '{where}' lists a value twice: {value!r}")
    return list(values)


def _parse_split(spec: Any, where: str, default_seed: int) -> SplitSpec:
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or "name" not in spec:
        raise ConfigError(f"'{where}' must be a split name or a mapping with 'name' (and 'seeds'), got {spec!r}")
    unknown = sorted(set(spec) - {"name", "seeds"})
    if unknown:
        raise ConfigError(f"'{where}' has unknown option(s) {unknown}; a split takes 'name' and 'seeds'")
    name = str(spec["name"])
    try:
        SPLITS.get(name)
    except ConfigError as exc:  # name the option, keep the registry's close matches
        raise ConfigError(f"option '{where}.name': {exc}") from None
    seeds = spec.get("seeds", [default_seed])
    if seeds == "finetune":
        return SplitSpec(name, None)
    return SplitSpec(name, _int_list(seeds, f"{where}.seeds", 0))


def _default_label(data: DataConfig) -> str | None:
    if not data.name:
        return None
    return f"{data.name}:{'+'.join(data.label_columns)}" if data.label_columns else data.name


def parse_tasks(specs: list[Any], finetune_config: Any) -> list[TaskSpec]:
    """The tasks of ``benchmark.tasks``: ``data:`` options plus the harness options of the
    module docstring (``label``, ``splits``, ``label_counts``, ``tie_tolerance``)."""
    tasks = []
    for i, spec in enumerate(specs):
        where = f"benchmark.tasks[{i}]"
        options = {k: spec[k] for k in BENCHMARK_TASK_OPTIONS if k in spec} if isinstance(spec, dict) else {}
        data = benchmark_task_data(spec, where)  # a name, a mapping or a DataConfig; anything else fails
        label, split_specs = options.get("label"), options.get("splits")
        counts, tolerance = options.get("label_counts"), options.get("tie_tolerance", 0.0)
        eval_count = options.get("eval_count")
        check_int(eval_count, f"{where}.eval_count", empty="every item")
        if split_specs is None:
            splits = [SplitSpec(finetune_config.split, [finetune_config.split_seed])]
        else:
            if not isinstance(split_specs, list) or not split_specs:
                raise ConfigError(f"option '{where}.splits' must be a non-empty list, got {split_specs!r}")
            splits = [_parse_split(s, f"{where}.splits[{k}]", finetune_config.split_seed)
                      for k, s in enumerate(split_specs)]
            names = [s.name for s in splits]
            if len(set(names)) != len(names):
                raise ConfigError(f"option '{where}.splits' names a split twice: {names}; list its seeds instead")
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not (0 <= tolerance < float("inf")):
            raise ConfigError(f"option '{where}.tie_tolerance' must be a number >= 0, got {tolerance!r}")
        tasks.append(TaskSpec(str(label) if label is not None else _default_label(data), data, splits,
                              None if counts is None else _int_list(counts, f"{where}.label_counts", 1),
                              float(tolerance), eval_count))
    _check_unique([t.label for t in tasks if t.label is not None])
    return tasks


def _check_unique(labels: list[str]) -> None:
    if len(set(labels)) != len(labels):
        raise ConfigError(f"benchmark task labels must be unique, got {labels}; add 'label:' to tell them apart")


_SAME_ARCHITECTURE = ("backbone", "hidden", "num_layers", "norm", "jk", "options")


def _check_zoo_methods(methods: list[Method], model: Any) -> None:
    """A zoo entry or an encoder file is compared with scratch on its own architecture, or not at all."""
    for method in (m for m in methods if m.checkpoint):
        entry = _checkpoint_model(method.checkpoint)
        differ = [k for k in _SAME_ARCHITECTURE if entry.get(k) != getattr(model, k)]
        if differ:
            want = ", ".join(f"model.{k}={entry.get(k)!r}" for k in differ)
            raise ConfigError(f"method '{method.label}' fine-tunes {method.checkpoint}, whose encoder differs from "
                              f"model: in {', '.join(differ)}; set {want} so that scratch trains the same backbone")


def _checkpoint_model(checkpoint: str) -> dict[str, Any]:
    """The model config a method's checkpoint (zoo entry or encoder.pt) was pretrained with."""
    if zoo.is_zoo_name(checkpoint):
        return zoo.card(checkpoint)["model"]
    return dataclasses.asdict(load_pretrained(checkpoint).model)


def _check_baseline_tasks(methods: list[Method], tasks: list[TaskSpec]) -> None:
    """Fail before any pretraining when a baseline is asked on a task without molecules."""
    for method in (m for m in methods if m.baseline):
        for task in tasks:
            domain = domain_of(task.data)
            if domain != "molecule":
                raise ConfigError(f"method '{method.label}' ({method.baseline}) works on molecules only; task "
                                  f"'{task.label or task.data.path}' is {domain} data: remove the method or the task from benchmark")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text)


def _write(out: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    (out / "results.json").write_text(json.dumps({"meta": meta, "runs": rows}, indent=1))


def _recipe_text(ft: FinetuneConfig) -> str:
    """The fine-tuning recipe of a report: the budget, and each option that changes how the encoder and
    head are trained (learning rates, decay, freezing, early stopping, auxiliary losses, head, readout)
    when it is not its default."""
    parts = [f"{ft.epochs} epochs, batch {ft.batch_size}, Adam lr {ft.lr}"]
    if ft.encoder_lr is not None:
        parts.append(f"encoder lr {ft.encoder_lr}")
    if ft.layer_decay is not None:
        parts.append(f"layer-wise decay {ft.layer_decay}")
    if ft.weight_decay:
        parts.append(f"weight decay {ft.weight_decay}")
    parts.append(f"dropout {ft.dropout}")
    if ft.freeze_layers:
        staged = f", one more unfrozen every {ft.unfreeze_every} epochs" if ft.unfreeze_every else ""
        parts.append(f"first {ft.freeze_layers} encoder layers frozen{staged}")
    if ft.patience is not None:
        parts.append(f"early stopping after {ft.patience} epochs without improvement")
    if ft.noisy_nodes_weight > 0:
        parts.append(f"noisy-nodes loss (weight {ft.noisy_nodes_weight}, sigma {ft.noisy_nodes_sigma} A)")
    if not ft.reestimate_batch_norm:
        parts.append("batch-norm statistics kept from pretraining")
    if ft.head_hidden:
        parts.append(f"MLP head of width {ft.head_hidden}")
    if ft.pooling:
        parts.append(f"{ft.pooling} readout")
    mode = f"lp-ft ({ft.probe_epochs} epochs of linear probing first)" if ft.mode == "lp-ft" else ft.mode
    return ", ".join(parts) + f", {mode} fine-tuning"


def _split_text(task: TaskSpec) -> str:
    parts = []
    for s in task.splits:
        word = "test fold" if s.name == "matbench" else "split seed"  # matbench's split seed picks the fold
        seeds = f"{word} = fine-tuning seed" if s.seeds is None else (
            f"{word} {s.seeds[0]}" if len(s.seeds) == 1 else f"{word}s {s.seeds}")
        parts.append(f"{s.name} ({seeds}{' of 5' if s.name == 'matbench' else ''})")
    labels = (f"; {', '.join(f'{c:,}' for c in task.label_counts)} labelled training items"
              if task.label_counts else "")
    if task.eval_count:
        labels += f"; {task.eval_count:,} validation and {task.eval_count:,} test items drawn per split"
    return f"`{task.label}`: " + ", ".join(parts) + labels


def _markdown(rows: list[dict[str, Any]], meta: dict[str, Any], config: RunConfig, tasks: list[TaskSpec],
              methods: list[Method]) -> str:
    ft, model = config.finetune, config.model
    pre = meta["pretraining"]
    tolerances = {t.label: t.tie_tolerance for t in tasks}
    paired = paired_table(rows, BASELINE, tolerances)
    lines = [
        f"# Benchmark results ({config.benchmark.tier} tier)",
        "",
        f"Scores: {SELECTION_RULE} (for the random forests: at the grid point with the best validation score); "
        f"mean ± sample standard deviation (ddof = 1) over fine-tuning seeds {config.benchmark.seeds} and, where a "
        "task runs several, splits.",
        "",
        markdown_table(rows),
        "",
        *([paired, ""] if paired else []),
        *(["Plot of the paired differences: `paired.png`.", ""] if meta.get("paired_plot") else []),
    ]
    if any(m.baseline is None for m in methods):
        lines += [
            f"- Backbone: {model.backbone}, {model.num_layers} layers, hidden {model.hidden}, {model.pooling} pooling "
            "(identical for every network).",
            f"- Fine-tuning: {_recipe_text(ft)}.",
        ]
    lines.append(f"- Splits (fractions {ft.split_fractions}): " + "; ".join(_split_text(t) for t in tasks) + ".")
    for method in methods:
        if method.baseline:
            lines.append(f"- `{method.label}`: {baselines.describe(method.baseline, method.options)}; same splits, "
                         "label subsets and seeds as the networks (the seed seeds the forest).")
    for label, info in meta.get("zoo", {}).items():
        lines.append(f"- `{label}`: zoo entry `{info['entry']}` ({info['objective']} on {info['data'].get('name')}, "
                     f"{info['data'].get('records')} records, {info['graph_passes']:,} graph passes, "
                     f"{info['wall_time_s'] / 3600:.1f} h of pretraining; card: `graphssl zoo show {info['entry']}`), "
                     "nothing pretrained in this run.")
    for label, info in pre.items():
        lines.append(
            f"- Pretraining `{label}`: {info['objective']} {info['options'] or ''} on {info['data']} "
            f"({info['graphs']} graphs), {info['epochs']} epochs, {info['seconds']:.0f} s, "
            f"{info['graphs_per_s']:.0f} graphs/s, final loss {info['final_loss']:.4f}."
        )
    for name, report in meta["data_reports"].items():
        lines.append(f"- Data `{name}`: read {report['read']}, kept {report['kept']}, skipped {report['skipped']}.")
    for task, info in meta.get("features", {}).items():
        for method, f in info.items():
            when = f"in {f['seconds']:.1f} s" if f["seconds"] else "(reused from an earlier task or the cache)"
            # files written before features were computed per split lack "computed": all rows were
            used = f"{f.get('computed', f['molecules']):,} of {f['molecules']:,} molecules (those the splits use)"
            lines.append(f"- Features of `{method}` for `{task}`: {used} x {f['columns']:,} "
                         f"columns {when}, {f['missing']:,} missing values.")
    seconds: dict[str, list[float]] = {}
    for r in rows:
        seconds.setdefault(f"{r['method']} on {r['task']}", []).append(r["seconds"])
    if any(m.baseline for m in methods):
        lines.append("- Wall time per run, mean over runs (networks: fine-tuning; forests: fitting every grid point, "
                     "selecting and scoring, features not included): " + ", ".join(
            f"{k} {np.mean(v):.1f} s" for k, v in seconds.items()) + ".")
    lines += [
        f"- Command: `{meta['command']}`",
        f"- Machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores, {meta['machine']['memory']}, "
        f"torch threads {meta['machine']['torch_threads']}, CUDA {meta['machine']['cuda']}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- Wall time: {meta['wall_seconds'] / 60:.1f} min" + (
            f" in this invocation, which kept {meta['kept_runs']} runs of earlier ones (their wall time: "
            f"{meta['earlier_wall_seconds'] / 60:.1f} min)" if meta.get("kept_runs") else ""),
    ]
    return "\n".join(lines) + "\n"


def cap_evaluation(split: Split, count: int | None, seed: int) -> Split:
    """``split`` with at most ``count`` validation and ``count`` test items, drawn with ``seed``
    (kept in their order); the training part is untouched."""
    if count is None:
        return split
    rng = np.random.default_rng([seed, 0x5EA1])  # its own stream: label subsets draw from the run's seed

    def cap(part: np.ndarray) -> np.ndarray:
        return part if len(part) <= count else np.sort(rng.choice(part, size=count, replace=False))

    return dataclasses.replace(split, valid=cap(split.valid), test=cap(split.test))


def _label_settings(task: TaskSpec, fractions: list[float]) -> list[tuple[str, float]]:
    if task.label_counts:
        return [("count", c) for c in task.label_counts]
    return [("fraction", f) for f in fractions]


def _fraction_for(task: TaskSpec, setting: tuple[str, float], split: Split, split_name: str) -> float:
    """The label fraction that draws ``setting``'s labelled items from the training split:
    ``round((count / n) * n)`` is ``count``, so a count is drawn exactly."""
    kind, value = setting
    if kind == "fraction":
        return float(value)
    n = len(split.train)
    if value > n:
        raise ConfigError(f"task '{task.label}': label_counts asks for {int(value):,} labelled items but the "
                          f"{split_name} split has {n:,} training items")
    return value / n


def _run_baseline(method: Method, dataset: Any, split: Split, fraction: float, seed: int, config: RunConfig,
                  meta: dict[str, Any], task_label: str) -> baselines.BaselineResult:
    threads = config.threads
    # threads unset: every core, as torch and the forests (n_jobs=-1) then use
    processes = threads or os.cpu_count() or 1
    # the same label subset as the fine-tuning loop draws for this seed
    train = subsample_fraction(split.train, fraction, seed=seed)
    rows = np.concatenate([np.asarray(i, dtype=np.int64) for i in (train, split.valid, split.test)])
    matrix, seconds = baselines.features(method.baseline, method.options, dataset.smiles, rows=rows,
                                         processes=processes, cache_dir=config.cache_dir)
    info = meta["features"].setdefault(task_label, {})
    previous = info.get(method.label, {})
    info[method.label] = {"molecules": int(matrix.shape[0]), "columns": int(matrix.shape[1]),
                          "seconds": previous.get("seconds", 0.0) + seconds,
                          **baselines.feature_summary(method.baseline)}
    labels = dataset.labels.numpy() if hasattr(dataset.labels, "numpy") else np.asarray(dataset.labels)
    return baselines.fit_forests(matrix, labels, train, split.valid, split.test, dataset.task_type, dataset.metric,
                                 method.options, seed=seed, n_jobs=threads if threads is not None else -1)


def run_benchmark(config: RunConfig, command: str | None = None, announce: bool = True) -> Path:
    """Run the benchmark in ``config.benchmark``; write results.json, results.md, results.png,
    (with scratch and another method) paired.png and (with several label settings)
    label_efficiency.png into ``config.output_dir``; return that folder. ``announce``: print
    where the files went (off when a caller moves them elsewhere)."""
    t0 = time.perf_counter()
    set_threads(config.threads)
    bench = config.benchmark
    methods = parse_methods(bench.methods)
    tasks = parse_tasks(bench.tasks, config.finetune)
    if not tasks:
        raise ConfigError("benchmark.tasks is empty: list at least one labelled data set")
    if not bench.seeds:
        raise ConfigError("benchmark.seeds is empty")
    _check_baseline_tasks(methods, tasks)
    _check_zoo_methods(methods, config.model)
    if any(m.objective == "descriptors" for m in methods) and not config.data.descriptors:
        raise ConfigError("method 'descriptors' regresses descriptors of the pretraining molecules: set "
                          "data.descriptors (fast or all) so that they are computed with the graphs")
    cache = prepare_cache(config)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    meta: dict[str, Any] = {
        "command": command or " ".join(shlex.quote(a) for a in sys.argv),
        "machine": machine_description(),
        "versions": library_versions(),
        "selection": SELECTION_RULE,
        "pretraining": {},
        "zoo": {},
        "data_reports": {},
        "features": {},
        "wall_seconds": 0.0,
    }

    checkpoints: dict[str, Path | None] = {}
    pretrain_set = None
    for method in methods:
        if method.checkpoint and zoo.is_zoo_name(method.checkpoint):
            card = zoo.card(method.checkpoint)
            budget = card.get("pretrain", {})
            meta["zoo"][method.label] = {"entry": card["name"], "objective": card["objective"]["name"],
                                         "data": card.get("data", {}), "graph_passes": budget.get("graph_passes"),
                                         "wall_time_s": budget.get("wall_time_s"), "sha256": card["weights"]["sha256"]}
        elif method.checkpoint:
            meta.setdefault("encoders", {})[method.label] = {
                "path": method.checkpoint, "objective": load_pretrained(method.checkpoint).objective}
        if method.objective is None:
            checkpoints[method.label] = method.checkpoint
            continue
        if pretrain_set is None:
            pretrain_set = load_dataset(config.data, cache, progress=config.progress)
            # keyed by role too: a corpus and a task may share a name (matbench-dielectric) yet differ
            meta["data_reports"][f"{pretrain_set.name} (pretraining)"] = _report(pretrain_set)
        cfg = dataclasses.replace(config, output_dir=str(out / "pretrain" / method.label),
                                  objective=ObjectiveConfig(method.objective, dict(method.options)))
        print(f"== pretraining {method.label} ({method.objective}) on {pretrain_set.name}, {len(pretrain_set)} graphs")
        start = time.perf_counter()
        checkpoints[method.label] = pretrain(cfg, dataset=pretrain_set)
        history = json.loads((out / "pretrain" / method.label / "pretrain_history.json").read_text())
        seconds = time.perf_counter() - start
        meta["pretraining"][method.label] = {
            "objective": method.objective, "options": method.options, "data": pretrain_set.name,
            "graphs": len(pretrain_set), "epochs": len(history), "seconds": seconds,
            "graphs_per_s": sum(h["graphs_per_s"] * h["seconds"] for h in history) / max(sum(h["seconds"] for h in history), 1e-9),
            "final_loss": history[-1]["loss"] if history else float("nan"),
        }

    meta["settings"] = _settings(config)
    meta["methods"] = {m.label: _method_key(m, meta) for m in methods}
    earlier = _earlier_runs(out, meta) if bench.resume else {}
    if bench.resume:
        print(f"resuming: {len(earlier)} runs of {out / 'results.json'} are kept")
    rows: list[dict[str, Any]] = []
    # earlier rows this invocation has not reached yet: written with every progress save, so an
    # interrupted resume loses none of them
    pending = dict(earlier)
    for task in tasks:
        dataset = load_dataset(task.data, cache, progress=config.progress)
        meta["data_reports"][f"{dataset.name} (task)"] = _report(dataset)
        if task.label is None:
            task.label = dataset.name
            _check_unique([t.label for t in tasks if t.label is not None])
        for split_spec in task.splits:
            # (split seed, fine-tuning seeds run on that split)
            plan = ([(s, [s]) for s in bench.seeds] if split_spec.seeds is None
                    else [(s, list(bench.seeds)) for s in split_spec.seeds])
            for split_seed, seeds in plan:
                split_cfg = dataclasses.replace(config.finetune, task=task.data, split=split_spec.name,
                                                split_seed=split_seed)
                split = cap_evaluation(make_split(dataset, split_cfg), task.eval_count, split_seed)
                for setting in _label_settings(task, bench.label_fractions):
                    fraction = _fraction_for(task, setting, split, split_spec.name)
                    count = int(setting[1]) if setting[0] == "count" else None
                    setting_dir = _setting_name(count, fraction)
                    for seed in seeds:
                        for method in methods:
                            key = _row_key((method.label, task.label, split_spec.name, split_seed, setting_dir,
                                            seed))
                            if key in earlier:
                                rows.append(pending.pop(key))
                                meta["kept_runs"] = meta.get("kept_runs", 0) + 1
                                continue
                            row = _run_one(config, method, checkpoints, task, dataset, split, split_cfg, fraction,
                                           seed, meta, out / "finetune" / _slug(task.label)
                                           / f"{_slug(split_spec.name)}-{split_seed}" / setting_dir / f"seed{seed}"
                                           / _slug(method.label))
                            row.update({"split": split_spec.name, "split_seed": split_seed, "label_count": count})
                            rows.append(row)
                            print(f"{task.label} {split_spec.name}-{split_seed} "
                                  f"{setting_dir} seed={seed} {method.label}: valid {row['valid']:.4f} "
                                  f"test {row['test']:.4f} ({row['seconds']:.1f} s)")
                            meta["wall_seconds"] = time.perf_counter() - t0
                            _write(out, rows + list(pending.values()), meta)

    meta["wall_seconds"] = time.perf_counter() - t0
    tolerances = {t.label: t.tie_tolerance for t in tasks}
    meta["tie_tolerances"] = tolerances
    plot_results(rows, out / "results.png")
    meta["paired_plot"] = plot_paired(rows, out / "paired.png", BASELINE, tolerances) is not None
    _write(out, rows, meta)
    text = _markdown(rows, meta, config, tasks, methods)
    (out / "results.md").write_text(text)
    print()
    print(text)
    if announce:
        names = ["results.md", "results.json", "results.png", "paired.png", "label_efficiency.png"]
        written = [n for n in names if (out / n).is_file()]
        print(f"results written to {out}/: {', '.join(written[:-1])} and {written[-1]}")
    return out


def _run_one(config: RunConfig, method: Method, checkpoints: dict[str, Path | None], task: TaskSpec, dataset: Any,
             split: Split, split_cfg: Any, fraction: float, seed: int, meta: dict[str, Any],
             run_dir: Path) -> dict[str, Any]:
    """One run (fine-tuning or a baseline fit) as a row of results.json."""
    if method.baseline:
        result = _run_baseline(method, dataset, split, fraction, seed, config, meta, task.label)
        return {"method": method.label, "task": task.label, "label_fraction": fraction, "seed": seed,
                "metric": result.metric, "valid": result.valid, "test": result.test, "best_epoch": None,
                "selected": result.selected, "train_size": result.train_size, "seconds": result.seconds}
    ft = dataclasses.replace(split_cfg, seed=seed, label_fraction=fraction, save_checkpoints=False)
    if getattr(ft, "pretrained", None) is not None:
        # each method's encoder is passed explicitly; finetune.pretrained must not turn scratch into it
        ft = dataclasses.replace(ft, pretrained=None)
    cfg = dataclasses.replace(config, finetune=ft, output_dir=str(run_dir))
    result = finetune(cfg, checkpoint=checkpoints[method.label], dataset=dataset, split=split)
    return {"method": method.label, "task": task.label, "label_fraction": fraction, "seed": seed,
            "metric": result.metric, "valid": result.valid, "test": result.test,
            "best_epoch": result.best_epoch, "train_size": result.train_size, "seconds": result.seconds,
            # secondary scores some tasks report (e.g. face accuracy next to mIoU)
            **{k: v for k, v in result.to_dict().items() if k.startswith(("valid_", "test_")) and isinstance(v, float)}}


def _settings(config: RunConfig) -> dict[str, Any]:
    """What every run of a benchmark depends on beyond its own method, task, split and seed."""
    return json.loads(json.dumps({"model": dataclasses.asdict(config.model),
                                  "finetune": dataclasses.asdict(config.finetune),
                                  "tasks": config.benchmark.tasks, "seed": config.seed}, default=str))


def _method_key(method: Method, meta: dict[str, Any]) -> dict[str, Any] | None:
    """What identifies a method's runs across invocations; None for methods pretrained here,
    whose encoders are new on every invocation."""
    if method.objective is not None:
        return None
    key: dict[str, Any] = {"baseline": method.baseline, "options": method.options, "checkpoint": method.checkpoint}
    if method.label in meta["zoo"]:
        key["sha256"] = meta["zoo"][method.label]["sha256"]
    elif method.checkpoint:
        stat = Path(method.checkpoint).stat()
        key["encoder"] = [stat.st_size, stat.st_mtime_ns]
    return json.loads(json.dumps(key, default=str))


def _setting_name(count: int | None, fraction: float) -> str:
    """A label setting's name, as its run folders and resumed rows know it."""
    return f"n{count}" if count is not None else f"frac{fraction:g}"


def _row_key(key: tuple) -> str:
    return json.dumps(list(key), default=str)


def _earlier_runs(out: Path, meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The rows of ``out/results.json`` this invocation would repeat, keyed by :func:`_row_key`."""
    path = out / "results.json"
    if not path.is_file():
        return {}
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"benchmark.resume: cannot read {path} ({exc}); move it away to start afresh") from None
    old_meta = earlier.get("meta", {})
    if not same_settings(old_meta.get("settings"), meta["settings"], _settings(RunConfig())):
        raise ConfigError(f"benchmark.resume: {path} was written with other model, finetune, task or seed "
                          "settings; its runs would not compare with new ones. Use another output_dir, or "
                          "move it away to start afresh")
    meta["features"].update(old_meta.get("features", {}))
    kept = {}
    for row in earlier.get("runs", []):
        label = row.get("method")
        if meta["methods"].get(label) is None or old_meta.get("methods", {}).get(label) != meta["methods"][label]:
            continue
        setting = _setting_name(row.get("label_count"), row["label_fraction"])
        kept[_row_key((label, row["task"], row["split"], row["split_seed"], setting, row["seed"]))] = row
    if kept:
        meta["earlier_wall_seconds"] = old_meta.get("wall_seconds", 0.0) + old_meta.get("earlier_wall_seconds", 0.0)
    return kept


def _report(dataset) -> dict[str, int]:
    r = dataset.report
    return {"read": r.read, "kept": r.kept, "skipped": len(r.skipped)}
