"""Atomistic data sets (3D molecules, crystals, energy/force frames): build from a source, cache on
disk as an :class:`~graphssl.atomistic.store.AtomisticStore`, report what was skipped.

Registered sources (``ATOMISTIC_DATASETS``): ``qm9-3d`` (qm9pack geometries, the 12 QM9 targets in
the units of :data:`graphssl.data.registry.QM9_TARGETS`) and ``matbench-dielectric`` (crystal
toolkit's copy of Matbench's refractive index task). User data (``data.path``): a folder of
CIF/POSCAR files (labels from ``data.label_file``), or an extxyz file / ASE database of frames
with energy and forces (task type ``energy_forces``, metric ``force_mae``).

``data.offset`` skips the first N records of any source (they are not read, so the build report
does not count them) and ``data.limit`` then keeps the next N: ``{offset: 0, limit: 5000}`` and
``{offset: 5000}`` are disjoint, e.g. a fine-tuning set and the pretraining corpus.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from graphssl.atomistic.adapters import from_ase, from_positions, from_pymatgen, read_structures
from graphssl.atomistic.graph import AtomisticData
from graphssl.atomistic.neighbors import NeighborList
from graphssl.atomistic.store import AtomisticStore
from graphssl.core.config import DataConfig
from graphssl.data.packaged import packaged_file
from graphssl.molecule.featurise import label_problem
from graphssl.data.stored import StoredGraphs
from graphssl.data.records import TASK_TYPES, BuildReport, FirstSeen, check_choice, rules_key, shorten
from graphssl.data.registry import QM9_TARGETS
from graphssl.molecule.tables import file_identity, parse_label
from graphssl.core.errors import DataError

# Part of every cache key: bump it when the stored graph changes meaning (fields, names, units).
ATOMISTIC_FORMAT_VERSION = "atomistic-graph/1"
MATBENCH_SEED = 18012019  # Matbench's KFold random_state
QM9_SIZE = 130_831
MATBENCH_DIELECTRIC_SIZE = 4_764
_STRUCTURE_FORMATS = {".cif": "cif", ".vasp": "vasp", ".poscar": "vasp"}


@dataclass
class StructureRecord:
    """One input structure before conversion: ``build(cutoff)`` makes it (raising ``DataError``)."""

    index: int
    name: str
    build: Callable[[float], AtomisticData] | None
    labels: list[float]
    error: str | None = None


@dataclass
class AtomisticSource:
    name: str
    records: Iterable[StructureRecord]
    task_names: list[str]
    task_type: str | None
    metric: str | None
    identity: str  # what the cache key is built from (files, sizes, options)
    total: int | None = None  # for the progress bar
    description: str = ""


@dataclass(frozen=True)
class AtomisticDatasetInfo:
    name: str
    load: Callable[[int | None, int], AtomisticSource]  # (limit, offset) -> source
    task_type: str | None
    metric: str | None
    description: str


ATOMISTIC_DATASETS: dict[str, AtomisticDatasetInfo] = {}


def atomistic_feature_spec():
    """Encoder input layout: the atomic number as one categorical column (0..119)."""
    from graphssl.nn.factory import FeatureSpec

    return FeatureSpec(node_dims=(120,))


def matbench_folds(n_items: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Matbench's 5-fold cross-validation: ``KFold(5, shuffle=True, random_state=18012019)``
    over the items in data-set order; returns ``(train_idx, test_idx)`` per fold."""
    from sklearn.model_selection import KFold

    folds = KFold(n_splits=5, shuffle=True, random_state=MATBENCH_SEED).split(np.arange(n_items))
    return [(train.astype(np.int64), test.astype(np.int64)) for train, test in folds]


class AtomisticDataset(StoredGraphs):
    """A featurised atomistic data set: ``dataset[i]`` is an :class:`AtomisticData` with ``y``
    ``[1, num_tasks]`` (NaN = missing) and, when the source has them, energy, forces, stress."""

    store: AtomisticStore

    @property
    def feature_spec(self):
        return atomistic_feature_spec()

    @property
    def names(self) -> list[str]:
        return [self.store.names[int(i)] for i in self.indices]


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


