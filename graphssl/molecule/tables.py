"""Molecule records from tables and files: CSV/TSV with a SMILES column, SMI files, SDF with properties.

Label cells are read as :mod:`graphssl.data.labels` says for the task type: numbers for
regression; for classification each column is read once before the records, to map its two
classes to 0 and 1 (or to refuse it), and the mapping is part of the build report.
"""

from __future__ import annotations

import csv
import gzip
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Sequence

from graphssl.core.config import check_choice
from graphssl.core.errors import DataError
from graphssl.data.labels import LabelColumns, label_columns as read_label_columns
from graphssl.data.records import TASK_TYPES, Source, file_identity

# The file names each reader takes (lower case); together, the molecule-file input kind.
TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".tab")
SMI_SUFFIXES = (".smi", ".smiles", ".txt")
SDF_SUFFIXES = (".sdf", ".sd", ".sdf.gz")
MOLECULE_FILES = tuple(f"*{suffix}" for suffix in (*TABLE_SUFFIXES, *SMI_SUFFIXES, *SDF_SUFFIXES))
# Part of the cache identity of files read here: bump when the reading rules change which
# records are kept or what their labels are (2: strict number labels, class mappings).
READER_VERSION = "reader-2"


@dataclass
class MoleculeRecord:
    """One input molecule before featurisation.

    ``labels`` holds one float per task (NaN marks a missing label); ``error`` is set when the
    record was already unreadable at the source (an unparseable SDF block, a bad label cell).
    """

    index: int
    smiles: str | None
    labels: list[float] = field(default_factory=list)
    mol: Any = None
    error: str | None = None


@dataclass
class Records:
    """The records of a file, read lazily, and how its label columns are read."""

    items: Iterator[MoleculeRecord]
    labels: LabelColumns

    def __iter__(self) -> Iterator[MoleculeRecord]:
        return self.items


def _open_text(path: Path) -> IO[str]:
    # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the first column's name
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _rows(path: Path, sep: str, limit: int | None) -> Iterator[tuple[int, list[str]]]:
    """(record index, fields) of every data row after the header; blank lines are not records."""
    i = 0
    with _open_text(path) as handle:
        reader = csv.reader(handle, delimiter=sep)
        try:
            next(reader, None)  # the header, checked by read_table
            for row in reader:
                if limit is not None and i >= limit:
                    return
                if not row:
                    continue
                yield i, row
                i += 1
        except (csv.Error, UnicodeDecodeError, OSError, EOFError) as exc:
            raise DataError(f"cannot read table '{path}' after record {i}: {exc}") from None


def _cells(row: list[str], at: dict[str, int]) -> dict[str, str]:
    # missing trailing fields are empty cells
    return {name: row[k] if k < len(row) else "" for name, k in at.items()}


def _table_records(path: Path, sep: str, smiles_column: str, labels: LabelColumns, header: list[str],
                   limit: int | None) -> Iterator[MoleculeRecord]:
    """Rows one at a time (bounded memory for any size): a row with more fields than the header
    is a bad record, reported like any other."""
    at = {name: header.index(name) for name in [smiles_column, *labels.columns]}
    for i, row in _rows(path, sep, limit):
        cells = _cells(row, at)
        smiles = cells[smiles_column]
        if len(row) > len(header):
            error = f"row has {len(row)} fields but the header has {len(header)} (a separator inside a value?)"
            yield MoleculeRecord(index=i, smiles=smiles, labels=[math.nan] * len(labels.columns), error=error)
        else:
            values, error = labels.parse(cells)
            yield MoleculeRecord(index=i, smiles=smiles, labels=values, error=error)


def _separator(path: Path, sep: str | None) -> str:
    if sep is not None:
        return sep
    return "\t" if path.suffix.lower() in {".tsv", ".tab"} or path.name.lower().endswith(".tsv.gz") else ","


def _header(path: Path, sep: str) -> list[str]:
    try:
        with _open_text(path) as handle:
            header = next(csv.reader(handle, delimiter=sep), None)
    except (csv.Error, UnicodeDecodeError, OSError, EOFError) as exc:
        raise DataError(f"cannot read table '{path}': {exc}") from None
    if not header:
        raise DataError(f"cannot read table '{path}': the file is empty (no header row)")
    return header


def read_table(
    path: str | Path,
    smiles_column: str | None,
    label_columns: Sequence[str] = (),
    limit: int | None = None,
    sep: str | None = None,
    task_type: str | None = None,
) -> Records:
    """Records of a CSV/TSV file, optionally gzipped (separator from the extension unless
    ``sep`` is given). Every cell is read as text; label cells as ``task_type`` says (see
    :mod:`graphssl.data.labels`): a classification column is read once first for its classes."""
    path = Path(path)
    sep = _separator(path, sep)
    columns = _header(path, sep)
    if smiles_column is None:
        guesses = [c for c in columns if c.lower() in {"smiles", "smi", "canonical_smiles", "mol"}]
        if not guesses:
            raise DataError(f"'{path}': no SMILES column given and none found among {columns}; set smiles_column")
        smiles_column = guesses[0]
    missing = [c for c in [smiles_column, *label_columns] if c not in columns]
    if missing:
        raise DataError(f"'{path}' has no column(s) {missing}; its columns are {columns}")
    at = {name: columns.index(name) for name in label_columns}
    cells = (_cells(row, at) for _, row in _rows(path, sep, limit) if len(row) <= len(columns))
    labels = read_label_columns(label_columns, task_type, cells if task_type == "classification" else None,
                                where=f"'{path}'")
    return Records(_table_records(path, sep, smiles_column, labels, columns, limit), labels)


