"""B-rep data sets: folders of STEP files (optionally with per-face labels) as face graphs.

A folder holds ``*.step`` / ``*.stp`` files and, for segmentation, a ``<stem>.labels`` file
next to each: one integer class per line, one line per face, in the face order of
:func:`graphssl.brep.adapter.solid_to_data` (a file with several solids: the faces of
solid 0, then solid 1, ...). ``classes.txt`` (one name per line) names the classes; without
it they are ``class_0 .. class_{K-1}`` with K one more than the largest label. When no
labels file exists at all the data set is unlabeled (for pretraining).

Every solid is a record; a file that cannot be used (unreadable STEP, invalid solid, a
labels file that is missing, malformed or whose count differs from the face count, or a
byte-for-byte copy of an earlier part when ``data.duplicates`` rejects duplicates, as it does
for labelled parts by default) is one bad record:
``data.on_error=raise`` stops naming the file, ``skip`` skips and reports it.

Registered names (parts from :func:`graphssl.brep.generate.generate_dataset`, written
once into ``<cache_dir>/<name>-<n>``, n = ``data.limit`` or :data:`DEFAULT_PARTS`):

- ``brep-machining``: labelled parts (seed 0), per-face machining-feature classes.
- ``brep-machining-pretrain``: parts from seed 1 with their labels dropped, for pretraining.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torch_geometric.data import Data
from tqdm.auto import tqdm

from graphssl.core.config import DataConfig
from graphssl.data.records import BuildReport, FirstSeen, rules_key
from graphssl.core.errors import DataError

__all__ = ["BREP_DATASETS", "BREP_FORMAT_VERSION", "BRepDataset", "is_brep", "load_brep_dataset"]

BREP_FORMAT_VERSION = "graphssl-brep/1"  # bump when the adapter's output changes
DEFAULT_PARTS = 500
DEFAULT_GRID = 10
STEP_SUFFIXES = (".step", ".stp")
_NODE_KEYS = ("x", "face_area", "face_grid")
_EDGE_KEYS = ("edge_attr", "edge_length", "edge_grid")


@dataclass(frozen=True)
class GeneratedParts:
    """A registry entry: parts made by the machining-feature generator."""

    name: str
    seed: int
    labelled: bool
    description: str


BREP_DATASETS = {
    "brep-machining": GeneratedParts("brep-machining", 0, True,
                                     "generated CAD parts, per-face machining-feature classes (seed 0)"),
    "brep-machining-pretrain": GeneratedParts("brep-machining-pretrain", 1, False,
                                              "generated CAD parts, unlabeled (seed 1), for pretraining"),
}


# ------------------------------------------------------------------------------ storage


class BRepStore:
    """Many B-rep graphs as concatenated tensors plus offsets (loads with ``weights_only``)."""

    def __init__(self, tensors: dict[str, Tensor], names: list[str]) -> None:
        self.t = tensors
        self.names = names

    @classmethod
    def from_graphs(cls, graphs: Sequence[Data]) -> "BRepStore":
        nodes = torch.tensor([g.num_nodes for g in graphs], dtype=torch.long)
        edges = torch.tensor([g.edge_index.size(1) for g in graphs], dtype=torch.long)
        t = {
            "node_ptr": torch.cat([nodes.new_zeros(1), nodes.cumsum(0)]),
            "edge_ptr": torch.cat([edges.new_zeros(1), edges.cumsum(0)]),
            "edge_index": torch.cat([g.edge_index for g in graphs], 1),
            "norm_center": torch.cat([g.norm_center for g in graphs]),  # [G, 3]
            "norm_scale": torch.cat([g.norm_scale for g in graphs]),  # [G]
        }
        for key in (*_NODE_KEYS, *_EDGE_KEYS):
            t[key] = torch.cat([g[key] for g in graphs])
        if all(getattr(g, "y", None) is not None for g in graphs):
            t["y"] = torch.cat([g.y for g in graphs])  # [F] long
        return cls(t, [g.name for g in graphs])

    def __len__(self) -> int:
        return self.t["node_ptr"].numel() - 1

    def get(self, i: int) -> Data:
        n0, n1 = int(self.t["node_ptr"][i]), int(self.t["node_ptr"][i + 1])
        e0, e1 = int(self.t["edge_ptr"][i]), int(self.t["edge_ptr"][i + 1])
        data = Data(edge_index=self.t["edge_index"][:, e0:e1], num_nodes=n1 - n0, name=self.names[i],
                    norm_center=self.t["norm_center"][i : i + 1], norm_scale=self.t["norm_scale"][i : i + 1])
        for key in _NODE_KEYS + (("y",) if "y" in self.t else ()):
            data[key] = self.t[key][n0:n1]
        for key in _EDGE_KEYS:
            data[key] = self.t[key][e0:e1]
        return data

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save({"format": BREP_FORMAT_VERSION, "tensors": self.t, "names": self.names}, tmp)
        os.replace(tmp, path)  # never a half-written cache under the real name

    @classmethod
    def load(cls, path: Path) -> "BRepStore":
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated or foreign files raise many exception types
            raise DataError(f"cached B-rep graphs '{path}' are unreadable ({exc}); "
                            "delete the folder to rebuild") from None
        if not isinstance(raw, dict) or raw.get("format") != BREP_FORMAT_VERSION:
            raise DataError(f"'{path}' is not a {BREP_FORMAT_VERSION} store; delete the folder to rebuild")
        return cls(raw["tensors"], raw["names"])


class BRepDataset(Dataset):
    """Face-adjacency graphs of B-rep solids; ``dataset[i]`` is a ``Data`` with the fields of
    :mod:`graphssl.brep.adapter`, ``name`` and, when labelled, ``y`` (long ``[F]``)."""

    def __init__(self, store: BRepStore, name: str, class_names: Sequence[str], report: BuildReport,
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
        return [self.store.names[int(i)] for i in self.indices]

    @property
    def feature_spec(self):
        """UV-grid CNN embeddings sized for this data set's grid."""
        from graphssl.brep.encoders import brep_feature_spec

        return brep_feature_spec(self.grid)

    def subset(self, indices: Sequence[int] | np.ndarray) -> "BRepDataset":
        """A view on the given positions of this data set."""
        return BRepDataset(self.store, self.name, self.class_names, self.report, self.grid,
                           self.indices[np.asarray(indices, dtype=np.int64)])


