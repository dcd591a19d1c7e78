"""The atomistic data sets by name and the atomistic input kind.

Registered sources: ``qm9-3d`` (qm9pack geometries, the 12 QM9 targets in the units of
:data:`graphssl.data.packaged.QM9_TARGETS`) and ``matbench-dielectric`` (crystal toolkit's copy of
Matbench's refractive index task). User data (``data.path``): a folder of CIF/POSCAR files
(labels from ``data.label_file``), one structure file, or an extxyz file / ASE database of
frames with energy and forces (task type ``energy_forces``, metric ``force_mae``).

``data.offset`` skips the first N records of any source (they are not read, so the build report
does not count them) and ``data.limit`` then keeps the next N: ``{offset: 0, limit: 5000}`` and
``{offset: 5000}`` are disjoint, e.g. a fine-tuning set and the pretraining corpus.
"""

from __future__ import annotations

import ast
import json
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd

from graphssl.atomistic.adapters import from_positions, from_pymatgen, read_structures
from graphssl.atomistic.datasets import ATOMISTIC_RECIPE, StructureRecord
from graphssl.atomistic.frames import frame_source
from graphssl.atomistic.graph import AtomisticData
from graphssl.atomistic.splits import MATBENCH_DIELECTRIC_SIZE
from graphssl.core.config import DataConfig, check_choice
from graphssl.core.errors import DataError
from graphssl.data.labels import parse_label, parse_labels
from graphssl.data.packaged import QM9_SIZE, QM9_TARGETS, packaged_file, qm9_files
from graphssl.data.records import TASK_TYPES, Source, file_identity
from graphssl.data.sources import DataSource, InputKind, register_input, register_source

# ASE format of each structure file name (lower case); names starting with POSCAR/CONTCAR are VASP files
STRUCTURE_FORMATS = {".cif": "cif", ".vasp": "vasp", ".poscar": "vasp"}
VASP_PREFIXES = ("poscar", "contcar")
STRUCTURE_FILES = (*(f"*{suffix}" for suffix in STRUCTURE_FORMATS), *(f"{p.upper()}*" for p in VASP_PREFIXES))
FRAME_FILES = ("*.extxyz", "*.xyz", "*.db")


def _window_key(offset: int) -> tuple[int, ...]:
    """The offset's part of a cache identity: empty for 0, so caches built before offsets existed stay valid."""
    return (offset,) if offset else ()


def _window_total(size: int, limit: int | None, offset: int) -> int:
    """How many records a source of ``size`` yields after ``offset`` and ``limit``."""
    rest = max(size - offset, 0)
    return rest if limit is None else min(limit, rest)


def _stop(config: DataConfig) -> int | None:
    return None if config.limit is None else config.offset + config.limit


def _check_window(config: DataConfig) -> None:
    if isinstance(config.offset, bool) or not isinstance(config.offset, int) or config.offset < 0:
        raise DataError(f"data.offset must be a non-negative integer (records to skip), got {config.offset!r}")


# --------------------------------------------------------------------------- registered sources

def _qm9_build(name: str, elements: str, xyz: str, cutoff: float) -> AtomisticData:
    try:
        symbols = ast.literal_eval(elements)
        try:
            positions = json.loads(xyz)
        except ValueError:  # a few rows write Python floats such as "0." that JSON rejects
            positions = ast.literal_eval(xyz)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise DataError(f"structure {name!r}: unparseable Elements or XYZ_Ang ({exc})") from None
    return from_positions(symbols, positions, cutoff=cutoff, name=name)


def _qm9_records(paths: list[Path], limit: int | None, offset: int = 0) -> Iterator[StructureRecord]:
    columns = ["XYZ_file", "Elements", "XYZ_Ang", *QM9_TARGETS]
    factors = [factor for _, factor in QM9_TARGETS.values()]
    stop = None if limit is None else offset + limit
    index = 0  # position in the whole data set, so names and report indices ignore the offset
    for path in paths:
        remaining = None if stop is None else stop - index
        if remaining is not None and remaining <= 0:
            return
        for chunk in pd.read_csv(path, usecols=columns, nrows=remaining, chunksize=5000):
            if index + len(chunk) <= offset:  # wholly before the offset: nothing to build
                index += len(chunk)
                continue
            for row in chunk[columns].itertuples(index=False, name=None):
                if index >= offset:
                    name, elements, xyz = str(row[0]), row[1], row[2]
                    labels = [float(v) * f for v, f in zip(row[3:], factors)]
                    yield StructureRecord(index, name, partial(_qm9_build, name, elements, xyz), labels)
                index += 1


