"""Graph augmentations for contrastive objectives, on a whole batch at once.

Each augmentation maps a (batched) graph to a :class:`View`: the augmented graph, and for
attribute masking which of its nodes have their input features hidden. Everything is
vectorised over the batch (sorting and scatter, no loop per graph) and every graph is
augmented on its own: no node, edge or mask crosses from one graph to another, and counts
("a share ``strength`` of each graph's nodes") are per graph.

- ``drop_nodes``: remove a share ``strength`` of each graph's nodes and their edges.
- ``perturb_edges``: remove a share ``strength`` of each graph's edges (both directions
  together) and add as many random node pairs of the same graph, each carrying the
  attributes of a random existing edge of that graph.
- ``mask_nodes``: hide the input features of a share ``strength`` of each graph's nodes.
  The graph is unchanged; the objective replaces those nodes' input embeddings with a
  learned mask token (categorical atom features have no spare "mask" category, and a B-rep
  face's UV grid is no category at all, so masking happens after the input embedding).
- ``subgraph``: keep a connected piece of about ``1 - strength`` of each graph's nodes,
  grown from a random seed node by adding random frontier nodes (breadth first).
- ``none``: the graph as it is.

Every graph keeps at least one node. Node- and edge-level attributes (atom features, UV
grids, edge grids, periodic cell shifts) follow the nodes and edges they belong to;
graph-level ones are left alone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import Data

AUGMENTATIONS = ("none", "drop_nodes", "perturb_edges", "mask_nodes", "subgraph")


@dataclass
class View:
    """An augmented graph.

    Attributes:
        data: the augmented (batched) graph.
        masked: boolean per node of ``data``: nodes whose input features are hidden, or None.
    """

    data: Data
    masked: Tensor | None = None


def node_graph(data: Data) -> Tensor:
    """The graph index of every node (zeros for a single graph)."""
    batch = getattr(data, "batch", None)
    if batch is None:
        return torch.zeros(int(data.num_nodes), dtype=torch.long, device=data.edge_index.device)
    return batch


def num_graphs(data: Data) -> int:
    """How many graphs ``data`` holds (1 for a plain ``Data``)."""
    return int(data.num_graphs) if hasattr(data, "num_graphs") else 1


def rank_within(group: Tensor, score: Tensor) -> Tensor:
    """The 0-based rank of each element's ``score`` among the elements of its ``group``."""
    order = torch.argsort(score, stable=True)
    order = order[torch.argsort(group[order], stable=True)]  # by group, then by score
    counts = torch.bincount(group)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(group)
    rank[order] = torch.arange(group.numel(), device=group.device) - starts[group[order]]
    return rank


def share_of(counts: Tensor, strength: float) -> Tensor:
    """``round(strength * count)`` per graph."""
    return torch.round(counts.double() * strength).long()


def _counts(group: Tensor, size: int) -> Tensor:
    return torch.bincount(group, minlength=size)


def _element_kinds(data: Data) -> tuple[list[str], list[str]]:
    """The tensor attributes that are per node and per edge (``edge_index`` itself excluded).

    In a batch, an attribute is per node (edge) when every graph's slice of it has that
    graph's node (edge) count; this keeps graph-level values such as cells, energies or
    labels out even when their count happens to equal the batch's nodes or edges. Outside
    a batch, PyG's own size rules decide.
    """
    slices = getattr(data, "_slice_dict", None)
    nodes, edges = [], []
    node_sizes = edge_sizes = None
    if slices is not None and "edge_index" in slices:
        node_sizes = _counts(node_graph(data).cpu(), num_graphs(data))
        edge_sizes = torch.diff(slices["edge_index"].cpu())
    for key, value in data.items():
        if key in ("edge_index", "batch", "ptr") or not torch.is_tensor(value) or value.dim() == 0:
            continue
        if slices is not None and key in slices and node_sizes is not None:
            sizes = torch.diff(slices[key].cpu())
            if sizes.shape == node_sizes.shape and torch.equal(sizes, node_sizes):
                nodes.append(key)
            elif sizes.shape == edge_sizes.shape and torch.equal(sizes, edge_sizes):
                edges.append(key)
        elif data.is_node_attr(key):
            nodes.append(key)
        elif data.is_edge_attr(key):
            edges.append(key)
    return nodes, edges


def _cat_dim(data: Data, key: str, value: Tensor) -> int:
    dim = data.__cat_dim__(key, value)
    return dim + value.dim() if dim < 0 else dim


