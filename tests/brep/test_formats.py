"""Public B-rep segmentation data sets read as downloaded: MFCAD++ face names, MFCAD face ids
with .face_truth, and the Fusion 360 Gallery segmentation layout."""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path

import pytest
import torch

pytest.importorskip("OCP")

from OCP.BRepAdaptor import BRepAdaptor_Surface  # noqa: E402
from OCP.BRepAlgoAPI import BRepAlgoAPI_Cut  # noqa: E402
from OCP.BRepGProp import BRepGProp  # noqa: E402
from OCP.BRepPrimAPI import BRepPrimAPI_MakeBox, BRepPrimAPI_MakeCylinder  # noqa: E402
from OCP.GeomAbs import GeomAbs_Cylinder  # noqa: E402
from OCP.gp import gp_Ax2, gp_Dir, gp_Pnt  # noqa: E402
from OCP.GProp import GProp_GProps  # noqa: E402
from OCP.STEPControl import STEPControl_AsIs, STEPControl_Writer  # noqa: E402

from graphssl.brep import _occ  # noqa: E402
from graphssl.brep.adapter import SURFACE_TYPES, read_step  # noqa: E402
from graphssl.brep.formats import (  # noqa: E402
    FUSION360_CLASSES,
    MFCAD_ORIGINAL_CLASSES,
    MFCADPP_CLASSES,
    face_names,
    read_face_truth,
)
from graphssl.core.config import DataConfig, FinetuneConfig  # noqa: E402
from graphssl.core.errors import ConfigError, DataError  # noqa: E402
from graphssl.data.builder import build_or_load  # noqa: E402
from graphssl.data.sources import SOURCES  # noqa: E402
from graphssl.data.splits import make_split  # noqa: E402

torch.set_num_threads(1)
CYLINDER = SURFACE_TYPES.index("cylinder")

# The class each face of the test part carries, by where the face is: a box [0,a]x[0,b]x[0,c]
# whose faces are named by their outward normal, with a vertical hole through it.
TRUTH = {"+x": 3, "-x": 0, "+y": 5, "-y": 1, "+z": 2, "-z": 4, "hole": 6}


def holed_box(size: tuple[float, float, float] = (4.0, 3.0, 2.0), radius: float = 0.5):
    a, b, c = size
    box = BRepPrimAPI_MakeBox(a, b, c).Shape()
    axis = gp_Ax2(gp_Pnt(a / 2, b / 2, -1.0), gp_Dir(0, 0, 1))
    return BRepAlgoAPI_Cut(box, BRepPrimAPI_MakeCylinder(axis, radius, c + 2.0).Shape()).Shape()


def write_part(path: Path, **kwargs) -> Path:
    writer = STEPControl_Writer()
    with _occ.quiet():
        writer.Transfer(holed_box(**kwargs), STEPControl_AsIs)
        writer.Write(str(path))
    return path


def kernel_key(face) -> str:
    """Where a face of the holed box is, from the kernel's own geometry."""
    surface = BRepAdaptor_Surface(face)
    if surface.GetType() == GeomAbs_Cylinder:
        return "hole"
    props = GProp_GProps()
    BRepGProp.SurfaceProperties_s(face, props)
    centre = props.CentreOfMass()
    plane = surface.Plane()
    normal = plane.Axis().Direction()
    if face.Orientation().name.endswith("REVERSED"):
        normal = normal.Reversed()
    axis = max(range(3), key=lambda i: abs(normal.Coord(i + 1)))
    assert abs(normal.Coord(axis + 1)) > 0.99, (centre.X(), centre.Y(), centre.Z())
    return ("+" if normal.Coord(axis + 1) > 0 else "-") + "xyz"[axis]


def graph_key(data, face: int) -> str:
    """Where a graph node's face is, from its UV grid: the mean outward normal of its samples."""
    if int(data.x[face, 0]) == CYLINDER:
        return "hole"
    grid = data.face_grid[face]
    inside = grid[6] > 0.5
    normal = grid[3:6][:, inside].mean(dim=1)
    axis = int(normal.abs().argmax())
    assert float(normal.abs()[axis]) > 0.99
    return ("+" if float(normal[axis]) > 0 else "-") + "xyz"[axis]


# -------------------------------------------------------------------------- STEP text edits

_ENTITY = re.compile(r"#(\d+)\s*=\s*([A-Z0-9_]+)\s*\((.*?)\)\s*;", re.DOTALL)


def step_entities(text: str) -> dict[int, tuple[str, str]]:
    return {int(n): (kind, args) for n, kind, args in _ENTITY.findall(text)}


def _numbers(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"-?\d+\.?\d*(?:E[-+]?\d+)?", text)]


