"""Embeddings from a pretrained encoder: one vector per input record, or one per node.

:func:`embed` maps in-memory inputs (SMILES, RDKit molecules, ASE ``Atoms``, pymatgen
structures, STEP file paths) or a data file / folder to a numpy array plus an index that says
which input record each row belongs to. :func:`embed_file` (``graphssl embed``) streams a
data file or folder to ``.npy`` (with ``<stem>.index.csv``), ``.csv`` or ``.parquet``.

How it reads its input: records come from the same input kinds and the same per-record
featurisers as :func:`graphssl.load_dataset` (a file is of the kind its name says, a folder of
the kind of files it holds), record by record, so memory stays bounded by one batch and
nothing is written to the data cache. Embedding reads no labels: label columns, ``.labels``
files and a frame's energy and forces are ignored, and repeated records are all embedded. A
record that cannot be featurised is skipped and listed in the index with its reason (or stops
the run under ``on_error="raise"``); the rows of the output never shift silently.

The encoder runs in eval mode (batch norm uses its stored statistics, so a record's vector does
not depend on the other records of its batch), on the GPU when one is present
(``device="auto"``). Its input must be of its own domain and built as in pretraining: the
neighbour-list cutoff of a geometric encoder, the explicit hydrogens of a molecule encoder and
the UV-grid size of a B-rep encoder come from the checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Batch, Data
from tqdm.auto import tqdm

from graphssl import zoo
from graphssl.atomistic.datasets import ATOMISTIC_RECIPE, StructureRecord
from graphssl.brep.dataset import BREP_RECIPE, DEFAULT_GRID, BRepRecipe, BRepSource, StepRecord
from graphssl.core.config import DataConfig, ModelConfig, check_choice, from_dict
from graphssl.core.errors import ConfigError, DataError, GraphSSLError
from graphssl.data.builder import Recipe
from graphssl.data.dataset import domain_of
from graphssl.data.records import BuildReport, Source, shorten
from graphssl.data.sources import entry_for
from graphssl.engine.checkpoint import load_checkpoint
from graphssl.engine.pretrained import Pretrained, build_finetune_encoder, load_pretrained
from graphssl.engine.runtime import resolve_device
from graphssl.molecule.dataset import MOLECULE_RECIPE
from graphssl.molecule.tables import MoleculeRecord
from graphssl.nn import GeometricEncoder, GraphEncoder, is_geometric

__all__ = ["FORMATS", "LEVELS", "EmbedSummary", "Embeddings", "InputSpec", "PretrainedEncoder", "check_output",
           "embed", "embed_file", "encoder_from", "index_path", "load_encoder", "plot_path"]

LEVELS = ("graph", "node")
ON_ERROR = ("skip", "raise")
FORMATS = (".npy", ".csv", ".parquet")
STEP_SUFFIXES = (".step", ".stp")
# what each domain's encoder reads, for errors that name the input the encoder expected
DOMAIN_INPUTS = {
    "molecule": "molecules (SMILES, CSV/TSV/SMI/SDF files, RDKit molecules)",
    "atomistic": "atomistic structures (CIF/POSCAR files or folders, extxyz/xyz/ASE db files, ASE Atoms, "
                 "pymatgen structures)",
    "brep": "B-rep parts (STEP files or folders of them)",
}
# graph fields that hold labels: dropped before batching (a frame may lack the stress others have)
_LABEL_KEYS = ("y", "energy", "forces", "stress")
# t-SNE is quadratic-ish in the points: a map shows at most this many (a fixed-seed sample)
MAX_PLOT_POINTS = 10_000


# ----------------------------------------------------------------------------- the encoder

@dataclass(frozen=True)
class InputSpec:
    """What an encoder's input must be: its domain and how its graphs were built in pretraining."""

    domain: str  # "molecule", "atomistic" or "brep"
    cutoff: float = 5.0  # atomistic: neighbour-list radius (A)
    max_neighbors: int | None = None  # atomistic: nearest neighbours kept per atom
    explicit_h: bool = False  # molecules: hydrogens as nodes
    grid: int = DEFAULT_GRID  # B-rep: UV samples per side

    def data_config(self, **options: Any) -> DataConfig:
        """The data options that build graphs this encoder reads; every record is kept, repeats included."""
        return DataConfig(cutoff=self.cutoff, max_neighbors=self.max_neighbors, explicit_h=self.explicit_h,
                          duplicates="keep", **options)


