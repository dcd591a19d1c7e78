"""Stock shapes and feature tools for :mod:`graphssl.brep.generate`.

Every stock side is a planar rectangle with an outward normal ``n`` and in-plane axes
``u``, ``v``; a point of a feature is given as (s, t, d): s along u, t along v, d the
depth below the side (negative above it). All sides are axis-aligned, so box tools are
built from two corners.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from OCP.BRepAdaptor import BRepAdaptor_Curve
from OCP.BRepBndLib import BRepBndLib
from OCP.BRepBuilderAPI import BRepBuilderAPI_MakeFace, BRepBuilderAPI_MakePolygon
from OCP.BRepPrimAPI import BRepPrimAPI_MakeBox, BRepPrimAPI_MakeCylinder, BRepPrimAPI_MakePrism
from OCP.Bnd import Bnd_Box
from OCP.GCPnts import GCPnts_AbscissaPoint
from OCP.GeomAbs import GeomAbs_CurveType
from OCP.gp import gp_Ax2, gp_Dir, gp_Pnt, gp_Vec
from OCP.TopAbs import TopAbs_FACE
from OCP.TopoDS import TopoDS_Edge, TopoDS_Shape

from graphssl.brep import _occ

_X, _Y, _Z = np.eye(3)


@dataclass
class Side:
    """A planar rectangle of the stock: ``origin + s*u + t*v - d*n``, s<su, t<sv."""

    origin: np.ndarray
    n: np.ndarray
    u: np.ndarray
    v: np.ndarray
    su: float
    sv: float
    depth: float  # material thickness below the whole rectangle
    # Rectangle edges a tool may run out through without hitting other stock material.
    open: frozenset = frozenset({"s0", "s1", "t0", "t1"})

    def world(self, s: float, t: float, d: float) -> np.ndarray:
        return self.origin + s * self.u + t * self.v - d * self.n


@dataclass
class Stock:
    solid: TopoDS_Shape
    sides: list[Side]
    lo: np.ndarray
    hi: np.ndarray

    @property
    def size(self) -> float:
        return float((self.hi - self.lo).min())

    @property
    def big(self) -> float:
        """A length that takes any tool clear through the stock."""
        return 2.0 * float(np.linalg.norm(self.hi - self.lo))


@dataclass
class Operation:
    tool: TopoDS_Shape | None = None  # None for fillets and chamfers
    edges: list[TopoDS_Edge] = field(default_factory=list)
    size: float = 0.0


def _pnt(p: np.ndarray) -> gp_Pnt:
    return gp_Pnt(*map(float, p))


def box_sides(dims: np.ndarray) -> list[Side]:
    """The six sides of the box [0, dims], outward normals, every edge open."""
    sides = []
    for a in range(3):
        b, c = (a + 1) % 3, (a + 2) % 3
        u, v, n = np.eye(3)[b], np.eye(3)[c], np.eye(3)[a]
        for sign in (-1.0, 1.0):
            origin = n * (dims[a] if sign > 0 else 0.0)
            sides.append(Side(origin, sign * n, u, v, dims[b], dims[c], dims[a]))
    return sides


def make_stock(rng: np.random.Generator) -> Stock:
    kind = ("box", "cylinder", "l_profile")[int(rng.integers(3))]
    if kind == "box":
        dims = rng.uniform(20.0, 60.0, 3)
        solid = BRepPrimAPI_MakeBox(*map(float, dims)).Shape()
        return Stock(solid, box_sides(dims), np.zeros(3), dims)
    if kind == "cylinder":
        r, h = rng.uniform(10.0, 30.0), rng.uniform(15.0, 60.0)
        solid = BRepPrimAPI_MakeCylinder(float(r), float(h)).Shape()
        half = r / np.sqrt(2.0)  # features go on the square inscribed in each end disc
        sides = [Side(np.array([-half, -half, h]), _Z, _X, _Y, 2 * half, 2 * half, h),
                 Side(np.array([-half, -half, 0.0]), -_Z, _X, _Y, 2 * half, 2 * half, h)]
        return Stock(solid, sides, np.array([-r, -r, 0.0]), np.array([r, r, h]))
    # L-profile in the xz plane, extruded along y: a lower leg (height h) and an upright.
    length, width, height = rng.uniform(30.0, 60.0, 3)
    a, h = rng.uniform(0.3, 0.6) * length, rng.uniform(0.3, 0.6) * height
    poly = BRepBuilderAPI_MakePolygon()
    for x, z in ((0, 0), (length, 0), (length, h), (a, h), (a, height), (0, height)):
        poly.Add(gp_Pnt(float(x), 0.0, float(z)))
    poly.Close()
    face = BRepBuilderAPI_MakeFace(poly.Wire()).Face()
    solid = BRepPrimAPI_MakePrism(face, gp_Vec(0.0, float(width), 0.0)).Shape()
    o = np.zeros(3)
    sides = [
        Side(np.array([a, 0, h]), _Z, _X, _Y, length - a, width, h, frozenset({"s1", "t0", "t1"})),
        Side(np.array([0, 0, height]), _Z, _X, _Y, a, width, height),
        Side(o, -_Z, _X, _Y, length, width, h),
        Side(np.array([length, 0, 0]), _X, _Y, _Z, width, h, length - a),
        Side(o, -_X, _Y, _Z, width, height, a),
        Side(np.array([a, 0, h]), _X, _Y, _Z, width, height - h, a,
             frozenset({"s0", "s1", "t1"})),
        Side(o, -_Y, _X, _Z, length, h, width, frozenset({"s0", "s1", "t0"})),
        Side(np.array([0, width, 0]), _Y, _X, _Z, length, h, width,
             frozenset({"s0", "s1", "t0"})),
    ]
    return Stock(solid, sides, np.zeros(3), np.array([length, width, height]))


# ---------------------------------------------------------------------------- tools


def _local_box(side: Side, s: tuple, t: tuple, d: tuple) -> tuple[TopoDS_Shape, np.ndarray]:
    corners = np.array([side.world(a, b, c) for a in s for b in t for c in d])
    lo, hi = corners.min(0), corners.max(0)
    return BRepPrimAPI_MakeBox(_pnt(lo), _pnt(hi)).Shape(), np.stack([lo, hi])


def _local_cylinder(side: Side, s: float, t: float, r: float,
                    d: tuple) -> tuple[TopoDS_Shape, np.ndarray]:
    base = side.world(s, t, d[0])
    axis = gp_Ax2(_pnt(base), gp_Dir(*map(float, -side.n)))
    tool = BRepPrimAPI_MakeCylinder(axis, float(r), float(d[1] - d[0])).Shape()
    corners = np.array([side.world(a, b, c) for a in (s - r, s + r) for b in (t - r, t + r)
                        for c in d])
    return tool, np.stack([corners.min(0), corners.max(0)])


def _free(box: np.ndarray, boxes: list[np.ndarray], gap: float) -> bool:
    return all(np.any(box[0] > b[1] + gap) or np.any(box[1] < b[0] - gap) for b in boxes)


def plan_feature(kind: str, rng: np.random.Generator, stock: Stock, solid: TopoDS_Shape,
                 labels: list[int], boxes: list[np.ndarray]) -> Operation | None:
    """Place one feature where it overlaps no earlier one; None when no spot is found.

    On success the feature's bounding box is appended to ``boxes``.
    """
    gap = 0.03 * stock.size
    for _ in range(8):
        if kind in ("fillet", "chamfer"):
            planned = _plan_edge_feature(rng, stock, solid, labels)
        else:
            side = stock.sides[int(rng.integers(len(stock.sides)))]
            planned = _plan_side_feature(kind, rng, stock, side)
        if planned is None:
            continue
        op, box = planned
        clip = box if kind == "boss" else np.stack([np.maximum(box[0], stock.lo),
                                                    np.minimum(box[1], stock.hi)])
        if _free(clip, boxes, gap):
            boxes.append(clip)
            return op
    return None


def _plan_side_feature(kind: str, rng: np.random.Generator, stock: Stock,
                       side: Side) -> tuple[Operation, np.ndarray] | None:
    m = min(side.su, side.sv)
    margin, big = 0.1 * m, stock.big
    over = 0.05 * stock.size  # overshoot above the side so no tool face is coplanar
    depth = rng.uniform(0.2, 0.5) * side.depth
    if kind in ("through_hole", "blind_hole", "boss"):
        r = rng.uniform(0.06, 0.15 if kind != "boss" else 0.2) * m
        if min(side.su, side.sv) < 2 * (r + margin):
            return None
        s = rng.uniform(r + margin, side.su - r - margin)
        t = rng.uniform(r + margin, side.sv - r - margin)
        if kind == "through_hole":
            d = (-big, big)
        elif kind == "blind_hole":
            d = (-over, rng.uniform(0.25, 0.6) * side.depth)
        else:  # boss: sits on the side, its foot sunk a little into the material
            d = (-rng.uniform(0.1, 0.35) * side.depth, 0.02 * side.depth)
        if kind == "boss" and rng.random() < 0.5:
            tool, box = _local_box(side, (s - r, s + r), (t - r, t + r), d)
        else:
            tool, box = _local_cylinder(side, s, t, r, d)
        return Operation(tool), box
    if kind == "pocket":
        wu, wv = rng.uniform(0.2, 0.5) * side.su, rng.uniform(0.2, 0.5) * side.sv
        s = rng.uniform(margin, side.su - wu - margin)
        t = rng.uniform(margin, side.sv - wv - margin)
        return _cut(side, (s, s + wu), (t, t + wv), (-over, depth))
    if kind == "slot":
        along_u = rng.random() < 0.5
        need = {"s0", "s1"} if along_u else {"t0", "t1"}
        if not need <= side.open:
            along_u = not along_u
            need = {"s0", "s1"} if along_u else {"t0", "t1"}
            if not need <= side.open:
                return None
        cross = side.sv if along_u else side.su
        w = rng.uniform(0.12, 0.3) * cross
        c = rng.uniform(margin, cross - w - margin)
        run = (-big, (side.su if along_u else side.sv) + big)
        s, t = (run, (c, c + w)) if along_u else ((c, c + w), run)
        return _cut(side, s, t, (-over, depth))
    if kind == "step":
        edge = sorted(side.open)[int(rng.integers(len(side.open)))]
        size = side.su if edge[0] == "s" else side.sv
        w = rng.uniform(0.12, 0.3) * size
        across = (-big, w) if edge[1] == "0" else (size - w, size + big)
        run = (-big, (side.sv if edge[0] == "s" else side.su) + big)
        s, t = (across, run) if edge[0] == "s" else (run, across)
        return _cut(side, s, t, (-big, depth))
    raise ValueError(f"unknown feature kind {kind!r}")


def _cut(side: Side, s: tuple, t: tuple, d: tuple) -> tuple[Operation, np.ndarray]:
    tool, box = _local_box(side, s, t, d)
    return Operation(tool), box


def _plan_edge_feature(rng: np.random.Generator, stock: Stock, solid: TopoDS_Shape,
                       labels: list[int]) -> tuple[Operation, np.ndarray] | None:
    size = rng.uniform(0.04, 0.12) * stock.size
    index = _occ.ShapeIndex(solid, TopAbs_FACE)
    candidates = []
    for edge, around in _occ.edge_faces(solid, index):
        if len(around) != 2 or labels[around[0]] != 0 or labels[around[1]] != 0:
            continue  # only sharp edges between two stock faces
        curve = BRepAdaptor_Curve(edge)
        if curve.GetType() != GeomAbs_CurveType.GeomAbs_Line:
            continue
        if GCPnts_AbscissaPoint.Length_s(curve) > 4 * size:
            candidates.append(edge)
    if not candidates:
        return None
    edge = candidates[int(rng.integers(len(candidates)))]
    bnd = Bnd_Box()
    BRepBndLib.Add_s(edge, bnd)
    lo, hi = bnd.CornerMin(), bnd.CornerMax()
    box = np.array([[lo.X(), lo.Y(), lo.Z()], [hi.X(), hi.Y(), hi.Z()]])
    box += np.array([[-2 * size], [2 * size]])
    return Operation(None, [edge], size), box
