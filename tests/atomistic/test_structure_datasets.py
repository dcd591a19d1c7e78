"""Atomistic data sets: qm9-3d, matbench-dielectric, user folders and frame files, the store, the
cache, and the EMT generator. Every test featurises a handful of structures only."""

from __future__ import annotations

import json
from pathlib import Path

import ase.db
import ase.io
import numpy as np
import pandas as pd
import pytest
import torch
from ase.calculators.emt import EMT
from pymatgen.core import Lattice, Structure

from graphssl.atomistic.datasets import AtomisticDataset, atomistic_feature_spec
from graphssl.atomistic.emt import generate_emt
from graphssl.atomistic.graph import ATOMISTIC_FIELDS, edge_vectors
from graphssl.atomistic.neighbors import radius_graph
from graphssl.atomistic.splits import matbench_folds
from graphssl.core.config import DataConfig
from graphssl.core.errors import DataError
from graphssl.data.dataset import load_dataset
from graphssl.data.packaged import HARTREE_TO_EV, QM9_TARGETS, packaged_file
from graphssl.data.sources import SOURCES
from graphssl.data.store import TensorStore


def _load(config: DataConfig, cache: Path) -> AtomisticDataset:
    return load_dataset(config, cache_dir=cache, progress=False, verbose=False)


@pytest.fixture(scope="module")
def qm9(tmp_path_factory):
    return _load(DataConfig(name="qm9-3d", limit=5), tmp_path_factory.mktemp("qm9-cache"))


@pytest.fixture(scope="module")
def matbench(tmp_path_factory):
    return _load(DataConfig(name="matbench-dielectric", limit=20), tmp_path_factory.mktemp("mb-cache"))


@pytest.fixture(scope="module")
def emt_file(tmp_path_factory) -> Path:
    return generate_emt(5, tmp_path_factory.mktemp("emt"), seed=3, progress=False)


def test_registry_and_feature_spec():
    assert all(SOURCES.get(name).domain == "atomistic" for name in ("qm9-3d", "matbench-dielectric"))
    assert atomistic_feature_spec().node_dims == (120,)


def test_qm9_first_molecule_is_methane(qm9):
    row = pd.read_csv(packaged_file("qm9pack", "data/qm9_part1.csv"), nrows=1).iloc[0]
    data = qm9[0]
    assert len(qm9) == 5 and qm9.report.read == 5 and qm9.report.kept == 5
    assert data.name == row["XYZ_file"] == "dsgdb9nsd_000001.xyz"
    assert data.z.tolist() == [6, 1, 1, 1, 1]
    np.testing.assert_allclose(data.pos.double().numpy(), np.array(json.loads(row["XYZ_Ang"])), atol=1e-6)
    assert qm9.task_names == [name for name, _ in QM9_TARGETS.values()]
    assert qm9.task_type == "regression" and qm9.metric == "mae"
    gap = qm9.labels[0, qm9.task_names.index("gap")].item()
    assert gap == pytest.approx(0.5048 * 27.211386, rel=1e-6)
    assert qm9.labels[0, qm9.task_names.index("u0")].item() == pytest.approx(-40.47893 * HARTREE_TO_EV, rel=1e-6)


def test_qm9_is_molecular_with_edges_inside_cutoff(qm9):
    for data in qm9:
        assert not data.pbc.any() and torch.count_nonzero(data.cell) == 0
        assert data.edge_index.size(1) > 0 and not data.cell_shift.any()
        assert (edge_vectors(data).norm(dim=1) < 5.0).all()
        expected, _ = radius_graph(data.pos, None, False, 5.0)
        assert torch.equal(data.edge_index, expected)
    assert qm9[0].edge_index.size(1) == 5 * 4  # methane: every atom sees the four others


def test_matbench_dielectric_crystals(matbench):
    frame = pd.read_json(packaged_file("crystal_toolkit", "apps/examples/matbench_dielectric.json.gz")).iloc[:20]
    assert len(matbench) == 20 and matbench.task_names == ["n"]
    assert (matbench.labels > 0).all()
    np.testing.assert_allclose(matbench.labels[:, 0].numpy(), frame["n"].to_numpy(), rtol=1e-6)
    for k, data in enumerate(matbench):
        assert data.pbc.all() and torch.det(data.cell[0].double()) > 0
        structure = Structure.from_dict(frame["structure"].iloc[k])
        assert data.z.tolist() == [site.specie.Z for site in structure]
        # an independent neighbour list straight from pymatgen's coordinates
        fresh, _ = radius_graph(torch.tensor(structure.cart_coords), torch.tensor(structure.lattice.matrix), True, 5.0)
        n = len(structure)
        assert torch.equal(torch.bincount(data.edge_index[0], minlength=n), torch.bincount(fresh[0], minlength=n))


