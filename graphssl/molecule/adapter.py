"""Turn SMILES strings, RDKit molecules and SDF records into PyG graphs.

Every graph carries OGB-compatible categorical features (see
:mod:`graphssl.molecule.features`): ``x`` long [num_atoms, 9],
``edge_index`` long [2, 2 * num_bonds] with bond ``k`` stored as columns
``2k`` (begin -> end) and ``2k + 1`` (end -> begin), ``edge_attr`` long
[2 * num_bonds, 3], ``smiles`` (canonical SMILES of the input molecule) and,
on request, ``pos`` float32 [num_atoms, 3].
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
from rdkit import Chem, rdBase
from rdkit.Chem import rdDistGeom, rdForceFieldHelpers
from torch_geometric.data import Data

from graphssl.core.config import DataConfig
from graphssl.core.errors import MoleculeError
from graphssl.molecule.rdkit_features import graph_tensors

__all__ = ["SDFRecord", "iter_sdf", "mol_from_smiles", "mol_to_data", "sdf_properties", "smiles_to_data"]

# Older RDKit builds lack CaptureErrorLog; then reasons come from exceptions only.
_CaptureErrorLog = getattr(rdBase, "CaptureErrorLog", None)
_TIMESTAMP = re.compile(r"^\[\d{2}:\d{2}:\d{2}\] ?")
_MAX_LABEL = 200
_WHITESPACE = re.compile(r"\s")


# --------------------------------------------------------------------------- logs


@contextlib.contextmanager
def _quiet_rdkit() -> Iterator[list[str]]:
    """Keep RDKit off stderr; the yielded list receives its error messages on exit."""
    messages: list[str] = []
    # BlockLogs must be outermost: a capture opened outside it sees nothing.
    with rdBase.BlockLogs():
        if _CaptureErrorLog is None:
            yield messages
            return
        with _CaptureErrorLog() as capture:
            try:
                yield messages
            finally:
                messages.extend(_clean_log(capture.messages))


# RDKit invariant violations (e.g. an unknown element symbol in a mol block) log a banner, the
# source location and a C++ stack trace around the one line that says what is wrong.
_INVARIANT_NOISE = re.compile(
    r"^(\*+|-+|Post-condition Violation|Pre-condition Violation|Invariant Violation|Range Error|"
    r"Violation occurred on line .*|Failed Expression: .*|Stacktrace:?|\d+# .*)$")
_UNKNOWN_ELEMENT = re.compile(r"^Element '(.*)' not found$")


def _clean_log(text: str) -> list[str]:
    """Reduce RDKit's multi-line parser chatter to its distinct informative lines."""
    out: list[str] = []
    skip_echo = False
    for raw in text.splitlines():
        line = _TIMESTAMP.sub("", raw).strip()
        line = line.removeprefix("SMILES Parse Error:").strip().rstrip(":")
        if _INVARIANT_NOISE.match(line):
            continue
        line = _UNKNOWN_ELEMENT.sub(r"unknown element '\1'", line)
        # The parser echoes the input after "check for mistakes" and marks the
        # position with ^~~; the error message names the input already.
        echo, skip_echo = skip_echo, line.startswith("check for mistakes")
        if echo or not line or set(line) <= {"^", "~", " "}:
            continue
        if line.startswith("Failed parsing SMILES") or line in out:
            continue
        out.append(line)
    return out


def _reason(log: list[str], fallback: str) -> str:
    return "; ".join(log) if log else fallback


# --------------------------------------------------------------------------- parsing


def mol_from_smiles(smiles: str) -> Chem.Mol:
    """Parse and sanitise a SMILES string; raise :class:`MoleculeError` with RDKit's reason."""
    if not isinstance(smiles, str):
        raise MoleculeError(
            f"Expected a SMILES string, got {type(smiles).__name__} {_short(repr(smiles))}"
        )
    text = smiles.strip()
    if not text:
        raise MoleculeError(f"Empty SMILES {smiles!r}: there is nothing to parse")
    inner = _WHITESPACE.search(text)
    if inner is not None:
        # RDKit stops at a space, tab or line break and reads the rest as the molecule's name,
        # so "CC O" would silently become ethane
        raise MoleculeError(
            f"SMILES {_short(repr(smiles))} holds whitespace ({inner.group()!r}) inside it: RDKit would read "
            f"only {_short(repr(text[: inner.start()]))} and take the rest as a name. A SMILES has no "
            "whitespace; in a .smi file the name goes after the SMILES on the same line"
        )
    with rdBase.BlockLogs():
        # Full parse (not sanitize=False + SanitizeMol): only the parser's own
        # sanitisation assigns E/Z bond stereo and drops bogus chiral tags.
        mol = Chem.MolFromSmiles(text)
    if mol is None:
        raise MoleculeError(f"Invalid SMILES {_short(repr(smiles))}: {_smiles_failure(text)}")
    if mol.GetNumAtoms() == 0:
        raise MoleculeError(f"SMILES {_short(repr(smiles))} describes a molecule with no atoms")
    return mol


