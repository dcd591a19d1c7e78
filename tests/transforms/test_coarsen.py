import random

import pytest
import torch
from torch_geometric.data import Batch, Data

from graphssl.core.errors import ConfigError, DataError
from graphssl.molecule.adapter import smiles_to_data
from graphssl.transforms.coarsen import Coarsen, coarsen_batch, random_walk_pe
from graphssl.transforms.matching import bridges, greedy_matching

MOLS = ["CC(=O)Nc1ccc(O)cc1", "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "[Na+]", "C", "CCO.[Cl-]", "c1ccc2ccccc2c1",
        "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "OCC(O)C(O)C(O)C(O)CO"]


def _random_graph(n: int, p: float, seed: int) -> torch.Tensor:
    rng = random.Random(seed)
    edges = [(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < p]
    if not edges:
        return torch.zeros(2, 0, dtype=torch.long)
    e = torch.tensor(edges).t()
    return torch.cat([e, e.flip(0)], 1)


def _sequential_greedy(edge_index, score, n):
    """Textbook greedy matching, the reference for the vectorised version."""
    order = sorted(range(edge_index.size(1)), key=lambda e: (-float(score[e]),
                   min(int(edge_index[0, e]), int(edge_index[1, e])), max(int(edge_index[0, e]), int(edge_index[1, e]))))
    free = [True] * n
    pairs = set()
    for e in order:
        a, b = int(edge_index[0, e]), int(edge_index[1, e])
        if a != b and free[a] and free[b]:
            free[a] = free[b] = False
            pairs.add((min(a, b), max(a, b)))
    return pairs


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_matching_equals_sequential_greedy(seed):
    edge_index = _random_graph(30, 0.15, seed)
    gen = torch.Generator().manual_seed(seed)
    # integer-valued scores with many ties exercise the tie-break order
    score_half = torch.randint(0, 3, (edge_index.size(1) // 2,), generator=gen).double()
    score = torch.cat([score_half, score_half])
    u, v = greedy_matching(edge_index, score, 30)
    assert set(zip(u.tolist(), v.tolist())) == _sequential_greedy(edge_index, score, 30)


def test_bridges_on_a_ring_with_a_tail():
    # ring 0-1-2-0, tail 2-3-4
    e = torch.tensor([[0, 1], [1, 2], [2, 0], [2, 3], [3, 4]]).t()
    e = torch.cat([e, e.flip(0)], 1)
    assert bridges(e, 5).tolist() == [False, False, False, True, True] * 2


@pytest.mark.parametrize("method", ["algebraic", "heavy_edge", "chemistry"])
def test_batch_of_hierarchies_is_hierarchy_of_batch(method):
    graphs = [smiles_to_data(s) for s in MOLS]
    transform = Coarsen(levels=2, ratio=0.5, method=method)
    one_by_one = Batch.from_data_list([transform(g) for g in graphs])
    raw_batch = Batch.from_data_list(graphs)
    levels = coarsen_batch(raw_batch, 2, 0.5, method)
    for number, level in enumerate(levels, start=1):
        assert torch.equal(one_by_one[f"cluster_{number}"], level.cluster)
        assert torch.equal(one_by_one[f"edge_index_{number}"], level.edge_index)
        assert torch.allclose(one_by_one[f"rwpe_{number}"], level.rwpe)
        assert one_by_one[f"n_{number}"].tolist() == torch.bincount(level.batch, minlength=len(graphs)).tolist()


def test_cluster_indices_are_offset_per_graph():
    graphs = Coarsen(levels=2, ratio=0.5).many([smiles_to_data(s) for s in MOLS[:3]])
    batch = Batch.from_data_list(graphs)
    offsets = [0]
    for g in graphs[:-1]:
        offsets.append(offsets[-1] + g.n_1)
    parts = torch.split(batch.cluster_1, [g.num_nodes for g in graphs])
    for part, g, off in zip(parts, graphs, offsets):
        assert torch.equal(part, g.cluster_1 + off)


@pytest.mark.parametrize("method", ["algebraic", "heavy_edge"])
def test_ratio_bounds_level_sizes(method):
    torch.manual_seed(0)
    graph = Data(edge_index=_random_graph(200, 0.03, 1), num_nodes=200)
    for ratio in (0.1, 0.25, 0.5):
        (level,) = coarsen_batch(graph, 1, ratio, method)
        removed = 200 - level.rwpe.size(0)
        assert 0 < removed <= int(ratio * 200)
        # every supernode has one or two children (a matching)
        sizes = torch.bincount(level.cluster)
        assert int(sizes.min()) >= 1 and int(sizes.max()) <= 2


def test_coarse_edges_join_clusters_of_fine_edges():
    g = Coarsen(levels=1, ratio=0.5)(smiles_to_data("CC(C)Cc1ccc(C(C)C(=O)O)cc1"))
    c = g.cluster_1
    expected = {(int(c[a]), int(c[b])) for a, b in g.edge_index.t().tolist() if c[a] != c[b]}
    assert set(map(tuple, g.edge_index_1.t().tolist())) == expected


def test_chemistry_coarsener_groups_rings_and_fragments():
    g = Coarsen(levels=1, method="chemistry")(smiles_to_data("CC(=O)Nc1ccc(O)cc1"))  # paracetamol
    c = g.cluster_1.tolist()
    ring = [4, 5, 6, 7, 9, 10]
    assert len({c[i] for i in ring}) == 1  # the benzene ring is one supernode
    assert c[0] == c[1] == c[2]  # acetyl C, C, O
    assert len({c[3], c[4], c[8]}) == 3  # N and the phenol O are cut from the ring
    naphthalene = Coarsen(levels=1, method="chemistry")(smiles_to_data("c1ccc2ccccc2c1"))
    assert naphthalene.n_1 == 1  # a fused ring system stays whole
    with pytest.raises(DataError, match="chemistry"):
        Coarsen(levels=1, method="chemistry")(Data(x=torch.randn(3, 4), edge_index=_random_graph(3, 1.0, 0)))


def test_single_node_edgeless_and_disconnected_graphs():
    transform = Coarsen(levels=3, ratio=0.5)
    single = transform(Data(x=torch.zeros(1, 9, dtype=torch.long), edge_index=torch.zeros(2, 0, dtype=torch.long)))
    assert [single.n_1, single.n_2, single.n_3] == [1, 1, 1] and single.edge_index_3.shape == (2, 0)
    edgeless = transform(Data(num_nodes=4, edge_index=torch.zeros(2, 0, dtype=torch.long)))
    assert edgeless.n_3 == 4 and edgeless.rwpe_1.abs().sum() == 0
    salt = transform(smiles_to_data("CC(=O)[O-].[Na+]"))
    assert salt.num_levels == 3 and salt.n_3 >= 2  # components never merge


def test_random_walk_pe_hand_computed():
    # path 0-1-2: returning after 2 steps has probability 1/2 at the ends and 1 in the middle;
    # a bipartite graph never returns after an odd number of steps
    e = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    pe = random_walk_pe(e, torch.ones(4, dtype=torch.float64), 3, 3)
    assert torch.allclose(pe[:, 0], torch.zeros(3))
    assert torch.allclose(pe[:, 1], torch.tensor([0.5, 1.0, 0.5]))
    assert torch.allclose(pe[:, 2], torch.zeros(3))


def test_bad_options():
    with pytest.raises(ConfigError, match="unknown coarsening method 'louvain'"):
        Coarsen(method="louvain")
    with pytest.raises(ConfigError, match="ratio"):
        Coarsen(ratio=0.8)


def test_matching_ends_on_one_directional_and_repeated_edges():
    # k-nearest-neighbour lists are one-directional where the relation is not mutual, and
    # periodic crystals repeat a pair once per image: with no edge best for both of its ends,
    # a matching that trusted symmetry would loop forever
    full = _random_graph(30, 0.15, 3)
    gen = torch.Generator().manual_seed(3)
    score_half = torch.randint(0, 5, (full.size(1) // 2,), generator=gen).double()
    half = full[:, : full.size(1) // 2]
    one_way = torch.cat([half, half[:, :5]], 1)  # five pairs repeated
    one_way_score = torch.cat([score_half, score_half[:5] - 1.0])  # the repeats score lower
    u, v = greedy_matching(one_way, one_way_score, 30)
    symmetric = torch.cat([half, half.flip(0)], 1)
    assert set(zip(u.tolist(), v.tolist())) == _sequential_greedy(symmetric, torch.cat([score_half, score_half]), 30)


def test_coarsening_a_crystal_graph_with_periodic_images():
    from graphssl.atomistic.adapters import from_positions

    cell = torch.eye(3) * 3.1
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.55, 1.55, 0.0], [1.55, 0.0, 1.55], [0.0, 1.55, 1.55], [0.8, 0.8, 0.8]])
    data = from_positions([29, 29, 29, 29, 13], pos, cell=cell, pbc=True, cutoff=4.0)
    src, dst = data.edge_index
    assert bool((src == dst).any())  # bonds to an atom's own periodic images
    levels = coarsen_batch(data, levels=2, ratio=0.5)
    assert levels[0].cluster.numel() == 5 and levels[0].cluster.max() < 5
    assert not bool((levels[0].edge_index[0] == levels[0].edge_index[1]).any())


def test_graph_transform_applies_to_many_graphs_in_order():
    from graphssl.transforms.base import GraphTransform

    class AddDegree(GraphTransform):
        def forward(self, data):
            data = data.clone()
            data.degree = torch.bincount(data.edge_index[0], minlength=data.num_nodes)
            return data

    graphs = [smiles_to_data(s) for s in MOLS]
    out = AddDegree().many(graphs)
    assert [g.num_nodes for g in out] == [g.num_nodes for g in graphs]
    assert all(torch.equal(o.degree, AddDegree()(g).degree) for o, g in zip(out, graphs))
    assert isinstance(Coarsen(), GraphTransform)  # what HiGMAE hands the pretraining loop