def _window_key(offset: int) -> tuple[int, ...]:
    """The offset's part of a cache identity: empty for 0, so caches built before offsets existed stay valid."""
    return (offset,) if offset else ()


def _window_total(size: int, limit: int | None, offset: int) -> int:
    """How many records a source of ``size`` yields after ``offset`` and ``limit``."""
    rest = max(size - offset, 0)
    return rest if limit is None else min(limit, rest)


def _qm9_3d(limit: int | None, offset: int = 0) -> AtomisticSource:
    paths = [packaged_file("qm9pack", f"data/qm9_part{i}.csv") for i in (1, 2, 3)]
    return AtomisticSource(
        "qm9-3d", _qm9_records(paths, limit, offset), [n for n, _ in QM9_TARGETS.values()], "regression", "mae",
        file_identity(paths[0], *(file_identity(p) for p in paths[1:]), limit, *_window_key(offset)),
        total=_window_total(QM9_SIZE, limit, offset),
        description="QM9 DFT geometries (non-periodic), 12 targets in the units of the 2D qm9 set")


def _pymatgen_build(name: str, payload: dict, cutoff: float) -> AtomisticData:
    from pymatgen.core import Structure

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


def _matbench_dielectric(limit: int | None, offset: int = 0) -> AtomisticSource:
    path = packaged_file("crystal_toolkit", "apps/examples/matbench_dielectric.json.gz")
    return AtomisticSource(
        "matbench-dielectric", _matbench_records(path, limit, offset), ["n"], "regression", "mae",
        file_identity(path, limit, *_window_key(offset)),
        total=_window_total(MATBENCH_DIELECTRIC_SIZE, limit, offset),
        description="Matbench dielectric: refractive index n of 4,764 crystals; MAE, 5-fold CV (matbench_folds)")


for _info in (
    AtomisticDatasetInfo("qm9-3d", _qm9_3d, "regression", "mae",
                         "QM9 3D geometries, 12 standard targets, 130,831 molecules"),
    AtomisticDatasetInfo("matbench-dielectric", _matbench_dielectric, "regression", "mae",
                         "Matbench dielectric, refractive index, 4,764 crystals"),
):
    ATOMISTIC_DATASETS[_info.name] = _info


# --------------------------------------------------------------------------- user data

def _structure_format(path: Path) -> str | None:
    """The ASE format of a structure file in a folder, or None for other files."""
    fmt = _STRUCTURE_FORMATS.get(path.suffix.lower())
    if fmt is None and path.name.upper().startswith(("POSCAR", "CONTCAR")):
        fmt = "vasp"
    return fmt


def _file_build(path: Path, fmt: str, name: str, cutoff: float) -> AtomisticData:
    structures = read_structures(path, ":", format=fmt, cutoff=cutoff)
    if len(structures) != 1:
        raise DataError(f"structure {name!r}: the file holds {len(structures)} structures; expected exactly one")
    data = structures[0]
    data.name = name
    return data


