"""The MFCAD++-style generator: 24 feature builders, the labelling rule, reproducibility, CLI."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("OCP")

from OCP.BRepAdaptor import BRepAdaptor_Surface  # noqa: E402
from OCP.BRepCheck import BRepCheck_Analyzer  # noqa: E402
from OCP.BRepGProp import BRepGProp  # noqa: E402
from OCP.BRepPrimAPI import BRepPrimAPI_MakeBox, BRepPrimAPI_MakeCylinder  # noqa: E402
from OCP.GeomAbs import GeomAbs_SurfaceType  # noqa: E402
from OCP.gp import gp_Ax2, gp_Dir, gp_Pnt  # noqa: E402
from OCP.GProp import GProp_GProps  # noqa: E402

from graphssl.brep import _occ, mfcad  # noqa: E402
from graphssl.brep.adapter import step_to_graphs  # noqa: E402
from graphssl.brep.generate import CLASS_SETS, generate_dataset, part_seed  # noqa: E402
from graphssl.brep.mfcad import FEATURES, MFCAD_CLASSES, STOCK  # noqa: E402
from graphssl.brep.sources import folder_source  # noqa: E402
from graphssl.core.errors import DataError  # noqa: E402

PLANE, CYLINDER = GeomAbs_SurfaceType.GeomAbs_Plane, GeomAbs_SurfaceType.GeomAbs_Cylinder

# (planar, cylindrical) faces one feature leaves on an untouched box, counted by hand from
# its tool: e.g. a six-sided pocket has 6 walls and a floor, an O-ring two cylinders and a
# floor, a circular-end pocket two flat walls, two half cylinders and a floor.
FEATURE_FACES = {
    "chamfer": (1, 0), "through_hole": (0, 1), "triangular_passage": (3, 0),
    "rectangular_passage": (4, 0), "six_sided_passage": (6, 0), "triangular_through_slot": (2, 0),
    "rectangular_through_slot": (3, 0), "circular_through_slot": (0, 1),
    "rectangular_through_step": (2, 0), "two_sided_through_step": (3, 0),
    "slanted_through_step": (2, 0), "o_ring": (1, 2), "blind_hole": (1, 1),
    "triangular_pocket": (4, 0), "rectangular_pocket": (5, 0), "six_sided_pocket": (7, 0),
    "circular_end_pocket": (3, 2), "rectangular_blind_slot": (4, 0),
    "vertical_circular_end_blind_slot": (3, 1), "horizontal_circular_end_blind_slot": (3, 1),
    "triangular_blind_step": (2, 0), "circular_blind_step": (1, 1),
    "rectangular_blind_step": (3, 0), "round": (0, 1),
}


def surface_types(solid) -> list:
    return [BRepAdaptor_Surface(f).GetType() for f in _occ.faces(solid)]


def face_props(solid) -> list[tuple[float, tuple[float, float, float]]]:
    """Area and centroid of every face, in label order."""
    out = []
    for face in _occ.faces(solid):
        props = GProp_GProps()
        BRepGProp.SurfaceProperties_s(face, props)
        c = props.CentreOfMass()
        out.append((props.Mass(), (c.X(), c.Y(), c.Z())))
    return out


def test_class_list_is_mfcad_order_with_stock_last():
    assert len(MFCAD_CLASSES) == 25 and len(set(MFCAD_CLASSES)) == 25
    assert STOCK == 24 and MFCAD_CLASSES[STOCK] == "stock"
    assert MFCAD_CLASSES[:2] == ("chamfer", "through_hole") and MFCAD_CLASSES[23] == "round"
    assert MFCAD_CLASSES[11] == "o_ring" and MFCAD_CLASSES[12] == "blind_hole"
    assert set(FEATURE_FACES) == set(FEATURES)
    assert CLASS_SETS["mfcad"] == MFCAD_CLASSES


@pytest.mark.parametrize("kind", FEATURES)
def test_each_feature_on_a_stock(kind):
    rng = np.random.default_rng(FEATURES.index(kind))
    stock = mfcad.make_stock(rng)
    solid, labels = mfcad.add_feature(stock.solid, [STOCK] * 6, kind, stock, rng)
    assert BRepCheck_Analyzer(solid).IsValid()
    types = surface_types(solid)
    assert len(labels) == len(types)
    label = MFCAD_CLASSES.index(kind)
    assert set(labels) == {label, STOCK}
    mine = [t for t, lab in zip(types, labels) if lab == label]
    assert (mine.count(PLANE), mine.count(CYLINDER)) == FEATURE_FACES[kind]
    assert len(mine) == sum(FEATURE_FACES[kind])
    # the box's six sides survive, whole or in pieces, all planar
    assert labels.count(STOCK) >= 6
    assert all(t == PLANE for t, lab in zip(types, labels) if lab == STOCK)


def test_intersecting_features_keep_the_last_created_label():
    """Box 40 x 30 x 20: a pocket, a hole through its wall, then a slot whose floor lies on
    the pocket's floor."""
    pocket, hole, slot = (MFCAD_CLASSES.index(k) for k in
                          ("rectangular_pocket", "through_hole", "rectangular_blind_slot"))
    solid = BRepPrimAPI_MakeBox(40.0, 30.0, 20.0).Shape()
    solid, labels = mfcad.apply_cut(solid, [STOCK] * 6, BRepPrimAPI_MakeBox(
        gp_Pnt(10, 5, 12), gp_Pnt(30, 25, 25)).Shape(), pocket)
    assert labels.count(pocket) == 5
    # hole of radius 4 on the pocket's wall x = 30: the wall (y 5..25, z 12..20) is cut in two
    tool = BRepPrimAPI_MakeCylinder(gp_Ax2(gp_Pnt(30, 15, -5), gp_Dir(0, 0, 1)), 4.0, 30.0).Shape()
    solid, labels = mfcad.apply_cut(solid, labels, tool, hole)
    props, types = face_props(solid), surface_types(solid)
    assert len(labels) == len(props)
    walls = sorted(round(c[1], 3) for (a, c), lab in zip(props, labels)
                   if lab == pocket and abs(c[0] - 30) < 1e-6)
    assert walls == [8.0, 22.0]  # y 5..11 and 19..25: both pieces keep the pocket's label
    assert all(abs(a - 6 * 8) < 1e-6 for (a, c), lab in zip(props, labels)
               if lab == pocket and abs(c[0] - 30) < 1e-6)
    assert labels.count(pocket) == 6
    assert {t for t, lab in zip(types, labels) if lab == hole} == {CYLINDER}
    assert all(lab == hole for t, lab in zip(types, labels) if t == CYLINDER)
    # the slot's floor (z = 12) overlaps the pocket floor over x 20..30, y 10..20
    solid, labels = mfcad.apply_cut(solid, labels, BRepPrimAPI_MakeBox(
        gp_Pnt(20, 10, 12), gp_Pnt(38, 20, 25)).Shape(), slot)
    assert BRepCheck_Analyzer(solid).IsValid()
    floors = {(round(a, 1), lab) for (a, c), lab in zip(face_props(solid), labels) if abs(c[2] - 12) < 1e-6}
    half_hole = round(np.pi * 16 / 2, 1)
    # shared with the pocket floor: the later slot's label; the rest of the pocket floor
    # (20 x 20 less the 10 x 10 overlap) keeps the pocket's; the slot's own floor beyond x = 30
    assert floors == {(round(100 - half_hole, 1), slot), (300.0, pocket),
                      (round(80 - half_hole, 1), slot)}