def _qm9_3d(limit: int | None, offset: int = 0) -> Source:
    paths = qm9_files()
    return Source(
        "qm9-3d", _qm9_records(paths, limit, offset), [n for n, _ in QM9_TARGETS.values()], "regression", "mae",
        file_identity(paths[0], *(file_identity(p) for p in paths[1:]), limit, *_window_key(offset)),
        "QM9 DFT geometries (non-periodic), 12 targets in the units of the 2D qm9 set",
        total=_window_total(QM9_SIZE, limit, offset))


def _pymatgen_build(name: str, payload: dict, cutoff: float) -> AtomisticData:
    from pymatgen.core import Structure  # the crystal extra: imported only when crystals are built

    try:
        structure = Structure.from_dict(payload)
    except Exception as exc:  # a malformed dict raises KeyError, TypeError, ValueError, ...
        raise DataError(f"structure {name!r}: not a pymatgen Structure dict ({type(exc).__name__}: {exc})") from None
    return from_pymatgen(structure, cutoff=cutoff, name=name)


def _matbench_records(path: Path, limit: int | None, offset: int = 0) -> Iterator[StructureRecord]:
    # Read lazily (inside the generator): a cache hit never pays the ~1.5 s JSON parse.
    frame = pd.read_json(path).sort_index()
    frame = frame.iloc[offset:] if limit is None else frame.iloc[offset: offset + limit]
    for k, (payload, n) in enumerate(zip(frame["structure"], frame["n"]), start=offset):
        value, error = parse_label(n, "n")
        name = f"matbench_dielectric[{k}]"
        yield StructureRecord(k, name, partial(_pymatgen_build, name, payload), [value], error)


def _matbench_dielectric(limit: int | None, offset: int = 0) -> Source:
    path = packaged_file("crystal_toolkit", "apps/examples/matbench_dielectric.json.gz")
    return Source(
        "matbench-dielectric", _matbench_records(path, limit, offset), ["n"], "regression", "mae",
        file_identity(path, limit, *_window_key(offset)),
        "Matbench dielectric: refractive index n of 4,764 crystals; MAE, 5-fold CV (matbench_folds)",
        total=_window_total(MATBENCH_DIELECTRIC_SIZE, limit, offset))


def _named(read: Callable[[int | None, int], Source]):
    def open_source(config: DataConfig, cache_dir: Path, progress: bool) -> Source:
        _check_window(config)
        return read(config.limit, config.offset)

    return open_source


register_source(DataSource("qm9-3d", "atomistic", "regression", "mae",
                           "QM9 3D geometries, 12 standard targets, 130,831 molecules",
                           open=_named(_qm9_3d), recipe=ATOMISTIC_RECIPE))
register_source(DataSource("matbench-dielectric", "atomistic", "regression", "mae",
                           "Matbench dielectric, refractive index, 4,764 crystals",
                           open=_named(_matbench_dielectric), recipe=ATOMISTIC_RECIPE))


# --------------------------------------------------------------------------- user data

def structure_format(path: Path) -> str | None:
    """The ASE format of a structure file (CIF or VASP), or None for other files."""
    fmt = STRUCTURE_FORMATS.get(path.suffix.lower())
    if fmt is None and path.name.lower().startswith(VASP_PREFIXES):
        fmt = "vasp"
    return fmt


def _file_build(path: Path, fmt: str, name: str, cutoff: float) -> AtomisticData:
    structures = read_structures(path, ":", format=fmt, cutoff=cutoff)
    if len(structures) != 1:
        raise DataError(f"structure {name!r}: the file holds {len(structures)} structures; expected exactly one")
    data = structures[0]
    data.name = name
    return data


def _unlabelled_files(name: str, files: list[Path], identity: list, config: DataConfig) -> Source:
    records = (StructureRecord(k, p.name, partial(_file_build, p, structure_format(p), p.name), [])
               for k, p in enumerate(files, start=config.offset))
    return Source(name, records, [], None, None, json.dumps(identity), total=len(files))


def _outside(file_name: str) -> bool:
    """Whether a label file's id leaves the structure folder: an absolute path or a ``..`` step.

    Judged on the text, so a file the folder's owner linked into the folder is still read
    (its target's size and time are in the cache key all the same).
    """
    path = Path(file_name)
    return path.is_absolute() or bool(path.anchor) or ".." in path.parts


def _file_stamp(path: Path) -> list:
    """What the cache key records of one structure file: its size and modification time."""
    try:
        stat = path.stat()  # follows links: the content that is read
    except OSError:
        return [None, None]
    return [stat.st_size, stat.st_mtime_ns]


