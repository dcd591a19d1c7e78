"""Classical supervised baselines for molecule tasks: random forests on ECFP counts or RDKit 2D
descriptors, run by the benchmark harness on the same splits, label subsets and seeds as the
graph neural networks.

- ``ecfp-rf``: Morgan count fingerprints (radius 2, 2,048 bits; :mod:`graphssl.molecule.fingerprints`).
- ``rdkit-rf``: RDKit's 2D descriptors (:mod:`graphssl.molecule.descriptors`); a descriptor RDKit
  cannot compute for a molecule (NaN) takes the median of that descriptor over the fitted
  training rows (0 when no training row has it), and values are clipped to float32's range,
  the precision scikit-learn's trees work in.

Model selection: every point of a small grid over ``max_features`` x ``min_samples_leaf`` is
fitted on the training rows and scored on the validation split with the task's metric; the
point with the best validation score (the first on ties, in grid order) is kept and its test
score reported. The test split never chooses anything, as for the fine-tuned networks.
Classification: ``RandomForestClassifier``, ``predict_proba`` of the positive class, ROC-AUC;
regression: ``RandomForestRegressor``, RMSE or MAE as the task says. Each task of a
multi-task data set gets its own forest, fitted on the training rows that have its label
(missing labels are NaN, as in the fine-tuning loop). Forests are seeded by the run's seed.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from graphssl.core.errors import ConfigError, DataError
from graphssl.core.io import atomic_write_bytes
from graphssl.tasks.metrics import compute_metric, is_better

BASELINES = {
    "ecfp-rf": "random forest on ECFP counts",
    "rdkit-rf": "random forest on RDKit 2D descriptors",
}

# 500 trees, as chemprop's random-forest baseline. max_features: sqrt(d) is scikit-learn's
# classification default; the second value is a wider search per split: a third of the
# descriptors (Breiman's regression default), but only a tenth of the 2,048 fingerprint bits:
# with a third of them a FreeSolv forest took three times as long to fit as with sqrt.
DEFAULTS: dict[str, dict[str, Any]] = {
    "ecfp-rf": {"n_estimators": 500, "max_features": ["sqrt", 0.1], "min_samples_leaf": [1, 3],
                "radius": 2, "bits": 2048},
    "rdkit-rf": {"n_estimators": 500, "max_features": ["sqrt", 0.33], "min_samples_leaf": [1, 3],
                 "descriptors": "fast"},
}

# Descriptor worker processes each import RDKit (seconds on a busy machine): below this many
# molecules one process is faster.
_PARALLEL_FROM = 5000


def check_options(name: str, options: dict[str, Any], where: str = "benchmark.methods") -> dict[str, Any]:
    """The options of baseline ``name`` with defaults filled in; ConfigError on an unknown or bad one."""
    if name not in DEFAULTS:
        raise ConfigError(f"unknown baseline '{name}'; choose one of: {', '.join(DEFAULTS)}")
    out = dict(DEFAULTS[name])
    unknown = sorted(set(options) - set(out))
    if unknown:
        raise ConfigError(f"{where}: method '{name}' has no option(s) {unknown}; its options are {sorted(out)}")
    out.update(options)
    for key in ("max_features", "min_samples_leaf"):
        if not isinstance(out[key], list):
            out[key] = [out[key]]
        if not out[key]:
            raise ConfigError(f"{where}: option '{key}' of method '{name}' needs at least one value")
    for value in out["max_features"]:
        ok = (value in ("sqrt", "log2") or (isinstance(value, float) and 0 < value <= 1)
              or (isinstance(value, int) and not isinstance(value, bool) and value >= 1))
        if not ok:
            raise ConfigError(f"{where}: max_features of method '{name}' must be sqrt, log2, a share in (0, 1] "
                              f"or a count, got {value!r}")
    integers = [("n_estimators", [out["n_estimators"]], 1), ("min_samples_leaf", out["min_samples_leaf"], 1)]
    if name == "ecfp-rf":
        integers += [("bits", [out["bits"]], 1), ("radius", [out["radius"]], 0)]
    for key, values, low in integers:
        for value in values:
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{where}: {key} of method '{name}' must be an integer >= {low}, got {value!r}")
    if name == "rdkit-rf":
        try:
            from graphssl.molecule.descriptors import descriptor_names
        except ImportError:
            raise ConfigError(f"{where}: method 'rdkit-rf' needs RDKit: pip install graphssl-pretrain[mol]") from None
        descriptor_names(out["descriptors"])  # an unknown set fails now, not after pretraining
    return out


def describe(name: str, options: dict[str, Any]) -> str:
    """One line for the report: features, forest and the selection grid."""
    features = (f"ECFP counts (Morgan radius {options['radius']}, {options['bits']:,} bits)" if name == "ecfp-rf"
                else f"RDKit 2D descriptors (set '{options['descriptors']}', NaN -> training median)")
    return (f"random forest on {features}, {options['n_estimators']} trees; max_features in "
            f"{options['max_features']} x min_samples_leaf in {options['min_samples_leaf']} chosen by the "
            "validation score")


# --------------------------------------------------------------------------- features


@dataclass
class _Features:
    """One baseline's feature matrix over a data set, filled row by row as splits ask for rows."""

    key: tuple
    matrix: np.ndarray
    done: np.ndarray  # bool per row: computed