def test_same_seed_same_part_and_labels_count_faces():
    a, b = mfcad.generate_part(part_seed(5, 0, 0)), mfcad.generate_part(part_seed(5, 0, 0))
    c = mfcad.generate_part(part_seed(5, 1, 0))
    assert a.labels == b.labels and a.features == b.features and a.skipped == b.skipped
    assert len(_occ.faces(a.solid)) == len(a.labels) == len(_occ.faces(b.solid))
    assert (a.labels, a.features) != (c.labels, c.features)
    assert mfcad.MIN_FEATURES <= len(a.features) + len(a.skipped) <= mfcad.MAX_FEATURES
    assert BRepCheck_Analyzer(a.solid).IsValid()
    for kind in a.features:  # every applied feature kept at least one face of its own...
        assert MFCAD_CLASSES.index(kind) in a.labels
    # ...and no label belongs to a feature the part does not have
    assert set(a.labels) <= {STOCK, *(MFCAD_CLASSES.index(k) for k in a.features)}


def test_failing_feature_is_retried_then_skipped_and_reported(monkeypatch, tmp_path):
    real, calls = mfcad.add_feature, []

    def failing(solid, labels, kind, stock, rng):
        calls.append(kind)
        if kind != "through_hole":
            raise DataError(f"{kind}: kernel refused")
        return real(solid, labels, kind, stock, rng)

    monkeypatch.setattr(mfcad, "add_feature", failing)
    monkeypatch.setattr(mfcad, "FEATURES", ("through_hole", "blind_hole"))
    part = mfcad.generate_part(0)
    assert part.skipped and part.features  # seed 0 draws both kinds
    assert set(part.skipped) == {("blind_hole", "blind_hole: kernel refused")}
    assert calls.count("blind_hole") == mfcad.FEATURE_TRIES * len(part.skipped) == part.failed_tries
    assert calls.count("through_hole") == len(part.features) and set(part.features) == {"through_hole"}
    assert mfcad.MIN_FEATURES <= len(part.features) + len(part.skipped) <= mfcad.MAX_FEATURES
    monkeypatch.setattr(mfcad, "FEATURES", ("blind_hole",))
    with pytest.raises(DataError, match="every feature failed"):
        mfcad.generate_part(3)
    # in a data set, skipped features are counted in the report
    monkeypatch.setattr(mfcad, "FEATURES", ("through_hole", "blind_hole"))
    report = generate_dataset(1, tmp_path, seed=2, classes="mfcad", progress=False)  # draws 9 features
    assert report.n_skipped_features >= 1
    assert report.feature_retries == mfcad.FEATURE_TRIES * report.n_skipped_features
    assert {(part, kind) for part, kind, _ in report.skipped_features} == {(0, "blind_hole")}


