"""Molecule records from tables and files: CSV/TSV with a SMILES column, SMI files, SDF with properties."""

from __future__ import annotations

import csv
import gzip
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator, Sequence

from graphssl.core.config import check_choice
from graphssl.core.errors import DataError
from graphssl.data.labels import parse_labels
from graphssl.data.records import TASK_TYPES, Source, file_identity

# The file names each reader takes (lower case); together, the molecule-file input kind.
TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".tab")
SMI_SUFFIXES = (".smi", ".smiles", ".txt")
SDF_SUFFIXES = (".sdf", ".sd", ".sdf.gz")
MOLECULE_FILES = tuple(f"*{suffix}" for suffix in (*TABLE_SUFFIXES, *SMI_SUFFIXES, *SDF_SUFFIXES))


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


def _open_text(path: Path) -> IO[str]:
    # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the first column's name
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _table_records(
    path: Path, sep: str, smiles_column: str, label_columns: Sequence[str], header: list[str], limit: int | None
) -> Iterator[MoleculeRecord]:
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
                    yield MoleculeRecord(index=i, smiles=smiles, labels=[math.nan] * len(label_columns), error=error)
                else:
                    labels, error = parse_labels({c: cell(c) for c in label_columns}, label_columns)
                    yield MoleculeRecord(index=i, smiles=smiles, labels=labels, error=error)
                i += 1
        except (csv.Error, UnicodeDecodeError, OSError, EOFError) as exc:
            raise DataError(f"cannot read table '{path}' after record {i}: {exc}") from None


def read_table(
    path: str | Path,
    smiles_column: str | None,
    label_columns: Sequence[str] = (),
    limit: int | None = None,
    sep: str | None = None,
) -> Iterator[MoleculeRecord]:
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


def read_smi(path: str | Path, limit: int | None = None) -> Iterator[MoleculeRecord]:
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
            yield MoleculeRecord(index=i, smiles=first)


def read_sdf(path: str | Path, label_columns: Sequence[str] = (), limit: int | None = None) -> Iterator[MoleculeRecord]:
    """Records of an SDF file, labels from its property fields."""
    from graphssl.molecule.adapter import iter_sdf

    for record in iter_sdf(path):
        if limit is not None and record.index >= limit:
            break
        labels, error = parse_labels(record.props, label_columns)
        missing = [c for c in label_columns if c not in record.props]
        if record.mol is not None and missing:
            error = error or f"SDF record has no property {missing}"
        yield MoleculeRecord(
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
) -> Source:
    """A :class:`Source` for a user's file, by extension: .csv/.tsv/.tab(.gz), .smi/.txt, .sdf."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file '{path}' does not exist")
    if task_type is not None:
        check_choice(task_type, TASK_TYPES, "data.task_type")
    if label_columns and task_type is None:
        raise DataError(f"'{path}': set data.task_type to 'classification' or 'regression' for the label columns")
    name = path.name.lower()
    if name.endswith(SDF_SUFFIXES):
        records: Iterator[MoleculeRecord] = read_sdf(path, label_columns, limit)
    elif name.endswith(SMI_SUFFIXES):
        if label_columns:
            raise DataError(f"'{path}': a SMILES file has no label columns; use a CSV/TSV or SDF for labels")
        records = read_smi(path, limit)
    elif name.endswith(TABLE_SUFFIXES):
        records = read_table(path, smiles_column, label_columns, limit)
    else:
        raise DataError(f"'{path}': not a molecule file; expected one of {', '.join(MOLECULE_FILES)}")
    metric = {"classification": "roc_auc", "regression": "rmse", None: None}[task_type]
    return Source(
        name=path.stem,
        records=records,
        task_names=list(label_columns),
        task_type=task_type,
        metric=metric,
        identity=file_identity(path, smiles_column, tuple(label_columns), limit),
        description=f"user file {path}",
        total=limit,
    )
