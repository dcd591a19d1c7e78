"""Adapters to AtomisticData: round trips through ASE, pymatgen, files and RDKit; bad structures."""

from __future__ import annotations

from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.calculators.emt import EMT
from ase.stress import voigt_6_to_full_3x3_stress
from pymatgen.core import Lattice, Molecule, Structure
from torch_geometric.data import Batch

from graphssl.atomistic.adapters import (
    check_structure,
    from_ase,
    from_positions,
    from_pymatgen,
    from_rdkit_conformer,
    read_structures,
)
from graphssl.atomistic.graph import AtomisticData, edge_vectors
from graphssl.core.errors import DataError

F32 = {"atol": 1e-5, "rtol": 1e-5}


def _close(tensor: torch.Tensor, array: np.ndarray) -> None:
    np.testing.assert_allclose(tensor.double().numpy(), np.asarray(array, dtype=float), **F32)


def _copper(seed: int = 0) -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1))
    atoms.rattle(stdev=0.05, seed=seed)
    return atoms


def _assert_same_atoms(data: AtomisticData, atoms: Atoms) -> None:
    assert data.z.dtype == torch.long and data.z.tolist() == atoms.numbers.tolist()
    _close(data.pos, atoms.positions)
    assert data.pbc.shape == (1, 3) and data.pbc[0].tolist() == atoms.pbc.tolist()
    expected_cell = atoms.cell.array if atoms.pbc.any() else np.zeros((3, 3))
    assert data.cell.shape == (1, 3, 3)
    _close(data.cell[0], expected_cell)


# ---------------------------------------------------------------- round trips


def test_ase_crystal_molecule_and_slab() -> None:
    crystal = _copper()
    data = from_ase(crystal, name="cu")
    _assert_same_atoms(data, crystal)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # no dtype cast, so a missing copy would alias
    try:
        data64 = from_ase(crystal)
    finally:
        torch.set_default_dtype(previous)
    assert data64.pos.dtype == torch.float64
    crystal.positions[0] += 1.0
    assert not np.allclose(data64.pos[0].numpy(), crystal.positions[0])
    assert data.name == "cu" and data.pos.dtype == torch.get_default_dtype()
    assert not hasattr(data, "edge_index") or data.edge_index is None

    water = molecule("H2O")
    data = from_ase(water)
    _assert_same_atoms(data, water)
    assert data.name == "H2O"

    slab = fcc111("Cu", size=(2, 2, 3), vacuum=5.0)
    assert slab.pbc.tolist() == [True, True, False]
    data = from_ase(slab, cutoff=3.0)
    _assert_same_atoms(data, slab)
    assert (data.cell_shift[:, 2] == 0).all() and data.cell_shift[:, :2].abs().sum() > 0


def test_ase_cutoff_builds_the_neighbour_list() -> None:
    data = from_ase(_copper(), cutoff=3.0)
    lengths = edge_vectors(data).norm(dim=1)
    assert data.edge_index.shape[1] == 8 * 12  # fcc: 12 nearest neighbours within 3 A
    assert (lengths < 3.0).all() and (lengths > 2.0).all()


def test_ase_calculator_labels() -> None:
    atoms = _copper()
    atoms.calc = EMT()
    energy, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    data = from_ase(atoms)
    assert data.energy.shape == (1,) and data.forces.shape == (len(atoms), 3) and data.stress.shape == (1, 3, 3)
    _close(data.energy, [energy])
    _close(data.forces, forces)
    _close(data.stress[0], voigt_6_to_full_3x3_stress(stress))
    assert not hasattr(from_ase(_copper()), "energy")  # no calculator, no labels


def test_pymatgen_structure_and_molecule() -> None:
    lattice = Lattice.from_parameters(4.1, 4.3, 4.6, 80, 95, 100)
    structure = Structure(lattice, ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.45, 0.55]])
    data = from_pymatgen(structure, cutoff=4.0)
    assert data.z.tolist() == [55, 17] and data.name == "Cs1Cl1"
    _close(data.pos, structure.cart_coords)
    _close(data.cell[0], lattice.matrix)
    assert data.pbc.tolist() == [[True, True, True]]
    reference = structure.get_neighbor_list(4.0)
    assert data.edge_index.shape[1] == len(reference[0])

    methane = Molecule(["C", "H", "H", "H", "H"],
                       [[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]])
    data = from_pymatgen(methane, name="methane")
    assert data.z.tolist() == [6, 1, 1, 1, 1] and data.name == "methane"
    _close(data.pos, methane.cart_coords)
    assert not data.pbc.any() and (data.cell == 0).all()


