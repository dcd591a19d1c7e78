"""Vectorised greedy matching and connected components on batched (disjoint-union) graphs.

Everything here works on a whole batch at once with tensor operations, and the result for
each graph depends only on that graph: coarsening a batch equals coarsening its graphs one
by one.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def greedy_matching(edge_index: Tensor, score: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    """The greedy matching: repeatedly contract the best-scoring edge whose endpoints are both
    free. Returns ``(u, v)`` index tensors of the matched pairs (``u < v``).

    Edges are ordered by score (descending), then by ``(min(u, v), max(u, v))`` ascending, a
    total order. Rounds of "locally dominant" edges (each endpoint's best remaining edge)
    produce exactly the sequential greedy result, in O(log n) vectorised rounds in practice.
    ``edge_index`` may hold one or both directions of each edge, and repeated edges; a pair
    scores the best of its edges, and self-loops are ignored.
    """
    src, dst = edge_index
    keep = src != dst
    src, dst, score = src[keep], dst[keep], score[keep].to(torch.float64)
    # One symmetric score per unordered pair: with a one-directional edge (k-nearest-neighbour
    # graphs) or direction-dependent scores, no edge need be best for both of its endpoints,
    # and the rounds below would make no progress. The best pair always is.
    lo, hi = torch.minimum(src, dst), torch.maximum(src, dst)
    pairs, inverse = torch.unique(lo * num_nodes + hi, return_inverse=True)
    pair_score = torch.full((pairs.numel(),), -torch.inf, dtype=torch.float64, device=src.device)
    pair_score.scatter_reduce_(0, inverse, score, reduce="amax")
    lo, hi = pairs // num_nodes, pairs % num_nodes
    src, dst, score = torch.cat([lo, hi]), torch.cat([hi, lo]), torch.cat([pair_score, pair_score])
    free = torch.ones(num_nodes, dtype=torch.bool, device=src.device)
    none = torch.full((num_nodes,), num_nodes, dtype=torch.long, device=src.device)
    nodes = torch.arange(num_nodes, device=src.device)
    matched_u, matched_v = [], []
    while src.numel():
        live = free[src] & free[dst]
        src, dst, score = src[live], dst[live], score[live]
        if not src.numel():
            break
        best = torch.full((num_nodes,), -torch.inf, dtype=score.dtype, device=src.device)
        best.scatter_reduce_(0, src, score, reduce="amax")
        top = score == best[src]
        # Among equally scored edges the smaller neighbour index wins: with the endpoint
        # itself this is the (min, max) tie-break of the global order.
        partner = none.clone().scatter_reduce_(0, src[top], dst[top], reduce="amin")
        has = partner < num_nodes
        safe = torch.where(has, partner, nodes)
        mutual = has & (partner[safe] == nodes) & (nodes < partner)
        u = nodes[mutual]
        v = partner[mutual]
        matched_u.append(u)
        matched_v.append(v)
        free[u] = False
        free[v] = False
    if not matched_u:
        empty = torch.zeros(0, dtype=torch.long, device=edge_index.device)
        return empty, empty
    return torch.cat(matched_u), torch.cat(matched_v)


def limit_pairs_per_graph(
    u: Tensor, v: Tensor, pair_score: Tensor, batch: Tensor, limit: Tensor
) -> tuple[Tensor, Tensor]:
    """Keep each graph's ``limit[g]`` best pairs (the prefix a truncated greedy would take)."""
    if not u.numel():
        return u, v
    graph = batch[u]
    # order: graph ascending, then score descending, then (u, v) ascending
    order = np.lexsort((v.cpu().numpy(), u.cpu().numpy(), -pair_score.double().cpu().numpy(), graph.cpu().numpy()))
    order = torch.as_tensor(order, device=u.device)
    graph_sorted = graph[order]
    first = torch.searchsorted(graph_sorted, graph_sorted, right=False)
    rank = torch.arange(order.numel(), device=u.device) - first
    keep = order[rank < limit[graph_sorted]]
    keep = keep.sort().values
    return u[keep], v[keep]


def connected_components(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Component label of every node: the smallest node index in its component."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as scipy_components

    if num_nodes == 0:
        return torch.zeros(0, dtype=torch.long)
    ei = edge_index.cpu().numpy()
    adj = coo_matrix((np.ones(ei.shape[1], dtype=np.int8), (ei[0], ei[1])), shape=(num_nodes, num_nodes))
    _, labels = scipy_components(adj, directed=False)
    labels = torch.as_tensor(labels, dtype=torch.long)
    smallest = torch.full((int(labels.max()) + 1,), num_nodes, dtype=torch.long)
    smallest.scatter_reduce_(0, labels, torch.arange(num_nodes), reduce="amin")
    return smallest[labels].to(edge_index.device)


def bridges(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Boolean mask over ``edge_index`` columns: True for bridges (edges on no cycle).

    Iterative Tarjan low-link search; linear in nodes and edges.
    """
    ei = edge_index.cpu().numpy()
    num_edges = ei.shape[1]
    adjacency: list[list[tuple[int, int]]] = [[] for _ in range(num_nodes)]
    for e in range(num_edges):
        a, b = int(ei[0, e]), int(ei[1, e])
        if a != b:
            adjacency[a].append((b, e))
    # undirected edge id: the pair {a, b}; a reverse edge must not count as a back edge
    pair = {}
    for e in range(num_edges):
        a, b = int(ei[0, e]), int(ei[1, e])
        pair.setdefault((min(a, b), max(a, b)), []).append(e)
    disc = [-1] * num_nodes
    low = [0] * num_nodes
    is_bridge_pair: set[tuple[int, int]] = set()
    timer = 0
    for root in range(num_nodes):
        if disc[root] != -1:
            continue
        disc[root] = low[root] = timer
        timer += 1
        stack = [(root, -1, iter(adjacency[root]))]
        while stack:
            node, parent_edge, neighbours = stack[-1]
            advanced = False
            for nxt, e in neighbours:
                key = (min(node, nxt), max(node, nxt))
                if parent_edge != -1 and key == parent_edge and len(pair[key]) <= 2:
                    continue  # the edge we came in by (either direction of it)
                if disc[nxt] == -1:
                    disc[nxt] = low[nxt] = timer
                    timer += 1
                    stack.append((nxt, key, iter(adjacency[nxt])))
                    advanced = True
                    break
                low[node] = min(low[node], disc[nxt])
            if not advanced:
                stack.pop()
                if stack:
                    parent = stack[-1][0]
                    low[parent] = min(low[parent], low[node])
                    if low[node] > disc[parent]:
                        is_bridge_pair.add((min(parent, node), max(parent, node)))
    out = np.zeros(num_edges, dtype=bool)
    for key in is_bridge_pair:
        out[pair[key]] = True
    return torch.as_tensor(out, device=edge_index.device)
