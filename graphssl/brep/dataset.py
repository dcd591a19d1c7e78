"""B-rep data sets: face-adjacency graphs of the solids in STEP files, optionally with per-face
labels, and the recipe that builds them.

A folder holds ``*.step`` / ``*.stp`` files and, for segmentation, a ``<stem>.labels`` file
next to each: one integer class per line, one line per face, in the face order of
:func:`graphssl.brep.adapter.solid_to_data` (a file with several solids: the faces of
solid 0, then solid 1, ...). ``classes.txt`` (one name per line) names the classes; without
it they are ``class_0 .. class_{K-1}`` with K one more than the largest label. When no
labels file exists at all the data set is unlabeled (for pretraining).

Every file is a record; a file that cannot be used (unreadable STEP, invalid solid, a
labels file that is missing, malformed or whose count differs from the face count, or a
byte-for-byte copy of an earlier part when ``data.duplicates`` rejects duplicates, as it does
for labelled parts by default) is one bad record:
``data.on_error=raise`` stops naming the file, ``skip`` skips and reports it. The sources
(folders, single files and the registered generated sets) are in :mod:`graphssl.brep.sources`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from torch_geometric.data import Data

from graphssl.brep.descriptors import BREP_DESCRIPTORS, BREP_SET
from graphssl.brep.encoders import brep_feature_spec
from graphssl.core.config import DataConfig
from graphssl.core.errors import ConfigError, DataError
from graphssl.data.builder import Featurised, Recipe
from graphssl.data.records import BuildReport, Source, rules_key
from graphssl.data.store import GraphFields, TensorStore
from graphssl.nn.features import FeatureSpec

__all__ = ["BREP_FIELDS", "BREP_FORMAT_VERSION", "BRepDataset", "BRepRecipe", "BRepSource", "StepRecord"]

BREP_FORMAT_VERSION = "graphssl-brep/1"  # part of the cache key: bump when the adapter's output changes
DEFAULT_GRID = 10

# How B-rep graphs are stored (see graphssl.brep.adapter for the fields).
BREP_FIELDS = GraphFields(
    kind="brep",
    node=("x", "face_area", "face_grid", "y"),  # y: long [F], one class per face, when labelled
    edge=("edge_attr", "edge_length", "edge_grid"),
    graph=("norm_center", "norm_scale", "descriptors"),  # descriptors: [1, D], with data.descriptors
    strings=("name",),
    optional=frozenset({"y", "descriptors"}),
    legacy={BREP_FORMAT_VERSION: "names"},
)


@dataclass
class StepRecord:
    """One STEP file of a source, at position ``index``."""

    index: int
    path: Path


@dataclass
class BRepSource(Source):
    """STEP files and, when labelled, the names of the face classes."""

    class_names: list[str] = field(default_factory=list)



class BRepDataset(Dataset):
    """Face-adjacency graphs of B-rep solids; ``dataset[i]`` is a ``Data`` with the fields of
    :mod:`graphssl.brep.adapter`, ``name`` and, when labelled, ``y`` (long ``[F]``)."""

    def __init__(self, store: TensorStore, name: str, class_names: Sequence[str], report: BuildReport,
                 grid: int = DEFAULT_GRID, indices: np.ndarray | None = None) -> None:
        self.store, self.name, self.report, self.grid = store, name, report, grid
        self.class_names = tuple(class_names)
        self.indices = np.arange(len(store)) if indices is None else np.asarray(indices, dtype=np.int64)

    @property
    def labelled(self) -> bool:
        return bool(self.class_names)

    @property
    def task_names(self) -> list[str]:
        return ["face_class"] if self.labelled else []

    @property
    def task_type(self) -> str | None:
        """``segmentation`` (one class per face) when labelled, else None."""
        return "segmentation" if self.labelled else None

    @property
    def metric(self) -> str | None:
        return "miou" if self.labelled else None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Data:
        return self.store.get(int(self.indices[i]))

    @property
    def names(self) -> list[str]:
        names = self.store.strings["name"]
        return [names[int(i)] for i in self.indices]

    @property
    def feature_spec(self) -> FeatureSpec:
        """UV-grid CNN embeddings sized for this data set's grid."""
        return brep_feature_spec(self.grid)

    def subset(self, indices: Sequence[int] | np.ndarray) -> "BRepDataset":
        """A view on the given positions of this data set."""
        return BRepDataset(self.store, self.name, self.class_names, self.report, self.grid,
                           self.indices[np.asarray(indices, dtype=np.int64)])


