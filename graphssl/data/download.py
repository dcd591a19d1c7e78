"""Download data files with checksum verification.

A download is streamed to a temporary file next to its destination, checked against the
published checksum and only then renamed into place, so a file at the destination is always
either complete and verified or put there by the user. Without network access, place the
file at the destination by hand: :func:`download` reuses it after checking its checksum.
Domains declare their remote files (e.g. :mod:`graphssl.molecule.moleculenet`).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from graphssl.core.errors import DataError

__all__ = ["RemoteFile", "UnverifiedDownloadWarning", "download", "fetch", "file_checksum"]

_CHUNK_BYTES = 1 << 16
_HEX_LENGTH = {"md5": 32, "sha256": 64}
# Some S3 front ends refuse urllib's default "Python-urllib/x.y" agent.
_USER_AGENT = "graphssl-pretrain (python urllib)"


class UnverifiedDownloadWarning(UserWarning):
    """A file was used although no published checksum exists to verify it."""


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: where it is, what it is called locally and its checksums."""

    name: str
    url: str
    filename: str
    md5: str | None
    sha256: str | None

    def __post_init__(self) -> None:
        _normalize_checksum(self.md5, "md5")
        _normalize_checksum(self.sha256, "sha256")


def _normalize_checksum(value: str | None, algorithm: str) -> str | None:
    """Lower-case hex digest, or None; DataError if it cannot be a digest of `algorithm`."""
    if value is None:
        return None
    digest = str(value).strip().lower()
    if len(digest) != _HEX_LENGTH[algorithm] or any(c not in "0123456789abcdef" for c in digest):
        raise DataError(f"{value!r} is not a {algorithm} checksum ({_HEX_LENGTH[algorithm]} hex digits)")
    return digest


def _new_hasher(algorithm: str) -> "hashlib._Hash":
    # usedforsecurity=False lets md5 work on FIPS-mode systems; this is an
    # integrity check, not a security boundary.
    return hashlib.new(algorithm, usedforsecurity=False)


def file_checksum(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of the file at `path` ("md5" or "sha256")."""
    if algorithm not in _HEX_LENGTH:
        raise DataError(f"unsupported checksum algorithm {algorithm!r}; use one of {sorted(_HEX_LENGTH)}")
    hasher = _new_hasher(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            hasher.update(chunk)
    return hasher.hexdigest()


def _mismatch_text(expected: dict[str, str], actual: dict[str, str]) -> str:
    """'' if every expected digest matches, else a description of each mismatch."""
    return "; ".join(
        f"{alg} expected {expected[alg]}, got {actual[alg]}"
        for alg in expected
        if actual[alg] != expected[alg]
    )


def _offline_hint(dest: Path) -> str:
    return (
        f"If this machine has no internet access, download the file elsewhere and place it at "
        f"{dest}; it will then be checked and reused."
    )


def download(
    url: str,
    dest: str | Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download `url` to `dest`, verifying the given checksum(s); return `dest`.

    A file already at `dest` is reused without network access if it matches the
    checksum(s) (or if none is given); if it does not match, DataError is raised
    and the file is left alone. A failed or mismatching download leaves nothing
    behind at `dest`.
    """
    dest = Path(dest).expanduser()
    expected = {
        alg: digest
        for alg, digest in (("md5", _normalize_checksum(md5, "md5")), ("sha256", _normalize_checksum(sha256, "sha256")))
        if digest is not None
    }

    if dest.exists():
        if not dest.is_file():
            raise DataError(f"cannot download {url} to {dest}: that path exists and is not a file")
        actual = {alg: file_checksum(dest, alg) for alg in expected}
        mismatch = _mismatch_text(expected, actual)
        if mismatch:
            # Never overwrite silently: the file may be the user's own copy.
            raise DataError(
                f"{dest} already exists but does not match the checksum published for {url} "
                f"({mismatch}). Delete it to download again, or replace it with the right file."
            )
        return dest

    dest.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file lives in the destination folder so os.replace is an
    # atomic rename on the same file system.
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            hashers = {alg: _new_hasher(alg) for alg in expected}
            received, declared = _stream(url, out, hashers, dest, timeout=timeout, progress=progress)
        if declared is not None and received != declared:
            raise DataError(
                f"download of {url} was cut short: received {received} of {declared} bytes. "
                + _offline_hint(dest)
            )
        actual = {alg: hasher.hexdigest() for alg, hasher in hashers.items()}
        mismatch = _mismatch_text(expected, actual)
        if mismatch:
            raise DataError(
                f"checksum mismatch for {url}: {mismatch}. The downloaded file was discarded; "
                f"the remote file may have changed or been corrupted in transit."
            )
        os.replace(tmp, dest)
    except BaseException:
        # Also on KeyboardInterrupt: a half-written .part file is never useful.
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _stream(
    url: str,
    out,
    hashers: dict[str, "hashlib._Hash"],
    dest: Path,
    *,
    timeout: float,
    progress: bool,
) -> tuple[int, int | None]:
    """Copy `url` into `out`, feeding `hashers`; return (bytes received, declared length)."""
    try:
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    except ValueError as exc:
        raise DataError(f"cannot download {url!r}: not a valid URL ({exc})") from exc

    received = 0
    declared: int | None = None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            declared = int(length) if length and length.strip().isdigit() else None
            with tqdm(
                total=declared,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=dest.name,
                disable=not progress,
                leave=False,
            ) as bar:
                while chunk := response.read(_CHUNK_BYTES):
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        # A local write failure (disk full, permissions) is not a
                        # network problem; say so rather than blame the network.
                        raise DataError(f"cannot write the download of {url} next to {dest}: {exc}") from exc
                    for hasher in hashers.values():
                        hasher.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise DataError(
            f"cannot download {url}: the server answered HTTP {exc.code} {exc.reason}. " + _offline_hint(dest)
        ) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataError(
            f"cannot download {url}: {reason}. The machine may be offline or the host unreachable. "
            + _offline_hint(dest)
        ) from exc
    return received, declared


def fetch(remote: RemoteFile, root: str | Path, *, progress: bool = True) -> Path:
    """Path to ``remote`` under ``root``, downloading it unless a verified copy is there.

    A file without a published checksum is used unverified, with an
    :class:`UnverifiedDownloadWarning` that shows its sha256.
    """
    path = download(remote.url, Path(root).expanduser() / remote.filename, md5=remote.md5, sha256=remote.sha256,
                    progress=progress)
    if remote.md5 is None and remote.sha256 is None:
        warnings.warn(
            f"{remote.name}: {path} is NOT verified, because no published checksum is known for "
            f"{remote.url}. Its sha256 is {file_checksum(path, 'sha256')}; compare it with a trusted "
            f"copy before relying on results.",
            UnverifiedDownloadWarning,
            stacklevel=3,
        )
    return path
