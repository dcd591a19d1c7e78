"""Atomistic data for fine-tuning: the matbench split and data.offset.

The energy/force task, reference energies and noisy nodes are tested in tests/tasks/test_energy_forces.py.
"""

from __future__ import annotations

from pathlib import Path

import ase.io
import numpy as np
import pytest

from graphssl.atomistic.emt import generate_emt
from graphssl.atomistic.splits import matbench_folds, matbench_split
from graphssl.core.config import DataConfig, FinetuneConfig
from graphssl.core.errors import ConfigError
from graphssl.data.dataset import load_dataset
from graphssl.data.splits import make_split


@pytest.fixture(scope="module")
def emt_file(tmp_path_factory) -> Path:
    return generate_emt(40, tmp_path_factory.mktemp("emt"), seed=0, progress=False)


def test_matbench_split_is_disjoint_covering_and_matches_the_folds():
    n = 4764
    folds = matbench_folds(n)
    tests = []
    for fold in range(5):
        split = make_split(range(n), FinetuneConfig(split="matbench", split_seed=fold))  # only len() is used
        parts = [split.train, split.valid, split.test]
        joined = np.concatenate(parts)
        assert len(joined) == n and np.array_equal(np.sort(joined), np.arange(n))  # disjoint and covering
        assert np.array_equal(split.test, np.sort(folds[fold][1]))
        assert len(split.valid) == round(0.1 * len(folds[fold][0]))
        assert np.array_equal(matbench_split(n, fold).valid, split.valid)  # seeded: reproducible
        tests.append(split.test)
    assert np.array_equal(np.sort(np.concatenate(tests)), np.arange(n))  # each structure tested once
    with pytest.raises(ConfigError, match="0..4"):
        matbench_split(n, 5)


def test_offset_makes_structure_sets_disjoint(emt_file, tmp_path):
    def load(**options):
        return load_dataset(DataConfig(**options), tmp_path / "cache", progress=False, verbose=False)

    first, rest = load(name="qm9-3d", limit=6), load(name="qm9-3d", offset=6, limit=6)
    assert not set(first.names) & set(rest.names)
    assert rest.names[0] == "dsgdb9nsd_000007.xyz" and rest.report.read == 6  # skipped records are not read
    both = load(name="qm9-3d", limit=12).names
    assert both == first.names + rest.names

    head, tail = load(path=str(emt_file), limit=30), load(path=str(emt_file), offset=30)
    assert len(head) == 30 and len(tail) == 10 and tail.report.read == 10
    assert not set(head.names) & set(tail.names) and tail.names[0] == "emt.extxyz[30]"
    frames = ase.io.read(emt_file, "30:", format="extxyz")
    assert [d.energy.item() for d in tail] == pytest.approx([a.get_potential_energy() for a in frames], rel=1e-6)

    crystals = load(name="matbench-dielectric", offset=2, limit=2)
    assert crystals.names == ["matbench_dielectric[2]", "matbench_dielectric[3]"]
    with pytest.raises(Exception, match="offset"):
        load(name="qm9-3d", offset=-1, limit=2)
