"""Atomic file writes: a crash mid-write never leaves a half-written file under the target name.

Each write goes through a temporary file next to the target, named
``.<target>.<host>-<pid>.<random>.graphssl-tmp``. A process killed mid-write leaves that file
behind; :func:`remove_stale_temporaries` recognises such orphans by the name (the writing
process is gone, or the file is old) and removes them at the start of the next run.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Callable

import torch

TEMP_SUFFIX = ".graphssl-tmp"
# .<target>.<host>-<pid>.<random from mkstemp>.graphssl-tmp
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[A-Za-z0-9_]+"
                        + re.escape(TEMP_SUFFIX) + "$")
# what earlier versions wrote: .<target>.<8 random characters>.tmp (no writer recorded)
_LEGACY_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
# a temporary lives for the seconds one write takes: one this old is an orphan whoever wrote it
STALE_AFTER_S = 24 * 3600
LEGACY_STALE_AFTER_S = 3600


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def _atomic_write(path: str | Path, mode: str, write: Callable[[IO], None]) -> Path:
    """Write through ``write`` into a temporary file next to ``path``, fsync, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_host()}-{os.getpid()}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files; give the result the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically."""
    return _atomic_write(path, "wb", lambda handle: torch.save(obj, handle))


def atomic_write_text(text: str, path: str | Path) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return _atomic_write(path, "w", lambda handle: handle.write(text))


def atomic_write_bytes(data: bytes, path: str | Path) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return _atomic_write(path, "wb", lambda handle: handle.write(data))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def is_stale_temporary(path: Path, now: float | None = None) -> bool:
    """Whether ``path`` is a temporary of an atomic write whose writer can no longer finish it."""
    now = time.time() if now is None else now
    try:
        age = now - path.stat().st_mtime
    except OSError:
        return False
    match = _TEMP_NAME.match(path.name)
    if match:
        if match["host"] == _host() and not _process_alive(int(match["pid"])):
            return True
        # another machine's writer (shared file system), or a reused process id
        return age > STALE_AFTER_S
    return bool(_LEGACY_NAME.match(path.name)) and age > LEGACY_STALE_AFTER_S


def remove_stale_temporaries(folder: str | Path, depth: int = 1) -> list[Path]:
    """Delete the orphaned temporaries of killed writes in ``folder`` and its subfolders down to
    ``depth`` levels (0: the folder only); returns what was removed. Temporaries of writes still
    in progress (a live process on this machine, or a recent file) are left alone."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    level = [folder]
    for _ in range(depth + 1):
        below = []
        for current in level:
            try:
                entries = list(os.scandir(current))
            except OSError:
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    below.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False) and is_stale_temporary(Path(entry.path), now):
                    try:
                        os.unlink(entry.path)
                        removed.append(Path(entry.path))
                    except OSError:
                        pass  # removed by someone else meanwhile, or not ours to remove
        level = below
    return removed