def _folder_source(folder: Path, config: DataConfig) -> Source:
    offset, stop = config.offset, _stop(config)
    if not config.label_file:
        listing = sorted(p for p in folder.iterdir() if p.is_file())
        stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in listing]
        files = [p for p in listing if structure_format(p)]
        if not files:
            raise DataError(f"folder '{folder}' holds no CIF/POSCAR file (*.cif, *.vasp, *.poscar, POSCAR*, CONTCAR*)")
        files = files[offset:stop]  # sorted by name, so the window is reproducible
        if not files:
            raise DataError(f"folder '{folder}': data.offset={offset} skips every structure file")
        identity = [str(folder.resolve()), stats, config.limit, *_window_key(offset)]
        return _unlabelled_files(folder.name, files, identity, config)

    label_path = Path(config.label_file)
    if not label_path.is_absolute() and not label_path.is_file() and (folder / label_path).is_file():
        label_path = folder / label_path  # a bare file name refers to the structure folder
    if not label_path.is_file():
        raise DataError(f"label file '{config.label_file}' does not exist")
    frame = pd.read_csv(label_path, dtype=str, keep_default_na=False)
    header = list(frame.columns)
    if not config.id_column or config.id_column not in header:
        raise DataError(f"data.id_column must name the column of '{label_path.name}' that holds the structure "
                        f"file names; got {config.id_column!r}, columns are {header}")
    label_columns = list(config.label_columns) or [c for c in header if c != config.id_column]
    missing = [c for c in label_columns if c not in header]
    if missing:
        raise DataError(f"label columns {missing} are not in '{label_path.name}' (columns: {header})")
    if config.task_type is not None:
        check_choice(config.task_type, TASK_TYPES, "data.task_type")
    task_type = config.task_type or "regression"
    frame = frame.iloc[offset:stop]
    rows = [(k, str(row[config.id_column]).strip(), row)
            for k, row in enumerate(frame.to_dict("records"), start=offset)]
    # The cache key holds every named file's size and time (sub-folders included), so editing a
    # structure file rebuilds the set; ids that leave the folder are never read, so not stamped.
    stamps = [[name, *_file_stamp(folder / name)] for _, name, _ in rows if name and not _outside(name)]

    def records() -> Iterator[StructureRecord]:
        for k, file_name, row in rows:
            labels, error = parse_labels(row, label_columns)
            path = folder / file_name
            if error is None and not file_name:
                error = f"empty {config.id_column!r} cell in row {k} of '{label_path.name}'"
            elif error is None and _outside(file_name):
                error = (f"{config.id_column!r} in row {k} of '{label_path.name}' is {file_name!r}, a path outside "
                         f"the folder '{folder}'; name files inside it (e.g. 'x.cif' or 'sub/x.cif')")
            elif error is None and not path.is_file():
                error = f"file {file_name!r} named in '{label_path.name}' is not in the folder '{folder}'"
            build = None if error is not None else partial(_file_build, path, structure_format(path), file_name)
            yield StructureRecord(k, file_name, build, labels, error)

    identity = json.dumps([str(folder.resolve()), stamps, file_identity(label_path), config.id_column,
                           label_columns, config.limit, *_window_key(offset)])
    return Source(folder.name, records(), label_columns, task_type,
                  "mae" if task_type == "regression" else "roc_auc", identity, total=len(frame))


def user_atomistic_source(config: DataConfig, cache_dir: Path | None = None, progress: bool = False) -> Source:
    """The source of ``config.path``: a structure folder, one structure file, an extxyz/xyz file or an
    ASE ``.db`` file."""
    _check_window(config)
    path = Path(str(config.path))
    if path.is_dir():
        return _folder_source(path, config)
    if not path.is_file():
        raise DataError(f"data.path '{path}' is neither a folder of structure files nor a file")
    if structure_format(path):  # one structure, unlabelled (a folder with data.label_file carries labels)
        if config.offset:
            raise DataError(f"data.path '{path}' holds one structure: data.offset={config.offset} skips it")
        identity = [str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns, config.limit]
        return _unlabelled_files(path.stem, [path], identity, config)
    identity = file_identity(path, config.limit, *_window_key(config.offset), "energy+forces")
    return frame_source(path, config.limit, config.offset, identity)


register_input(InputKind("atomistic structures", "atomistic", files=(*FRAME_FILES, *STRUCTURE_FILES),
                         members=STRUCTURE_FILES, open=user_atomistic_source, recipe=ATOMISTIC_RECIPE))
