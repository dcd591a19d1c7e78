"""Learning on B-rep parts: UV-grid embeddings, the STEP data set and masked pretraining.

Per-face segmentation fine-tuning is tested in tests/tasks/test_segmentation.py."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("OCP")

from torch_geometric.data import Batch, Data  # noqa: E402

from graphssl.brep import encoders as emb  # noqa: E402
from graphssl.brep.adapter import CONVEXITY, CURVE_TYPES, SURFACE_TYPES, solid_to_data  # noqa: E402
from graphssl.brep.generate import (  # noqa: E402
    FEATURE_CLASSES,
    generate_part,
    part_seed,
)
from graphssl.brep.sources import BREP_DATASETS  # noqa: E402
from graphssl.core.config import DataConfig, ModelConfig  # noqa: E402
from graphssl.core.errors import DataError  # noqa: E402
from graphssl.data.dataset import load_dataset  # noqa: E402
from graphssl.data.sources import catalogue  # noqa: E402
from graphssl.nn import build_encoder  # noqa: E402
from graphssl.objectives import build_objective  # noqa: E402

MODEL = ModelConfig(backbone="gine", hidden=32, num_layers=2)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def graphs() -> list[Data]:
    out = []
    for i in range(8):
        solid, labels = generate_part(part_seed(5, i, 0))
        data = solid_to_data(solid, name=f"p{i}")
        data.y = torch.tensor(labels)
        out.append(data)
    return out


def _permuted(data: Data, perm: torch.Tensor) -> Data:
    """The same part with faces renumbered: new face k is old face perm[k]."""
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel())
    out = data.clone()
    for key in ("x", "face_area", "face_grid", "y"):
        out[key] = data[key][perm]
    out.edge_index = inverse[data.edge_index]
    return out


# ----------------------------------------------------------------------------- embeddings


def test_embedding_constants_match_the_adapter():
    assert (emb.NUM_SURFACE_TYPES, emb.NUM_CURVE_TYPES, emb.NUM_CONVEXITY) == (
        len(SURFACE_TYPES), len(CURVE_TYPES), len(CONVEXITY))


def test_embeddings_shapes_and_face_permutation(graphs):
    torch.manual_seed(0)
    data = graphs[0]
    faces, edges = emb.FaceGridEmbedding(24).eval(), emb.EdgeGridEmbedding(24).eval()
    h, e = faces(data), edges(data)
    assert h.shape == (data.num_nodes, 24) and e.shape == (data.edge_index.size(1), 24)
    assert faces.reconstruction_target(data).shape == (data.num_nodes, faces.target_channels) == (data.num_nodes, 600)
    perm = torch.randperm(data.num_nodes)
    assert torch.allclose(faces(_permuted(data, perm)), h[perm], atol=1e-6)
    # through a whole encoder: relabelling faces only relabels the outputs
    encoder = build_encoder(MODEL, emb.brep_feature_spec()).eval()
    assert torch.allclose(encoder(_permuted(data, perm)), encoder(data)[perm], atol=1e-5)


def test_embeddings_see_geometry_but_not_trimmed_away_points(graphs):
    torch.manual_seed(0)
    data = graphs[1]
    faces = emb.FaceGridEmbedding(16).eval()
    h = faces(data)
    trimmed = (data.face_grid[:, 6] == 0).any(-1).any(-1).nonzero().flatten()
    assert trimmed.numel(), "some generated face should have points outside its boundary"
    junk = data.clone()
    junk.face_grid = data.face_grid.clone()
    outside = junk.face_grid[:, 6:7] == 0
    junk.face_grid[:, :6] = torch.where(outside, torch.randn_like(junk.face_grid[:, :6]), junk.face_grid[:, :6])
    assert torch.allclose(faces(junk), h, atol=1e-6)
    moved = data.clone()
    moved.face_grid = data.face_grid.clone()
    moved.face_grid[0, :3] += 0.1  # shift face 0 only
    diff = (faces(moved) - h).abs().sum(-1)
    assert diff[0] > 1e-4 and torch.all(diff[1:] == 0)
    bent = data.clone()
    bent.edge_grid = data.edge_grid.clone().flip(-1)
    assert not torch.allclose(emb.EdgeGridEmbedding(16).eval()(bent), emb.EdgeGridEmbedding(16).eval()(data))


def test_batched_parts_match_single_parts(graphs):
    torch.manual_seed(0)
    encoder = build_encoder(MODEL, emb.brep_feature_spec()).eval()
    batch = Batch.from_data_list(graphs[:3])
    together = encoder(batch)
    alone = torch.cat([encoder(g) for g in graphs[:3]])
    assert torch.allclose(together, alone, atol=1e-5)
    assert encoder.embed_graphs(batch).shape == (3, MODEL.hidden)


def test_graphmae_reconstructs_uv_grids_and_its_loss_falls(graphs):
    torch.manual_seed(0)
    encoder = build_encoder(MODEL, emb.brep_feature_spec())
    objective = build_objective("graphmae", encoder, {"loss": "mse", "mask_rate": 0.5})
    assert objective.target == "embedding"
    optimizer = torch.optim.Adam(objective.parameters(), lr=3e-3)
    batch = Batch.from_data_list(graphs)
    losses = []
    for _ in range(40):
        loss = objective(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


# ----------------------------------------------------------------------------- data set


def test_registered_names_and_dispatch():
    rows = {name: (task_type, metric) for name, task_type, metric, _ in catalogue()}
    assert set(BREP_DATASETS) <= set(rows)
    assert rows["brep-machining"] == ("segmentation", "miou")
    assert rows["brep-machining-pretrain"] == (None, None)


def test_dataset_labels_line_up_with_faces(parts_dir, cache):
    ds = load_dataset(DataConfig(path=str(parts_dir)), cache, progress=False, verbose=False)
    assert len(ds) == 30 and ds.task_type == "segmentation" and ds.metric == "miou"
    assert ds.class_names == FEATURE_CLASSES and ds.num_classes == len(FEATURE_CLASSES)
    assert (ds.report.read, ds.report.kept, len(ds.report.skipped)) == (30, 30, 0)
    cylinder, hole = SURFACE_TYPES.index("cylinder"), FEATURE_CLASSES.index("through_hole")
    holes = 0
    for i in range(len(ds)):
        data = ds[i]
        labels = [int(s) for s in (parts_dir / f"{data.name}.labels").read_text().split()]
        assert data.y.dtype == torch.long and data.y.tolist() == labels and data.num_nodes == len(labels)
        # a through hole's faces are its cylinder walls: wrong order would put labels on planes
        assert all(data.x[data.y == hole].flatten() == cylinder)
        holes += int((data.y == hole).sum())
    assert holes > 0
    sub = ds.subset([3, 1])
    assert sub.names == [ds.names[3], ds.names[1]] and sub.feature_spec.node_factory is not None
    again = load_dataset(DataConfig(path=str(parts_dir)), cache, progress=False, verbose=False)
    assert again.report.from_cache and torch.equal(again[5].face_grid, ds[5].face_grid)


def test_wrong_label_count_is_reported(parts_dir, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    for path in [*parts_dir.glob("part_0000[0-7].*"), parts_dir / "classes.txt"]:
        shutil.copy(path, folder)
    labels = folder / "part_00004.labels"
    labels.write_text(labels.read_text() + "0\n")
    with pytest.raises(DataError, match="part_00004"):
        load_dataset(DataConfig(path=str(folder)), tmp_path / "cache", progress=False, verbose=False)
    ds = load_dataset(DataConfig(path=str(folder), on_error="skip"), tmp_path / "cache", progress=False,
                      verbose=False)
    report = ds.report
    assert report.read == report.kept + len(report.skipped) and len(report.skipped) == 1
    assert report.skipped[0].input == "part_00004.step" and "faces" in report.skipped[0].reason
    assert len(ds) == 7 and "part_00004" not in ds.names


def test_registry_generates_parts_and_pretrain_drops_labels(tmp_path):
    ds = load_dataset(DataConfig(name="brep-machining", limit=4), tmp_path, progress=False, verbose=False)
    assert len(ds) == 4 and ds.task_type == "segmentation" and (tmp_path / "brep-machining-4").is_dir()
    pre = load_dataset(DataConfig(name="brep-machining-pretrain", limit=4), tmp_path, progress=False, verbose=False)
    assert pre.task_type is None and getattr(pre[0], "y", None) is None
    assert not torch.equal(pre[0].face_area, ds[0].face_area)  # another seed, other parts