def text_key(entities: dict[int, tuple[str, str]], face: int, size: tuple[float, float, float]) -> str:
    """Where an ADVANCED_FACE entity is, read from the STEP text alone (its surface and placement)."""
    surface = int(re.findall(r"#(\d+)", entities[face][1])[-1])
    kind, args = entities[surface]
    if kind == "CYLINDRICAL_SURFACE":
        return "hole"
    assert kind == "PLANE"
    placement = entities[int(re.findall(r"#(\d+)", args)[0])][1]
    point_ref, dir_ref = (int(r) for r in re.findall(r"#(\d+)", placement)[:2])
    point, direction = _numbers(entities[point_ref][1]), _numbers(entities[dir_ref][1])
    axis = max(range(3), key=lambda i: abs(direction[i]))
    return ("+" if point[axis] > size[axis] / 2 else "-") + "xyz"[axis]


def relabel(path: Path, name_of: dict[str, str], size: tuple[float, float, float],
            reverse_shell: bool = True) -> list[str]:
    """Set each ADVANCED_FACE's name to ``name_of[its place]`` and (``reverse_shell``) reverse the
    shell's face list, so that the kernel enumerates faces in another order than the entities
    appear in the file. Returns the places of the ADVANCED_FACE entities in file order."""
    text = path.read_text()
    entities = step_entities(text)
    faces = sorted(n for n, (kind, _) in entities.items() if kind == "ADVANCED_FACE")
    places = [text_key(entities, n, size) for n in faces]
    for n, place in zip(faces, places):
        text, count = re.subn(rf"#{n}\s*=\s*ADVANCED_FACE\s*\(\s*''", f"#{n} = ADVANCED_FACE('{name_of[place]}'", text)
        assert count == 1
    if reverse_shell:
        shell = next(n for n, (kind, _) in entities.items() if kind == "CLOSED_SHELL")
        refs = re.findall(r"#\d+", entities[shell][1])
        text, count = re.subn(rf"#{shell}\s*=\s*CLOSED_SHELL\s*\(.*?\)\s*\)\s*;",
                              f"#{shell} = CLOSED_SHELL('',({','.join(reversed(refs))}));", text, flags=re.DOTALL)
        assert count == 1
    path.write_text(text)
    return places


def load(name: str, root: Path, cache: Path, **options):
    """Build the registered data set ``name`` from the local copy at ``root``."""
    entry = SOURCES.get(name)
    config = DataConfig(name=name, path=str(root), **options)
    source = entry.open(config, cache, False)
    return build_or_load(source, entry.recipe, config, cache, progress=False, verbose=False)


# -------------------------------------------------------------------------- MFCAD++


def mfcadpp_copy(root: Path) -> dict[str, list[str]]:
    """An MFCAD++ layout (step/train, step/val, step/test) of holed boxes of different sizes,
    labelled through their ADVANCED_FACE names; returns each file's entity places in file order."""
    sizes = {"train": [(4.0, 3.0, 2.0), (5.0, 3.5, 2.5)], "val": [(4.5, 3.2, 2.2)], "test": [(3.8, 2.9, 1.9)]}
    places = {}
    for folder, shapes in sizes.items():
        (root / "step" / folder).mkdir(parents=True)
        for k, size in enumerate(shapes):
            path = write_part(root / "step" / folder / f"{k}.step", size=size)
            places[f"{folder}/{k}"] = relabel(path, {p: str(c) for p, c in TRUTH.items()}, size)
    return places


def test_mfcadpp_labels_follow_the_face_entities_not_their_order(tmp_path):
    size = (4.0, 3.0, 2.0)
    path = write_part(tmp_path / "part.step", size=size)
    file_order = relabel(path, {p: str(c) for p, c in TRUTH.items()}, size)

    [(solid, names)] = face_names(path)
    kernel_places = [kernel_key(f) for f in _occ.faces(solid)]
    assert sorted(kernel_places) == sorted(TRUTH)
    # the names read back sit on the faces they were written for
    assert [int(n) for n in names] == [TRUTH[p] for p in kernel_places]
    # ...and reading them by position (entity order in the file) would have put them elsewhere
    assert [TRUTH[p] for p in file_order] != [TRUTH[p] for p in kernel_places]


def test_mfcadpp_dataset_is_segmentation_ready(tmp_path):
    places = mfcadpp_copy(tmp_path / "MFCAD++_dataset")
    data = load("mfcadpp", tmp_path / "MFCAD++_dataset", tmp_path / "cache")
    assert len(data) == 4 and data.task_type == "segmentation" and data.metric == "miou"
    assert data.class_names == MFCADPP_CLASSES and data.num_classes == 25
    assert sorted(data.names) == sorted(places)
    for i in range(len(data)):
        graph = data[i]
        assert graph.y.shape == (graph.num_nodes,) and graph.y.dtype == torch.long
        assert graph.face_grid.shape[:2] == (graph.num_nodes, 7)
        assert [int(v) for v in graph.y] == [TRUTH[graph_key(graph, f)] for f in range(graph.num_nodes)]
        assert [data.class_names[int(v)] for v in graph.y].count("chamfer") == 1  # the -x face, class 0

    split = make_split(data, FinetuneConfig(split="official"))
    assert sorted(data.names[i] for i in split.train) == ["train/0", "train/1"]
    assert [data.names[i] for i in split.valid] == ["val/0"]
    assert [data.names[i] for i in split.test] == ["test/0"]


