"""Energy and force frames from extxyz/xyz files and ASE databases, one record per frame.

Each frame is read on its own, so one bad frame (unknown element, garbage numbers, a corrupted
database row) is one bad record, not the end of the build.
"""

from __future__ import annotations

import io
import math
from functools import partial
from pathlib import Path
from typing import Any, Iterable, Iterator

from graphssl.atomistic.adapters import describe_read_error, from_ase
from graphssl.atomistic.datasets import StructureRecord
from graphssl.atomistic.graph import AtomisticData
from graphssl.core.errors import DataError
from graphssl.data.records import Source, shorten


def _frame_build(atoms: Any, name: str, keep_stress: bool, cutoff: float) -> AtomisticData:
    data = from_ase(atoms, cutoff=cutoff, name=name)
    if not keep_stress and getattr(data, "stress", None) is not None:
        del data.stress  # the first frame had none: a partial stress column cannot be stored
    return data


def frame_records(frames: Iterable[tuple[str, Any, str | None]], offset: int = 0) -> Iterator[StructureRecord]:
    """Structure records labelled with each frame's energy; a frame without energy or forces, or
    without a stress when the first frame has one, is a bad record."""
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


def xyz_blocks(path: Path) -> Iterator[tuple[int, str | None, str | None]]:
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
                found = shorten(line.strip(), 60)
                yield start, None, (f"line {start} should hold a frame's atom count, got {found!r}; "
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


def extxyz_frames(path: Path, limit: int | None, offset: int = 0) -> Iterator[tuple[str, Any, str | None]]:
    """``(name, atoms, None)`` per frame of an (ext)xyz file after ``offset``, or ``(name, None, reason)``."""
    import ase.io  # the crystal extra: imported only when frames are read

    stop = None if limit is None else offset + limit
    for k, (line, text, error) in enumerate(xyz_blocks(path)):
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


def db_frames(path: Path, limit: int | None, offset: int = 0) -> Iterator[tuple[str, Any, str | None]]:
    """``(name, atoms, None)`` per row of an ASE database after ``offset``, or ``(name, None, reason)``."""
    import ase.db  # the crystal extra: imported only when rows are read

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


def frame_source(path: Path, limit: int | None, offset: int, identity: str) -> Source:
    """The energy-and-forces source of an extxyz/xyz file or an ASE ``.db`` file."""
    if path.name.lower().endswith(".db"):
        frames = db_frames(path, limit, offset)
    else:
        frames = extxyz_frames(path, limit, offset)
    # y holds the energy too, but the task is energies *and* forces: fine-tuning selects models
    # on the force MAE.
    return Source(path.stem, frame_records(frames, offset), ["energy"], "energy_forces", "force_mae", identity,
                  f"energies and forces from '{path.name}'", total=limit)
