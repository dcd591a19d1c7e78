"""Users' own molecule files: CSV/TSV with a SMILES column, SMI files, SDF with properties."""

from __future__ import annotations

import csv
import gzip
import hashlib
import math
from pathlib import Path
from typing import IO, Iterator, Sequence

from graphssl.data.records import TASK_TYPES, RawRecord, RawSource, check_choice
from graphssl.core.errors import DataError

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


def file_identity(path: Path, *extra: object) -> str:
    """A cache identity for a file: its resolved path, size, modification time and options."""
    stat = path.stat()
    text = "|".join(str(x) for x in (path.resolve(), stat.st_size, stat.st_mtime_ns, *extra))
    return hashlib.sha256(text.encode()).hexdigest()


def _labels_from(row: dict, label_columns: Sequence[str]) -> tuple[list[float], str | None]:
    labels, error = [], None
    for col in label_columns:
        value, err = parse_label(row.get(col), col)
        labels.append(value)
        error = error or err
    return labels, error


def _open_text(path: Path) -> IO[str]:
    # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the first column's name
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _table_records(
    path: Path, sep: str, smiles_column: str, label_columns: Sequence[str], header: list[str], limit: int | None
) -> Iterator[RawRecord]:
    """Rows one at a time (bounded memory for any size): a row with more fields than the header
    is a bad record, reported like any other; missing trailing fields are empty cells."""
    at = {name: header.index(name) for name in [smiles_column, *label_columns]}
    i = 0
    with _open_text(path) as handle:
        reader = csv.reader(handle, delimiter=sep)
        try:
            next(reader)  # the header, checked by read_table
            for row in reader:
                if limit is not None and i >= limit:
                    return
                if not row:
                    continue  # blank lines are not records
                cell = lambda name: row[at[name]] if at[name] < len(row) else ""  # noqa: E731
                smiles = cell(smiles_column)
                if len(row) > len(header):
                    error = f"row has {len(row)} fields but the header has {len(header)} (a separator inside a value?)"
                    yield RawRecord(index=i, smiles=smiles, labels=[math.nan] * len(label_columns), error=error)
                else:
                    labels, error = _labels_from({c: cell(c) for c in label_columns}, label_columns)
                    yield RawRecord(index=i, smiles=smiles, labels=labels, error=error)
                i += 1
        except (csv.Error, UnicodeDecodeError, OSError, EOFError) as exc:
            raise DataError(f"cannot read table '{path}' after record {i}: {exc}") from None


def read_table(
    path: str | Path,
    smiles_column: str | None,
    label_columns: Sequence[str] = (),
    limit: int | None = None,
    sep: str | None = None,
) -> Iterator[RawRecord]:
    """Records of a CSV/TSV file, optionally gzipped (separator from the extension unless
    ``sep`` is given). Every cell is read as text; labels are parsed by :func:`parse_label`."""
    path = Path(path)
    if sep is None:
        sep = "\t" if path.suffix.lower() in {".tsv", ".tab"} or path.name.endswith(".tsv.gz") else ","
    try:
        with _open_text(path) as handle:
            header = next(csv.reader(handle, delimiter=sep), None)
    except (csv.Error, UnicodeDecodeError, OSError, EOFError) as exc:
        raise DataError(f"cannot read table '{path}': {exc}") from None
    if not header:
        raise DataError(f"cannot read table '{path}': the file is empty (no header row)")
    columns = header
    if smiles_column is None:
        guesses = [c for c in columns if c.lower() in {"smiles", "smi", "canonical_smiles", "mol"}]
        if not guesses:
            raise DataError(f"'{path}': no SMILES column given and none found among {columns}; set smiles_column")
        smiles_column = guesses[0]
    missing = [c for c in [smiles_column, *label_columns] if c not in columns]
    if missing:
        raise DataError(f"'{path}' has no column(s) {missing}; its columns are {columns}")
    return _table_records(path, sep, smiles_column, label_columns, header, limit)


def read_smi(path: str | Path, limit: int | None = None) -> Iterator[RawRecord]:
    """Records of a SMILES file: one SMILES per line, optionally followed by a name."""
    path = Path(path)
    with path.open() as handle:
        count = 0
        for i, line in enumerate(handle):
            if limit is not None and count >= limit:
                break
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            first = text.split()[0]
            if i == 0 and first.lower() in {"smiles", "smi"}:
                continue  # a header line
            count += 1
            yield RawRecord(index=i, smiles=first)


def read_sdf(path: str | Path, label_columns: Sequence[str] = (), limit: int | None = None) -> Iterator[RawRecord]:
    """Records of an SDF file, labels from its property fields."""
    from graphssl.molecule.adapter import iter_sdf

    for record in iter_sdf(path):
        if limit is not None and record.index >= limit:
            break
        labels, error = _labels_from(record.props, label_columns)
        missing = [c for c in label_columns if c not in record.props]
        if record.mol is not None and missing:
            error = error or f"SDF record has no property {missing}"
        yield RawRecord(
            index=record.index,
            smiles=None,
            labels=labels,
            mol=record.mol,
            error=record.error or error,
        )


def user_source(
    path: str | Path,
    smiles_column: str | None = None,
    label_columns: Sequence[str] = (),
    task_type: str | None = None,
    limit: int | None = None,
) -> RawSource:
    """A :class:`RawSource` for a user's file, by extension: .csv/.tsv(.gz), .smi, .sdf."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file '{path}' does not exist")
    if task_type is not None:
        check_choice(task_type, TASK_TYPES, "data.task_type")
    if label_columns and task_type is None:
        raise DataError(f"'{path}': set data.task_type to 'classification' or 'regression' for the label columns")
    name = path.name.lower()
    if name.endswith((".sdf", ".sd", ".sdf.gz")):
        records: Iterator[RawRecord] = read_sdf(path, label_columns, limit)
    elif name.endswith((".smi", ".smiles", ".txt")):
        if label_columns:
            raise DataError(f"'{path}': a SMILES file has no label columns; use a CSV/TSV or SDF for labels")
        records = read_smi(path, limit)
    else:
        records = read_table(path, smiles_column, label_columns, limit)
    metric = {"classification": "roc_auc", "regression": "rmse", None: None}[task_type]
    return RawSource(
        name=path.stem,
        records=records,
        task_names=list(label_columns),
        task_type=task_type,
        metric=metric,
        identity=file_identity(path, smiles_column, tuple(label_columns), limit),
        description=f"user file {path}",
    )
