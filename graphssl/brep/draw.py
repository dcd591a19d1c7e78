"""Pictures of B-rep parts with faces coloured by class, drawn with matplotlib 3D.

A face is drawn from its UV-grid samples (``face_grid`` of :mod:`graphssl.brep.adapter`):
the cells of the g x g grid become polygons in 3D, a full quad where all four corners lie on the
face (trimming mask 1) and a triangle where three do, so holes and trimmed-away parts of the UV
box stay open. Faces with fewer inside samples than one triangle are drawn as their points.

This module imports neither OpenCascade nor, until a picture is drawn, matplotlib: it reads
only the tensors a built data set already holds.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Batch

from graphssl.core.errors import DataError
from graphssl.core.io import atomic_write_bytes

__all__ = ["class_colors", "draw_faces", "face_polygons", "write_test_pictures"]

_INSIDE = 0.5  # trimming-mask threshold (the mask is 0 or 1)
_CORNERS = ((0, 0), (1, 0), (1, 1), (0, 1))  # a cell's corners in order around it


def class_colors(num_classes: int) -> np.ndarray:
    """RGBA colour of every class, ``[num_classes, 4]``: matplotlib's qualitative ``tab10`` (up to
    10 classes) or ``tab20`` (up to 20), evenly spaced ``hsv`` hues beyond."""
    from matplotlib import colormaps

    if num_classes < 1:
        raise DataError(f"num_classes must be at least 1, got {num_classes}")
    if num_classes <= 10:
        return np.asarray(colormaps["tab10"](np.arange(num_classes)))
    if num_classes <= 20:
        return np.asarray(colormaps["tab20"](np.arange(num_classes)))
    return np.asarray(colormaps["hsv"](np.arange(num_classes) / num_classes))


def _check_grid(face_grid: Any) -> np.ndarray:
    grid = face_grid.detach().cpu().numpy() if torch.is_tensor(face_grid) else np.asarray(face_grid)
    if grid.ndim != 4 or grid.shape[1] != 7 or grid.shape[2] != grid.shape[3] or grid.shape[2] < 2:
        raise DataError(f"face_grid must have shape [faces, 7, g, g] with g >= 2 (xyz, normal, trimming mask "
                        f"per UV sample), got {list(grid.shape)}")
    return grid


def face_polygons(face_grid: Any) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray], np.ndarray]:
    """Split the UV grids of a part's faces into drawable pieces.

    Returns ``(polygons, owner, points, point_owner)``: ``polygons`` are ``[3 or 4, 3]`` xyz
    arrays (grid cells with four or three corners on the face), ``owner[k]`` the face of
    polygon ``k``; ``points`` are ``[m, 3]`` inside samples of the faces too thin for a cell,
    with ``point_owner`` their faces.
    """
    grid = _check_grid(face_grid)
    polygons: list[np.ndarray] = []
    owner: list[int] = []
    points: list[np.ndarray] = []
    point_owner: list[int] = []
    g = grid.shape[2]
    for face in range(grid.shape[0]):
        xyz = grid[face, :3].transpose(1, 2, 0)  # [g, g, 3]
        inside = grid[face, 6] > _INSIDE  # [g, g]
        before = len(polygons)
        for i in range(g - 1):
            for j in range(g - 1):
                corners = [(i + di, j + dj) for di, dj in _CORNERS if inside[i + di, j + dj]]
                if len(corners) >= 3:
                    polygons.append(np.stack([xyz[c] for c in corners]))
                    owner.append(face)
        if len(polygons) == before and inside.any():
            points.append(xyz[inside])
            point_owner.append(face)
    return polygons, np.asarray(owner, dtype=np.int64), points, np.asarray(point_owner, dtype=np.int64)


def _labels(values: Any, faces: int, what: str, num_classes: int) -> np.ndarray:
    labels = values.detach().cpu().numpy() if torch.is_tensor(values) else np.asarray(values)
    labels = labels.reshape(-1)
    if labels.size != faces:
        raise DataError(f"{what} has {labels.size} entries for a part with {faces} faces; it needs one class per face")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise DataError(f"{what} holds class {bad}, outside 0..{num_classes - 1} of the {num_classes} class names")
    return labels.astype(np.int64)


def _panel(ax: Any, pieces: tuple, colors: np.ndarray, wrong: np.ndarray, title: str) -> None:
    """One 3D view: every piece coloured by its face's colour, wrong faces outlined in black."""
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    polygons, owner, points, point_owner = pieces
    if polygons:
        edges = np.where(wrong[owner][:, None], np.array([0.0, 0.0, 0.0, 1.0]), colors[owner] * [0.7, 0.7, 0.7, 1.0])
        # one collection for the whole part: matplotlib orders its polygons by depth one by one
        ax.add_collection3d(Poly3DCollection(polygons, facecolors=colors[owner], edgecolors=edges,
                                             linewidths=0.4))
    for pts, face in zip(points, point_owner):
        ax.scatter(pts[:, 0], pts[:, 1], pts[:, 2], s=6, color=colors[face],
                   edgecolors="black" if wrong[face] else "none", depthshade=False)
    ax.set(xlim=(-0.55, 0.55), ylim=(-0.55, 0.55), zlim=(-0.55, 0.55))
    ax.set_box_aspect((1, 1, 1), zoom=1.3)  # the part is scaled into a unit box: keep its proportions
    ax.view_init(elev=28, azim=-52)
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)


