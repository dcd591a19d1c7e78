"""Graph coarsening into a hierarchy of levels, as a PyG transform.

Level 0 is the input graph. Level ``l`` (1..L) is stored as

- ``cluster_l``     ``[n_{l-1}]``  the supernode of level ``l`` that each level ``l-1`` node joins,
- ``edge_index_l``  ``[2, E_l]``   coarse edges (both directions, no self-loops),
- ``rwpe_l``        ``[n_l, K]``   random-walk positional encodings of the coarse graph,
- ``n_l``           int            number of level-``l`` nodes.

:class:`HierarchicalData` tells PyG's batching to offset ``cluster_l`` and ``edge_index_l``
by ``n_l``, so a batch of hierarchies is the hierarchy of the batch. Assignments are sparse
index vectors: memory grows with nodes and edges, never with a dense projection matrix.

Coarseners (``method``):

- ``algebraic``: Loukas-style "algebraic JC": a few deterministic test vectors smoothed by
  Jacobi relaxation; edges scored by algebraic distance; greedy matching contracts the
  closest pairs.
- ``heavy_edge``: greedy matching on edge weight / max endpoint degree.
- ``chemistry``: molecules only; level 1 groups ring systems and BRICS-like fragments
  (see :func:`chemistry_clusters`), further levels use heavy-edge matching.

``ratio`` is the share of nodes removed per level by matching (0.5 at most, since a
matching contracts pairs): level ``l`` has about ``(1 - ratio) * n_{l-1}`` nodes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Batch, Data
from torch_geometric.utils import remove_self_loops, to_undirected
from tqdm.auto import tqdm

from graphssl.core.errors import ConfigError, DataError
from graphssl.transforms.base import GraphTransform
from graphssl.transforms.matching import bridges, connected_components, greedy_matching, limit_pairs_per_graph

METHODS = ("algebraic", "heavy_edge", "chemistry")
_LEVEL_KEY = re.compile(r"^(cluster|edge_index)_(\d+)$")


class HierarchicalData(Data):
    """A graph with coarse levels; batching offsets each level's indices by its node count."""

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        match = _LEVEL_KEY.match(key)
        if match:
            level = int(match.group(2))
            return int(self[f"n_{level}"])
        return super().__inc__(key, value, *args, **kwargs)

    def __cat_dim__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key.startswith("edge_index_"):
            return -1
        return super().__cat_dim__(key, value, *args, **kwargs)

    @property
    def num_levels(self) -> int:
        """Number of coarse levels (excluding level 0)."""
        level = 0
        while f"cluster_{level + 1}" in self:
            level += 1
        return level


@dataclass
class Level:
    """One coarse level of a batched graph (global indices)."""

    cluster: Tensor  # [n_prev] -> [0, n)
    edge_index: Tensor  # [2, E]
    edge_weight: Tensor  # [E] number of fine edges merged into each coarse edge
    batch: Tensor  # [n] graph of each supernode
    rwpe: Tensor  # [n, K]


def _degree(edge_index: Tensor, weight: Tensor, num_nodes: int) -> Tensor:
    return torch.zeros(num_nodes, dtype=torch.float64, device=edge_index.device).index_add_(
        0, edge_index[0], weight.double())


def _local_index(batch: Tensor) -> Tensor:
    counts = torch.bincount(batch)
    starts = torch.cumsum(counts, 0) - counts
    return torch.arange(batch.numel(), device=batch.device) - starts[batch]


def _test_vectors(batch: Tensor, k: int) -> Tensor:
    """Deterministic pseudo-random vectors that depend only on each node's index in its graph,
    so a graph gets the same vectors alone or inside any batch."""
    local = _local_index(batch).double().unsqueeze(1)
    cols = torch.arange(1, k + 1, dtype=torch.float64, device=batch.device).unsqueeze(0)
    raw = torch.sin(local * 12.9898 + cols * 78.233 + local * cols * 0.1234) * 43758.5453
    return raw - torch.floor(raw) - 0.5


