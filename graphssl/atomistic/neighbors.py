"""Radius neighbour lists for :class:`~graphssl.atomistic.graph.AtomisticData`, built with vesin.

Conventions (the same as vesin, ASE's ``neighbor_list('ijS')`` and pymatgen's
``get_neighbor_list``): a full list with both directions ``i -> j`` and ``j -> i``; the neighbour
of edge ``(i, j, S)`` sits at ``pos[j] + S @ cell``, so its edge vector is
``pos[j] - pos[i] + S @ cell``. An atom's own periodic images are neighbours ``(i, i, S != 0)``
when the cell is shorter than the cutoff; the pair ``(i, i, 0)`` never appears. Positions need
not be wrapped into the cell; the shifts account for it. Periodicity may differ per lattice
vector (slabs, wires); non-periodic directions get zero shifts.

Edges are returned sorted by ``(i, j, shift)`` so that the graph does not depend on vesin's
internal (thread-dependent) ordering.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from graphssl.core.errors import DataError

# Distances equal to this resolution (Angstrom) count as ties for ``max_neighbors``, so that
# symmetry-equivalent neighbours whose distances differ by rounding noise are ordered by
# (j, shift) rather than by the last bits of floating point arithmetic.
_TIE_RESOLUTION = 1e-6


def _as_numpy_cell_pbc(cell: Tensor | None, pbc: Tensor | bool) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(pbc, Tensor):
        periodic = pbc.detach().cpu().reshape(-1).numpy().astype(bool)
    else:
        periodic = np.asarray(pbc, dtype=bool).reshape(-1)
    if periodic.size == 1:
        periodic = np.repeat(periodic, 3)
    if periodic.shape != (3,):
        raise DataError(f"pbc must be a bool or 3 bools, got shape {tuple(periodic.shape)}")
    if cell is None:
        if periodic.any():
            raise DataError("a periodic structure needs a cell, got cell=None")
        box = np.zeros((3, 3))
    else:
        box = cell.detach().cpu().to(torch.float64).reshape(-1, 3, 3).numpy()
        if box.shape[0] != 1:
            raise DataError(f"expected the cell of one structure, got {box.shape[0]} cells "
                            "(build neighbour lists before batching)")
        box = box[0]
    if not periodic.any():
        box = np.zeros((3, 3))  # vesin ignores it anyway; a zero box avoids spurious errors
    return box, periodic


def neighbor_pairs(pos: Tensor, cell: Tensor | None, pbc: Tensor | bool,
                   cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All pairs closer than ``cutoff`` as numpy ``(i, j, shift, distance)``, in vesin's order.

    Computed in float64 whatever the dtype of ``pos``. Raises :class:`DataError` on a cell
    that is singular along a periodic direction.
    """
    if cutoff <= 0:
        raise DataError(f"cutoff must be positive, got {cutoff}")
    points = pos.detach().cpu().to(torch.float64).reshape(-1, 3).numpy()
    box, periodic = _as_numpy_cell_pbc(cell, pbc)
    if points.shape[0] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros((0, 3), dtype=np.int64), np.zeros(0)
    import vesin  # the crystal extra: imported when a neighbour list is built, not with the package

    # One thread: graphs are usually built in DataLoader workers, which already use the cores,
    # and a fresh vesin object per call keeps transforms picklable (it wraps a C handle).
    calculator = vesin.NeighborList(cutoff=float(cutoff), full_list=True, n_threads=1)
    try:
        i, j, shift, dist = calculator.compute(points, box, periodic.tolist(), quantities="ijSd")
    except RuntimeError as exc:  # vesin reports singular boxes this way
        raise DataError(f"cannot build a neighbour list: {exc} (cell {box.tolist()}, pbc "
                        f"{periodic.tolist()})") from exc
    return i.astype(np.int64), j.astype(np.int64), shift.astype(np.int64), dist


def radius_graph(pos: Tensor, cell: Tensor | None, pbc: Tensor | bool, cutoff: float,
                 max_neighbors: int | None = None) -> tuple[Tensor, Tensor]:
    """Full radius graph of one structure.

    Args:
        pos: ``[N, 3]`` Cartesian positions (Angstrom).
        cell: ``[3, 3]`` or ``[1, 3, 3]`` lattice vectors as rows, or ``None`` if not periodic.
        pbc: periodicity, a bool or ``[3]`` / ``[1, 3]`` bools (mixed periodicity is supported).
        cutoff: radius in Angstrom (pairs with distance < cutoff).
        max_neighbors: if given, each atom ``i`` keeps only its ``max_neighbors`` nearest
            neighbours, ties broken by ``(distance, j, shift)``. The result may then be
            asymmetric (``j`` in the list of ``i`` but not the other way round).

    Returns:
        ``edge_index`` long ``[2, E]`` and ``cell_shift`` long ``[E, 3]``, sorted by
        ``(i, j, shift)`` (or by ``(i, distance, j, shift)`` with ``max_neighbors``).
    """
    if max_neighbors is not None and max_neighbors < 1:
        raise DataError(f"max_neighbors must be >= 1 or None, got {max_neighbors}")
    i, j, shift, dist = neighbor_pairs(pos, cell, pbc, cutoff)
    if max_neighbors is None:
        order = np.lexsort((shift[:, 2], shift[:, 1], shift[:, 0], j, i))
    else:
        tie_dist = np.round(dist / _TIE_RESOLUTION)
        order = np.lexsort((shift[:, 2], shift[:, 1], shift[:, 0], j, tie_dist, i))
        sorted_i = i[order]
        # rank of each edge within its centre atom's block of the sorted list
        starts = np.searchsorted(sorted_i, sorted_i, side="left")
        rank = np.arange(sorted_i.size) - starts
        order = order[rank < max_neighbors]
    device = pos.device
    edge_index = torch.from_numpy(np.stack([i[order], j[order]])).to(device)
    cell_shift = torch.from_numpy(np.ascontiguousarray(shift[order])).to(device)
    return edge_index.long().reshape(2, -1), cell_shift.long().reshape(-1, 3)


class NeighborList(BaseTransform):
    """Fill ``edge_index`` and ``cell_shift`` of an :class:`AtomisticData` (see :func:`radius_graph`).

    Apply it to single structures, before batching.
    """

    def __init__(self, cutoff: float, max_neighbors: int | None = None) -> None:
        if cutoff <= 0:
            raise DataError(f"NeighborList cutoff must be positive, got {cutoff}")
        if max_neighbors is not None and max_neighbors < 1:
            raise DataError(f"NeighborList max_neighbors must be >= 1 or None, got {max_neighbors}")
        self.cutoff = float(cutoff)
        self.max_neighbors = max_neighbors

    def forward(self, data: Data) -> Data:
        cell = getattr(data, "cell", None)
        pbc = getattr(data, "pbc", None)
        if pbc is None:
            pbc = False
        try:
            data.edge_index, data.cell_shift = radius_graph(
                data.pos, cell, pbc, self.cutoff, self.max_neighbors)
        except DataError as exc:
            name = getattr(data, "name", None)
            raise DataError(f"structure {name!r}: {exc}" if name is not None else str(exc)) from exc
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(cutoff={self.cutoff}, max_neighbors={self.max_neighbors})"
