"""Load any data set by configuration: a registered name or a user's file or folder.

The domain is chosen by the registered entry (:mod:`graphssl.data.sources`), never by trying
readers in turn; the graphs are built once and cached by :mod:`graphssl.data.builder`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset
from torch_geometric.data import Data

from graphssl.core.config import DataConfig
from graphssl.core.errors import DataError
from graphssl.data.builder import build_or_load
from graphssl.data.corpus import Corpus
from graphssl.data.records import Source
from graphssl.data.sources import DataSource, InputKind, entry_for, expand_paths


class PrecomputedDataset(Dataset):
    """Graphs transformed once (e.g. coarsened), kept in memory, with the source's metadata."""

    def __init__(self, graphs: list[Data], source: Any) -> None:
        self.graphs = graphs
        self.source = source

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, i: int) -> Data:
        return self.graphs[i]

    @property
    def feature_spec(self):
        return self.source.feature_spec

    @property
    def name(self) -> str:
        return self.source.name


def domain_of(config: DataConfig) -> str:
    """The domain ("molecule", "atomistic", "brep") of the data ``config`` names; for a corpus
    (``data.sources``) the one domain all its data sets share."""
    parts = config.parts()
    domains = [entry_for(expand_paths(part)).domain for part, _ in parts]
    for i, domain in enumerate(domains[1:], 1):
        if domain != domains[0]:
            raise DataError(f"data.sources[{i}] ({_label(parts[i][0])}) is {domain} data and data.sources[0] "
                            f"({_label(parts[0][0])}) is {domains[0]} data: a corpus holds one domain")
    return domains[0]


def _label(config: DataConfig) -> str:
    return f"'{config.name or config.path}'"


def _opener(entry: DataSource | InputKind, config: DataConfig):
    if entry.open is None:
        what = f"data set '{config.name}'" if config.name else f"'{config.path}' ({entry.name})"
        raise DataError(f"{what} is read as it is, not built from records; use it through load_dataset")
    return entry.open


def resolve_source(config: DataConfig, cache_dir: str | Path = ".graphssl_cache", progress: bool = False) -> Source:
    """The records of the data set ``config`` names, not yet featurised (e.g. for ``prepare_shards``)."""
    config.check()
    config = expand_paths(config)
    entry = entry_for(config)
    return _opener(entry, config)(config, Path(cache_dir), progress)


def load_dataset(config: DataConfig, cache_dir: str | Path = ".graphssl_cache", progress: bool = True,
                 verbose: bool = True) -> Any:
    """Build (or load from the on-disk cache) the data set described by ``config``.

    The cache key covers the domain's format version, the source files and the options, so any
    change re-processes. The build report (read, kept, skipped with reasons) is printed
    (``verbose``) and stored next to the cached graphs. The data set has ``name``,
    ``task_names``, ``task_type``, ``metric``, ``report``, ``feature_spec``, ``labels`` and
    ``subset()``, plus what its domain adds (``smiles``, ``names``, ``class_names``, ...). A
    corpus (``data.sources``) is a :class:`~graphssl.data.corpus.Corpus` of the sets it lists.
    """
    config.check()
    if config.sources:
        domain_of(config)
        parts = config.parts()
        return Corpus([load_dataset(part, cache_dir, progress, verbose) for part, _ in parts],
                      [repeat for _, repeat in parts])
    config = expand_paths(config)
    entry = entry_for(config)
    cache_dir = Path(cache_dir)
    if entry.load is not None:
        return entry.load(config, cache_dir, progress, verbose)
    source = _opener(entry, config)(config, cache_dir, progress)
    return build_or_load(source, entry.recipe, config, cache_dir, progress=progress, verbose=verbose)
