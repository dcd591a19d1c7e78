"""The B-rep data sets by name and the B-rep input kind (a STEP file, or a folder of them).

Registered names (parts from :func:`graphssl.brep.generate.generate_dataset`, written
once into ``<cache_dir>/<name>-<n>``, n = ``data.limit`` or :data:`DEFAULT_PARTS`):

- ``brep-machining``: labelled parts (seed 0), per-face machining-feature classes.
- ``brep-machining-pretrain``: parts from seed 1 with their labels dropped, for pretraining.

Public segmentation data sets, read from your local copy at ``data.path`` (see
:mod:`graphssl.brep.formats`): ``mfcad``, ``mfcadpp`` (MFCAD++) and ``fusion360-seg``
(Fusion 360 Gallery segmentation).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from graphssl.brep.dataset import BREP_RECIPE, BRepSource, StepRecord, read_labels
from graphssl.brep.formats import PUBLIC_FORMATS, PublicFormat, PublicFormatRecipe, open_public
from graphssl.core.config import DataConfig
from graphssl.core.errors import DataError
from graphssl.data.sources import DataSource, InputKind, register_input, register_source

DEFAULT_PARTS = 500
STEP_SUFFIXES = (".step", ".stp")
STEP_FILES = tuple(f"*{suffix}" for suffix in STEP_SUFFIXES)


@dataclass(frozen=True)
class GeneratedParts:
    """A registry entry: parts made by the machining-feature generator."""

    name: str
    seed: int
    labelled: bool
    description: str
    classes: str = "basic"  # the generator's class set (graphssl.brep.generate.CLASS_SETS)


BREP_DATASETS = {
    "brep-machining": GeneratedParts("brep-machining", 0, True,
                                     "generated CAD parts, per-face machining-feature classes (seed 0)"),
    "brep-machining-pretrain": GeneratedParts("brep-machining-pretrain", 1, False,
                                              "generated CAD parts, unlabeled (seed 1), for pretraining"),
    "brep-mfcad": GeneratedParts("brep-mfcad", 0, True, "generated CAD parts with the 24 MFCAD++ machining "
                                 "features (intersecting), per-face classes (seed 0)", classes="mfcad"),
    "brep-mfcad-pretrain": GeneratedParts("brep-mfcad-pretrain", 1, False, "generated CAD parts with the 24 MFCAD++ "
                                          "machining features, unlabeled (seed 1), for pretraining", classes="mfcad"),
}


def step_files(path: Path) -> list[Path]:
    """``path`` itself when it is a STEP file, else the STEP files in the folder ``path``, by name."""
    if path.is_file():
        return [path] if path.suffix.lower() in STEP_SUFFIXES else []
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in STEP_SUFFIXES)


def _class_names(folder: Path, labels: list[Path]) -> list[str]:
    classes = folder / "classes.txt"
    if classes.is_file():
        return [s.strip() for s in classes.read_text().splitlines() if s.strip()]
    top = -1
    for path in labels:
        try:
            values = read_labels(path)
        except DataError:  # malformed: reported when its part is built
            continue
        top = max([top, *values])
    return [f"class_{k}" for k in range(top + 1)]


def folder_source(name: str, path: Path, limit: int | None, keep_labels: bool) -> BRepSource:
    """The STEP files of ``path`` (a file or a folder), labelled when labels files exist and
    ``keep_labels``."""
    files = step_files(path)
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
    records = [StepRecord(k, p) for k, p in enumerate(files)]
    return BRepSource(name, records, ["face_class"] if labelled else [], "segmentation" if labelled else None,
                      "miou" if labelled else None, identity, total=len(records), class_names=class_names)


def _generated_folder(spec: GeneratedParts, n: int, cache_dir: Path, progress: bool, workers: int = 1) -> Path:
    """The folder of ``n`` generated parts, generating it on first use (in ``workers`` processes)."""
    from graphssl.brep.generate import generate_dataset  # OpenCascade: only when parts are generated

    folder = cache_dir / f"{spec.name}-{n}"
    marker = folder / "generated.json"
    if marker.is_file():
        return folder
    if folder.exists():
        raise DataError(f"'{folder}' exists but is incomplete (no generated.json); delete it to regenerate")
    tmp = cache_dir / f".{folder.name}.{os.getpid()}.tmp"
    try:
        report = generate_dataset(n, tmp, seed=spec.seed, progress=progress, classes=spec.classes,
                                  workers=workers)
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


def _generated(spec: GeneratedParts):
    def open_source(config: DataConfig, cache_dir: Path, progress: bool) -> BRepSource:
        n = DEFAULT_PARTS if config.limit is None else int(config.limit)
        if n < 1:
            raise DataError(f"data.limit must be at least 1 part for '{spec.name}', got {n}")
        folder = _generated_folder(spec, n, cache_dir, progress, config.workers)
        return folder_source(spec.name, folder, n, keep_labels=spec.labelled)

    return open_source


def _public(fmt: PublicFormat):
    def open_source(config: DataConfig, cache_dir: Path, progress: bool) -> BRepSource:
        return open_public(fmt, config)

    return open_source


def _user_parts(config: DataConfig, cache_dir: Path, progress: bool) -> BRepSource:
    path = Path(str(config.path))
    return folder_source(path.stem if path.is_file() else path.name, path, config.limit, keep_labels=True)


for _spec in BREP_DATASETS.values():
    register_source(DataSource(_spec.name, "brep", "segmentation" if _spec.labelled else None,
                               "miou" if _spec.labelled else None, _spec.description,
                               open=_generated(_spec), recipe=BREP_RECIPE))
for _fmt in PUBLIC_FORMATS.values():
    register_source(DataSource(_fmt.name, "brep", "segmentation", "miou", _fmt.description, open=_public(_fmt),
                               recipe=PublicFormatRecipe(_fmt.labelling), reads_path=True))
register_input(InputKind("B-rep parts", "brep", files=STEP_FILES, members=STEP_FILES, open=_user_parts,
                         recipe=BREP_RECIPE))
