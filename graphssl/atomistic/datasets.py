"""Atomistic data sets (3D molecules, crystals, energy/force frames) and the recipe that builds
them: each structure record becomes an :class:`~graphssl.atomistic.graph.AtomisticData` with a
neighbour list within ``data.cutoff`` (and at most ``data.max_neighbors`` per atom).

The registered sources and the user inputs are in :mod:`graphssl.atomistic.sources`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable

import torch

from graphssl.atomistic.graph import ATOMISTIC_FIELDS, AtomisticData
from graphssl.atomistic.neighbors import NeighborList
from graphssl.core.config import DataConfig
from graphssl.core.errors import DataError
from graphssl.data.builder import Featurised, Recipe
from graphssl.data.labels import label_problem
from graphssl.data.records import BuildReport, Source, rules_key
from graphssl.data.store import TensorStore
from graphssl.data.stored import StoredGraphs
from graphssl.data.tasks import select_tasks
from graphssl.nn.features import FeatureSpec

# Part of every cache key: bump it when the stored graph changes meaning (fields, names, units).
# 2: edges at exactly the cutoff are kept, skewed cells are stored reduced, CIFs read with pymatgen.
ATOMISTIC_FORMAT_VERSION = "atomistic-graph/2"


@dataclass
class StructureRecord:
    """One input structure before conversion: ``build(cutoff)`` makes it (raising ``DataError``)."""

    index: int
    name: str
    build: Callable[[float], AtomisticData] | None
    labels: list[float]
    error: str | None = None


def atomistic_feature_spec() -> FeatureSpec:
    """Encoder input layout: the atomic number as one categorical column (0..119)."""
    return FeatureSpec(node_dims=(120,))


class AtomisticDataset(StoredGraphs):
    """A featurised atomistic data set: ``dataset[i]`` is an :class:`AtomisticData` with ``y``
    ``[1, num_tasks]`` (NaN = missing) and, when the source has them, energy, forces, stress."""

    @property
    def feature_spec(self) -> FeatureSpec:
        return atomistic_feature_spec()

    @property
    def names(self) -> list[str]:
        names = self.store.strings["name"]
        return [names[int(i)] for i in self.indices]


def structure_key(data: AtomisticData) -> bytes:
    """A digest of a structure's atomic numbers, positions, cell and periodicity: equal for the
    same file read twice or the same frame written twice (duplicates), different otherwise."""
    digest = hashlib.blake2b(digest_size=16)
    for key in ("z", "pos", "cell", "pbc"):
        value = getattr(data, key, None)
        if value is not None:
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.digest()


class AtomisticRecipe(Recipe):
    """Structure records to atomistic graphs with neighbour lists."""

    fields = ATOMISTIC_FIELDS
    store_file = "structures.pt"
    noun, plural, unit = "structure", "structures", "structure"

    def cache_entries(self, source: Source, config: DataConfig) -> dict[str, Any]:
        return {
            "format": ATOMISTIC_FORMAT_VERSION,
            "source": source.identity,
            "cutoff": float(config.cutoff),
            "max_neighbors": config.max_neighbors,
            "limit": config.limit,
            "on_error": config.on_error,  # a strict build must not silently reuse a skipping one
            "tasks": source.task_names,
            **rules_key(config, source.labelled),
        }

    def featuriser(self, source: Source, config: DataConfig) -> Callable[[StructureRecord], Featurised]:
        neighbors = NeighborList(config.cutoff, config.max_neighbors)  # a bad cutoff fails here, once
        labelled = source.labelled
        num_tasks = len(source.task_names)

        def featurise(record: StructureRecord) -> Featurised:
            reason = record.error or label_problem(record.labels, labelled)
            if reason is not None:
                return [], reason
            try:
                data = record.build(config.cutoff)
                if config.max_neighbors is not None:
                    data = neighbors(data)  # the adapters' cutoff shortcut keeps every neighbour
            except DataError as exc:
                return [], str(exc)
            if config.max_atoms is not None and data.z.numel() > config.max_atoms:
                return [], (f"structure has {data.z.numel()} atoms, more than data.max_atoms={config.max_atoms} "
                            "(raise the limit, or set it empty for none, to keep it)")
            data.y = torch.tensor(record.labels, dtype=torch.float32).reshape(1, num_tasks)
            data.z = data.z.long()
            return [data], None

        return featurise

    def describe(self, record: StructureRecord) -> str:
        return record.name

    def duplicate_key(self, record: StructureRecord, graphs: list) -> object:
        return structure_key(graphs[0])

    def duplicate_reason(self, earlier: int, earlier_text: str, graphs: list) -> str:
        return (f"duplicate of structure {earlier} (same atoms, positions and cell); "
                "set data.duplicates=keep to keep duplicates")

    def dataset(self, store: TensorStore, source: Source, report: BuildReport, config: DataConfig) -> Any:
        dataset = AtomisticDataset(store, source.name, source.task_names, source.task_type, source.metric, report)
        return select_tasks(dataset, config)


ATOMISTIC_RECIPE = AtomisticRecipe()
