"""Run configuration: typed sections, safe YAML loading and ``--set key=value`` overrides.

Every section is a dataclass, so a misspelt option fails with the list of valid names
instead of being silently ignored.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union, get_args, get_origin, get_type_hints

import yaml

from graphssl.core.errors import ConfigError

ON_ERROR = ("raise", "skip")
DUPLICATES = ("auto", "reject", "keep")


def opt(default: Any = dataclasses.MISSING, text: str = "", *, factory: Callable[[], Any] | None = None) -> Any:
    """A config field and its one line of help, shown by ``graphssl <command> --help``."""
    metadata = {"help": text}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def check_choice(value: Any, allowed: tuple[str, ...], option: str) -> None:
    """Raise :class:`ConfigError` naming ``option`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        close = difflib.get_close_matches(str(value), allowed, n=1) if isinstance(value, str) else []
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"option '{option}' must be one of {', '.join(allowed)}, got {value!r}.{hint}")


@dataclass
class DataConfig:
    """Where structures come from: a registry name or a user's file."""

    name: str | None = opt(None,
        'registry data set (`graphssl data list`): moses, moses-full, b3db, freesolv, rdkit-solubility, '
        'qm9, qm9-3d, matbench-dielectric, brep-machining, moleculenet-*')
    path: str | None = opt(None,
        'or your own data: a molecule file (.csv/.tsv with SMILES + label columns, .smi, .sdf), a folder '
        'of CIF/POSCAR files (labels via data.label_file), an .extxyz/.xyz/ASE .db file, a folder of '
        'STEP files, or a folder written by `graphssl data prepare`')
    smiles_column: str | None = opt(None, 'SMILES column of a CSV/TSV (guessed when empty)')
    label_columns: list[str] = opt(factory=list,
        text="label columns (CSV/TSV), SDF property names, or a subset of a registry data set's tasks (e.g. "
        '[gap] for qm9)')
    task_type: str | None = opt(None, 'classification or regression (user files with labels)')
    offset: int = opt(0,
        'skip the first N records (atomistic sources), e.g. to pretrain on structures the task does not '
        'use')
    limit: int | None = opt(None, 'use only the first N records (deterministic subsets)')
    on_error: str = opt("raise", 'raise: stop at the first bad record; skip: skip bad records and report each')
    # A record equal to an earlier kept one (same canonical SMILES, same atoms and cell, same STEP
    # bytes) is a bad record under "reject": in labelled data a duplicate can land in both the
    # training and the test split, or carry a conflicting label. "auto" rejects them in labelled
    # data sets and keeps them in unlabeled corpora, where repeats only re-weight pretraining.
    duplicates: str = opt("auto",
        'reject: a record equal to an earlier kept one (same canonical SMILES; same atoms, positions and '
        'cell; byte-identical STEP file) is a bad record, named as a duplicate of that one; keep: keep '
        'duplicates; auto: reject them in labelled data sets, keep them in unlabeled ones')
    # Far above every registered data set (largest: 288 atoms); catches runaway inputs such as
    # polymers written out atom by atom before they cost conformer or neighbour-list time.
    max_atoms: int | None = opt(5000,
        'a molecule or structure with more atoms (graph nodes; hydrogens count with explicit_h) is a bad '
        'record; empty: no limit')
    explicit_h: bool = opt(False, 'add hydrogens as nodes')
    conformer: bool = opt(False, 'add 3D positions (ETKDG, then MMFF where it applies)')
    # atomistic structures (crystals, 3D molecules)
    cutoff: float = opt(5.0, 'atomistic structures: neighbour-list cutoff radius in Angstrom')
    max_neighbors: int | None = opt(None, "atomistic structures: keep only each atom's nearest N neighbours")
    label_file: str | None = opt(None, 'folder of CIF/POSCAR files: CSV of labels keyed by file name')
    id_column: str | None = opt(None, 'column of label_file that holds the file names')

    def check(self, where: str = "data.") -> None:
        """Raise :class:`ConfigError` for a value outside its option's choices or range.

        Builders call it too: a config can be changed after it was loaded.
        """
        check_choice(self.on_error, ON_ERROR, f"{where}on_error")
        check_choice(self.duplicates, DUPLICATES, f"{where}duplicates")
        limit = self.max_atoms
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ConfigError(f"option '{where}max_atoms' must be a positive integer, or empty for no limit; "
                              f"got {limit!r}")

    def rejects_duplicates(self, labelled: bool) -> bool:
        """Whether a duplicate record is a bad record in a data set that is (or is not) labelled."""
        return self.duplicates == "reject" or (self.duplicates == "auto" and labelled)


@dataclass
class ModelConfig:
    """The encoder: a PyG backbone with categorical embeddings in front."""

    backbone: str = opt("gine", '2D: gin, gine (bond-aware), gcn, gat, sage, pna; 3D: schnet, painn, et')
    hidden: int = opt(300, 'width of embeddings and hidden layers')
    num_layers: int = opt(5, 'message-passing layers')
    dropout: float = opt(0.0, 'dropout in the backbone during pretraining')
    norm: str | None = opt("batch_norm",
        'normalisation between layers (batch_norm, layer_norm, graph_norm, or empty)')
    jk: str | None = opt(None, 'jumping knowledge: empty (last layer), cat, max, lstm')
    pooling: str = opt("mean", 'graph readout for fine-tuning: mean, sum, max')
    options: dict[str, Any] = opt(factory=dict, text='extra keyword arguments for the backbone (e.g. heads for gat)')


@dataclass
class ObjectiveConfig:
    """A pretraining objective by name; every other key goes to its constructor."""

    name: str = opt("graphmae",
        'graphmae, attrmask, higmae (2D); denoise, scd (3D); other keys under objective: are its options')
    options: dict[str, Any] = opt(factory=dict,
        text='objective options, e.g. mask_rate, replace_rate, keep_rate, alpha (graphmae)')

    # Unknown keys are collected here and checked against the objective's signature.
    _extra_to = "options"


@dataclass
class PretrainConfig:
    epochs: int = opt(10, 'pretraining epochs')
    batch_size: int = opt(256, 'graphs per pretraining batch')
    lr: float = opt(1e-3, 'Adam learning rate')
    weight_decay: float = opt(0.0, 'Adam weight decay')
    max_steps: int | None = opt(None, 'stop after this many optimiser steps (empty: run all epochs)')
    resume: bool = opt(True, 'continue from output_dir/last.pt when it exists')
    num_workers: int = opt(0, 'DataLoader worker processes')
    accumulate: int = opt(1,
        'micro-batches per optimiser step in each process: the global batch (batch_size) is split into '
        "processes x accumulate equal micro-batches and the step's loss is their mean")
    clean_batch_norm: int | None = opt(10_000, "before encoder.pt is written, re-estimate the encoder's batch-norm "
                                       'running statistics on up to this many clean (unmasked) graphs of data: '
                                       'the statistics of masked training inputs misdescribe real graphs '
                                       '(empty or 0: keep them)')
    checkpoint_every: int | None = opt(1000,
        'also write last.pt every this many optimiser steps, so a killed run loses at most that many '
        '(null: only at epoch ends); SIGTERM always writes one before stopping')


@dataclass
class FinetuneConfig:
    """Fine-tuning on a labelled task; the test score is read at the best validation epoch."""

    task: DataConfig = opt(factory=DataConfig, text='labelled data set: a registry name or a mapping like data:')
    pretrained: str | None = opt(None,
        'encoder to start from: an encoder.pt path or zoo:NAME (`graphssl zoo list`); --checkpoint overrides it; '
        'empty: train from scratch')
    split: str = opt("scaffold",
        'scaffold (deterministic Bemis-Murcko, pretrain-gnns), random, or matbench (fold '
        "finetune.split_seed of Matbench's 5-fold KFold, validation drawn from its training part)")
    split_fractions: list[float] = opt(factory=lambda: [0.8, 0.1, 0.1], text='train, valid, test shares')
    split_seed: int = opt(0, 'seed of the random split; the fold (0-4) of the matbench split')
    label_fraction: float = opt(1.0, 'share of the training split whose labels are used (few-label curves)')
    mode: str = opt("full", 'full (train everything) or linear (frozen encoder, train the head)')
    epochs: int = opt(100, 'fine-tuning epochs; the test score is read at the best validation epoch')
    batch_size: int = opt(32, 'graphs per fine-tuning batch')
    lr: float = opt(1e-3, 'Adam learning rate (of the head, and of the encoder unless encoder_lr is set)')
    encoder_lr: float | None = opt(None, 'Adam learning rate of the encoder (empty: lr); a pretrained encoder '
                                         'often keeps more of what it learnt with a smaller one')
    weight_decay: float = opt(0.0, 'Adam weight decay')
    dropout: float = opt(0.5, 'dropout in the backbone and head while fine-tuning')
    reestimate_batch_norm: bool = opt(True, "recompute the encoder's batch-norm running statistics on the "
                                             'training split before fine-tuning (pretraining inputs, e.g. '
                                             'masked graphs, can leave statistics that do not fit the task)')
    pooling: str | None = opt(None, "graph readout while fine-tuning: mean, sum or max (empty: the encoder's "
                                    'model.pooling, from the checkpoint when there is one)')
    head_hidden: int | None = opt(None, 'hidden width of an MLP head (empty: linear head)')
    seed: int = opt(0, 'seed of the fine-tuning run (head init, shuffling, label subset)')
    save_checkpoints: bool = opt(True, 'write last.pt every epoch and best.pt at the end')
    resume: bool = opt(True, 'continue from output_dir/last.pt when it exists')
    # atomistic tasks
    energy_weight: float = opt(1.0, 'energies and forces: weight of the per-atom energy loss')
    force_weight: float = opt(10.0, 'energies and forces: weight of the force loss')
    stress_weight: float = opt(0.0, 'energies and forces: weight of the stress loss (every structure then '
                               'needs a stress label and a cell); 0: stress is not trained')
    noisy_nodes_weight: float = opt(0.0,
        'weight of the auxiliary noisy-nodes denoising loss (geometric backbones; SCD uses 0.1)')
    noisy_nodes_sigma: float = opt(0.005, 'noise of the noisy-nodes loss, Angstrom')


@dataclass
class BenchmarkConfig:
    methods: list[Any] = opt(factory=lambda: ["scratch", "attrmask", "graphmae"],
        text='scratch and objectives by name, or mappings {name:, label:, <options>}')
    tasks: list[Any] = opt(factory=list, text='labelled data sets (names or mappings like data:)')
    seeds: list[int] = opt(factory=lambda: [0, 1, 2], text='fine-tuning seeds; every method sees the same seeds')
    label_fractions: list[float] = opt(factory=lambda: [1.0], text='label fractions of the training split to run')
    tier: str = opt("custom", 'a name for the report (quick, paper, ...)')


@dataclass
class RunConfig:
    seed: int = opt(0, 'seed of the pretraining run (weights, masks, shuffling)')
    device: str = opt("auto", 'auto (CUDA when present, else CPU), cpu, cuda or cuda:N')
    output_dir: str = opt("runs/default", 'folder for checkpoints, configs and results')
    cache_dir: str = opt(".graphssl_cache",
        'folder for featurised data sets, keyed by featuriser version and options')
    threads: int | None = opt(None, "torch CPU threads (empty: torch's default)")
    progress: bool = opt(True, 'show progress bars')
    data: DataConfig = opt(factory=DataConfig)
    model: ModelConfig = opt(factory=ModelConfig)
    objective: ObjectiveConfig = opt(factory=ObjectiveConfig)
    pretrain: PretrainConfig = opt(factory=PretrainConfig)
    finetune: FinetuneConfig = opt(factory=FinetuneConfig)
    benchmark: BenchmarkConfig = opt(factory=BenchmarkConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _field_types(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _unknown_key(key: str, allowed: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(
        f"unknown option '{where}{key}'.{hint} Valid options here: {', '.join(sorted(allowed))}."
    )


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check a YAML value against a field annotation; build nested dataclasses."""
    origin = get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if annotation is DataConfig and isinstance(value, str):
            return DataConfig(name=value)  # a registry name stands for {name: ...}
        if not isinstance(value, dict):
            raise ConfigError(f"option '{where}' must be a mapping, got {value!r}")
        return from_dict(annotation, value, prefix=f"{where}.")
    if origin is Union or origin is types.UnionType:  # Optional[X] and X | None alike
        args = get_args(annotation)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"option '{where}' may not be empty")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if annotation is Any:
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"option '{where}' must be a list, got {value!r}")
        (item,) = get_args(annotation) or (Any,)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"option '{where}' must be a mapping, got {value!r}")
        return dict(value)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"option '{where}' must be a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"option '{where}' must be an integer, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"option '{where}' must be true or false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"option '{where}' must be a string, got {value!r}")
        return value
    return value


def from_dict(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys by name."""
    types = _field_types(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    extra_to = getattr(cls, "_extra_to", None)
    for key, value in values.items():
        if key not in types or key.startswith("_"):
            if extra_to is not None:
                kwargs.setdefault(extra_to, dict(values.get(extra_to) or {}))[key] = value
                continue
            raise _unknown_key(str(key), names, prefix)
        if key == extra_to and extra_to in kwargs:
            kwargs[key].update(value or {})
            continue
        kwargs[key] = _coerce(value, types[key], f"{prefix}{key}")
    result = cls(**kwargs)
    if prefix and callable(getattr(result, "check", None)):
        result.check(prefix)  # bad choices fail when the config is read, not at the first build
    return result


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into a key path and a YAML-parsed value."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value, e.g. pretrain.epochs=5")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{text}': value is not valid YAML ({exc})") from None
    return key.split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``key=value`` override applied."""
    out = copy.deepcopy(raw)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif isinstance(child, str):
                child = node[part] = {"name": child}  # a data set given by name becomes a mapping
            if not isinstance(child, dict):
                raise ConfigError(f"override '{text}': '{part}' is not a section")
            node = child
        node[path[-1]] = value
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with the safe loader."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file '{path}' is not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping at the top level")
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Load a run configuration from YAML (optional) plus ``key=value`` overrides."""
    raw = load_yaml(path) if path is not None else {}
    raw = apply_overrides(raw, overrides or [])
    return from_dict(RunConfig, raw)


def save_config(config: RunConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def data_config(spec: Any, where: str = "task") -> DataConfig:
    """Accept a registry name or a mapping of :class:`DataConfig` fields."""
    if isinstance(spec, DataConfig):
        return spec
    if isinstance(spec, str):
        return DataConfig(name=spec)
    if isinstance(spec, dict):
        return from_dict(DataConfig, spec, prefix=f"{where}.")
    raise ConfigError(f"'{where}' must be a data set name or a mapping, got {spec!r}")


def _help_rows(cls: type = RunConfig, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(option name, default, help) of every option, nested sections walked in field order."""
    rows = []
    hints = get_type_hints(cls)
    defaults = cls()
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        text = f.metadata.get("help", "")
        value = getattr(defaults, f.name)
        if dataclasses.is_dataclass(hints[f.name]) and not text:
            rows += _help_rows(hints[f.name], f"{name}.")
            continue
        rows.append((name, dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value, text))
    return rows


def options_text() -> str:
    """Every option with its default and help, for argparse epilogs."""
    lines = ["configuration options (YAML keys; override any with --set key=value):"]
    for name, value, text in _help_rows():
        shown = "" if isinstance(value, dict) and not value else f" (default: {value})"
        lines.append(f"  {name}{shown}\n      {text}")
    return "\n".join(lines)


def undocumented() -> list[str]:
    """Option names that have no help line (kept empty by a test)."""
    return [name for name, _, text in _help_rows() if not text]
