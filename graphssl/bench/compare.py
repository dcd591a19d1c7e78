"""``graphssl compare``: does pretraining help on my data?

One call runs the benchmark harness on a user's own labelled file with defaults chosen for it:

- the split: scaffold for molecules, random for crystals;
- the methods: the same backbone trained from scratch, every zoo entry of the input's domain
  whose backbone is registered (read from the zoo at run time; entries that share one
  architecture, since scratch must train that same backbone), and for molecules the classical
  baselines ``ecfp-rf`` and ``rdkit-rf``;
- the backbone: the zoo entries' own architecture from their cards, or ``model:``'s default when
  no entry fits;
- ``seeds`` fine-tuning seeds (default 3), ``budget`` scaling the epochs and the forests' trees.

The harness writes its tables, paired differences and plots; this module adds a verdict per
method from the 95% paired confidence intervals against scratch, and whether the best network
beats the best classical baseline on the same seeds. Only the reports go to ``out``: runs happen
in a working folder that is removed afterwards unless ``work_dir`` names one to keep.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from graphssl import zoo
from graphssl.bench import baselines
from graphssl.bench.harness import BASELINE, parse_methods, run_benchmark
from graphssl.bench.report import paired_differences, sample_std
from graphssl.bench.stats import PairedDifference, paired_difference
from graphssl.core.config import DataConfig, ModelConfig, RunConfig, check_choice, from_dict
from graphssl.core.errors import ConfigError, DataError
from graphssl.core.io import atomic_write_bytes, atomic_write_text
from graphssl.data.dataset import domain_of
from graphssl.data.labels import MISSING, class_mapping, parse_label
from graphssl.data.records import TASK_TYPES
from graphssl.engine.runtime import prepare_folder, validate
from graphssl.molecule.tables import SDF_SUFFIXES, TABLE_SUFFIXES
from graphssl.nn.backbones import BACKBONES
from graphssl.tasks.metrics import HIGHER_IS_BETTER

__all__ = ["compare", "infer_task_type", "zoo_methods"]

# At budget 1: 10 epochs and 200 trees, the demo's fine-tuning budget, so a file of a few
# thousand molecules finishes in minutes on a laptop CPU (what was measured: benchmarks/README.md).
EPOCHS = 10
TREES = 200
MIN_TREES = 10
FINETUNE = {"batch_size": 32, "lr": 0.001, "dropout": 0.2}
CLASSICAL = {"molecule": ("ecfp-rf", "rdkit-rf")}
SPLIT = {"molecule": "scaffold", "atomistic": "random"}
# When no zoo entry fits the input: model:'s default for molecules, a geometric one for crystals.
FALLBACK_BACKBONE = {"molecule": ModelConfig().backbone, "atomistic": "schnet"}
REPORTS = ("results.md", "results.json", "results.png", "paired.png")
WORDS = {"win": "better than scratch", "tie": "no separable difference from scratch", "loss": "worse than scratch"}


# --------------------------------------------------------------------------- the input


@dataclasses.dataclass
class _Input:
    """What compare reads: the data config of the task and the label column's cells."""

    path: Path
    domain: str
    data: dict[str, Any]
    cells: list[str]


def _table_columns(path: Path) -> list[str]:
    from graphssl.molecule.tables import table_columns  # the reader's own header rules

    return table_columns(path)


def _table_cells(path: Path, column: str) -> list[str]:
    from graphssl.molecule.tables import record_column

    return record_column(path, column)


def _missing_column(path: Path, option: str, column: str, columns: Sequence[str]) -> DataError:
    return DataError(f"{option} {column!r}: '{path}' has no such column; its columns are {list(columns)}")


