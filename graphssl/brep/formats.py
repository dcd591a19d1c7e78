"""Public B-rep segmentation data sets read as they are downloaded: MFCAD, MFCAD++ and the
Fusion 360 Gallery segmentation subset.

Each is a registered data set (``data.name``) that reads a local copy whose folder is
``data.path``; nothing is downloaded at run time. The records come out exactly like the
parts of :mod:`graphssl.brep.generate` (face-adjacency graphs with UV grids, ``y`` one
class per face in :func:`graphssl.brep.adapter.solid_to_data` face order, and the class
names of the data set), so face-segmentation fine-tuning runs on them unchanged.

Where a data set ties its labels to faces
-----------------------------------------
- ``mfcadpp`` (MFCAD++, Colligan et al. 2022, Hierarchical CADNet): the class of each face
  is the name string of its ``ADVANCED_FACE`` entity in the STEP file
  (``#17 = ADVANCED_FACE('14',(#18),#32,.T.)`` is class 14, ``rectangular_pocket``).
  The order of the entities in the file is not the order in which OpenCascade enumerates
  faces, so labels are matched by identity: after the transfer, the transfer reader gives
  for each ``TopoDS_Face`` the STEP entity it was made from
  (``XSControl_TransferReader.EntityFromShapeResult``) and its name is read from there.
  MFCAD++ ships no companion label file; its STEP files are ``step/train``, ``step/val``
  and ``step/test``, and those three folders are its official split.
- ``mfcad`` (MFCAD, Cao et al. 2020): the ``ADVANCED_FACE`` name is a face id, and
  ``<stem>.face_truth`` next to the STEP file holds the class of each face id (a Python
  pickle of a list of integers). It is read with an unpickler that refuses every class or
  function reference, so a file holding anything but plain lists, tuples, dicts and
  integers is an error rather than code that runs. MFCAD ships no split.
- ``fusion360-seg`` (Fusion 360 Gallery segmentation, s2.0.0 or later): ``breps/step``
  holds one STEP file per part and ``breps/seg`` one ``.seg`` file per part, one integer
  class per line, one line per B-rep face, in the face order of the part's B-rep. The STEP
  files were written from those B-reps, and this order is the one OpenCascade's explorer
  gives when the STEP file is read (the face order of the adapter, and the order in which
  the data set's reference loaders read ``.seg`` files); a ``.seg`` whose line count differs
  from the face count is a bad record naming both counts. ``segment_names.json`` names the
  classes (without it: the eight documented ones), ``train_test.json`` holds the official
  ``train`` and ``test`` lists of part names. The ``.smt`` files are not read.

Bad records (unreadable STEP, a face without a label, a label outside the classes, a count
mismatch) stop the build under ``data.on_error=raise`` naming the file, and are skipped and
reported under ``skip``; nothing is dropped silently.

``finetune.split: official`` uses the split a data set ships: MFCAD++'s three folders, or
Fusion 360's train/test lists with the validation part drawn from the training list (a
``split_fractions[1] / (split_fractions[0] + split_fractions[1])`` share, seeded by
``split_seed``). Data sets without an official split refuse it.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from graphssl.brep.dataset import BRepRecipe, BRepSource, _wants_descriptors
from graphssl.core.config import DataConfig
from graphssl.core.errors import ConfigError, DataError
from graphssl.data.builder import Featurised
from graphssl.data.splits import SPLITS, Split, fractions_of

__all__ = ["FUSION360_CLASSES", "MFCADPP_CLASSES", "MFCAD_ORIGINAL_CLASSES", "PUBLIC_FORMATS", "PublicFormat",
           "PublicFormatRecipe", "face_names", "labelled_graphs", "official_split", "open_public", "read_face_truth",
           "read_seg"]

FORMATS_VERSION = "graphssl-brep-formats/1"  # part of the cache key: bump when labelling changes

FUSION360_CLASSES = ("ExtrudeSide", "ExtrudeEnd", "CutSide", "CutEnd", "Fillet", "Chamfer",
                     "RevolveSide", "RevolveEnd")
# MFCAD++'s label order (stock last); spelled as graphssl.brep.mfcad's generator spells them, so
# that generated MFCAD++-style parts and the real set share class names.
MFCADPP_CLASSES = (
    "chamfer", "through_hole", "triangular_passage", "rectangular_passage", "six_sided_passage",
    "triangular_through_slot", "rectangular_through_slot", "circular_through_slot", "rectangular_through_step",
    "two_sided_through_step", "slanted_through_step", "o_ring", "blind_hole", "triangular_pocket",
    "rectangular_pocket", "six_sided_pocket", "circular_end_pocket", "rectangular_blind_slot",
    "vertical_circular_end_blind_slot", "horizontal_circular_end_blind_slot", "triangular_blind_step",
    "circular_blind_step", "rectangular_blind_step", "round", "stock",
)
# MFCAD's label order, as its own viewer names the classes.
MFCAD_ORIGINAL_CLASSES = (
    "rectangular_through_slot", "triangular_through_slot", "rectangular_passage", "triangular_passage",
    "6sides_passage", "rectangular_through_step", "2sides_through_step", "slanted_through_step",
    "rectangular_blind_step", "triangular_blind_step", "rectangular_blind_slot", "rectangular_pocket",
    "triangular_pocket", "6sides_pocket", "chamfer", "stock",
)

FUSION360_DOWNLOAD = ("the s2.0.0 (or later) segmentation zip linked from "
                      "https://github.com/AutodeskAILab/Fusion360GalleryDataset/blob/master/docs/segmentation.md")
MFCADPP_DOWNLOAD = ("the MFCAD++ data set of Colligan et al. 2022 (Hierarchical CADNet), published by Queen's "
                    "University Belfast (https://pure.qub.ac.uk, search 'MFCAD++')")
MFCAD_DOWNLOAD = "the dataset/step folder of https://github.com/hducg/MFCAD"

STEP_SUFFIXES = (".step", ".stp")
# MFCAD++ names its validation folder "val"; the split calls that part "valid".
MFCADPP_PARTS = (("train", "train"), ("val", "valid"), ("test", "test"))


@dataclass(frozen=True)
class LabelledStep:
    """One STEP file of a public data set: its graph name, its official part (or None) and
    the companion labels file when the data set has one."""

    index: int
    path: Path
    name: str
    part: str | None = None
    labels: Path | None = None


@dataclass(frozen=True)
class PublicFormat:
    """A registered public data set: its classes, where it is downloaded and how it is read."""

    name: str
    title: str
    classes: tuple[str, ...]
    download: str
    layout: str  # the folder layout data.path must have, for messages
    labelling: str  # "names" (face name is the class), "face-ids" (name indexes .face_truth), "seg"
    find: Callable[[Path], tuple[list[LabelledStep], list[str], Path]]  # -> records, classes, files to watch

    @property
    def description(self) -> str:
        return (f"{self.title}: your local copy (data.path: {self.layout}), per-face classes "
                f"({len(self.classes)}), mIoU")


# ------------------------------------------------------------------------------ labels files


def read_seg(path: Path) -> list[int]:
    """The classes of a Fusion 360 ``.seg`` file, one integer per line; a :class:`DataError`
    naming the file and the line when a line is not an integer."""
    values = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text:
            continue
        if not re.fullmatch(r"-?\d+", text):
            raise DataError(f"labels file '{path.name}' line {number} holds {text!r}, expected one integer class "
                            "per line")
        values.append(int(text))
    return values


class _PlainUnpickler(pickle.Unpickler):
    """Reads only built-in containers and numbers: any class or function reference is refused,
    since unpickling one can run arbitrary code."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"it references {module}.{name}")


