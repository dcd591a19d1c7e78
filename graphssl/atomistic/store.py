"""Compact storage of many :class:`~graphssl.atomistic.graph.AtomisticData`: concatenated tensors
plus offsets, the atomistic counterpart of :class:`graphssl.data.store.GraphStore`.

One tensor per field (not a pickled list of graphs) keeps files small, loads with
``torch.load(weights_only=True)`` (no code runs on load) and slices in O(1) per structure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from graphssl.core.io import atomic_torch_save
from torch import Tensor

from graphssl.atomistic.graph import AtomisticData
from graphssl.core.errors import DataError

ATOMISTIC_STORE_FORMAT = "graphssl-atomistic-store/1"

# Optional labels; each is stored only when every structure has it (see from_structures).
_OPTIONAL_NODE = ("forces",)
_OPTIONAL_GRAPH = ("energy", "stress")
_REQUIRED = ("node_ptr", "edge_ptr", "z", "pos", "edge_index", "cell_shift", "cell", "pbc", "y")


def _ptr(counts: Sequence[int]) -> Tensor:
    counts = torch.as_tensor(list(counts), dtype=torch.long)
    return torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])


class AtomisticStore:
    """Structures with node fields ``z``, ``pos`` (and optional ``forces``), edge fields
    ``edge_index`` (local to each structure) and ``cell_shift``, per-structure ``cell``
    ``[S, 3, 3]``, ``pbc`` ``[S, 3]``, ``y`` ``[S, T]`` (and optional ``energy`` ``[S]``,
    ``stress`` ``[S, 3, 3]``), and a name per structure."""

    def __init__(self, tensors: dict[str, Tensor], names: list[str]) -> None:
        self.t = tensors
        self.names = names

    @classmethod
    def from_structures(cls, structures: Sequence[AtomisticData], labels: Sequence[Sequence[float]] | None = None,
                        num_tasks: int | None = None) -> "AtomisticStore":
        """Concatenate structures that already carry a neighbour list.

        ``labels`` (one row per structure) becomes ``y``; without it each structure's own
        ``y`` is used, or an empty ``[S, 0]`` matrix when none has one. An optional label
        (energy, forces, stress) present on some structures but not on all is an error:
        a silent gap would later look like a real value to a loss.
        """
        structures = list(structures)
        for k, data in enumerate(structures):
            if getattr(data, "edge_index", None) is None:
                raise DataError(f"structure {k} ({getattr(data, 'name', None)!r}) has no neighbour list; "
                                "apply NeighborList before storing it")
        dtype = torch.get_default_dtype()
        if labels is not None:
            width = num_tasks if num_tasks is not None else (len(labels[0]) if len(labels) else 0)
            y = torch.tensor([list(row) for row in labels], dtype=torch.float32).reshape(len(structures), width)
        elif structures and all(getattr(d, "y", None) is not None for d in structures):
            y = torch.cat([d.y.reshape(1, -1).float() for d in structures])
        else:
            y = torch.zeros(len(structures), num_tasks or 0)
        t: dict[str, Tensor] = {
            "node_ptr": _ptr(d.z.numel() for d in structures),
            "edge_ptr": _ptr(d.edge_index.size(1) for d in structures),
            "z": torch.cat([d.z.long() for d in structures]) if structures else torch.zeros(0, dtype=torch.long),
            "pos": torch.cat([d.pos for d in structures]) if structures else torch.zeros(0, 3, dtype=dtype),
            "edge_index": (torch.cat([d.edge_index for d in structures], 1) if structures
                           else torch.zeros(2, 0, dtype=torch.long)),
            "cell_shift": (torch.cat([d.cell_shift.reshape(-1, 3) for d in structures]) if structures
                           else torch.zeros(0, 3, dtype=torch.long)),
            "cell": (torch.cat([d.cell.reshape(1, 3, 3) for d in structures]) if structures
                     else torch.zeros(0, 3, 3, dtype=dtype)),
            "pbc": (torch.cat([d.pbc.reshape(1, 3) for d in structures]) if structures
                    else torch.zeros(0, 3, dtype=torch.bool)),
            "y": y,
        }
        for key in (*_OPTIONAL_NODE, *_OPTIONAL_GRAPH):
            have = [getattr(d, key, None) is not None for d in structures]
            if not any(have):
                continue
            if not all(have):
                missing = structures[have.index(False)]
                raise DataError(f"'{key}' is present on {sum(have)} of {len(structures)} structures "
                                f"but missing on {getattr(missing, 'name', None)!r}; give it to all or none")
            if key == "energy":
                t[key] = torch.cat([d.energy.reshape(1) for d in structures])
            elif key == "stress":
                t[key] = torch.cat([d.stress.reshape(1, 3, 3) for d in structures])
            else:
                t[key] = torch.cat([getattr(d, key).reshape(-1, 3) for d in structures])
        names = [str(getattr(d, "name", None) or f"structure {k}") for k, d in enumerate(structures)]
        return cls(t, names)

    def __len__(self) -> int:
        return self.t["node_ptr"].numel() - 1

    @property
    def num_atoms(self) -> Tensor:
        """Atoms per structure, ``[S]``."""
        return self.t["node_ptr"].diff()

    def get(self, i: int) -> AtomisticData:
        """Structure ``i`` as an :class:`AtomisticData` (fields with the shapes of the graph format)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"structure index {i} out of range for a store of {len(self)}")
        i = i % len(self)
        t = self.t
        n0, n1 = int(t["node_ptr"][i]), int(t["node_ptr"][i + 1])
        e0, e1 = int(t["edge_ptr"][i]), int(t["edge_ptr"][i + 1])
        # pos and cell are cloned because coordinate noise and strain transforms edit them in
        # place; a view would corrupt the store for every later epoch.
        data = AtomisticData(
            z=t["z"][n0:n1], pos=t["pos"][n0:n1].clone(), cell=t["cell"][i : i + 1].clone(),
            pbc=t["pbc"][i : i + 1], edge_index=t["edge_index"][:, e0:e1], cell_shift=t["cell_shift"][e0:e1],
            y=t["y"][i : i + 1], name=self.names[i], num_nodes=n1 - n0)
        if "energy" in t:
            data.energy = t["energy"][i : i + 1]
        if "forces" in t:
            data.forces = t["forces"][n0:n1]
        if "stress" in t:
            data.stress = t["stress"][i : i + 1]
        return data

    def save(self, path: str | Path) -> None:
        """Write atomically: a crash mid-write never leaves a half file under ``path``."""
        atomic_torch_save({"format": ATOMISTIC_STORE_FORMAT, "tensors": self.t, "names": self.names}, path)

    @classmethod
    def load(cls, path: str | Path) -> "AtomisticStore":
        """Read a file written by :meth:`save`; :class:`DataError` if it is truncated or foreign."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"no atomistic store file at '{path}'")
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated or foreign files surface as many exception types
            raise DataError(f"atomistic store '{path}' is unreadable ({type(exc).__name__}: {exc}); "
                            "delete it to rebuild") from None
        if not isinstance(raw, dict) or raw.get("format") != ATOMISTIC_STORE_FORMAT:
            raise DataError(f"'{path}' is not a graphssl atomistic store ({ATOMISTIC_STORE_FORMAT}); "
                            "delete it to rebuild")
        tensors, names = raw.get("tensors"), raw.get("names")
        if not isinstance(tensors, dict) or not isinstance(names, list):
            raise DataError(f"atomistic store '{path}' lacks its tensors or names; delete it to rebuild")
        missing = [k for k in _REQUIRED if k not in tensors]
        if missing:
            raise DataError(f"atomistic store '{path}' lacks fields {missing}; delete it to rebuild")
        store = cls(tensors, names)
        # Cheap consistency checks, so a damaged file fails here rather than mid-training.
        n, atoms, edges = len(store), int(tensors["node_ptr"][-1]), int(tensors["edge_ptr"][-1])
        if (len(names) != n or tensors["z"].numel() != atoms or tensors["edge_index"].size(1) != edges
                or tensors["cell"].size(0) != n or tensors["y"].size(0) != n):
            raise DataError(f"atomistic store '{path}' has inconsistent sizes; delete it to rebuild")
        return store
