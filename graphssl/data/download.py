"""Download the upstream MoleculeNet CSV files, with checksum verification.

For users with internet access. Every file comes from the public DeepChem S3
mirror. A download is streamed to a temporary file next to its destination,
checked against the published checksum and only then renamed into place, so a
file at the destination is always either complete and verified or put there by
the user. Without network access, place the file at the destination by hand:
`download` reuses it after checking its checksum.

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

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from graphssl.core.errors import DataError

__all__ = [
    "RemoteSource",
    "MOLECULENET",
    "UnverifiedDownloadWarning",
    "download",
    "fetch_source",
    "file_checksum",
]

TASK_TYPES = ("classification", "regression")

_CHUNK_BYTES = 1 << 16
_HEX_LENGTH = {"md5": 32, "sha256": 64}
# Some S3 front ends refuse urllib's default "Python-urllib/x.y" agent.
_USER_AGENT = "graphssl-pretrain (python urllib)"


class UnverifiedDownloadWarning(UserWarning):
    """A file was used although no published checksum exists to verify it."""


@dataclass(frozen=True)
class RemoteSource:
    """One downloadable data file and how to read it.

    ``label_columns == ()`` means "every column except `smiles_column`". ToxCast
    uses it because its 617 assay columns are too many to list here and verify.
    Files whose name ends in ``.gz`` are stored compressed; ``pandas.read_csv``
    decompresses them itself.
    """

    name: str
    url: str
    filename: str
    md5: str | None
    sha256: str | None
    smiles_column: str
    label_columns: tuple[str, ...]
    task_type: str  # "classification" | "regression"
    description: str

    def __post_init__(self) -> None:
        if self.task_type not in TASK_TYPES:
            raise DataError(
                f"{self.name}: task_type must be one of {TASK_TYPES}, got {self.task_type!r}"
            )
        _normalize_checksum(self.md5, "md5")
        _normalize_checksum(self.sha256, "sha256")

    def resolve_label_columns(self, columns: Sequence[str]) -> tuple[str, ...]:
        """Label columns for a file with header `columns`.

        Resolves the ``()`` convention, and raises DataError naming any declared
        column missing from the header.
        """
        columns = list(columns)
        if self.smiles_column not in columns:
            raise DataError(
                f"{self.name}: SMILES column {self.smiles_column!r} not in the file's columns {columns}"
            )
        if not self.label_columns:
            return tuple(c for c in columns if c != self.smiles_column)
        missing = [c for c in self.label_columns if c not in columns]
        if missing:
            raise DataError(f"{self.name}: label columns {missing} not in the file's columns {columns}")
        return self.label_columns


def _normalize_checksum(value: str | None, algorithm: str) -> str | None:
    """Lower-case hex digest, or None; DataError if it cannot be a digest of `algorithm`."""
    if value is None:
        return None
    digest = str(value).strip().lower()
    if len(digest) != _HEX_LENGTH[algorithm] or any(c not in "0123456789abcdef" for c in digest):
        raise DataError(f"{value!r} is not a {algorithm} checksum ({_HEX_LENGTH[algorithm]} hex digits)")
    return digest


def _new_hasher(algorithm: str) -> "hashlib._Hash":
    # usedforsecurity=False lets md5 work on FIPS-mode systems; this is an
    # integrity check, not a security boundary.
    return hashlib.new(algorithm, usedforsecurity=False)


def file_checksum(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of the file at `path` ("md5" or "sha256")."""
    if algorithm not in _HEX_LENGTH:
        raise DataError(f"unsupported checksum algorithm {algorithm!r}; use one of {sorted(_HEX_LENGTH)}")
    hasher = _new_hasher(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            hasher.update(chunk)
    return hasher.hexdigest()


def _mismatch_text(expected: dict[str, str], actual: dict[str, str]) -> str:
    """'' if every expected digest matches, else a description of each mismatch."""
    return "; ".join(
        f"{alg} expected {expected[alg]}, got {actual[alg]}"
        for alg in expected
        if actual[alg] != expected[alg]
    )


def _offline_hint(dest: Path) -> str:
    return (
        f"If this machine has no internet access, download the file elsewhere and place it at "
        f"{dest}; it will then be checked and reused."
    )


def download(
    url: str,
    dest: str | Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download `url` to `dest`, verifying the given checksum(s); return `dest`.

    A file already at `dest` is reused without network access if it matches the
    checksum(s) (or if none is given); if it does not match, DataError is raised
    and the file is left alone. A failed or mismatching download leaves nothing
    behind at `dest`.
    """
    dest = Path(dest).expanduser()
    expected = {
        alg: digest
        for alg, digest in (("md5", _normalize_checksum(md5, "md5")), ("sha256", _normalize_checksum(sha256, "sha256")))
        if digest is not None
    }

    if dest.exists():
        if not dest.is_file():
            raise DataError(f"cannot download {url} to {dest}: that path exists and is not a file")
        actual = {alg: file_checksum(dest, alg) for alg in expected}
        mismatch = _mismatch_text(expected, actual)
        if mismatch:
            # Never overwrite silently: the file may be the user's own copy.
            raise DataError(
                f"{dest} already exists but does not match the checksum published for {url} "
                f"({mismatch}). Delete it to download again, or replace it with the right file."
            )
        return dest

    dest.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file lives in the destination folder so os.replace is an
    # atomic rename on the same file system.
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            hashers = {alg: _new_hasher(alg) for alg in expected}
            received, declared = _stream(url, out, hashers, dest, timeout=timeout, progress=progress)
        if declared is not None and received != declared:
            raise DataError(
                f"download of {url} was cut short: received {received} of {declared} bytes. "
                + _offline_hint(dest)
            )
        actual = {alg: hasher.hexdigest() for alg, hasher in hashers.items()}
        mismatch = _mismatch_text(expected, actual)
        if mismatch:
            raise DataError(
                f"checksum mismatch for {url}: {mismatch}. The downloaded file was discarded; "
                f"the remote file may have changed or been corrupted in transit."
            )
        os.replace(tmp, dest)
    except BaseException:
        # Also on KeyboardInterrupt: a half-written .part file is never useful.
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _stream(
    url: str,
    out,
    hashers: dict[str, "hashlib._Hash"],
    dest: Path,
    *,
    timeout: float,
    progress: bool,
) -> tuple[int, int | None]:
    """Copy `url` into `out`, feeding `hashers`; return (bytes received, declared length)."""
    try:
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    except ValueError as exc:
        raise DataError(f"cannot download {url!r}: not a valid URL ({exc})") from exc

    received = 0
    declared: int | None = None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            declared = int(length) if length and length.strip().isdigit() else None
            with tqdm(
                total=declared,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=dest.name,
                disable=not progress,
                leave=False,
            ) as bar:
                while chunk := response.read(_CHUNK_BYTES):
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        # A local write failure (disk full, permissions) is not a
                        # network problem; say so rather than blame the network.
                        raise DataError(f"cannot write the download of {url} next to {dest}: {exc}") from exc
                    for hasher in hashers.values():
                        hasher.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise DataError(
            f"cannot download {url}: the server answered HTTP {exc.code} {exc.reason}. " + _offline_hint(dest)
        ) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataError(
            f"cannot download {url}: {reason}. The machine may be offline or the host unreachable. "
            + _offline_hint(dest)
        ) from exc
    return received, declared


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
    path = download(
        source.url,
        Path(root).expanduser() / source.filename,
        md5=source.md5,
        sha256=source.sha256,
        progress=progress,
    )
    if source.md5 is None and source.sha256 is None:
        warnings.warn(
            f"{source.name}: {path} is NOT verified, because no published checksum is known for "
            f"{source.url}. Its sha256 is {file_checksum(path, 'sha256')}; compare it with a trusted "
            f"copy before relying on results.",
            UnverifiedDownloadWarning,
            stacklevel=2,
        )
    return path