@dataclass
class PretrainedEncoder:
    """A pretrained encoder ready to embed (eval mode), with what its input must be.

    ``pretrained`` holds the weights it was built from, on the CPU (None for an encoder given
    as a module), so it can be rebuilt elsewhere, e.g. after unpickling a featuriser.
    """

    encoder: GraphEncoder
    spec: InputSpec
    name: str
    pretrained: Pretrained | None = None

    @property
    def dim(self) -> int:
        """Width of the vectors the encoder gives."""
        return int(self.encoder.out_channels)

    @property
    def device(self) -> torch.device:
        first = next(self.encoder.parameters(), None)
        return first.device if first is not None else torch.device("cpu")


def _domain_of_weights(model: ModelConfig, weights: dict[str, torch.Tensor]) -> str:
    """The domain an encoder was pretrained on, read from its architecture when its data config
    no longer resolves (a data file that moved): B-rep encoders embed faces with a grid CNN."""
    if is_geometric(model.backbone):
        return "atomistic"
    if any(key.startswith("node_embedding.cnn.") for key in weights):
        return "brep"
    return "molecule"


def _spec_of_run(path: Path, pretrained: Pretrained) -> InputSpec:
    """The input spec of a ``graphssl pretrain`` encoder.pt, from the data config it stored."""
    data = dict((load_checkpoint(path).get("config") or {}).get("data") or {})
    try:
        domain = domain_of(from_dict(DataConfig, data))
    except (GraphSSLError, TypeError, KeyError):
        domain = _domain_of_weights(pretrained.model, pretrained.weights)
    return InputSpec(domain, cutoff=float(data.get("cutoff", 5.0)), max_neighbors=data.get("max_neighbors"),
                     explicit_h=bool(data.get("explicit_h", False)), grid=DEFAULT_GRID)


def _spec_of_zoo(name: str) -> InputSpec:
    spec = zoo.card(name)["feature_spec"]
    return InputSpec(str(spec["domain"]), cutoff=float(spec.get("cutoff", 5.0)),
                     max_neighbors=spec.get("max_neighbors"), explicit_h=bool(spec.get("explicit_h", False)),
                     grid=int(spec.get("grid", DEFAULT_GRID)))


def encoder_from(pretrained: Pretrained, spec: InputSpec) -> GraphEncoder:
    """The encoder of ``pretrained`` (eval mode, CPU), built for inputs described by ``spec``."""
    features = None if spec.domain == "atomistic" else zoo.feature_spec_of({"domain": spec.domain, "grid": spec.grid})
    encoder = build_finetune_encoder(pretrained.model, SimpleNamespace(feature_spec=features), pretrained, spec.cutoff)
    return encoder.eval()


def _spec_of_module(encoder: GraphEncoder) -> InputSpec:
    """The input spec of an encoder given as a module: its kind says its domain."""
    if isinstance(encoder, GeometricEncoder):
        return InputSpec("atomistic", cutoff=float(encoder.backbone.cutoff))
    embedding = getattr(encoder, "node_embedding", None)
    if getattr(embedding, "reads_data", False) and hasattr(embedding, "grid"):
        return InputSpec("brep", grid=int(embedding.grid))
    return InputSpec("molecule")


def load_encoder(checkpoint: str | Path | GraphEncoder | PretrainedEncoder,
                 device: str | torch.device = "cpu") -> PretrainedEncoder:
    """A pretrained encoder in eval mode on ``device``, from a ``graphssl pretrain`` encoder.pt (or
    its run folder), a zoo entry ``zoo:NAME``, or an encoder module (its domain read from its kind)."""
    device = resolve_device(device) if isinstance(device, str) else device
    if isinstance(checkpoint, PretrainedEncoder):
        checkpoint.encoder.to(device).eval()
        return checkpoint
    if isinstance(checkpoint, GraphEncoder):
        return PretrainedEncoder(checkpoint.to(device).eval(), _spec_of_module(checkpoint),
                                 type(checkpoint).__name__)
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise ConfigError(f"checkpoint must be a path to encoder.pt, zoo:NAME or an encoder module, "
                          f"got {type(checkpoint).__name__}")
    if zoo.is_zoo_name(checkpoint):
        name = str(checkpoint)
        pretrained = load_pretrained(name)
        spec = _spec_of_zoo(name)
    else:
        path = Path(checkpoint).expanduser()
        if path.is_dir():  # a run folder: its encoder.pt
            path = path / "encoder.pt"
        pretrained = load_pretrained(path)
        spec = _spec_of_run(path, pretrained)
        name = str(path)
    if spec.domain not in DOMAIN_INPUTS:
        raise ConfigError(f"checkpoint '{name}' was pretrained on domain {spec.domain!r}, which embed does not "
                          f"know; known: {', '.join(DOMAIN_INPUTS)}")
    return PretrainedEncoder(encoder_from(pretrained, spec).to(device), spec, name, pretrained)


# ----------------------------------------------------------------------------- inputs

