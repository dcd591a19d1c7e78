"""Small OCP (OpenCascade) helpers shared by the B-rep adapter and the part generator.

Only this module knows where OCP 7.x and 8.0 differ: the ``TopoDS`` casts lost their
``_s`` suffix in 8.0 and the NCollection map/list classes moved to ``OCP.collections``.
Everything else imports these names from here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from OCP.Message import Message
from OCP.TopAbs import TopAbs_EDGE, TopAbs_FACE, TopAbs_SOLID, TopAbs_ShapeEnum
from OCP.TopExp import TopExp
from OCP.TopoDS import TopoDS, TopoDS_Edge, TopoDS_Face, TopoDS_Shape, TopoDS_Solid

try:  # OCP >= 8.0
    from OCP.collections import (
        IndexedDataMap_TopoDS_Shape_List_TopoDS_Shape_TopTools_ShapeMapHasher as _AncestorMap,
    )
    from OCP.collections import IndexedMap_TopoDS_Shape_TopTools_ShapeMapHasher as _ShapeMap
except ImportError:  # OCP 7.x
    from OCP.TopTools import TopTools_IndexedDataMapOfShapeListOfShape as _AncestorMap
    from OCP.TopTools import TopTools_IndexedMapOfShape as _ShapeMap

# 8.0 dropped the `_s` suffix on the TopoDS casts only; every other static method keeps it.
_CAST_SUFFIX = "" if hasattr(TopoDS, "Face") else "_s"


def as_face(shape: TopoDS_Shape) -> TopoDS_Face:
    return getattr(TopoDS, "Face" + _CAST_SUFFIX)(shape)


def as_edge(shape: TopoDS_Shape) -> TopoDS_Edge:
    return getattr(TopoDS, "Edge" + _CAST_SUFFIX)(shape)


def as_solid(shape: TopoDS_Shape) -> TopoDS_Solid:
    return getattr(TopoDS, "Solid" + _CAST_SUFFIX)(shape)


class ShapeIndex:
    """Sub-shapes of one kind, numbered 0.. in ``TopExp.MapShapes_s`` order.

    The order is the kernel's own (first occurrence in a depth-first walk), so the part
    generator and the graph adapter agree on face numbering without talking to each
    other. Lookup is by ``IsSame`` (same topology and location, any orientation).
    """

    def __init__(self, shape: TopoDS_Shape, kind: TopAbs_ShapeEnum) -> None:
        self._map = _ShapeMap()
        TopExp.MapShapes_s(shape, kind, self._map)

    def __len__(self) -> int:
        return self._map.Size()

    def __getitem__(self, i: int) -> TopoDS_Shape:
        return self._map.FindKey(i + 1)

    def index(self, sub: TopoDS_Shape) -> int:
        """0-based index of ``sub``, or -1 if it is not part of the shape."""
        return self._map.FindIndex(sub) - 1


def faces(shape: TopoDS_Shape) -> list[TopoDS_Face]:
    """The faces of ``shape`` in the order the graph adapter numbers them."""
    idx = ShapeIndex(shape, TopAbs_FACE)
    return [as_face(idx[i]) for i in range(len(idx))]


def solids(shape: TopoDS_Shape) -> list[TopoDS_Solid]:
    idx = ShapeIndex(shape, TopAbs_SOLID)
    return [as_solid(idx[i]) for i in range(len(idx))]


def edge_faces(shape: TopoDS_Shape, face_index: ShapeIndex) -> list[tuple[TopoDS_Edge, list[int]]]:
    """Every edge of ``shape`` with the sorted, distinct indices of the faces around it."""
    amap = _AncestorMap()
    TopExp.MapShapesAndAncestors_s(shape, TopAbs_EDGE, TopAbs_FACE, amap)
    out = []
    for i in range(1, amap.Size() + 1):
        # A seam edge lists its face twice (once per orientation), hence the set.
        around = sorted({face_index.index(f) for f in amap.FindFromIndex(i)})
        out.append((as_edge(amap.FindKey(i)), around))
    return out


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Detach OCP's console printers: STEP I/O writes banners and parse errors to stdout."""
    messenger = Message.DefaultMessenger_s()
    printers = list(messenger.Printers())
    for p in printers:
        messenger.RemovePrinter(p)
    try:
        yield
    finally:
        for p in printers:
            messenger.AddPrinter(p)
