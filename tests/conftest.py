"""Shared fixtures: small molecule files, a generated CAD part set and per-module caches, all made by the tests."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core: a second torch thread per worker only oversubscribes
    torch.set_num_threads(1)

SMILES = [
    "CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "c1ccncc1C", "CCN(CC)CC", "C1CCCCC1N",
    "c1ccc2ccccc2c1", "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "OC(=O)c1ccccc1O", "CCOC(=O)C",
    "c1ccc(cc1)C(=O)O", "N#Cc1ccccc1", "C1CCOC1", "CC1=CC(=O)C=CC1=O", "c1cc[nH]c1",
    "c1ccsc1", "CC(C)O", "C1CCNCC1", "c1ccc(Cl)cc1", "CCCCCCCC",
    "c1ccc2[nH]ccc2c1", "O=C1CCCCC1", "CC(N)C(=O)O", "c1cnc2ccccc2n1",
]


@pytest.fixture
def molecule_csv(tmp_path: Path) -> Path:
    """A labelled CSV: a regression column, a classification column with gaps."""
    lines = ["smiles,logp,active"]
    for i, s in enumerate(SMILES):
        active = "" if i % 5 == 4 else str(i % 2)
        lines.append(f"{s},{0.1 * i - 1:.2f},{active}")
    path = tmp_path / "mols.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def smiles_file(tmp_path: Path) -> Path:
    path = tmp_path / "mols.smi"
    path.write_text("\n".join(f"{s} mol{i}" for i, s in enumerate(SMILES * 3)) + "\n")
    return path


# a small corpus with a salt, an isotope and stereo centres, for preparation and streaming
CORPUS = [
    "CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "C1CCNCC1", "[Na+].[Cl-]", "O=C(O)c1ccccc1", "CCN(CC)CC",
    "c1ccncc1", "CC(C)CC(=O)O", "N#Cc1ccccc1", "OCC(O)CO", "CC1=CC(=O)C=CC1=O", "C[C@H](N)C(=O)O", "[13CH4]",
    "FC(F)(F)c1ccccc1", "CSC", "C=CC=C", "CC(C)(C)O", "c1ccc2ccccc2c1", "O=S(=O)(O)O",
]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.smi"
    path.write_text("\n".join(CORPUS * 3) + "\n")
    return path


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread: tiny models only lose time to thread sync on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A data-set cache folder shared by the tests of one module."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def parts_dir(tmp_path_factory) -> Path:
    """30 generated CAD parts (seed 3) with per-face labels."""
    pytest.importorskip("OCP")
    from graphssl.brep.generate import generate_dataset

    folder = tmp_path_factory.mktemp("parts")
    generate_dataset(30, folder, seed=3, progress=False)
    return folder


@pytest.fixture
def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on, for a process group."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
