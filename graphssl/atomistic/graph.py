"""One graph format for crystals and 3D molecules.

Fields of :class:`AtomisticData` (shapes per structure; batching concatenates them):

- ``z``           long  ``[N]``      atomic numbers
- ``pos``         float ``[N, 3]``   Cartesian positions, Angstrom
- ``cell``        float ``[1, 3, 3]`` lattice vectors as rows, Angstrom (zeros when not periodic)
- ``pbc``         bool  ``[1, 3]``   periodic along each lattice vector
- ``edge_index``  long  ``[2, E]``   neighbour pairs (i -> j), both directions
- ``cell_shift``  long  ``[E, 3]``   integer lattice translation of j: the neighbour sits at
  ``pos[j] + cell_shift @ cell``
- optional labels: ``energy`` ``[1]`` (eV), ``forces`` ``[N, 3]`` (eV/A), ``stress`` ``[1, 3, 3]``
  (eV/A^3), ``y`` ``[1, T]``

Stored in a :class:`~graphssl.data.store.TensorStore` with :data:`ATOMISTIC_FIELDS`.
Edge vectors are never stored: :func:`edge_vectors` recomputes them from ``pos`` and
``cell``, so coordinate noise, forces (autograd through ``pos``) and stress (autograd
through a strain of ``pos`` and ``cell``) all flow through them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data

from graphssl.data.store import GraphFields


class AtomisticData(Data):
    """A structure with atoms, an optional periodic cell and a neighbour list."""

    @property
    def x(self) -> Tensor | None:
        """Node features for 2D backbones and masking objectives: the atomic number as one
        categorical column (a view of ``z``, nothing stored), unless ``x`` was set."""
        if "x" in self._store:
            return self["x"]
        return self["z"].view(-1, 1) if "z" in self._store else None

    @x.setter
    def x(self, x: Tensor | None) -> None:
        self._store.x = x

    def __cat_dim__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key in ("cell", "pbc", "stress"):
            return 0  # stacked per structure: [B, 3, 3] and [B, 3]
        return super().__cat_dim__(key, value, *args, **kwargs)

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "cell_shift":
            return 0  # integer lattice translations are not node indices
        return super().__inc__(key, value, *args, **kwargs)


# How structures are stored. pos and cell are copied on access because coordinate noise and
# strain transforms edit them in place; a view would corrupt the store for every later epoch.
ATOMISTIC_FIELDS = GraphFields(
    kind="atomistic",
    data_class=AtomisticData,
    node=("z", "pos", "forces"),
    edge=("cell_shift",),
    graph=("cell", "pbc", "y", "energy", "stress"),
    strings=("name",),
    optional=frozenset({"energy", "forces", "stress"}),
    clone=frozenset({"pos", "cell"}),
    legacy={"graphssl-atomistic-store/1": "names"},
)


def edge_vectors(data: Data) -> Tensor:
    """Vectors from atom i to the (image of) atom j for every edge, ``[E, 3]``.

    Works on single structures and on batches (each edge uses its own structure's cell).
    """
    src, dst = data.edge_index
    vectors = data.pos[dst] - data.pos[src]
    shift = getattr(data, "cell_shift", None)
    if shift is None or shift.numel() == 0:
        return vectors
    cell = data.cell.view(-1, 3, 3)
    batch = getattr(data, "batch", None)
    edge_cell = cell[batch[src]] if batch is not None and cell.size(0) > 1 else cell[0].expand(src.numel(), 3, 3)
    return vectors + torch.bmm(shift.to(vectors.dtype).unsqueeze(1), edge_cell.to(vectors.dtype)).squeeze(1)
