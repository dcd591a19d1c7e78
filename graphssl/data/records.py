"""Raw records read from a source, and the report of what a data set build kept and skipped."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from graphssl.errors import ConfigError

TASK_TYPES = ("classification", "regression")
ON_ERROR = ("raise", "skip")


@dataclass
class RawRecord:
    """One input record before featurisation.

    ``labels`` holds one float per task (NaN marks a missing label); ``error`` is set when the
    record was already unreadable at the source (an unparseable SDF block, a bad label cell).
    """

    index: int
    smiles: str | None
    labels: list[float] = field(default_factory=list)
    mol: Any = None
    error: str | None = None


@dataclass
class RawSource:
    """The records of a data set together with what its labels mean."""

    name: str
    records: Iterable[RawRecord]
    task_names: list[str]
    task_type: str | None  # None for unlabeled corpora
    metric: str | None
    identity: str  # what the on-disk cache key is built from (files, sizes, options)
    description: str = ""


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

    def skip(self, index: int, text: str, reason: str) -> None:
        self.skipped.append(SkippedRecord(index, text, reason))

    def summary(self, max_reasons: int = 5) -> str:
        lines = [
            f"{self.name}: read {self.read}, kept {self.kept}, skipped {len(self.skipped)}"
            + (" (from cache)" if self.from_cache else "")
        ]
        for item in self.skipped[:max_reasons]:
            lines.append(f"  skipped record {item.index} ({item.input!r}): {item.reason}")
        if len(self.skipped) > max_reasons:
            lines.append(f"  ... and {len(self.skipped) - max_reasons} more (see the build report JSON)")
        return "\n".join(lines)

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def from_json(cls, path: str | Path) -> "BuildReport":
        raw = json.loads(Path(path).read_text())
        raw["skipped"] = [SkippedRecord(**s) for s in raw.get("skipped", [])]
        return cls(**raw)


def check_choice(value: str | None, allowed: tuple[str, ...], option: str) -> None:
    if value not in allowed:
        raise ConfigError(f"option '{option}' must be one of {', '.join(allowed)}, got {value!r}")