@dataclass
class _Entry:
    """One input record: featurised with ``record`` unless ``reason`` already says why it is bad."""

    index: int
    text: str
    record: Any = None
    reason: str | None = None


@dataclass
class _Input:
    """Records of one domain and how to featurise them."""

    name: str
    domain: str
    entries: Iterable[_Entry]
    recipe: Recipe
    source: Source
    config: DataConfig
    total: int | None = None
    table: Path | None = None  # a CSV/TSV input, for --plot colours


def _recipe(domain: str, spec: InputSpec, registered: Recipe | None = None) -> Recipe:
    if domain == "brep" and spec.grid != getattr(registered or BREP_RECIPE, "grid", DEFAULT_GRID):
        return BRepRecipe(spec.grid)  # the grid the encoder's face CNN was pretrained on
    if registered is not None:
        return registered
    return {"molecule": MOLECULE_RECIPE, "atomistic": ATOMISTIC_RECIPE, "brep": BREP_RECIPE}[domain]


def _unlabelled(source: Source) -> Source:
    """``source`` read without labels: embedding needs none, so no record is bad for its labels."""
    extra = {"class_names": []} if isinstance(source, BRepSource) else {}
    return dataclasses.replace(source, task_names=[], task_type=None, metric=None, **extra)


def _unlabelled_record(record: Any) -> Any:
    # a frame without energy or forces (error set, build still possible) embeds like any other
    if isinstance(record, StructureRecord) and record.build is not None:
        return dataclasses.replace(record, labels=[], error=None)
    if isinstance(record, MoleculeRecord) and record.labels:
        return dataclasses.replace(record, labels=[])
    return record


def _text(recipe: Recipe, record: Any) -> str:
    # the identifier written next to each vector: a molecule's SMILES as given, uncut
    if isinstance(record, MoleculeRecord) and record.smiles:
        return record.smiles
    return recipe.describe(record)


def _domain_error(model: PretrainedEncoder, what: str, domain: str) -> ConfigError:
    return ConfigError(f"checkpoint '{model.name}' was pretrained on {model.spec.domain} inputs and embeds "
                       f"{DOMAIN_INPUTS[model.spec.domain]}, but {what} holds {DOMAIN_INPUTS.get(domain, domain)}; "
                       f"use an encoder pretrained on {domain} inputs (`graphssl zoo list`)")