def test_dataset_layout_reproducible_and_readable(tmp_path):
    a = generate_dataset(2, tmp_path / "a", seed=7, classes="mfcad", progress=False)
    generate_dataset(2, tmp_path / "b", seed=7, classes="mfcad", progress=False)
    assert (tmp_path / "a" / "classes.txt").read_text().split() == list(MFCAD_CLASSES)
    assert set(a.class_counts) == set(MFCAD_CLASSES) and a.classes == "mfcad"
    total = 0
    for i in range(2):
        stem = f"part_{i:05d}"
        labels = (tmp_path / "a" / f"{stem}.labels").read_text().split()
        assert labels == (tmp_path / "b" / f"{stem}.labels").read_text().split()
        assert (tmp_path / "a" / f"{stem}.step").read_bytes() == (tmp_path / "b" / f"{stem}.step").read_bytes()
        [data] = step_to_graphs(tmp_path / "a" / f"{stem}.step", grid=2)
        assert data.num_nodes == len(labels)
        total += len(labels)
    assert sum(a.class_counts.values()) == total
    source = folder_source("parts", tmp_path / "a", None, keep_labels=True)
    assert list(source.class_names) == list(MFCAD_CLASSES)


@pytest.mark.slow
def test_workers_write_the_same_files(tmp_path):
    generate_dataset(3, tmp_path / "one", seed=2, classes="mfcad", progress=False)
    report = generate_dataset(3, tmp_path / "two", seed=2, classes="mfcad", progress=False, workers=2)
    assert report.workers == 2
    for i in range(3):
        for suffix in (".step", ".labels"):
            name = f"part_{i:05d}{suffix}"
            assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_unknown_class_set_is_a_clear_error(tmp_path, capsys):
    from graphssl.cli import main

    out = tmp_path / "parts"
    code = main(["data", "generate", "brep", "--n", "1", "--out", str(out), "--classes", "mfcad++",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown class set 'mfcad++'" in err and "basic, mfcad" in err
    assert not out.exists()
    with pytest.raises(DataError, match="workers must be >= 1"):
        generate_dataset(1, out, classes="mfcad", workers=0)


def test_registered_mfcad_parts_carry_the_25_classes(tmp_path):
    from graphssl.core.config import DataConfig
    from graphssl.data.dataset import load_dataset

    data = load_dataset(DataConfig(name="brep-mfcad", limit=2), tmp_path, progress=False, verbose=False)
    assert len(data) == 2 and list(data.class_names) == list(MFCAD_CLASSES)
    assert all(int(data[i].y.max()) < len(MFCAD_CLASSES) for i in range(2))
    assert (tmp_path / "brep-mfcad-2" / "generated.json").is_file()
    unlabeled = load_dataset(DataConfig(name="brep-mfcad-pretrain", limit=1), tmp_path, progress=False, verbose=False)
    assert unlabeled.task_type is None
