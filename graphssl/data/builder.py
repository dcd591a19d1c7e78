"""Build a data set from a source once, cache it on disk, and report what was kept and skipped.

The same routine serves every domain. A domain supplies a :class:`Recipe`: how one record
becomes graphs (or a reason why it cannot), the key that makes two records duplicates, the
entries of the cache key, the store layout and the data set class. The routine supplies the
rest: the option-keyed cache folder, strict (``data.on_error=raise``) and lenient (``skip``)
handling of bad records, the duplicate rule, and the build report, written atomically and last,
so that its presence marks a complete build.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable

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
    featurise = recipe.featuriser(source, config)
    report = BuildReport(source.name)
    graphs: list[Data] = []
    seen = FirstSeen(config.rejects_duplicates(source.labelled))
    records = tqdm(source.records, desc=f"featurising {source.name}", total=source.total,
                   disable=not progress, unit=recipe.unit, mininterval=1.0)
    for record in records:
        index, text = recipe.index(record), recipe.describe(record)
        found, reason = featurise(record)
        if reason is None:
            # claimed only once the record built, so a copy of a bad record is reported for its own problem
            earlier = seen.claim(recipe.duplicate_key(record, found), (index, text))
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
    return TensorStore.from_graphs(graphs, recipe.fields), report


def build_or_load(source: Source, recipe: Recipe, config: DataConfig, cache_dir: str | Path = ".graphssl_cache",
                  progress: bool = True, verbose: bool = True) -> Any:
    """The data set of ``source``: loaded from ``cache_dir`` when this build was made before,
    else built and cached. The build report is printed (``verbose``) and kept with the graphs."""
    folder = Path(cache_dir) / f"{source.name}-{cache_key(recipe.cache_entries(source, config))}"
    store_path, report_path = folder / recipe.store_file, folder / REPORT_FILE
    if store_path.is_file() and report_path.is_file():
        store = TensorStore.load(store_path, recipe.fields)
        report = BuildReport.from_json(report_path)
        report.from_cache = True
    else:
        store, report = build(source, recipe, config, progress)
        store.save(store_path)
        report.to_json(report_path)  # last: its presence marks a complete build
    if verbose:
        print(report.summary())
    return recipe.dataset(store, source, report, config)