def test_matbench_folds_partition_every_index_once():
    folds = matbench_folds(4764)
    assert len(folds) == 5
    tests = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(tests), np.arange(4764))  # disjoint and covering
    for train, test in folds:
        assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 4764
    again = matbench_folds(4764)
    assert all(np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0]) for a, b in zip(folds, again))
    assert not np.array_equal(folds[0][1], np.arange(len(folds[0][1])))  # shuffled, not blocks


def test_store_round_trip_and_damaged_files(matbench, emt_file, tmp_path):
    crystals = list(matbench)
    labelled_frames = list(_load(DataConfig(path=str(emt_file)), tmp_path / "cache"))  # energy, forces, stress
    for structures in (crystals, labelled_frames):
        store = TensorStore.from_graphs(structures, ATOMISTIC_FIELDS)
        path = tmp_path / "store.pt"
        store.save(path)
        loaded = TensorStore.load(path, ATOMISTIC_FIELDS)
        assert loaded.strings == store.strings and set(loaded.t) == set(store.t)
        for key, value in store.t.items():
            assert torch.equal(loaded.t[key], value), key
        for i in (0, len(store) - 1):
            a, b = structures[i], loaded.get(i)
            for key in ("z", "pos", "cell", "pbc", "edge_index", "cell_shift", "y", "energy", "forces", "stress"):
                if getattr(a, key, None) is not None:
                    assert torch.equal(getattr(a, key), getattr(b, key)), key
    raw = path.read_bytes()
    (tmp_path / "half.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="half.pt"):
        TensorStore.load(tmp_path / "half.pt", ATOMISTIC_FIELDS)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(DataError, match="not a graphssl atomistic store"):
        TensorStore.load(tmp_path / "foreign.pt", ATOMISTIC_FIELDS)


def test_store_get_does_not_alias_positions(matbench):
    data = matbench[0]
    data.pos += 1.0  # what an in-place noise transform does
    assert not torch.equal(matbench[0].pos, data.pos)


def test_cache_reuse_and_cutoff_change(tmp_path):
    first = _load(DataConfig(name="qm9-3d", limit=5), tmp_path)
    second = _load(DataConfig(name="qm9-3d", limit=5), tmp_path)
    assert not first.report.from_cache and second.report.from_cache
    assert torch.equal(first.store.t["edge_index"], second.store.t["edge_index"])
    shorter = _load(DataConfig(name="qm9-3d", limit=5, cutoff=1.5), tmp_path)
    assert not shorter.report.from_cache
    assert shorter.store.t["edge_index"].size(1) < first.store.t["edge_index"].size(1)
    assert len(list(tmp_path.iterdir())) == 2


def test_max_neighbors_caps_each_atom(tmp_path):
    capped = _load(DataConfig(name="qm9-3d", limit=5, max_neighbors=2), tmp_path)
    for data in capped:
        counts = torch.bincount(data.edge_index[0], minlength=data.num_nodes)
        assert counts.max() <= 2 and counts.min() >= 1


def _cif_folder(folder: Path) -> dict[str, tuple[Structure, float]]:
    folder.mkdir()
    structures = {
        "nacl.cif": (Structure(Lattice.cubic(5.64), ["Na", "Cl"] * 4,
                               [[0, 0, 0], [0.5, 0, 0], [0.5, 0.5, 0], [0, 0.5, 0], [0.5, 0, 0.5], [0, 0, 0.5],
                                [0, 0.5, 0.5], [0.5, 0.5, 0.5]]), 5.0),
        "si.cif": (Structure(Lattice.cubic(5.43), ["Si", "Si"], [[0, 0, 0], [0.25, 0.25, 0.25]]), 1.1),
        "cscl.cif": (Structure(Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]), 3.3),
    }
    for name, (structure, _) in structures.items():
        structure.to(filename=str(folder / name))
    return structures


def test_cif_folder_with_labels(tmp_path):
    structures = _cif_folder(tmp_path / "cifs")
    rows = ["file,gap,note"] + [f"{name},{gap},x" for name, (_, gap) in structures.items()]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    config = DataConfig(path=str(tmp_path / "cifs"), label_file=str(tmp_path / "labels.csv"), id_column="file",
                        label_columns=["gap"], cutoff=4.0)
    dataset = _load(config, tmp_path / "cache")
    assert dataset.task_names == ["gap"] and dataset.names == list(structures)
    np.testing.assert_allclose(dataset.labels[:, 0].numpy(), [gap for _, gap in structures.values()])
    for data, (structure, _) in zip(dataset, structures.values()):
        assert data.pbc.all() and sorted(data.z.tolist()) == sorted(site.specie.Z for site in structure)
        assert abs(float(torch.det(data.cell[0].double())) - structure.volume) < 1e-3