def _read_input(path: str | Path, label: str, smiles_column: str | None, label_file: str | None,
                id_column: str | None) -> _Input:
    """Check the file, its columns and the label column's cells; nothing is featurised."""
    if not isinstance(label, str) or not label.strip():
        raise ConfigError("--label is empty: name the column of the file that holds the labels")
    given = Path(path).expanduser()
    if not given.exists():
        tried = "" if given.is_absolute() else f" (looked for '{given.absolute()}')"
        raise DataError(f"input '{path}' does not exist{tried}")
    domain = domain_of(DataConfig(path=str(given)))  # the input-kind rules; a DataError names the path
    name = given.name.lower()
    if domain == "molecule":
        if label_file or id_column:
            raise ConfigError("--label-file and --id-column are for folders of crystal structures; a molecule "
                              "file carries its labels in its own columns")
        if name.endswith(TABLE_SUFFIXES):
            columns = _table_columns(given)
            if smiles_column is None:
                guesses = [c for c in columns if c.lower() in {"smiles", "smi", "canonical_smiles", "mol"}]
                if not guesses:
                    raise DataError(f"'{given}': no SMILES column found among {columns}; name it with --smiles-column")
                smiles_column = guesses[0]
            elif smiles_column not in columns:
                raise _missing_column(given, "--smiles-column", smiles_column, columns)
            if label not in columns:
                raise _missing_column(given, "--label", label, columns)
            if label == smiles_column:
                raise ConfigError(f"--label {label!r} is the SMILES column; name the column that holds the labels")
            cells = _table_cells(given, label)
        elif name.endswith(SDF_SUFFIXES):
            if smiles_column is not None:
                raise ConfigError("--smiles-column is for CSV/TSV files; an SDF file holds molecules, not SMILES")
            from graphssl.molecule.adapter import sdf_properties

            props = list(sdf_properties(given))
            if not any(label in p for p in props):
                found = sorted({k for p in props for k in p})
                raise DataError(f"--label {label!r}: no record of '{given}' has that property; its properties "
                                f"are {found}")
            cells = [p.get(label, "") for p in props]
        else:
            raise DataError(f"'{given}' holds no labels (a SMILES list or prepared shards); compare needs a CSV/TSV "
                            f"({', '.join(TABLE_SUFFIXES)}) or SDF file with a label column")
        data = {"path": str(given), "smiles_column": smiles_column}
    elif domain == "atomistic":
        if not given.is_dir():
            raise DataError(f"'{given}' holds energies and forces, not one label per structure; compare takes a "
                            "folder of CIF/POSCAR files with --label-file (use `graphssl benchmark` for frames)")
        if smiles_column is not None:
            raise ConfigError("--smiles-column is for molecule tables; crystals take --label-file and --id-column")
        if not label_file or not id_column:
            raise ConfigError(f"'{given}' is a folder of structures: give --label-file (a CSV of labels; a bare name "
                              "is looked up in the folder) and --id-column (its column of file names)")
        table = Path(label_file).expanduser()
        if not table.is_absolute() and not table.is_file() and (given / table).is_file():
            table = given / table
        if not table.is_file():
            raise DataError(f"--label-file '{label_file}' does not exist (nor in '{given}')")
        with table.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
        columns = rows[0] if rows else []
        if id_column not in columns:
            raise _missing_column(table, "--id-column", id_column, columns)
        if label not in columns:
            raise _missing_column(table, "--label", label, columns)
        k = columns.index(label)
        cells = [row[k] if k < len(row) else "" for row in rows[1:] if row]
        data = {"path": str(given), "label_file": str(table), "id_column": id_column}
    else:
        raise DataError(f"'{given}' holds {domain} data, labelled per face in .labels files; compare reads one "
                        "label column per record. Compare methods on it with `graphssl benchmark`")
    return _Input(given, domain, data, cells)


def infer_task_type(cells: Sequence[str], column: str, task: str | None = None) -> str:
    """``classification`` when the column holds two distinct values, ``regression`` when it holds
    numbers; with ``task`` given, check that the cells fit it. A :class:`DataError` naming the
    column otherwise (empty, one value, or words that are neither two classes nor numbers)."""
    values = [str(c).strip() for c in cells]
    values = [v for v in values if v.lower() not in MISSING]
    if task is not None:
        check_choice(task, TASK_TYPES, "--task")
    if not values:
        raise DataError(f"label column '{column}' is empty: every cell is blank or missing (nan, na, none)")
    parsed = {v: parse_label(v, column) for v in set(values)}
    numeric = {v: x for v, (x, error) in parsed.items() if error is None}
    # one key per value however it is written: 1, 1.0 and +1 are one number, Active and active one word
    distinct = {repr(numeric[v]) if v in numeric else v.lower() for v in values}
    if len(distinct) == 1:
        raise DataError(f"label column '{column}' holds one value ({values[0]!r} in {len(values)} rows): there is "
                        "nothing to predict; classification needs two classes, regression varying numbers")
    if task == "classification" or (task is None and len(distinct) == 2):
        class_mapping(column, values)  # two classes it can map to 0 and 1, or an error naming them
        return "classification"
    words = sorted({v for v in values if v not in numeric})
    if not words:
        return "regression"
    shown = ", ".join(repr(w) for w in words[:5]) + (", ..." if len(words) > 5 else "")
    bad = sum(v not in numeric for v in values)
    if task == "regression":
        raise DataError(f"label column '{column}' is not numeric: {bad} of {len(values)} labels are not numbers "
                        f"({shown}); regression needs numbers")
    raise DataError(f"cannot tell the task of label column '{column}': it holds {len(distinct)} distinct values, "
                    f"{bad} of {len(values)} not numbers ({shown}). Regression needs numbers, classification "
                    "exactly two classes; fix the column or pass --task")