def _folder_source(folder: Path, config: DataConfig) -> AtomisticSource:
    listing = sorted(p for p in folder.iterdir() if p.is_file())
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in listing]
    offset, stop = config.offset, _stop(config)
    if not config.label_file:
        files = [p for p in listing if _structure_format(p)]
        if not files:
            raise DataError(f"folder '{folder}' holds no CIF/POSCAR file (*.cif, *.vasp, *.poscar, POSCAR*, CONTCAR*)")
        files = files[offset:stop]  # sorted by name, so the window is reproducible
        if not files:
            raise DataError(f"folder '{folder}': data.offset={offset} skips every structure file")
        records = (StructureRecord(k, p.name, partial(_file_build, p, _structure_format(p), p.name), [])
                   for k, p in enumerate(files, start=offset))
        identity = json.dumps([str(folder.resolve()), stats, config.limit, *_window_key(offset)])
        return AtomisticSource(folder.name, records, [], None, None, identity, total=len(files))

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

    def records() -> Iterator[StructureRecord]:
        for k, row in enumerate(frame.to_dict("records"), start=offset):
            file_name = str(row[config.id_column]).strip()
            labels, error = [], None
            for column in label_columns:
                value, err = parse_label(row[column], column)
                labels.append(value)
                error = error or err
            path = folder / file_name
            fmt = _structure_format(path)
            if error is None and not file_name:
                error = f"empty {config.id_column!r} cell in row {k} of '{label_path.name}'"
            elif error is None and not path.is_file():
                error = f"file {file_name!r} named in '{label_path.name}' is not in the folder '{folder}'"
            yield StructureRecord(k, file_name, partial(_file_build, path, fmt, file_name), labels, error)

    identity = json.dumps([str(folder.resolve()), stats, file_identity(label_path), config.id_column,
                           label_columns, config.limit, *_window_key(offset)])
    return AtomisticSource(folder.name, records(), label_columns, task_type,
                           "mae" if task_type == "regression" else "roc_auc", identity, total=len(frame))


def _frame_build(atoms: Any, name: str, keep_stress: bool, cutoff: float) -> AtomisticData:
    data = from_ase(atoms, cutoff=cutoff, name=name)
    if not keep_stress and getattr(data, "stress", None) is not None:
        del data.stress  # the first frame had none: a partial stress column cannot be stored
    return data


def _frame_records(frames: Iterable[tuple[str, Any, str | None]], offset: int = 0) -> Iterator[StructureRecord]:
    stress_expected: bool | None = None
    for k, (name, atoms, error) in enumerate(frames, start=offset):
        if atoms is None:  # the frame could not be read at all
            yield StructureRecord(k, name, None, [math.nan], error)
            continue
        results = dict(getattr(atoms.calc, "results", {}) or {}) if atoms.calc is not None else {}
        energy = results.get("energy")
        if energy is None:
            error = "the frame has no energy"
        elif results.get("forces") is None:
            error = "the frame has no forces"
        elif stress_expected is None:
            stress_expected = results.get("stress") is not None
        elif stress_expected and results.get("stress") is None:
            error = "the frame has no stress, though the first frame has one"
        label = float(energy) if energy is not None else math.nan
        yield StructureRecord(k, name, partial(_frame_build, atoms, name, bool(stress_expected)), [label], error)


def _xyz_blocks(path: Path) -> Iterator[tuple[int, str | None, str | None]]:
    """``(first line, text, None)`` for each frame of an (ext)xyz file, ``(first line, None, reason)``
    for one that cannot be framed.

    Frames are split by their atom-count lines, as ASE does, but each frame is parsed on its own,
    so one bad frame (unknown element, garbage numbers) is one bad record. A frame the file ends
    inside (a truncated file), or a count line that is no count, ends the scan: no later frame
    boundary can be trusted, so the rest of the file is that one bad record.
    """
    with path.open("r", errors="replace") as handle:
        line_no, pending = 0, None
        while True:
            line = pending if pending is not None else handle.readline()
            pending = None
            line_no += 1
            if not line:
                return
            if not line.strip():
                continue  # blank lines between frames; ASE would silently stop reading here
            start = line_no
            try:
                count = int(line)
            except ValueError:
                count = -1
            if count < 0:
                yield start, None, (f"line {start} should hold a frame's atom count, got {shorten(line.strip(), 60)!r}; "
                                    "the rest of the file cannot be split into frames")
                return
            lines = [line]
            while len(lines) < count + 2:
                more = handle.readline()
                if not more:
                    break
                lines.append(more)
            line_no += len(lines) - 1
            if len(lines) < count + 2:
                yield start, None, (f"truncated frame: its count line announces {count} atoms, but the file ends "
                                    f"after {max(len(lines) - 2, 0)} atom lines")
                return
            more = handle.readline()
            while more.lstrip().startswith("VEC"):  # plain xyz may give lattice vectors after the atoms
                lines.append(more)
                line_no += 1
                more = handle.readline()
            pending = more  # the next frame's count line ("" at the end of the file)
            yield start, "".join(lines), None


