"""Build a data set from a source once, cache it on disk, and report what was kept and skipped.

The same routine serves every domain. A domain supplies a :class:`Recipe`: how one record
becomes graphs (or a reason why it cannot), the key that makes two records duplicates, the
entries of the cache key, the store layout and the data set class. The routine supplies the
rest: the option-keyed cache folder, strict (``data.on_error=raise``) and lenient (``skip``)
handling of bad records, the duplicate rule, and the build report, written atomically and last,
so that its presence marks a complete build.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch_geometric.data import Data
from tqdm.auto import tqdm

from graphssl.core.config import DataConfig
from graphssl.core.errors import DataError
from graphssl.data.records import BuildReport, FirstSeen, Source
from graphssl.data.store import GraphFields, TensorStore

REPORT_FILE = "report.json"

# One record in, its graphs (usually one) or the reason it is a bad record out.
Featurised = tuple[list[Data], str | None]


class Recipe(ABC):
    """How one domain turns the records of a :class:`Source` into stored graphs."""

    fields: GraphFields
    store_file: str = "graphs.pt"  # the file name inside the cache folder
    noun: str = "record"  # how errors name one record: "record 3 ('CCX')", "structure 1 ('a.cif')"
    plural: str = "records"
    unit: str = "record"  # progress bar unit

    @abstractmethod
    def cache_entries(self, source: Source, config: DataConfig) -> dict[str, Any]:
        """Everything the build depends on (source identity, options, format versions); any
        change gives another cache folder."""

    @abstractmethod
    def featuriser(self, source: Source, config: DataConfig) -> Callable[[Any], Featurised]:
        """The per-record step; made once per build, so a bad option fails once, not per record."""

    @abstractmethod
    def describe(self, record: Any) -> str:
        """How a record is named in reports and errors (its SMILES, file or frame name)."""

    @abstractmethod
    def duplicate_key(self, record: Any, graphs: list[Data]) -> object:
        """Equal for two records that are the same input (canonical SMILES, structure hash, ...)."""

    @abstractmethod
    def duplicate_reason(self, earlier: int, earlier_text: str, graphs: list[Data]) -> str:
        """Why a record is a duplicate of record ``earlier``, and how to keep duplicates."""

    @abstractmethod
    def dataset(self, store: TensorStore, source: Source, report: BuildReport, config: DataConfig) -> Any:
        """The data set object over a built or loaded store."""

    def index(self, record: Any) -> int:
        """The record's position in its source, as reports and errors give it."""
        return int(record.index)


def cache_key(entries: dict[str, Any]) -> str:
    """The cache folder suffix of a build: a digest of its cache entries."""
    return hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()[:16]


def build(source: Source, recipe: Recipe, config: DataConfig, progress: bool = True) -> tuple[TensorStore, BuildReport]:
    """Featurise every record of ``source``; the store of the kept graphs and the build report.

    A bad record (one the featuriser refuses, or a duplicate of an earlier kept one when
    ``config.duplicates`` rejects duplicates) stops the build under ``on_error=raise`` with an
    error naming it, and is skipped and reported under ``on_error=skip``.
    """
    report = BuildReport(source.name, labels=dict(source.label_reading), input=dict(source.input))
    graphs: list[Data] = []
    seen = FirstSeen(config.rejects_duplicates(source.labelled))
    done = tqdm(_featurised(source, recipe, config), desc=f"featurising {source.name}", total=source.total,
                disable=not progress, unit=recipe.unit, mininterval=1.0)
    for index, text, found, reason, key in done:
        if reason is None:
            # claimed only once the record built, so a copy of a bad record is reported for its own problem
            earlier = seen.claim(key, (index, text))
            if earlier is not None:
                reason = recipe.duplicate_reason(earlier[0], earlier[1], found)
        if reason is not None:
            report.read += 1
            if config.on_error == "raise":
                raise DataError(f"{source.name}: {recipe.noun} {index} ({text!r}): {reason}. Set data.on_error=skip "
                                f"to skip bad {recipe.plural}; they are then reported.")
            report.skip(index, text, reason)
            continue
        # a record may hold several graphs (a STEP file with several solids): each counts
        report.read += len(found)
        report.kept += len(found)
        graphs.extend(found)
    if not graphs:
        raise DataError(f"{source.name}: no usable {recipe.noun} among {report.read} read\n{report.summary()}")
    if source.task_type == "classification" and all(getattr(g, "y", None) is not None for g in graphs):
        check_classes(source.name, source.task_names, torch.cat([g.y.reshape(1, -1) for g in graphs]), report)
    return TensorStore.from_graphs(graphs, recipe.fields), report


# One featurised record: its index, its description, its graphs or the reason it is bad, and
# its duplicate key (None for a bad record).
_Done = tuple[int, str, list[Data], str | None, object]


def _featurise_one(recipe: Recipe, featurise: Callable[[Any], Featurised], record: Any) -> _Done:
    found, reason = featurise(record)
    key = recipe.duplicate_key(record, found) if reason is None else None
    return recipe.index(record), recipe.describe(record), found, reason, key


