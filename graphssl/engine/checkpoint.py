"""Checkpoints: written atomically, read with ``weights_only=True``, validated on load."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import torch

from graphssl.core.io import atomic_torch_save

from graphssl.core.errors import CheckpointError
from graphssl.engine.runtime import library_versions

CHECKPOINT_FORMAT = "graphssl-checkpoint/1"


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Save ``payload`` (tensors, state dicts, plain Python values) plus format and versions.

    The file appears under ``path`` only once it is complete (write to a temporary file in
    the same folder, fsync, rename), so a run killed mid-write leaves the old checkpoint.
    """
    return atomic_torch_save({"format": CHECKPOINT_FORMAT, "versions": library_versions(), **payload}, path)


def _reason(exc: Exception) -> str:
    """What went wrong reading a file, in one line, without torch's advice to load it unsafely
    (``weights_only=False`` runs whatever code a pickle holds: graphssl never does that)."""
    text = str(exc)
    unpickler = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\s*Please use|\n\n|$)", text, re.S)
    if unpickler:
        return " ".join(unpickler[1].split()).rstrip(".")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if "weights_only" not in line and "trusted source" not in line]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a graphssl checkpoint safely; a missing, truncated or foreign file fails clearly."""
    path = Path(path).expanduser()
    if path.is_dir():
        inside = [name for name in ("encoder.pt", "best.pt", "last.pt") if (path / name).is_file()]
        hint = f" it holds {', '.join(inside)}" if inside else " it holds no checkpoint"
        raise CheckpointError(f"checkpoint '{path}' is a folder, not a file; give the checkpoint file itself (for "
                              f"fine-tuning, the encoder.pt that `graphssl pretrain` writes):{hint}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols of files it then refuses
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncation and foreign pickles raise many exception types
        raise CheckpointError(
            f"checkpoint '{path}' cannot be read: it is truncated, corrupted or not a safe torch file ({_reason(exc)})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"'{path}' is not a graphssl checkpoint (expected format {CHECKPOINT_FORMAT!r}, found {found!r})"
        )
    return payload
