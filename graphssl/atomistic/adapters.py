"""Turn ASE, pymatgen, RDKit and structure files into :class:`AtomisticData`.

Every adapter validates its result with :func:`check_structure` and names the structure
(``name``, a string kept on the data) in each :class:`~graphssl.core.errors.DataError`. Adapters
build no neighbour list unless given ``cutoff`` (a shortcut for applying
:class:`~graphssl.atomistic.neighbors.NeighborList` afterwards, which also rejects atoms
with no neighbour inside the cutoff, saying how far the nearest one is).

Disordered structures (a site shared by several species, or partly vacant) are refused on
every path: pymatgen objects, ``ase.Atoms`` read from a CIF (ASE keeps one species per site
and records the occupancies in ``atoms.info["occupancy"]``) and files. Data sets built with
``data.on_error=skip`` skip them with that reason. CIF files are read with pymatgen.

A skewed cell is stored as a reduced basis of the same lattice (see
:func:`~graphssl.atomistic.neighbors.reduced_basis`), with positions wrapped into it: the same
crystal and the same atoms in the same order, but short lattice translations, so float32 edge
vectors stay accurate. Cells that are already reduced (nearly all) are kept exactly as given;
a left-handed cell is as valid as a right-handed one.

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
from graphssl.atomistic.neighbors import (
    CUTOFF_TOLERANCE,
    NeighborList,
    nearest_distances,
    neighbor_pairs,
    reduced_basis,
)
from graphssl.core.errors import DataError

MAX_Z = 118
_LIST_LIMIT = 10  # atom indices quoted in one error message
# A site counts as fully occupied by one species when its occupancy is within this of 1
# (CIFs write 0.9999 or 1.0001 for rounded refinements).
OCCUPANCY_TOLERANCE = 1e-3


def _quote(indices: Sequence[int]) -> str:
    shown = ", ".join(str(int(k)) for k in indices[:_LIST_LIMIT])
    more = len(indices) - _LIST_LIMIT
    return shown + (f", ... ({more} more)" if more > 0 else "")


def check_structure(data: AtomisticData, *, cutoff: float | None = None, min_distance: float = 0.5) -> None:
    """Raise :class:`DataError` (naming ``data.name``) if ``data`` is not a sound structure.

    Checks shapes, finite coordinates and cell, atomic numbers in 1..118, a cell that spans a
    volume when periodic (either handedness), no two atoms (or an atom and a periodic image,
    its own included) closer than ``min_distance`` Angstrom, label shapes and, with
    ``cutoff``, that every atom has a neighbour within the cutoff (``d <= cutoff``, as the
    neighbour lists count). Costs one neighbour list, at ``max(cutoff, min_distance)``, so
    it is linear in the number of atoms.
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
            # The sign of the determinant is the handedness of the basis, not a defect: only a
            # cell whose vectors (nearly) lie in a plane is. Relative to the lengths, so that
            # units or a large cell do not move the threshold.
            volume = abs(float(np.linalg.det(box)))
            scale = float(np.prod(np.linalg.norm(box, axis=1)))
            if volume <= 1e-8 * max(scale, 1.0):
                fail(f"degenerate cell: its lattice vectors {box.tolist()} span no volume (|V| = {volume:.4g} A^3)")
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
            counts = np.bincount(i[dist <= cutoff + CUTOFF_TOLERANCE], minlength=n)
            isolated = np.flatnonzero(counts == 0).tolist()
            if isolated:
                fail(_isolated_message(data, isolated, cutoff))
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


def _isolated_message(data: AtomisticData, isolated: list[int], cutoff: float) -> str:
    """Which atoms have no neighbour within ``cutoff``, and how far their nearest ones are."""
    pbc = getattr(data, "pbc", None)
    nearest = nearest_distances(data.pos, getattr(data, "cell", None), False if pbc is None else pbc,
                                isolated[:_LIST_LIMIT], cutoff)
    if len(isolated) == 1:
        where = ("it has no other atom" if not np.isfinite(nearest[0])
                 else f"its nearest neighbour is at {nearest[0]:.4g} A")
        return f"atom {isolated[0]} has no neighbour within the cutoff {cutoff:g} A ({where})"
    finite = nearest[np.isfinite(nearest)]
    if finite.size == 0:
        where = "they have no other atom"
    elif f"{finite.min():.4g}" == f"{finite.max():.4g}":
        where = f"their nearest neighbours are at {finite.min():.4g} A"
    else:
        where = f"their nearest neighbours are {finite.min():.4g} to {finite.max():.4g} A away"
    return f"atoms {_quote(isolated)} have no neighbour within the cutoff {cutoff:g} A ({where})"


