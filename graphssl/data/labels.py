"""Labels read from table cells, and when a record's labels make it unusable.

Shared by every domain: a missing label is NaN; a value that is there but unusable
(non-numeric, infinite) is a bad record, never silently a missing label.
"""

from __future__ import annotations

import math
from typing import Sequence

_TRUE = {"true", "yes", "active", "positive", "+"}
_FALSE = {"false", "no", "inactive", "negative", "-"}


def parse_label(value: object, column: str) -> tuple[float, str | None]:
    """A float label from a table cell; empty cells are missing (NaN).

    Returns ``(value, error)``; infinite or non-numeric values are errors, not NaN, so
    they are reported instead of being silently treated as missing.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan, None
    text = str(value).strip()
    if text == "" or text.lower() in {"nan", "na", "none"}:
        return math.nan, None
    low = text.lower()
    if low in _TRUE:
        return 1.0, None
    if low in _FALSE:
        return 0.0, None
    try:
        number = float(text)
    except ValueError:
        return math.nan, f"label column '{column}' has non-numeric value {text!r}"
    if math.isinf(number):
        return math.nan, f"label column '{column}' has infinite value {text!r}"
    return number, None


def parse_labels(row: dict, columns: Sequence[str]) -> tuple[list[float], str | None]:
    """The labels of ``columns`` in ``row`` and the first problem among them (or None)."""
    labels, error = [], None
    for column in columns:
        value, err = parse_label(row.get(column), column)
        labels.append(value)
        error = error or err
    return labels, error


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