def algebraic_scores(edge_index: Tensor, weight: Tensor, batch: Tensor, num_nodes: int,
                     vectors: int = 10, iterations: int = 20, omega: float = 0.5) -> Tensor:
    """Edge scores for algebraic-distance matching: minus the distance between the endpoints'
    Jacobi-relaxed test vectors (close pairs are contracted first)."""
    from scipy.sparse import csr_matrix

    x = _test_vectors(batch, vectors).cpu().numpy()
    ei = edge_index.cpu().numpy()
    w = weight.double().cpu().numpy()
    deg = np.bincount(ei[0], weights=w, minlength=num_nodes)
    # row-normalised adjacency D^-1 A: one sparse product per Jacobi sweep
    walk = csr_matrix((w / np.maximum(deg[ei[0]], 1e-12), (ei[0], ei[1])), shape=(num_nodes, num_nodes))
    for _ in range(iterations):
        x = (1 - omega) * x + omega * (walk @ x)
    distance = np.sqrt(((x[ei[0]] - x[ei[1]]) ** 2).sum(1))
    return torch.as_tensor(-distance, device=edge_index.device)


def heavy_edge_scores(edge_index: Tensor, weight: Tensor, num_nodes: int) -> Tensor:
    """Heavy-edge scores: edge weight over the larger endpoint degree."""
    deg = _degree(edge_index, weight, num_nodes)
    return weight.double() / torch.maximum(deg[edge_index[0]], deg[edge_index[1]]).clamp(min=1e-12)


# OGB atom feature columns used by the chemistry coarsener
_ATOMIC_NUM, _IN_RING = 0, 8
_HETERO = {6, 7, 15}  # OGB atom type index = atomic number - 1: N, O, S


def chemistry_clusters(x: Tensor, edge_index: Tensor, edge_attr: Tensor | None, num_nodes: int) -> Tensor:
    """Ring systems and BRICS-like fragments as supernodes, from OGB molecule features.

    Bonds on no cycle (bridges) are cut when they join a ring atom to anything, or when they
    are single bonds between a carbon and N/O/S (amide, ether, amine-like cuts in the spirit
    of BRICS). The remaining connected components are the clusters: ring systems stay whole,
    substituents split at their attachment points.
    """
    if x is None or x.dim() != 2 or x.size(1) <= _IN_RING or x.dtype not in (torch.long, torch.int64, torch.int32):
        raise DataError("the 'chemistry' coarsener needs OGB molecule features (9 categorical atom columns); "
                        "use method='algebraic' or 'heavy_edge' for other graphs")
    src, dst = edge_index
    if not src.numel():
        return torch.arange(num_nodes, device=edge_index.device)
    bridge = bridges(edge_index, num_nodes)
    ring = x[:, _IN_RING].bool()
    element = x[:, _ATOMIC_NUM]
    carbon = element == 5
    hetero = torch.zeros_like(carbon)
    for z in _HETERO:
        hetero |= element == z
    single = edge_attr[:, 0] == 0 if edge_attr is not None else torch.ones_like(src, dtype=torch.bool)
    touches_ring = ring[src] | ring[dst]
    c_to_hetero = single & ((carbon[src] & hetero[dst]) | (hetero[src] & carbon[dst]))
    cut = bridge & (touches_ring | c_to_hetero)
    return connected_components(edge_index[:, ~cut], num_nodes)


def _relabel(label: Tensor) -> tuple[Tensor, int]:
    """Labels (smallest member index) -> contiguous cluster ids in node order."""
    unique, inverse = torch.unique(label, sorted=True, return_inverse=True)
    return inverse, unique.numel()