def _reduce_cell(data: AtomisticData, box: np.ndarray, positions: np.ndarray, periodic: np.ndarray) -> None:
    """Store a skewed cell as its reduced basis, positions wrapped into it (a no-op otherwise)."""
    reduction = reduced_basis(box, periodic)
    if reduction is None:
        return
    reduced = reduction[0]
    frac = positions @ np.linalg.inv(reduced)
    wrapped = (frac - np.floor(frac)) @ reduced  # whole lattice translations of each atom
    dtype = data.pos.dtype
    data.pos = torch.from_numpy(wrapped).to(dtype)
    data.cell = torch.from_numpy(reduced).to(dtype).reshape(1, 3, 3)


def site_problem(occupancy: dict[str, float]) -> str | None:
    """Why a site with these species occupancies is not one fully occupied species, or None."""
    total = sum(float(v) for v in occupancy.values())
    if len(occupancy) > 1:
        return "is shared by " + ", ".join(f"{el} ({float(v):g})" for el, v in occupancy.items())
    if abs(total - 1.0) > OCCUPANCY_TOLERANCE:
        element = next(iter(occupancy), "?")
        state = "only partly occupied" if total < 1.0 else "over-occupied"
        return f"is {state} ({element} {total:g})"
    return None


def _disorder_error(name: str, site: str, problem: str) -> DataError:
    return DataError(f"structure {name!r}: {site} {problem}; disordered structures (partial or mixed "
                     "occupancy) are not supported: order them first (e.g. pymatgen's "
                     "OrderDisorderedStructureTransformation) or leave them out")


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
        positions = np.array(pos.detach().cpu().numpy() if isinstance(pos, Tensor) else pos, dtype=np.float64)
        positions = positions.reshape(-1, 3)
        periodic = np.asarray(pbc.cpu().numpy() if isinstance(pbc, Tensor) else pbc, dtype=bool).reshape(-1)
        periodic = np.repeat(periodic, 3) if periodic.size == 1 else periodic.reshape(3)
        box = np.zeros((3, 3)) if cell is None else np.array(
            cell.detach().cpu().numpy() if isinstance(cell, Tensor) else cell, dtype=np.float64).reshape(3, 3)
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
    if periodic.all():
        _reduce_cell(data, box, positions, periodic)  # from the float64 input: exact lattice translations
    check_structure(data, cutoff=cutoff, min_distance=min_distance)
    if cutoff is not None:
        data = NeighborList(cutoff)(data)
    return data


def from_ase(atoms: Any, *, cutoff: float | None = None, name: str | None = None,
             min_distance: float = 0.5) -> AtomisticData:
    """Convert ``ase.Atoms``; takes energy, forces and stress the attached calculator already holds.

    Results are read from ``atoms.calc.results`` (e.g. a file's single-point values); nothing
    is computed, so an attached but unused calculator contributes no labels. Atoms that ASE
    read from a disordered CIF (``atoms.info["occupancy"]``) are refused.
    """
    name = name or str(atoms.info.get("name") or atoms.get_chemical_formula() or "atoms")
    occupancies = atoms.info.get("occupancy")
    if isinstance(occupancies, dict):
        # ASE keeps one species per site of a disordered CIF and records the truth here, by kind
        for kind, occupancy in occupancies.items():
            problem = site_problem(dict(occupancy)) if isinstance(occupancy, dict) else None
            if problem is not None:
                raise _disorder_error(name, f"site kind {kind}", problem)
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
        occupancy = {str(species): float(amount) for species, amount in site.species.items()}
        problem = site_problem(occupancy)
        if problem is not None:
            raise _disorder_error(name, f"site {k}", problem)
        species = next(iter(site.species))  # the one species, also at an occupancy of 0.9999
        if isinstance(species, DummySpecies):
            raise DataError(f"structure {name!r}: unknown element {species.symbol!r} at atom {k}")
        numbers.append(species.Z)
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