def _table_file(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and name.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz", ".tab"))


def _path_input(model: PretrainedEncoder, path_or_name: str | Path, smiles_column: str | None,
                cache_dir: Path, progress: bool) -> _Input:
    """The records of a data file or folder (or a registered data set name) for ``model``."""
    text = os.fspath(path_or_name)
    path = Path(text).expanduser()
    options = {"smiles_column": smiles_column, "on_error": "skip"}
    if path.exists():
        config = model.spec.data_config(path=str(path), **options)
    elif isinstance(path_or_name, str) and _could_be_name(text):
        config = model.spec.data_config(name=text, **options)  # a registered data set, e.g. freesolv
    else:
        raise DataError(f"input '{path}' does not exist")
    config.check()
    entry = entry_for(config)
    what = f"data set '{text}'" if config.name else f"'{path}'"
    if entry.domain != model.spec.domain:
        raise _domain_error(model, what, entry.domain)
    if entry.open is None or entry.recipe is None:
        raise DataError(f"{what} ({entry.name}) holds graphs already built, not records; embed the file it was "
                        "prepared from")
    recipe = _recipe(entry.domain, model.spec, entry.recipe)
    source = _unlabelled(entry.open(config, cache_dir, progress))
    entries = (_Entry(recipe.index(r), _text(recipe, r), _unlabelled_record(r)) for r in source.records)
    return _Input(source.name, entry.domain, entries, recipe, source, config, source.total,
                  table=path if config.path and _table_file(path) else None)


def _could_be_name(text: str) -> bool:
    """Whether ``text`` could be a registered data set name rather than a path."""
    return bool(text) and "/" not in text and "\\" not in text and "." not in text


def _ase_build(atoms: Any, name: str, cutoff: float) -> Any:
    from graphssl.atomistic.adapters import from_ase

    return from_ase(atoms, cutoff=cutoff, name=name)


def _pymatgen_build(structure: Any, name: str, cutoff: float) -> Any:
    from graphssl.atomistic.adapters import from_pymatgen

    return from_pymatgen(structure, cutoff=cutoff, name=name)


def _classify(i: int, item: Any) -> tuple[str | None, Any, str, str | None]:
    """``(domain, record, identifier, reason)`` of in-memory input ``i``; reason when unusable."""
    if item is None or (isinstance(item, float) and math.isnan(item)):
        return None, None, repr(item), "missing input (None or NaN)"
    if isinstance(item, (str, os.PathLike)):
        text = os.fspath(item)
        if isinstance(item, os.PathLike) or text.lower().endswith(STEP_SUFFIXES):
            path = Path(text)
            if path.suffix.lower() not in STEP_SUFFIXES:
                return None, None, text, (f"a path to a '{path.suffix}' file: in a list, paths are STEP parts; "
                                          "embed a data file or folder by passing its path instead of a list")
            if not path.is_file():
                return "brep", None, path.name, f"STEP file '{path}' does not exist"
            return "brep", StepRecord(i, path), path.name, None
        return "molecule", MoleculeRecord(i, text), text, None
    package = type(item).__module__.split(".")[0]
    if package == "rdkit" and type(item).__name__ == "Mol":
        record = MoleculeRecord(i, None, mol=item)
        return "molecule", record, MOLECULE_RECIPE.describe(record), None
    if package == "ase" and hasattr(item, "get_chemical_formula"):
        name = str(item.info.get("name") or item.get_chemical_formula() or f"atoms {i}")
        return "atomistic", StructureRecord(i, name, partial(_ase_build, item, name), []), name, None
    if package == "pymatgen" and hasattr(item, "formula"):
        name = str(item.formula).replace(" ", "")
        return "atomistic", StructureRecord(i, name, partial(_pymatgen_build, item, name), []), name, None
    return None, None, shorten(repr(item), 80), (
        f"unsupported input type {type(item).__module__}.{type(item).__name__}; give SMILES strings, RDKit "
        "molecules, ASE Atoms, pymatgen structures or STEP file paths")


def _items_input(model: PretrainedEncoder, items: Sequence[Any]) -> _Input:
    """In-memory inputs of the encoder's domain; others are bad records with their reason."""
    domain = model.spec.domain
    classified = [_classify(i, item) for i, item in enumerate(items)]
    found = {d for d, _, _, _ in classified if d is not None}
    if found and domain not in found:
        raise _domain_error(model, "the input list", min(found))
    entries = []
    for i, (item_domain, record, text, reason) in enumerate(classified):
        if reason is None and item_domain != domain:
            reason = f"{DOMAIN_INPUTS[item_domain]} input, but the encoder embeds {DOMAIN_INPUTS[domain]}"
        entries.append(_Entry(i, text, record if reason is None else None, reason))
    source_type = BRepSource if domain == "brep" else Source
    source = source_type("inputs", [], [], None, None, "", total=len(items))
    return _Input("inputs", domain, entries, _recipe(domain, model.spec), source,
                  model.spec.data_config(on_error="skip"), len(items))


# ----------------------------------------------------------------------------- the stream

class _Collector:
    """Where rows go: vectors in blocks, and the index rows (kept and skipped) in record order."""

    def vectors(self, block: np.ndarray) -> None:
        raise NotImplementedError

    def row(self, row: int, record: int, text: str, graph: int, node: int | None) -> None:
        raise NotImplementedError

    def skip(self, record: int, text: str, reason: str) -> None:
        raise NotImplementedError


def _strip_labels(graph: Data) -> Data:
    for key in _LABEL_KEYS:
        if key in graph:
            del graph[key]
    return graph


def _run(model: PretrainedEncoder, source: _Input, collector: _Collector, *, level: str, batch_size: int,
         on_error: str, progress: bool) -> BuildReport:
    """Featurise ``source`` record by record and embed it in batches of ``batch_size`` graphs."""
    check_choice(level, LEVELS, "level")
    check_choice(on_error, ON_ERROR, "on_error")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"option 'batch_size' must be a positive integer, got {batch_size!r}")
    recipe = source.recipe
    featurise = recipe.featuriser(source.source, source.config)
    report = BuildReport(source.name)
    encoder, device = model.encoder.eval(), model.device
    pending: list[tuple[_Entry, list[Data] | None, str | None]] = []
    waiting = 0
    rows = 0

    def flush() -> None:
        nonlocal rows, waiting
        graphs = [g for _, found, _ in pending if found for g in found]
        if graphs:
            batch = Batch.from_data_list(graphs).to(device)
            with torch.inference_mode():
                h = encoder.embed_graphs(batch) if level == "graph" else encoder(batch)
            out = h.float().cpu().numpy()
            collector.vectors(out)
        for entry, found, reason in pending:
            if found is None:
                collector.skip(entry.index, entry.text, str(reason))
                continue
            for k, graph in enumerate(found):
                if level == "graph":
                    collector.row(rows, entry.index, entry.text, k, None)
                    rows += 1
                else:
                    for node in range(int(graph.num_nodes)):
                        collector.row(rows, entry.index, entry.text, k, node)
                        rows += 1
        pending.clear()
        waiting = 0

    bar = tqdm(source.entries, desc=f"embedding {source.name}", total=source.total, disable=not progress,
               unit=recipe.unit, mininterval=1.0)
    for entry in bar:
        found, reason = ([], entry.reason) if entry.reason is not None else featurise(entry.record)
        if reason is None and not found:
            reason = "no graph could be built from it"
        report.read += 1
        if reason is not None:
            if on_error == "raise":
                raise DataError(f"{source.name}: {recipe.noun} {entry.index} ({shorten(entry.text)!r}): {reason}. "
                                f"Use on_error=skip (--on-error skip) to skip bad {recipe.plural}; they are then "
                                "listed with their reasons")
            report.skip(entry.index, shorten(entry.text), reason)
            pending.append((entry, None, reason))
        else:
            report.kept += 1
            pending.append((entry, [_strip_labels(g) for g in found], None))
            waiting += len(found)
        if waiting >= batch_size:
            flush()
    flush()
    return report


