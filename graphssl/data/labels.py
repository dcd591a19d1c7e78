"""Labels read from table cells, and when a record's labels make it unusable.

Shared by every domain: a missing label is NaN; a value that is there but unusable
(non-numeric, infinite) is a bad record, never silently a missing label.

How a label column is read follows the task type, and the build report says which way:

- **regression**: numbers only, as written (``1.5``, ``-2``, ``3e-4``). Words (``active``, ``no``),
  a lone sign (``-``) or digit separators (``1_000``, ``1,000``) are bad records.
- **classification** (binary): the column must hold exactly two classes, mapped explicitly to
  0 and 1 by :func:`class_mapping`: two numbers, the smaller one 0 (``0/1``, ``-1/+1``, ``1/2``),
  or two words of a known pair (``inactive/active``, ``no/yes``, ``false/true``,
  ``negative/positive``, ``-/+``). More classes, numbers mixed with words, or two words whose
  meaning is unknown are an error for the whole column.

Empty cells, ``nan``, ``na`` and ``none`` are missing labels in both.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Sequence

from graphssl.core.errors import DataError

MISSING = frozenset({"", "nan", "na", "none"})
# Words with a known meaning as a binary class, in classification columns only.
_NEGATIVE = frozenset({"false", "no", "inactive", "negative", "neg", "-"})
_POSITIVE = frozenset({"true", "yes", "active", "positive", "pos", "+"})
# A decimal number as it is written in tables; float() alone would also take "1_000" and " 1 ".
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity)", re.IGNORECASE)
_SHOWN = 6  # classes named in an error


def _rows(n: int) -> str:
    return f"{n} row{'s' * (n != 1)}"


def _text(value: object) -> str | None:
    """The stripped text of a cell, or None when it is a missing label."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return None if text.lower() in MISSING else text


def _number(text: str) -> float | None:
    return float(text) if _NUMBER.fullmatch(text) else None


