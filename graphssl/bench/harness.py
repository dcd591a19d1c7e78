"""Run a benchmark from one config: methods x tasks x seeds x label fractions.

Each pretraining method is pretrained once; every (task, label fraction, seed) is then
fine-tuned from each method's encoder and from scratch with the same backbone, budget,
split and seed. Scores are test scores at the best validation epoch.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from graphssl.bench.report import markdown_table, paired_table, plot_results
from graphssl.core.config import ObjectiveConfig, RunConfig, data_config, save_config
from graphssl.core.errors import ConfigError
from graphssl.data.dataset import load_dataset
from graphssl.data.splits import make_split
from graphssl.engine.finetune import SELECTION_RULE, finetune
from graphssl.engine.pretrain import pretrain
from graphssl.engine.runtime import library_versions, machine_description, set_threads
from graphssl.objectives.registry import OBJECTIVES


@dataclasses.dataclass
class Method:
    label: str
    objective: str | None  # None: trained from scratch
    options: dict[str, Any]


def parse_methods(specs: list[Any]) -> list[Method]:
    """Methods are names (``graphmae``) or mappings (``{name: graphmae, label: g50, mask_rate: 0.5}``)."""
    methods = []
    for spec in specs:
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError(f"benchmark.methods entries must be names or mappings with 'name', got {spec!r}")
        spec = dict(spec)
        name = str(spec.pop("name")).lower()
        label = str(spec.pop("label", name))
        if name == "scratch":
            if spec:
                raise ConfigError(f"method 'scratch' takes no options, got {sorted(spec)}")
            methods.append(Method(label, None, {}))
        elif name in OBJECTIVES:
            methods.append(Method(label, name, spec))
        else:
            raise ConfigError(f"unknown method '{name}'. Choose scratch or one of: {', '.join(sorted(OBJECTIVES))}")
    labels = [m.label for m in methods]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"benchmark method labels must be unique, got {labels}; add 'label:' to tell them apart")
    return methods


def _write(out: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    (out / "results.json").write_text(json.dumps({"meta": meta, "runs": rows}, indent=1))


def _markdown(rows: list[dict[str, Any]], meta: dict[str, Any], config: RunConfig) -> str:
    ft, model = config.finetune, config.model
    pre = meta["pretraining"]
    lines = [
        f"# Benchmark results ({config.benchmark.tier} tier)",
        "",
        f"Scores: {SELECTION_RULE}; mean ± std over fine-tuning seeds {config.benchmark.seeds}.",
        "",
        markdown_table(rows),
        "",
        *([paired_table(rows), ""] if paired_table(rows) else []),
        f"- Backbone: {model.backbone}, {model.num_layers} layers, hidden {model.hidden}, {model.pooling} pooling "
        "(identical for every method).",
        f"- Fine-tuning: {ft.epochs} epochs, batch {ft.batch_size}, Adam lr {ft.lr}, dropout {ft.dropout}, "
        f"{ft.mode} fine-tuning, " + (f"Matbench fold {ft.split_seed} (of 5) as test set." if ft.split == "matbench"
                                       else f"{ft.split} split {ft.split_fractions}."),
    ]
    for label, info in pre.items():
        lines.append(
            f"- Pretraining `{label}`: {info['objective']} {info['options'] or ''} on {info['data']} "
            f"({info['graphs']} graphs), {info['epochs']} epochs, {info['seconds']:.0f} s, "
            f"{info['graphs_per_s']:.0f} graphs/s, final loss {info['final_loss']:.4f}."
        )
    for name, report in meta["data_reports"].items():
        lines.append(f"- Data `{name}`: read {report['read']}, kept {report['kept']}, skipped {report['skipped']}.")
    lines += [
        f"- Command: `{meta['command']}`",
        f"- Machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores, {meta['machine']['memory']}, "
        f"torch threads {meta['machine']['torch_threads']}, CUDA {meta['machine']['cuda']}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- Wall time: {meta['wall_seconds'] / 60:.1f} min",
    ]
    return "\n".join(lines) + "\n"


def run_benchmark(config: RunConfig, command: str | None = None) -> Path:
    """Run the benchmark in ``config.benchmark``; write results.json, results.md and
    results.png into ``config.output_dir`` and return that folder."""
    t0 = time.perf_counter()
    set_threads(config.threads)
    bench = config.benchmark
    methods = parse_methods(bench.methods)
    tasks = [data_config(t, "benchmark.tasks") for t in bench.tasks]
    if not tasks:
        raise ConfigError("benchmark.tasks is empty: list at least one labelled data set")
    if not bench.seeds:
        raise ConfigError("benchmark.seeds is empty")
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    meta: dict[str, Any] = {
        "command": command or " ".join(shlex.quote(a) for a in sys.argv),
        "machine": machine_description(),
        "versions": library_versions(),
        "selection": SELECTION_RULE,
        "pretraining": {},
        "data_reports": {},
        "wall_seconds": 0.0,
    }

    checkpoints: dict[str, Path | None] = {}
    pretrain_set = None
    for method in methods:
        if method.objective is None:
            checkpoints[method.label] = None
            continue
        if pretrain_set is None:
            pretrain_set = load_dataset(config.data, config.cache_dir, progress=config.progress)
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

    rows: list[dict[str, Any]] = []
    for task in tasks:
        dataset = load_dataset(task, config.cache_dir, progress=config.progress)
        meta["data_reports"][f"{dataset.name} (task)"] = _report(dataset)
        split = make_split(dataset, config.finetune)
        for fraction in bench.label_fractions:
            for seed in bench.seeds:
                for method in methods:
                    ft = dataclasses.replace(config.finetune, task=task, seed=seed, label_fraction=fraction,
                                             save_checkpoints=False)
                    run_dir = out / "finetune" / dataset.name / f"frac{fraction:g}" / f"seed{seed}" / method.label
                    cfg = dataclasses.replace(config, finetune=ft, output_dir=str(run_dir))
                    result = finetune(cfg, checkpoint=checkpoints[method.label], dataset=dataset, split=split)
                    rows.append({"method": method.label, "task": dataset.name, "label_fraction": fraction,
                                 "seed": seed, "metric": result.metric, "valid": result.valid, "test": result.test,
                                 "best_epoch": result.best_epoch, "train_size": result.train_size,
                                 "seconds": result.seconds,
                                 # secondary scores some tasks report (e.g. face accuracy next to mIoU)
                                 **{k: v for k, v in result.to_dict().items()
                                    if k.startswith(("valid_", "test_")) and isinstance(v, float)}})
                    print(f"{dataset.name} frac={fraction:g} seed={seed} {method.label}: valid {result.valid:.4f} "
                          f"test {result.test:.4f} (best epoch {result.best_epoch}, {result.seconds:.0f} s)")
                    meta["wall_seconds"] = time.perf_counter() - t0
                    _write(out, rows, meta)

    meta["wall_seconds"] = time.perf_counter() - t0
    _write(out, rows, meta)
    (out / "results.md").write_text(_markdown(rows, meta, config))
    plot_results(rows, out / "results.png")
    print()
    print(_markdown(rows, meta, config))
    print(f"results written to {out}/results.md, results.json and results.png")
    return out


def _report(dataset) -> dict[str, int]:
    r = dataset.report
    return {"read": r.read, "kept": r.kept, "skipped": len(r.skipped)}