# ----------------------------------------------------------------------------- in memory

@dataclass
class Embeddings:
    """Vectors and where each came from.

    ``vectors`` ``[rows, dim]`` float32; ``index`` one row per vector: ``record`` (the input's
    position: list position, table row, file or frame number), ``id`` (SMILES, file or frame
    name), ``graph`` (which solid of a STEP file; else 0) and at node level ``node``;
    ``skipped``: ``record``, ``id`` and ``reason`` of every input that gave no vector.
    """

    vectors: np.ndarray
    index: pd.DataFrame
    skipped: pd.DataFrame
    level: str
    report: BuildReport

    def __len__(self) -> int:
        return len(self.vectors)


class _Memory(_Collector):
    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []
        self.rows: list[tuple[int, str, int, int | None]] = []
        self.skipped: list[tuple[int, str, str]] = []

    def vectors(self, block: np.ndarray) -> None:
        self.blocks.append(block)

    def row(self, row: int, record: int, text: str, graph: int, node: int | None) -> None:
        self.rows.append((record, text, graph, node))

    def skip(self, record: int, text: str, reason: str) -> None:
        self.skipped.append((record, text, reason))


def _open_input(model: PretrainedEncoder, inputs: Any, smiles_column: str | None, cache_dir: str | Path,
                progress: bool) -> _Input:
    if isinstance(inputs, (str, os.PathLike)):
        return _path_input(model, inputs, smiles_column, Path(cache_dir), progress)
    if isinstance(inputs, (pd.DataFrame, dict)):
        raise ConfigError("inputs must be a path or a sequence of items (SMILES, molecules, structures, STEP "
                          "paths); pass one column (e.g. frame['smiles']), not a table")
    if isinstance(inputs, np.ndarray) and inputs.ndim == 2 and inputs.shape[1] == 1:
        inputs = inputs[:, 0]  # one column of a 2D array, as scikit-learn column selection gives
    if isinstance(inputs, pd.Series):
        inputs = inputs.tolist()
    try:
        items = list(inputs)
    except TypeError:
        raise ConfigError(f"inputs must be a path or a sequence of items, got {type(inputs).__name__}") from None
    return _items_input(model, items)


def embed(checkpoint: str | Path | GraphEncoder | PretrainedEncoder, inputs: Any, *, level: str = "graph",
          batch_size: int = 64, device: str = "auto", on_error: str = "skip", smiles_column: str | None = None,
          progress: bool = False, cache_dir: str | Path = ".graphssl_cache") -> Embeddings:
    """Embed ``inputs`` with a pretrained encoder.

    ``checkpoint``: an encoder.pt (or run folder), ``zoo:NAME``, an encoder module, or what
    :func:`load_encoder` returned (to load once and embed often). ``inputs``: a path (a data
    file or folder of any input kind, or a registered data set name) or a sequence of SMILES,
    RDKit molecules, ASE ``Atoms``, pymatgen structures or STEP paths. ``level``: ``graph`` (one
    vector per graph, with the encoder's pooling) or ``node`` (one per atom or face).
    ``cache_dir`` is used only by registered data sets that are generated or downloaded.
    """
    model = load_encoder(checkpoint, device)
    source = _open_input(model, inputs, smiles_column, cache_dir, progress)
    memory = _Memory()
    report = _run(model, source, memory, level=level, batch_size=batch_size, on_error=on_error, progress=progress)
    vectors = np.concatenate(memory.blocks) if memory.blocks else np.zeros((0, model.dim), dtype=np.float32)
    columns = ["record", "id", "graph", "node"]
    index = pd.DataFrame(memory.rows, columns=columns)
    if level == "graph":
        index = index.drop(columns="node")
    else:
        index["node"] = index["node"].astype("int64")
    skipped = pd.DataFrame(memory.skipped, columns=["record", "id", "reason"])
    return Embeddings(vectors, index, skipped, level, report)