_FEATURES: dict[str, _Features] = {}


def _cache_path(cache_dir: Path, name: str, key: tuple) -> Path:
    params = "-".join(str(p) for p in key[0])
    return Path(cache_dir) / "baseline_features" / f"{name}-{params}-{key[1][:20]}.npz"


def _load_cached(path: Path, key: tuple, n: int) -> _Features | None:
    """The rows an earlier process computed, or None when ``path`` is absent or not this matrix."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            rows, values = data["rows"], data["values"]
            if str(data["digest"]) != key[1] or int(data["n"]) != n:
                return None
    except (OSError, ValueError, KeyError) as exc:
        warnings.warn(f"ignoring the unreadable baseline feature cache {path} ({exc}); computing again",
                      stacklevel=3)
        return None
    matrix = np.zeros((n, values.shape[1]), dtype=values.dtype)
    matrix[rows] = values
    done = np.zeros(n, dtype=bool)
    done[rows] = True
    return _Features(key, matrix, done)


def _save_cached(path: Path, entry: _Features) -> None:
    # another process on the same cache may have added rows since this one read it: keep them
    # (a damaged file was already reported when it was read, and is overwritten here)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = _load_cached(path, entry.key, len(entry.done))
    if other is not None:
        theirs = other.done & ~entry.done
        entry.matrix[theirs] = other.matrix[theirs]
        entry.done |= theirs
    rows = np.flatnonzero(entry.done)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, rows=rows, values=entry.matrix[rows], digest=np.array(entry.key[1]),
                        n=np.array(len(entry.done)))
    atomic_write_bytes(buffer.getvalue(), path)


def _compute(name: str, options: dict[str, Any], smiles: list[str], processes: int) -> np.ndarray:
    if name == "ecfp-rf":
        from graphssl.molecule.fingerprints import ecfp_matrix

        return ecfp_matrix(smiles, radius=options["radius"], bits=options["bits"])
    from graphssl.molecule.descriptors import descriptor_matrix, descriptor_names

    workers = max(1, processes) if len(smiles) >= _PARALLEL_FROM else 1
    return descriptor_matrix(smiles, descriptor_names(options["descriptors"]), processes=workers)


def features(name: str, options: dict[str, Any], smiles: Sequence[str], rows: Sequence[int] | None = None,
             processes: int = 1, cache_dir: str | Path | None = None) -> tuple[np.ndarray, float]:
    """The feature matrix of baseline ``name`` over all of ``smiles`` with at least ``rows``
    computed (default: every row), and the seconds this call spent computing.

    Rows are computed when first asked for (a split of 7,000 QM9 molecules does not pay for
    130,000) and kept for the process, so every seed and split of a task, and tasks sharing a
    data set, reuse them. With ``cache_dir`` the computed rows are also kept on disk, keyed by
    the options and the SMILES, so a later invocation (a resumed benchmark) reuses them. Rows not
    asked for hold zeros.
    """
    smiles = list(smiles)
    n = len(smiles)
    digest = hashlib.sha256("\n".join(smiles).encode()).hexdigest()
    params = (options["radius"], options["bits"]) if name == "ecfp-rf" else (options["descriptors"],)
    key = (params, digest)
    path = _cache_path(Path(cache_dir), name, key) if cache_dir is not None else None
    entry = _FEATURES.get(name)
    if entry is None or entry.key != key:
        entry = _load_cached(path, key, n) if path is not None else None
    wanted = np.arange(n) if rows is None else np.unique(np.asarray(rows, dtype=np.int64))
    if not len(wanted):
        raise DataError(f"baseline '{name}': no molecules to compute features for")
    missing = wanted if entry is None else wanted[~entry.done[wanted]]
    seconds = 0.0
    if len(missing):
        start = time.perf_counter()
        values = _compute(name, options, [smiles[i] for i in missing], processes)
        if entry is None:
            entry = _Features(key, np.zeros((n, values.shape[1]), dtype=values.dtype), np.zeros(n, dtype=bool))
        entry.matrix[missing] = values
        entry.done[missing] = True
        if path is not None:
            _save_cached(path, entry)
        seconds = time.perf_counter() - start
    # one matrix per baseline (the last data set's): all of QM9's fingerprints take 268 MB
    _FEATURES[name] = entry
    return entry.matrix, seconds


def feature_summary(name: str) -> dict[str, int]:
    """Rows of baseline ``name``'s current matrix computed so far, and missing (NaN) values among them."""
    entry = _FEATURES[name]
    done = entry.matrix[entry.done]
    return {"computed": int(entry.done.sum()), "missing": int(np.isnan(done).sum()) if done.dtype.kind == "f" else 0}