def read_smi(path: str | Path, limit: int | None = None) -> Iterator[MoleculeRecord]:
    """Records of a SMILES file: one SMILES per line, optionally followed by whitespace and a name
    (the rest of the line), which is not read. Blank lines and lines starting with ``#`` are not
    records; a first line whose first field is ``smiles`` or ``smi`` is a header. A record's index
    is its line number (from 0). A UTF-8 byte-order mark is not part of the first line."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8-sig") as handle:
            count = 0
            for i, line in enumerate(handle):
                if limit is not None and count >= limit:
                    break
                text = line.strip()
                if not text or text.startswith("#"):
                    continue
                first = text.split(maxsplit=1)[0]
                if i == 0 and first.lower() in {"smiles", "smi"}:
                    continue  # a header line
                count += 1
                yield MoleculeRecord(index=i, smiles=first)
    except (UnicodeDecodeError, OSError) as exc:
        raise DataError(f"cannot read SMILES file '{path}': {exc}") from None


def _sdf_props(path: Path, limit: int | None) -> Iterator[dict[str, str]]:
    """The data fields of each SDF record, without parsing its molecule."""
    from graphssl.molecule.adapter import sdf_properties

    for index, props in enumerate(sdf_properties(path)):
        if limit is not None and index >= limit:
            return
        yield props


def _sdf_records(path: Path, labels: LabelColumns, limit: int | None) -> Iterator[MoleculeRecord]:
    from graphssl.molecule.adapter import iter_sdf

    for record in iter_sdf(path):
        if limit is not None and record.index >= limit:
            break
        values, error = labels.parse(record.props)
        missing = [c for c in labels.columns if c not in record.props]
        if record.mol is not None and missing:
            error = error or f"SDF record has no property {missing}"
        yield MoleculeRecord(
            index=record.index,
            smiles=None,
            labels=values,
            mol=record.mol,
            error=record.error or error,
        )


def read_sdf(path: str | Path, label_columns: Sequence[str] = (), limit: int | None = None,
             task_type: str | None = None) -> Records:
    """Records of an SDF file, labels from its property fields (read as ``task_type`` says)."""
    path = Path(path)
    props = _sdf_props(path, limit) if task_type == "classification" else None
    labels = read_label_columns(label_columns, task_type, props, where=f"'{path}'")
    return Records(_sdf_records(path, labels, limit), labels)


def table_columns(path: str | Path) -> list[str]:
    """The column names of a CSV/TSV file, by the same separator and header rules as the reader."""
    path = Path(path)
    return _header(path, _separator(path, None))


def record_column(path: str | Path, column: str, limit: int | None = None,
                  smiles_column: str | None = None) -> list[str]:
    """The cell of ``column`` of every record of a CSV/TSV file (or property of an SDF file), in
    record order: what the records read from that file would hold there (``""`` when absent)."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(SDF_SUFFIXES):
        return [props.get(column, "").strip() for props in _sdf_props(path, limit)]
    if not name.endswith(TABLE_SUFFIXES):
        raise DataError(f"'{path}' has no columns (a SMILES file); a split column needs a CSV/TSV or SDF file")
    sep = _separator(path, None)
    columns = _header(path, sep)
    if column not in columns:
        raise DataError(f"'{path}' has no column {column!r}; its columns are {columns}")
    k = columns.index(column)
    return [row[k].strip() if k < len(row) else "" for _, row in _rows(path, sep, limit)]


def user_source(
    path: str | Path,
    smiles_column: str | None = None,
    label_columns: Sequence[str] = (),
    task_type: str | None = None,
    limit: int | None = None,
) -> Source:
    """A :class:`Source` for a user's file, by extension: .csv/.tsv/.tab(.gz), .smi/.txt, .sdf."""
    path = Path(os.path.expanduser(path))
    if not path.is_file():
        tried = "" if path.is_absolute() else f" (looked for '{path.absolute()}': relative paths are read from " \
                                              "the working directory)"
        raise DataError(f"data file '{path}' does not exist{tried}")
    if task_type is not None:
        check_choice(task_type, TASK_TYPES, "data.task_type")
    if label_columns and task_type is None:
        raise DataError(f"'{path}': label columns {list(label_columns)} need a task type: set task_type to "
                        "'classification' or 'regression' in the section that names the file (data.task_type, "
                        "finetune.task.task_type, or the task's entry in benchmark.tasks)")
    name = path.name.lower()
    records: Iterable[MoleculeRecord]
    reading: dict[str, str] = {}
    if name.endswith(SDF_SUFFIXES):
        records = read_sdf(path, label_columns, limit, task_type)
        reading = records.labels.describe()
    elif name.endswith(SMI_SUFFIXES):
        if label_columns:
            raise DataError(f"'{path}': a SMILES file has no label columns; use a CSV/TSV or SDF for labels")
        records = read_smi(path, limit)
    elif name.endswith(TABLE_SUFFIXES):
        records = read_table(path, smiles_column, label_columns, limit, task_type=task_type)
        reading = records.labels.describe()
    else:
        raise DataError(f"'{path}': not a molecule file; expected one of {', '.join(MOLECULE_FILES)}")
    metric = {"classification": "roc_auc", "regression": "rmse", None: None}[task_type]
    return Source(
        name=path.stem,
        records=records,
        task_names=list(label_columns),
        task_type=task_type,
        metric=metric,
        identity=file_identity(path, smiles_column, tuple(label_columns), limit, task_type, READER_VERSION),
        description=f"user file {path}",
        total=limit,
        label_reading=reading,
        input={"kind": "molecule file", "path": str(path.resolve()), "limit": limit},
    )