# ----------------------------------------------------------------------------- to files

def index_path(out: str | Path) -> Path:
    """The index file of output ``out``: ``<stem>.index.csv`` next to it."""
    out = Path(out)
    return out.with_name(f"{out.stem}.index.csv")


def plot_path(out: str | Path) -> Path:
    """The 2D map of output ``out``: ``<stem>.map.png`` next to it."""
    out = Path(out)
    return out.with_name(f"{out.stem}.map.png")


def _temporary(target: Path) -> Path:
    # next to the target, so the final rename stays on one file system
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}.", suffix=".graphssl-tmp")
    os.close(fd)
    return Path(name)


class _Files(_Collector):
    """Vectors to ``.npy`` / ``.csv`` / ``.parquet`` and the index CSV, all through temporaries
    renamed into place once complete, so a failed run leaves no partial output."""

    def __init__(self, out: Path, level: str, dim: int) -> None:
        self.out, self.level, self.dim, self.fmt = out, level, dim, out.suffix.lower()
        self.index_file = index_path(out)
        self.count = 0
        self._rows: list[tuple[int, str, int, int | None]] = []  # this block's rows, for csv/parquet
        self._blocks: list[np.ndarray] = []
        self._tmp = {self.out: _temporary(out), self.index_file: _temporary(self.index_file)}
        if self.fmt == ".npy":
            self._raw = _temporary(out)  # raw float32 rows; the .npy header needs the final row count
            self._data = self._raw.open("wb")
        self._index = self._tmp[self.index_file].open("w", newline="")
        self._index_writer = csv.writer(self._index)
        node = ["node"] if level == "node" else []
        self._index_writer.writerow(["row", "record", "id", "graph", *node, "status", "reason"])
        self._meta = ["record", "id", "graph", *node]
        self._columns = [f"e{k}" for k in range(dim)]
        if self.fmt == ".csv":
            self._table = self._tmp[self.out].open("w", newline="")
            self._table_writer = csv.writer(self._table)
            self._table_writer.writerow([*self._meta, *self._columns])
        elif self.fmt == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            fields = [pa.field("record", pa.int64()), pa.field("id", pa.string()), pa.field("graph", pa.int64())]
            if level == "node":
                fields.append(pa.field("node", pa.int64()))
            fields += [pa.field(c, pa.float32()) for c in self._columns]
            self._schema = pa.schema(fields)
            self._parquet = pq.ParquetWriter(str(self._tmp[self.out]), self._schema)

    def vectors(self, block: np.ndarray) -> None:
        self.count += len(block)
        if self.fmt == ".npy":
            np.ascontiguousarray(block, dtype=np.float32).tofile(self._data)
        else:
            self._blocks.append(block)

    def row(self, row: int, record: int, text: str, graph: int, node: int | None) -> None:
        values = [row, record, text, graph, *([node] if self.level == "node" else [])]
        self._index_writer.writerow([*values, "embedded", ""])
        if self.fmt != ".npy":
            self._rows.append((record, text, graph, node))
            if sum(len(b) for b in self._blocks) == len(self._rows):
                self._write_rows()

    def skip(self, record: int, text: str, reason: str) -> None:
        node = [""] if self.level == "node" else []
        self._index_writer.writerow(["", record, text, "", *node, "skipped", reason])

    def _write_rows(self) -> None:
        vectors = np.concatenate(self._blocks) if len(self._blocks) > 1 else self._blocks[0]
        rows, self._rows, self._blocks = self._rows, [], []
        if self.fmt == ".csv":
            for (record, text, graph, node), vector in zip(rows, vectors):
                meta = [record, text, graph, *([node] if self.level == "node" else [])]
                self._table_writer.writerow([*meta, *(f"{v:.9g}" for v in vector)])
        else:
            import pyarrow as pa

            columns: dict[str, Any] = {"record": [r[0] for r in rows], "id": [r[1] for r in rows],
                                       "graph": [r[2] for r in rows]}
            if self.level == "node":
                columns["node"] = [r[3] for r in rows]
            for k, name in enumerate(self._columns):
                columns[name] = vectors[:, k]
            self._parquet.write_table(pa.table(columns, schema=self._schema))

    def finish(self) -> None:
        """Close everything and move each file into place (the index last)."""
        self._index.close()
        if self.fmt == ".npy":
            self._data.close()
            target = self._tmp[self.out]
            if self.count:
                array = np.lib.format.open_memmap(target, mode="w+", dtype=np.float32, shape=(self.count, self.dim))
                raw = np.memmap(self._raw, dtype=np.float32, mode="r", shape=(self.count, self.dim))
                step = max(1, (64 << 20) // (4 * max(self.dim, 1)))  # 64 MB at a time: bounded memory
                for start in range(0, self.count, step):
                    array[start:start + step] = raw[start:start + step]
                array.flush()
                del array, raw
            else:
                np.save(target, np.zeros((0, self.dim), dtype=np.float32))
            self._raw.unlink()
        elif self.fmt == ".csv":
            self._table.close()
        else:
            self._parquet.close()
        os.replace(self._tmp[self.out], self.out)
        os.replace(self._tmp[self.index_file], self.index_file)

    def abort(self) -> None:
        """Remove every temporary after a failure."""
        for handle in ("_index", "_data", "_table"):
            if hasattr(self, handle):
                getattr(self, handle).close()
        if hasattr(self, "_parquet"):
            try:
                self._parquet.close()
            except Exception:  # a writer that failed mid-block may not close cleanly; its file goes anyway
                pass
        for path in [*self._tmp.values(), getattr(self, "_raw", None)]:
            if path is not None and path.exists():
                path.unlink()


@dataclass
class EmbedSummary:
    """What ``graphssl embed`` wrote."""

    out: Path
    index: Path
    rows: int
    dim: int
    level: str
    report: BuildReport
    seconds: float
    plot: Path | None = None
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        r = self.report
        head = (f"embedded {r.kept} of {r.read} records ({len(r.skipped)} skipped, with reasons in {self.index}): "
                f"{self.rows} x {self.dim} {self.level}-level vectors in {self.out} ({self.seconds:.1f} s)")
        lines = [head]
        lines += [f"  skipped record {s.index} ({s.input!r}): {s.reason}" for s in r.skipped[:5]]
        if len(r.skipped) > 5:
            lines.append(f"  ... and {len(r.skipped) - 5} more (see {self.index})")
        if self.plot is not None:
            lines.append(f"map: {self.plot}")
        lines += self.notes
        return "\n".join(lines)


def check_output(out: str | Path) -> Path:
    """``out`` if graphssl can write its format (``.npy``, ``.csv``, ``.parquet`` with pyarrow)."""
    out = Path(out).expanduser()
    if out.suffix.lower() not in FORMATS:
        raise ConfigError(f"--out '{out}': unknown output format '{out.suffix}'; use one of {', '.join(FORMATS)}")
    if out.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet  # noqa: F401  (only whether it imports)
        except ImportError:
            raise ConfigError(f"--out '{out}': writing Parquet needs pyarrow (pip install pyarrow); or write "
                              ".npy (with its index CSV) or .csv") from None
    if out.is_dir():
        raise ConfigError(f"--out '{out}' is a folder; give a file name ending in {', '.join(FORMATS)}")
    return out


def embed_file(checkpoint: str | Path | GraphEncoder | PretrainedEncoder, input: str | Path, out: str | Path, *,
               level: str = "graph", batch_size: int = 64, device: str = "auto", on_error: str = "skip",
               smiles_column: str | None = None, plot: str | None = None, progress: bool = True,
               cache_dir: str | Path = ".graphssl_cache") -> EmbedSummary:
    """Embed every record of ``input`` (a data file or folder of any input kind) into ``out``.

    ``out`` ends in ``.npy`` (vectors only; ``<stem>.index.csv`` maps each row to its record),
    ``.csv`` or ``.parquet`` (``record``, ``id``, ``graph``[, ``node``] then ``e0..e{dim-1}``).
    The index CSV is written for every format: one line per vector (``row``, ``record``, ``id``,
    ``graph``[, ``node``], ``status`` embedded) and one per skipped record (``status`` skipped,
    with its ``reason``), in input order. ``plot``: a column of a CSV/TSV input that colours a 2D
    map of the graph-level vectors, written to ``<stem>.map.png``.
    """
    started = time.perf_counter()
    out = check_output(out)
    check_choice(level, LEVELS, "--level")
    check_choice(on_error, ON_ERROR, "--on-error")
    model = load_encoder(checkpoint, device)
    source = _open_input(model, input, smiles_column, cache_dir, progress)
    if plot is not None:
        _check_plot(plot, source, level)
    out.parent.mkdir(parents=True, exist_ok=True)
    files = _Files(out, level, model.dim)
    try:
        report = _run(model, source, files, level=level, batch_size=batch_size, on_error=on_error,
                      progress=progress)
        if not files.count:
            raise DataError(f"{source.name}: no record could be embedded\n{report.summary()}")
        files.finish()
    except BaseException:
        files.abort()
        raise
    summary = EmbedSummary(out, files.index_file, files.count, model.dim, level, report, 0.0)
    if plot is not None:
        summary.plot, note = _plot(out, source, plot)
        if note:
            summary.notes.append(note)
    summary.seconds = time.perf_counter() - started
    return summary


# ----------------------------------------------------------------------------- the 2D map

def _table_column(path: Path, column: str) -> tuple[list[str], list[str]]:
    """The header of a CSV/TSV input and ``column``'s cell of each record, in record order (blank
    lines are no records, as in the molecule reader)."""
    import gzip

    name = path.name.lower()
    sep = "\t" if name.endswith((".tsv", ".tsv.gz", ".tab")) else ","
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=sep)
        header = next(reader, None) or []
        if column not in header:
            return header, []
        at = header.index(column)
        return header, [row[at] if at < len(row) else "" for row in reader if row]