def draw_faces(
    face_grid: Any,
    true_labels: Any,
    pred_labels: Any,
    class_names: Sequence[str],
    out: str | os.PathLike | None = None,
    *,
    title: str | None = None,
    dpi: int = 110,
) -> bytes | Path:
    """Two 3D views of one part, faces coloured by true class (left) and predicted class (right),
    one colour per class (:func:`class_colors`) and a legend of the class names; in the right
    view, faces predicted wrongly are outlined in black and counted in the title.

    ``face_grid`` is the part's ``[F, 7, g, g]`` UV-grid tensor, the labels hold one class per
    face. Returns the PNG bytes, or writes them atomically to ``out`` and returns its path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    grid = _check_grid(face_grid)
    names = [str(n) for n in class_names]
    if not names:
        raise DataError("class_names is empty: the picture needs one name per class for its legend")
    faces = grid.shape[0]
    truth = _labels(true_labels, faces, "true_labels", len(names))
    pred = _labels(pred_labels, faces, "pred_labels", len(names))
    colors = class_colors(len(names))
    pieces = face_polygons(grid)
    wrong = truth != pred

    # Figure without pyplot: no global backend switch and no figure registry to leak into.
    fig = Figure(figsize=(10, 5.4))
    FigureCanvasAgg(fig)
    left = fig.add_subplot(1, 2, 1, projection="3d")
    right = fig.add_subplot(1, 2, 2, projection="3d")
    _panel(left, pieces, colors[truth], np.zeros(faces, dtype=bool), f"true class ({faces} faces)")
    _panel(right, pieces, colors[pred], wrong,
           f"predicted class: {int(wrong.sum())} of {faces} faces wrong (black outline)")
    handles = [Patch(facecolor=colors[k], edgecolor="0.3", label=name) for k, name in enumerate(names)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(names), 5), fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(left=0.0, right=1.0, top=0.9, bottom=0.12, wspace=0.0)
    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    png = buffer.getvalue()
    if out is None:
        return png
    return atomic_write_bytes(png, Path(out).expanduser())


@torch.no_grad()
def write_test_pictures(
    model: nn.Module,
    state: dict[str, torch.Tensor] | None,
    parts: Any,
    device: torch.device,
    out_dir: str | os.PathLike,
    class_names: Sequence[str],
    limit: int = 4,
) -> list[Path]:
    """Draw the first ``limit`` parts of ``parts`` (a labelled B-rep data set, e.g. the test split)
    with their true and predicted face classes into ``out_dir/faces_test_<i>.png``.

    ``state`` (the selected epoch's weights; ``None``: the model as it is) is loaded into a copy
    of ``model``. A picture is never worth a run: any failure is a warning, and the paths
    written so far are returned.
    """
    written: list[Path] = []
    try:
        if state is not None:
            model = copy.deepcopy(model)
            model.load_state_dict(state)
        model.eval()
        for i in range(min(limit, len(parts))):
            part = parts[i]
            pred = model(Batch.from_data_list([part]).to(device)).argmax(-1).cpu()
            name = getattr(part, "name", None)
            title = f"test part {i}" + (f": {name}" if isinstance(name, str) else "")
            written.append(draw_faces(part.face_grid, part.y, pred, class_names,
                                      Path(out_dir) / f"faces_test_{i}.png", title=title))
    except Exception as exc:  # noqa: BLE001  (drawing must never fail a finished run)
        warnings.warn(f"could not draw the face pictures of the test parts into {out_dir} "
                      f"({type(exc).__name__}: {exc}); the run's results are unaffected", RuntimeWarning, stacklevel=2)
    return written
