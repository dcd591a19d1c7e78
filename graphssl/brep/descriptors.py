"""Whole-part descriptors of a B-rep solid: the CAD analogue of RDKit's molecular descriptors.

With ``data.descriptors: brep`` every part graph gets ``descriptors``, float32 ``[1, D]`` in the
order of :data:`BREP_DESCRIPTORS`, computed from the solid when the part is featurised.
Geometric values are in the part's normalised units (the unit box of
:mod:`graphssl.brep.adapter`: largest bounding-box side 1, box centre at the origin), the
units the graph's own features use, so they can be predicted from the graph:

- ``volume``, ``area`` (sum of the face areas);
- ``extent_x/y/z``: sides of the exact axis-aligned bounding box (the largest is 1);
- ``center_x/y/z``: centre of mass (uniform density), relative to the box centre;
- ``inertia_1..3``: principal moments of inertia about the centre of mass, ascending;
- counts: ``faces``, ``edges`` (without degenerated ones such as a cone's apex), ``vertices``,
  ``inner_loops`` (wires beyond each face's outer one: holes in faces), ``shells``;
- ``genus``: through-holes, from the Euler-Poincare formula
  ``V - E + F - (L - F) = 2 (S - G)`` (L loops, S shells);
- ``faces_<type>``: faces per surface type (plane, cylinder, ...; the adapter's types).
"""

from __future__ import annotations

import numpy as np

__all__ = ["BREP_DESCRIPTORS", "BREP_SET", "solid_descriptors"]

BREP_SET = "brep"  # the value of data.descriptors (and objective descriptors) for CAD parts

# Kept in step with graphssl.brep.adapter.SURFACE_TYPES (not imported: that module needs
# OpenCascade, and the objective sizes its head without it); a test checks they agree.
_SURFACE_TYPES = ("plane", "cylinder", "cone", "sphere", "torus", "bezier", "bspline",
                  "revolution", "extrusion", "offset", "other")

BREP_DESCRIPTORS: tuple[str, ...] = (
    "volume", "area", "extent_x", "extent_y", "extent_z", "center_x", "center_y", "center_z",
    "inertia_1", "inertia_2", "inertia_3", "faces", "edges", "vertices", "inner_loops", "shells", "genus",
    *(f"faces_{t}" for t in _SURFACE_TYPES),
)


def solid_descriptors(solid, center: np.ndarray, scale: float, extents: np.ndarray, surface_types: np.ndarray,
                      face_areas: np.ndarray) -> np.ndarray:
    """:data:`BREP_DESCRIPTORS` of ``solid``, float64, in normalised units (``center`` and
    ``scale`` as the adapter normalises: ``(p - center) * scale``). ``extents`` (the exact
    bounding box's sides), ``surface_types`` and ``face_areas`` are what the adapter has
    already computed, in model units; a value the kernel cannot give is NaN."""
    from OCP.BRep import BRep_Tool
    from OCP.BRepGProp import BRepGProp
    from OCP.GProp import GProp_GProps
    from OCP.TopAbs import TopAbs_EDGE, TopAbs_SHELL, TopAbs_VERTEX, TopAbs_WIRE

    from graphssl.brep import _occ

    out = np.full(len(BREP_DESCRIPTORS), np.nan)
    at = {name: k for k, name in enumerate(BREP_DESCRIPTORS)}

    props = GProp_GProps()
    BRepGProp.VolumeProperties_s(solid, props)
    out[at["volume"]] = props.Mass() * scale**3
    out[at["area"]] = float(np.sum(face_areas)) * scale**2
    com = props.CentreOfMass()
    out[[at["center_x"], at["center_y"], at["center_z"]]] = (np.array([com.X(), com.Y(), com.Z()]) - center) * scale
    matrix = props.MatrixOfInertia()  # about the centre of mass, for density 1
    inertia = np.array([[matrix.Value(i, j) for j in (1, 2, 3)] for i in (1, 2, 3)])
    # mass scales with length^3 and squared distances with length^2
    out[[at["inertia_1"], at["inertia_2"], at["inertia_3"]]] = np.linalg.eigvalsh(inertia) * scale**5

    out[[at["extent_x"], at["extent_y"], at["extent_z"]]] = np.asarray(extents, dtype=np.float64) * scale

    edges = _occ.ShapeIndex(solid, TopAbs_EDGE)
    n_edges = sum(not BRep_Tool.Degenerated_s(_occ.as_edge(edges[i])) for i in range(len(edges)))
    n_faces = len(surface_types)
    n_vertices = len(_occ.ShapeIndex(solid, TopAbs_VERTEX))
    n_loops = len(_occ.ShapeIndex(solid, TopAbs_WIRE))
    n_shells = len(_occ.ShapeIndex(solid, TopAbs_SHELL))
    euler = n_vertices - n_edges + n_faces - (n_loops - n_faces)
    out[at["faces"]], out[at["edges"]], out[at["vertices"]] = n_faces, n_edges, n_vertices
    out[at["inner_loops"]], out[at["shells"]] = n_loops - n_faces, n_shells
    out[at["genus"]] = n_shells - euler / 2
    counts = np.bincount(np.asarray(surface_types, dtype=np.int64), minlength=len(_SURFACE_TYPES))
    out[at["faces_plane"]:at["faces_plane"] + len(_SURFACE_TYPES)] = counts[:len(_SURFACE_TYPES)]
    out[~np.isfinite(out)] = np.nan
    return out
