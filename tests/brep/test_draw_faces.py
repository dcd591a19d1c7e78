"""Pictures of B-rep parts with faces coloured by class, and the fine-tuning hook that writes them."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from graphssl.brep import draw
from graphssl.core.errors import DataError

pytestmark = pytest.mark.usefixtures("one_thread")


def _flat_grid(g: int = 3) -> np.ndarray:
    """One planar face: x, y on a g x g lattice at z = 0, normal +z, every sample inside."""
    grid = np.zeros((1, 7, g, g))
    grid[0, 0], grid[0, 1] = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
    grid[0, 5] = 1.0
    grid[0, 6] = 1.0
    return grid


def test_polygons_follow_the_trimming_mask():
    grid = np.concatenate([_flat_grid(), _flat_grid()])
    grid[0, 6, 0, 0] = 0.0  # face 0: one corner trimmed away, its cell becomes a triangle
    grid[1, 6] = 0.0
    grid[1, 6, 1, 1] = grid[1, 6, 2, 2] = 1.0  # face 1: two isolated samples, no cell
    polygons, owner, points, point_owner = draw.face_polygons(torch.from_numpy(grid))
    assert owner.tolist() == [0, 0, 0, 0]
    assert [len(p) for p in polygons] == [3, 4, 4, 4]
    np.testing.assert_array_equal(polygons[0], [[1, 0, 0], [1, 1, 0], [0, 1, 0]])  # corners (1,0) (1,1) (0,1)
    np.testing.assert_array_equal(polygons[3], [[1, 1, 0], [2, 1, 0], [2, 2, 0], [1, 2, 0]])
    assert point_owner.tolist() == [1]
    np.testing.assert_array_equal(points[0], [[1, 1, 0], [2, 2, 0]])
    with pytest.raises(DataError, match=r"face_grid must have shape \[faces, 7, g, g\].*got \[1, 6, 3, 3\]"):
        draw.face_polygons(np.zeros((1, 6, 3, 3)))


def test_bad_labels_are_named():
    grid = _flat_grid()
    with pytest.raises(DataError, match="pred_labels has 2 entries for a part with 1 faces"):
        draw.draw_faces(grid, [0], [0, 1], ["a", "b"])
    with pytest.raises(DataError, match="true_labels holds class 5, outside 0..1"):
        draw.draw_faces(grid, [5], [0], ["a", "b"])
    with pytest.raises(DataError, match="class_names is empty"):
        draw.draw_faces(grid, [0], [0], [])


@pytest.fixture(scope="module")
def part(parts_dir):
    from graphssl.brep.adapter import step_to_graphs

    graph = step_to_graphs(parts_dir / "part_00000.step")[0]
    labels = [int(v) for v in (parts_dir / "part_00000.labels").read_text().split()]
    names = (parts_dir / "classes.txt").read_text().split()
    return graph, labels, names


def test_each_face_is_drawn_in_its_class_colour(part, tmp_path, monkeypatch):
    pytest.importorskip("OCP")
    from mpl_toolkits.mplot3d import art3d

    graph, truth, names = part
    faces = graph.face_grid.size(0)
    assert len(truth) == faces and len(set(truth)) > 1
    pred = list(truth)
    pred[0] = (truth[0] + 1) % len(names)  # one wrong face
    passed = []

    class Recording(art3d.Poly3DCollection):
        def __init__(self, polygons, **kwargs):
            passed.append((len(polygons), np.asarray(kwargs["facecolors"]), np.asarray(kwargs["edgecolors"])))
            super().__init__(polygons, **kwargs)

    monkeypatch.setattr(art3d, "Poly3DCollection", Recording)
    path = draw.draw_faces(graph.face_grid, torch.tensor(truth), torch.tensor(pred), names,
                           tmp_path / "faces.png", title="part 0")
    png = path.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (1100, 594)
    _, owner, _, _ = draw.face_polygons(graph.face_grid)
    assert set(owner.tolist()) == set(range(faces))  # every face of this part has cells to draw
    colors = draw.class_colors(len(names))
    (n_true, true_faces, true_edges), (n_pred, pred_faces, pred_edges) = passed  # left panel, right panel
    assert n_true == n_pred == len(owner)
    np.testing.assert_allclose(true_faces, colors[np.asarray(truth)[owner]])
    np.testing.assert_allclose(pred_faces, colors[np.asarray(pred)[owner]])
    black = np.all(pred_edges == [0, 0, 0, 1], axis=1)
    assert np.array_equal(black, owner == 0)  # only the wrong face is outlined
    assert not np.all(true_edges == [0, 0, 0, 1], axis=1).any()
    assert len({tuple(c) for c in colors}) == len(names) == 9


def _config(run: Path, parts_dir: Path, cache: Path):
    from graphssl.core.config import load_config

    values = [f"output_dir={run}", f"cache_dir={cache}", "progress=false", "threads=1", "model.backbone=gine",
              "model.hidden=16", "model.num_layers=1", f"finetune.task.path={parts_dir}", "finetune.split=random",
              "finetune.epochs=1", "finetune.batch_size=8", "finetune.save_checkpoints=false"]
    return load_config(None, values)


def test_finetuning_draws_test_parts_and_a_failing_drawer_only_warns(parts_dir, cache, tmp_path, monkeypatch):
    pytest.importorskip("OCP")
    from graphssl.engine.finetune import finetune

    result = finetune(_config(tmp_path / "ok", parts_dir, cache))
    drawn = sorted(p.name for p in (tmp_path / "ok").glob("faces_test_*.png"))
    assert drawn == [f"faces_test_{i}.png" for i in range(min(4, 3))]  # 30 parts split 80/10/10: 3 test parts

    def broken(*args, **kwargs):
        raise RuntimeError("no display")

    monkeypatch.setattr(draw, "draw_faces", broken)
    with pytest.warns(RuntimeWarning, match=r"could not draw the face pictures .*RuntimeError: no display"):
        again = finetune(_config(tmp_path / "broken", parts_dir, cache))
    assert json.loads((tmp_path / "broken" / "result.json").read_text())["test"] == pytest.approx(again.test)
    assert again.test == pytest.approx(result.test)  # same seed, same run: the picture changes nothing
    assert not list((tmp_path / "broken").glob("faces_test_*.png"))