# --------------------------------------------------------------------------- the methods


def _architecture(card: dict[str, Any]) -> tuple:
    model = card["model"]
    return (json.dumps({k: model.get(k) for k in ("backbone", "hidden", "num_layers", "norm", "jk", "options",
                                                 "pooling")}, sort_keys=True),
            json.dumps(card.get("feature_spec", {}), sort_keys=True))


def zoo_methods(domain: str, root: Path | None = None) -> tuple[list[str], dict[str, Any] | None, dict[str, str]]:
    """The zoo entries compare fine-tunes on ``domain``: (entry names, their card of reference,
    skipped entry -> why). Entries of the domain whose backbone is registered are grouped by
    architecture and input layout; the largest group runs (ties: the group of the first name),
    since scratch trains one backbone."""
    groups: dict[tuple, list[str]] = {}
    cards: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for name in zoo.names(root):
        info = zoo.card(name, root)
        if info.get("feature_spec", {}).get("domain") != domain:
            continue
        backbone = info["model"].get("backbone")
        if backbone not in BACKBONES:
            skipped[name] = f"its backbone {backbone!r} is not registered in this installation"
            continue
        cards[name] = info
        groups.setdefault(_architecture(info), []).append(name)
    if not groups:
        return [], None, skipped
    chosen = max(groups.values(), key=len)  # max keeps the first of equal-sized groups
    for names in groups.values():
        if names is not chosen:
            for name in names:
                skipped[name] = (f"its architecture differs from {chosen[0]}'s, whose backbone scratch trains; "
                                 "compare it separately with --methods")
    return chosen, cards[chosen[0]], skipped


def _method_specs(methods: Sequence[str] | None, domain: str, trees: int) -> tuple[list[Any], list[str], dict[str, str]]:
    """Harness method specs, the zoo entries among them, and skipped zoo entries."""
    forest = {"n_estimators": trees}
    if methods is None:
        entries, _, skipped = zoo_methods(domain)
        specs: list[Any] = ["scratch"]
        specs += [{"name": zoo.PREFIX + n, "label": n} for n in entries]
        specs += [{"name": b, **forest} for b in CLASSICAL.get(domain, ())]
        return specs, entries, skipped
    if isinstance(methods, str):
        methods = [methods]
    specs, entries = [], []
    for name in methods:
        name = str(name).strip()
        lower = name.lower()
        if lower == "scratch":
            continue  # always first: the reference of every paired difference
        if zoo.is_zoo_name(lower):
            zoo.card(lower)  # an unknown entry fails here, naming the zoo's entries
            entries.append(lower.removeprefix(zoo.PREFIX))
            specs.append({"name": lower, "label": entries[-1]})
        elif lower in baselines.BASELINES:
            if domain != "molecule":
                raise ConfigError(f"--methods {name}: classical baselines work on molecules; this input is {domain}")
            specs.append({"name": lower, **forest})
        else:
            raise ConfigError(f"--methods {name!r}: compare fine-tunes shipped encoders and fits classical baselines; "
                              f"choose scratch, zoo:NAME (`graphssl zoo list`: {', '.join(zoo.names()) or 'empty'}) "
                              f"or {', '.join(baselines.BASELINES)}. To pretrain a method first, use `graphssl benchmark`")
    for name in entries:
        found = zoo.card(name)["feature_spec"].get("domain")
        if found != domain:
            raise ConfigError(f"--methods zoo:{name}: the entry was pretrained on {found} data; this input is {domain}")
    return ["scratch", *specs], entries, {}


# --------------------------------------------------------------------------- the verdict


def _by_method(rows: list[dict[str, Any]]) -> dict[str, dict[tuple[int, int], float]]:
    out: dict[str, dict[tuple[int, int], float]] = {}
    for r in rows:
        out.setdefault(r["method"], {})[(int(r["seed"]), int(r.get("split_seed") or 0))] = float(r["test"])
    return out


def _versus(a: dict[tuple[int, int], float], b: dict[tuple[int, int], float], higher: bool) -> PairedDifference:
    keys = sorted(set(a) & set(b))
    return paired_difference([a[k] for k in keys], [b[k] for k in keys], higher)