# The element symbol of a bracket atom: after an optional isotope, before H count, charge, class.
_BRACKET_SYMBOL = re.compile(r"\[\d*([A-Z][a-z]?|[a-z]{1,2})")


def _unknown_element(text: str) -> str | None:
    """The first bracket-atom symbol in ``text`` that names no element (e.g. ``[Xx]``), or None."""
    known = _element_symbols()
    for match in _BRACKET_SYMBOL.finditer(text):
        symbol = match.group(1)
        # aromatic atoms are written in lower case: [se], [te], [nH]
        if symbol not in known and symbol.capitalize() not in known:
            return symbol
    return None


@functools.cache
def _element_symbols() -> frozenset[str]:
    table = Chem.GetPeriodicTable()
    return frozenset(table.GetElementSymbol(z) for z in range(1, 119))


def _smiles_failure(text: str) -> str:
    """Explain why RDKit rejected ``text``: a syntax error or a sanitisation failure."""
    unknown = _unknown_element(text)
    if unknown is not None:
        return f"unknown element {unknown!r} (no element has this symbol)"
    # Parsing again is cheaper overall than capturing logs on every success.
    with _quiet_rdkit() as log:
        raw = Chem.MolFromSmiles(text, sanitize=False)
    if raw is None:
        return _reason(log, "RDKit could not parse it (syntax error)")
    error = _sanitize_failure(raw)
    if error is not None:
        return error
    with _quiet_rdkit() as log:
        Chem.MolFromSmiles(text)
    return _reason(log, "RDKit could not sanitise it")


def _sanitize_failure(mol: Chem.Mol) -> str | None:
    """Return RDKit's sanitisation error for ``mol`` (which is modified), or None if it passes."""
    try:
        with rdBase.BlockLogs():
            Chem.SanitizeMol(mol)
    except Exception as exc:  # RDKit raises several unrelated exception types here
        return f"{exc}".strip() or type(exc).__name__
    return None


# --------------------------------------------------------------------------- graphs


def smiles_to_data(
    smiles: str,
    *,
    explicit_h: bool = False,
    conformer: bool = False,
    seed: int = 0,
    conformer_max_atoms: int | None = DataConfig.conformer_max_atoms,
    conformer_timeout: int | None = DataConfig.conformer_timeout,
) -> Data:
    """Featurise a SMILES string as a PyG ``Data`` graph (see :func:`mol_to_data`)."""
    mol = mol_from_smiles(smiles)
    return mol_to_data(mol, explicit_h=explicit_h, conformer=conformer, seed=seed, smiles=smiles,
                       conformer_max_atoms=conformer_max_atoms, conformer_timeout=conformer_timeout)


