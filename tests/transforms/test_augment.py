"""Batched graph augmentations: per-graph counts, graph boundaries, attributes that follow."""

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_undirected

from graphssl.transforms.augment import AUGMENTATIONS, augment, induced_subgraph, rank_within

SIZES = [1, 2, 5, 9, 14, 3, 20]  # a single node, a single bond, rings and chains of several sizes


def _graph(n: int, seed: int) -> Data:
    """A connected graph (a path plus random chords) shaped like a B-rep face graph: every node
    and edge attribute encodes the global id of its node or edge, so tests can follow them."""
    gen = torch.Generator().manual_seed(seed)
    src = list(range(n - 1))
    dst = list(range(1, n))
    for _ in range(n // 3):
        a, b = torch.randint(0, n, (2,), generator=gen).tolist()
        if a != b:
            src.append(a)
            dst.append(b)
    edge_index = to_undirected(torch.tensor([src, dst], dtype=torch.long).view(2, -1), num_nodes=n)
    e = edge_index.size(1)
    return Data(x=torch.randint(0, 5, (n, 1), generator=gen), edge_index=edge_index,
                face_grid=torch.zeros(n, 7, 2, 2), face_area=torch.rand(n, 1, generator=gen),
                edge_attr=torch.randint(0, 3, (e, 2), generator=gen), edge_grid=torch.zeros(e, 6, 2),
                norm_center=torch.rand(1, 3, generator=gen), num_nodes=n)


def _batch() -> Batch:
    batch = Batch.from_data_list([_graph(n, i) for i, n in enumerate(SIZES)])
    # ids that must travel with their node / edge through any augmentation
    batch.face_grid[:, 0, 0, 0] = torch.arange(batch.num_nodes, dtype=torch.float)
    batch.edge_grid[:, 0, 0] = torch.arange(batch.num_edges, dtype=torch.float)
    return batch


def _node_ids(data) -> torch.Tensor:
    return data.face_grid[:, 0, 0, 0].long()


def _per_graph(values: torch.Tensor, graph: torch.Tensor) -> list[int]:
    return torch.bincount(graph, minlength=len(SIZES)).tolist() if values is None else \
        torch.bincount(graph[values], minlength=len(SIZES)).tolist()


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_views_respect_graph_boundaries_and_attributes_follow(name):
    torch.manual_seed(0)
    batch = _batch()
    view = augment(batch, name, 0.3)
    data = view.data
    ids = _node_ids(data)
    # every node is an original node of the same graph, with its own attributes
    assert torch.equal(batch.batch[ids], data.batch)
    assert torch.equal(batch.x[ids], data.x) and torch.equal(batch.face_area[ids], data.face_area)
    assert ids.unique().numel() == ids.numel()
    # every edge joins two nodes of one graph; the graph count and graph-level values are unchanged
    src, dst = data.edge_index
    assert torch.equal(data.batch[src], data.batch[dst])
    assert data.num_graphs == len(SIZES) and torch.equal(data.norm_center, batch.norm_center)
    assert torch.bincount(data.batch, minlength=len(SIZES)).min() >= 1
    assert data.edge_attr.size(0) == data.edge_grid.size(0) == data.edge_index.size(1)
    # the batch still splits into its graphs
    parts = data.to_data_list()
    assert [p.num_nodes for p in parts] == torch.bincount(data.batch).tolist()
    assert all(p.edge_index.numel() == 0 or int(p.edge_index.max()) < p.num_nodes for p in parts)


def test_drop_nodes_removes_the_share_of_each_graph_and_their_edges():
    torch.manual_seed(1)
    batch = _batch()
    data = augment(batch, "drop_nodes", 0.3).data
    kept = torch.bincount(data.batch, minlength=len(SIZES)).tolist()
    assert kept == [n - min(round(0.3 * n), n - 1) for n in SIZES]
    # an original edge survives exactly when both of its endpoints do, with its own attributes
    ids = _node_ids(data)
    alive = torch.zeros(batch.num_nodes, dtype=torch.bool)
    alive[ids] = True
    survivors = alive[batch.edge_index[0]] & alive[batch.edge_index[1]]
    edge_ids = data.edge_grid[:, 0, 0].long()
    assert sorted(edge_ids.tolist()) == survivors.nonzero().view(-1).tolist()
    assert torch.equal(batch.edge_index[:, edge_ids], ids[data.edge_index])
    assert torch.equal(batch.edge_attr[edge_ids], data.edge_attr)


def test_mask_nodes_hides_the_share_of_each_graph_and_keeps_the_graph():
    torch.manual_seed(2)
    batch = _batch()
    view = augment(batch, "mask_nodes", 0.4)
    assert view.data is batch
    assert _per_graph(view.masked, batch.batch) == [round(0.4 * n) for n in SIZES]


def test_subgraph_keeps_a_connected_piece_of_the_requested_size():
    torch.manual_seed(3)
    batch = _batch()
    data = augment(batch, "subgraph", 0.4).data
    assert torch.bincount(data.batch).tolist() == [max(1, n - round(0.4 * n)) for n in SIZES]
    for part in data.to_data_list():  # connected: a walk from node 0 reaches every node
        reached = torch.zeros(part.num_nodes, dtype=torch.bool)
        reached[0] = True
        for _ in range(part.num_nodes):
            reached[part.edge_index[1][reached[part.edge_index[0]]]] = True
        assert bool(reached.all())


def test_perturb_edges_moves_the_share_of_each_graphs_edges_within_the_graph():
    torch.manual_seed(4)
    batch = _batch()
    data = augment(batch, "perturb_edges", 0.3).data
    assert data.num_nodes == batch.num_nodes and torch.equal(data.x, batch.x)
    src, dst = data.edge_index
    assert bool((src != dst).all())
    pairs_before = [p.edge_index.size(1) // 2 for p in batch.to_data_list()]
    parts = data.to_data_list()
    assert [p.edge_index.size(1) // 2 for p in parts] == pairs_before  # as many added as removed
    edge_ids = data.edge_grid[:, 0, 0].long()
    # at most the share is removed from each graph (an added pair may restore a removed one)
    for before, after, m in zip(batch.to_data_list(), parts, pairs_before):
        old = set(map(tuple, before.edge_index.t().tolist()))
        new = set(map(tuple, after.edge_index.t().tolist()))
        assert len(old & new) // 2 >= m - round(0.3 * m)
        assert len(old & new) < len(old) or round(0.3 * m) == 0
    # added edges copy the attributes of an edge of their own graph
    same = (batch.edge_index[:, edge_ids] == data.edge_index).all(0)
    assert torch.equal(batch.batch[batch.edge_index[0, edge_ids]], data.batch[src])
    assert torch.equal(batch.edge_attr[edge_ids], data.edge_attr)
    # a kept edge keeps its reverse: edges are moved in pairs
    keys = set(zip(src[same].tolist(), dst[same].tolist()))
    assert all((b, a) in keys for a, b in keys)


def test_graph_level_values_stay_when_their_count_equals_the_edges():
    # two graphs, three nodes, two directed edges: a per-graph value [2] has the edge count
    graphs = [Data(x=torch.zeros(2, 1), edge_index=torch.tensor([[0, 1], [1, 0]]), energy=torch.tensor([1.0])),
              Data(x=torch.ones(1, 1), edge_index=torch.zeros(2, 0, dtype=torch.long), energy=torch.tensor([2.0]))]
    batch = Batch.from_data_list(graphs)
    data = induced_subgraph(batch, torch.tensor([True, False, True]))
    assert data.energy.tolist() == [1.0, 2.0] and data.edge_index.size(1) == 0
    assert data.x.view(-1).tolist() == [0.0, 1.0] and data.ptr.tolist() == [0, 1, 2]


def test_single_graphs_and_the_identity():
    torch.manual_seed(5)
    graph = _graph(10, 0)
    data = augment(graph, "drop_nodes", 0.5).data
    assert data.num_nodes == 5 and data.edge_attr.size(0) == data.edge_index.size(1)
    assert augment(graph, "none", 0.0).data is graph
    assert augment(graph, "perturb_edges", 0.0).data.edge_index.size(1) == graph.edge_index.size(1)


def test_rank_within_groups():
    group = torch.tensor([1, 0, 1, 1, 0])
    score = torch.tensor([0.5, 0.9, 0.1, 0.7, 0.2])
    assert rank_within(group, score).tolist() == [1, 1, 0, 2, 0]


def test_views_are_reproducible_and_validated():
    batch = _batch()
    torch.manual_seed(6)
    a = augment(batch, "subgraph", 0.3).data
    torch.manual_seed(6)
    b = augment(batch, "subgraph", 0.3).data
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(_node_ids(a), _node_ids(b))
    with pytest.raises(ValueError, match="unknown augmentation 'drop_edges'"):
        augment(batch, "drop_edges", 0.2)
    with pytest.raises(ValueError, match=r"strength must be in \[0, 1\)"):
        augment(batch, "drop_nodes", 1.0)
