"""Radius neighbour lists for :class:`~graphssl.atomistic.graph.AtomisticData`, built with vesin.

Conventions (the same as vesin, ASE's ``neighbor_list('ijS')`` and pymatgen's
``get_neighbor_list``): a full list with both directions ``i -> j`` and ``j -> i``; the neighbour
of edge ``(i, j, S)`` sits at ``pos[j] + S @ cell``, so its edge vector is
``pos[j] - pos[i] + S @ cell``. An atom's own periodic images are neighbours ``(i, i, S != 0)``
when the cell is shorter than the cutoff; the pair ``(i, i, 0)`` never appears. Positions need
not be wrapped into the cell; the shifts account for it. Periodicity may differ per lattice
vector (slabs, wires); non-periodic directions get zero shifts.

Cutoff: a pair is a neighbour when its distance ``d <= cutoff`` (within
:data:`CUTOFF_TOLERANCE`), as pymatgen counts: a simple cubic cell of 5.0 A has six neighbours
within 5.0 A. The backbones' cutoff functions give such a pair zero weight, so the convention
only decides which graphs are valid, not what a model computes.

Skewed cells: the search runs on a reduced basis of the same lattice (Minkowski reduction) and
the shifts are mapped back to the cell passed in, so the edges do not depend on the basis a
file happens to use, and a long, flat basis costs no more than a compact one.

Edges are returned sorted by ``(i, j, shift)`` so that the graph does not depend on vesin's
internal (thread-dependent) ordering.
"""

from __future__ import annotations

from functools import lru_cache

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

# A pair at distance d is a neighbour when d <= cutoff + CUTOFF_TOLERANCE (Angstrom). The margin
# covers the rounding of float32 positions (a pair meant to sit exactly at the cutoff may come
# out a few 1e-7 A beyond it) and is far below any physical length.
CUTOFF_TOLERANCE = 1e-5


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


# For each lattice vector k: the indices of the other two, and the 8 nonzero combinations
# (+-1 or 0 of each, not both 0) of those two that could shorten it.
_OTHERS = ((0, 1, 2), (1, 0, 2), (2, 0, 1))
_COMBINATIONS = tuple((a, b) for a in (-1, 0, 1) for b in (-1, 0, 1) if a or b)


# A basis counts as reduced unless some vector gets shorter by more than this fraction: rounding
# in files (a hexagonal cell written to 4 decimals) must not trigger a reduction.
_SHORTER = 1e-6


def reduced_basis(cell: np.ndarray, pbc: np.ndarray | bool = True) -> tuple[np.ndarray, np.ndarray] | None:
    """A shorter basis of the same lattice, ``(reduced, op)`` with ``reduced = op @ cell``, or None.

    ``op`` is an integer matrix with determinant +1 (the handedness of ``cell`` is kept), so a
    translation ``S @ reduced`` is ``(S @ op) @ cell``. Returns None when ``cell`` is already as
    short as its Minkowski-reduced basis (the common case: the cell is kept exactly as given),
    when it is not periodic in all three directions, or when it is degenerate (left to the
    caller's checks).
    """
    periodic = np.broadcast_to(np.asarray(pbc, dtype=bool).reshape(-1), (3,))
    box = np.ascontiguousarray(cell, dtype=np.float64).reshape(3, 3)
    if not periodic.all() or not np.isfinite(box).all() or _is_reduced(box):
        return None
    lengths = np.linalg.norm(box, axis=1)
    if abs(np.linalg.det(box)) <= 1e-8 * max(float(np.prod(lengths)), 1.0):
        return None
    found = _minkowski(box.tobytes())
    if found is None:
        return None
    reduced, op = found
    return reduced.copy(), op.copy()


def _is_reduced(box: np.ndarray) -> bool:
    """Whether no lattice vector gets shorter by adding +-1 times one or both of the others: in
    3D that makes the basis Minkowski-reduced. 24 quadratic forms of the Gram matrix in plain
    floats, run for every structure, so far cheaper than ASE's reduction, which most cells skip.
    """
    g = (box @ box.T).tolist()
    for k, i, j in _OTHERS:
        # |b_k + a b_i + c b_j|^2 - |b_k|^2, against the allowed relative shortening
        limit = -2.0 * _SHORTER * g[k][k]
        for a, c in _COMBINATIONS:
            if a * a * g[i][i] + c * c * g[j][j] + 2 * (a * g[k][i] + c * g[k][j] + a * c * g[i][j]) < limit:
                return False
    return True