def _check_plot(column: str, source: _Input, level: str) -> None:
    if level != "graph":
        raise ConfigError("--plot maps graph-level vectors; drop --level node")
    if source.table is None:
        raise ConfigError(f"--plot {column}: the map is coloured by a column of a CSV/TSV input, and "
                          f"'{source.name}' is not one")
    header, _ = _table_column(source.table, column)
    if column not in header:
        raise ConfigError(f"--plot {column}: '{source.table.name}' has no column {column!r}; its columns are "
                          f"{header}")


def _plot(out: Path, source: _Input, column: str) -> tuple[Path, str]:
    """A 2D map (UMAP when installed, else t-SNE) of the vectors in ``out``, coloured by ``column``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vectors = np.load(out, mmap_mode="r") if out.suffix.lower() == ".npy" else None
    index = pd.read_csv(index_path(out), keep_default_na=False, dtype={"id": str, "reason": str})
    kept = index[index["status"] == "embedded"]
    rows = kept["row"].astype(int).to_numpy()
    records = kept["record"].astype(int).to_numpy()
    if vectors is None:
        table = pd.read_csv(out) if out.suffix.lower() == ".csv" else pd.read_parquet(out)
        vectors = table[[c for c in table.columns if c.startswith("e") and c[1:].isdigit()]].to_numpy(np.float32)
    note = ""
    if len(rows) > MAX_PLOT_POINTS:
        keep = np.sort(np.random.default_rng(0).choice(len(rows), MAX_PLOT_POINTS, replace=False))
        rows, records = rows[keep], records[keep]
        note = f"map: a random sample of {MAX_PLOT_POINTS} of the {len(kept)} vectors (seed 0)"
    points = np.asarray(vectors[rows], dtype=np.float32)
    _, cells = _table_column(source.table, column)
    values = [cells[r] if r < len(cells) else "" for r in records]
    method = "t-SNE"
    if len(points) < 3:
        xy = np.pad(points[:, :2], ((0, 0), (0, max(0, 2 - points.shape[1]))))
        method = "first two dimensions"
    else:
        try:
            import umap  # optional: UMAP keeps more of the global layout than t-SNE

            xy = umap.UMAP(n_components=2, random_state=0).fit_transform(points)
            method = "UMAP"
        except ImportError:
            from sklearn.manifold import TSNE

            xy = TSNE(n_components=2, perplexity=min(30.0, (len(points) - 1) / 3), init="pca",
                      random_state=0).fit_transform(points)
    numbers = pd.to_numeric(pd.Series(values), errors="coerce")
    filled = sum(bool(v.strip()) for v in values)
    figure, axes = plt.subplots(figsize=(7, 6))
    if filled and numbers.notna().sum() >= 0.9 * filled:  # a numeric column, a few odd cells allowed
        missing = numbers.isna().to_numpy()
        axes.scatter(xy[missing, 0], xy[missing, 1], s=8, c="lightgrey", label="no value")
        shown = axes.scatter(xy[~missing, 0], xy[~missing, 1], s=8, c=numbers[~missing], cmap="viridis")
        figure.colorbar(shown, ax=axes, label=column)
    else:
        counts = pd.Series(values).value_counts()
        top = list(counts.index[:10])  # more than ten colours cannot be told apart
        labels = [v if v in top else "other" for v in values]
        for label in [*top, "other"]:
            mask = np.array([x == label for x in labels])
            if mask.any():
                axes.scatter(xy[mask, 0], xy[mask, 1], s=8, label=label or "(empty)")
        axes.legend(title=column, fontsize="small", markerscale=2)
    axes.set_title(f"{source.name}: {method} of {len(points)} embeddings, coloured by {column}")
    axes.set_xticks([])
    axes.set_yticks([])
    path = plot_path(out)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path, note