def test_files_round_trip(tmp_path: Path) -> None:
    crystal = _copper(1)
    ase.io.write(tmp_path / "cu.cif", crystal)
    ase.io.write(tmp_path / "POSCAR", crystal, format="vasp")
    water = molecule("CH3CH2OH")
    ase.io.write(tmp_path / "ethanol.xyz", water, format="xyz")

    (cif,) = read_structures(tmp_path / "cu.cif")
    assert cif.name == "cu.cif[0]"
    assert sorted(cif.z.tolist()) == sorted(crystal.numbers.tolist())
    _close(cif.cell[0], crystal.cell.array)
    (poscar,) = read_structures(tmp_path / "POSCAR", cutoff=3.0)
    assert poscar.name == "POSCAR[0]"
    _assert_same_atoms(poscar, crystal)
    (xyz,) = read_structures(tmp_path / "ethanol.xyz")
    assert xyz.z.tolist() == water.numbers.tolist() and not xyz.pbc.any()
    _close(xyz.pos, water.positions)


def test_extxyz_labels_and_frames(tmp_path: Path) -> None:
    frames, expected = [], []
    for seed in range(3):
        atoms = _copper(seed)
        atoms.calc = EMT()
        expected.append((atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()))
        frames.append(atoms)
    path = tmp_path / "train.extxyz"
    ase.io.write(path, frames, format="extxyz")

    structures = read_structures(path, format="extxyz")
    assert [s.name for s in structures] == ["train.extxyz[0]", "train.extxyz[1]", "train.extxyz[2]"]
    for data, atoms, (energy, forces, stress) in zip(structures, frames, expected):
        _assert_same_atoms(data, atoms)
        _close(data.energy, [energy])
        _close(data.forces, forces)
        _close(data.stress[0], voigt_6_to_full_3x3_stress(stress))
        assert torch.allclose(data.stress[0], data.stress[0].T)
    (last,) = read_structures(path, index="2", format="extxyz")
    assert last.name == "train.extxyz[2]"
    _close(last.energy, [expected[2][0]])
    batch = Batch.from_data_list(structures)
    assert batch.stress.shape == (3, 3, 3) and batch.energy.shape == (3,) and batch.forces.shape == (24, 3)


def test_rdkit_conformer() -> None:
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    assert AllChem.EmbedMolecule(mol, randomSeed=7) == 0
    data = from_rdkit_conformer(mol, cutoff=2.0)
    assert data.z.tolist() == [a.GetAtomicNum() for a in mol.GetAtoms()]
    _close(data.pos, mol.GetConformer().GetPositions())
    assert data.name == Chem.MolToSmiles(mol)
    assert not data.pbc.any()
    mol.SetProp("_Name", "ethanol")
    assert from_rdkit_conformer(mol).name == "ethanol"

    with pytest.raises(DataError, match="'bare'.*no conformer"):
        from_rdkit_conformer(Chem.MolFromSmiles("CCO"), name="bare")
    flat = Chem.MolFromSmiles("CCO")
    AllChem.Compute2DCoords(flat)
    with pytest.raises(DataError, match="'flat'.*2D"):
        from_rdkit_conformer(flat, name="flat")


def test_from_positions_accepts_symbols_and_voigt_stress() -> None:
    data = from_positions(["O", "H", "H"], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], name="water",
                          energy=-1.5, stress=[1, 2, 3, 4, 5, 6])
    assert data.z.tolist() == [8, 1, 1]
    assert data.stress[0].tolist() == [[1, 6, 5], [6, 2, 4], [5, 4, 3]]
    assert data.energy.tolist() == [-1.5]


# ---------------------------------------------------------------- bad structures


def _cubic(pos, a=3.0, name="bad", **kwargs) -> AtomisticData:
    return from_positions([29] * len(pos), pos, np.eye(3) * a, True, name=name, **kwargs)