def _extxyz_frames(path: Path, limit: int | None, offset: int = 0) -> Iterator[tuple[str, Any, str | None]]:
    import io

    import ase.io

    from graphssl.atomistic.adapters import describe_read_error

    stop = None if limit is None else offset + limit
    for k, (line, text, error) in enumerate(_xyz_blocks(path)):
        if stop is not None and k >= stop:
            return
        name = f"{path.name}[{k}]"
        if text is None:  # also before the offset: it stands for the rest of the file, the window included
            yield name, None, error
            continue
        if k < offset:
            continue
        try:
            atoms = ase.io.read(io.StringIO(text), index=0, format="extxyz")
        except Exception as exc:  # ASE raises many types for a malformed frame
            yield name, None, f"frame starting at line {line} cannot be read: {describe_read_error(exc)}"
            continue
        yield name, atoms, None


def _db_frames(path: Path, limit: int | None, offset: int = 0) -> Iterator[tuple[str, Any, str | None]]:
    import ase.db

    try:
        database = ase.db.connect(str(path))
        # ids first, then one row at a time: a row that cannot be decoded is one bad record, not
        # the end of the build. ase.db reads "no limit" as limit=None; ids come in order.
        ids = [row.id for row in database.select(limit=limit, offset=offset, columns=["id"])]
    except Exception as exc:  # sqlite / JSON back ends raise their own exception types
        raise DataError(f"cannot read rows from the ASE database '{path}': {type(exc).__name__}: {exc}") from None
    for row_id in ids:
        name = f"{path.name}[id={row_id}]"
        try:
            atoms = database.get(id=row_id).toatoms()
        except Exception as exc:  # a corrupted row: wrong blob sizes, unparseable JSON
            yield name, None, f"database row {row_id} cannot be read: {type(exc).__name__}: {exc}"
            continue
        yield name, atoms, None


def user_atomistic_source(config: DataConfig) -> AtomisticSource:
    """The source of ``config.path``: a structure folder, an extxyz/xyz file or an ASE ``.db``."""
    path = Path(str(config.path))
    if path.is_dir():
        return _folder_source(path, config)
    if not path.is_file():
        raise DataError(f"data.path '{path}' is neither a folder of structure files nor a file")
    lower = path.name.lower()
    if lower.endswith((".extxyz", ".xyz")):
        frames = _extxyz_frames(path, config.limit, config.offset)
    elif lower.endswith(".db"):
        frames = _db_frames(path, config.limit, config.offset)
    else:
        raise DataError(f"data.path '{path}': expected a folder of CIF/POSCAR files, an .extxyz/.xyz file "
                        "or an ASE database (.db)")
    # y holds the energy too, but the task is energies *and* forces: finetune() hands it to
    # graphssl.engine.atomistic, which selects models on the force MAE.
    identity = file_identity(path, config.limit, *_window_key(config.offset), "energy+forces")
    return AtomisticSource(path.stem, _frame_records(frames, config.offset), ["energy"], "energy_forces", "force_mae",
                           identity, total=config.limit, description=f"energies and forces from '{path.name}'")


def _stop(config: DataConfig) -> int | None:
    return None if config.limit is None else config.offset + config.limit


def _check_window(config: DataConfig) -> None:
    if isinstance(config.offset, bool) or not isinstance(config.offset, int) or config.offset < 0:
        raise DataError(f"data.offset must be a non-negative integer (records to skip), got {config.offset!r}")



def resolve_atomistic_source(config: DataConfig) -> AtomisticSource:
    """The registered (``data.name``) or user (``data.path``) source described by ``config``."""
    if config.name and config.path:
        raise DataError(f"give either data.name ('{config.name}') or data.path ('{config.path}'), not both")
    _check_window(config)
    if config.name:
        if config.name not in ATOMISTIC_DATASETS:
            raise DataError(f"unknown atomistic data set '{config.name}'. Registered: "
                            f"{', '.join(sorted(ATOMISTIC_DATASETS))}; or give data.path")
        return ATOMISTIC_DATASETS[config.name].load(config.limit, config.offset)
    if config.path:
        return user_atomistic_source(config)
    raise DataError("no data set given: set data.name to a registry name or data.path to a folder or file")


