"""Seeded generator of machining-feature parts with per-face labels (MFCAD-style).

A part is a random stock (box, round bar or extruded L-profile) with 2 to 5 features
(fewer when no free spot is found, never none), each one of: through hole, blind hole,
slot, pocket, step (cut with ``BRepAlgoAPI_Cut``), boss (fused with ``BRepAlgoAPI_Fuse``),
chamfer and fillet (``BRepFilletAPI``, on a straight edge between two stock faces). Features are placed on planar stock sides so that their bounding
boxes do not overlap, which keeps each feature's faces recognisable.

Labelling rule (kernel history, applied after every operation): a face of the result that
is an image of a face of the previous part (unchanged, or listed by ``Modified`` of that
face, and not ``IsDeleted``) keeps that face's label; every other face of the result is
new, made from the tool or ``Generated`` by the fillet/chamfer, and gets the current
feature's class. Tools overshoot the stock on open sides, so no tool face is coplanar with
a part face and this rule never has to split a merged face between two classes. Faces of
the stock start as ``stock``. The final labels follow ``TopExp.MapShapes_s`` face order,
which :func:`graphssl.brep.adapter.solid_to_data` uses and STEP export/import keeps.

A part whose operation fails, or whose result is not exactly one solid passing
``BRepCheck_Analyzer``, raises :class:`~graphssl.core.errors.DataError`;
:func:`generate_dataset` then rebuilds that part from the next sub-seed and counts it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

try:  # the CAD extra is optional; say how to get it instead of a bare ModuleNotFoundError
    import OCP  # noqa: F401
except ImportError as exc:
    raise ImportError(f"{__name__} needs the OpenCascade bindings: "
                      "pip install 'graphssl-pretrain[cad]'") from exc
from OCP.BRepAlgoAPI import BRepAlgoAPI_Cut, BRepAlgoAPI_Fuse
from OCP.BRepCheck import BRepCheck_Analyzer
from OCP.BRepFilletAPI import BRepFilletAPI_MakeChamfer, BRepFilletAPI_MakeFillet
from OCP.TopAbs import TopAbs_FACE
from OCP.TopoDS import TopoDS_Edge, TopoDS_Shape, TopoDS_Solid

from graphssl.brep import _occ
from graphssl.brep import parts
from graphssl.core.errors import DataError

__all__ = ["FEATURE_CLASSES", "GenerationReport", "apply_feature", "generate_dataset",
           "generate_part", "part_seed", "write_step"]

FEATURE_CLASSES = ("stock", "through_hole", "blind_hole", "slot", "pocket", "step",
                   "chamfer", "fillet", "boss")
_MAX_ATTEMPTS = 50


def generate_part(seed: int) -> tuple[TopoDS_Solid, list[int]]:
    """One labelled part: the solid and a class index per face (``MapShapes_s`` order).

    Raises DataError when an operation fails or the result is not one valid solid.
    """
    rng = np.random.default_rng(seed)
    stock = parts.make_stock(rng)
    solid: TopoDS_Shape = stock.solid
    labels = [0] * len(_occ.faces(solid))
    boxes: list[np.ndarray] = []
    target, applied = int(rng.integers(2, 6)), 0
    for _ in range(3 * target):
        if applied == target:
            break
        kind = FEATURE_CLASSES[int(rng.integers(1, len(FEATURE_CLASSES)))]
        op = parts.plan_feature(kind, rng, stock, solid, labels, boxes)
        if op is None:  # no free spot for this feature on this part: draw another
            continue
        try:
            solid, labels = apply_feature(solid, labels, kind, op.tool, edges=op.edges,
                                          size=op.size)
        except DataError as exc:
            raise DataError(f"part from seed {seed}: {exc}") from exc
        applied += 1
    if applied == 0:
        raise DataError(f"part from seed {seed}: no feature fitted on the stock")
    if not BRepCheck_Analyzer(solid).IsValid():
        raise DataError(f"part from seed {seed} is not a valid solid (BRepCheck_Analyzer)")
    return solid, labels


def apply_feature(solid: TopoDS_Shape, labels: Sequence[int], kind: str,
                  tool: TopoDS_Shape | None = None, *, edges: Sequence[TopoDS_Edge] = (),
                  size: float = 0.0) -> tuple[TopoDS_Solid, list[int]]:
    """Add one feature to a labelled solid and carry the labels across (module docstring).

    ``tool`` is cut away (fused for ``boss``); ``fillet`` and ``chamfer`` round or bevel
    ``edges`` with radius/distance ``size``. Raises DataError when the kernel fails or
    the result is not exactly one solid.
    """
    if kind not in FEATURE_CLASSES[1:]:
        raise DataError(f"unknown feature {kind!r}; expected one of {FEATURE_CLASSES[1:]}")
    if (tool is None) != (kind in ("fillet", "chamfer")):
        raise DataError(f"feature {kind!r} needs " + ("edges and a size, not a tool"
                        if tool is not None else "a tool solid"))
    try:
        if kind == "boss":
            algo = BRepAlgoAPI_Fuse(solid, tool)
        elif tool is not None:
            algo = BRepAlgoAPI_Cut(solid, tool)
        else:
            algo = (BRepFilletAPI_MakeFillet(solid) if kind == "fillet"
                    else BRepFilletAPI_MakeChamfer(solid))
            for edge in edges:
                algo.Add(size, edge)
            algo.Build()
        done = algo.IsDone()
        result = algo.Shape() if done else None
    except Exception as exc:  # OCP raises Standard_Failure subclasses on bad geometry
        raise DataError(f"{kind} raised {exc!r}") from exc
    if not done:
        raise DataError(f"{kind} did not complete")
    found = _occ.solids(result)
    if len(found) != 1:
        raise DataError(f"{kind} left {len(found)} solids, expected 1")
    new = found[0]
    index = _occ.ShapeIndex(new, TopAbs_FACE)
    label = FEATURE_CLASSES.index(kind)
    new_labels = [label] * len(index)
    for face, old in zip(_occ.faces(solid), labels):
        if algo.IsDeleted(face):
            continue
        # An untouched face is its own image; Modified lists the pieces of a changed one.
        for img in list(algo.Modified(face)) or [face]:
            j = index.index(img)
            if j >= 0:
                new_labels[j] = old
    return new, new_labels


def write_step(solid: TopoDS_Shape, path: str | Path) -> None:
    """Write one solid as STEP (AP214, mm), byte-identical for identical solids.

    The header time stamp is fixed and the product is named after the file.
    """
    from OCP.APIHeaderSection import APIHeaderSection_MakeHeader
    from OCP.IFSelect import IFSelect_RetDone
    from OCP.StepBasic import StepBasic_Product
    from OCP.STEPControl import STEPControl_AsIs, STEPControl_Writer
    from OCP.TCollection import TCollection_HAsciiString

    name = TCollection_HAsciiString(Path(path).stem)
    with _occ.quiet():
        writer = STEPControl_Writer()
        if writer.Transfer(solid, STEPControl_AsIs) != IFSelect_RetDone:
            raise DataError(f"could not convert the solid to STEP for {str(path)!r}")
        model = writer.Model()
        # The writer names products with a per-process counter and stamps the wall
        # clock; fix both so the same solid always gives the same bytes.
        for i in range(1, model.NbEntities() + 1):
            entity = model.Value(i)
            if isinstance(entity, StepBasic_Product):
                entity.SetId(name)
                entity.SetName(name)
                break
        header = APIHeaderSection_MakeHeader(model)
        header.SetTimeStamp(TCollection_HAsciiString("2000-01-01T00:00:00"))
        status = writer.Write(str(path))
    if status != IFSelect_RetDone:
        raise DataError(f"could not write STEP file {str(path)!r} (status {status.name})")


@dataclass
class GenerationReport:
    """What :func:`generate_dataset` did; ``regenerated`` lists (part, attempt, reason)."""

    out_dir: Path
    n_parts: int
    seed: int
    seconds: float
    regenerated: list[tuple[int, int, str]] = field(default_factory=list)
    class_counts: dict[str, int] = field(default_factory=dict)

    @property
    def n_regenerated(self) -> int:
        return len(self.regenerated)

    @property
    def parts_per_second(self) -> float:
        return self.n_parts / self.seconds if self.seconds > 0 else float("inf")


def part_seed(seed: int, index: int, attempt: int) -> int:
    """The seed of part ``index``'s ``attempt``-th try: independent streams per part."""
    return int(np.random.SeedSequence([seed, index, attempt]).generate_state(1)[0])


