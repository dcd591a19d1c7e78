"""Seeding, devices, threads and library versions shared by every training loop."""

from __future__ import annotations

import os
import platform
import random
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from graphssl.core.config import RunConfig
from graphssl.core.errors import ConfigError


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
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return resolve_device(config.device), out


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