def verdict(rows: list[dict[str, Any]], classical: Sequence[str]) -> dict[str, Any]:
    """Per method: mean ± sample std of the test score and the paired difference against scratch
    with its 95% interval and a plain verdict; and the best network against the best classical
    baseline (best by mean test score), paired on the same seeds and splits."""
    metric = rows[0]["metric"]
    higher = HIGHER_IS_BETTER[metric]
    diffs = {m: d for (m, _), d in paired_differences(rows, BASELINE).items()}
    tests = _by_method(rows)
    methods: dict[str, Any] = {}
    for name, scores in tests.items():
        values = np.array(list(scores.values()), dtype=float)
        entry: dict[str, Any] = {"mean": float(np.nanmean(values)), "std": sample_std(values), "n": int(values.size),
                                 "kind": "classical" if name in classical else "network"}
        d = diffs.get(name)
        if d is not None:
            entry.update(difference=d.mean, low=d.low, high=d.high, pairs=d.n, verdict=d.verdict,
                         text=WORDS[d.verdict])
        elif name == BASELINE:
            entry.update(verdict="reference", text="reference")
        methods[name] = entry

    def best(kind: str) -> str | None:
        names = [m for m, e in methods.items() if e["kind"] == kind and math.isfinite(e["mean"])]
        if not names:
            return None
        return (max if higher else min)(names, key=lambda m: methods[m]["mean"])

    summary: dict[str, Any] = {"metric": metric, "higher_is_better": higher, "methods": methods}
    gnn, rf = best("network"), best("classical")
    if gnn and rf:
        d = _versus(tests[gnn], tests[rf], higher)
        text = {"win": f"the best GNN ({gnn}) beats the best classical baseline ({rf})",
                "tie": f"no separable difference between the best GNN ({gnn}) and the best classical baseline ({rf})",
                "loss": f"the best classical baseline ({rf}) beats the best GNN ({gnn})"}[d.verdict]
        summary["gnn_vs_classical"] = {"network": gnn, "classical": rf, "difference": d.mean, "low": d.low,
                                       "high": d.high, "pairs": d.n, "verdict": d.verdict, "text": text}
    pretrained = [m for m, e in methods.items() if e["kind"] == "network" and m != BASELINE]
    better = [m for m in pretrained if methods[m].get("verdict") == "win"]
    worse = [m for m in pretrained if methods[m].get("verdict") == "loss"]
    if not pretrained:
        answer = "no zoo encoder fits this input, so only scratch and the baselines ran"
    elif better:
        answer = f"yes: {', '.join(better)} {'is' if len(better) == 1 else 'are'} better than scratch"
    elif worse and len(worse) == len(pretrained):
        answer = "no: pretraining is worse than scratch here"
    else:
        answer = "not separably: no pretrained encoder beats scratch beyond the seeds' noise"
    summary["answer"] = answer
    return summary


def _num(value: float) -> str:
    return f"{value:+.3f}" if math.isfinite(value) else "n/a"