_F32_MAX = float(np.finfo(np.float32).max)


def _prepare(matrix: np.ndarray, fit_rows: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``matrix[rows]`` as float32 with NaN replaced by the median over ``fit_rows``."""
    x = np.asarray(matrix[rows], dtype=np.float64)
    if np.isnan(x).any():
        fit = np.asarray(matrix[fit_rows], dtype=np.float64)
        with np.errstate(all="ignore"):
            present = ~np.isnan(fit).all(axis=0)
            medians = np.zeros(fit.shape[1])
            medians[present] = np.nanmedian(fit[:, present], axis=0)
        x = np.where(np.isnan(x), medians, x)
    return np.clip(x, -_F32_MAX, _F32_MAX).astype(np.float32)


# --------------------------------------------------------------------------- forests


@dataclass
class BaselineResult:
    """Scores of the selected grid point, as the fine-tuning loop reports its selected epoch."""

    metric: str
    valid: float
    test: float
    train_size: int
    seconds: float
    selected: dict[str, Any]
    grid: list[dict[str, Any]] = field(default_factory=list)  # every point with its validation score


def _predict(model: Any, x: np.ndarray, classification: bool) -> np.ndarray:
    if not classification:
        return model.predict(x)
    classes = list(model.classes_)
    # a task whose training labels hold one class: its forest knows only that class
    return model.predict_proba(x)[:, classes.index(1.0)] if 1.0 in classes else np.zeros(len(x))


def fit_forests(
    matrix: np.ndarray,
    labels: np.ndarray,
    train: np.ndarray,
    valid: np.ndarray,
    test: np.ndarray,
    task_type: str,
    metric: str,
    options: dict[str, Any],
    seed: int,
    n_jobs: int | None = None,
) -> BaselineResult:
    """Fit a forest per task and grid point on ``train`` rows, select on ``valid``, score ``test``.

    ``matrix`` is ``[n, d]`` over the whole data set, ``labels`` ``[n, num_tasks]`` (NaN: missing)
    and ``train``/``valid``/``test`` are row indices into both.
    """
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    if task_type not in ("classification", "regression"):
        raise ConfigError(f"random-forest baselines need a classification or regression task, got {task_type!r}")
    classification = task_type == "classification"
    labels = np.asarray(labels, dtype=np.float64).reshape(len(labels), -1)
    train, valid, test = (np.asarray(i, dtype=np.int64) for i in (train, valid, test))
    if not (len(train) and len(valid) and len(test)):
        raise DataError(f"the split leaves {len(train)}/{len(valid)}/{len(test)} molecules for train/valid/test; "
                        "each needs at least one")
    start = time.perf_counter()
    x_train = _prepare(matrix, train, train)
    x_valid, x_test = _prepare(matrix, train, valid), _prepare(matrix, train, test)
    forest = RandomForestClassifier if classification else RandomForestRegressor

    best: tuple[float, float, dict[str, Any]] | None = None
    grid = []
    for max_features, leaf in itertools.product(options["max_features"], options["min_samples_leaf"]):
        point = {"max_features": max_features, "min_samples_leaf": leaf}
        pred_valid = np.zeros((len(valid), labels.shape[1]))
        pred_test = np.zeros((len(test), labels.shape[1]))
        for t in range(labels.shape[1]):
            rows = np.isfinite(labels[train, t])
            if not rows.any():
                # no training label for this task: a constant prediction (ROC-AUC 0.5)
                pred_valid[:, t], pred_test[:, t] = (0.5, 0.5) if classification else (0.0, 0.0)
                continue
            model = forest(n_estimators=options["n_estimators"], max_features=max_features, min_samples_leaf=leaf,
                           random_state=seed, n_jobs=n_jobs)
            model.fit(x_train[rows], labels[train, t][rows])
            pred_valid[:, t] = _predict(model, x_valid, classification)
            pred_test[:, t] = _predict(model, x_test, classification)
        valid_score = compute_metric(metric, labels[valid], pred_valid)
        test_score = compute_metric(metric, labels[test], pred_test)
        grid.append({**point, "valid": valid_score})
        if best is None or is_better(metric, valid_score, best[0]):
            best = (valid_score, test_score, point)
    assert best is not None  # the grid holds at least one point (check_options)
    return BaselineResult(metric, best[0], best[1], int(len(train)), time.perf_counter() - start, best[2], grid)
