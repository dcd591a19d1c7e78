"""B-rep adapter (STEP -> face-adjacency graph) and the labelled part generator."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("OCP")

from OCP.BRep import BRep_Tool  # noqa: E402
from OCP.BRepAdaptor import BRepAdaptor_Curve  # noqa: E402
from OCP.BRepAlgoAPI import BRepAlgoAPI_Cut, BRepAlgoAPI_Fuse  # noqa: E402
from OCP.BRepBuilderAPI import BRepBuilderAPI_MakeVertex  # noqa: E402
from OCP.BRepExtrema import BRepExtrema_DistShapeShape  # noqa: E402
from OCP.BRepPrimAPI import BRepPrimAPI_MakeBox, BRepPrimAPI_MakeCylinder  # noqa: E402
from OCP.collections import (  # noqa: E402
    IndexedDataMap_TopoDS_Shape_List_TopoDS_Shape_TopTools_ShapeMapHasher as AncestorMap,
)
from OCP.collections import (  # noqa: E402
    IndexedMap_TopoDS_Shape_TopTools_ShapeMapHasher as ShapeMap,
)
from OCP.GeomAbs import GeomAbs_CurveType  # noqa: E402
from OCP.gp import gp_Ax2, gp_Dir, gp_Pnt  # noqa: E402
from OCP.TopAbs import TopAbs_EDGE, TopAbs_FACE  # noqa: E402
from OCP.TopExp import TopExp  # noqa: E402
from OCP.TopoDS import TopoDS  # noqa: E402
from torch_geometric.data import Batch  # noqa: E402

from graphssl.brep import generate as gen  # noqa: E402
from graphssl.brep.adapter import (  # noqa: E402
    CONVEXITY,
    CURVE_TYPES,
    SURFACE_TYPES,
    read_step,
    solid_to_data,
    step_to_graphs,
)
from graphssl.brep.generate import (  # noqa: E402
    FEATURE_CLASSES,
    apply_feature,
    generate_dataset,
    generate_part,
    part_seed,
    write_step,
)
from graphssl.core.errors import DataError  # noqa: E402

CONVEX, CONCAVE, SMOOTH = (CONVEXITY.index(c) for c in ("convex", "concave", "smooth"))


# ----------------------------------------------------------------- kernel-side truth


def kernel_counts(shape) -> tuple[int, int, set[tuple[int, int]]]:
    """Faces, edges with two distinct faces, and adjacent face pairs, straight from OCP."""
    fmap = ShapeMap()
    TopExp.MapShapes_s(shape, TopAbs_FACE, fmap)
    amap = AncestorMap()
    TopExp.MapShapesAndAncestors_s(shape, TopAbs_EDGE, TopAbs_FACE, amap)
    n_edges, pairs = 0, set()
    for i in range(1, amap.Size() + 1):
        edge = TopoDS.Edge(amap.FindKey(i))
        around = sorted({fmap.FindIndex(f) - 1 for f in amap.FindFromIndex(i)})
        if len(around) == 2 and not BRep_Tool.Degenerated_s(edge):
            n_edges += 1
            pairs.add(tuple(around))
    return fmap.Size(), n_edges, pairs


def graph_pairs(data) -> set[tuple[int, int]]:
    src, dst = data.edge_index.tolist()
    return {(min(a, b), max(a, b)) for a, b in zip(src, dst)}


def box(x=40.0, y=30.0, z=20.0):
    return BRepPrimAPI_MakeBox(x, y, z).Shape()


def z_cylinder(cx, cy, z0, r, h):
    return BRepPrimAPI_MakeCylinder(gp_Ax2(gp_Pnt(cx, cy, z0), gp_Dir(0, 0, 1)), r, h).Shape()


def labelled_box():
    solid = box()
    return solid, [0] * 6


def names(labels) -> list[str]:
    return [FEATURE_CLASSES[i] for i in labels]


@pytest.fixture(scope="module")
def parts():
    return [generate_part(part_seed(7, i, 0)) for i in range(4)]


# --------------------------------------------------------------------------- graphs


def test_box_graph():
    data = solid_to_data(box())
    assert data.num_nodes == 6 and data.x.shape == (6, 1) and data.x.dtype == torch.long
    assert (data.x == SURFACE_TYPES.index("plane")).all()
    assert data.edge_index.shape == (2, 24)
    assert data.face_grid.shape == (6, 7, 10, 10) and data.edge_grid.shape == (24, 6, 10)
    assert data.edge_attr.shape == (24, 2) and data.edge_attr.dtype == torch.long
    degree = torch.bincount(data.edge_index[0], minlength=6)
    assert degree.tolist() == [4] * 6
    assert len(graph_pairs(data)) == 12
    assert (data.edge_attr[:, 0] == CURVE_TYPES.index("line")).all()
    assert (data.edge_attr[:, 1] == CONVEX).all()
    # unit box: largest side 1, centred; face areas 40x30 / 40^2 etc.
    pts = data.face_grid[:, :3].permute(1, 0, 2, 3).reshape(3, -1)
    assert torch.allclose(pts.amax(1), torch.tensor([0.5, 0.375, 0.25]), atol=1e-6)
    assert torch.allclose(pts.amin(1), -torch.tensor([0.5, 0.375, 0.25]), atol=1e-6)
    assert sorted(data.face_area.view(-1).tolist()) == pytest.approx(
        sorted([30 * 20 / 1600, 30 * 20 / 1600, 40 * 20 / 1600, 40 * 20 / 1600,
                40 * 30 / 1600, 40 * 30 / 1600]), rel=1e-6)
    assert sorted(data.edge_length.view(-1).tolist()) == pytest.approx(
        [0.5] * 8 + [0.75] * 8 + [1.0] * 8, rel=1e-6)
    # every outward normal points away from the centre of the box
    for f in range(6):
        p = data.face_grid[f, :3, 5, 5]
        n = data.face_grid[f, 3:6, 5, 5]
        assert float(p @ n) > 0


def test_box_with_through_hole_matches_kernel():
    solid = BRepAlgoAPI_Cut(box(), z_cylinder(20, 15, -5, 6, 30)).Shape()
    n_faces, n_edges, pairs = kernel_counts(solid)
    assert n_faces in (7, 8)  # OCP 8.0 keeps the hole as one face with a seam
    [data] = [solid_to_data(s) for s in read_solids(solid)]
    assert data.num_nodes == n_faces
    assert data.edge_index.shape[1] == 2 * n_edges
    assert graph_pairs(data) == pairs
    cyl = (data.x.view(-1) == SURFACE_TYPES.index("cylinder")).nonzero().view(-1)
    assert len(cyl) == n_faces - 6
    # the hole's rims are convex circles; the top and bottom faces are trimmed by it
    rim = (data.edge_attr[:, 0] == CURVE_TYPES.index("circle"))
    assert rim.sum() == 4 and (data.edge_attr[rim, 1] == CONVEX).all()
    holed = (data.face_grid[:, 6] == 0).flatten(1).any(1)
    assert holed.sum() == 2


def read_solids(shape):
    from graphssl.brep import _occ

    return _occ.solids(shape)


def test_convexity_concave_and_smooth():
    # blind hole: the bottom rim is concave; a fillet meets its faces smoothly
    solid, labels = apply_feature(*labelled_box(), "blind_hole", z_cylinder(20, 15, 10, 5, 20))
    data = solid_to_data(solid, grid=4)
    circles = data.edge_attr[:, 0] == CURVE_TYPES.index("circle")
    assert sorted(data.edge_attr[circles, 1].tolist()) == [CONCAVE] * 2 + [CONVEX] * 2
    edge = longest_line_edge(solid)
    solid, labels = apply_feature(solid, labels, "fillet", edges=[edge], size=3.0)
    data = solid_to_data(solid, grid=4)
    fillet = labels.index(FEATURE_CLASSES.index("fillet"))
    touching = (data.edge_index[0] == fillet)
    assert touching.sum() == 4
    assert (data.edge_attr[touching, 1] == SMOOTH).sum() == 2


def longest_line_edge(solid):
    emap = ShapeMap()
    TopExp.MapShapes_s(solid, TopAbs_EDGE, emap)
    edges = [TopoDS.Edge(emap.FindKey(i)) for i in range(1, emap.Size() + 1)]
    lines = [e for e in edges
             if BRepAdaptor_Curve(e).GetType() == GeomAbs_CurveType.GeomAbs_Line]
    return max(lines, key=lambda e: BRepAdaptor_Curve(e).LastParameter()
               - BRepAdaptor_Curve(e).FirstParameter())


def edge_near(solid, xyz):
    emap = ShapeMap()
    TopExp.MapShapes_s(solid, TopAbs_EDGE, emap)
    vertex = BRepBuilderAPI_MakeVertex(gp_Pnt(*map(float, xyz))).Vertex()
    edges = [TopoDS.Edge(emap.FindKey(i)) for i in range(1, emap.Size() + 1)]
    return min(edges, key=lambda e: BRepExtrema_DistShapeShape(vertex, e).Value())


def test_generated_parts_match_kernel_counts(parts):
    for solid, labels in parts:
        data = solid_to_data(solid, grid=3)
        n_faces, n_edges, pairs = kernel_counts(solid)
        assert data.num_nodes == n_faces == len(labels)
        assert data.edge_index.shape[1] == 2 * n_edges
        assert graph_pairs(data) == pairs
        # both directions of B-rep edge k sit in columns 2k, 2k+1 and mirror each other
        ei = data.edge_index
        assert torch.equal(ei[0, 0::2], ei[1, 1::2]) and torch.equal(ei[1, 0::2], ei[0, 1::2])
        assert torch.allclose(data.edge_grid[1::2, :3], data.edge_grid[0::2, :3].flip(-1))
        assert torch.allclose(data.edge_grid[1::2, 3:], -data.edge_grid[0::2, 3:].flip(-1))
        tangent_norm = data.edge_grid[:, 3:].norm(dim=1)
        assert torch.allclose(tangent_norm, torch.ones_like(tangent_norm), atol=1e-5)
    batch = Batch.from_data_list([solid_to_data(s, grid=3) for s, _ in parts[:2]])
    assert batch.edge_index.max() < batch.num_nodes


def test_grid_points_lie_on_their_faces(parts):
    from graphssl.brep import _occ

    for solid, _ in parts[:2]:
        data = solid_to_data(solid, grid=4)
        center, scale = data.norm_center.view(3).double(), float(data.norm_scale)
        for f, face in enumerate(_occ.faces(solid)):
            grid = data.face_grid[f].double()
            inside = grid[6] > 0
            assert inside.any()
            normals = grid[3:6][:, inside]
            assert torch.allclose(normals.norm(dim=0), torch.ones(int(inside.sum()),
                                                                 dtype=torch.double), atol=1e-5)
            for i, j in inside.nonzero().tolist():
                p = grid[:3, i, j] / scale + center
                vertex = BRepBuilderAPI_MakeVertex(gp_Pnt(*map(float, p))).Vertex()
                dist = BRepExtrema_DistShapeShape(vertex, face).Value() * scale
                assert dist < 1e-5, (f, i, j, dist)


def test_mask_zero_points_are_off_the_face():
    from graphssl.brep import _occ

    solid = read_solids(BRepAlgoAPI_Cut(box(), z_cylinder(20, 15, -5, 8, 30)).Shape())[0]
    data = solid_to_data(solid)
    scale, center = float(data.norm_scale), data.norm_center.view(3).double()
    faces = _occ.faces(solid)
    outside = (data.face_grid[:, 6] == 0).nonzero().tolist()
    assert outside
    for f, i, j in outside:
        p = data.face_grid[f, :3, i, j].double() / scale + center
        vertex = BRepBuilderAPI_MakeVertex(gp_Pnt(*map(float, p))).Vertex()
        assert BRepExtrema_DistShapeShape(vertex, faces[f]).Value() > 1e-3


# ---------------------------------------------------------------------------- STEP


def test_step_round_trip_keeps_graph(tmp_path, parts):
    # fillet and chamfer faces are the ones STEP export re-parametrises (reversed in u)
    rounded, labels = labelled_box()
    rounded, labels = apply_feature(rounded, labels, "fillet",
                                    edges=[edge_near(rounded, (20, 0, 0))], size=3.0)
    rounded, labels = apply_feature(rounded, labels, "chamfer",
                                    edges=[edge_near(rounded, (20, 30, 20))], size=2.0)
    for k, solid in enumerate([rounded] + [s for s, _ in parts[:3]]):
        path = tmp_path / f"p{k}.step"
        write_step(solid, path)
        before = solid_to_data(solid, grid=5)
        [after] = step_to_graphs(path, grid=5)
        assert after.name == f"p{k}"
        assert after.num_nodes == before.num_nodes
        assert torch.equal(after.x, before.x)
        assert torch.equal(after.edge_index, before.edge_index)
        assert torch.equal(after.edge_attr, before.edge_attr)
        for key in ("face_grid", "edge_grid", "face_area", "edge_length"):
            assert torch.allclose(after[key], before[key], atol=1e-6, rtol=0), key


def test_multi_solid_step(tmp_path):
    # two boxes touching along one edge: the kernel keeps two solids
    pair = BRepAlgoAPI_Fuse(box(1, 1, 1), BRepPrimAPI_MakeBox(gp_Pnt(1, 1, 0),
                                                             gp_Pnt(2, 2, 1)).Shape()).Shape()
    path = tmp_path / "pair.step"
    write_step(pair, path)
    assert len(read_step(path)) == 2
    graphs = step_to_graphs(path, grid=3)
    assert [g.name for g in graphs] == ["pair#0", "pair#1"]
    assert all(g.num_nodes == 6 and g.edge_index.shape[1] == 24 for g in graphs)


@pytest.mark.parametrize("case", ["missing", "empty", "text", "truncated", "header_only"])
def test_bad_files_fail_with_data_error(tmp_path, case):
    path = tmp_path / f"{case}.step"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("just some notes, not a CAD file\n")
    elif case == "truncated":
        full = tmp_path / "full.step"
        write_step(BRepAlgoAPI_Cut(box(), z_cylinder(20, 15, -5, 6, 30)).Shape(), full)
        text = full.read_bytes()
        path.write_bytes(text[: len(text) // 2])
    elif case == "header_only":
        path.write_text("ISO-10303-21;\nHEADER;\nENDSEC;\nDATA;\nENDSEC;\nEND-ISO-10303-21;\n")
    with pytest.raises(DataError) as err:
        step_to_graphs(path)
    assert str(path) in str(err.value)
    expect = {"missing": "does not exist", "empty": "empty", "text": "not a STEP",
              "truncated": "truncated", "header_only": "no solid"}[case]
    assert expect in str(err.value)


def test_invalid_and_non_manifold_solids_fail():
    from OCP.BRep import BRep_Builder
    from OCP.TopoDS import TopoDS_Shell, TopoDS_Solid

    from graphssl.brep import _occ

    def solid_from(faces):
        builder, shell, solid = BRep_Builder(), TopoDS_Shell(), TopoDS_Solid()
        builder.MakeShell(shell)
        for f in faces:
            builder.Add(shell, f)
        builder.MakeSolid(solid)
        builder.Add(solid, shell)
        return solid

    open_box = solid_from(_occ.faces(box())[:5])
    with pytest.raises(DataError, match="BRepCheck_Analyzer"):
        solid_to_data(open_box, name="open")
    pair = BRepAlgoAPI_Fuse(box(1, 1, 1), BRepPrimAPI_MakeBox(gp_Pnt(1, 1, 0),
                                                             gp_Pnt(2, 2, 1)).Shape()).Shape()
    with pytest.raises(DataError, match="non-manifold"):
        solid_to_data(solid_from(_occ.faces(pair)), name="touching")


# ------------------------------------------------------------------------ generator


@pytest.mark.parametrize("kind, tool, n_feature_faces", [
    ("through_hole", lambda: z_cylinder(20, 15, -5, 6, 30), 1),
    ("blind_hole", lambda: z_cylinder(20, 15, 10, 6, 20), 2),
    ("pocket", lambda: BRepPrimAPI_MakeBox(gp_Pnt(10, 10, 12), gp_Pnt(30, 20, 25)).Shape(), 5),
    ("slot", lambda: BRepPrimAPI_MakeBox(gp_Pnt(-5, 10, 12), gp_Pnt(45, 18, 25)).Shape(), 3),
    ("step", lambda: BRepPrimAPI_MakeBox(gp_Pnt(30, -5, 12), gp_Pnt(45, 35, 25)).Shape(), 2),
    ("boss", lambda: z_cylinder(20, 15, 19, 5, 10), 2),
])
def test_labels_of_one_known_feature(kind, tool, n_feature_faces):
    solid, labels = apply_feature(*labelled_box(), kind, tool())
    n_faces = kernel_counts(solid)[0]
    assert len(labels) == n_faces
    assert names(labels).count(kind) == n_feature_faces
    assert names(labels).count("stock") == n_faces - n_feature_faces
    data = solid_to_data(solid, grid=3)
    surf = [SURFACE_TYPES[t] for t in data.x.view(-1).tolist()]
    if kind in ("through_hole", "blind_hole", "boss"):
        assert {s for s, c in zip(surf, names(labels)) if c == "stock"} == {"plane"}
        assert "cylinder" in {s for s, c in zip(surf, names(labels)) if c == kind}


@pytest.mark.parametrize("kind", ["fillet", "chamfer"])
def test_labels_of_edge_features(kind):
    solid, labels = labelled_box()
    solid, labels = apply_feature(solid, labels, kind, edges=[longest_line_edge(solid)],
                                  size=3.0)
    assert len(labels) == 7 and names(labels).count(kind) == 1
    data = solid_to_data(solid, grid=3)
    face_type = SURFACE_TYPES[int(data.x[labels.index(FEATURE_CLASSES.index(kind))])]
    assert face_type == ("cylinder" if kind == "fillet" else "plane")


def test_labels_survive_step_round_trip(tmp_path):
    solid, labels = apply_feature(*labelled_box(), "through_hole", z_cylinder(20, 15, -5, 6, 30))
    solid, labels = apply_feature(solid, labels, "boss",
                                  BRepPrimAPI_MakeBox(gp_Pnt(2, 2, 19), gp_Pnt(8, 8, 26)).Shape())
    write_step(solid, tmp_path / "p.step")
    [data] = step_to_graphs(tmp_path / "p.step", grid=3)
    surf = [SURFACE_TYPES[t] for t in data.x.view(-1).tolist()]
    assert [c == "through_hole" for c in names(labels)] == [s == "cylinder" for s in surf]
    # boss faces are the ones reaching above the box top (z = 20, normalised (20-13)/40)
    top = data.face_grid[:, 2].flatten(1).amax(1) > (20 - 13) / 40 + 1e-3
    assert [c == "boss" for c in names(labels)] == top.tolist()


def test_generated_labels_match_the_tools(monkeypatch):
    """Independent of the history rule: a face labelled k lies on a tool of feature k."""
    from graphssl.brep import _occ

    tools: dict[str, list] = {}
    real_apply, real_stock = gen.apply_feature, gen.parts.make_stock

    def recording_apply(solid, labels, kind, tool=None, **kw):
        tools.setdefault(kind, []).append(tool)
        return real_apply(solid, labels, kind, tool, **kw)

    def recording_stock(rng):
        stock = real_stock(rng)
        tools["stock"] = [stock.solid]
        return stock

    monkeypatch.setattr(gen, "apply_feature", recording_apply)
    monkeypatch.setattr(gen.parts, "make_stock", recording_stock)
    checked = 0
    for i in range(6):
        tools.clear()
        solid, labels = gen.generate_part(part_seed(21, i, 0))
        data = solid_to_data(solid, grid=5)
        scale, center = float(data.norm_scale), data.norm_center.view(3).double()
        for f, kind in enumerate(names(labels)):
            assert kind in tools
            if kind in ("fillet", "chamfer"):
                want = "cylinder" if kind == "fillet" else "plane"
                assert SURFACE_TYPES[int(data.x[f])] == want
                continue
            inside = (data.face_grid[f, 6] > 0).nonzero()
            i_, j_ = inside[len(inside) // 2].tolist()
            p = data.face_grid[f, :3, i_, j_].double() / scale + center
            vertex = BRepBuilderAPI_MakeVertex(gp_Pnt(*map(float, p))).Vertex()
            dist = min(BRepExtrema_DistShapeShape(vertex, face).Value()
                       for tool in tools[kind] for face in _occ.faces(tool))
            assert dist < 1e-4, (i, f, kind, dist)
            checked += 1
    assert checked > 30


def test_generator_is_reproducible(tmp_path):
    a = generate_dataset(3, tmp_path / "a", seed=3, progress=False)
    generate_dataset(3, tmp_path / "b", seed=3, progress=False)
    generate_dataset(3, tmp_path / "c", seed=4, progress=False)
    assert a.n_parts == 3 and (tmp_path / "a" / "classes.txt").read_text().split() == list(
        FEATURE_CLASSES)
    for i in range(3):
        la = (tmp_path / "a" / f"part_{i:05d}.labels").read_bytes()
        assert la == (tmp_path / "b" / f"part_{i:05d}.labels").read_bytes()
        step = (tmp_path / "a" / f"part_{i:05d}.step").read_bytes()
        assert step == (tmp_path / "b" / f"part_{i:05d}.step").read_bytes()
        [data] = step_to_graphs(tmp_path / "a" / f"part_{i:05d}.step", grid=2)
        assert data.num_nodes == len(la.split())
    files = lambda d: [(d / f"part_{i:05d}.step").read_bytes() for i in range(3)]  # noqa: E731
    assert files(tmp_path / "a") != files(tmp_path / "c")
    assert sum(a.class_counts.values()) == sum(
        len((tmp_path / "a" / f"part_{i:05d}.labels").read_text().split()) for i in range(3))


def test_failed_parts_are_regenerated_and_counted(tmp_path, monkeypatch):
    real = gen.generate_part
    calls = []

    def flaky(seed):
        calls.append(seed)
        if len(calls) == 2:
            raise DataError(f"part from seed {seed}: cut left 2 solids, expected 1")
        return real(seed)

    monkeypatch.setattr(gen, "generate_part", flaky)
    report = generate_dataset(2, tmp_path, seed=0, progress=False)
    assert report.n_regenerated == 1
    assert report.regenerated[0][:2] == (1, 0) and "2 solids" in report.regenerated[0][2]
    assert calls[2] == part_seed(0, 1, 1)
    assert sorted(p.name for p in Path(tmp_path).glob("part_*")) == [
        "part_00000.labels", "part_00000.step", "part_00001.labels", "part_00001.step"]


def test_generated_labels_cover_faces_and_classes():
    seen = set()
    for i in range(12):
        solid, labels = generate_part(part_seed(11, i, 0))
        assert len(labels) == kernel_counts(solid)[0]
        assert all(0 <= lab < len(FEATURE_CLASSES) for lab in labels)
        assert 0 in labels
        seen.update(labels)
    assert len(seen) >= 6