def generate_dataset(n: int, out_dir: str | Path, seed: int = 0,
                     progress: bool = True) -> GenerationReport:
    """Write ``n`` parts as ``part_00000.step`` + ``.labels`` and ``classes.txt``.

    A part that fails to build is rebuilt from the next sub-seed; every retry is
    recorded in the report, so nothing is dropped silently.
    """
    from tqdm.auto import tqdm

    if n < 0:
        raise DataError(f"number of parts must be >= 0, got {n}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "classes.txt").write_text("\n".join(FEATURE_CLASSES) + "\n")
    report = GenerationReport(out_dir=out, n_parts=n, seed=seed, seconds=0.0,
                              class_counts=dict.fromkeys(FEATURE_CLASSES, 0))
    start = time.perf_counter()
    for i in tqdm(range(n), desc="B-rep parts", unit="part", disable=not progress):
        for attempt in range(_MAX_ATTEMPTS):
            try:
                solid, labels = generate_part(part_seed(seed, i, attempt))
                break
            except DataError as exc:
                report.regenerated.append((i, attempt, str(exc)))
        else:
            raise DataError(f"part {i} failed {_MAX_ATTEMPTS} times (seed {seed}); last: "
                            f"{report.regenerated[-1][2]}")
        stem = out / f"part_{i:05d}"
        write_step(solid, stem.with_suffix(".step"))
        stem.with_suffix(".labels").write_text("".join(f"{lab}\n" for lab in labels))
        for lab in labels:
            report.class_counts[FEATURE_CLASSES[lab]] += 1
    report.seconds = time.perf_counter() - start
    return report