def test_mfcadpp_classes_are_the_generators_classes():
    mfcad = pytest.importorskip("graphssl.brep.mfcad")
    assert MFCADPP_CLASSES == tuple(mfcad.MFCAD_CLASSES) and MFCADPP_CLASSES[24] == "stock"


def test_mfcadpp_face_without_a_class_name_is_a_bad_record(tmp_path):
    root = tmp_path / "copy"
    mfcadpp_copy(root)
    bad = root / "step" / "train" / "1.step"
    bad.write_text(bad.read_text().replace("ADVANCED_FACE('6'", "ADVANCED_FACE('hole'"))
    with pytest.raises(DataError, match=r"1\.step.*the name 'hole', expected its class"):
        load("mfcadpp", root, tmp_path / "cache")
    data = load("mfcadpp", root, tmp_path / "cache", on_error="skip")
    assert len(data) == 3 and [s.input for s in data.report.skipped] == ["1.step"]


def test_mfcadpp_missing_folders_name_what_is_missing_and_where_to_get_it(tmp_path):
    (tmp_path / "copy" / "step" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match=r"step/val/, step/test/ are missing.*MFCAD\+\+.*nothing is downloaded"):
        load("mfcadpp", tmp_path / "copy", tmp_path / "cache")
    with pytest.raises(DataError, match=r"reads your local copy of MFCAD\+\+: set data.path"):
        SOURCES.get("mfcadpp").open(DataConfig(name="mfcadpp"), tmp_path, False)


# -------------------------------------------------------------------------- MFCAD


def test_mfcad_face_ids_index_the_face_truth_file(tmp_path):
    folder = tmp_path / "MFCAD" / "dataset" / "step"
    folder.mkdir(parents=True)
    size = (4.0, 3.0, 2.0)
    path = write_part(folder / "0-0-0-0-0-23.step", size=size)
    ids = {p: k for k, p in enumerate(["hole", "+z", "-x", "+y", "-z", "+x", "-y"])}  # face id of each place
    relabel(path, {p: str(i) for p, i in ids.items()}, size)
    truth = [0] * len(ids)
    for place, face_id in ids.items():
        truth[face_id] = TRUTH[place] + 8  # MFCAD classes 8..14
    (folder / "0-0-0-0-0-23.face_truth").write_bytes(pickle.dumps(truth))

    data = load("mfcad", tmp_path / "MFCAD", tmp_path / "cache")
    graph = data[0]
    assert data.class_names == MFCAD_ORIGINAL_CLASSES
    assert [int(v) for v in graph.y] == [TRUTH[graph_key(graph, f)] + 8 for f in range(graph.num_nodes)]
    with pytest.raises(ConfigError, match="has none: use random"):
        make_split(data, FinetuneConfig(split="official"))


def test_face_truth_refuses_pickles_that_reference_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("true",))

    path = tmp_path / "x.face_truth"
    path.write_bytes(pickle.dumps([1, Payload()]))
    with pytest.raises(DataError, match=r"'x.face_truth' is not a plain pickled list.*references .*system"):
        read_face_truth(path)
    path.write_bytes(pickle.dumps({1: 3, 0: 2}))
    assert read_face_truth(path) == [2, 3]
    path.write_bytes(pickle.dumps("0 1 2"))
    with pytest.raises(DataError, match="holds a str, expected a list of integer classes"):
        read_face_truth(path)


# -------------------------------------------------------------------------- Fusion 360


FUSION_TRUTH = {"+x": 0, "-x": 0, "+y": 0, "-y": 0, "+z": 1, "-z": 1, "hole": 2}  # ExtrudeSide/End, CutSide


