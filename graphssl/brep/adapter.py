"""Turn STEP files and OCP solids into face-adjacency graphs, one ``Data`` per solid.

Each part is first scaled into a unit box: the centre of its exact bounding box goes to
the origin and the largest box side becomes 1. All coordinates, areas and lengths below
are in these normalised units; ``norm_center`` and ``norm_scale`` undo it
(``original = normalised / norm_scale + norm_center``).

Nodes are B-rep faces, numbered in ``TopExp.MapShapes_s`` order (the generator's
``.labels`` files use the same order):

- ``x``           long  [F, 1]   surface type, index into :data:`SURFACE_TYPES`
- ``face_area``   float [F, 1]   face area
- ``face_grid``   float [F, 7, g, g]  a g x g grid sampled uniformly in the face's UV box
  (``BRepTools.UVBounds_s``); ``face_grid[f, :, i, j]`` is taken at (u_i, v_j), with u
  running backwards on ``TopAbs_REVERSED`` faces (so u, v and the outward normal form a
  right-handed frame, whichever way the surface is parametrised); channels
  0-2 point xyz, 3-5 unit outward normal (flipped for ``TopAbs_REVERSED`` faces),
  6 trimming mask (1 where ``BRepClass_FaceClassifier`` puts the UV point inside or on
  the face, 0 in the parts of the UV box the face's boundary trims away)

Edges are B-rep edges with two distinct adjacent faces, sorted by face pair and then by
midpoint (so the order survives STEP export and import). B-rep edge ``k`` between faces
``a < b`` is stored as graph edges ``2k`` (a -> b) and ``2k + 1`` (b -> a). Seam edges
(both sides on the same face, e.g. the seam of a full cylinder) and degenerated edges
(``BRep_Tool.Degenerated_s``, e.g. a cone apex) give no graph edge.

- ``edge_index``  long  [2, 2E]
- ``edge_attr``   long  [2E, 2]  curve type (index into :data:`CURVE_TYPES`) and
  convexity (index into :data:`CONVEXITY`); the same for both directions
- ``edge_length`` float [2E, 1]  curve length
- ``edge_grid``   float [2E, 6, g]  g points uniform in the curve parameter: xyz (0-2),
  unit tangent (3-5). For src -> dst the curve runs as it is oriented in the source face
  (the face lies on its left seen from outside), so the reverse direction is the same
  grid backwards with negated tangents.

Convexity at the edge midpoint, with outward normals ``n_src``, ``n_dst`` and tangent
``t`` oriented as above: ``smooth`` if the normals differ by less than
:data:`SMOOTH_ANGLE_DEG`, else ``convex`` when ``(n_src x n_dst) . t > 0``, else ``concave``.

Also set: ``num_nodes`` and ``name`` (the file stem and solid number, or the argument); with
``descriptors=True``, ``descriptors`` float [1, D] (whole-part values, see
:mod:`graphssl.brep.descriptors`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

try:  # the CAD extra is optional; say how to get it instead of a bare ModuleNotFoundError
    import OCP  # noqa: F401
except ImportError as exc:
    raise ImportError(f"{__name__} needs the OpenCascade bindings: "
                      "pip install 'graphssl-pretrain[cad]'") from exc
import torch
from OCP.Bnd import Bnd_Box
from OCP.BRep import BRep_Tool
from OCP.BRepAdaptor import BRepAdaptor_Curve, BRepAdaptor_Curve2d, BRepAdaptor_Surface
from OCP.BRepBndLib import BRepBndLib
from OCP.BRepCheck import BRepCheck_Analyzer
from OCP.BRepClass import BRepClass_FaceClassifier
from OCP.BRepGProp import BRepGProp
from OCP.BRepLProp import BRepLProp_SLProps
from OCP.BRepTools import BRepTools
from OCP.GCPnts import GCPnts_AbscissaPoint
from OCP.GeomAbs import GeomAbs_CurveType as _C
from OCP.GeomAbs import GeomAbs_SurfaceType as _S
from OCP.gp import gp_Pnt, gp_Pnt2d, gp_Vec
from OCP.GProp import GProp_GProps
from OCP.IFSelect import IFSelect_RetDone
from OCP.STEPControl import STEPControl_Reader
from OCP.TopAbs import (
    TopAbs_EDGE,
    TopAbs_FACE,
    TopAbs_IN,
    TopAbs_ON,
    TopAbs_REVERSED,
    TopAbs_SOLID,
)
from OCP.TopExp import TopExp_Explorer
from OCP.TopoDS import TopoDS_Face, TopoDS_Shape, TopoDS_Solid
from torch_geometric.data import Data

from graphssl.brep import _occ
from graphssl.brep.descriptors import solid_descriptors
from graphssl.core.errors import DataError

__all__ = [
    "CONVEXITY",
    "CURVE_TYPES",
    "SMOOTH_ANGLE_DEG",
    "SURFACE_TYPES",
    "read_step",
    "solid_to_data",
    "step_to_graphs",
]

SURFACE_TYPES = ("plane", "cylinder", "cone", "sphere", "torus", "bezier", "bspline",
                 "revolution", "extrusion", "offset", "other")
CURVE_TYPES = ("line", "circle", "ellipse", "hyperbola", "parabola", "bezier", "bspline",
               "offset", "other")
CONVEXITY = ("concave", "convex", "smooth")
SMOOTH_ANGLE_DEG = 1.0

_SURFACE_CODE = {t: i for i, t in enumerate((
    _S.GeomAbs_Plane, _S.GeomAbs_Cylinder, _S.GeomAbs_Cone, _S.GeomAbs_Sphere,
    _S.GeomAbs_Torus, _S.GeomAbs_BezierSurface, _S.GeomAbs_BSplineSurface,
    _S.GeomAbs_SurfaceOfRevolution, _S.GeomAbs_SurfaceOfExtrusion, _S.GeomAbs_OffsetSurface,
))}
_CURVE_CODE = {t: i for i, t in enumerate((
    _C.GeomAbs_Line, _C.GeomAbs_Circle, _C.GeomAbs_Ellipse, _C.GeomAbs_Hyperbola,
    _C.GeomAbs_Parabola, _C.GeomAbs_BezierCurve, _C.GeomAbs_BSplineCurve, _C.GeomAbs_OffsetCurve,
))}
# Tolerance in the face's parameter space for the inside/outside test: tight, so that a
# point counted "on" the boundary is within ~1e-7 model units of the face.
_CLASSIFY_TOL = 1e-7
_STEP_MAGIC = b"ISO-10303-21"


# ------------------------------------------------------------------------------ STEP


def transfer_step(path: str | os.PathLike) -> STEPControl_Reader:
    """A STEP reader that has read ``path`` and transferred its roots, after checking that the
    file exists, is not empty, is STEP and was read completely (each a :class:`DataError`
    naming the file). Its transfer maps shapes back to the file's entities."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"STEP file {str(path)!r} does not exist (or is not a file)")
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if not head.strip():
        raise DataError(f"STEP file {str(path)!r} is empty")
    if _STEP_MAGIC not in head.lstrip()[:64]:
        raise DataError(
            f"{str(path)!r} is not a STEP file: it does not start with the "
            f"'ISO-10303-21;' header (got {head.lstrip()[:40]!r})")
    reader = STEPControl_Reader()
    with _occ.quiet():
        status = reader.ReadFile(str(path))
        # TransferRoots after a failed read crashes the interpreter; never call it then.
        if status != IFSelect_RetDone:
            raise DataError(
                f"STEP file {str(path)!r} is truncated or unreadable "
                f"(reader status {status.name}); re-export or re-download it")
        reader.TransferRoots()
    return reader


