"""MFCAD++-style parts: a box stock with 2 to 10 of the 24 MFCAD++ machining features.

Classes, in MFCAD++'s own label order (:data:`MFCAD_CLASSES`, stock last, index 24):
chamfer, through hole, triangular / rectangular / six-sided passage, triangular / rectangular
/ circular through slot, rectangular / two-sided / slanted through step, O-ring, blind hole,
triangular / rectangular / six-sided / circular-end pocket, rectangular blind slot, vertical /
horizontal circular-end blind slot, triangular / circular / rectangular blind step, round.

Every feature but chamfer and round is a tool solid cut from the part with
``BRepAlgoAPI_Cut``. The tool is built on one of the six stock faces, chosen at random, in
that face's frame (s, t along the face, d the depth below it; see
:class:`graphssl.brep.parts.Side`):

- inside the face, at a random position and in-plane angle: the holes, passages, pockets and
  the O-ring, a sketch (circle, triangle, rectangle, hexagon, stadium, annulus) extruded
  through the stock (holes, passages) or to a random depth;
- from one face edge, chosen at random, across the face: the through slots (rectangular,
  V-shaped, or a round groove cut by a cylinder lying on the face) and the through steps
  (plan rectangle, a wall slanted in plan, or two walls meeting at an apex);
- from one face edge part way in: the blind slots (square end, an end rounded in plan
  (vertical), or an end rounded in the slot's length section (horizontal));
- at one face corner: the blind steps (rectangle, triangle, quarter disc).

Chamfer and round bevel / round one random straight edge between two stock faces with
``BRepFilletAPI_MakeChamfer`` / ``MakeFillet``. Sizes and positions are drawn within bounds
relative to the face and the stock; tools start above the face and overshoot open face
edges, so no tool face is coplanar with a stock face. Features are placed independently and
may intersect one another.

Labelling rule (kernel history of each operation). Stock faces start as ``stock``. After an
operation, a face of the result that is an image of a face of the operation's tool
(``Modified`` of that face, or the face itself when unchanged), or is ``Generated`` by the
fillet/chamfer, or descends from nothing, gets the current feature's label; every other face is
an image of a face of the previous part (``Modified``, or unchanged) and keeps that face's
label. So a face keeps the label of the feature that last created it: the surviving pieces of
a face that a later feature cuts keep their own label, and a face that both the tool and the
previous part produced (a tool face lying on an earlier feature's face) takes the later
feature's label. Final labels follow ``TopExp.MapShapes_s`` face order, as the graph adapter
reads them.

A feature whose operation fails, leaves other than one solid, fails ``BRepCheck_Analyzer`` or
leaves no face of its own (its tool cut only air) is retried with fresh random parameters up
to :data:`FEATURE_TRIES` times, then skipped; :func:`generate_part` returns the skipped ones
with their reason so that the dataset report counts them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

try:  # the CAD extra is optional; say how to get it instead of a bare ModuleNotFoundError
    import OCP  # noqa: F401
except ImportError as exc:
    raise ImportError(f"{__name__} needs the OpenCascade bindings: "
                      "pip install 'graphssl-pretrain[cad]'") from exc
from OCP.BRepAdaptor import BRepAdaptor_Curve
from OCP.BRepAlgoAPI import BRepAlgoAPI_Cut
from OCP.BRepBuilderAPI import (
    BRepBuilderAPI_MakeEdge,
    BRepBuilderAPI_MakeFace,
    BRepBuilderAPI_MakeWire,
)
from OCP.BRepCheck import BRepCheck_Analyzer
from OCP.BRepFilletAPI import BRepFilletAPI_MakeChamfer, BRepFilletAPI_MakeFillet
from OCP.BRepPrimAPI import (
    BRepPrimAPI_MakeBox,
    BRepPrimAPI_MakeCylinder,
    BRepPrimAPI_MakePrism,
)
from OCP.GC import GC_MakeArcOfCircle
from OCP.GCPnts import GCPnts_AbscissaPoint
from OCP.GeomAbs import GeomAbs_CurveType
from OCP.gp import gp_Ax2, gp_Dir, gp_Pnt, gp_Vec
from OCP.TopAbs import TopAbs_FACE
from OCP.TopoDS import TopoDS_Edge, TopoDS_Shape, TopoDS_Solid

from graphssl.brep import _occ
from graphssl.brep.parts import Side, Stock, box_sides
from graphssl.core.errors import DataError

__all__ = ["FEATURES", "FEATURE_TRIES", "MFCAD_CLASSES", "STOCK", "MfcadPart", "add_feature",
           "apply_cut", "apply_edge_feature", "build_tool", "generate_part", "make_stock", "pick_edge"]

MFCAD_CLASSES = (
    "chamfer", "through_hole", "triangular_passage", "rectangular_passage", "six_sided_passage",
    "triangular_through_slot", "rectangular_through_slot", "circular_through_slot",
    "rectangular_through_step", "two_sided_through_step", "slanted_through_step", "o_ring",
    "blind_hole", "triangular_pocket", "rectangular_pocket", "six_sided_pocket",
    "circular_end_pocket", "rectangular_blind_slot", "vertical_circular_end_blind_slot",
    "horizontal_circular_end_blind_slot", "triangular_blind_step", "circular_blind_step",
    "rectangular_blind_step", "round", "stock",
)
STOCK = MFCAD_CLASSES.index("stock")
FEATURES = MFCAD_CLASSES[:STOCK]
EDGE_FEATURES = ("chamfer", "round")
FEATURE_TRIES = 6
MIN_FEATURES, MAX_FEATURES = 2, 10

Point2 = tuple[float, float]
# A closed planar profile: (vertex, arc midpoint or None), the edge running to the next vertex.
Path3 = list[tuple[np.ndarray, np.ndarray | None]]


@dataclass
class MfcadPart:
    """One generated part: the solid, a class per face and the features it skipped."""

    solid: TopoDS_Solid
    labels: list[int]
    features: list[str] = field(default_factory=list)  # applied, in order
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (feature, last failure)
    failed_tries: int = 0  # tries that failed, of features applied or skipped


def make_stock(rng: np.random.Generator) -> Stock:
    """A box stock, each side 40 to 100 mm."""
    dims = rng.uniform(40.0, 100.0, 3)
    return Stock(BRepPrimAPI_MakeBox(*map(float, dims)).Shape(), box_sides(dims), np.zeros(3), dims)


def generate_part(seed: int) -> MfcadPart:
    """A labelled part from ``seed``: same seed, same part (faces, order and labels).

    Raises DataError when every feature drawn for the part was skipped.
    """
    rng = np.random.default_rng(seed)
    stock = make_stock(rng)
    solid: TopoDS_Shape = stock.solid
    labels = [STOCK] * len(_occ.faces(solid))
    part = MfcadPart(solid, labels)
    for _ in range(int(rng.integers(MIN_FEATURES, MAX_FEATURES + 1))):
        kind = FEATURES[int(rng.integers(len(FEATURES)))]
        reason = ""
        for _try in range(FEATURE_TRIES):
            try:
                solid, labels = add_feature(solid, labels, kind, stock, rng)
            except DataError as exc:
                reason = str(exc)
                part.failed_tries += 1
                continue
            part.features.append(kind)
            break
        else:
            part.skipped.append((kind, reason))
    if not part.features:
        raise DataError(f"part from seed {seed}: every feature failed, last: {part.skipped[-1]}")
    part.solid, part.labels = _occ.as_solid(solid), labels
    return part


def add_feature(solid: TopoDS_Shape, labels: Sequence[int], kind: str, stock: Stock,
                rng: np.random.Generator) -> tuple[TopoDS_Solid, list[int]]:
    """Draw one ``kind`` feature's parameters with ``rng`` and apply it (one try).

    Raises DataError when the kernel fails or the result is not valid (module docstring).
    """
    if kind not in FEATURES:
        raise DataError(f"unknown MFCAD feature {kind!r}; expected one of {FEATURES}")
    if kind in EDGE_FEATURES:
        edge, size = pick_edge(solid, labels, stock, rng)
        return apply_edge_feature(solid, labels, kind, edge, size)
    side = stock.sides[int(rng.integers(len(stock.sides)))]
    return apply_cut(solid, labels, build_tool(kind, side, stock, rng), MFCAD_CLASSES.index(kind))


# ------------------------------------------------------------------ operations + labels


def apply_cut(solid: TopoDS_Shape, labels: Sequence[int], tool: TopoDS_Shape,
              label: int) -> tuple[TopoDS_Solid, list[int]]:
    """Cut ``tool`` from a labelled solid; faces from the tool get ``label``."""
    try:
        algo = BRepAlgoAPI_Cut(solid, tool)
        done = algo.IsDone()
        result = algo.Shape() if done else None
    except Exception as exc:  # OCP raises Standard_Failure subclasses on bad geometry
        raise DataError(f"{MFCAD_CLASSES[label]}: cut raised {exc!r}") from exc
    if not done:
        raise DataError(f"{MFCAD_CLASSES[label]}: cut did not complete")
    return _carry(algo, solid, labels, result, label, _occ.faces(tool))


def apply_edge_feature(solid: TopoDS_Shape, labels: Sequence[int], kind: str, edge: TopoDS_Edge,
                       size: float) -> tuple[TopoDS_Solid, list[int]]:
    """Chamfer (equal distance ``size``) or round (radius ``size``) one edge of a labelled solid."""
    if kind not in EDGE_FEATURES:
        raise DataError(f"edge feature must be one of {EDGE_FEATURES}, got {kind!r}")
    try:
        algo = BRepFilletAPI_MakeFillet(solid) if kind == "round" else BRepFilletAPI_MakeChamfer(solid)
        algo.Add(float(size), edge)
        algo.Build()
        done = algo.IsDone()
        result = algo.Shape() if done else None
    except Exception as exc:
        raise DataError(f"{kind} raised {exc!r}") from exc
    if not done:
        raise DataError(f"{kind} of size {size:.3g} did not complete")
    return _carry(algo, solid, labels, result, MFCAD_CLASSES.index(kind), [])


def _carry(algo, solid: TopoDS_Shape, labels: Sequence[int], result: TopoDS_Shape, label: int,
           tool_faces: Sequence[TopoDS_Shape]) -> tuple[TopoDS_Solid, list[int]]:
    name = MFCAD_CLASSES[label]
    found = _occ.solids(result)
    if len(found) != 1:
        raise DataError(f"{name} left {len(found)} solids, expected 1")
    new = found[0]
    if not BRepCheck_Analyzer(new).IsValid():
        raise DataError(f"{name} left an invalid solid (BRepCheck_Analyzer)")
    index = _occ.ShapeIndex(new, TopAbs_FACE)
    new_labels = [label] * len(index)  # Generated faces and anything without an ancestor
    from_tool = set()
    for face in tool_faces:
        if not algo.IsDeleted(face):
            from_tool.update(index.index(img) for img in list(algo.Modified(face)) or [face])
    for face, old in zip(_occ.faces(solid), labels):
        if algo.IsDeleted(face):
            continue
        # An untouched face is its own image; Modified lists the pieces of a changed one.
        for img in list(algo.Modified(face)) or [face]:
            j = index.index(img)
            if j >= 0 and j not in from_tool:  # the later feature wins a shared face
                new_labels[j] = old
    if label not in new_labels:
        raise DataError(f"{name} left no face of its own (the tool missed the material)")
    return new, new_labels


def pick_edge(solid: TopoDS_Shape, labels: Sequence[int], stock: Stock,
              rng: np.random.Generator) -> tuple[TopoDS_Edge, float]:
    """A random straight edge between two stock faces, and a size well below its length."""
    size = rng.uniform(0.03, 0.1) * stock.size
    index = _occ.ShapeIndex(solid, TopAbs_FACE)
    candidates = []
    for edge, around in _occ.edge_faces(solid, index):
        if len(around) != 2 or labels[around[0]] != STOCK or labels[around[1]] != STOCK:
            continue
        curve = BRepAdaptor_Curve(edge)
        if (curve.GetType() == GeomAbs_CurveType.GeomAbs_Line
                and GCPnts_AbscissaPoint.Length_s(curve) > 3 * size):
            candidates.append(edge)
    if not candidates:
        raise DataError(f"no straight edge between two stock faces longer than {3 * size:.3g}")
    return candidates[int(rng.integers(len(candidates)))], float(size)


# ------------------------------------------------------------------------- tools


def _pnt(p: np.ndarray) -> gp_Pnt:
    return gp_Pnt(*map(float, p))


def _prism(path: Path3, vector: np.ndarray) -> TopoDS_Shape:
    """Extrude the closed planar profile ``path`` by ``vector``."""
    wire = BRepBuilderAPI_MakeWire()
    for k, (start, mid) in enumerate(path):
        end = path[(k + 1) % len(path)][0]
        if mid is None:
            edge = BRepBuilderAPI_MakeEdge(_pnt(start), _pnt(end)).Edge()
        else:
            edge = BRepBuilderAPI_MakeEdge(GC_MakeArcOfCircle(_pnt(start), _pnt(mid), _pnt(end)).Value()).Edge()
        wire.Add(edge)
    if not wire.IsDone():
        raise DataError("tool profile is not a closed wire")
    face = BRepBuilderAPI_MakeFace(wire.Wire(), True).Face()
    return BRepPrimAPI_MakePrism(face, gp_Vec(*map(float, vector))).Shape()


def _cylinder(base: np.ndarray, axis: np.ndarray, seam: np.ndarray, r: float, h: float) -> TopoDS_Shape:
    # The seam line sits at `seam` from the axis: pointed away from the material so that it
    # never lies on a stock face.
    frame = gp_Ax2(_pnt(base), gp_Dir(*map(float, axis)), gp_Dir(*map(float, seam)))
    return BRepPrimAPI_MakeCylinder(frame, float(r), float(h)).Shape()


def _polygon(k: int, r: float, rng: np.random.Generator | None = None) -> list[Point2]:
    """A k-gon inscribed in radius r; triangles get jittered corners (not only equilateral)."""
    angles = 2 * np.pi * np.arange(k) / k
    if rng is not None:
        angles = angles + rng.uniform(-0.35, 0.35, k)
    return [(r * np.cos(a), r * np.sin(a)) for a in angles]


@dataclass
class _Frame:
    """Where a feature sits on a side: 2D (a, b) feature coordinates -> (s, t) on the side."""

    side: Side
    to_st: Callable[[float, float], Point2]
    over: float  # how far tools start above the side and run past its open edges

    def world(self, a: float, b: float, d: float) -> np.ndarray:
        return self.side.world(*self.to_st(a, b), d)

    def plan(self, profile: Sequence[tuple[Point2, Point2 | None]], depth: float) -> TopoDS_Shape:
        """Extrude a plan profile from above the side down to ``depth`` below it."""
        path = [(self.world(*p, -self.over), None if m is None else self.world(*m, -self.over))
                for p, m in profile]
        return _prism(path, -self.side.n * (depth + self.over))

    def direction(self, da: float, db: float) -> np.ndarray:
        return self.world(da, db, 0.0) - self.world(0.0, 0.0, 0.0)


def _interior(side: Side, over: float, radius: float, rng: np.random.Generator) -> _Frame:
    """Centre and in-plane angle for a sketch of bounding ``radius`` inside the side."""
    margin = 0.06 * min(side.su, side.sv)
    cs = rng.uniform(radius + margin, side.su - radius - margin)
    ct = rng.uniform(radius + margin, side.sv - radius - margin)
    angle = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(angle), np.sin(angle)
    return _Frame(side, lambda x, y: (cs + x * c - y * s, ct + x * s + y * c), over)


def _from_edge(side: Side, over: float, rng: np.random.Generator) -> tuple[_Frame, float, float]:
    """A frame at one random side edge: a runs inward (0..W), b along the edge (0..L)."""
    edge = ("s0", "s1", "t0", "t1")[int(rng.integers(4))]
    su, sv = side.su, side.sv
    flip = {"s0": lambda a, b: (a, b), "s1": lambda a, b: (su - a, b),
            "t0": lambda a, b: (b, a), "t1": lambda a, b: (b, sv - a)}[edge]
    inward, along = (su, sv) if edge[0] == "s" else (sv, su)
    return _Frame(side, flip, over), inward, along


def _from_corner(side: Side, over: float, rng: np.random.Generator) -> _Frame:
    fs, ft = bool(rng.integers(2)), bool(rng.integers(2))
    su, sv = side.su, side.sv
    return _Frame(side, lambda a, b: (su - a if fs else a, sv - b if ft else b), over)


def _lines(points: Sequence[Point2]) -> list[tuple[Point2, None]]:
    return [(p, None) for p in points]


def build_tool(kind: str, side: Side, stock: Stock, rng: np.random.Generator) -> TopoDS_Shape:
    """The tool solid of one cut feature on ``side``, parameters drawn from ``rng``."""
    over = 0.05 * stock.size
    m = min(side.su, side.sv)
    depth = rng.uniform(0.15, 0.55) * side.depth
    through = side.depth + over  # the plan extrusion then ends `over` beyond the far side
    if kind in ("through_hole", "blind_hole"):
        r = rng.uniform(0.05, 0.2) * m
        f = _interior(side, over, r, rng)
        c = f.world(0.0, 0.0, -over)
        h = (through if kind == "through_hole" else depth) + over
        return _cylinder(c, -side.n, side.u, r, h)
    if kind == "o_ring":
        outer = rng.uniform(0.15, 0.3) * m
        inner = rng.uniform(0.45, 0.8) * outer
        f = _interior(side, over, outer, rng)
        c = f.world(0.0, 0.0, -over)
        ring = BRepAlgoAPI_Cut(_cylinder(c, -side.n, side.u, outer, depth + over),
                               _cylinder(c + side.n * over, -side.n, side.u, inner, depth + 3 * over))
        return ring.Shape()
    if kind.startswith(("triangular_p", "rectangular_p", "six_sided_p", "circular_end_p")):
        end = through if kind.endswith("passage") else depth
        r = rng.uniform(0.12, 0.3) * m
        if kind.startswith("triangular"):
            profile = _lines(_polygon(3, r, rng))
        elif kind.startswith("six_sided"):
            profile = _lines(_polygon(6, r))
        elif kind.startswith("rectangular"):
            w = r * rng.uniform(0.3, 0.95)
            h = np.sqrt(r * r - w * w)
            profile = _lines([(-w, -h), (w, -h), (w, h), (-w, h)])
        else:  # circular-end pocket: a stadium, half-length l between the arc centres
            q = r * rng.uniform(0.25, 0.5)
            l = r - q
            profile = [((-l, -q), None), ((l, -q), (l + q, 0.0)), ((l, q), None), ((-l, q), (-l - q, 0.0))]
        return _interior(side, over, r, rng).plan(profile, end)
    f, inward, along = _from_edge(side, over, rng)
    e = over
    if kind.endswith("through_slot"):
        w = rng.uniform(0.1, 0.3) * along
        b0 = rng.uniform(0.08 * along, 0.92 * along - w)
        if kind.startswith("rectangular"):
            return f.plan(_lines([(-e, b0), (inward + e, b0), (inward + e, b0 + w), (-e, b0 + w)]), depth)
        run = f.direction(1.0, 0.0) * (inward + 2 * e)
        if kind.startswith("triangular"):  # V groove: width w at the face, apex at depth
            k = over * 0.5 * w / depth
            section = [f.world(-e, b0 - k, -over), f.world(-e, b0 + w + k, -over),
                       f.world(-e, b0 + 0.5 * w, depth)]
            return _prism([(p, None) for p in section], run)
        # round groove: a cylinder along the face, its axis a little above it
        r = 0.5 * w / np.sqrt(1 - rng.uniform(0.05, 0.5) ** 2)
        lift = np.sqrt(r * r - 0.25 * w * w)
        if r - lift > 0.9 * side.depth:
            raise DataError(f"{kind}: groove deeper than the stock")
        base = f.world(-e, b0 + 0.5 * w, -lift)
        return _cylinder(base, run / np.linalg.norm(run), side.n, r, inward + 2 * e)
    if kind.endswith("through_step"):
        w1, w2 = rng.uniform(0.12, 0.4, 2) * inward
        if kind.startswith("rectangular"):
            wall = [(w1, -e), (w1, along + e)]
        elif kind.startswith("slanted"):  # the wall crosses the face at an angle to the edge
            slope = (w2 - w1) / along
            wall = [(w1 - slope * e, -e), (w2 + slope * e, along + e)]
        else:  # two-sided: two walls meeting at an apex further in
            apex = (max(w1, w2) + rng.uniform(0.1, 0.3) * inward, rng.uniform(0.3, 0.7) * along)
            wall = [(w1, -e), apex, (w2, along + e)]
        return f.plan(_lines([(-e, -e), *wall, (-e, along + e)]), depth)
    if kind.endswith("blind_slot"):
        w = rng.uniform(0.1, 0.3) * along
        b0 = rng.uniform(0.08 * along, 0.92 * along - w)
        length = rng.uniform(0.3, 0.75) * inward
        if kind.startswith("rectangular"):
            return f.plan(_lines([(-e, b0), (length, b0), (length, b0 + w), (-e, b0 + w)]), depth)
        if kind.startswith("vertical"):  # end rounded in plan: a half disc of diameter w
            profile = [((-e, b0), None), ((length, b0), (length + 0.5 * w, b0 + 0.5 * w)),
                       ((length, b0 + w), None), ((-e, b0 + w), None)]
            return f.plan(profile, depth)
        # horizontal: the end rounded in the slot's length section, a quarter circle tangent
        # to the floor whose centre lies `over` above the face (crosses the face at an angle)
        depth = min(depth, 0.4 * length)
        r = depth + over
        if length - r < 0.1 * length:
            raise DataError(f"{kind}: slot of length {length:.3g} too short for depth {depth:.3g}")
        cos45 = np.sqrt(0.5)
        section = [(f.world(-e, b0, -over), None),
                   (f.world(length, b0, -over), f.world(length - r + r * cos45, b0, -over + r * cos45)),
                   (f.world(length - r, b0, depth), None), (f.world(-e, b0, depth), None)]
        return _prism(section, f.direction(0.0, 1.0) * w)
    if kind.endswith("blind_step"):
        f = _from_corner(side, over, rng)
        w1, w2 = rng.uniform(0.15, 0.45, 2) * np.array([side.su, side.sv])
        if kind.startswith("rectangular"):
            return f.plan(_lines([(-e, -e), (w1, -e), (w1, w2), (-e, w2)]), depth)
        if kind.startswith("triangular"):  # hypotenuse from (w1, 0) to (0, w2), run past both edges
            return f.plan(_lines([(-e, -e), (w1 * (1 + e / w2), -e), (-e, w2 * (1 + e / w1))]), depth)
        r = min(w1, w2)  # circular: a quarter disc about the corner
        outward = -(f.direction(1.0, 0.0) + f.direction(0.0, 1.0))
        return _cylinder(f.world(0.0, 0.0, -over), -side.n, outward / np.linalg.norm(outward), r, depth + over)
    raise DataError(f"unknown MFCAD feature {kind!r}; expected one of {FEATURES}")
