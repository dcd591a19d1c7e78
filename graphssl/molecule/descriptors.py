"""RDKit 2D molecular descriptors: named sets, one molecule's vector and a matrix for many SMILES.

Sets (:data:`DESCRIPTOR_SETS`):

- ``all``: RDKit's whole ``rdkit.Chem.Descriptors._descList`` (217 names in RDKit 2026.09).
- ``fast`` (the default): ``all`` without the 25 descriptors of :data:`SLOW_DESCRIPTORS`, which
  take about half of the full list's time. On 2,000 MOSES molecules it computes 2.4 times as
  fast (138 against 58 molecules/s in one process on a loaded 2-core machine; ``all`` runs at
  about 150/s on an idle core). Each left-out descriptor is costly and either a composite of
  kept ones (``qed``) or nearly a linear function of them (held-out R^2 from the kept set: the
  Chi indices >= 0.94, ``BertzCT`` 0.99, ``SPS`` 0.96); the BCUT2D eigenvalues (R^2 0.66 to
  0.93) and ``Ipc`` / ``AvgIpc`` (0.64, 0.72; ``Ipc`` spans orders of magnitude) are what is given up.
  ``benchmarks/descriptor_speed.py`` measures all of this
  (``benchmarks/results/descriptor_speed/``).

``descriptor_vector(mol, names)`` returns float64 values in the order of ``names``, NaN where a
descriptor raises or is not finite, so a failure never looks like a real value. The four
E-state index descriptors and the E-state VSA bins share one E-state computation per molecule
(RDKit's own functions compute it once for each of the four); the values are RDKit's.
"""

from __future__ import annotations

import math
import multiprocessing as mp
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
from rdkit import Chem, RDLogger
from rdkit.Chem import Descriptors
from rdkit.Chem.EState.EState import EStateIndices

from graphssl.core.errors import ConfigError

# every descriptor RDKit lists, in RDKit's order
_FUNCTIONS: dict[str, Callable[[Chem.Mol], float]] = dict(Descriptors._descList)

# Left out of ``fast``: why, and their share of the time of RDKit's whole list (in RDKit's order,
# on one molecule, so cached contributions count once; benchmarks/results/descriptor_speed).
SLOW_DESCRIPTORS: dict[str, str] = {
    "qed": "18 % of the time; a function of kept descriptors (MolWt, MolLogP, HBA/HBD, TPSA, rotatable "
           "bonds, aromatic rings) plus structural alerts",
    **{f"BCUT2D_{k}": "7 % for the eight; Burden-matrix eigenvalues, R^2 0.66 to 0.93 from the kept set"
       for k in ("MWHI", "MWLOW", "CHGHI", "CHGLO", "LOGPHI", "LOGPLOW", "MRHI", "MRLOW")},
    "Ipc": "3 %; heavy-tailed information content (median 1e5, up to 2e6 on MOSES), R^2 0.64",
    "AvgIpc": "3 %; average information content, R^2 0.72",
    "BertzCT": "4 %; R^2 0.99 from the kept set",
    "SPS": "4 %; R^2 0.96 from the kept set",
    **{name: "14 % for the twelve; connectivity indices, R^2 >= 0.94 from the kept set"
       for name in ("Chi0", "Chi0n", "Chi0v", "Chi1", "Chi1n", "Chi1v",
                    "Chi2n", "Chi2v", "Chi3n", "Chi3v", "Chi4n", "Chi4v")},
}

DESCRIPTOR_SETS: dict[str, tuple[str, ...]] = {
    "all": tuple(_FUNCTIONS),
    "fast": tuple(name for name in _FUNCTIONS if name not in SLOW_DESCRIPTORS),
}
DEFAULT_SET = "fast"

# descriptors computed together from one E-state vector per molecule
_ESTATE: dict[str, Callable[[np.ndarray], float]] = {
    "MaxAbsEStateIndex": lambda e: float(np.abs(e).max()),
    "MaxEStateIndex": lambda e: float(e.max()),
    "MinAbsEStateIndex": lambda e: float(np.abs(e).min()),
    "MinEStateIndex": lambda e: float(e.min()),
}


# the E-state VSA bins read the E-state indices the molecule has cached, if any
_READS_ESTATE = frozenset(n for n in _FUNCTIONS if n.startswith(("EState_VSA", "VSA_EState")))