def read_step(path: str | os.PathLike) -> list[TopoDS_Solid]:
    """Every solid in a STEP file (assemblies and multi-solid files give several)."""
    reader = transfer_step(path)
    found = [_occ.solids(reader.Shape(i)) for i in range(1, reader.NbShapes() + 1)]
    result = [s for group in found for s in group]
    if not result:
        raise DataError(
            f"STEP file {str(path)!r} transferred no solid ({reader.NbShapes()} shapes); "
            "it may be truncated, or hold only surfaces/wireframe")
    return result


def step_to_graphs(path: str | os.PathLike, *, grid: int = 10, descriptors: bool = False) -> list[Data]:
    """One graph per solid of a STEP file (see the module docstring for the fields)."""
    solids = read_step(path)
    stem = Path(path).stem
    names = [stem] if len(solids) == 1 else [f"{stem}#{i}" for i in range(len(solids))]
    return [solid_to_data(s, grid=grid, name=n, source=str(path), descriptors=descriptors)
            for s, n in zip(solids, names)]


# ----------------------------------------------------------------------------- graph


def solid_to_data(solid: TopoDS_Shape, *, grid: int = 10, name: str | None = None,
                  source: str | None = None, descriptors: bool = False) -> Data:
    """The face-adjacency graph of one solid (fields in the module docstring).

    ``source`` only names the file in error messages. ``descriptors`` adds the whole-part
    descriptors of :mod:`graphssl.brep.descriptors` as ``descriptors``, float32 ``[1, D]``.
    """
    where = f"solid {name!r}" if name else "solid"
    if source:
        where += f" of {source!r}"
    if grid < 2:
        raise DataError(f"grid must be at least 2 samples per side, got {grid}")
    if solid.ShapeType() != TopAbs_SOLID:
        inner = _occ.solids(solid)
        if len(inner) != 1:
            raise DataError(f"{where}: expected one solid, got a {solid.ShapeType().name} "
                            f"holding {len(inner)} solids; split it with read_step first")
        solid = inner[0]
    face_idx = _occ.ShapeIndex(solid, TopAbs_FACE)
    n_faces = len(face_idx)
    if n_faces == 0:
        raise DataError(f"{where} has no faces")
    adjacency = _occ.edge_faces(solid, face_idx)
    for k, (_, around) in enumerate(adjacency):
        if len(around) > 2:
            raise DataError(f"{where} is non-manifold: B-rep edge {k} is shared by "
                            f"{len(around)} faces {around}; graphs need at most 2 per edge")
    if not BRepCheck_Analyzer(solid).IsValid():
        raise DataError(f"{where} fails BRepCheck_Analyzer (invalid topology or geometry); "
                        "repair it (e.g. ShapeFix) before converting")
    center, scale, extents = _normaliser(solid, where)
    faces = [_occ.as_face(face_idx[i]) for i in range(n_faces)]

    surf_type = np.zeros(n_faces, dtype=np.int64)
    area = np.zeros(n_faces)
    face_grid = np.zeros((n_faces, 7, grid, grid))
    for i, face in enumerate(faces):
        surf_type[i], area[i] = _face_type_area(face)
        face_grid[i] = _face_grid(face, grid)
    face_grid[:, :3] = (face_grid[:, :3] - center[:, None, None]) * scale

    src, dst, attrs, lengths, grids = [], [], [], [], []
    edge_idx = _occ.ShapeIndex(solid, TopAbs_EDGE)
    coedge_sense = [_coedge_senses(face, edge_idx) for face in faces]
    kept = []
    for edge, around in adjacency:
        if len(around) != 2 or BRep_Tool.Degenerated_s(edge):
            continue  # seam (one face on both sides) or degenerated: no neighbour pair
        curve = BRepAdaptor_Curve(edge)
        forward = coedge_sense[around[0]].get(edge_idx.index(edge), True)
        pts = _curve_grid(curve, grid, forward)
        pts[:3] = (pts[:3] - center[:, None]) * scale
        kept.append((around, edge, curve, forward, pts))
    # The kernel's edge order follows wire start points, which STEP import may change;
    # sort by face pair, then by midpoint, so the graph does not depend on it.
    kept.sort(key=lambda k: (k[0], *np.round(k[4][:3, grid // 2], 6)))
    for (a, b), edge, curve, forward, pts in kept:
        kind = _CURVE_CODE.get(curve.GetType(), len(CURVE_TYPES) - 1)
        convex = _convexity(edge, curve, faces[a], faces[b], forward)
        length = GCPnts_AbscissaPoint.Length_s(curve) * scale
        back = pts[:, ::-1].copy()
        back[3:] *= -1
        src += [a, b]
        dst += [b, a]
        attrs += [(kind, convex)] * 2
        lengths += [length] * 2
        grids += [pts, back]

    n_dir = len(src)
    data = Data(
        x=torch.from_numpy(surf_type).view(-1, 1),
        face_area=torch.from_numpy(area * scale**2).float().view(-1, 1),
        face_grid=torch.from_numpy(face_grid).float(),
        edge_index=torch.tensor([src, dst], dtype=torch.long).view(2, n_dir),
        edge_attr=torch.tensor(attrs, dtype=torch.long).view(n_dir, 2),
        edge_length=torch.tensor(lengths, dtype=torch.float).view(n_dir, 1),
        edge_grid=torch.from_numpy(np.stack(grids) if grids else np.zeros((0, 6, grid))).float(),
        norm_center=torch.tensor(center, dtype=torch.float).view(1, 3),
        norm_scale=torch.tensor([scale], dtype=torch.float),
        num_nodes=n_faces,
    )
    if descriptors:
        values = solid_descriptors(solid, center, scale, extents, surf_type, area)
        data.descriptors = torch.from_numpy(values).float().view(1, -1)
    if name is not None:
        data.name = name
    return data


# ------------------------------------------------------------------------ internals


def _normaliser(solid: TopoDS_Shape, where: str) -> tuple[np.ndarray, float, np.ndarray]:
    """Centre and scale of the unit box, and the sides of the exact box (model units)."""
    box = Bnd_Box()
    # Exact box (not triangulation, no tolerance padding): the unit box must not depend
    # on whether the shape was meshed before.
    BRepBndLib.AddOptimal_s(solid, box, False, False)
    if box.IsVoid():
        raise DataError(f"{where} has an empty bounding box")
    # Bnd_Box.Get() returns a struct that OCP 8.0 does not bind; the corners work in both.
    lo, hi = box.CornerMin(), box.CornerMax()
    lo, hi = np.array([lo.X(), lo.Y(), lo.Z()]), np.array([hi.X(), hi.Y(), hi.Z()])
    side = float((hi - lo).max())
    if not side > 0:
        raise DataError(f"{where} has zero size")
    center = (lo + hi) / 2
    return center, 1.0 / side, hi - lo


def _face_type_area(face: TopoDS_Face) -> tuple[int, float]:
    surf = BRepAdaptor_Surface(face, False)
    props = GProp_GProps()
    BRepGProp.SurfaceProperties_s(face, props)
    return _SURFACE_CODE.get(surf.GetType(), len(SURFACE_TYPES) - 1), props.Mass()


def _face_grid(face: TopoDS_Face, grid: int) -> np.ndarray:
    """[7, grid, grid]: point, outward unit normal and inside mask over the UV box."""
    surf = BRepAdaptor_Surface(face, True)
    props = BRepLProp_SLProps(surf, 1, 1e-9)
    classifier = BRepClass_FaceClassifier()
    u0, u1, v0, v1 = BRepTools.UVBounds_s(face)
    reversed_ = face.Orientation() == TopAbs_REVERSED
    sign = -1.0 if reversed_ else 1.0
    # u runs backwards on reversed faces so (du, dv, outward normal) is right-handed;
    # STEP export can swap a face's sense by reversing its surface in u, and this keeps
    # the grid unchanged when it does.
    us = np.linspace(u1, u0, grid) if reversed_ else np.linspace(u0, u1, grid)
    vs = np.linspace(v0, v1, grid)
    # Nudge towards the box centre where the normal is undefined (poles, apices).
    du, dv = 1e-6 * (us[-1] - us[0]), 1e-6 * (v1 - v0)
    out = np.zeros((7, grid, grid))
    uv = gp_Pnt2d()
    for i, u in enumerate(us):
        for j, v in enumerate(vs):
            props.SetParameters(u, v)
            if not props.IsNormalDefined():
                props.SetParameters(u + (du if i < grid / 2 else -du),
                                    v + (dv if j < grid / 2 else -dv))
            p = surf.Value(u, v)
            out[0:3, i, j] = p.X(), p.Y(), p.Z()
            if props.IsNormalDefined():
                n = props.Normal()
                out[3:6, i, j] = sign * n.X(), sign * n.Y(), sign * n.Z()
            uv.SetCoord(u, v)
            classifier.Perform(face, uv, _CLASSIFY_TOL)
            out[6, i, j] = classifier.State() in (TopAbs_IN, TopAbs_ON)
    return out


def _coedge_senses(face: TopoDS_Face, edge_idx: _occ.ShapeIndex) -> dict[int, bool]:
    """For each edge of the face: does it run forward in the face's (outward) loop?"""
    senses = {}
    exp = TopExp_Explorer(face, TopAbs_EDGE)
    while exp.More():
        e = exp.Current()
        # The explorer composes the face's orientation in, so for the outward normal the
        # face always lies to the left of the oriented edge.
        senses.setdefault(edge_idx.index(e), e.Orientation() != TopAbs_REVERSED)
        exp.Next()
    return senses


def _curve_grid(curve: BRepAdaptor_Curve, grid: int, forward: bool) -> np.ndarray:
    t0, t1 = curve.FirstParameter(), curve.LastParameter()
    ts = np.linspace(t0, t1, grid) if forward else np.linspace(t1, t0, grid)
    sign = 1.0 if forward else -1.0
    out = np.zeros((6, grid))
    p, d = gp_Pnt(), gp_Vec()
    for k, t in enumerate(ts):
        curve.D1(t, p, d)
        norm = d.Magnitude() or 1.0
        out[:, k] = (p.X(), p.Y(), p.Z(),
                     sign * d.X() / norm, sign * d.Y() / norm, sign * d.Z() / norm)
    return out


def _outward_normal(face: TopoDS_Face, edge, t: float) -> np.ndarray:
    uv = BRepAdaptor_Curve2d(edge, face).Value(t)
    props = BRepLProp_SLProps(BRepAdaptor_Surface(face, True), uv.X(), uv.Y(), 1, 1e-9)
    if not props.IsNormalDefined():
        return np.zeros(3)
    n = props.Normal()
    sign = -1.0 if face.Orientation() == TopAbs_REVERSED else 1.0
    return sign * np.array([n.X(), n.Y(), n.Z()])


def _convexity(edge, curve: BRepAdaptor_Curve, fa: TopoDS_Face, fb: TopoDS_Face,
               forward: bool) -> int:
    t = 0.5 * (curve.FirstParameter() + curve.LastParameter())
    p, d = gp_Pnt(), gp_Vec()
    curve.D1(t, p, d)
    tangent = np.array([d.X(), d.Y(), d.Z()]) * (1.0 if forward else -1.0)
    na, nb = _outward_normal(fa, edge, t), _outward_normal(fb, edge, t)
    cross = np.cross(na, nb)
    angle = math.atan2(np.linalg.norm(cross), float(na @ nb))
    if angle < math.radians(SMOOTH_ANGLE_DEG):
        return CONVEXITY.index("smooth")
    return CONVEXITY.index("convex" if cross @ tangent > 0 else "concave")