def _contract(edge_index: Tensor, weight: Tensor, cluster: Tensor, num_clusters: int) -> tuple[Tensor, Tensor]:
    cu, cv = cluster[edge_index[0]], cluster[edge_index[1]]
    keep = cu != cv
    key = cu[keep] * num_clusters + cv[keep]
    unique, inverse = torch.unique(key, sorted=True, return_inverse=True)
    new_weight = torch.zeros(unique.numel(), dtype=weight.dtype, device=weight.device).index_add_(
        0, inverse, weight[keep])
    return torch.stack([unique // num_clusters, unique % num_clusters]), new_weight


def random_walk_pe(edge_index: Tensor, weight: Tensor, num_nodes: int, steps: int) -> Tensor:
    """Return probabilities of k-step random walks (k = 1..steps) on a weighted graph.

    Computed with sparse products, so cost follows the k-hop neighbourhoods, not n^2.
    """
    from scipy.sparse import csr_matrix

    if steps == 0 or num_nodes == 0:
        return torch.zeros(num_nodes, steps)
    ei = edge_index.cpu().numpy()
    w = weight.double().cpu().numpy()
    deg = np.bincount(ei[0], weights=w, minlength=num_nodes)
    transition = csr_matrix((w / np.maximum(deg[ei[0]], 1e-12), (ei[0], ei[1])), shape=(num_nodes, num_nodes))
    out = np.zeros((num_nodes, steps))
    power = transition
    for step in range(steps):
        if step:
            power = power @ transition
        out[:, step] = power.diagonal()
    return torch.as_tensor(out, dtype=torch.float32, device=edge_index.device)


def coarsen_batch(
    batch: Data,
    levels: int = 2,
    ratio: float = 0.5,
    method: str = "algebraic",
    pe_steps: int = 8,
) -> list[Level]:
    """Coarsen a (batched) graph ``levels`` times. Works on a single ``Data`` too."""
    if method not in METHODS:
        raise ConfigError(f"unknown coarsening method '{method}'. Choose one of: {', '.join(METHODS)}")
    if not 0.0 < ratio <= 0.5:
        raise ConfigError(f"coarsening ratio must be in (0, 0.5] (share of nodes removed per level), got {ratio}")
    if levels < 1:
        raise ConfigError(f"coarsening needs at least one level, got {levels}")
    num_nodes = int(batch.num_nodes)
    graph = getattr(batch, "batch", None)
    if graph is None:
        graph = torch.zeros(num_nodes, dtype=torch.long, device=batch.edge_index.device)
    # Coarsening works on the simple undirected graph: crystal graphs carry one edge per periodic
    # image (repeated pairs, self-loops to an atom's own image) and k-nearest-neighbour lists
    # are one-directional where the neighbour relation is not mutual.
    edge_index = to_undirected(remove_self_loops(batch.edge_index)[0], num_nodes=num_nodes)
    weight = torch.ones(edge_index.size(1), dtype=torch.float64, device=edge_index.device)
    out: list[Level] = []
    for level in range(1, levels + 1):
        if method == "chemistry" and level == 1:
            label = chemistry_clusters(batch.x, batch.edge_index, getattr(batch, "edge_attr", None), num_nodes)
        else:
            if method == "algebraic":
                score = algebraic_scores(edge_index, weight, graph, num_nodes)
            else:
                score = heavy_edge_scores(edge_index, weight, num_nodes)
            u, v = greedy_matching(edge_index, score, num_nodes)
            if u.numel():
                # score of each matched pair: the best of its directed edges
                pair_key = torch.minimum(edge_index[0], edge_index[1]) * num_nodes + torch.maximum(edge_index[0], edge_index[1])
                wanted = u * num_nodes + v
                sorted_key, order = torch.sort(pair_key)
                pos = torch.searchsorted(sorted_key, wanted)
                pair_score = score[order[pos]]
                counts = torch.bincount(graph, minlength=int(graph.max()) + 1 if graph.numel() else 0)
                limit = torch.floor(ratio * counts.double() + 1e-9).long()
                u, v = limit_pairs_per_graph(u, v, pair_score, graph, limit)
            label = torch.arange(num_nodes, device=edge_index.device)
            label[v] = u
        cluster, num_clusters = _relabel(label)
        coarse_edges, coarse_weight = _contract(edge_index, weight, cluster, num_clusters)
        coarse_graph = torch.zeros(num_clusters, dtype=torch.long, device=graph.device).scatter_(0, cluster, graph)
        rwpe = random_walk_pe(coarse_edges, coarse_weight, num_clusters, pe_steps)
        out.append(Level(cluster, coarse_edges, coarse_weight, coarse_graph, rwpe))
        edge_index, weight, graph, num_nodes = coarse_edges, coarse_weight, coarse_graph, num_clusters
    return out


def _split(graphs: Sequence[Data], levels: list[Level]) -> list[HierarchicalData]:
    """Per-graph hierarchies (local indices) from the levels of the batch of ``graphs``."""
    num_graphs = len(graphs)
    fields: list[dict[str, Any]] = [dict(g.items()) for g in graphs]
    for g, values in zip(graphs, fields):
        if "x" not in values and getattr(g, "x", None) is not None:
            values["x"] = g.x  # derived features (an atomistic graph's atomic numbers) travel along
    prev_counts = torch.tensor([g.num_nodes for g in graphs], dtype=torch.long)
    prev_batch = torch.repeat_interleave(torch.arange(num_graphs), prev_counts)
    for number, level in enumerate(levels, start=1):
        counts = torch.bincount(level.batch, minlength=num_graphs)
        starts = torch.cumsum(counts, 0) - counts
        cluster_parts = torch.split(level.cluster - starts[prev_batch], prev_counts.tolist())
        edge_graph = level.batch[level.edge_index[0]]
        edge_counts = torch.bincount(edge_graph, minlength=num_graphs)
        edge_parts = torch.split(level.edge_index - starts[edge_graph], edge_counts.tolist(), dim=1)
        pe_parts = torch.split(level.rwpe, counts.tolist())
        count_list = counts.tolist()
        for g, values in enumerate(fields):
            values[f"cluster_{number}"] = cluster_parts[g].clone()
            values[f"edge_index_{number}"] = edge_parts[g].clone()
            values[f"rwpe_{number}"] = pe_parts[g].clone()
            values[f"n_{number}"] = count_list[g]
        prev_batch, prev_counts = level.batch, counts
    return [HierarchicalData(**values) for values in fields]


class Coarsen(GraphTransform):
    """Add ``levels`` coarse levels to a graph (see the module docstring).

    Args:
        levels: number of coarse levels L.
        ratio: share of nodes removed per level by matching, in (0, 0.5].
        method: ``algebraic``, ``heavy_edge`` or ``chemistry``.
        pe_steps: random-walk positional-encoding length K of the coarse levels.
    """

    def __init__(self, levels: int = 2, ratio: float = 0.5, method: str = "algebraic", pe_steps: int = 8) -> None:
        coarsen_batch(Data(edge_index=torch.zeros(2, 0, dtype=torch.long), num_nodes=1,
                           x=torch.zeros(1, 9, dtype=torch.long)), levels, ratio, method, pe_steps)  # validate early
        self.levels, self.ratio, self.method, self.pe_steps = levels, ratio, method, pe_steps

    def forward(self, data: Data) -> HierarchicalData:
        return self.many([data])[0]

    def many(self, graphs: Sequence[Data], chunk_size: int = 1024, progress: bool = False) -> list[HierarchicalData]:
        """Coarsen many graphs, a chunk at a time as one batched graph (much faster than one by one)."""
        out: list[HierarchicalData] = []
        starts = range(0, len(graphs), chunk_size)
        for start in tqdm(starts, desc=f"coarsening ({self.method})", disable=not progress, unit="chunk"):
            chunk = [graphs[i] for i in range(start, min(start + chunk_size, len(graphs)))]
            batch = Batch.from_data_list(chunk)
            levels = coarsen_batch(batch, self.levels, self.ratio, self.method, self.pe_steps)
            out.extend(_split(chunk, levels))
        return out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(levels={self.levels}, ratio={self.ratio}, "
                f"method='{self.method}', pe_steps={self.pe_steps})")


def level_batch(data: Data, level: int) -> Tensor:
    """Graph index of every node of ``level`` in a batch of hierarchies."""
    counts = data[f"n_{level}"]
    if isinstance(counts, int):
        return torch.zeros(counts, dtype=torch.long, device=data.edge_index.device)
    return torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