@pytest.mark.parametrize(
    "build, pattern",
    [
        (lambda: from_positions([6, 8], [[0, 0, 0], [np.nan, 0, 0]], name="nan_mol"),
         r"structure 'nan_mol': non-finite coordinates .* atoms 1"),
        (lambda: from_positions([6, 8], [[0, 0, 0], [1.2, np.inf, 0]], name="inf_mol"),
         r"'inf_mol': non-finite"),
        (lambda: from_positions([6, 0], [[0, 0, 0], [1.2, 0, 0]], name="z0"),
         r"'z0': unknown element \(atomic number 0\) at atoms 1"),
        (lambda: from_positions([150, 6], [[0, 0, 0], [1.2, 0, 0]], name="z150"),
         r"'z150': unknown element \(atomic number 150\) at atoms 0"),
        (lambda: from_positions(["C", "Xx"], [[0, 0, 0], [1.2, 0, 0]], name="sym"),
         r"'sym': unknown element 'Xx' at atom 1"),
        (lambda: from_ase(Atoms(numbers=[6, 0], positions=[[0, 0, 0], [1.2, 0, 0]]), name="ghost"),
         r"'ghost': unknown element"),
        (lambda: from_pymatgen(Structure(Lattice.cubic(3.0), ["X0+", "Cu"], [[0, 0, 0], [0.5, 0.5, 0.5]]), name="dummy"),
         r"'dummy': unknown element 'X' at atom 0"),
        (lambda: from_positions([6, 8, 8], [[0, 0, 0], [1.2, 0, 0], [1.3, 0.05, 0]], name="clash"),
         r"structure 'clash': atoms 1 and 2 overlap \(distance 0.112 A < 0.5 A\)"),
        (lambda: _cubic([[0.1, 1.5, 1.5], [2.9, 1.5, 1.5]], name="POSCAR_12"),
         r"structure 'POSCAR_12': atoms 0 and 1 overlap through the periodic image of 1 at shift \[-1, 0, 0\] "
         r"\(distance 0.2 A < 0.5 A\)"),
        (lambda: _cubic([[0.0, 0.0, 0.0]], a=0.4, name="tiny"),
         r"'tiny': atom 0 overlaps its own periodic image"),
        (lambda: from_positions([29, 29], [[0, 0, 0], [1.5, 1.5, 1.5]],
                                [[3.0, 0, 0], [6.0, 0, 0], [0, 0, 3.0]], True, name="flat_cell"),
         r"structure 'flat_cell': degenerate cell: its lattice vectors .* span no volume \(\|V\| = 0 A\^3\)"),
        (lambda: from_positions([29], [[0, 0, 0]], [[3.0, 0, 0], [6.0, 0, 0], [0, 0, 0]], [True, True, False],
                                name="flat_slab"),
         r"'flat_slab': the periodic lattice vectors .* are zero or parallel"),
        (lambda: from_positions([6, 8, 1, 1], [[0, 0, 0], [1.2, 0, 0], [0, 9, 0], [0, 0, 7]],
                                cutoff=3.0, name="far"),
         r"structure 'far': atoms 2, 3 have no neighbour within the cutoff 3 A "
         r"\(their nearest neighbours are 7 to 9 A away\)"),
        (lambda: from_positions([18], [[0, 0, 0]], cutoff=3.0, name="argon"),
         r"'argon': atom 0 has no neighbour within the cutoff 3 A \(a single non-periodic atom\)"),
        (lambda: from_positions([6, 8], [[0, 0, 0], [1.2, 0, 0]], forces=[[0, 0, 0]], name="forces"),
         r"'forces': forces has shape \[1, 3\], expected \[2, 3\]"),
        (lambda: from_positions([6, 8], [[0, 0, 0], [1.2, 0, 0]], energy=float("nan"), name="e"),
         r"'e': non-finite energy"),
        (lambda: from_positions([], np.zeros((0, 3)), name="empty"), r"'empty': has no atoms"),
    ],
)
def test_bad_structures_raise_data_error_naming_them(build, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        build()


def test_periodic_cutoff_isolation_uses_images() -> None:
    # one atom in a 3 A cell: its images are its neighbours, so it is not isolated at 3.5 A
    data = _cubic([[0.0, 0.0, 0.0]], cutoff=3.5)
    assert data.edge_index.shape[1] == 6
    with pytest.raises(DataError, match=r"atom 0 has no neighbour within the cutoff 2.5 A "
                                        r"\(its nearest neighbour is at 3 A\)"):
        _cubic([[0.0, 0.0, 0.0]], cutoff=2.5)


def test_check_structure_direct_and_min_distance() -> None:
    data = from_positions([6, 8], [[0, 0, 0], [0.4, 0, 0]], name="close", min_distance=0.3)
    check_structure(data, min_distance=0.3)
    with pytest.raises(DataError, match="'close': atoms 0 and 1 overlap"):
        check_structure(data)
    with pytest.raises(DataError, match="'<unnamed>': needs both z and pos"):
        check_structure(AtomisticData(pos=torch.zeros(1, 3)))
    data.pos[0, 0] = float("nan")
    with pytest.raises(DataError, match="'close': non-finite"):
        check_structure(data, min_distance=0.3)


def test_bad_files_name_the_structure(tmp_path: Path) -> None:
    clash = Atoms("Cu2", positions=[[0.1, 1.5, 1.5], [2.95, 1.5, 1.5]], cell=np.eye(3) * 3.0, pbc=True)
    ase.io.write(tmp_path / "POSCAR_12", clash, format="vasp")
    with pytest.raises(DataError, match=r"structure 'POSCAR_12\[0\]': atoms 0 and 1 overlap"):
        read_structures(tmp_path / "POSCAR_12")
    (tmp_path / "junk.cif").write_text("this is not a cif\n")
    with pytest.raises(DataError, match="junk.cif"):
        read_structures(tmp_path / "junk.cif")
    with pytest.raises(DataError, match="no such structure file"):
        read_structures(tmp_path / "missing.xyz")