def induced_subgraph(data: Data, keep: Tensor) -> Data:
    """The (batched) graph restricted to the nodes where ``keep`` is true, with the edges
    between them; node and edge attributes follow, the batch vector and ``ptr`` are updated."""
    node_keys, edge_keys = _element_kinds(data)
    index = keep.nonzero().view(-1)
    new_id = torch.full((keep.numel(),), -1, dtype=torch.long, device=keep.device)
    new_id[index] = torch.arange(index.numel(), device=keep.device)
    edge_index = data.edge_index
    edge_keep = (keep[edge_index[0]] & keep[edge_index[1]]).nonzero().view(-1)
    out = copy.copy(data)
    for key in node_keys:
        out[key] = data[key].index_select(_cat_dim(data, key, data[key]), index)
    for key in edge_keys:
        out[key] = data[key].index_select(_cat_dim(data, key, data[key]), edge_keep)
    out.edge_index = new_id[edge_index[:, edge_keep]]
    graph = node_graph(data)
    if getattr(data, "batch", None) is not None:
        out.batch = graph[index]
    if getattr(data, "ptr", None) is not None:
        counts = _counts(out.batch, num_graphs(data))
        out.ptr = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
    out.num_nodes = int(index.numel())
    _update_slices(out, data, node_keys, edge_keys)
    return out


def _update_slices(out: Data, data: Data, node_keys: list[str], edge_keys: list[str]) -> None:
    """Keep a batch's bookkeeping true after its nodes or edges changed, so ``to_data_list``
    and a further augmentation still see where each graph starts."""
    slices = getattr(data, "_slice_dict", None)
    if slices is None or getattr(out, "batch", None) is None:
        return
    size = num_graphs(data)
    node_counts = _counts(out.batch, size)
    edge_counts = _counts(out.batch[out.edge_index[0]], size)
    node_slices = torch.cat([node_counts.new_zeros(1), torch.cumsum(node_counts, 0)]).cpu()
    edge_slices = torch.cat([edge_counts.new_zeros(1), torch.cumsum(edge_counts, 0)]).cpu()
    slices = dict(slices)
    slices.update({key: node_slices for key in node_keys})
    slices.update({key: edge_slices for key in [*edge_keys, "edge_index"]})
    increments = dict(getattr(data, "_inc_dict", None) or {})
    increments["edge_index"] = node_slices[:-1]
    out._slice_dict, out._inc_dict = slices, increments
    if getattr(data, "_num_nodes", None) is not None:  # graphs that carried an explicit num_nodes
        out._num_nodes = node_counts.tolist()


def _edge_subset(data: Data, edge_index: Tensor, take: Tensor) -> Data:
    """``data`` with new edges ``edge_index`` whose attributes are those of the old edges ``take``;
    edges are put in graph order (a batch keeps each graph's edges together)."""
    _, edge_keys = _element_kinds(data)
    order = torch.argsort(node_graph(data)[edge_index[0]], stable=True)
    edge_index, take = edge_index[:, order], take[order]
    out = copy.copy(data)
    for key in edge_keys:
        out[key] = data[key].index_select(_cat_dim(data, key, data[key]), take)
    out.edge_index = edge_index
    _update_slices(out, data, [], edge_keys)
    return out


def drop_nodes(data: Data, strength: float) -> View:
    """Remove ``round(strength * n)`` random nodes of each graph (keeping at least one)."""
    graph = node_graph(data)
    counts = _counts(graph, num_graphs(data))
    drop = torch.minimum(share_of(counts, strength), (counts - 1).clamp(min=0))
    rank = rank_within(graph, torch.rand(graph.numel(), device=graph.device))
    return View(induced_subgraph(data, rank >= drop[graph]))


def mask_nodes(data: Data, strength: float) -> View:
    """Hide the input features of ``round(strength * n)`` random nodes of each graph."""
    graph = node_graph(data)
    counts = _counts(graph, num_graphs(data))
    rank = rank_within(graph, torch.rand(graph.numel(), device=graph.device))
    return View(data, rank < share_of(counts, strength)[graph])