# CIF keys naming a space group by symbol or number; pymatgen reads a file as P1 when it knows
# none of them and the file lists no symmetry operations.
_GROUP_KEYS = ("space_group_name", "int_tables_number", "space_group_it_number")
_P1_NAMES = {"p1", "1", "?", ".", ""}


def _unknown_group(path: Path) -> str | None:
    """The space group a CIF names that is not P1, if any (called when pymatgen fell back to P1)."""
    from pymatgen.io.cif import CifFile

    for block in CifFile.from_file(str(path)).data.values():
        for key, value in block.data.items():
            if any(part in key.lower() for part in _GROUP_KEYS):
                text = value[0] if isinstance(value, list) and value else value
                if "".join(str(text).split()).lower() not in _P1_NAMES:
                    return str(text).strip()
    return None


def read_cif(path: str | Path) -> list[Any]:
    """Every structure of a CIF file as pymatgen ``Structure`` s, in the cell the file gives.

    pymatgen reads settings and dialects that ASE's CIF reader rejects (``P 1 21/n 1``,
    ``F d 3``, loops ASE calls unexpected), and it keeps partial occupancies, which the
    adapters then refuse instead of silently keeping one species per site. A file that
    names a space group pymatgen cannot expand, and lists no symmetry operations, is refused
    rather than read as P1 with atoms missing.
    """
    import warnings

    from pymatgen.io.cif import CifParser

    path = Path(path)
    parser = None
    with warnings.catch_warnings(record=True) as caught:  # pymatgen warns per file; reasons go in errors
        warnings.simplefilter("always")
        try:
            parser = CifParser(str(path))
            structures = parser.parse_structures(primitive=False)
        except Exception as exc:  # pymatgen raises ValueError, KeyError, IndexError, ... on bad files
            notes = list(getattr(parser, "warnings", None) or []) or [str(w.message) for w in caught]
            detail = " ".join(" ".join(notes).split())[:300]
            reason = describe_read_error(exc) + (f" ({detail})" if detail else "")
            raise DataError(f"cannot read structures from '{path}': {reason}") from exc
    if any("Defaulting to P1" in str(w.message) for w in caught):
        group = _unknown_group(path)
        if group is not None:
            raise DataError(f"cannot read structures from '{path}': space group {group!r} is unknown to pymatgen "
                            "and the file lists no symmetry operations (_symmetry_equiv_pos_as_xyz), so "
                            "atoms would be missing")
    return structures


def is_cif(path: Path, format: str | None = None) -> bool:
    """Whether ``path`` is read as a CIF (``format="cif"``, or a ``.cif`` name without a format)."""
    return (format or "").lower() == "cif" or (format is None and path.suffix.lower() == ".cif")


def read_structures(path: str | Path, index: int | str | slice = ":", *, format: str | None = None,
                    cutoff: float | None = None, min_distance: float = 0.5) -> list[AtomisticData]:
    """Read CIF, POSCAR/CONTCAR, extxyz or XYZ into checked structures.

    CIF files are read with pymatgen (:func:`read_cif`), the rest with ``ase.io.read``. Each
    structure is named ``"<file name>[<frame>]"``; labels come from the file when present.
    """
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such structure file: '{path}'")
    if is_cif(path, format):
        from ase.io.formats import string2index

        structures = read_cif(path)
        selector = string2index(index) if isinstance(index, str) else index
        numbers = range(len(structures))
        try:
            chosen = [numbers[selector]] if isinstance(selector, int) else list(numbers[selector])
        except IndexError:
            raise DataError(f"'{path}' holds {len(structures)} structures; there is none at index {index!r}") from None
        return [from_pymatgen(structures[k], cutoff=cutoff, name=f"{path.name}[{k}]", min_distance=min_distance)
                for k in chosen]
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