def fusion_copy(root: Path, names_file: bool = True) -> None:
    """A Fusion 360 segmentation layout: breps/step/*.stp, breps/seg/*.seg in the B-rep face
    order, train_test.json and segment_names.json."""
    (root / "breps" / "step").mkdir(parents=True)
    (root / "breps" / "seg").mkdir(parents=True)
    sizes = {"20203_7e31e92a_0000": (4.0, 3.0, 2.0), "20440_27177360_0003": (5.0, 2.5, 1.5),
             "21492_8bd34fc1_0008": (3.0, 3.0, 3.0)}
    for stem, size in sizes.items():
        path = write_part(root / "breps" / "step" / f"{stem}.stp", size=size)
        [solid] = read_step(path)
        labels = [FUSION_TRUTH[kernel_key(f)] for f in _occ.faces(solid)]
        (root / "breps" / "seg" / f"{stem}.seg").write_text("".join(f"{v}\n" for v in labels))
    (root / "train_test.json").write_text(json.dumps({"train": ["20440_27177360_0003", "21492_8bd34fc1_0008"],
                                                       "test": ["20203_7e31e92a_0000"]}))
    if names_file:
        (root / "segment_names.json").write_text(json.dumps({str(k): n for k, n in enumerate(FUSION360_CLASSES)}))


def test_fusion360_labels_land_on_their_faces_and_the_shipped_split_is_used(tmp_path):
    root = tmp_path / "s2.0.0"
    fusion_copy(root)
    data = load("fusion360-seg", root, tmp_path / "cache")
    assert len(data) == 3 and data.class_names == FUSION360_CLASSES and data.task_type == "segmentation"
    for i in range(len(data)):
        graph = data[i]
        assert graph.y.shape == (graph.num_nodes,)
        assert [int(v) for v in graph.y] == [FUSION_TRUTH[graph_key(graph, f)] for f in range(graph.num_nodes)]
        assert data.class_names[int(graph.y[[graph_key(graph, f) for f in range(graph.num_nodes)].index("hole")])] \
            == "CutSide"

    split = make_split(data, FinetuneConfig(split="official", split_fractions=[0.5, 0.3, 0.2]))
    assert [data.names[i] for i in split.test] == ["20203_7e31e92a_0000"]
    assert len(split.valid) == 1 and len(split.train) == 1
    assert {data.names[i] for i in [*split.train, *split.valid]} == {"20440_27177360_0003", "21492_8bd34fc1_0008"}


def test_fusion360_face_count_mismatch_names_the_file_and_both_counts(tmp_path):
    root = tmp_path / "s2.0.0"
    fusion_copy(root, names_file=False)
    seg = root / "breps" / "seg" / "20440_27177360_0003.seg"
    seg.write_text("".join(seg.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(DataError, match=r"'20440_27177360_0003.seg' has 6 labels but '20440_27177360_0003.stp' "
                                        r"has 7 faces.*data.on_error=skip"):
        load("fusion360-seg", root, tmp_path / "cache")
    data = load("fusion360-seg", root, tmp_path / "cache", on_error="skip")
    assert len(data) == 2 and data.class_names == FUSION360_CLASSES  # the documented list, no segment_names.json
    [skipped] = data.report.skipped
    assert skipped.input == "20440_27177360_0003.stp" and "has 6 labels but" in skipped.reason


def test_fusion360_missing_layout_names_what_is_missing(tmp_path):
    root = tmp_path / "s2.0.0"
    fusion_copy(root)
    (root / "train_test.json").unlink()
    for seg in (root / "breps" / "seg").iterdir():
        seg.unlink()
    (root / "breps" / "seg").rmdir()
    with pytest.raises(DataError, match=r"breps/seg/, train_test.json are missing \(expected a folder holding "
                                        r"breps/step, breps/seg and train_test.json\).*Fusion360GalleryDataset"):
        load("fusion360-seg", root, tmp_path / "cache")


def test_fusion360_part_listed_without_step_file_is_reported(tmp_path):
    root = tmp_path / "s2.0.0"
    fusion_copy(root)
    split = json.loads((root / "train_test.json").read_text())
    split["test"].append("99999_00000000_0000")
    (root / "train_test.json").write_text(json.dumps(split))
    data = load("fusion360-seg", root, tmp_path / "cache", on_error="skip")
    assert len(data) == 3
    [skipped] = data.report.skipped
    assert "99999_00000000_0000.step" in skipped.reason and "does not exist" in skipped.reason


def test_fusion360_fine_tunes_unchanged_on_the_official_split(tmp_path):
    from graphssl.core.config import load_config
    from graphssl.engine.finetune import finetune

    root = tmp_path / "s2.0.0"
    fusion_copy(root)
    # the user's config names the data set and its local copy; the shipped split is used as is
    config = load_config(None, [f"output_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}", "progress=false",
                                "threads=1", "model.hidden=16", "model.num_layers=1",
                                "finetune.task.name=fusion360-seg", f"finetune.task.path={root}",
                                "finetune.split=official", "finetune.split_fractions=[0.5,0.3,0.2]",
                                "finetune.epochs=1", "finetune.batch_size=2", "finetune.save_checkpoints=false"])
    result = finetune(config)
    assert result.num_classes == len(FUSION360_CLASSES) and result.train_size == 1
    assert 0 <= result.test <= 1 and 0 <= result.test_accuracy <= 1