def descriptor_names(set_name: str = DEFAULT_SET) -> list[str]:
    """The descriptor names of a named set (``all`` or ``fast``), in RDKit's order."""
    if set_name not in DESCRIPTOR_SETS:
        raise ConfigError(f"unknown molecule descriptor set {set_name!r} (data.descriptors, objective "
                          f"descriptors); choose one of: {', '.join(DESCRIPTOR_SETS)}")
    return list(DESCRIPTOR_SETS[set_name])


@lru_cache(maxsize=16)
def _plan(names: tuple[str, ...]) -> tuple[list[tuple[int, Callable]], list[tuple[int, Callable]]]:
    """(position, function) of the plain descriptors and of the E-state ones among ``names``."""
    unknown = [n for n in names if n not in _FUNCTIONS]
    if unknown:
        raise ConfigError(f"unknown RDKit descriptor(s) {unknown[:5]}; the names are those of "
                          "rdkit.Chem.Descriptors._descList")
    plain = [(k, _FUNCTIONS[n]) for k, n in enumerate(names) if n not in _ESTATE]
    estate = [(k, _ESTATE[n]) for k, n in enumerate(names) if n in _ESTATE]
    return plain, estate


def _store(out: np.ndarray, k: int, compute: Callable[[], float]) -> None:
    try:
        value = float(compute())
    except Exception:  # RDKit descriptors raise many types on odd molecules; NaN marks the gap
        return
    if math.isfinite(value):
        out[k] = value


def descriptor_vector(mol: Chem.Mol, names: Sequence[str]) -> np.ndarray:
    """The descriptors ``names`` of ``mol``, float64 ``[len(names)]``, NaN where one fails or is
    not finite. Explicit hydrogen atoms are removed first, as RDKit's descriptors expect."""
    plain, estate = _plan(tuple(names))
    if mol.GetNumAtoms() != mol.GetNumHeavyAtoms():
        try:
            mol = Chem.RemoveHs(mol)
        except Exception:  # noqa: BLE001 - sanitisation failures: describe the molecule as given
            pass
    out = np.full(len(names), np.nan)
    if estate or any(n in _READS_ESTATE for n in names):
        # computed first and cached on the molecule (force: never a stale cache of the caller's), so
        # the E-state VSA bins reuse it instead of computing it again
        try:
            indices = np.asarray(EStateIndices(mol, force=True), dtype=np.float64)
        except Exception:  # noqa: BLE001
            indices = np.empty(0)
        if indices.size:
            for k, fn in estate:
                _store(out, k, lambda: fn(indices))
    for k, fn in plain:
        _store(out, k, lambda: fn(mol))
    return out


def _rows(args: tuple[list[str], list[str]]) -> np.ndarray:
    smiles, names = args
    RDLogger.DisableLog("rdApp.*")  # an unparsable SMILES becomes a NaN row; the log would only repeat it
    out = np.full((len(smiles), len(names)), np.nan)
    for i, s in enumerate(smiles):
        mol = Chem.MolFromSmiles(s) if s else None
        if mol is not None:
            out[i] = descriptor_vector(mol, names)
    return out


def descriptor_matrix(smiles: Sequence[str], names: Sequence[str] | None = None, processes: int = 1) -> np.ndarray:
    """Descriptors of each SMILES, float64 ``[n, d]`` (``names`` default: the ``fast`` set), NaN
    where a descriptor fails and a NaN row for a SMILES RDKit cannot parse. ``processes > 1``
    computes chunks in that many worker processes; the result is the same."""
    names = descriptor_names(DEFAULT_SET) if names is None else list(names)
    _plan(tuple(names))  # a bad name fails here, before any worker starts
    smiles = list(smiles)
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ConfigError(f"processes must be a positive integer, got {processes!r}")
    if processes == 1 or len(smiles) < 2 * processes:
        return _rows((smiles, names))
    size = max(1, min(500, math.ceil(len(smiles) / (4 * processes))))
    tasks = [(smiles[i:i + size], names) for i in range(0, len(smiles), size)]
    # not fork: a parent whose OpenMP pool has run (any torch op) deadlocks its forked children
    methods = mp.get_all_start_methods()
    context = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
    with context.Pool(processes) as pool:
        parts = pool.map(_rows, tasks)
    return np.concatenate(parts)


__all__ = ["DEFAULT_SET", "DESCRIPTOR_SETS", "SLOW_DESCRIPTORS", "descriptor_matrix", "descriptor_names",
           "descriptor_vector"]
