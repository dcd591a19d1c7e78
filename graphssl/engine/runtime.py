"""Seeding, devices, threads, library versions, output folders and the whole-config check shared
by every training loop.

:func:`validate` checks what a command will use before any work: the value ranges of
:meth:`RunConfig.check` and every name that lives in a registry (backbones, objectives and their
options, splits, modes, poolings, data sets), and builds the backbone once on the meta device
(no memory, no random numbers) so a bad ``model.options`` key fails before the data build.
"""

from __future__ import annotations

import difflib
import os
import platform
import random
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graphssl.core.config import DataConfig, RunConfig, benchmark_task_data, check_choice
from graphssl.core.errors import ConfigError, GraphSSLError
from graphssl.core.io import remove_stale_temporaries
from graphssl.data.sources import SOURCES
from graphssl.data.splits import SPLITS
from graphssl.nn import BACKBONES, GeometricBackbone, build_backbone
from graphssl.nn.encoder import POOLINGS
from graphssl.objectives.registry import OBJECTIVES, objective_options
from graphssl.tasks import MODES


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator that shuffles one epoch of fine-tuning.

    It depends only on (seed, epoch), so a resumed run sees the same batches as an
    uninterrupted one, whatever else drew from the global generator.
    """
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; an unavailable device fails clearly."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' requested but CUDA is not available on this machine")
    return device


def set_threads(threads: int | None) -> None:
    """Torch intra-op threads; None keeps torch's default."""
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)


def start_finetuning(config: RunConfig) -> tuple[torch.device, Path]:
    """Threads, seed, device and output folder of a fine-tuning run.

    The one seed recipe of fine-tuning: everything is seeded with ``finetune.seed`` here,
    before the data set, the encoder and the head are built; each epoch's shuffle then comes
    from :func:`epoch_generator`.
    """
    set_threads(config.threads)
    seed_everything(config.finetune.seed)
    out = prepare_folder(config.output_dir, "output_dir")
    return resolve_device(config.device), out


# --------------------------------------------------------------------------- folders

def prepare_folder(path: str | Path, option: str, clean_depth: int = 0) -> Path:
    """The folder ``option`` names, created when missing, with the orphaned temporaries of killed
    writes removed (down to ``clean_depth`` levels of subfolders).

    An empty name, an existing file, a path under a file, or a folder that cannot be created or
    written fails with a :class:`ConfigError` naming ``option``.
    """
    text = str(path).strip() if path is not None else ""
    if not text:
        raise ConfigError(f"option '{option}' is empty: give a folder (an empty one would mean the working folder)")
    folder = Path(text).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"option '{option}': '{folder}' is a file, not a folder; give another path")
    for parent in folder.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"option '{option}': '{folder}' lies under '{parent}', which is a file, "
                                  "not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"option '{option}': cannot create the folder '{folder}' "
                          f"({exc.strerror or type(exc).__name__})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"option '{option}': the folder '{folder}' is not writable")
    remove_stale_temporaries(folder, depth=clean_depth)
    return folder


def prepare_cache(config: RunConfig) -> Path:
    """``cache_dir``, checked and created, orphaned temporaries removed (the cache holds one
    folder per data-set build, so one level of subfolders is cleaned)."""
    return prepare_folder(config.cache_dir, "cache_dir", clean_depth=1)


# --------------------------------------------------------------------------- the whole config

def _norm_names() -> dict[str, str]:
    """PyG's normalisation layers usable between message-passing layers: matching key -> snake name."""
    import torch_geometric.nn.norm as norms

    names: dict[str, str] = {}
    for cls_name in norms.__all__:
        if cls_name.startswith("Hetero"):
            continue
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", cls_name).lower()
        key = cls_name.lower()
        names[key] = snake
        names[key.removesuffix("norm")] = snake  # PyG's resolver accepts "batch" for BatchNorm
    return names


