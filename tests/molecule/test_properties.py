"""Property-based tests (hypothesis): the molecule adapter, coarsening and batching of hierarchies.

Examples are drawn deterministically (``derandomize``) and nothing is stored on disk, so the
suite gives the same answer on every machine; the example budgets keep the file to seconds.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from rdkit import Chem, rdBase
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from torch_geometric.data import Batch, Data

from graphssl.molecule.adapter import smiles_to_data
from graphssl.molecule.features import ATOM_FEATURE_DIMS, BOND_FEATURE_DIMS
from graphssl.transforms.coarsen import Coarsen, coarsen_batch, level_batch

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

# element, valence: neutral atoms whose bond orders stay within these always sanitise
ELEMENTS = [("C", 4), ("C", 4), ("C", 4), ("N", 3), ("O", 2), ("S", 2), ("F", 1), ("Cl", 1)]


# ------------------------------------------------------------------------------ strategies


@st.composite
def molecules(draw: st.DrawFn, max_atoms: int = 16) -> Chem.Mol:
    """A random neutral molecule by random edits: atoms joined to earlier ones (a forest, so
    sometimes several components), bond orders within the free valences, extra ring bonds."""
    n = draw(st.integers(1, max_atoms))
    atoms = [draw(st.sampled_from(ELEMENTS)) for _ in range(n)]
    free = [valence for _, valence in atoms]
    mol = Chem.RWMol()
    for symbol, _ in atoms:
        mol.AddAtom(Chem.Atom(symbol))
    bonded: set[tuple[int, int]] = set()

    def bond(i: int, j: int, order: int) -> None:
        kind = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}[order]
        mol.AddBond(i, j, kind)
        bonded.add((min(i, j), max(i, j)))
        free[i] -= order
        free[j] -= order

    for i in range(1, n):
        partners = [j for j in range(i) if free[j] > 0]
        if not partners or free[i] == 0 or draw(st.integers(0, 9)) == 0:  # start a new component
            continue
        j = draw(st.sampled_from(partners))
        bond(i, j, draw(st.integers(1, min(3, free[i], free[j]))))
    for _ in range(draw(st.integers(0, 3))):  # ring closures
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        if i != j and (min(i, j), max(i, j)) not in bonded and free[i] > 0 and free[j] > 0:
            bond(i, j, 1)
    out = mol.GetMol()
    with rdBase.BlockLogs():
        Chem.SanitizeMol(out)
    return out


@st.composite
def graphs(draw: st.DrawFn, max_nodes: int = 24) -> Data:
    """A random simple undirected graph (both edge directions), isolated nodes and several
    components included."""
    n = draw(st.integers(1, max_nodes))
    pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=2 * n))
    edges = sorted({(min(a, b), max(a, b)) for a, b in pairs if a != b})
    if edges:
        e = torch.tensor(edges, dtype=torch.long).t()
        edge_index = torch.cat([e, e.flip(0)], 1)
    else:
        edge_index = torch.zeros(2, 0, dtype=torch.long)
    return Data(edge_index=edge_index, num_nodes=n)


def _smiles(mol: Chem.Mol, seed: int | None = None) -> str:
    if seed is None:
        return Chem.MolToSmiles(mol)
    return Chem.MolToRandomSmilesVect(mol, 1, randomSeed=seed)[0]


# ------------------------------------------------------------------------------ molecule adapter


def _check_graph(data: Data, num_atoms: int, num_bonds: int) -> None:
    assert data.num_nodes == num_atoms
    assert data.x.dtype == torch.long and data.x.shape == (num_atoms, len(ATOM_FEATURE_DIMS))
    assert data.edge_index.shape == (2, 2 * num_bonds) and data.edge_attr.shape == (2 * num_bonds, len(BOND_FEATURE_DIMS))
    for column, size in enumerate(ATOM_FEATURE_DIMS):
        assert int(data.x[:, column].min()) >= 0 and int(data.x[:, column].max()) < size
    for column, size in enumerate(BOND_FEATURE_DIMS):
        if num_bonds:
            assert int(data.edge_attr[:, column].min()) >= 0 and int(data.edge_attr[:, column].max()) < size
    src, dst = data.edge_index
    if num_bonds:
        assert int(data.edge_index.min()) >= 0 and int(data.edge_index.max()) < num_atoms
    assert not bool((src == dst).any())
    # bond k is columns 2k (i -> j) and 2k + 1 (j -> i), with the same features
    assert torch.equal(data.edge_index[:, 0::2], data.edge_index[:, 1::2].flip(0))
    assert torch.equal(data.edge_attr[0::2], data.edge_attr[1::2])


@SETTINGS
@given(molecules())
def test_molecule_graph_matches_the_molecule(mol):
    smiles = _smiles(mol)
    with rdBase.BlockLogs():
        parsed = Chem.MolFromSmiles(smiles)
    assume(parsed is not None)  # RDKit cannot always read back what it wrote; not the adapter's concern
    data = smiles_to_data(smiles)
    _check_graph(data, parsed.GetNumAtoms(), parsed.GetNumBonds())
    assert data.num_nodes == mol.GetNumAtoms()  # every atom drawn is a node
    with_h = smiles_to_data(smiles, explicit_h=True)
    _check_graph(with_h, Chem.AddHs(parsed).GetNumAtoms(), Chem.AddHs(parsed).GetNumBonds())


@SETTINGS
@given(molecules(), st.integers(0, 2**31 - 1))
def test_any_smiles_of_a_molecule_gives_the_same_graph(mol, seed):
    """The canonical SMILES (the duplicate key) and the multiset of atom and bond features do not
    depend on how the input SMILES was written."""
    canonical, other = _smiles(mol), _smiles(mol, seed)
    with rdBase.BlockLogs():
        assume(Chem.MolFromSmiles(canonical) is not None and Chem.MolFromSmiles(other) is not None)
    a, b = smiles_to_data(canonical), smiles_to_data(other)
    assert a.smiles == b.smiles
    assert sorted(map(tuple, a.x.tolist())) == sorted(map(tuple, b.x.tolist()))
    assert sorted(map(tuple, a.edge_attr.tolist())) == sorted(map(tuple, b.edge_attr.tolist()))


# ------------------------------------------------------------------------------ coarsening


def _components(edge_index: torch.Tensor, num_nodes: int) -> int:
    e = edge_index.numpy()
    adjacency = coo_matrix((np.ones(e.shape[1]), (e[0], e[1])), shape=(num_nodes, num_nodes))
    return connected_components(adjacency, directed=False)[0]


def _check_hierarchy(h: Data, levels: int, ratio: float, matching: bool) -> None:
    assert h.num_levels == levels
    edges, n = h.edge_index, h.num_nodes
    components = _components(edges, n)
    for level in range(1, levels + 1):
        cluster, coarse = h[f"cluster_{level}"], h[f"edge_index_{level}"]
        m = h[f"n_{level}"]
        # every node of the level below joins exactly one supernode, and every supernode has one
        assert cluster.shape == (n,) and cluster.dtype == torch.long
        assert int(cluster.min()) >= 0 and int(cluster.max()) < m
        assert torch.unique(cluster).numel() == m
        assert m <= n
        if matching:
            assert n - m <= int(ratio * n + 1e-9)  # at most ratio * n nodes removed
            sizes = torch.bincount(cluster, minlength=m)
            assert int(sizes.max()) <= 2  # a matching contracts pairs ...
            fine = set(map(tuple, edges.t().tolist()))
            for supernode in torch.nonzero(sizes == 2).flatten().tolist():
                a, b = torch.nonzero(cluster == supernode).flatten().tolist()
                assert (a, b) in fine  # ... of adjacent nodes
        # coarse edges: valid, no self-loops, no repeats, both directions, exactly the images of fine edges
        pairs = coarse.t().tolist()
        assert all(0 <= u < m and 0 <= v < m and u != v for u, v in pairs)
        assert len(set(map(tuple, pairs))) == len(pairs)
        assert {(v, u) for u, v in pairs} == set(map(tuple, pairs))
        image = {(int(cluster[u]), int(cluster[v])) for u, v in edges.t().tolist() if cluster[u] != cluster[v]}
        assert set(map(tuple, pairs)) == image
        pe = h[f"rwpe_{level}"]
        assert pe.shape[0] == m and bool(torch.isfinite(pe).all())
        assert float(pe.min()) >= 0.0 and float(pe.max()) <= 1.0 + 1e-6
        assert _components(coarse, m) == components  # components neither merge nor split
        edges, n = coarse, m


@SETTINGS
@given(graphs(), st.sampled_from(["algebraic", "heavy_edge"]), st.integers(1, 3),
       st.sampled_from([0.1, 0.25, 0.5]))
def test_coarsening_random_graphs(graph, method, levels, ratio):
    _check_hierarchy(Coarsen(levels=levels, ratio=ratio, method=method)(graph), levels, ratio, matching=True)


@SETTINGS
@given(molecules(), st.integers(1, 3))
def test_chemistry_coarsening_random_molecules(mol, levels):
    smiles = _smiles(mol)
    with rdBase.BlockLogs():
        assume(Chem.MolFromSmiles(smiles) is not None)
    h = Coarsen(levels=levels, ratio=0.5, method="chemistry")(smiles_to_data(smiles))
    _check_hierarchy(h, levels, 0.5, matching=False)


# ------------------------------------------------------------------------------ batching


@SETTINGS
@given(st.lists(graphs(max_nodes=16), min_size=1, max_size=5), st.sampled_from(["algebraic", "heavy_edge"]),
       st.integers(1, 3))
def test_batch_of_hierarchies_is_the_hierarchy_of_the_batch(parts, method, levels):
    transform = Coarsen(levels=levels, ratio=0.5, method=method)
    alone = [transform(g) for g in parts]
    together = transform.many(parts)
    batch = Batch.from_data_list(alone)
    direct = coarsen_batch(Batch.from_data_list(parts), levels, 0.5, method)
    node_offsets = np.cumsum([0] + [g.num_nodes for g in parts])
    for level in range(1, levels + 1):
        counts = [h[f"n_{level}"] for h in alone]
        assert [h[f"n_{level}"] for h in together] == counts
        offsets = np.cumsum([0, *counts])
        below = np.cumsum([0] + [h[f"n_{level - 1}"] if level > 1 else h.num_nodes for h in alone])
        # each graph's indices move by the sizes of the graphs before it, level by level
        expected_cluster = torch.cat([h[f"cluster_{level}"] + int(offsets[g]) for g, h in enumerate(alone)])
        expected_edges = torch.cat([h[f"edge_index_{level}"] + int(offsets[g]) for g, h in enumerate(alone)], 1)
        assert torch.equal(batch[f"cluster_{level}"], expected_cluster)
        assert torch.equal(batch[f"edge_index_{level}"], expected_edges)
        assert batch[f"n_{level}"].tolist() == counts
        assert torch.equal(level_batch(batch, level), torch.repeat_interleave(torch.arange(len(parts)),
                                                                              torch.tensor(counts)))
        # and the batch's levels are what coarsening the raw batch gives
        assert torch.equal(batch[f"cluster_{level}"], direct[level - 1].cluster)
        assert torch.equal(batch[f"edge_index_{level}"], direct[level - 1].edge_index)
        assert int(below[-1]) == batch[f"cluster_{level}"].numel()
        for h, t in zip(alone, together):
            assert torch.equal(h[f"cluster_{level}"], t[f"cluster_{level}"])
            assert torch.equal(h[f"edge_index_{level}"], t[f"edge_index_{level}"])
            assert torch.allclose(h[f"rwpe_{level}"], t[f"rwpe_{level}"])
    assert torch.equal(batch.edge_index, torch.cat([g.edge_index + int(node_offsets[k])
                                                    for k, g in enumerate(parts)], 1))
    for h, back in zip(alone, batch.to_data_list()):  # and un-batching gives each hierarchy back
        for level in range(1, levels + 1):
            assert torch.equal(back[f"cluster_{level}"], h[f"cluster_{level}"])
            assert torch.equal(back[f"edge_index_{level}"], h[f"edge_index_{level}"])


def test_strategies_reach_the_interesting_cases():
    """The graph strategy does produce isolated nodes and several components."""
    seen = {"isolated": False, "components": False}

    @settings(max_examples=30, deadline=None, derandomize=True, database=None)
    @given(graphs())
    def look(graph):
        degree = torch.bincount(graph.edge_index[0], minlength=graph.num_nodes)
        seen["isolated"] |= bool((degree == 0).any()) and graph.num_nodes > 1
        seen["components"] |= _components(graph.edge_index, graph.num_nodes) > 1 and graph.edge_index.numel() > 0

    look()
    assert all(seen.values()), seen
