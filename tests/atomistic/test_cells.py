"""Cells the neighbour lists must treat as the crystal they describe, whatever the basis: pairs
exactly at the cutoff, left-handed bases and skewed bases of one lattice."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from pymatgen.core import Lattice, Structure

from graphssl.atomistic.adapters import from_ase, from_positions, from_pymatgen, read_structures
from graphssl.atomistic.graph import edge_vectors
from graphssl.atomistic.neighbors import neighbor_pairs, radius_graph, reduced_basis
from graphssl.core.errors import DataError


def _pymatgen_pairs(structure: Structure, cutoff: float) -> Counter:
    """(i, j, Cartesian translation rounded to 1e-4 A) of pymatgen's neighbour list."""
    i, j, images, _ = structure.get_neighbor_list(cutoff)
    translations = np.asarray(images, dtype=float) @ structure.lattice.matrix
    return Counter(zip(i.tolist(), j.tolist(), map(tuple, np.round(translations, 4).tolist())))


def _our_pairs(data) -> Counter:
    translations = data.cell_shift.double() @ data.cell[0].double()
    return Counter(zip(data.edge_index[0].tolist(), data.edge_index[1].tolist(),
                       map(tuple, np.round(translations.numpy(), 4).tolist())))


# ------------------------------------------------------------------ pairs at exactly the cutoff


def test_pairs_at_exactly_the_cutoff_are_neighbours_as_pymatgen_counts():
    # A simple cubic cell of 5.0 A: each atom's six images sit at exactly 5.0 A.
    data = from_positions([29], [[0.0, 0.0, 0.0]], np.eye(3) * 5.0, True, cutoff=5.0, name="sc")
    assert data.edge_index.size(1) == 6
    structure = Structure(Lattice.cubic(5.0), ["Cu"], [[0, 0, 0]])
    assert _our_pairs(data) == _pymatgen_pairs(structure, 5.0)
    # a float32 copy of a cell meant to be 5.0 A along a tilted vector still counts
    tilted = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 5.0], [4.0, -3.0, 0.0]], dtype=np.float32)
    assert from_positions([29], [[0.1, 0.2, 0.3]], tilted, True, cutoff=5.0).edge_index.size(1) == 6
    # beyond the cutoff, not within it
    with pytest.raises(DataError, match=r"atom 0 has no neighbour within the cutoff 4.999 A "
                                        r"\(its nearest neighbour is at 5 A\)"):
        from_positions([29], [[0.0, 0.0, 0.0]], np.eye(3) * 5.0, True, cutoff=4.999, name="sc")


def test_no_neighbour_error_says_how_far_the_nearest_is():
    with pytest.raises(DataError, match=r"'gas': atom 1 has no neighbour within the cutoff 3 A "
                                        r"\(its nearest neighbour is at 7.5 A\)"):
        from_positions([6, 8, 8], [[0, 0, 0], [0, 0, 7.5], [1.2, 0, 0]], cutoff=3.0, name="gas")
    # every atom of a sparse crystal: the range of their nearest distances, i.e. the cutoff that would do
    sparse = bulk("Cu", "fcc", a=3.61, cubic=True)
    with pytest.raises(DataError, match=r"atoms 0, 1, 2, 3 have no neighbour within the cutoff 2 A "
                                        r"\(their nearest neighbours are at 2.553 A\)"):
        from_ase(sparse, cutoff=2.0)


# ------------------------------------------------------------------ left-handed cells


def _left_handed() -> Structure:
    lattice = Lattice([[0.0, 4.1, 0.2], [4.3, 0.0, 0.0], [0.5, 0.3, 5.2]])  # a and b swapped: det < 0
    return Structure(lattice, ["K", "K", "O", "O"],
                     [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.2, 0.1, 0.35], [0.8, 0.9, 0.65]])


