"""One compact store for many small graphs of any domain: concatenated tensors plus offsets.

Saving one tensor per field (instead of a pickled list of ``Data``) keeps files small, loads
with ``torch.load(weights_only=True)`` (no code runs on load) and slices in O(1) per graph.
A domain describes its graphs with :class:`GraphFields`: which fields are per node, per edge
or per graph, which are optional, which strings each graph carries and which ``Data`` class
to rebuild. ``edge_index`` is always stored, local to each graph, ``[2, E]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor
from torch_geometric.data import Data

from graphssl.core.errors import DataError
from graphssl.core.io import atomic_torch_save

STORE_FORMAT = "graphssl-store/1"


@dataclass(frozen=True)
class GraphFields:
    """The layout of one domain's graphs in a :class:`TensorStore`.

    Node and edge fields are concatenated along their first dimension; graph fields hold one
    row per graph (each graph's value has a leading dimension of 1, e.g. ``y`` ``[1, T]``).
    A field in ``optional`` is stored only when every graph has it, and present on some
    graphs but not all is an error (a silent gap would later look like a real value).
    ``clone`` names fields that transforms edit in place: ``get`` copies them, so an edit
    never reaches the store.
    """

    kind: str  # "molecule", "atomistic", "brep": a store of one kind is never read as another
    data_class: type = Data
    node: tuple[str, ...] = ()
    edge: tuple[str, ...] = ()
    graph: tuple[str, ...] = ()
    strings: tuple[str, ...] = ()
    optional: frozenset[str] = frozenset()
    clone: frozenset[str] = frozenset()
    # stores written before the common format: format tag -> key of its per-graph strings
    legacy: dict[str, str] = field(default_factory=dict)

    @property
    def tensor_fields(self) -> tuple[str, ...]:
        return (*self.node, *self.edge, *self.graph)


def _ptr(counts: Sequence[int]) -> Tensor:
    counts = torch.as_tensor(list(counts), dtype=torch.long)
    return torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])


def _present(graphs: Sequence[Data], key: str, fields: GraphFields) -> bool:
    """Whether ``key`` is stored: present on every graph (an error when on only some)."""
    have = [getattr(g, key, None) is not None for g in graphs]
    if all(have):
        return bool(graphs)
    if not any(have) and key in fields.optional:
        return False
    missing = graphs[have.index(False)]
    name = next((getattr(missing, s, None) for s in fields.strings if getattr(missing, s, None)), None)
    what = "optional " if key in fields.optional else ""
    raise DataError(f"{what}field '{key}' is present on {sum(have)} of {len(graphs)} graphs but missing on "
                    f"{name or f'graph {have.index(False)}'!r}; give it to all or none")


class TensorStore:
    """Graphs of one kind as per-field tensors ``t`` (with ``node_ptr`` and ``edge_ptr`` offsets)
    and per-graph ``strings`` (e.g. ``strings["smiles"]``)."""

    def __init__(self, tensors: dict[str, Tensor], strings: dict[str, list[str]], fields: GraphFields) -> None:
        self.t = tensors
        self.strings = strings
        self.fields = fields

    @classmethod
    def from_graphs(cls, graphs: Sequence[Data], fields: GraphFields) -> "TensorStore":
        """Concatenate ``graphs``; every non-optional field must be on every graph."""
        graphs = list(graphs)
        for k, g in enumerate(graphs):
            if getattr(g, "edge_index", None) is None:
                raise DataError(f"graph {k} has no edge_index; build its edges before storing it")
        t: dict[str, Tensor] = {
            "node_ptr": _ptr(g.num_nodes for g in graphs),
            "edge_ptr": _ptr(g.edge_index.size(1) for g in graphs),
        }
        if graphs:
            t["edge_index"] = torch.cat([g.edge_index for g in graphs], 1)
        for key in fields.tensor_fields:
            if _present(graphs, key, fields):
                t[key] = torch.cat([g[key] for g in graphs])
        strings = {key: [str(getattr(g, key, None) or f"graph {k}") for k, g in enumerate(graphs)]
                   for key in fields.strings}
        return cls(t, strings, fields)

    def __len__(self) -> int:
        return self.t["node_ptr"].numel() - 1

    @property
    def num_nodes(self) -> Tensor:
        """Nodes per graph, ``[G]``."""
        return self.t["node_ptr"].diff()

    def get(self, i: int) -> Data:
        """Graph ``i`` as the domain's ``Data`` class."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"graph index {i} out of range for a store of {len(self)}")
        i = i % len(self)
        t, f = self.t, self.fields
        n0, n1 = int(t["node_ptr"][i]), int(t["node_ptr"][i + 1])
        e0, e1 = int(t["edge_ptr"][i]), int(t["edge_ptr"][i + 1])
        values: dict[str, object] = {"edge_index": t["edge_index"][:, e0:e1]}
        for keys, start, stop in ((f.node, n0, n1), (f.edge, e0, e1), (f.graph, i, i + 1)):
            for key in keys:
                if key in t:
                    value = t[key][start:stop]
                    values[key] = value.clone() if key in f.clone else value
        for key, items in self.strings.items():
            values[key] = items[i]
        return f.data_class(**values, num_nodes=n1 - n0)

    def save(self, path: str | Path) -> None:
        """Write atomically with fsync: a crash mid-write never leaves a half file under ``path``."""
        atomic_torch_save({"format": STORE_FORMAT, "kind": self.fields.kind, "tensors": self.t,
                           "strings": self.strings}, path)

    @classmethod
    def load(cls, path: str | Path, fields: GraphFields) -> "TensorStore":
        """Read a file written by :meth:`save` (or by the store of ``fields.legacy``); a
        :class:`DataError` naming the file if it is truncated, foreign or of another kind."""
        path = Path(path)
        kind = fields.kind
        if not path.is_file():
            raise DataError(f"no {kind} store file at '{path}'")
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated or foreign files surface as many exception types
            raise DataError(f"{kind} store '{path}' is unreadable ({type(exc).__name__}: {exc}); "
                            "delete it to rebuild") from None
        fmt = raw.get("format") if isinstance(raw, dict) else None
        if fmt == STORE_FORMAT and raw.get("kind") == kind:
            tensors, strings = raw.get("tensors"), raw.get("strings")
        elif fmt in fields.legacy:
            tensors, strings = raw.get("tensors"), {fields.strings[0]: raw.get(fields.legacy[fmt])}
        else:
            found = f" (it holds a {raw.get('kind')!r} store)" if fmt == STORE_FORMAT else ""
            raise DataError(f"'{path}' is not a graphssl {kind} store ({STORE_FORMAT}){found}; delete it to rebuild")
        if not isinstance(tensors, dict) or not isinstance(strings, dict) or \
                not all(isinstance(v, list) for v in strings.values()):
            raise DataError(f"{kind} store '{path}' lacks its tensors or strings; delete it to rebuild")
        if "node_ptr" not in tensors:
            raise DataError(f"{kind} store '{path}' lacks its offsets (node_ptr); delete it to rebuild")
        store = cls(tensors, strings, fields)
        store._check(path)
        return store

    def _check(self, path: Path) -> None:
        """Cheap consistency checks, so a damaged file fails on load rather than mid-training."""
        t, f, kind = self.t, self.fields, self.fields.kind
        required = ["edge_ptr"]
        if len(self):
            required += ["edge_index", *(k for k in f.tensor_fields if k not in f.optional)]
        missing = [k for k in required if k not in t]
        if missing:
            raise DataError(f"{kind} store '{path}' lacks fields {missing}; delete it to rebuild")
        n, nodes, edges = len(self), int(t["node_ptr"][-1]), int(t["edge_ptr"][-1])
        sizes = [(k, nodes) for k in f.node] + [(k, edges) for k in f.edge] + [(k, n) for k in f.graph]
        bad = [k for k, size in sizes if k in t and t[k].size(0) != size]
        if "edge_index" in t and t["edge_index"].size(1) != edges:
            bad.append("edge_index")
        bad += [k for k, items in self.strings.items() if len(items) != n]
        if bad:
            raise DataError(f"{kind} store '{path}' has inconsistent sizes ({', '.join(bad)}); delete it to rebuild")