def mol_to_data(
    mol: Chem.Mol,
    *,
    explicit_h: bool = False,
    conformer: bool = False,
    seed: int = 0,
    smiles: str | None = None,
    conformer_max_atoms: int | None = DataConfig.conformer_max_atoms,
    conformer_timeout: int | None = DataConfig.conformer_timeout,
) -> Data:
    """Featurise an RDKit molecule as a PyG ``Data`` graph.

    ``explicit_h`` makes hydrogens graph nodes; ``conformer`` adds ETKDGv3
    (+ MMFF where parametrised) coordinates as ``pos`` using ``seed``. A molecule
    with more than ``conformer_max_atoms`` atoms (hydrogens included), or whose
    embedding takes longer than ``conformer_timeout`` seconds, raises
    :class:`MoleculeError` (None: no limit); these are ``data.conformer_max_atoms``
    and ``data.conformer_timeout``.
    ``smiles`` is the text the molecule came from, only used to name it in
    errors; ``data.smiles`` is always RDKit's canonical SMILES of ``mol``.
    The input molecule is never modified.
    """
    if not isinstance(mol, Chem.Mol):
        raise MoleculeError(
            f"Expected an RDKit Mol, got {type(mol).__name__} {_short(repr(mol))}"
        )
    if mol.GetNumAtoms() == 0:
        raise MoleculeError(f"{_describe(mol, smiles)} has no atoms")
    mol = _sanitized(mol, smiles)
    graph_mol = Chem.AddHs(mol) if explicit_h else mol
    try:
        x, edge_index, edge_attr = graph_tensors(graph_mol)
    except RuntimeError as exc:  # e.g. RDKit precondition violations on half-built Mols
        raise MoleculeError(f"Cannot featurise {_describe(mol, smiles)}: {exc}") from exc
    data = Data(x=x, edge_index=edge_index, edge_attr=edge_attr, smiles=Chem.MolToSmiles(mol))
    if conformer:
        with_hs = Chem.AddHs(graph_mol) if not explicit_h else Chem.Mol(graph_mol)
        describe = lambda: _describe(mol, smiles)  # noqa: E731
        if conformer_max_atoms is not None and with_hs.GetNumAtoms() > conformer_max_atoms:
            raise MoleculeError(
                f"Cannot generate a 3D conformer for {describe()}: it has {with_hs.GetNumAtoms()} atoms with "
                f"hydrogens, more than data.conformer_max_atoms={conformer_max_atoms} (embedding time grows "
                "with the cube of the atom count; raise the limit, or set it empty for none)"
            )
        positions = _embed(with_hs, seed, describe, conformer_timeout)
        # AddHs appends hydrogens, so the graph's atoms are the leading rows.
        data.pos = positions[: graph_mol.GetNumAtoms()].contiguous()
    return data


def _sanitized(mol: Chem.Mol, smiles: str | None) -> Chem.Mol:
    """Return ``mol`` if it is already sanitised, else a sanitised copy."""
    if not mol.NeedsUpdatePropertyCache():
        return mol
    copy = Chem.Mol(mol)
    error = _sanitize_failure(copy)
    if error is not None:
        raise MoleculeError(f"{_describe(mol, smiles)} failed RDKit sanitisation: {error}")
    with rdBase.BlockLogs():
        Chem.AssignStereochemistry(copy, cleanIt=True, force=True)
    return copy


def _embed(mol_h: Chem.Mol, seed: int, describe: Callable[[], str], timeout: int | None = None) -> torch.Tensor:
    """Embed ``mol_h`` (hydrogens included) in place and return float32 positions; both
    embedding attempts together get at most ``timeout`` seconds."""
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = seed
    start = time.monotonic()

    def out_of_time() -> bool:
        if timeout is None:
            return False
        left = timeout - (time.monotonic() - start)
        params.timeout = max(1, math.ceil(left))  # RDKit counts whole seconds; 0 would mean no limit
        return left <= 0

    with rdBase.BlockLogs():
        out_of_time()
        conf_id = rdDistGeom.EmbedMolecule(mol_h, params)
        if conf_id < 0 and not out_of_time():
            # Distance-geometry eigen-embedding fails for some strained or large
            # systems; random starting coordinates usually get through.
            params.useRandomCoords = True
            conf_id = rdDistGeom.EmbedMolecule(mol_h, params)
        if conf_id < 0 and timeout is not None and time.monotonic() - start >= timeout:
            raise MoleculeError(
                f"Cannot generate a 3D conformer for {describe()}: ETKDG embedding ran past "
                f"data.conformer_timeout={timeout} s (raise it, or set it empty for no limit)"
            )
        if conf_id < 0:
            raise MoleculeError(
                f"Cannot generate a 3D conformer for {describe()}: "
                "ETKDG embedding failed, also with random starting coordinates"
            )
        if rdForceFieldHelpers.MMFFHasAllMoleculeParams(mol_h):
            rdForceFieldHelpers.MMFFOptimizeMolecule(mol_h, confId=conf_id, maxIters=500)
    positions = mol_h.GetConformer(conf_id).GetPositions()
    return torch.from_numpy(positions).to(torch.float32)


def _describe(mol: Chem.Mol, smiles: str | None) -> str:
    """Name a molecule in an error message by its source SMILES, name or SMILES."""
    if smiles is not None:
        return f"molecule from SMILES {_short(repr(smiles))}"
    parts = []
    if mol.HasProp("_Name") and mol.GetProp("_Name").strip():
        parts.append(f"named {mol.GetProp('_Name').strip()!r}")
    try:
        with rdBase.BlockLogs():
            parts.append(f"SMILES {_short(repr(Chem.MolToSmiles(mol)))}")
    except Exception:  # describing must never mask the real error
        pass
    parts.append(f"with {mol.GetNumAtoms()} atoms")
    return "Mol " + ", ".join(parts)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_LABEL else text[: _MAX_LABEL - 3] + "..."