def test_left_handed_cells_are_valid_and_give_pymatgens_edges(tmp_path):
    structure = _left_handed()
    assert structure.lattice.volume > 0 and np.linalg.det(structure.lattice.matrix) < 0
    data = from_pymatgen(structure, cutoff=4.0, name="lefty")  # was "zero or negative cell volume"
    assert torch.det(data.cell[0].double()) < 0  # the basis as given, handedness included
    assert _our_pairs(data) == _pymatgen_pairs(structure, 4.0)
    rows = [" ".join(f"{x:.6f}" for x in row) for row in structure.lattice.matrix]
    coords = [" ".join(f"{x:.6f}" for x in site.frac_coords) for site in structure]
    (tmp_path / "POSCAR").write_text("\n".join(["lefty", "1.0", *rows, "K O", "2 2", "Direct", *coords]) + "\n")
    [from_file] = read_structures(tmp_path / "POSCAR", cutoff=4.0)
    assert torch.det(from_file.cell[0].double()) < 0
    assert from_file.edge_index.size(1) == data.edge_index.size(1)


def test_only_a_degenerate_cell_is_refused():
    with pytest.raises(DataError, match=r"'flat': degenerate cell: .* span no volume"):
        from_positions([29], [[0, 0, 0]], [[3.0, 0, 0], [0, 3.0, 0], [3.0, 3.0, 0]], True, name="flat")
    # a tiny but honest cell is not degenerate (the threshold is relative to the lengths)
    with pytest.raises(DataError, match="overlaps its own periodic image"):
        from_positions([1], [[0, 0, 0]], np.eye(3) * 0.01, True, name="tiny")


# ------------------------------------------------------------------ skewed bases of one lattice


SKEW = np.array([[1, 0, 0], [25, 1, 0], [13, 31, 1]])  # unimodular: the same lattice as the identity


