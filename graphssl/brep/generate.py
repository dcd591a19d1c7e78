"""Seeded generator of machining-feature parts with per-face labels (MFCAD-style).

Two class sets (``generate_dataset(..., classes=)``, ``graphssl data generate brep --classes``):
``basic`` (the default, :data:`FEATURE_CLASSES`, described below) and ``mfcad``, the 24
MFCAD++ features plus stock on a box stock (:mod:`graphssl.brep.mfcad`, which documents
its classes, placement and labelling rule). Both write the same layout.

The ``basic`` set: a part is a random stock (box, round bar or extruded L-profile) with 2 to 5 features
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

from graphssl.brep import _occ, mfcad, parts
from graphssl.core.errors import DataError

__all__ = ["CLASS_SETS", "FEATURE_CLASSES", "GenerationReport", "apply_feature", "generate_dataset",
           "generate_part", "part_seed", "write_step"]

FEATURE_CLASSES = ("stock", "through_hole", "blind_hole", "slot", "pocket", "step",
                   "chamfer", "fillet", "boss")
CLASS_SETS = {"basic": FEATURE_CLASSES, "mfcad": mfcad.MFCAD_CLASSES}
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
    """What :func:`generate_dataset` did.

    ``regenerated`` lists (part, attempt, reason) for whole parts rebuilt from the next
    sub-seed; ``skipped_features`` lists (part, feature, last failure) for ``mfcad``
    features dropped after their retries; ``class_counts`` counts faces per class.
    """

    out_dir: Path
    n_parts: int
    seed: int
    seconds: float
    regenerated: list[tuple[int, int, str]] = field(default_factory=list)
    class_counts: dict[str, int] = field(default_factory=dict)
    classes: str = "basic"
    workers: int = 1
    skipped_features: list[tuple[int, str, str]] = field(default_factory=list)
    feature_retries: int = 0  # failed tries of mfcad features (retried, or skipped after the last)

    @property
    def n_regenerated(self) -> int:
        return len(self.regenerated)

    @property
    def n_skipped_features(self) -> int:
        return len(self.skipped_features)

    @property
    def parts_per_second(self) -> float:
        return self.n_parts / self.seconds if self.seconds > 0 else float("inf")


def part_seed(seed: int, index: int, attempt: int) -> int:
    """The seed of part ``index``'s ``attempt``-th try: independent streams per part."""
    return int(np.random.SeedSequence([seed, index, attempt]).generate_state(1)[0])


def _build(classes: str, seed: int) -> tuple[TopoDS_Solid, list[int], list[tuple[str, str]], int]:
    if classes == "mfcad":
        part = mfcad.generate_part(seed)
        return part.solid, part.labels, part.skipped, part.failed_tries
    solid, labels = generate_part(seed)
    return solid, labels, [], 0


@dataclass
class _Made:
    index: int
    labels: list[int]
    regenerated: list[tuple[int, int, str]]
    skipped: list[tuple[int, str, str]]
    failed_tries: int


def _make_part(task: tuple[str, int, int, str]) -> _Made:
    """Build part ``index`` (rebuilding from the next sub-seed on failure) and write its files."""
    classes, seed, index, out = task
    regenerated: list[tuple[int, int, str]] = []
    for attempt in range(_MAX_ATTEMPTS):
        try:
            solid, labels, skipped, failed_tries = _build(classes, part_seed(seed, index, attempt))
            break
        except DataError as exc:
            regenerated.append((index, attempt, str(exc)))
    else:
        raise DataError(f"part {index} failed {_MAX_ATTEMPTS} times (seed {seed}); last: "
                        f"{regenerated[-1][2]}")
    stem = Path(out) / f"part_{index:05d}"
    write_step(solid, stem.with_suffix(".step"))
    stem.with_suffix(".labels").write_text("".join(f"{lab}\n" for lab in labels))
    return _Made(index, labels, regenerated, [(index, kind, why) for kind, why in skipped], failed_tries)


def _made_parts(tasks: list[tuple[str, int, int, str]], workers: int):
    """Results in part order, from this process or from ``workers`` processes."""
    if workers <= 1:
        yield from map(_make_part, tasks)
        return
    import multiprocessing as mp

    # Not fork: a forked child of a process whose OpenMP pool has run can deadlock.
    methods = mp.get_all_start_methods()
    context = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:
        context.set_forkserver_preload(["graphssl.brep.generate"])
    with context.Pool(workers) as pool:
        yield from pool.imap(_make_part, tasks)


def generate_dataset(n: int, out_dir: str | Path, seed: int = 0, progress: bool = True,
                     classes: str = "basic", workers: int = 1) -> GenerationReport:
    """Write ``n`` parts as ``part_00000.step`` + ``.labels`` and ``classes.txt``.

    ``classes`` picks the class set (:data:`CLASS_SETS`); ``workers`` processes build parts
    in parallel, with the same files as one. A part that fails to build is rebuilt from
    the next sub-seed; every retry, and every skipped ``mfcad`` feature, is recorded in the
    report, so nothing is dropped silently.
    """
    from tqdm.auto import tqdm

    if classes not in CLASS_SETS:
        raise DataError(f"unknown class set {classes!r} for the B-rep generator; expected one of "
                        f"{', '.join(CLASS_SETS)}")
    if n < 0:
        raise DataError(f"number of parts must be >= 0, got {n}")
    if workers < 1:
        raise DataError(f"workers must be >= 1, got {workers}")
    names = CLASS_SETS[classes]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "classes.txt").write_text("\n".join(names) + "\n")
    report = GenerationReport(out_dir=out, n_parts=n, seed=seed, seconds=0.0,
                              class_counts=dict.fromkeys(names, 0), classes=classes,
                              workers=workers)
    start = time.perf_counter()
    tasks = [(classes, seed, i, str(out)) for i in range(n)]
    bar = tqdm(total=n, desc=f"B-rep parts ({classes})", unit="part", disable=not progress)
    with bar:
        for made in _made_parts(tasks, workers):
            report.regenerated.extend(made.regenerated)
            report.skipped_features.extend(made.skipped)
            report.feature_retries += made.failed_tries
            for lab in made.labels:
                report.class_counts[names[lab]] += 1
            bar.update(1)
    report.seconds = time.perf_counter() - start
    return report