def subgraph(data: Data, strength: float) -> View:
    """Keep a connected piece of about ``1 - strength`` of each graph's nodes, grown from a random
    seed node by adding random frontier nodes; a graph's piece stops growing when its seed's
    connected component is used up."""
    graph = node_graph(data)
    size = num_graphs(data)
    counts = _counts(graph, size)
    target = (counts - share_of(counts, strength)).clamp(min=1)
    rank = rank_within(graph, torch.rand(graph.numel(), device=graph.device))
    selected = rank == 0  # one seed per graph
    remaining = target - 1
    src, dst = data.edge_index
    # one round per breadth-first layer: bounded by the largest graph's diameter
    while bool((remaining > 0).any()):
        frontier = torch.zeros_like(selected)
        frontier[dst[selected[src]]] = True
        frontier &= ~selected
        if not bool(frontier.any()):
            break
        candidates = frontier.nonzero().view(-1)
        group = graph[candidates]
        order = rank_within(group, torch.rand(candidates.numel(), device=graph.device))
        accept = candidates[order < remaining[group]]
        if not accept.numel():
            break
        selected[accept] = True
        remaining = remaining - _counts(graph[accept], size)
    return View(induced_subgraph(data, selected))


def perturb_edges(data: Data, strength: float) -> View:
    """Remove ``round(strength * m)`` of each graph's ``m`` node pairs (both directions of an edge
    together) and add as many random pairs of the same graph's nodes, in both directions, each
    with the attributes of a random existing edge of that graph."""
    graph = node_graph(data)
    size = num_graphs(data)
    num_nodes = graph.numel()
    src, dst = data.edge_index
    lo, hi = torch.minimum(src, dst), torch.maximum(src, dst)
    pairs, pair_of_edge = torch.unique(lo * num_nodes + hi, return_inverse=True)
    pair_graph = graph[pairs // max(num_nodes, 1)]
    pair_counts = _counts(pair_graph, size)
    drop_counts = share_of(pair_counts, strength)
    node_counts = _counts(graph, size)
    drop_counts = torch.where(node_counts > 1, drop_counts, torch.zeros_like(drop_counts))
    dropped = rank_within(pair_graph, torch.rand(pairs.numel(), device=graph.device)) < drop_counts[pair_graph]
    kept = (~dropped[pair_of_edge]).nonzero().view(-1)

    # new pairs: as many per graph as were dropped, between two distinct nodes of that graph
    new_graph = torch.repeat_interleave(torch.arange(size, device=graph.device), drop_counts)
    node_start = torch.cumsum(node_counts, 0) - node_counts
    n = node_counts[new_graph]
    u = (torch.rand(new_graph.numel(), device=graph.device) * n).long().clamp(max=n - 1)
    v = (torch.rand(new_graph.numel(), device=graph.device) * (n - 1)).long().clamp(max=(n - 2).clamp(min=0))
    v = v + (v >= u).long()  # skip u itself: no self-loops
    u, v = u + node_start[new_graph], v + node_start[new_graph]
    # attributes of a random existing edge of the same graph
    edge_graph = graph[src]
    edge_counts = _counts(edge_graph, size)
    by_graph = torch.argsort(edge_graph, stable=True)
    edge_start = torch.cumsum(edge_counts, 0) - edge_counts
    e = edge_counts[new_graph]
    pick = by_graph[edge_start[new_graph] + (torch.rand(new_graph.numel(), device=graph.device) * e).long()
                    .clamp(max=e - 1)]
    edge_index = torch.cat([data.edge_index[:, kept], torch.stack([u, v]), torch.stack([v, u])], dim=1)
    return View(_edge_subset(data, edge_index, torch.cat([kept, pick, pick])))


def identity(data: Data, strength: float) -> View:
    """The graph unchanged."""
    return View(data)


_FUNCTIONS: dict[str, Callable[[Data, float], View]] = {
    "none": identity,
    "drop_nodes": drop_nodes,
    "perturb_edges": perturb_edges,
    "mask_nodes": mask_nodes,
    "subgraph": subgraph,
}


def check_augmentation(name: str, strength: float) -> None:
    """Raise ``ValueError`` for an unknown augmentation or a strength outside [0, 1)."""
    if name not in _FUNCTIONS:
        raise ValueError(f"unknown augmentation '{name}'. Choose one of: {', '.join(AUGMENTATIONS)}")
    if not 0.0 <= float(strength) < 1.0:
        raise ValueError(f"augmentation strength must be in [0, 1), got {strength} for '{name}'")


def augment(data: Data, name: str, strength: float) -> View:
    """Apply the augmentation ``name`` (see the module docstring) with ``strength`` to a batch.

    Random draws come from torch's global generator (the pretraining loop seeds a stream per
    micro-batch, so views are reproducible and resumable)."""
    check_augmentation(name, strength)
    return _FUNCTIONS[name](data, float(strength))