# ------------------------------------------------------------------------------ sources


@dataclass
class _Source:
    name: str
    files: list[Path]
    labelled: bool
    class_names: list[str]
    identity: str


def _step_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.suffix.lower() in STEP_SUFFIXES else []
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in STEP_SUFFIXES)


def is_brep(config: DataConfig) -> bool:
    """Whether ``config`` names B-rep parts: a registered name, a STEP file or a folder of them."""
    if config.name:
        return config.name in BREP_DATASETS
    if config.path:
        path = Path(config.path)
        return path.suffix.lower() in STEP_SUFFIXES or (path.is_dir() and bool(_step_files(path)))
    return False


def _read_labels(path: Path) -> list[int]:
    lines = [s.strip() for s in path.read_text().splitlines() if s.strip()]
    try:
        return [int(s) for s in lines]
    except ValueError:
        bad = next(s for s in lines if not s.lstrip("-").isdigit())
        raise DataError(f"labels file '{path.name}' holds {bad!r}, expected one integer class per line") from None


def _class_names(folder: Path, labels: list[Path]) -> list[str]:
    classes = folder / "classes.txt"
    if classes.is_file():
        return [s.strip() for s in classes.read_text().splitlines() if s.strip()]
    top = -1
    for path in labels:
        try:
            values = _read_labels(path)
        except DataError:  # malformed: reported when its part is built
            continue
        top = max([top, *values])
    return [f"class_{k}" for k in range(top + 1)]


def _folder_source(name: str, path: Path, limit: int | None, keep_labels: bool) -> _Source:
    files = _step_files(path)
    if limit is not None:
        files = files[:limit]
    if not files:
        raise DataError(f"'{path}' holds no STEP file (*.step, *.stp)")
    folder = files[0].parent
    labels = [p.with_suffix(".labels") for p in files if p.with_suffix(".labels").is_file()]
    labelled = keep_labels and bool(labels)
    class_names = _class_names(folder, labels) if labelled else []
    if labelled and not class_names:
        raise DataError(f"'{path}': the labels files hold no class; add classes.txt or fix the labels")
    watched = [*files, *labels, folder / "classes.txt"]
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in watched if p.is_file()]
    identity = json.dumps([str(path.resolve()), stats, limit, labelled])
    return _Source(name, files, labelled, class_names, identity)


def _generated_folder(spec: GeneratedParts, n: int, cache_dir: Path, progress: bool) -> Path:
    """The folder of ``n`` generated parts, generating it on first use."""
    from graphssl.brep.generate import generate_dataset

    folder = cache_dir / f"{spec.name}-{n}"
    marker = folder / "generated.json"
    if marker.is_file():
        return folder
    if folder.exists():
        raise DataError(f"'{folder}' exists but is incomplete (no generated.json); delete it to regenerate")
    tmp = cache_dir / f".{folder.name}.{os.getpid()}.tmp"
    try:
        report = generate_dataset(n, tmp, seed=spec.seed, progress=progress)
        (tmp / "generated.json").write_text(json.dumps({"n": n, "seed": spec.seed, "seconds": report.seconds,
                                                        "regenerated": report.n_regenerated}))
        try:
            os.replace(tmp, folder)  # the folder appears complete or not at all
        except OSError:
            if not marker.is_file():  # not a concurrent build that finished first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return folder


