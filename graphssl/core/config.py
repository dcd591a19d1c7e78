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
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from graphssl.core.errors import ConfigError

ON_ERROR = ("raise", "skip")
DUPLICATES = ("auto", "reject", "keep")


def check_choice(value: Any, allowed: tuple[str, ...], option: str) -> None:
    """Raise :class:`ConfigError` naming ``option`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        close = difflib.get_close_matches(str(value), allowed, n=1) if isinstance(value, str) else []
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"option '{option}' must be one of {', '.join(allowed)}, got {value!r}.{hint}")


@dataclass
class DataConfig:
    """Where structures come from: a registry name or a user's file."""

    name: str | None = None  # registry name, e.g. "moses", "b3db"
    path: str | None = None  # a user's CSV/TSV/SMI/SDF file, used when name is empty
    smiles_column: str | None = None
    label_columns: list[str] = field(default_factory=list)
    task_type: str | None = None  # "classification" or "regression" for user files
    offset: int = 0  # skip the first N records (atomistic sources; e.g. pretrain on the rest)
    limit: int | None = None  # keep the first N records (deterministic subsets)
    on_error: str = "raise"  # "raise" stops at the first bad record, "skip" skips and reports it
    # A record equal to an earlier kept one (same canonical SMILES, same atoms and cell, same STEP
    # bytes) is a bad record under "reject": in labelled data a duplicate can land in both the
    # training and the test split, or carry a conflicting label. "auto" rejects them in labelled
    # data sets and keeps them in unlabeled corpora, where repeats only re-weight pretraining.
    duplicates: str = "auto"  # "auto", "reject" or "keep"
    # Far above every registered data set (largest: 288 atoms); catches runaway inputs such as
    # polymers written out atom by atom before they cost conformer or neighbour-list time.
    max_atoms: int | None = 5000  # more atoms (graph nodes) than this makes a bad record; None: no limit
    explicit_h: bool = False
    conformer: bool = False
    # atomistic structures (crystals, 3D molecules)
    cutoff: float = 5.0  # neighbour-list radius, Angstrom
    max_neighbors: int | None = None  # keep only the nearest N neighbours of each atom
    label_file: str | None = None  # CSV of labels keyed by structure file name (folder of CIF/POSCAR)
    id_column: str | None = None  # column of label_file holding the file names

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

    backbone: str = "gine"
    hidden: int = 300
    num_layers: int = 5
    dropout: float = 0.0
    norm: str | None = "batch_norm"
    jk: str | None = None
    pooling: str = "mean"
    options: dict[str, Any] = field(default_factory=dict)  # extra backbone keyword arguments


@dataclass
class ObjectiveConfig:
    """A pretraining objective by name; every other key goes to its constructor."""

    name: str = "graphmae"
    options: dict[str, Any] = field(default_factory=dict)

    # Unknown keys are collected here and checked against the objective's signature.
    _extra_to = "options"


@dataclass
class PretrainConfig:
    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    max_steps: int | None = None  # stop early after this many optimiser steps
    resume: bool = True  # continue from <output_dir>/last.pt when present
    num_workers: int = 0
    accumulate: int = 1  # micro-batches per optimiser step in each process (gradient accumulation)
    checkpoint_every: int | None = 1000  # also write last.pt every this many steps (None: epoch ends only)


@dataclass
class FinetuneConfig:
    """Fine-tuning on a labelled task; the test score is read at the best validation epoch."""

    task: DataConfig = field(default_factory=DataConfig)
    split: str = "scaffold"  # "scaffold", "random" or "matbench" (5-fold; split_seed is the fold)
    split_fractions: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    split_seed: int = 0  # random split only; the scaffold split is deterministic
    label_fraction: float = 1.0
    mode: str = "full"  # "full" fine-tuning or "linear" probing (frozen encoder)
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    dropout: float = 0.5
    head_hidden: int | None = None  # None: a linear head
    seed: int = 0
    save_checkpoints: bool = True  # last.pt every epoch (resumable) and best.pt at the end
    resume: bool = True
    # atomistic tasks
    energy_weight: float = 1.0  # energies and forces: weight of the per-atom energy loss
    force_weight: float = 10.0  # energies and forces: weight of the force loss
    noisy_nodes_weight: float = 0.0  # auxiliary denoising loss while fine-tuning (SCD: 0.1)
    noisy_nodes_sigma: float = 0.005  # its noise, Angstrom


@dataclass
class BenchmarkConfig:
    methods: list[Any] = field(default_factory=lambda: ["scratch", "attrmask", "graphmae"])
    tasks: list[Any] = field(default_factory=list)  # registry names or DataConfig dicts
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    label_fractions: list[float] = field(default_factory=lambda: [1.0])
    tier: str = "custom"


@dataclass
class RunConfig:
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    output_dir: str = "runs/default"
    cache_dir: str = ".graphssl_cache"
    threads: int | None = None  # torch intra-op threads; None keeps torch's default
    progress: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)

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