def _si_in_basis(transform: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Si (diamond, 2 atoms) written in the basis ``transform @ cell``, positions wrapped into
    that cell as a file in that basis would hold them."""
    si = bulk("Si", "diamond", a=5.43)
    cell = transform @ si.cell.array
    frac = si.get_scaled_positions() @ np.linalg.inv(transform)
    return si.numbers, (frac - np.floor(frac)) @ cell, cell


def _edges_in_basis(data, pos: np.ndarray, cell: np.ndarray) -> dict[tuple, float]:
    """Each edge as ``(i, j, shift)`` with the shift in the basis ``cell`` for atoms at ``pos``
    (the reference the test compares against) -> its float32 length as the models compute it."""
    lengths = edge_vectors(data).norm(dim=1).double().numpy()
    i, j = data.edge_index.numpy()
    vectors = data.pos.double().numpy()[j] - data.pos.double().numpy()[i] \
        + data.cell_shift.double().numpy() @ data.cell[0].double().numpy()
    shifts = np.linalg.solve(cell.T, (vectors - (pos[j] - pos[i])).T).T
    assert np.allclose(shifts, np.rint(shifts), atol=1e-6)  # the same atoms, whole lattice translations
    keys = zip(i.tolist(), j.tolist(), map(tuple, np.rint(shifts).astype(int).tolist()))
    return dict(zip(keys, lengths))


def test_a_skewed_basis_gives_the_edges_and_float32_lengths_of_the_reduced_one():
    numbers, pos, cell = _si_in_basis(np.eye(3, dtype=int))
    reduced = from_positions(numbers, pos, cell, True, cutoff=6.0)
    numbers, pos_skewed, skewed = _si_in_basis(SKEW)
    assert np.abs(skewed).max() > 100  # vectors over 100 A long for a 3.8 A lattice
    data = from_positions(numbers, pos_skewed, skewed, True, cutoff=6.0)
    # the stored cell is a short basis of the same lattice, keeping the handedness
    stored = data.cell[0].double().numpy()
    assert np.linalg.norm(stored, axis=1).max() < 4.0
    assert np.allclose(abs(np.linalg.det(stored)), abs(np.linalg.det(cell)), rtol=1e-6)
    assert np.sign(np.linalg.det(stored)) == np.sign(np.linalg.det(skewed))
    integer = np.linalg.solve(stored.T, skewed.T).T  # skewed = integer @ stored
    assert np.allclose(integer, np.rint(integer), atol=1e-6)
    # the same atoms (positions moved by lattice translations only), the same edges
    frac = np.linalg.solve(stored.T, (data.pos.double().numpy() - pos_skewed).T).T
    assert np.allclose(frac, np.rint(frac), atol=1e-4)
    ours, expected = _edges_in_basis(data, pos, cell), _edges_in_basis(reduced, pos, cell)
    assert set(ours) == set(expected) and len(ours) == reduced.edge_index.size(1) == 92
    # float32 edge lengths, as the models compute them, agree to 1e-5 A (they were 2e-4 A off)
    np.testing.assert_allclose([ours[k] for k in expected], list(expected.values()), atol=1e-5)
    i, j, shift, dist = neighbor_pairs(torch.tensor(pos), torch.tensor(cell), True, 6.0)  # float64 truth
    true = {(a, b, tuple(c)): d for a, b, c, d in zip(i.tolist(), j.tolist(), shift.tolist(), dist.tolist())}
    assert set(true) == set(ours)
    np.testing.assert_allclose([ours[k] for k in true], list(true.values()), atol=1e-5)


def test_radius_graph_searches_a_reduced_basis_and_maps_the_shifts_back():
    numbers, pos, cell = _si_in_basis(np.eye(3, dtype=int))
    _, pos_skewed, skewed = _si_in_basis(SKEW)
    edge_index, shift = radius_graph(torch.tensor(pos_skewed), torch.tensor(skewed), True, 6.0)
    # shifts refer to the cell passed in: they are large integers of the skewed basis
    assert shift.abs().max() > 10
    vectors = (torch.tensor(pos_skewed)[edge_index[1]] - torch.tensor(pos_skewed)[edge_index[0]]
               + shift.double() @ torch.tensor(skewed))
    reference_index, reference_shift = radius_graph(torch.tensor(pos), torch.tensor(cell), True, 6.0)
    reference = (torch.tensor(pos)[reference_index[1]] - torch.tensor(pos)[reference_index[0]]
                 + reference_shift.double() @ torch.tensor(cell))
    assert edge_index.size(1) == reference_index.size(1)
    np.testing.assert_allclose(np.sort(vectors.norm(dim=1).numpy()), np.sort(reference.norm(dim=1).numpy()),
                               atol=1e-9)
    # and the search costs about what the compact basis costs (it took ~100x longer)
    start = time.perf_counter()
    for _ in range(5):
        radius_graph(torch.tensor(pos), torch.tensor(cell), True, 6.0)
    compact = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(5):
        radius_graph(torch.tensor(pos_skewed), torch.tensor(skewed), True, 6.0)
    assert time.perf_counter() - start < 10 * compact + 0.25


def test_reduced_cells_are_kept_exactly_as_given():
    for atoms in (bulk("Cu", "fcc", a=3.61), bulk("Mg", "hcp", a=3.2, c=5.2), bulk("Si", "diamond", a=5.43)):
        assert reduced_basis(atoms.cell.array) is None
        data = from_ase(atoms, cutoff=4.0)
        np.testing.assert_allclose(data.cell[0].double().numpy(), atoms.cell.array, atol=1e-6)
        np.testing.assert_allclose(data.pos.double().numpy(), atoms.positions, atol=1e-5)
    # slabs and wires keep their cell: only fully periodic cells are reduced
    slab = Atoms("Cu2", positions=[[0, 0, 0], [1.3, 1.3, 1.8]], cell=[[2.6, 0, 0], [26.0, 2.6, 0], [0, 0, 0]],
                 pbc=[True, True, False])
    assert reduced_basis(slab.cell.array, slab.pbc) is None
