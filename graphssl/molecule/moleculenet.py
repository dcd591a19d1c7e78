"""The upstream MoleculeNet CSV files: where they are, their checksums and how to read them.

For users with internet access; each file is downloaded once (see
:func:`graphssl.data.download.download`) and registered as ``moleculenet-<name>`` by
:mod:`graphssl.molecule.sources`. Every file comes from the public DeepChem S3 mirror.

Checksum provenance. DeepChem publishes no checksums. The md5 values below are
the ones TorchDrug declares for the same MoleculeNet files
(DeepGraphLearning/torchdrug, ``torchdrug/datasets/<name>.py``, ``md5 = ...``).
TorchDrug lists them with URLs on the older ``deepchem.io`` bucket; BaratiLab/AugLiChem
(``auglichem/molecule/data/_load_sets.py``) checks the same md5 values against
the ``deepchemdata`` URLs used here for bace, BBBP, sider, tox21, HIV, muv,
delaney-processed and Lipophilicity. For clintox and toxcast_data the md5 has
only been published next to the ``deepchem.io`` URL. ``SAMPL.csv`` (FreeSolv) has no
published checksum (TorchDrug's md5 is for a different file, ``FreeSolv.zip``), so
it is fetched unverified, with a warning that shows its sha256.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from graphssl.core.errors import DataError
from graphssl.data.download import RemoteFile, fetch
from graphssl.data.records import TASK_TYPES

__all__ = ["MOLECULENET", "RemoteSource", "fetch_source"]


@dataclass(frozen=True)
class RemoteSource(RemoteFile):
    """One downloadable molecule table and how to read it.

    ``label_columns == ()`` means "every column except `smiles_column`". ToxCast
    uses it because its 617 assay columns are too many to list here and verify.
    Files whose name ends in ``.gz`` are stored compressed; ``pandas.read_csv``
    decompresses them itself.
    """

    smiles_column: str
    label_columns: tuple[str, ...]
    task_type: str  # "classification" | "regression"
    description: str

    def __post_init__(self) -> None:
        if self.task_type not in TASK_TYPES:
            raise DataError(f"{self.name}: task_type must be one of {TASK_TYPES}, got {self.task_type!r}")
        super().__post_init__()

    def resolve_label_columns(self, columns: Sequence[str]) -> tuple[str, ...]:
        """Label columns for a file with header `columns`.

        Resolves the ``()`` convention, and raises DataError naming any declared
        column missing from the header.
        """
        columns = list(columns)
        if self.smiles_column not in columns:
            raise DataError(f"{self.name}: SMILES column {self.smiles_column!r} not in the file's columns {columns}")
        if not self.label_columns:
            return tuple(c for c in columns if c != self.smiles_column)
        missing = [c for c in self.label_columns if c not in columns]
        if missing:
            raise DataError(f"{self.name}: label columns {missing} not in the file's columns {columns}")
        return self.label_columns


_DEEPCHEM = "https://deepchemdata.s3-us-west-1.amazonaws.com/datasets/"


def _source(
    name: str,
    filename: str,
    md5: str | None,
    smiles_column: str,
    label_columns: tuple[str, ...],
    task_type: str,
    description: str,
) -> RemoteSource:
    return RemoteSource(
        name=name,
        url=_DEEPCHEM + filename,
        filename=filename,
        md5=md5,
        sha256=None,  # no published sha256 found for any of these files
        smiles_column=smiles_column,
        label_columns=label_columns,
        task_type=task_type,
        description=description,
    )


# Label columns: TorchDrug's target_fields, cross-checked with DeepChem's molnet
# loaders (tox21, muv). SIDER's 27 columns are DeepChem's SIDER_TASKS
# (deepchem/molnet/load_function/sider_datasets.py); TorchDrug takes all columns.
_TOX21_TASKS = (
    "NR-AR", "NR-AR-LBD", "NR-AhR", "NR-Aromatase", "NR-ER", "NR-ER-LBD", "NR-PPAR-gamma",
    "SR-ARE", "SR-ATAD5", "SR-HSE", "SR-MMP", "SR-p53",
)  # fmt: skip
_MUV_TASKS = (
    "MUV-466", "MUV-548", "MUV-600", "MUV-644", "MUV-652", "MUV-689", "MUV-692", "MUV-712",
    "MUV-713", "MUV-733", "MUV-737", "MUV-810", "MUV-832", "MUV-846", "MUV-852", "MUV-858",
    "MUV-859",
)  # fmt: skip
_SIDER_TASKS = (
    "Hepatobiliary disorders",
    "Metabolism and nutrition disorders",
    "Product issues",
    "Eye disorders",
    "Investigations",
    "Musculoskeletal and connective tissue disorders",
    "Gastrointestinal disorders",
    "Social circumstances",
    "Immune system disorders",
    "Reproductive system and breast disorders",
    "Neoplasms benign, malignant and unspecified (incl cysts and polyps)",
    "General disorders and administration site conditions",
    "Endocrine disorders",
    "Surgical and medical procedures",
    "Vascular disorders",
    "Blood and lymphatic system disorders",
    "Skin and subcutaneous tissue disorders",
    "Congenital, familial and genetic disorders",
    "Infections and infestations",
    "Respiratory, thoracic and mediastinal disorders",
    "Psychiatric disorders",
    "Renal and urinary disorders",
    "Pregnancy, puerperium and perinatal conditions",
    "Ear and labyrinth disorders",
    "Cardiac disorders",
    "Nervous system disorders",
    "Injury, poisoning and procedural complications",
)

MOLECULENET: dict[str, RemoteSource] = {
    s.name: s
    for s in (
        # The eight classification sets of the pretrain-gnns benchmark.
        _source("bbbp", "BBBP.csv", "66286cb9e6b148bd75d80c870df580fb", "smiles", ("p_np",),
                "classification", "Blood-brain barrier penetration (binary), ~2k molecules."),
        _source("tox21", "tox21.csv.gz", "2882d69e70bba0fec14995f26787cc25", "smiles", _TOX21_TASKS,
                "classification", "Tox21 challenge: 12 toxicity assays, ~7.8k molecules."),
        _source("toxcast", "toxcast_data.csv.gz", "92911bbf9c1e2ad85231014859388cd6", "smiles", (),
                "classification", "ToxCast: 617 in-vitro assays, ~8.6k molecules; labels = all non-SMILES columns."),
        _source("sider", "sider.csv.gz", "77c0ef421f7cc8ce963c5836c8761fd2", "smiles", _SIDER_TASKS,
                "classification", "SIDER: 27 side-effect organ classes of marketed drugs, ~1.4k molecules."),
        _source("clintox", "clintox.csv.gz", "db4f2df08be8ae92814e9d6a2d015284", "smiles",
                ("FDA_APPROVED", "CT_TOX"), "classification",
                "ClinTox: FDA approval and clinical-trial toxicity, ~1.5k molecules."),
        _source("muv", "muv.csv.gz", "9c40bd41310991efd40f4d4868fa3ddf", "smiles", _MUV_TASKS,
                "classification", "Maximum Unbiased Validation: 17 PubChem assays, ~93k molecules."),
        _source("hiv", "HIV.csv", "9ad10c88f82f1dac7eb5c52b668c30a7", "smiles", ("HIV_active",),
                "classification", "DTP AIDS antiviral screen (active vs inactive), ~41k molecules."),
        _source("bace", "bace.csv", "ba7f8fa3fdf463a811fa7edea8c982c2", "mol", ("Class",),
                "classification", "BACE-1 inhibitors (binary), ~1.5k molecules."),
        # Regression sets.
        _source("esol", "delaney-processed.csv", "0c90a51668d446b9e3ab77e67662bd1c", "smiles",
                ("measured log solubility in mols per litre",), "regression",
                "ESOL (Delaney): aqueous solubility, log mol/L, ~1.1k molecules."),
        _source("freesolv", "SAMPL.csv", None, "smiles", ("expt",), "regression",
                "FreeSolv: experimental hydration free energy, kcal/mol, ~640 molecules."),
        _source("lipophilicity", "Lipophilicity.csv", "85a0e1cb8b38b0dfc3f96ff47a57f0ab", "smiles",
                ("exp",), "regression", "Lipophilicity: octanol/water logD at pH 7.4, ~4.2k molecules."),
    )
}  # fmt: skip


def fetch_source(name: str, root: str | Path, *, progress: bool = True) -> Path:
    """Path to MOLECULENET[name] under `root`, downloading it unless a verified copy is there.

    Names are case-insensitive. A source without a published checksum is used
    unverified, with an UnverifiedDownloadWarning that shows the file's sha256.
    """
    key = name.strip().lower() if isinstance(name, str) else name
    source = MOLECULENET.get(key)
    if source is None:
        raise DataError(f"unknown MoleculeNet data set {name!r}; valid names: {', '.join(sorted(MOLECULENET))}")
    return fetch(source, root, progress=progress)