def _check_norm(norm: str | None, where: str) -> None:
    if norm is None:
        return
    names = _norm_names()
    if not isinstance(norm, str) or re.sub(r"[-_ ]", "", norm.lower()) not in names:
        choices = sorted(set(names.values()))
        close = difflib.get_close_matches(str(norm), choices, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"option '{where}norm' must be one of {', '.join(choices)}, or empty; got {norm!r}.{hint}")


# a trial build on the CPU (for backbones that cannot be built on the meta device) is skipped
# above this many hidden units x layers: it would cost real memory, and the run builds it anyway
_TRIAL_LIMIT = 100_000


def _trial_backbone(model: Any, cutoff: float) -> torch.nn.Module:
    cls = BACKBONES.get(model.backbone)
    if issubclass(cls, GeometricBackbone):
        return cls(hidden=model.hidden, num_layers=model.num_layers, cutoff=cutoff, **model.options)
    edge_dim = model.hidden if getattr(cls, "supports_edge_attr", False) else None
    return build_backbone(model.backbone, in_channels=model.hidden, hidden=model.hidden,
                          num_layers=model.num_layers, dropout=model.dropout, norm=model.norm, jk=model.jk,
                          edge_dim=edge_dim, deg=torch.ones(4, dtype=torch.long), **model.options)


def check_model(model: Any, where: str = "model.", cutoff: float = 5.0) -> None:
    """Raise :class:`ConfigError` for a model section that cannot be built: an unknown backbone,
    normalisation or readout, or ``options`` the backbone does not take."""
    model.check(where)
    try:
        cls = BACKBONES.get(model.backbone)
    except ConfigError as exc:
        raise ConfigError(f"option '{where}backbone': {exc}") from None
    try:
        POOLINGS.get(model.pooling)
    except ConfigError as exc:
        raise ConfigError(f"option '{where}pooling': {exc}") from None
    if not issubclass(cls, GeometricBackbone):
        _check_norm(model.norm, where)
    if not isinstance(model.options, dict):
        raise ConfigError(f"option '{where}options' must be a mapping, got {model.options!r}")
    # fork_rng: building draws initial weights, which must not move the run's random stream
    with torch.random.fork_rng(devices=[]):
        try:
            try:
                with torch.device("meta"):
                    _trial_backbone(model, cutoff)
            except (RuntimeError, NotImplementedError) as exc:
                if "meta" not in str(exc):
                    raise
                # a backbone that reads tensor values while it is built (PNA, SchNet) needs real memory
                if model.hidden * model.num_layers > _TRIAL_LIMIT:
                    return  # too large to try cheaply; the run's own build reports any problem
                _trial_backbone(model, cutoff)
        except GraphSSLError:
            raise
        except Exception as exc:  # noqa: BLE001 - a backbone may raise anything on bad arguments
            message = str(exc).splitlines()[0] if str(exc) else ""
            unexpected = re.search(r"unexpected keyword argument '(\w+)'", message)
            if unexpected:
                raise ConfigError(f"option '{where}options.{unexpected[1]}' is not an option of backbone "
                                  f"'{model.backbone}'") from None
            detail = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
            raise ConfigError(f"the {where.rstrip('.')} settings do not build backbone '{model.backbone}' "
                              f"({detail}); check {where}options") from None


def check_objective(name: str, options: dict[str, Any], where: str = "objective.") -> None:
    """Raise :class:`ConfigError` for an unknown objective or an option it does not take."""
    try:
        OBJECTIVES.get(name)
    except ConfigError as exc:
        raise ConfigError(f"option '{where}name': {exc}") from None
    allowed = objective_options(name)
    for key in options or {}:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"option '{where}{key}' is not an option of objective '{name}'.{hint} Its options: "
                              + ", ".join(f"{k}={v!r}" for k, v in allowed.items()))


