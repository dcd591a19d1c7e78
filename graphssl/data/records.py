"""What every data set build shares: a source of records, the report of what was kept and
skipped, the duplicate rule and the cache identity of input files."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from graphssl.core.config import DataConfig
from graphssl.core.errors import DataError
from graphssl.core.io import atomic_write_text

TASK_TYPES = ("classification", "regression")
# How a record is named in reports and errors: long inputs are cut to this many characters.
MAX_INPUT_CHARS = 200


@dataclass
class Source:
    """The records of a data set (any domain's record type) together with what its labels mean."""

    name: str
    records: Iterable[Any]
    task_names: list[str]
    task_type: str | None  # None for unlabeled corpora
    metric: str | None
    identity: str  # what the on-disk cache key is built from (files, sizes, options)
    description: str = ""
    total: int | None = None  # records expected, for the progress bar
    label_reading: dict[str, str] = field(default_factory=dict)  # label column -> how its cells were read
    # the input kind and file the records were read from ({"kind", "path", "limit"}), so that other
    # columns of the same rows can be read later (finetune.split=column); empty for registry sets
    input: dict[str, Any] = field(default_factory=dict)

    @property
    def labelled(self) -> bool:
        """Whether the records carry labels (decides the ``duplicates=auto`` rule)."""
        return self.task_type is not None


@dataclass
class SkippedRecord:
    index: int
    input: str
    reason: str


@dataclass
class BuildReport:
    """How many records were read, kept and skipped (and why), for one data set build."""

    name: str
    read: int = 0
    kept: int = 0
    skipped: list[SkippedRecord] = field(default_factory=list)
    from_cache: bool = False
    labels: dict[str, str] = field(default_factory=dict)  # label column -> how it was read (and scored)
    input: dict[str, Any] = field(default_factory=dict)  # Source.input of the build

    def kept_records(self, total: int) -> list[int]:
        """Indices of the kept records among records ``0..total-1``, in order: the record of each
        graph, for sources whose records are numbered from 0 and give one graph each."""
        skipped = {s.index for s in self.skipped}
        return [i for i in range(total) if i not in skipped]

    def skip(self, index: int, text: str, reason: str) -> None:
        self.skipped.append(SkippedRecord(index, text, reason))

    def summary(self, max_reasons: int = 5) -> str:
        lines = [
            f"{self.name}: read {self.read}, kept {self.kept}, skipped {len(self.skipped)}"
            + (" (from cache)" if self.from_cache else "")
        ]
        for column, reading in self.labels.items():
            lines.append(f"  label column {column!r}: {reading}")
        for item in self.skipped[:max_reasons]:
            lines.append(f"  skipped record {item.index} ({item.input!r}): {item.reason}")
        if len(self.skipped) > max_reasons:
            lines.append(f"  ... and {len(self.skipped) - max_reasons} more (see the build report JSON)")
        return "\n".join(lines)

    def to_json(self, path: str | Path) -> None:
        """Write atomically (fsync, then rename): a report on disk always belongs to a complete build."""
        atomic_write_text(json.dumps(asdict(self), indent=1), path)

    @classmethod
    def from_json(cls, path: str | Path) -> "BuildReport":
        """Read a report; a :class:`DataError` naming the file if it is empty, cut short or not a report."""
        try:
            raw = json.loads(Path(path).read_text())
            raw["skipped"] = [SkippedRecord(**s) for s in raw.get("skipped", [])]
            return cls(**raw)
        except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError, KeyError) as exc:
            raise DataError(f"build report '{path}' is unreadable ({type(exc).__name__}: {exc})") from None


def shorten(text: str, limit: int = MAX_INPUT_CHARS) -> str:
    """``text``, or its start and its length when longer than ``limit`` characters."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 30]}... ({len(text)} characters)"


def file_identity(path: Path, *extra: object) -> str:
    """A cache identity for a file: its resolved path, size, modification time and options."""
    stat = path.stat()
    text = "|".join(str(x) for x in (path.resolve(), stat.st_size, stat.st_mtime_ns, *extra))
    return hashlib.sha256(text.encode()).hexdigest()


class FirstSeen:
    """The first kept record of each key (canonical SMILES, structure hash, file digest).

    ``claim(key, value)`` returns the value registered by an earlier record with the same key
    (its index, or whatever the caller uses to name it), or registers ``value`` and returns
    None. With ``enabled=False`` nothing is a duplicate.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._first: dict[object, Any] = {}

    def claim(self, key: object, value: Any) -> Any:
        if not self.enabled:
            return None
        earlier = self._first.get(key)
        if earlier is None:
            self._first[key] = value
        return earlier


def rules_key(config: DataConfig, labelled: bool) -> dict[str, Any]:
    """The cache-key entries of the duplicate and atom-count rules.

    They are present only when they can change a build made before the rules existed, so the
    caches of unlabeled corpora (duplicates kept, molecules far below the default atom limit)
    stay valid, while labelled data sets, whose duplicates are now rejected, are rebuilt.
    """
    key: dict[str, Any] = {}
    if config.rejects_duplicates(labelled):
        key["duplicates"] = "reject"
    if config.max_atoms != DataConfig.max_atoms:
        key["max_atoms"] = config.max_atoms
    return key