def parse_label(value: object, column: str) -> tuple[float, str | None]:
    """A number label from a table cell; empty cells are missing (NaN).

    Returns ``(value, error)``; infinite or non-numeric values are errors, not NaN, so
    they are reported instead of being silently treated as missing.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        if math.isnan(number):
            return math.nan, None
        text = str(value)
    else:
        text = _text(value)
        if text is None:
            return math.nan, None
        number = _number(text)
    if number is None:
        hint = " (a class? set the task type to classification)" if text.lower() in _NEGATIVE | _POSITIVE else ""
        return math.nan, f"label column '{column}' has non-numeric value {text!r}{hint}"
    if math.isinf(number):
        return math.nan, f"label column '{column}' has infinite value {text!r}"
    return number, None


@dataclass(frozen=True)
class ClassMapping:
    """How the cells of one binary classification column become 0 and 1."""

    column: str
    classes: dict[str, float]  # class key (see _class_key) -> 0.0 or 1.0
    shown: dict[str, str] = field(default_factory=dict)  # class key -> how it was first written
    counts: dict[str, int] = field(default_factory=dict)

    def parse(self, value: object) -> tuple[float, str | None]:
        text = _text(value)
        if text is None:
            return math.nan, None
        key = _class_key(text)
        if key in self.classes:
            return self.classes[key], None
        known = ", ".join(repr(self.shown.get(k, k)) for k in self.classes)
        return math.nan, f"label column '{self.column}' has value {text!r}, which is none of its classes ({known})"

    def describe(self) -> str:
        """E.g. ``classes '-1' -> 0 (40 rows), '1' -> 1 (12 rows)``."""
        parts = [f"{self.shown.get(k, k)!r} -> {int(v)} ({_rows(self.counts.get(k, 0))})"
                 for k, v in sorted(self.classes.items(), key=lambda kv: kv[1])]
        return "binary classes " + ", ".join(parts)


def _class_key(text: str) -> str:
    """One key per class however it is written: ``1``, ``1.0`` and ``+1`` are one class, as are
    ``Active`` and ``active``."""
    number = _number(text)
    if number is not None and math.isfinite(number):
        return repr(number)
    return text.lower()


def class_mapping(column: str, values: Iterable[object], where: str = "") -> ClassMapping:
    """The 0/1 mapping of a classification column from all of its cells; a :class:`DataError`
    naming the column (and ``where``, the file) when the cells are not two known classes."""
    counts: Counter[str] = Counter()
    shown: dict[str, str] = {}
    for value in values:
        text = _text(value)
        if text is None:
            continue
        key = _class_key(text)
        counts[key] += 1
        shown.setdefault(key, text)
    named = f"{where}: " if where else ""
    listing = ", ".join(f"{shown[k]!r} ({_rows(n)})" for k, n in counts.most_common(_SHOWN))
    if len(counts) > _SHOWN:
        listing += f", ... ({len(counts)} distinct values)"
    keys = sorted(counts)
    numbers = {k: _number(k) for k in keys}
    infinite = [shown[k] for k in keys if numbers[k] is not None and not math.isfinite(numbers[k])]
    if infinite:
        raise DataError(f"{named}classification label column '{column}' holds {infinite[0]!r}, which is no class")
    if len(keys) > 2:
        raise DataError(f"{named}classification label column '{column}' holds {len(keys)} classes ({listing}); "
                        "only binary classification (two classes) is supported: merge the classes into two, or "
                        "use one column per class")
    numeric = [k for k in keys if numbers[k] is not None]
    if numeric and len(numeric) < len(keys):
        raise DataError(f"{named}classification label column '{column}' mixes numbers and words ({listing}); "
                        "write the two classes as 0 and 1")
    if numeric:
        values_sorted = sorted(keys, key=lambda k: numbers[k])
        if len(keys) == 2:
            classes = {values_sorted[0]: 0.0, values_sorted[1]: 1.0}
        elif numbers[keys[0]] in (0.0, 1.0):  # one class: meaningful only as 0 or 1
            classes = {keys[0]: numbers[keys[0]]}
        elif numbers[keys[0]] == -1.0:
            classes = {keys[0]: 0.0}
        else:
            raise DataError(f"{named}classification label column '{column}' holds the one class {listing}: "
                            "it cannot tell which class that is; write the classes as 0 and 1")
    else:
        classes = {}
        for key in keys:
            if key in _NEGATIVE:
                classes[key] = 0.0
            elif key in _POSITIVE:
                classes[key] = 1.0
        if len(classes) < len(keys) or len(set(classes.values())) < len(classes):
            raise DataError(f"{named}classification label column '{column}' holds {listing}: which is the positive "
                            "class is unknown; write the classes as 0 and 1 (or as inactive/active, no/yes, "
                            "false/true, negative/positive)")
    return ClassMapping(column, classes, shown, dict(counts))


@dataclass(frozen=True)
class LabelColumns:
    """How each label column of a source is read: numbers (regression) or a class mapping."""

    columns: tuple[str, ...]
    mappings: dict[str, ClassMapping] = field(default_factory=dict)

    def parse(self, row: dict) -> tuple[list[float], str | None]:
        """The labels of ``row`` (column -> cell) and the first problem among them (or None)."""
        labels, error = [], None
        for column in self.columns:
            mapping = self.mappings.get(column)
            value, err = mapping.parse(row.get(column)) if mapping else parse_label(row.get(column), column)
            labels.append(value)
            error = error or err
        return labels, error

    def describe(self) -> dict[str, str]:
        """Column -> how it was read, for the build report."""
        return {c: self.mappings[c].describe() if c in self.mappings else "numbers (regression)"
                for c in self.columns}


def label_columns(columns: Sequence[str], task_type: str | None, cells: Iterable[dict] | None = None,
                  where: str = "") -> LabelColumns:
    """How to read ``columns`` for ``task_type``; classification columns are mapped from
    ``cells`` (every row's column -> cell, read once before the records are)."""
    columns = tuple(columns)
    if task_type != "classification" or not columns:
        return LabelColumns(columns)
    values: dict[str, list[object]] = {c: [] for c in columns}
    for row in cells or ():
        for column in columns:
            values[column].append(row.get(column))
    return LabelColumns(columns, {c: class_mapping(c, values[c], where) for c in columns})


def parse_labels(row: dict, columns: Sequence[str]) -> tuple[list[float], str | None]:
    """The number labels of ``columns`` in ``row`` and the first problem among them (or None)."""
    return LabelColumns(tuple(columns)).parse(row)


def label_problem(labels: Sequence[float], labelled: bool) -> str | None:
    """Why a record's labels make it unusable, or None.

    NaN marks a missing label and is fine as long as one label is present; an infinite
    label is an error (a value was there, and it is unusable).
    """
    infinite = [k for k, v in enumerate(labels) if math.isinf(v)]
    if infinite:
        return f"infinite label ({labels[infinite[0]]}) in task {infinite[0]}"
    if labelled and all(math.isnan(v) for v in labels):
        return "no label present"
    return None