def read_labels(path: Path) -> list[int]:
    """The face classes of a ``.labels`` file; a :class:`DataError` naming it when malformed."""
    lines = [s.strip() for s in path.read_text().splitlines() if s.strip()]
    try:
        return [int(s) for s in lines]
    except ValueError:
        bad = next(s for s in lines if not s.lstrip("-").isdigit())
        raise DataError(f"labels file '{path.name}' holds {bad!r}, expected one integer class per line") from None


def _graphs_of(path: Path, source: BRepSource, grid: int, descriptors: bool = False) -> list[Data]:
    from graphssl.brep.adapter import step_to_graphs  # OpenCascade: imported once parts are built

    graphs = step_to_graphs(path, grid=grid, descriptors=descriptors)
    if not source.labelled:
        return graphs
    label_path = path.with_suffix(".labels")
    if not label_path.is_file():
        raise DataError(f"no labels file '{label_path.name}' next to it (the other parts have one)")
    labels = read_labels(label_path)
    faces = sum(g.num_nodes for g in graphs)
    if len(labels) != faces:
        raise DataError(f"labels file '{label_path.name}' has {len(labels)} labels but the part has {faces} faces")
    bad = [v for v in labels if not 0 <= v < len(source.class_names)]
    if bad:
        raise DataError(f"labels file '{label_path.name}' has class {bad[0]} outside 0..{len(source.class_names) - 1}")
    start = 0
    for g in graphs:
        g.y = torch.tensor(labels[start : start + g.num_nodes], dtype=torch.long)
        start += g.num_nodes
    return graphs


class BRepRecipe(Recipe):
    """STEP files to face-adjacency graphs, one per solid, with face labels when labelled."""

    fields = BREP_FIELDS
    store_file = "graphs.pt"
    noun, plural, unit = "part", "parts", "part"

    def __init__(self, grid: int = DEFAULT_GRID) -> None:
        self.grid = grid

    def cache_entries(self, source: BRepSource, config: DataConfig) -> dict[str, Any]:
        entries = {"format": BREP_FORMAT_VERSION, "source": source.identity, "grid": self.grid,
                   "on_error": config.on_error, "classes": source.class_names, **rules_key(config, source.labelled)}
        if _wants_descriptors(config):  # absent otherwise, so caches built without them keep their key
            entries["descriptors"] = {"set": BREP_SET, "names": list(BREP_DESCRIPTORS)}
        return entries

    def featuriser(self, source: BRepSource, config: DataConfig) -> Callable[[StepRecord], Featurised]:
        from OCP.Standard import Standard_Failure  # the kernel raises its own failures on bad geometry

        descriptors = _wants_descriptors(config)

        def featurise(record: StepRecord) -> Featurised:
            try:
                return _graphs_of(record.path, source, self.grid, descriptors), None
            except (DataError, Standard_Failure) as exc:
                return [], str(exc)

        return featurise

    def describe(self, record: StepRecord) -> str:
        return record.path.name

    def duplicate_key(self, record: StepRecord, graphs: list[Data]) -> object:
        return hashlib.sha256(record.path.read_bytes()).digest()

    def duplicate_reason(self, earlier: int, earlier_text: str, graphs: list[Data]) -> str:
        return (f"duplicate of part {earlier} ({earlier_text!r}): the files are byte for byte the same; "
                "set data.duplicates=keep to keep duplicates")

    def dataset(self, store: TensorStore, source: BRepSource, report: BuildReport, config: DataConfig) -> Any:
        return BRepDataset(store, source.name, source.class_names, report, self.grid)


def _wants_descriptors(config: DataConfig) -> bool:
    """Whether ``data.descriptors`` asks for the part descriptors (``brep``); another set fails."""
    if config.descriptors is None:
        return False
    if config.descriptors != BREP_SET:
        raise ConfigError(f"option 'data.descriptors' is {config.descriptors!r}, but CAD parts have one descriptor "
                          f"set: {BREP_SET} (or empty for none)")
    return True


BREP_RECIPE = BRepRecipe()