def read_face_truth(path: Path) -> list[int]:
    """The class of each face id from an MFCAD ``.face_truth`` file (a pickled list of
    integers, or a dict from face id to class); a :class:`DataError` naming the file when it is
    anything else."""
    try:
        value = _PlainUnpickler(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise DataError(f"labels file '{path.name}' is not a plain pickled list of integer classes ({exc}); only "
                        "lists, tuples, dicts and integers are read from it") from None
    if isinstance(value, dict):
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in value) or \
                sorted(value) != list(range(len(value))):
            raise DataError(f"labels file '{path.name}' maps {sorted(value)[:6]}...; expected face ids 0..N-1")
        value = [value[k] for k in range(len(value))]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                       for v in value):
        raise DataError(f"labels file '{path.name}' holds a {type(value).__name__}, expected a list of integer "
                        "classes (one per face id)")
    return list(value)


def _class_list(path: Path) -> list[str]:
    """The class names of a ``segment_names.json``: a list of names, or a dict from index
    ("0", "1", ...) to name."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"'{path}' is not readable JSON ({exc})") from None
    if isinstance(raw, dict):
        try:
            keys = sorted(int(k) for k in raw)
        except ValueError:
            raise DataError(f"'{path}' has keys {list(raw)[:6]}, expected class indices 0..K-1") from None
        if keys != list(range(len(raw))):
            raise DataError(f"'{path}' has class indices {keys[:10]}, expected 0..{len(raw) - 1}")
        raw = [raw[str(k)] if str(k) in raw else raw[k] for k in keys]
    if not isinstance(raw, list) or not raw or not all(isinstance(n, str) and n.strip() for n in raw):
        raise DataError(f"'{path}' should list the class names (a list, or a dict from index to name)")
    return [n.strip() for n in raw]


# ------------------------------------------------------------------------------ STEP faces


def face_names(path: str | Path) -> list[tuple[Any, list[str | None]]]:
    """Every solid of a STEP file with the name of the STEP entity each of its faces was made
    from, in the adapter's face order (``None`` for a face no entity maps to).

    Faces are matched to entities through the transfer, never by position: the order of
    ``ADVANCED_FACE`` entities in the file and the kernel's face order differ.
    """
    from graphssl.brep import _occ

    from graphssl.brep.adapter import transfer_step  # OpenCascade: only when a file is read

    path = Path(path)
    reader = transfer_step(path)
    transfer = reader.WS().TransferReader()
    out = []
    for i in range(1, reader.NbShapes() + 1):
        for solid in _occ.solids(reader.Shape(i)):
            names: list[str | None] = []
            for face in _occ.faces(solid):
                entity = transfer.EntityFromShapeResult(face, 1)
                name = entity.Name() if entity is not None and hasattr(entity, "Name") else None
                names.append(None if name is None else name.ToCString())
            out.append((solid, names))
    if not out:
        raise DataError(f"STEP file {str(path)!r} transferred no solid ({reader.NbShapes()} shapes); it may be "
                        "truncated, or hold only surfaces")
    return out


def _integer_name(name: str | None, face: int, solid: int, what: str) -> int:
    text = (name or "").strip()
    if not re.fullmatch(r"-?\d+", text):
        found = "no STEP entity" if name is None else f"the name {name!r}"
        raise DataError(f"face {face} of solid {solid} has {found}, expected {what} as its ADVANCED_FACE name")
    return int(text)


def _check_range(labels: Sequence[int], classes: Sequence[str], where: str) -> None:
    bad = [v for v in labels if not 0 <= v < len(classes)]
    if bad:
        raise DataError(f"{where} has class {bad[0]} outside 0..{len(classes) - 1} ({len(classes)} classes)")


def labelled_graphs(record: LabelledStep, labelling: str, classes: Sequence[str], grid: int,
                    descriptors: bool = False) -> list[Data]:
    """The graphs of one STEP file of a public data set with ``y``, the class of each face."""
    from graphssl.brep.adapter import read_step, solid_to_data

    path = record.path
    if labelling == "seg":
        solids = read_step(path)
        per_solid = None
    else:
        found = face_names(path)
        solids = [s for s, _ in found]
        if labelling == "names":
            per_solid = [[_integer_name(n, f, s, "its class") for f, n in enumerate(names)]
                         for s, (_, names) in enumerate(found)]
        else:  # face-ids: the name indexes the .face_truth list
            if record.labels is None or not record.labels.is_file():
                raise DataError(f"no labels file '{path.stem}.face_truth' next to it")
            truth = read_face_truth(record.labels)
            per_solid = []
            for s, (_, names) in enumerate(found):
                ids = [_integer_name(n, f, s, "a face id") for f, n in enumerate(names)]
                missing = [i for i in ids if not 0 <= i < len(truth)]
                if missing:
                    raise DataError(f"face id {missing[0]} is not in '{record.labels.name}' ({len(truth)} face ids)")
                per_solid.append([truth[i] for i in ids])
    names = [record.name] if len(solids) == 1 else [f"{record.name}#{i}" for i in range(len(solids))]
    graphs = [solid_to_data(s, grid=grid, name=n, source=str(path), descriptors=descriptors)
              for s, n in zip(solids, names)]
    if per_solid is None:
        if record.labels is None or not record.labels.is_file():
            raise DataError(f"no labels file '{path.stem}.seg' in breps/seg")
        labels = read_seg(record.labels)
        faces = sum(g.num_nodes for g in graphs)
        if len(labels) != faces:
            raise DataError(f"labels file '{record.labels.name}' has {len(labels)} labels but '{path.name}' has "
                            f"{faces} faces")
        _check_range(labels, classes, f"labels file '{record.labels.name}'")
        start = 0
        per_solid = []
        for g in graphs:
            per_solid.append(labels[start: start + g.num_nodes])
            start += g.num_nodes
    else:
        for labels in per_solid:
            _check_range(labels, classes, f"'{path.name}'")
    for g, labels in zip(graphs, per_solid):
        g.y = torch.tensor(labels, dtype=torch.long)
    return graphs


# ------------------------------------------------------------------------------ layouts


def _missing(root: Path, fmt_title: str, layout: str, download: str, missing: Sequence[str]) -> DataError:
    return DataError(f"'{root}' is not a copy of {fmt_title}: {', '.join(missing)} "
                     f"{'is' if len(missing) == 1 else 'are'} missing (expected {layout}). Download {download} "
                     "and set data.path to the unzipped folder; nothing is downloaded at run time")


def _steps_in(folder: Path) -> dict[str, Path]:
    """The STEP files of ``folder`` by stem, sorted by name."""
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in STEP_SUFFIXES}


def _find_fusion360(root: Path) -> tuple[list[LabelledStep], list[str], Path]:
    fmt = PUBLIC_FORMATS["fusion360-seg"]
    step_dir, seg_dir, split_file = root / "breps" / "step", root / "breps" / "seg", root / "train_test.json"
    missing = [str(p.relative_to(root)) + ("/" if p.suffix == "" else "") for p in (step_dir, seg_dir, split_file)
               if not p.exists()]
    if missing:
        raise _missing(root, fmt.title, fmt.layout, fmt.download, missing)
    try:
        split = json.loads(split_file.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"'{split_file}' is not readable JSON ({exc})") from None
    if not isinstance(split, dict) or not {"train", "test"} <= set(split) or \
            not all(isinstance(split[k], list) for k in ("train", "test")):
        raise DataError(f"'{split_file}' should hold the lists 'train' and 'test' of part names")
    parts: dict[str, str] = {}
    for part in ("train", "test"):
        for stem in split[part]:
            if parts.setdefault(str(stem), part) != part:
                raise DataError(f"'{split_file}' lists part {stem!r} in both train and test")
    steps = _steps_in(step_dir)
    names_file = root / "segment_names.json"
    classes = _class_list(names_file) if names_file.is_file() else list(FUSION360_CLASSES)
    # Sorted by name, not by split list, so that data.limit takes parts from both lists.
    records = [LabelledStep(k, steps.get(stem, step_dir / f"{stem}.step"), stem, part, seg_dir / f"{stem}.seg")
               for k, (stem, part) in enumerate(sorted(parts.items()))]
    return records, classes, split_file


def _find_mfcadpp(root: Path) -> tuple[list[LabelledStep], list[str], Path]:
    fmt = PUBLIC_FORMATS["mfcadpp"]
    step_root = root / "step"
    missing = [f"step/{folder}/" for folder, _ in MFCADPP_PARTS if not (step_root / folder).is_dir()]
    if missing:
        raise _missing(root, fmt.title, fmt.layout, fmt.download, missing)
    found = [(path.name, folder, part, path) for folder, part in MFCADPP_PARTS
             for path in _steps_in(step_root / folder).values()]
    # Sorted by file name across the three folders, so that data.limit takes parts from each.
    found.sort(key=lambda item: (item[0], item[1]))
    records = [LabelledStep(k, path, f"{folder}/{path.stem}", part) for k, (_, folder, part, path) in enumerate(found)]
    return records, list(MFCADPP_CLASSES), step_root


def _find_mfcad(root: Path) -> tuple[list[LabelledStep], list[str], Path]:
    fmt = PUBLIC_FORMATS["mfcad"]
    folder = next((f for f in (root / "dataset" / "step", root / "step", root) if f.is_dir() and _steps_in(f)), None)
    if folder is None:
        raise _missing(root, fmt.title, fmt.layout, fmt.download, ["STEP files (dataset/step/*.step)"])
    records = [LabelledStep(k, path, stem, None, path.with_suffix(".face_truth"))
               for k, (stem, path) in enumerate(_steps_in(folder).items())]
    return records, list(MFCAD_ORIGINAL_CLASSES), folder


PUBLIC_FORMATS: dict[str, PublicFormat] = {
    "mfcad": PublicFormat("mfcad", "MFCAD", MFCAD_ORIGINAL_CLASSES, MFCAD_DOWNLOAD,
                          "a folder holding dataset/step/*.step with a .face_truth next to each",
                          "face-ids", _find_mfcad),
    "mfcadpp": PublicFormat("mfcadpp", "MFCAD++", MFCADPP_CLASSES, MFCADPP_DOWNLOAD,
                            "a folder holding step/train, step/val and step/test", "names", _find_mfcadpp),
    "fusion360-seg": PublicFormat("fusion360-seg", "the Fusion 360 Gallery segmentation subset", FUSION360_CLASSES,
                                  FUSION360_DOWNLOAD,
                                  "a folder holding breps/step, breps/seg and train_test.json", "seg",
                                  _find_fusion360),
}


# ------------------------------------------------------------------------------ source and recipe


class PublicFormatRecipe(BRepRecipe):
    """STEP files of a public data set to labelled face-adjacency graphs."""

    def __init__(self, labelling: str) -> None:
        super().__init__()
        self.labelling = labelling

    def cache_entries(self, source: BRepSource, config: DataConfig) -> dict[str, Any]:
        return {**super().cache_entries(source, config), "labelling": self.labelling, "reader": FORMATS_VERSION}

    def featuriser(self, source: BRepSource, config: DataConfig) -> Callable[[LabelledStep], Featurised]:
        from OCP.Standard import Standard_Failure  # the kernel raises its own failures on bad geometry

        descriptors = _wants_descriptors(config)

        def featurise(record: LabelledStep) -> Featurised:
            try:
                return labelled_graphs(record, self.labelling, source.class_names, self.grid, descriptors), None
            except (DataError, Standard_Failure, OSError) as exc:
                return [], str(exc)

        return featurise

    def describe(self, record: LabelledStep) -> str:
        return record.path.name


def open_public(fmt: PublicFormat, config: DataConfig) -> BRepSource:
    """The records of the local copy of ``fmt`` at ``config.path`` (first ``config.limit``)."""
    if not config.path:
        raise DataError(f"data set '{fmt.name}' reads your local copy of {fmt.title}: set data.path to "
                        f"{fmt.layout}. Download {fmt.download}; nothing is downloaded at run time")
    root = Path(str(config.path)).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path '{root}' for data set '{fmt.name}' is not a folder; expected {fmt.layout} "
                        f"(download {fmt.download})")
    records, classes, watched = fmt.find(root)
    if config.limit is not None:
        records = records[: int(config.limit)]
    if not records:
        raise DataError(f"'{root}' holds no part of {fmt.title} ({fmt.layout})")
    # Every file that decides a graph or a label: an edited or replaced file rebuilds the cache.
    digest = hashlib.sha256()
    for path in [watched, *(p for r in records for p in (r.path, r.labels) if p is not None)]:
        stat = path.stat() if path.exists() else None
        digest.update(f"{path}|{stat and stat.st_size}|{stat and stat.st_mtime_ns}\n".encode())
    identity = json.dumps([fmt.name, str(root.resolve()), config.limit, digest.hexdigest()])
    parts = {r.name: r.part for r in records if r.part is not None}
    return BRepSource(fmt.name, records, ["face_class"], "segmentation", "miou", identity, total=len(records),
                      class_names=list(classes),
                      input={"format": fmt.name, "path": str(root.resolve()), "limit": config.limit,
                             "parts": parts})


# ------------------------------------------------------------------------------ official split


@SPLITS.register("official")
def official_split(dataset: Any, config: Any) -> Split:
    """The split a public data set ships (MFCAD++ folders, Fusion 360 ``train_test.json``);
    Fusion 360's validation part is a seeded share of its training list."""
    report = getattr(dataset, "report", None)
    parts = (getattr(report, "input", None) or {}).get("parts")
    if not parts:
        raise ConfigError(f"finetune.split=official uses the split a public data set ships (mfcadpp, "
                          f"fusion360-seg); data set '{dataset.name}' has none: use random")
    groups: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
    for position, name in enumerate(dataset.names):
        part = parts.get(name.split("#")[0])
        if part not in groups:
            raise DataError(f"graph {name!r} of '{dataset.name}' is in no part of the official split")
        groups[part].append(position)
    train = np.asarray(groups["train"], dtype=np.int64)
    valid = np.asarray(groups["valid"], dtype=np.int64)
    if len(valid) == 0 and len(train) > 1:  # Fusion 360 ships train and test only
        f_train, f_valid, _ = fractions_of(config)
        n_valid = min(len(train) - 1, max(1, round(len(train) * f_valid / (f_train + f_valid))))
        shuffled = np.random.default_rng(int(config.split_seed)).permutation(train)
        train, valid = np.sort(shuffled[n_valid:]), np.sort(shuffled[:n_valid])
    return Split(train, valid, np.asarray(groups["test"], dtype=np.int64))
