"""Turn ASE, pymatgen, RDKit and structure files into :class:`AtomisticData`.

Every adapter validates its result with :func:`check_structure` and names the structure
(``name``, a string kept on the data) in each :class:`~graphssl.core.errors.DataError`. Adapters
build no neighbour list unless given ``cutoff`` (a shortcut for applying
:class:`~graphssl.atomistic.neighbors.NeighborList` afterwards, which also rejects atoms
with no neighbour inside the cutoff).

Positions, cells and labels use torch's default float dtype; non-periodic structures get a
zero cell, as the graph format requires. Labels: ``energy`` ``[1]`` (eV), ``forces``
``[N, 3]`` (eV/A), ``stress`` ``[1, 3, 3]`` (eV/A^3, ASE's sign convention).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from graphssl.atomistic.graph import AtomisticData
from graphssl.atomistic.neighbors import NeighborList, neighbor_pairs
from graphssl.core.errors import DataError

MAX_Z = 118
_LIST_LIMIT = 10  # atom indices quoted in one error message


def _quote(indices: Sequence[int]) -> str:
    shown = ", ".join(str(int(k)) for k in indices[:_LIST_LIMIT])
    more = len(indices) - _LIST_LIMIT
    return shown + (f", ... ({more} more)" if more > 0 else "")


def check_structure(data: AtomisticData, *, cutoff: float | None = None, min_distance: float = 0.5) -> None:
    """Raise :class:`DataError` (naming ``data.name``) if ``data`` is not a sound structure.

    Checks shapes, finite coordinates and cell, atomic numbers in 1..118, a positive cell
    volume when periodic, no two atoms (or an atom and a periodic image, its own included)
    closer than ``min_distance`` Angstrom, label shapes and, with ``cutoff``, that every atom
    has a neighbour inside the cutoff. Costs one neighbour list, at
    ``max(cutoff, min_distance)``, so it is linear in the number of atoms.
    """
    prefix = f"structure {getattr(data, 'name', None) or '<unnamed>'!r}: "

    def fail(message: str) -> None:
        raise DataError(prefix + message)

    z, pos = getattr(data, "z", None), getattr(data, "pos", None)
    if z is None or pos is None:
        fail("needs both z and pos")
    if z.dim() != 1 or pos.dim() != 2 or pos.size(1) != 3 or pos.size(0) != z.numel():
        fail(f"z has shape {list(z.shape)} and pos {list(pos.shape)}; expected [N] and [N, 3]")
    n = z.numel()
    if n == 0:
        fail("has no atoms")
    bad = (~torch.isfinite(pos)).any(dim=1).nonzero().flatten().tolist()
    if bad:
        fail(f"non-finite coordinates (NaN or inf) at atoms {_quote(bad)}")
    bad = ((z < 1) | (z > MAX_Z)).nonzero().flatten().tolist()
    if bad:
        k = bad[0]
        fail(f"unknown element (atomic number {int(z[k])}) at atoms {_quote(bad)}; expected 1..{MAX_Z}")

    pbc = getattr(data, "pbc", None)
    periodic = np.zeros(3, dtype=bool) if pbc is None else pbc.detach().cpu().reshape(-1).numpy().astype(bool)
    cell = getattr(data, "cell", None)
    if periodic.any():
        if cell is None:
            fail("is periodic but has no cell")
        box = cell.detach().cpu().to(torch.float64).reshape(3, 3).numpy()
        if not np.isfinite(box).all():
            fail(f"non-finite cell {box.tolist()}")
        if periodic.all():
            volume = float(np.linalg.det(box))
            if volume <= 1e-8:
                fail(f"zero or negative cell volume (V = {volume:.4g} A^3)")
        else:
            # Only the periodic vectors must span something: the Gram determinant is the
            # squared length (1 vector) or squared area (2 vectors) they span.
            rows = box[periodic]
            measure = float(np.sqrt(max(np.linalg.det(rows @ rows.T), 0.0)))
            if measure <= 1e-8:
                fail(f"the periodic lattice vectors {rows.tolist()} are zero or parallel")

    radius = min_distance if cutoff is None else max(cutoff, min_distance)
    if radius > 0 and (n > 1 or periodic.any()):
        try:
            i, j, shift, dist = neighbor_pairs(pos, cell, pbc if pbc is not None else False, radius)
        except DataError as exc:
            fail(str(exc))
        close = np.flatnonzero(dist < min_distance)
        if close.size:
            k = close[np.argmin(dist[close])]
            a, b, s, d = int(i[k]), int(j[k]), shift[k].tolist(), float(dist[k])
            if a == b:
                what = f"atom {a} overlaps its own periodic image (shift {s})"
            else:
                if a > b:  # report the pair as (low, high); the shift of j -> i is the negative
                    a, b, s = b, a, [-v for v in s]
                image = f" through the periodic image of {b} at shift {s}" if any(s) else ""
                what = f"atoms {a} and {b} overlap{image}"
            others = close.size // 2 - 1  # the full list holds each pair twice
            more = f"; {others} more overlapping pairs" if others > 0 else ""
            fail(f"{what} (distance {d:.3g} A < {min_distance:g} A){more}")
        if cutoff is not None:
            counts = np.bincount(i[dist < cutoff], minlength=n)
            isolated = np.flatnonzero(counts == 0).tolist()
            if isolated:
                subject = f"atom {isolated[0]} has" if len(isolated) == 1 else f"atoms {_quote(isolated)} have"
                fail(f"{subject} no neighbour within the cutoff {cutoff:g} A")
    elif cutoff is not None:
        fail(f"atom 0 has no neighbour within the cutoff {cutoff:g} A (a single non-periodic atom)")

    expected = {"energy": [1], "forces": [n, 3], "stress": [1, 3, 3]}
    for key, shape in expected.items():
        value = getattr(data, key, None)
        if value is None:
            continue
        if list(value.shape) != shape:
            fail(f"{key} has shape {list(value.shape)}, expected {shape}")
        if not torch.isfinite(value).all():
            fail(f"non-finite {key}")


def _atomic_numbers(z: Any, name: str) -> np.ndarray:
    from ase.data import atomic_numbers

    if isinstance(z, Tensor):
        return z.detach().cpu().long().reshape(-1).numpy().copy()
    values = list(np.asarray(z).reshape(-1).tolist())
    out = []
    for k, value in enumerate(values):
        if isinstance(value, str):
            if value not in atomic_numbers or value == "X":
                raise DataError(f"structure {name!r}: unknown element {value!r} at atom {k}")
            value = atomic_numbers[value]
        out.append(int(value))
    return np.asarray(out, dtype=np.int64)


def _label(value: Any, shape: tuple[int, ...], dtype: torch.dtype, key: str, name: str) -> Tensor:
    try:
        return torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=dtype).reshape(shape)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"structure {name!r}: malformed {key} ({exc})") from exc


def from_positions(z: Sequence[int] | Sequence[str] | Tensor, pos: Any, cell: Any = None,
                   pbc: bool | Sequence[bool] | Tensor = False, *, cutoff: float | None = None,
                   name: str | None = None, energy: float | None = None, forces: Any = None,
                   stress: Any = None, min_distance: float = 0.5) -> AtomisticData:
    """Build a checked :class:`AtomisticData` from atomic numbers (or symbols) and positions.

    ``cell`` holds lattice vectors as rows; ``stress`` is a 3x3 matrix or ASE's Voigt 6-vector.
    """
    name = name or "structure"
    dtype = torch.get_default_dtype()
    numbers = _atomic_numbers(z, name)
    try:
        # copies: the data must not alias the caller's arrays (ase.Atoms.positions, a Tensor)
        positions = np.array(pos.detach().cpu() if isinstance(pos, Tensor) else pos, dtype=np.float64)
        positions = positions.reshape(-1, 3)
        periodic = np.asarray(pbc.cpu() if isinstance(pbc, Tensor) else pbc, dtype=bool).reshape(-1)
        periodic = np.repeat(periodic, 3) if periodic.size == 1 else periodic.reshape(3)
        box = np.zeros((3, 3)) if cell is None else np.array(
            cell.detach().cpu() if isinstance(cell, Tensor) else cell, dtype=np.float64).reshape(3, 3)
    except (TypeError, ValueError) as exc:
        raise DataError(f"structure {name!r}: malformed positions, cell or pbc ({exc})") from exc
    if not periodic.any():
        box = np.zeros((3, 3))  # the graph format's marker of a non-periodic structure
    data = AtomisticData(
        z=torch.from_numpy(numbers), pos=torch.from_numpy(positions).to(dtype),
        cell=torch.from_numpy(box).to(dtype).reshape(1, 3, 3),
        pbc=torch.from_numpy(periodic.copy()).reshape(1, 3), name=name)
    if energy is not None:
        data.energy = _label(energy, (1,), dtype, "energy", name)
    if forces is not None:
        data.forces = _label(forces, (-1, 3), dtype, "forces", name)
    if stress is not None:
        if np.shape(stress) == (6,):  # ASE's Voigt order: xx, yy, zz, yz, xz, xy
            from ase.stress import voigt_6_to_full_3x3_stress

            stress = voigt_6_to_full_3x3_stress(np.asarray(stress, dtype=np.float64))
        data.stress = _label(stress, (1, 3, 3), dtype, "stress", name)
    check_structure(data, cutoff=cutoff, min_distance=min_distance)
    if cutoff is not None:
        data = NeighborList(cutoff)(data)
    return data


def from_ase(atoms: Any, *, cutoff: float | None = None, name: str | None = None,
             min_distance: float = 0.5) -> AtomisticData:
    """Convert ``ase.Atoms``; takes energy, forces and stress the attached calculator already holds.

    Results are read from ``atoms.calc.results`` (e.g. a file's single-point values); nothing
    is computed, so an attached but unused calculator contributes no labels.
    """
    name = name or str(atoms.info.get("name") or atoms.get_chemical_formula() or "atoms")
    results = dict(getattr(atoms.calc, "results", {}) or {}) if atoms.calc is not None else {}
    return from_positions(
        atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc, cutoff=cutoff, name=name,
        energy=results.get("energy"), forces=results.get("forces"), stress=results.get("stress"),
        min_distance=min_distance)


def from_pymatgen(structure_or_molecule: Any, *, cutoff: float | None = None, name: str | None = None,
                  min_distance: float = 0.5) -> AtomisticData:
    """Convert a pymatgen ``Structure`` (periodic per ``lattice.pbc``) or ``Molecule``."""
    from pymatgen.core import DummySpecies, Molecule, Structure

    obj = structure_or_molecule
    if not isinstance(obj, (Structure, Molecule)):
        raise DataError(f"expected a pymatgen Structure or Molecule, got {type(obj).__name__}")
    name = name or obj.formula.replace(" ", "")
    numbers = []
    for k, site in enumerate(obj):
        if not site.is_ordered:
            raise DataError(f"structure {name!r}: site {k} is disordered ({site.species}); "
                            "partial occupancies are not supported")
        if isinstance(site.specie, DummySpecies):
            raise DataError(f"structure {name!r}: unknown element {site.specie.symbol!r} at atom {k}")
        numbers.append(site.specie.Z)
    if isinstance(obj, Structure):
        return from_positions(numbers, obj.cart_coords, obj.lattice.matrix, obj.lattice.pbc,
                              cutoff=cutoff, name=name, min_distance=min_distance)
    return from_positions(numbers, obj.cart_coords, cutoff=cutoff, name=name, min_distance=min_distance)


def from_rdkit_conformer(mol: Any, conf_id: int = -1, *, cutoff: float | None = None,
                         name: str | None = None, min_distance: float = 0.5) -> AtomisticData:
    """Convert one 3D conformer of an RDKit molecule (only explicit atoms: AddHs before embedding)."""
    from rdkit import Chem

    if not name:
        name = mol.GetProp("_Name") if mol.HasProp("_Name") and mol.GetProp("_Name") else Chem.MolToSmiles(mol)
    if mol.GetNumConformers() == 0:
        raise DataError(f"structure {name!r}: the molecule has no conformer (embed it first)")
    try:
        conf = mol.GetConformer(conf_id)
    except ValueError as exc:
        raise DataError(f"structure {name!r}: no conformer with id {conf_id}") from exc
    # A 2D depiction has all z = 0; treating it as geometry would silently train on nonsense.
    if not conf.Is3D():
        raise DataError(f"structure {name!r}: conformer {conf.GetId()} is 2D, not a 3D geometry")
    numbers = [atom.GetAtomicNum() for atom in mol.GetAtoms()]
    return from_positions(numbers, conf.GetPositions(), cutoff=cutoff, name=name, min_distance=min_distance)


def describe_read_error(exc: Exception) -> str:
    """ASE's reason for rejecting a file, in words: its readers raise a bare KeyError for an
    unknown element symbol."""
    from ase.data import atomic_numbers

    key = exc.args[0] if isinstance(exc, KeyError) and exc.args else None
    if isinstance(key, str) and key not in atomic_numbers:
        return f"unknown element {key!r}"
    if not str(exc).strip():  # e.g. a bare assert in a parser meeting garbage
        return f"{type(exc).__name__} without a message; the file is not valid in this format"
    return f"{type(exc).__name__}: {exc}"


def _frame_numbers(index: int | str | slice, count: int) -> list[int]:
    """Best-effort frame numbers in the file of the ``count`` frames ``ase.io.read`` returned."""
    from ase.io.formats import string2index

    selector = string2index(index) if isinstance(index, str) else index
    if isinstance(selector, int):
        return [selector]
    start, step = selector.start or 0, selector.step or 1
    if start >= 0 and step > 0:
        return [start + k * step for k in range(count)]
    return list(range(count))  # negative slices: the total is unknown without reading it all


def read_structures(path: str | Path, index: int | str | slice = ":", *, format: str | None = None,
                    cutoff: float | None = None, min_distance: float = 0.5) -> list[AtomisticData]:
    """Read CIF, POSCAR/CONTCAR, extxyz or XYZ (anything ``ase.io.read`` reads) into checked structures.

    Each structure is named ``"<file name>[<frame>]"``; labels come from the file when present.
    """
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such structure file: '{path}'")
    try:
        if format is None and path.name.lower().endswith(".extxyz"):
            format = "extxyz"  # ASE does not recognise this extension by itself
        frames = ase.io.read(path, index=index, format=format)
    except Exception as exc:  # ASE raises many types for malformed files; callers need one
        raise DataError(f"cannot read structures from '{path}': {describe_read_error(exc)}") from exc
    if not isinstance(frames, list):
        frames = [frames]
    numbers = _frame_numbers(index, len(frames))
    return [from_ase(atoms, cutoff=cutoff, name=f"{path.name}[{k}]", min_distance=min_distance)
            for k, atoms in zip(numbers, frames)]