_WORKER: tuple[Recipe, Callable[[Any], Featurised]] | None = None


def _start_worker(recipe: Recipe, source: Source, config: DataConfig) -> None:
    global _WORKER
    torch.set_num_threads(1)  # the processes share the cores
    _WORKER = (recipe, recipe.featuriser(source, config))


def _featurise_in_worker(record: Any) -> bytes:
    assert _WORKER is not None, "the pool initialiser sets up each worker"
    # Plain pickle bytes: multiprocessing would send each tensor as a shared-memory file
    # descriptor, and thousands of graphs exhaust the descriptors a process may hold.
    return pickle.dumps(_featurise_one(*_WORKER, record), protocol=pickle.HIGHEST_PROTOCOL)


def _featurised(source: Source, recipe: Recipe, config: DataConfig) -> Iterator[_Done]:
    """Every record of ``source`` featurised, in order: here, or in ``config.workers`` processes."""
    if config.workers <= 1:
        featurise = recipe.featuriser(source, config)
        for record in source.records:
            yield _featurise_one(recipe, featurise, record)
        return
    import multiprocessing as mp

    # Not fork: a forked child of a process whose OpenMP pool has run can deadlock. Each worker
    # makes its own featuriser from the source's description (its records travel one by one).
    methods = mp.get_all_start_methods()
    context = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
    bare = dataclasses.replace(source, records=[])
    try:
        pickle.dumps((recipe, bare, config))
    except Exception as exc:
        raise DataError(f"{source.name}: data.workers={config.workers} needs a data set description that can be "
                        f"sent to other processes ({type(exc).__name__}: {exc}); set data.workers=1") from None
    with context.Pool(config.workers, initializer=_start_worker, initargs=(recipe, bare, config)) as pool:
        for done in pool.imap(_featurise_in_worker, source.records, chunksize=4):
            yield pickle.loads(done)


def check_classes(name: str, task_names: list[str], y: torch.Tensor, report: BuildReport) -> None:
    """Refuse classification labels that are not 0/1, and note in the report each column that
    has fewer than two classes (it cannot be scored; fine-tuning refuses a task where no column
    has both, see :func:`graphssl.data.splits.make_split`)."""
    y = y.float()
    present = ~torch.isnan(y)
    odd = present & (y != 0) & (y != 1)
    if odd.any():
        column = int(odd.any(0).nonzero()[0])
        values = sorted({float(v) for v in y[present[:, column], column].unique()})
        raise DataError(f"{name}: classification task {task_names[column]!r} has label values {values[:6]}; "
                        "binary classification labels are 0 and 1")
    for task, problem in zip(task_names, single_class(y)):
        if problem is not None:
            note = f"{problem}: not scored (ROC-AUC needs both classes)"
            report.labels[task] = f"{report.labels[task]}; {note}" if task in report.labels else note


def single_class(y: torch.Tensor) -> list[str | None]:
    """For each column of a 0/1 label matrix (NaN: missing), why it has fewer than two classes,
    or None when it has both."""
    out: list[str | None] = []
    for column in range(y.shape[1]):
        labels = y[~torch.isnan(y[:, column]), column]
        classes = sorted({int(v) for v in labels.unique()})
        out.append(None if len(classes) == 2 else
                   f"only class {classes[0]} among its {len(labels)} labels" if classes else "no label")
    return out


def _load_cached(store_path: Path, report_path: Path, recipe: Recipe,
                 verbose: bool) -> tuple[TensorStore, BuildReport] | None:
    """The store and report of an earlier build, or None when there is none or either file is
    unreadable (an empty or cut-short file from a crash, a disk full, a bad copy): then the
    build runs again and replaces both."""
    if not (store_path.is_file() and report_path.is_file()):
        return None
    try:
        report = BuildReport.from_json(report_path)
        store = TensorStore.load(store_path, recipe.fields)
    except DataError as exc:
        if verbose:
            print(f"rebuilding {report_path.parent}: {exc}")
        return None
    report.from_cache = True
    return store, report


def build_or_load(source: Source, recipe: Recipe, config: DataConfig, cache_dir: str | Path = ".graphssl_cache",
                  progress: bool = True, verbose: bool = True) -> Any:
    """The data set of ``source``: loaded from ``cache_dir`` when this build was made before,
    else built and cached. The build report is printed (``verbose``) and kept with the graphs."""
    folder = Path(cache_dir) / f"{source.name}-{cache_key(recipe.cache_entries(source, config))}"
    store_path, report_path = folder / recipe.store_file, folder / REPORT_FILE
    cached = _load_cached(store_path, report_path, recipe, verbose)
    if cached is not None:
        store, report = cached
    else:
        store, report = build(source, recipe, config, progress)
        store.save(store_path)
        report.to_json(report_path)  # last: its presence marks a complete build
    if verbose:
        print(report.summary())
    return recipe.dataset(store, source, report, config)