def check_data(data: DataConfig, where: str, required: bool = True, corpus: bool = False) -> None:
    """Raise :class:`ConfigError` for a data section naming an unknown data set, or giving both a
    name and a path, or (``required``) neither; ``corpus``: it may list several (``sources``)."""
    data.check(where)
    if data.sources:
        if not corpus:
            raise ConfigError(f"option '{where}sources' makes a pretraining corpus; a labelled task is one data set: "
                              f"give {where}name or {where}path")
        for i, (part, _) in enumerate(data.parts(where)):
            check_data(part, f"{where}sources[{i}].")
        return
    if data.name:
        try:
            source = SOURCES.get(data.name)
        except ConfigError as exc:
            raise ConfigError(f"option '{where}name': {exc}") from None
        if data.path and not source.reads_path:
            raise ConfigError(f"give either {where}name ('{data.name}') or {where}path ('{data.path}'), not both")
    elif not data.path and required:  # a path is checked by the data layer, which resolves it first
        raise ConfigError(f"no data set given: set {where}name to a registry name (`graphssl data list`) or "
                          f"{where}path to a file or folder")


def check_finetune(config: RunConfig, where: str = "finetune.") -> None:
    """Raise :class:`ConfigError` for an unknown split, mode or readout of ``config.finetune``."""
    ft = config.finetune
    ft.check(where)
    try:
        SPLITS.get(ft.split)
    except ConfigError as exc:
        raise ConfigError(f"option '{where}split': {exc}") from None
    check_choice(ft.mode, MODES, f"{where}mode")
    if ft.pooling is not None:
        try:
            POOLINGS.get(ft.pooling)
        except ConfigError as exc:
            raise ConfigError(f"option '{where}pooling': {exc}") from None


def validate(config: RunConfig, command: str, *, checkpoint: Any = None, has_data: bool = False) -> None:
    """Check everything ``command`` (pretrain, finetune, benchmark) will use, before any work.

    ``has_data``: the caller passes the data set itself, so the data section may be empty.
    ``checkpoint``: fine-tuning starts from a pretrained encoder, whose model section is its own.
    The benchmark's methods are checked by the harness (they live above this layer).
    """
    config.check()
    if command in ("pretrain", "benchmark"):
        check_data(config.data, "data.", required=not has_data, corpus=True)
        check_model(config.model, "model.", cutoff=config.data.cutoff)
    if command == "pretrain":
        check_objective(config.objective.name, config.objective.options, "objective.")
    if command in ("finetune", "benchmark"):
        check_finetune(config)
        if command == "finetune":
            check_data(config.finetune.task, "finetune.task.", required=not has_data)
            if checkpoint is None:
                check_model(config.model, "model.", cutoff=config.finetune.task.cutoff)
        else:
            if not config.benchmark.tasks:
                raise ConfigError("option 'benchmark.tasks' is empty: list at least one labelled data set")
            for i, task in enumerate(config.benchmark.tasks):
                check_data(benchmark_task_data(task, f"benchmark.tasks[{i}]"), f"benchmark.tasks[{i}].")


# --------------------------------------------------------------------------- non-finite values

def gradients_finite(module: torch.nn.Module) -> bool:
    """Whether every gradient of ``module`` is finite (no NaN, no infinity); one device sync."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return True
    return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


def nonfinite_tensors(module_or_state: torch.nn.Module | dict[str, Any]) -> list[str]:
    """Names of the parameters and buffers (or state-dict tensors) holding NaN or infinite values."""
    state = module_or_state.state_dict() if isinstance(module_or_state, torch.nn.Module) else module_or_state
    return [name for name, value in state.items()
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())]


def library_versions() -> dict[str, str]:
    """Versions of the libraries that change results, recorded in checkpoints and reports."""
    out = {"python": platform.python_version()}
    for dist in ("graphssl-pretrain", "torch", "torch-geometric", "rdkit", "numpy", "scikit-learn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def machine_description() -> dict[str, str | int]:
    """CPU model, core count, memory and OS, for benchmark reports."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f"{pages / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "torch_threads": torch.get_num_threads(),
        "memory": memory,
        "os": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }
