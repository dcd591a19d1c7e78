"""Synthetic molecule-like graphs of any size, for measuring how cost grows with graph size."""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import Data

from graphssl.molecule.features import ATOM_FEATURE_DIMS


def molecule_like_graph(
    n: int,
    rng: np.random.Generator,
    rings: int | None = None,
    element_p: tuple[float, ...] = (0.72, 0.12, 0.12, 0.02, 0.02),
    random_features: bool = True,
) -> Data:
    """A sparse, locally connected random graph: a random tree whose nodes join one of the 3
    previous nodes (a molecular backbone), plus ``rings`` ring-closure attempts between nodes
    4 to 6 apart (default ``round(0.08 n)``: about 1.08 bonds, 2.2 directed edges, per node, like
    MOSES). The first atom feature is an element index drawn with ``element_p`` over 5
    common elements; the other OGB columns are random when ``random_features``, else 0."""
    parent = [int(rng.integers(max(0, i - 3), i)) for i in range(1, n)]
    edges = [(p, i) for i, p in zip(range(1, n), parent)]
    for _ in range(round(0.08 * n) if rings is None else rings):
        a = int(rng.integers(0, max(n - 6, 1)))
        b = a + int(rng.integers(4, 7))
        if b < n:
            edges.append((a, b))
    e = torch.tensor(edges, dtype=torch.long).t() if edges else torch.zeros(2, 0, dtype=torch.long)
    edge_index = torch.cat([e, e.flip(0)], 1)
    if random_features:
        x = torch.stack([torch.as_tensor(rng.integers(0, d, size=n)) for d in ATOM_FEATURE_DIMS], 1).long()
    else:
        x = torch.zeros(n, len(ATOM_FEATURE_DIMS), dtype=torch.long)
    x[:, 0] = torch.as_tensor(rng.choice([5, 6, 7, 8, 15], size=n, p=list(element_p)))
    edge_attr = torch.zeros(edge_index.size(1), 3, dtype=torch.long)
    return Data(x=x, edge_index=edge_index, edge_attr=edge_attr, num_nodes=n)
