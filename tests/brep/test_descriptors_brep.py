"""Whole-part descriptors of B-rep solids (the CAD analogue of molecular descriptors)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("OCP")

from OCP.BRepAlgoAPI import BRepAlgoAPI_Cut  # noqa: E402
from OCP.BRepPrimAPI import (  # noqa: E402
    BRepPrimAPI_MakeBox,
    BRepPrimAPI_MakeCylinder,
    BRepPrimAPI_MakeSphere,
    BRepPrimAPI_MakeTorus,
)
from OCP.gp import gp_Ax2, gp_Dir, gp_Pnt  # noqa: E402
from torch_geometric.data import Batch  # noqa: E402

from graphssl.brep import descriptors as bd  # noqa: E402
from graphssl.brep.adapter import SURFACE_TYPES, solid_to_data  # noqa: E402
from graphssl.brep.dataset import BREP_RECIPE  # noqa: E402
from graphssl.brep.encoders import brep_feature_spec  # noqa: E402
from graphssl.core.config import DataConfig, ModelConfig  # noqa: E402
from graphssl.core.errors import ConfigError  # noqa: E402
from graphssl.data.builder import cache_key  # noqa: E402
from graphssl.data.dataset import load_dataset, resolve_source  # noqa: E402
from graphssl.nn import build_encoder  # noqa: E402
from graphssl.objectives import build_objective  # noqa: E402


def described(solid) -> dict[str, float]:
    data = solid_to_data(solid, grid=3, descriptors=True)
    assert data.descriptors.shape == (1, len(bd.BREP_DESCRIPTORS)) and data.descriptors.dtype == torch.float32
    return dict(zip(bd.BREP_DESCRIPTORS, data.descriptors[0].tolist()))


def test_surface_types_in_step_with_the_adapter():
    assert bd._SURFACE_TYPES == SURFACE_TYPES


def test_box_by_hand():
    # a 2 x 1 x 0.5 box; normalised by its largest side (2): 1 x 0.5 x 0.25
    d = described(BRepPrimAPI_MakeBox(2.0, 1.0, 0.5).Shape())
    a, b, c = 1.0, 0.5, 0.25
    mass = a * b * c
    expected = {
        "volume": mass, "area": 2 * (a * b + b * c + a * c), "extent_x": a, "extent_y": b, "extent_z": c,
        "center_x": 0.0, "center_y": 0.0, "center_z": 0.0,
        # principal moments of a uniform box, ascending: m (b^2 + c^2) / 12 < m (a^2 + c^2) / 12 < m (a^2 + b^2) / 12
        "inertia_1": mass * (b * b + c * c) / 12, "inertia_2": mass * (a * a + c * c) / 12,
        "inertia_3": mass * (a * a + b * b) / 12,
        "faces": 6, "edges": 12, "vertices": 8, "inner_loops": 0, "shells": 1, "genus": 0, "faces_plane": 6,
    }
    for name in bd.BREP_DESCRIPTORS:
        assert d[name] == pytest.approx(expected.get(name, 0.0), abs=1e-6), name


def test_through_hole_is_genus_one():
    box = BRepPrimAPI_MakeBox(2.0, 1.0, 0.5).Shape()
    hole = BRepPrimAPI_MakeCylinder(gp_Ax2(gp_Pnt(1.0, 0.5, -1.0), gp_Dir(0, 0, 1)), 0.2, 3.0).Shape()
    d = described(BRepAlgoAPI_Cut(box, hole).Shape())
    assert d["genus"] == 1 and d["inner_loops"] == 2  # the hole's rims on the top and bottom faces
    assert (d["faces"], d["faces_plane"], d["faces_cylinder"]) == (7, 6, 1)
    assert d["volume"] == pytest.approx((1.0 - math.pi * 0.2**2 * 0.5) / 8, rel=1e-6)  # scale 1/2, cubed
    assert d["area"] == pytest.approx((7.0 - 2 * math.pi * 0.04 + 2 * math.pi * 0.2 * 0.5) / 4, rel=1e-6)


def test_genus_on_curved_solids():
    sphere = described(BRepPrimAPI_MakeSphere(1.0).Shape())  # its pole edges are degenerated: not counted
    torus = described(BRepPrimAPI_MakeTorus(2.0, 0.5).Shape())
    assert (sphere["genus"], sphere["faces_sphere"], sphere["volume"]) == (0, 1, pytest.approx(math.pi / 6))
    assert (torus["genus"], torus["faces_torus"]) == (1, 1)


def test_parts_built_with_descriptors(parts_dir, tmp_path):
    config = DataConfig(path=str(parts_dir), descriptors="brep")
    data = load_dataset(config, tmp_path / "cache", progress=False, verbose=False)
    faces_by_type = [bd.BREP_DESCRIPTORS.index(f"faces_{t}") for t in SURFACE_TYPES]
    for i in range(len(data)):
        graph = data[i]
        row = graph.descriptors[0]
        assert torch.isfinite(row).all()
        d = dict(zip(bd.BREP_DESCRIPTORS, row.tolist()))
        assert d["faces"] == graph.num_nodes and row[faces_by_type].sum() == graph.num_nodes
        assert max(d["extent_x"], d["extent_y"], d["extent_z"]) == pytest.approx(1.0, abs=1e-6)
        assert 0 < d["volume"] <= d["extent_x"] * d["extent_y"] * d["extent_z"] + 1e-6
        assert d["area"] == pytest.approx(graph.face_area.sum().item(), rel=1e-4)
        assert d["genus"] == round(d["genus"]) >= 0
    assert {round(v) for v in data.store.t["descriptors"][:, bd.BREP_DESCRIPTORS.index("genus")].tolist()} >= {0, 1}


def test_cache_key_and_wrong_set(parts_dir):
    keys = set()
    for name in (None, "brep"):
        config = DataConfig(path=str(parts_dir), descriptors=name)
        entries = BREP_RECIPE.cache_entries(resolve_source(config), config)
        assert ("descriptors" in entries) == (name is not None)
        keys.add(cache_key(entries))
    assert len(keys) == 2
    wrong = DataConfig(path=str(parts_dir), descriptors="fast")
    with pytest.raises(ConfigError, match="data.descriptors.*brep"):
        BREP_RECIPE.cache_entries(resolve_source(wrong), wrong)


def test_objective_on_parts(parts_dir, tmp_path):
    data = load_dataset(DataConfig(path=str(parts_dir), descriptors="brep"), tmp_path / "cache", progress=False,
                        verbose=False)
    encoder = build_encoder(ModelConfig(backbone="gin", hidden=16, num_layers=2), brep_feature_spec())
    objective = build_objective("descriptors", encoder, {})
    assert objective.descriptors == "brep" and objective.num_descriptors == len(bd.BREP_DESCRIPTORS)
    objective.transform.many(data)
    assert bool(objective.fit_done) and int(objective.fitted) == len(data)
    loss = objective(Batch.from_data_list([data[i] for i in range(8)]))
    loss.backward()
    assert math.isfinite(loss.item()) and loss.item() > 0
    assert all(p.grad is not None for p in objective.head.parameters())
    assert np.isfinite(objective.center.numpy()).all()