def _resolve(config: DataConfig, cache_dir: Path, progress: bool) -> _Source:
    if config.name and config.path:
        raise DataError(f"give either data.name ('{config.name}') or data.path ('{config.path}'), not both")
    if config.name:
        spec = BREP_DATASETS[config.name]
        n = DEFAULT_PARTS if config.limit is None else int(config.limit)
        if n < 1:
            raise DataError(f"data.limit must be at least 1 part for '{spec.name}', got {n}")
        folder = _generated_folder(spec, n, cache_dir, progress)
        return _folder_source(spec.name, folder, n, keep_labels=spec.labelled)
    path = Path(str(config.path))
    if not path.exists():
        raise DataError(f"data.path '{path}' does not exist")
    return _folder_source(path.stem if path.is_file() else path.name, path, config.limit, keep_labels=True)


# ------------------------------------------------------------------------------ build


def _graphs_of(path: Path, source: _Source, grid: int) -> list[Data]:
    from graphssl.brep.adapter import step_to_graphs

    graphs = step_to_graphs(path, grid=grid)
    if not source.labelled:
        return graphs
    label_path = path.with_suffix(".labels")
    if not label_path.is_file():
        raise DataError(f"no labels file '{label_path.name}' next to it (the other parts have one)")
    labels = _read_labels(label_path)
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


def _build(source: _Source, config: DataConfig, grid: int, progress: bool) -> tuple[BRepStore, BuildReport]:
    from OCP.Standard import Standard_Failure

    report = BuildReport(source.name)
    graphs: list[Data] = []
    seen = FirstSeen(config.rejects_duplicates(source.labelled))
    for k, path in enumerate(tqdm(source.files, desc=f"B-rep graphs {source.name}", disable=not progress,
                                  unit="part", mininterval=1.0)):
        try:
            found = _graphs_of(path, source, grid)
            # claimed only once the part built, so a copy of a bad file is reported for what is wrong with it
            earlier = seen.claim(hashlib.sha256(path.read_bytes()).digest(), k)
            if earlier is not None:
                raise DataError(f"duplicate of part {earlier} ({source.files[earlier].name!r}): the files are "
                                "byte for byte the same; set data.duplicates=keep to keep duplicates")
        except (DataError, Standard_Failure) as exc:  # the kernel raises its own failures on bad geometry
            report.read += 1
            if config.on_error == "raise":
                raise DataError(f"{source.name}: part {k} ({path.name}): {exc}. Set data.on_error=skip to skip "
                                "bad parts; they are then reported.") from None
            report.skip(k, path.name, str(exc))
            continue
        report.read += len(found)
        report.kept += len(found)
        graphs.extend(found)
    if not graphs:
        raise DataError(f"{source.name}: no usable part among {report.read} read\n{report.summary()}")
    return BRepStore.from_graphs(graphs), report


def load_brep_dataset(config: DataConfig, cache_dir: str | Path = ".graphssl_cache", progress: bool = True,
                      verbose: bool = True, grid: int = DEFAULT_GRID) -> BRepDataset:
    """Build (or load from the on-disk cache) the B-rep data set described by ``config``.

    The cache folder is keyed by the files' names, sizes and modification times, the grid
    size, ``limit``, ``on_error`` and :data:`BREP_FORMAT_VERSION`; the build report is
    printed and stored next to the graphs.
    """
    config.check()
    cache_dir = Path(cache_dir)
    source = _resolve(config, cache_dir, progress)
    payload = {"format": BREP_FORMAT_VERSION, "source": source.identity, "grid": grid, "on_error": config.on_error,
               "classes": source.class_names, **rules_key(config, source.labelled)}
    key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    folder = cache_dir / f"{source.name}-{key}"
    store_path, report_path = folder / "graphs.pt", folder / "report.json"
    if store_path.is_file() and report_path.is_file():
        store, report = BRepStore.load(store_path), BuildReport.from_json(report_path)
        report.from_cache = True
    else:
        store, report = _build(source, config, grid, progress)
        store.save(store_path)
        report.to_json(report_path)  # written last: its presence marks a complete build
    if verbose:
        print(report.summary())
    return BRepDataset(store, source.name, source.class_names, report, grid)
