"""Checkpoints: written atomically, read with ``weights_only=True``, validated on load."""

from __future__ import annotations

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


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a graphssl checkpoint safely; a missing, truncated or foreign file fails clearly."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncation and foreign pickles raise many exception types
        raise CheckpointError(
            f"checkpoint '{path}' cannot be read: it is truncated, corrupted or not a safe "
            f"torch file ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"'{path}' is not a graphssl checkpoint (expected format {CHECKPOINT_FORMAT!r}, found {found!r})"
        )
    return payload
