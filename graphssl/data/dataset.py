"""Featurised molecule data sets: build from a source, cache on disk, report what was skipped."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from torch.utils.data import Dataset
from torch_geometric.data import Data
from tqdm.auto import tqdm

from graphssl.core.config import DataConfig
from graphssl.brep.dataset import is_brep, load_brep_dataset
from graphssl.molecule.featurise import MoleculeGraphsMixin, duplicate_reason, featurise_record, record_text
from graphssl.data.records import BuildReport, FirstSeen, RawSource, rules_key
from graphssl.data.registry import get_dataset_info
from graphssl.molecule.shards import ShardedDataset, is_sharded
from graphssl.data.store import GraphStore
from graphssl.data.stored import StoredGraphs
from graphssl.molecule.tables import user_source
from graphssl.data.tasks import TaskSelection
from graphssl.core.errors import DataError


class MoleculeDataset(MoleculeGraphsMixin, StoredGraphs):
    """A featurised data set: ``dataset[i]`` is a ``Data`` with ``x``, ``edge_index``,
    ``edge_attr``, ``y`` (shape ``[1, num_tasks]``, NaN = missing) and ``smiles``."""

    store: GraphStore

    @property
    def smiles(self) -> list[str]:
        return [self.store.smiles[int(i)] for i in self.indices]


class PrecomputedDataset(Dataset):
    """Graphs transformed once (e.g. coarsened), kept in memory, with the source's metadata."""

    def __init__(self, graphs: list[Data], source: MoleculeDataset) -> None:
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


def resolve_source(config: DataConfig) -> RawSource:
    if config.name and config.path:
        raise DataError(f"give either data.name ('{config.name}') or data.path ('{config.path}'), not both")
    if config.name:
        return get_dataset_info(config.name).load(config.limit)
    if config.path:
        return user_source(config.path, config.smiles_column, config.label_columns, config.task_type, config.limit)
    raise DataError("no data set given: set data.name to a registry name or data.path to a file")


_STRUCTURE_SUFFIXES = (".extxyz", ".xyz", ".db", ".cif", ".vasp", ".poscar")


def is_atomistic(config: DataConfig) -> bool:
    """Whether ``config`` names 3D structures (crystals, molecules with coordinates)."""
    if config.name:
        from graphssl.atomistic.datasets import ATOMISTIC_DATASETS

        return config.name in ATOMISTIC_DATASETS
    if config.path:
        path = Path(config.path)
        return path.is_dir() or path.name.lower().endswith(_STRUCTURE_SUFFIXES)
    return False


def cache_key(source: RawSource, config: DataConfig) -> str:
    from graphssl.molecule.features import FEATURIZER_VERSION

    payload = {
        "featurizer": FEATURIZER_VERSION,
        "source": source.identity,
        "explicit_h": config.explicit_h,
        "conformer": config.conformer,
        "on_error": config.on_error,
        "tasks": source.task_names,
        **rules_key(config, source.task_type is not None),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _featurise(source: RawSource, config: DataConfig, progress: bool) -> tuple[GraphStore, BuildReport]:
    report = BuildReport(source.name)
    graphs: list[Data] = []
    labels: list[list[float]] = []
    labelled = source.task_type is not None
    seen = FirstSeen(config.rejects_duplicates(labelled))
    for record in tqdm(source.records, desc=f"featurising {source.name}", total=config.limit,
                       disable=not progress, unit="mol", mininterval=1.0):
        report.read += 1
        data, reason = featurise_record(record, config, labelled)
        if reason is None:
            earlier = seen.claim(data.smiles, record.index)
            if earlier is not None:
                reason = duplicate_reason(earlier, data.smiles)
        if reason is not None:
            text = record_text(record)
            if config.on_error == "raise":
                raise DataError(f"{source.name}: record {record.index} ({text!r}): {reason}. "
                                "Set data.on_error=skip to skip bad records; they are then reported.")
            report.skip(record.index, text, reason)
            continue
        graphs.append(data)
        labels.append(list(record.labels))
        report.kept += 1
    if not graphs:
        raise DataError(f"{source.name}: no usable record among {report.read} read\n{report.summary()}")
    return GraphStore.from_graphs(graphs, labels, len(source.task_names)), report


def load_dataset(
    config: DataConfig, cache_dir: str | Path = ".graphssl_cache", progress: bool = True, verbose: bool = True
) -> MoleculeDataset:
    """Build (or load from the on-disk cache) the data set described by ``config``.

    The cache key covers the featuriser version, the source files and the options, so any
    change re-processes. The build report (read, kept, skipped with reasons) is printed
    and stored next to the cached graphs.
    """
    config.check()
    if is_sharded(config.path):  # a folder written by `graphssl data prepare`, streamed shard by shard
        dataset = ShardedDataset(config.path)
        if verbose:
            print(dataset.report.summary())
        return dataset
    if is_brep(config):  # before the atomistic check: a folder of STEP files is not one of structures
        return load_brep_dataset(config, cache_dir, progress=progress, verbose=verbose)
    if is_atomistic(config):
        from graphssl.atomistic.datasets import load_atomistic_dataset

        dataset = load_atomistic_dataset(config, cache_dir, progress=progress, verbose=verbose)
        return TaskSelection(dataset, config.label_columns) if config.name and config.label_columns else dataset
    source = resolve_source(config)
    folder = Path(cache_dir) / f"{source.name}-{cache_key(source, config)}"
    graphs_path, report_path = folder / "graphs.pt", folder / "report.json"
    if graphs_path.is_file() and report_path.is_file():
        store = GraphStore.load(graphs_path)
        report = BuildReport.from_json(report_path)
        report.from_cache = True
    else:
        store, report = _featurise(source, config, progress)
        store.save(graphs_path)
        report.to_json(report_path)
    if verbose:
        print(report.summary())
    dataset = MoleculeDataset(store, source.name, source.task_names, source.task_type, source.metric, report)
    # a registry data set with label_columns: keep only those of its tasks
    return TaskSelection(dataset, config.label_columns) if config.name and config.label_columns else dataset