def verdict_table(summary: dict[str, Any], task: str, seeds: int, split: str) -> str:
    """The verdict as Markdown: one row per method, then the network-vs-classical line."""
    metric = summary["metric"]
    arrow = "↑" if summary["higher_is_better"] else "↓"
    lines = [f"## Verdict: does pretraining help on {task}?", "",
             f"| method | test {metric} {arrow} mean ± std (n) | minus scratch, mean [95% CI] | verdict |",
             "|---|---|---|---|"]
    for name, e in summary["methods"].items():
        spread = f" ± {e['std']:.3f}" if math.isfinite(e["std"]) else ""
        diff = (f"{_num(e['difference'])} [{_num(e['low'])}, {_num(e['high'])}]" if "difference" in e else "-")
        lines.append(f"| {name} | {e['mean']:.3f}{spread} ({e['n']}) | {diff} | {e['text']} |")
    lines.append("")
    g = summary.get("gnn_vs_classical")
    if g:
        lines.append(f"Best GNN vs best classical baseline ({g['network']} minus {g['classical']}, same seeds): "
                     f"{_num(g['difference'])} [{_num(g['low'])}, {_num(g['high'])}]: {g['text']}.")
    lines.append(f"Does pretraining help? {summary['answer'][0].upper()}{summary['answer'][1:]}.")
    lines += ["", f"Better / worse: the 95% confidence interval of the paired difference ({seeds} seeds, {split} "
              f"split, same seed and split for every method) excludes zero; otherwise no separable difference. "
              f"{metric}: {'higher' if summary['higher_is_better'] else 'lower'} is better."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the command


def _check_budget(budget: Any, seeds: Any) -> None:
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not (0 < budget < math.inf):
        raise ConfigError(f"--budget must be a number > 0 (1.0: {EPOCHS} epochs, {TREES} trees), got {budget!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise ConfigError(f"--seeds must be an integer >= 2 (a 95% interval needs two paired runs), got {seeds!r}")


def compare(path: str | Path, label: str, *, smiles_column: str | None = None, task: str | None = None,
            out: str | Path | None = None, budget: float = 1.0, seeds: int = 3, methods: Sequence[str] | None = None,
            label_file: str | None = None, id_column: str | None = None, threads: int | None = None,
            cache_dir: str = ".graphssl_cache", on_error: str = "skip", work_dir: str | Path | None = None,
            progress: bool = True, command: str | None = None) -> dict[str, Any]:
    """Does pretraining help on ``path``'s ``label``? Runs scratch, the fitting zoo entries and the
    classical baselines over ``seeds`` seeds, writes results.md / results.json / plots into
    ``out`` (default ``runs/compare-<file stem>``), prints the verdict table and returns the
    summary (verdicts, methods, settings, wall time). Every input is checked before any work."""
    start = time.perf_counter()
    _check_budget(budget, seeds)
    check_choice(on_error, ("skip", "raise"), "--on-error")
    source = _read_input(path, label, smiles_column, label_file, id_column)
    task_type = infer_task_type(source.cells, label, task)
    epochs = max(1, round(EPOCHS * budget))
    trees = max(MIN_TREES, round(TREES * budget))
    specs, entries, skipped = _method_specs(methods, source.domain, trees)
    if entries:
        reference = zoo.card(entries[0])
        model = dict(reference["model"])
        spec = dict(reference.get("feature_spec") or {})
    else:
        model, spec = {"backbone": FALLBACK_BACKBONE[source.domain]}, {}
    split = SPLIT[source.domain]
    task_label = f"{source.path.stem}:{label}"
    data = {**source.data, "label_columns": [label], "task_type": task_type, "on_error": on_error,
            "label": task_label}
    # graphs built the way the encoder was pretrained on
    data.update({k: v for k, v in spec.items() if k in ("explicit_h", "cutoff", "max_neighbors")})
    out_dir = Path(out) if out is not None else Path("runs") / f"compare-{source.path.stem}"
    config = from_dict(RunConfig, {
        "threads": threads, "cache_dir": cache_dir, "progress": progress, "model": model,
        "finetune": {"split": split, "epochs": epochs, **FINETUNE},
        "benchmark": {"tier": "compare", "methods": specs, "tasks": [data], "seeds": list(range(seeds))},
    })
    validate(config, "benchmark", has_data=True)
    parse_methods(config.benchmark.methods)  # option checks of every method, before any work
    prepare_folder(out_dir, "--out")
    if command is None:
        command = (f"graphssl compare {shlex.quote(str(path))} --label {shlex.quote(label)}"
                   + (f" --budget {budget:g}" if budget != 1.0 else "") + (f" --seeds {seeds}" if seeds != 3 else ""))

    with tempfile.TemporaryDirectory(prefix="graphssl-compare-") as scratch_dir:
        work = Path(work_dir) if work_dir is not None else Path(scratch_dir)
        config.output_dir = str(work)
        run_benchmark(config, command=command, announce=False)  # the reports are moved to out_dir below
        results = json.loads((work / "results.json").read_text())
        summary = verdict(results["runs"], [s["name"] for s in specs if isinstance(s, dict)
                                            and s["name"] in baselines.BASELINES])
        table = verdict_table(summary, task_label, seeds, split)
        atomic_write_text((work / "results.md").read_text().rstrip() + "\n\n" + table, out_dir / "results.md")
        for name in REPORTS[2:]:
            if (work / name).is_file():
                atomic_write_bytes((work / name).read_bytes(), out_dir / name)
        summary.update({
            "task": task_label, "task_type": task_type, "input": str(source.path), "label": label,
            "split": split, "seeds": list(range(seeds)), "epochs": epochs, "trees": trees, "budget": budget,
            "model": model, "zoo_entries": entries, "zoo_skipped": skipped,
            "methods_run": [s if isinstance(s, str) else s.get("label", s["name"]) for s in specs],
            "out": str(out_dir), "wall_seconds": time.perf_counter() - start, "table": table,
        })
        results["compare"] = {k: v for k, v in summary.items() if k != "table"}
        atomic_write_text(json.dumps(results, indent=1), out_dir / "results.json")
    print(table)
    for name, why in skipped.items():
        print(f"zoo entry {name} not run: {why}")
    written = ", ".join(n for n in REPORTS if (out_dir / n).is_file())
    print(f"reports written to {out_dir}/: {written} ({summary['wall_seconds'] / 60:.1f} min)")
    return summary
