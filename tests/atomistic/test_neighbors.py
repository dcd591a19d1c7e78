"""Neighbour lists against pymatgen and ASE on random cells, invariances, max_neighbors, batching."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list
from pymatgen.core import Lattice, Structure
from torch_geometric.data import Batch

from graphssl.atomistic.graph import AtomisticData, edge_vectors
from graphssl.atomistic.neighbors import NeighborList, radius_graph
from graphssl.core.errors import DataError


def _fcc_rattled(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    atoms.rattle(stdev=0.08, seed=seed)
    return atoms.positions, atoms.cell.array, np.array([True] * 3)


def _random_triclinic(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    cell = np.diag(rng.uniform(4.0, 6.0, 3)) + np.tril(rng.uniform(-1.5, 1.5, (3, 3)), -1)
    frac = rng.uniform(0, 1, (9, 3))
    return frac @ cell, cell, np.array([True] * 3)


def _tiny_cell() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.array([[0.3, -0.2, 0.1]]), np.eye(3) * 2.0, np.array([True] * 3)


def _tiny_triclinic() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cell = np.array([[2.1, 0.0, 0.0], [0.9, 2.3, 0.0], [-0.4, 0.6, 2.6]])
    return np.array([[0.1, 0.2, 0.3], [1.2, 1.1, 1.4]]), cell, np.array([True] * 3)


def _molecule(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(1.0, 7.0, (15, 3)), np.zeros((3, 3)), np.array([False] * 3)


def _slab(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    cell = np.array([[4.5, 0.0, 0.0], [1.0, 4.2, 0.0], [0.0, 0.0, 0.0]])
    pos = np.concatenate([rng.uniform(0, 1, (8, 2)) @ cell[:2, :2], rng.uniform(0, 4, (8, 1))], axis=1)
    return pos, cell, np.array([True, True, False])


CASES = {
    "fcc_rattled_0": (_fcc_rattled(0), 5.0),
    "fcc_rattled_1": (_fcc_rattled(1), 4.0),
    "triclinic_0": (_random_triclinic(0), 4.5),
    "triclinic_1": (_random_triclinic(1), 6.0),
    "one_atom_small_cell": (_tiny_cell(), 5.0),
    "two_atom_small_triclinic": (_tiny_triclinic(), 4.0),
    "molecule": (_molecule(0), 3.0),
    "slab_mixed_pbc": (_slab(0), 3.5),
}


def _ours(pos: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float, **kwargs):
    return radius_graph(torch.tensor(pos), torch.tensor(cell), torch.tensor(pbc), cutoff, **kwargs)


def _triples(i, j, shifts) -> Counter:
    shifts = np.rint(np.asarray(shifts, dtype=float)).astype(int)
    return Counter(zip(np.asarray(i).tolist(), np.asarray(j).tolist(), map(tuple, shifts.tolist())))


def _pymatgen(pos, cell, pbc, cutoff):
    # pymatgen needs an invertible lattice even along non-periodic directions
    box = cell.copy()
    for axis in range(3):
        if not pbc[axis] and not box[axis].any():
            box[axis, axis] = 50.0
    structure = Structure(Lattice(box, pbc=tuple(bool(p) for p in pbc)), ["C"] * len(pos), pos,
                          coords_are_cartesian=True)
    return structure.get_neighbor_list(cutoff)


def _ase(pos, cell, pbc, cutoff):
    atoms = Atoms(numbers=[6] * len(pos), positions=pos, cell=cell, pbc=pbc)
    return neighbor_list("ijSd", atoms, cutoff)


def _data(pos, cell, pbc, cutoff, **kwargs) -> AtomisticData:
    data = AtomisticData(z=torch.full((len(pos),), 6), pos=torch.tensor(pos),
                         cell=torch.tensor(cell).reshape(1, 3, 3), pbc=torch.tensor(pbc).reshape(1, 3))
    return NeighborList(cutoff, **kwargs)(data)


@pytest.mark.parametrize("case", list(CASES))
def test_same_pairs_as_pymatgen_and_ase(case: str) -> None:
    (pos, cell, pbc), cutoff = CASES[case]
    edge_index, shift = _ours(pos, cell, pbc, cutoff)
    ours = _triples(edge_index[0], edge_index[1], shift)
    assert edge_index.dtype == shift.dtype == torch.long
    assert ours, "every case has some pairs"
    assert not any(i == j and s == (0, 0, 0) for i, j, s in ours)
    assert max(ours.values()) == 1

    centre, neighbour, images, _ = _pymatgen(pos, cell, pbc, cutoff)
    i, j, s, _ = _ase(pos, cell, pbc, cutoff)
    assert ours == _triples(centre, neighbour, images)
    assert ours == _triples(i, j, s)
    counts = np.bincount(edge_index[0].numpy(), minlength=len(pos))
    assert counts.tolist() == np.bincount(i, minlength=len(pos)).tolist()
    assert counts.tolist() == np.bincount(centre, minlength=len(pos)).tolist()


def test_small_cell_has_only_self_images() -> None:
    (pos, cell, pbc), cutoff = CASES["one_atom_small_cell"]
    edge_index, shift = _ours(pos, cell, pbc, cutoff)
    # lattice points of a simple cubic a = 2 lattice within 5 A of the origin, origin excluded
    r = np.arange(-3, 4)
    grid = np.stack(np.meshgrid(r, r, r), -1).reshape(-1, 3)
    expected = {tuple(g) for g in grid.tolist() if 0 < 2.0 * np.linalg.norm(g) < cutoff}
    assert (edge_index == 0).all()
    assert {tuple(s) for s in shift.tolist()} == expected


@pytest.mark.parametrize("case", list(CASES))
def test_edge_vectors_match_reported_distances(case: str) -> None:
    (pos, cell, pbc), cutoff = CASES[case]
    data = _data(pos, cell, pbc, cutoff)
    lengths = edge_vectors(data).norm(dim=1).numpy()
    ours = {key: d for key, d in zip(_triples(data.edge_index[0], data.edge_index[1], data.cell_shift), lengths)}
    for reference in (_pymatgen(pos, cell, pbc, cutoff), _ase(pos, cell, pbc, cutoff)):
        i, j, s, d = reference
        for key, dist in zip(_triples(i, j, s), d):
            assert ours[key] == pytest.approx(dist, abs=1e-9)
    assert (lengths < cutoff).all() and (lengths > 0).all()


@pytest.mark.parametrize("case", list(CASES))
def test_translation_and_wrapping_keep_edge_lengths(case: str) -> None:
    (pos, cell, pbc), cutoff = CASES[case]
    before = np.sort(edge_vectors(_data(pos, cell, pbc, cutoff)).norm(dim=1).numpy())
    moved = pos + np.random.default_rng(7).uniform(-10, 10, 3)
    if pbc.any():
        frac = np.linalg.solve(np.where(pbc[:, None], cell, np.eye(3)).T, moved.T).T
        frac[:, pbc] %= 1.0  # wrap back into the cell along periodic directions only
        moved = frac @ np.where(pbc[:, None], cell, np.eye(3))
    after = np.sort(edge_vectors(_data(moved, cell, pbc, cutoff)).norm(dim=1).numpy())
    assert before.shape == after.shape
    np.testing.assert_allclose(before, after, atol=1e-9)


@pytest.mark.parametrize("case", ["fcc_rattled_0", "triclinic_0", "one_atom_small_cell", "molecule"])
@pytest.mark.parametrize("k", [1, 4, 12])
def test_max_neighbors_keeps_the_nearest(case: str, k: int) -> None:
    (pos, cell, pbc), cutoff = CASES[case]
    full = _data(pos, cell, pbc, cutoff)
    kept = _data(pos, cell, pbc, cutoff, max_neighbors=k)
    full_d, kept_d = edge_vectors(full).norm(dim=1), edge_vectors(kept).norm(dim=1)
    assert set(_triples(kept.edge_index[0], kept.edge_index[1], kept.cell_shift)) <= set(
        _triples(full.edge_index[0], full.edge_index[1], full.cell_shift))
    for atom in range(len(pos)):
        everything = torch.sort(full_d[full.edge_index[0] == atom]).values
        mine = torch.sort(kept_d[kept.edge_index[0] == atom]).values
        assert mine.numel() == min(k, everything.numel())
        torch.testing.assert_close(mine, everything[: mine.numel()])


def test_max_neighbors_breaks_ties_by_j_then_shift() -> None:
    atoms = bulk("Cu", "fcc", a=3.61)  # one atom, 12 equidistant nearest neighbours
    pos, cell = atoms.positions, atoms.cell.array
    edge_index, shift = _ours(pos, cell, np.array([True] * 3), 3.0, max_neighbors=5)
    _, all_shifts = _ours(pos, cell, np.array([True] * 3), 3.0)
    assert all_shifts.size(0) == 12
    expected = sorted(map(tuple, all_shifts.tolist()))[:5]
    assert list(map(tuple, shift.tolist())) == expected
    assert torch.equal(_ours(pos, cell, np.array([True] * 3), 3.0, max_neighbors=5)[1], shift)


def test_batching_two_crystals_keeps_edge_vectors() -> None:
    first = _data(*CASES["fcc_rattled_0"][0], 4.0)
    second = _data(*CASES["triclinic_0"][0], 4.0)
    third = _data(*CASES["one_atom_small_cell"][0], 5.0)
    batch = Batch.from_data_list([first, second, third])
    assert batch.cell.shape == (3, 3, 3) and batch.pbc.shape == (3, 3)
    expected = torch.cat([edge_vectors(first), edge_vectors(second), edge_vectors(third)])
    torch.testing.assert_close(edge_vectors(batch), expected)


def test_edges_are_sorted_and_on_the_input_device() -> None:
    (pos, cell, pbc), cutoff = CASES["triclinic_1"]
    edge_index, shift = _ours(pos, cell, pbc, cutoff)
    keys = list(zip(edge_index[0].tolist(), edge_index[1].tolist(), map(tuple, shift.tolist())))
    assert keys == sorted(keys)
    assert edge_index.device == torch.tensor(pos).device


def test_non_periodic_accepts_no_cell_and_float32() -> None:
    (pos, _, _), cutoff = CASES["molecule"]
    edge_index, shift = radius_graph(torch.tensor(pos, dtype=torch.float32), None, False, cutoff)
    reference, _ = _ours(pos, np.zeros((3, 3)), np.array([False] * 3), cutoff)
    assert torch.equal(edge_index, reference)
    assert (shift == 0).all()


def test_bad_inputs_raise_data_error() -> None:
    pos = torch.zeros(2, 3, dtype=torch.float64)
    singular = torch.tensor([[3.0, 0, 0], [6.0, 0, 0], [0, 0, 3.0]], dtype=torch.float64)
    with pytest.raises(DataError, match="not invertible"):
        radius_graph(pos, singular, True, 2.0)
    with pytest.raises(DataError, match="needs a cell"):
        radius_graph(pos, None, True, 2.0)
    with pytest.raises(DataError, match="cutoff"):
        NeighborList(0.0)
    data = AtomisticData(z=torch.tensor([6, 6]), pos=pos, cell=singular.reshape(1, 3, 3),
                         pbc=torch.ones(1, 3, dtype=torch.bool), name="flat")
    with pytest.raises(DataError, match="structure 'flat'"):
        NeighborList(2.0)(data)


def test_transform_repr() -> None:
    assert repr(NeighborList(5.0, max_neighbors=12)) == "NeighborList(cutoff=5.0, max_neighbors=12)"