# --------------------------------------------------------------------------- build and cache

def atomistic_cache_key(source: AtomisticSource, config: DataConfig) -> str:
    payload = {
        "format": ATOMISTIC_FORMAT_VERSION,
        "source": source.identity,
        "cutoff": float(config.cutoff),
        "max_neighbors": config.max_neighbors,
        "limit": config.limit,
        "on_error": config.on_error,  # a strict build must not silently reuse a skipping one
        "tasks": source.task_names,
        **rules_key(config, bool(source.task_names)),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


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


def _featurise(source: AtomisticSource, config: DataConfig, progress: bool) -> tuple[AtomisticStore, BuildReport]:
    # Built first so that a bad cutoff or max_neighbors fails once, not as a skip per structure.
    neighbors = NeighborList(config.cutoff, config.max_neighbors)
    report = BuildReport(source.name)
    structures: list[AtomisticData] = []
    labels: list[list[float]] = []
    labelled = bool(source.task_names)
    seen = FirstSeen(config.rejects_duplicates(labelled))
    for record in tqdm(source.records, desc=f"featurising {source.name}", total=source.total,
                       disable=not progress, unit="structure", mininterval=1.0):
        report.read += 1
        reason = record.error
        data = None
        if reason is None:
            reason = label_problem(record.labels, labelled)
        if reason is None:
            try:
                data = record.build(config.cutoff)
                if config.max_neighbors is not None:
                    data = neighbors(data)  # the adapters' cutoff shortcut keeps every neighbour
            except DataError as exc:
                reason = str(exc)
        if reason is None and config.max_atoms is not None and data.z.numel() > config.max_atoms:
            reason = (f"structure has {data.z.numel()} atoms, more than data.max_atoms={config.max_atoms} "
                      "(raise the limit, or set it empty for none, to keep it)")
        if reason is None:
            earlier = seen.claim(structure_key(data), record.index)
            if earlier is not None:
                reason = (f"duplicate of structure {earlier} (same atoms, positions and cell); "
                          "set data.duplicates=keep to keep duplicates")
        if reason is not None:
            if config.on_error == "raise":
                raise DataError(f"{source.name}: structure {record.index} ({record.name!r}): {reason}. "
                                "Set data.on_error=skip to skip bad structures; they are then reported.")
            report.skip(record.index, record.name, reason)
            continue
        structures.append(data)
        labels.append(list(record.labels))
        report.kept += 1
    if not structures:
        raise DataError(f"{source.name}: no usable structure among {report.read} read\n{report.summary()}")
    return AtomisticStore.from_structures(structures, labels, len(source.task_names)), report


def _write_report(report: BuildReport, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        report.to_json(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_atomistic_dataset(config: DataConfig, cache_dir: str | Path = ".graphssl_cache", progress: bool = True,
                           verbose: bool = True) -> AtomisticDataset:
    """Build (or load from the on-disk cache) the atomistic data set described by ``config``.

    The cache folder is keyed by the source files, cutoff, max_neighbors, limit, on_error and
    :data:`ATOMISTIC_FORMAT_VERSION`, so any change re-processes. The build report (read,
    kept, skipped with reasons) is printed and stored next to the cached structures.
    """
    config.check()
    source = resolve_atomistic_source(config)
    folder = Path(cache_dir) / f"{source.name}-{atomistic_cache_key(source, config)}"
    store_path, report_path = folder / "structures.pt", folder / "report.json"
    if store_path.is_file() and report_path.is_file():
        store = AtomisticStore.load(store_path)
        report = BuildReport.from_json(report_path)
        report.from_cache = True
    else:
        store, report = _featurise(source, config, progress)
        store.save(store_path)  # the report is written last: its presence marks a complete build
        _write_report(report, report_path)
    if verbose:
        print(report.summary())
    return AtomisticDataset(store, source.name, source.task_names, source.task_type, source.metric, report)