# --------------------------------------------------------------------------- SDF


@dataclass(frozen=True)
class SDFRecord:
    """One SDF record: a sanitised Mol (None if broken), its data fields and any error."""

    index: int
    mol: Chem.Mol | None
    props: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def iter_sdf(path: str | os.PathLike[str]) -> Iterator[SDFRecord]:
    """Yield every record of an SDF file (``.gz`` allowed) in order, broken ones included.

    A record RDKit cannot read yields ``mol=None`` and an ``error`` naming
    the record index, file and RDKit's reason; its data fields are still parsed.
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", errors="replace") as handle:
        for index, lines in enumerate(_split_records(handle)):
            yield _read_record(index, lines, path)


def sdf_properties(path: str | os.PathLike[str]) -> Iterator[dict[str, str]]:
    """Yield the data fields of every record of an SDF file in order, without parsing molecules."""
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", errors="replace") as handle:
        for lines in _split_records(handle):
            yield _parse_props(lines[_molblock_end(lines):])


def _split_records(lines: Iterable[str]) -> Iterator[list[str]]:
    """Group lines into records terminated by ``$$$$``; a non-blank unterminated tail counts too."""
    record: list[str] = []
    for line in lines:
        line = line.rstrip("\r\n")
        if line.rstrip() == "$$$$":
            yield record
            record = []
        else:
            record.append(line)
    if any(line.strip() for line in record):
        yield record


def _read_record(index: int, lines: list[str], path: str) -> SDFRecord:
    """Parse one record's mol block with RDKit and its data fields by hand."""
    end = _molblock_end(lines)
    molblock = "\n".join(lines[:end]) + "\n"
    props = _parse_props(lines[end:])
    where = f"SDF record {index} in {path!r}"
    name = lines[0].strip() if lines else ""
    if name:
        where += f" (name {name!r})"
    mol, error = _parse_molblock(molblock)
    if mol is not None and mol.GetNumAtoms() == 0:
        mol, error = None, "the record has no atoms"
    if mol is None:
        return SDFRecord(index=index, mol=None, props=props, error=f"{where}: {error}")
    for key, value in props.items():
        mol.SetProp(key, value)
    return SDFRecord(index=index, mol=mol, props=props, error=None)


def _molblock_end(lines: list[str]) -> int:
    """Index just past ``M  END`` (or of the first data header when it is missing)."""
    for i, line in enumerate(lines):
        if line.startswith("M  END"):
            return i + 1
    for i, line in enumerate(lines):
        if i > 3 and line.startswith(">"):
            return i
    return len(lines)


def _parse_molblock(molblock: str) -> tuple[Chem.Mol | None, str | None]:
    """Parse a mol block as SDMolSupplier would (sanitised, Hs removed); return (mol, error)."""
    try:
        with _quiet_rdkit() as log:
            mol = Chem.MolFromMolBlock(molblock, sanitize=True, removeHs=True)
    except Exception as exc:  # some malformed blocks raise instead of returning None
        return None, f"{exc}".strip() or type(exc).__name__
    if mol is not None:
        return mol, None
    with _quiet_rdkit() as raw_log:
        try:
            raw = Chem.MolFromMolBlock(molblock, sanitize=False, removeHs=False)
        except Exception:
            raw = None
    if raw is None:
        return None, _reason(raw_log or log, "RDKit could not parse the mol block")
    return None, _sanitize_failure(raw) or _reason(log, "RDKit could not sanitise it")


_PROP_NAME = re.compile(r"<([^>]*)>")


def _parse_props(lines: list[str]) -> dict[str, str]:
    """Parse SDF data items (``> <name>`` header, value lines, blank line) into strings."""
    props: dict[str, str] = {}
    i = 0
    while i < len(lines):
        header = lines[i]
        i += 1
        if not header.startswith(">"):
            continue
        match = _PROP_NAME.search(header)
        key = match.group(1) if match else header[1:].strip()
        values: list[str] = []
        while i < len(lines) and lines[i].strip():
            values.append(lines[i])
            i += 1
        props[key] = "\n".join(values)
    return props