@lru_cache(maxsize=64)  # one structure's checks and neighbour list ask for the same cell in turn
def _minkowski(box_bytes: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    from ase.geometry import minkowski_reduce  # the crystal extra, as vesin

    box = np.frombuffer(box_bytes, dtype=np.float64).reshape(3, 3)
    reduced, op = minkowski_reduce(box, pbc=True)
    op = np.rint(op).astype(np.int64)
    if round(np.linalg.det(op)) < 0:  # -op spans the same lattice with the original handedness
        op, reduced = -op, -reduced
    # Keep the given cell unless the reduced one is really shorter: ASE also permutes and flips
    # vectors of cells that are reduced already, which would change every shift for nothing.
    if np.linalg.norm(reduced, axis=1).sum() >= np.linalg.norm(box, axis=1).sum() * (1.0 - _SHORTER):
        return None
    return op @ box, op


def neighbor_pairs(pos: Tensor, cell: Tensor | None, pbc: Tensor | bool,
                   cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All pairs within ``cutoff`` (``d <= cutoff``, see :data:`CUTOFF_TOLERANCE`) as numpy
    ``(i, j, shift, distance)``, in vesin's order; shifts refer to ``cell``.

    Computed in float64 whatever the dtype of ``pos``, on a reduced basis of a skewed cell.
    Raises :class:`DataError` on a cell that is singular along a periodic direction.
    """
    if cutoff <= 0:
        raise DataError(f"cutoff must be positive, got {cutoff}")
    points = pos.detach().cpu().to(torch.float64).reshape(-1, 3).numpy()
    box, periodic = _as_numpy_cell_pbc(cell, pbc)
    if points.shape[0] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros((0, 3), dtype=np.int64), np.zeros(0)
    import vesin  # the crystal extra: imported when a neighbour list is built, not with the package

    reduction = reduced_basis(box, periodic)
    search_box = box if reduction is None else reduction[0]
    # One thread: graphs are usually built in DataLoader workers, which already use the cores,
    # and a fresh vesin object per call keeps transforms picklable (it wraps a C handle).
    calculator = vesin.NeighborList(cutoff=float(cutoff) + CUTOFF_TOLERANCE, full_list=True, n_threads=1)
    try:
        i, j, shift, dist = calculator.compute(points, search_box, periodic.tolist(), quantities="ijSd")
    except RuntimeError as exc:  # vesin reports singular boxes this way
        raise DataError(f"cannot build a neighbour list: {exc} (cell {box.tolist()}, pbc "
                        f"{periodic.tolist()})") from exc
    shift = shift.astype(np.int64).reshape(-1, 3)
    if reduction is not None:
        shift = shift @ reduction[1]  # S @ reduced == (S @ op) @ cell
    return i.astype(np.int64), j.astype(np.int64), shift, dist


def nearest_distances(pos: Tensor, cell: Tensor | None, pbc: Tensor | bool, atoms: list[int],
                      start: float) -> np.ndarray:
    """The distance from each of ``atoms`` to its nearest neighbour (another atom or a periodic
    image, its own included), searching beyond ``start`` Angstrom; inf for a lone atom.

    For error messages (an atom with no neighbour inside the cutoff): periodic structures
    widen the search until every atom has found one, molecules compare against all atoms.
    """
    box, periodic = _as_numpy_cell_pbc(cell, pbc)
    points = pos.detach().cpu().to(torch.float64).reshape(-1, 3).numpy()
    wanted = np.asarray(atoms, dtype=np.int64)
    nearest = np.full(wanted.size, np.inf)
    if not periodic.any():
        for k, atom in enumerate(wanted):  # O(N) per atom, without an N x N matrix
            d = np.linalg.norm(points - points[atom], axis=1)
            d[atom] = np.inf
            nearest[k] = d.min() if d.size else np.inf
        return nearest
    # An atom's own image along the shortest periodic vector bounds its nearest distance.
    bound = float(np.linalg.norm(box[periodic], axis=1).min()) + CUTOFF_TOLERANCE
    radius = max(float(start), 1e-3)
    while True:
        radius = min(2.0 * radius, bound)
        i, _, _, dist = neighbor_pairs(pos, cell, pbc, radius)
        best = np.full(points.shape[0], np.inf)
        np.minimum.at(best, i, dist)
        nearest = best[wanted]
        if np.isfinite(nearest).all() or radius >= bound:
            return nearest


def radius_graph(pos: Tensor, cell: Tensor | None, pbc: Tensor | bool, cutoff: float,
                 max_neighbors: int | None = None) -> tuple[Tensor, Tensor]:
    """Full radius graph of one structure.

    Args:
        pos: ``[N, 3]`` Cartesian positions (Angstrom).
        cell: ``[3, 3]`` or ``[1, 3, 3]`` lattice vectors as rows, or ``None`` if not periodic.
        pbc: periodicity, a bool or ``[3]`` / ``[1, 3]`` bools (mixed periodicity is supported).
        cutoff: radius in Angstrom (pairs with distance <= cutoff, see :data:`CUTOFF_TOLERANCE`).
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
