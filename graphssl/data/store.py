"""Compact storage of many small graphs: concatenated tensors plus offsets.

Saving one tensor per field (instead of a pickled list of ``Data``) keeps files small,
loads with ``torch.load(weights_only=True)`` and slices in O(1) per graph.
"""

from __future__ import annotations

from pathlib import Path

import torch

from graphssl.core.io import atomic_torch_save
from torch import Tensor
from torch_geometric.data import Data

from graphssl.core.errors import DataError

STORE_FORMAT = "graphssl-graph-store/1"


class GraphStore:
    """Graphs with fields ``x``, ``edge_index`` (local), ``edge_attr``, optional ``pos``, a label
    matrix ``y`` (one row per graph) and a SMILES string per graph."""

    def __init__(self, tensors: dict[str, Tensor], smiles: list[str]) -> None:
        self.t = tensors
        self.smiles = smiles

    @classmethod
    def from_graphs(cls, graphs: list[Data], labels: list[list[float]], num_tasks: int) -> "GraphStore":
        node_counts = torch.tensor([g.num_nodes for g in graphs], dtype=torch.long)
        edge_counts = torch.tensor([g.edge_index.size(1) for g in graphs], dtype=torch.long)
        t: dict[str, Tensor] = {
            "node_ptr": torch.cat([torch.zeros(1, dtype=torch.long), node_counts.cumsum(0)]),
            "edge_ptr": torch.cat([torch.zeros(1, dtype=torch.long), edge_counts.cumsum(0)]),
            "x": torch.cat([g.x for g in graphs]) if graphs else torch.zeros(0, 9, dtype=torch.long),
            "edge_index": torch.cat([g.edge_index for g in graphs], 1) if graphs else torch.zeros(2, 0, dtype=torch.long),
            "edge_attr": torch.cat([g.edge_attr for g in graphs]) if graphs else torch.zeros(0, 3, dtype=torch.long),
            "y": torch.tensor(labels, dtype=torch.float32).reshape(len(graphs), num_tasks),
        }
        if graphs and all(getattr(g, "pos", None) is not None for g in graphs):
            t["pos"] = torch.cat([g.pos for g in graphs])
        return cls(t, [g.smiles for g in graphs])

    def __len__(self) -> int:
        return self.t["node_ptr"].numel() - 1

    def get(self, i: int) -> Data:
        n0, n1 = int(self.t["node_ptr"][i]), int(self.t["node_ptr"][i + 1])
        e0, e1 = int(self.t["edge_ptr"][i]), int(self.t["edge_ptr"][i + 1])
        data = Data(
            x=self.t["x"][n0:n1],
            edge_index=self.t["edge_index"][:, e0:e1],
            edge_attr=self.t["edge_attr"][e0:e1],
            y=self.t["y"][i : i + 1],
            smiles=self.smiles[i],
            num_nodes=n1 - n0,
        )
        if "pos" in self.t:
            data.pos = self.t["pos"][n0:n1]
        return data

    def save(self, path: str | Path) -> None:
        """Write atomically: a crash mid-write never leaves a half file under ``path``."""
        atomic_torch_save({"format": STORE_FORMAT, "tensors": self.t, "smiles": self.smiles}, path)

    @classmethod
    def load(cls, path: str | Path) -> "GraphStore":
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated or foreign files surface as many exception types
            raise DataError(f"cached graph file '{path}' is unreadable ({exc}); delete it to rebuild") from None
        if not isinstance(raw, dict) or raw.get("format") != STORE_FORMAT:
            raise DataError(f"'{path}' is not a graphssl graph store ({STORE_FORMAT}); delete it to rebuild")
        return cls(raw["tensors"], raw["smiles"])
