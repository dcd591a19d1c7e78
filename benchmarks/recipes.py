"""Fine-tuning recipes, chosen on validation scores only.

Fine-tunes the backbone from scratch and from a shipped zoo encoder (``--zoo``, by default
``gine-attrmask-moses``) with each recipe below, on top of a fine-tuning setup (``--config``: its
model: and finetune:, by default the demo's ``configs/demo.yaml``: GINE 5 x 128, deterministic
scaffold split, 10 epochs, batch 32, Adam 1e-3, dropout 0.2), one torch thread. Every recipe
applies to both arms alike. With ``--label-fractions`` each task is also run on those shares of
its training labels, each share counting as a task of its own. The recipe to recommend is the one
with the best mean validation score over both arms, seeds and tasks (each task's score taken
relative to the current default's, so tasks in different units weigh the same); test scores are
reported beside it and never choose anything.

    nohup python benchmarks/recipes.py --tasks freesolv rdkit-solubility --seeds 3 \
        --out benchmarks/results/recipes > runs/recipes.log 2>&1 &
    nohup python benchmarks/recipes.py --config benchmarks/brep_mfcad_zoo.yaml --tasks brep-mfcad \
        --limit 300 --label-fractions 0.05 0.2 --zoo gine-brepmae-mfcad20k-40ep --seeds 10 \
        --recipes default encoder-lr-0.1x layer-decay-0.7 lp-ft-3 freeze-2 linear \
        --out benchmarks/results/recipes_brep > runs/recipes_brep.log 2>&1 &

Rows already in ``--out/results.json`` are kept and not run again, so a stopped run continues.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import graphssl as gs
from graphssl.bench.stats import paired_difference
from graphssl.engine.runtime import library_versions, machine_description
from graphssl.tasks.metrics import HIGHER_IS_BETTER

DEFAULT = "default"
ZOO_ARM = "zoo"
# recipe -> fine-tuning overrides on top of the base setup's; a callable value is computed from
# the base finetune: section (a learning rate relative to the base one)
RECIPES: dict[str, dict[str, Any]] = {
    DEFAULT: {},
    "encoder-lr-0.1x": {"encoder_lr": lambda ft: ft.lr / 10},
    "layer-decay-0.7": {"layer_decay": 0.7},
    "lp-ft-3": {"mode": "lp-ft", "probe_epochs": 3},
    "freeze-2": {"freeze_layers": 2},
    "patience-5-of-30": {"epochs": 30, "patience": 5},
    "linear": {"mode": "linear"},
}
ARMS = ("scratch", ZOO_ARM)


def _key(row: dict[str, Any]) -> tuple:
    return row["task"], row["recipe"], row["arm"], row["seed"]


def recipe_options(recipe: str, base: Any) -> dict[str, Any]:
    """The fine-tuning overrides of ``recipe`` on top of the base finetune: section ``base``."""
    return {k: v(base) if callable(v) else v for k, v in RECIPES[recipe].items()}


def _task_label(task: str, fraction: float) -> str:
    return task if fraction == 1.0 else f"{task} {fraction:.0%}"


def _error(score: float, metric: str) -> float:
    """A lower-is-better version of ``score``, so relative scores read the same for every metric."""
    return 1.0 - score if HIGHER_IS_BETTER[metric] else score


def report(rows: list[dict[str, Any]], tasks: list[str], recipes: list[str], seeds: list[int]) -> tuple[str, str]:
    """The markdown tables (per task: validation and test per arm, paired differences) and the
    recipe with the best mean relative validation score. Test columns are shown, never used."""
    lines: list[str] = []
    relative: dict[str, dict[str, list[float]]] = {r: {"valid": [], "test": []} for r in recipes}

    def scores(task: str, recipe: str, arm: str, split: str) -> list[float]:
        found = {r["seed"]: r[split] for r in rows if (r["task"], r["recipe"], r["arm"]) == (task, recipe, arm)}
        return [found.get(s, float("nan")) for s in seeds]

    def both(task: str, recipe: str, split: str) -> list[float]:  # scratch seeds, then zoo seeds
        return [v for arm in ARMS for v in scores(task, recipe, arm, split)]

    def fmt(values: list[float]) -> str:
        return f"{np.nanmean(values):.3f} ± {np.nanstd(values, ddof=1):.3f}" if len(values) > 1 \
            else f"{values[0]:.3f}"

    for task in tasks:
        task_rows = [r for r in rows if r["task"] == task]
        if not task_rows:
            continue
        metric = task_rows[0]["metric"]
        higher = HIGHER_IS_BETTER[metric]
        lines += [f"### {task} ({metric} {'↑' if higher else '↓'})", "",
                  "| recipe | scratch valid | scratch test | zoo valid | zoo test | mean valid | mean test | "
                  "recipe − default, valid [95% CI] (W/T/L) | recipe − default, test [95% CI] (W/T/L) | "
                  "zoo − scratch, test [95% CI] (W/T/L) | epochs run |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for recipe in recipes:
            cells = {(arm, split): scores(task, recipe, arm, split) for arm in ARMS for split in ("valid", "test")}
            means = {}
            for split in ("valid", "test"):
                means[split] = float(np.nanmean(both(task, recipe, split)))
                default = float(np.nanmean(both(task, DEFAULT, split)))
                relative[recipe][split].append(_error(means[split], metric) / _error(default, metric))
            vs_default = {split: "-" if recipe == DEFAULT else str(paired_difference(
                both(task, recipe, split), both(task, DEFAULT, split), higher)) for split in ("valid", "test")}
            zoo_vs_scratch = paired_difference(cells[(ZOO_ARM, "test")], cells[("scratch", "test")], higher)
            ran = [len(r["valid_history"]) for r in task_rows if r["recipe"] == recipe]
            lines.append(f"| {recipe} | {fmt(cells[('scratch', 'valid')])} | {fmt(cells[('scratch', 'test')])} | "
                         f"{fmt(cells[(ZOO_ARM, 'valid')])} | {fmt(cells[(ZOO_ARM, 'test')])} | "
                         f"{means['valid']:.3f} | {means['test']:.3f} | {vs_default['valid']} | {vs_default['test']} | "
                         f"{zoo_vs_scratch} | {np.mean(ran):.1f} |")
        lines.append("")
    summary = {r: float(np.mean(v["valid"])) for r, v in relative.items() if v["valid"]}
    chosen = min(summary, key=summary.get)  # min keeps the first of equal values: the default wins a tie
    lines += ["### Choice (validation only)", "",
              "Relative error: the mean over both arms and all seeds, divided by the default recipe's, averaged "
              "over the tasks (lower is better; for a higher-is-better metric the error is 1 − score). The "
              "test column is shown for reference and chooses nothing.", "",
              "| recipe | relative validation error (chooses) | relative test error (reference) |",
              "|---|---|---|"]
    for recipe in sorted(summary, key=summary.get):  # a stable sort keeps the default first on a tie
        lines.append(f"| {recipe} | {summary[recipe]:.4f}{' (chosen)' if recipe == chosen else ''} | "
                     f"{np.mean(relative[recipe]['test']):.4f} |")
    return "\n".join(lines) + "\n", chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/demo.yaml", help="fine-tuning setup (its model: and finetune:)")
    parser.add_argument("--tasks", nargs="+", default=["freesolv", "rdkit-solubility"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--zoo", default="gine-attrmask-moses", help="zoo entry of the pretrained arm")
    parser.add_argument("--limit", type=int, default=None, help="data.limit of every task (first N records)")
    parser.add_argument("--label-fractions", nargs="+", type=float, default=[1.0],
                        help="shares of the training labels; each (task, share) is scored as a task")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--runs", default="runs/recipes", help="folder for the runs' own outputs (not kept)")
    parser.add_argument("--out", required=True, help="folder for results.json and results.md")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: write results.md from the rows in --out, over the seeds every "
                             "(task, recipe, arm) has finished")
    args = parser.parse_args()
    t0 = time.time()
    base = gs.load_config(args.config, ["progress=false", "threads=1", "finetune.save_checkpoints=false"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stored = out / "results.json"
    previous = json.loads(stored.read_text()) if stored.is_file() else {}
    rows: list[dict[str, Any]] = previous.get("rows", [])
    done = {_key(r) for r in rows}
    elapsed_before = previous.get("run_seconds", 0.0)
    # the command that ran the rows (a continued or report-only call keeps the first one)
    command = (previous.get("command") or previous.get("meta", {}).get("command")
               or "python " + " ".join(shlex.quote(a) for a in sys.argv))
    checkpoints = {"scratch": None, ZOO_ARM: f"zoo:{args.zoo}"}
    # kept rows must come from the same base setup, zoo entry and data: otherwise they would be
    # paired with runs they do not compare with
    setup = {"base_config": args.config, "zoo": checkpoints[ZOO_ARM], "limit": args.limit}
    before = previous.get("setup", setup)
    changed = [f"{k}: {before.get(k)!r} there, {v!r} here" for k, v in setup.items() if before.get(k) != v]
    if changed:
        raise SystemExit(f"{stored} holds runs of another setup ({'; '.join(changed)}); use another --out")
    seeds = list(range(args.seeds))
    if args.report_only:  # a comparison over unequal seeds would not be paired: keep the complete ones
        cells = {(_task_label(t, f), r, a) for t in args.tasks for f in args.label_fractions
                 for r in args.recipes for a in ARMS}
        seeds = [s for s in seeds if all((*cell, s) in done for cell in cells)]
        if not seeds:
            raise SystemExit(f"no seed has finished every task, recipe and arm in {stored}")
    labels = [_task_label(t, f) for t in args.tasks for f in args.label_fractions]
    if args.report_only:
        labels = [t for t in labels if any(r["task"] == t for r in rows)]
        rows = [r for r in rows if r["seed"] in seeds]
    datas = {task: gs.DataConfig(name=task, on_error="skip", limit=args.limit) for task in args.tasks}
    datasets = {} if args.report_only else {
        task: gs.load_dataset(data, base.cache_dir, progress=False) for task, data in datas.items()}
    for seed in seeds:  # seeds outermost: a run cut short still has every recipe on the first seeds
        for task, dataset in datasets.items():
            for fraction in args.label_fractions:
                label = _task_label(task, fraction)
                for recipe in args.recipes:
                    for arm in ARMS:
                        if (label, recipe, arm, seed) in done:
                            continue
                        ft = dataclasses.replace(base.finetune, task=datas[task], seed=seed, label_fraction=fraction,
                                                 **recipe_options(recipe, base.finetune))
                        run_dir = Path(args.runs) / label.replace(" ", "-").replace("%", "pct") / recipe / arm / str(seed)
                        config = dataclasses.replace(base, finetune=ft, output_dir=str(run_dir))
                        result = gs.finetune(config, checkpoint=checkpoints[arm], dataset=dataset)
                        rows.append({"task": label, "recipe": recipe, "arm": arm, "seed": seed,
                                     "metric": result.metric, "valid": result.valid, "test": result.test,
                                     "best_epoch": result.best_epoch, "seconds": result.seconds,
                                     "valid_history": [h["valid"] for h in result.history]})
                        print(json.dumps({k: v for k, v in rows[-1].items() if k != "valid_history"}), flush=True)
                        stored.write_text(json.dumps({"command": command, "setup": setup, "rows": rows,
                                                      "run_seconds": elapsed_before + time.time() - t0}, indent=1))
    tables, chosen = report(rows, labels, args.recipes, seeds)
    run_seconds = elapsed_before + (0.0 if args.report_only else time.time() - t0)
    ran = previous.get("meta", {}) if args.report_only else {}  # the machine that ran the rows, not this one
    meta = {"command": command, "machine": ran.get("machine") or machine_description(), "seeds": seeds,
            "versions": ran.get("versions") or library_versions(), "run_seconds": run_seconds, "chosen": chosen,
            "recipes": {r: recipe_options(r, base.finetune) for r in args.recipes}, "arms": checkpoints,
            "label_fractions": args.label_fractions,
            "selection": "recipe: best mean validation score of both arms (relative to the default, "
                         "averaged over tasks); run: test score at the best validation epoch"}
    if not args.report_only:  # a report over fewer seeds never overwrites the runs themselves
        stored.write_text(json.dumps({"command": command, "setup": setup, "meta": meta, "rows": rows,
                                      "run_seconds": run_seconds}, indent=1))
    else:
        (out / "report.json").write_text(json.dumps({"meta": meta}, indent=1))
    (out / "results.md").write_text(
        f"# Fine-tuning recipes\n\n{tables}\n- Command: `{meta['command']}`\n- Base setup: `{args.config}` "
        f"(threads 1, checkpoints off)\n- Seeds: {seeds}\n- Machine: {meta['machine']}\n"
        f"- Versions: {meta['versions']}\n- Time of the runs, summed: {run_seconds / 60:.1f} min\n"
        f"- Chosen by validation: {chosen}\n")
    print(tables)


if __name__ == "__main__":
    main()