def test_cif_folder_without_labels_and_a_single_structure_file(tmp_path):
    structures = _cif_folder(tmp_path / "cifs")
    (tmp_path / "cifs" / "notes.txt").write_text("not a structure")  # other files do not count
    folder = _load(DataConfig(path=str(tmp_path / "cifs")), tmp_path / "cache")
    assert folder.task_type is None and folder.names == sorted(structures)
    single = _load(DataConfig(path=str(tmp_path / "cifs" / "si.cif")), tmp_path / "cache")
    assert len(single) == 1 and single.names == ["si.cif"] and single.task_type is None
    assert torch.equal(single[0].z, folder[folder.names.index("si.cif")].z)


def test_cif_folder_missing_file_strict_and_skip(tmp_path):
    structures = _cif_folder(tmp_path / "cifs")
    rows = ["file,gap"] + [f"{name},{gap}" for name, (_, gap) in structures.items()] + ["ghost.cif,2.0"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    config = DataConfig(path=str(tmp_path / "cifs"), label_file=str(tmp_path / "labels.csv"), id_column="file")
    with pytest.raises(DataError, match="ghost.cif"):
        _load(config, tmp_path / "cache")
    config.on_error = "skip"
    dataset = _load(config, tmp_path / "cache")
    report = dataset.report
    assert report.read == 4 and report.kept == 3 and len(report.skipped) == 1
    assert report.read == report.kept + len(report.skipped)
    assert "ghost.cif" in report.skipped[0].input and "not in the folder" in report.skipped[0].reason
    assert len(dataset) == 3


def test_emt_is_reproducible(emt_file, tmp_path):
    again = generate_emt(5, tmp_path / "again", seed=3, progress=False)
    other = generate_emt(5, tmp_path / "other", seed=4, progress=False)

    def energies(path: Path) -> list[float]:
        return [atoms.get_potential_energy() for atoms in ase.io.read(path, ":", format="extxyz")]

    assert energies(emt_file) == energies(again)
    assert energies(emt_file) != energies(other)
    frames = ase.io.read(emt_file, ":", format="extxyz")
    assert all(8 <= len(atoms) <= 32 and atoms.pbc.all() for atoms in frames)
    assert all(set(atoms.get_chemical_symbols()) <= {"Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt"} for atoms in frames)
    assert len({atoms.get_potential_energy() for atoms in frames}) == 5
    report = json.loads((emt_file.parent / "report.json").read_text())
    assert report["n_structures"] == 5 and report["seed"] == 3


def test_emt_forces_are_energy_gradients(emt_file):
    atoms = ase.io.read(emt_file, 0, format="extxyz")
    stored = atoms.get_forces().copy()
    h = 1e-4
    for i in (0, len(atoms) - 1):
        for axis in range(3):
            energies = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.calc = EMT()
                moved.positions[i, axis] += sign * h
                energies.append(moved.get_potential_energy())
            assert -(energies[0] - energies[1]) / (2 * h) == pytest.approx(stored[i, axis], abs=1e-3)


def test_emt_extxyz_and_ase_db_load(emt_file, tmp_path):
    frames = ase.io.read(emt_file, ":", format="extxyz")
    db_path = tmp_path / "frames.db"
    with ase.db.connect(str(db_path)) as db:
        for atoms in frames:
            db.write(atoms)
    for path in (emt_file, db_path):
        dataset = _load(DataConfig(path=str(path)), tmp_path / "cache")
        assert len(dataset) == 5 and dataset.task_names == ["energy"]
        for data, atoms in zip(dataset, frames):
            assert data.energy.item() == pytest.approx(atoms.get_potential_energy(), rel=1e-6)
            assert data.y[0, 0].item() == pytest.approx(atoms.get_potential_energy(), rel=1e-6)
            np.testing.assert_allclose(data.forces.double().numpy(), atoms.get_forces(), atol=1e-5)
            assert data.stress.shape == (1, 3, 3) and data.edge_index.size(1) > 0


def test_frame_without_forces_is_reported(emt_file, tmp_path):
    frames = ase.io.read(emt_file, ":", format="extxyz")
    bare = frames[2].copy()  # copy() drops the calculator: no energy, no forces
    path = tmp_path / "mixed.extxyz"
    ase.io.write(path, [frames[0], bare, frames[1]], format="extxyz")
    with pytest.raises(DataError, match=r"mixed.extxyz\[1\]"):
        _load(DataConfig(path=str(path)), tmp_path / "cache")
    dataset = _load(DataConfig(path=str(path), on_error="skip"), tmp_path / "cache")
    assert dataset.report.read == 3 and dataset.report.kept == 2
    assert "no energy" in dataset.report.skipped[0].reason
