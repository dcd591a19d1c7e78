"""The seeded, balanced scaffold split: seeds, whole scaffold groups, capacities, registration."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("rdkit")

from graphssl.core.errors import ConfigError, DataError
from graphssl.data.splits import SPLITS, make_split
from graphssl.molecule.scaffold import (
    balanced_group_split,
    balanced_scaffold_split,
    murcko_scaffold,
    scaffold_groups,
    scaffold_split,
)

# scaffold -> molecules built on it: group sizes 14, 8, 6, 5, 3, 2, 1, 1 (40 molecules)
GROUPS: dict[str, list[str]] = {
    "c1ccccc1": ["Cc1ccccc1", "Oc1ccccc1", "Nc1ccccc1", "Clc1ccccc1", "OC(=O)c1ccccc1", "CCc1ccccc1",
                 "COc1ccccc1", "CC(=O)c1ccccc1", "O=Cc1ccccc1", "[O-][N+](=O)c1ccccc1", "Fc1ccccc1",
                 "Brc1ccccc1", "Cc1ccccc1C", "N[C@@H](Cc1ccccc1)C(=O)O"],
    "c1ccncc1": ["c1ccncc1", "Cc1ccncc1", "Nc1ccccn1", "OC(=O)c1cccnc1", "Clc1ccncc1", "COc1ccncc1",
                 "CCc1ccncc1", "Oc1cccnc1"],
    "C1CCCCC1": ["C1CCCCC1", "CC1CCCCC1", "OC1CCCCC1", "NC1CCCCC1", "ClC1CCCCC1", "OC(=O)C1CCCCC1"],
    "": ["CCO", "CCCC", "CC(=O)O", "CCN", "CC(C)C"],
    "c1ccc2ccccc2c1": ["c1ccc2ccccc2c1", "Cc1ccc2ccccc2c1", "Oc1ccc2ccccc2c1"],
    "c1ccsc1": ["c1ccsc1", "Cc1ccsc1"],
    "C1CCNCC1": ["C1CCNCC1"],
    "c1ccoc1": ["c1ccoc1"],
}  # fmt: skip
# interleaved in a fixed order, so that no group is contiguous
_PAIRS = [(smi, scaffold) for scaffold, members in GROUPS.items() for smi in members]
_PAIRS = [_PAIRS[i] for i in np.random.default_rng(1234).permutation(len(_PAIRS))]
SMILES, SCAFFOLDS = [p[0] for p in _PAIRS], [p[1] for p in _PAIRS]


def _parts_of(split) -> list[set[str]]:
    return [{SCAFFOLDS[i] for i in part} for part in split]


def test_fixture_scaffolds_are_what_we_think():
    assert all(murcko_scaffold(smi) == scaffold for smi, scaffold in zip(SMILES, SCAFFOLDS))


def test_same_seed_same_split_other_seeds_differ():
    first = balanced_scaffold_split(SMILES, seed=3)
    again = balanced_scaffold_split(list(SMILES), seed=3)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    others = [balanced_scaffold_split(SMILES, seed=s) for s in range(6) if s != 3]
    assert any(any(not np.array_equal(a, b) for a, b in zip(first, o)) for o in others)


@pytest.mark.parametrize("seed", range(8))
def test_partition_keeps_scaffold_groups_whole_and_respects_capacities(seed):
    train, valid, test = balanced_scaffold_split(SMILES, (0.8, 0.1, 0.1), seed=seed)
    for part in (train, valid, test):
        assert part.dtype == np.int64 and np.all(np.diff(part) > 0)
    assert sorted(np.concatenate([train, valid, test]).tolist()) == list(range(len(SMILES)))
    s_train, s_valid, s_test = _parts_of((train, valid, test))
    assert not (s_train & s_valid) and not (s_train & s_test) and not (s_valid & s_test)
    for part, scaffolds in zip((train, valid, test), (s_train, s_valid, s_test)):
        assert len(part) == sum(len(GROUPS[s]) for s in scaffolds), "a group was cut"
    assert len(train) <= 32 and len(valid) <= 4  # floor(0.8 * 40), floor(0.1 * 40)


def test_fractions_hold_with_many_small_groups():
    # one group of 30, five of 8, 150 singletons: n = 220, capacities 176 / 22 / 22. Only the
    # group of 30 is "big" (> 11, half of 22), so it goes to train first on every seed; the
    # singletons fill each part to its capacity exactly.
    groups, start = [], 0
    for size in [30] + [8] * 5 + [1] * 150:
        groups.append(list(range(start, start + size)))
        start += size
    for seed in range(10):
        train, valid, test = balanced_group_split(groups, 220, (0.8, 0.1, 0.1), seed=seed)
        assert (len(train), len(valid), len(test)) == (176, 22, 22)
        home = {int(i): name for name, part in (("train", train), ("valid", valid), ("test", test)) for i in part}
        assert len(home) == 220
        assert all(len({home[i] for i in group}) == 1 for group in groups), "a group was cut"
        assert home[groups[0][0]] == "train"


def test_big_groups_go_first_but_in_a_seeded_order():
    # Every group is big (more than half the valid capacity of 10): which fill train depends on
    # the seed, and a group that no longer fits train goes to valid only if it fits there.
    groups = [list(range(i * 20, i * 20 + 20)) for i in range(10)]
    homes = set()
    for seed in range(6):
        train, valid, test = balanced_group_split(groups, 200, (0.8, 0.1, 0.1), seed=seed)
        assert (len(train), len(valid), len(test)) == (160, 20, 20)
        homes.add(tuple(sorted({int(i) // 20 for i in test})))
    assert len(homes) > 1


def test_differs_from_the_deterministic_split_and_reuses_its_groups():
    groups = scaffold_groups(SMILES)
    assert sorted(len(g) for g in groups) == sorted(len(m) for m in GROUPS.values())
    assert all(len({murcko_scaffold(SMILES[i]) for i in g}) == 1 for g in groups)
    deterministic = scaffold_split(SMILES)
    balanced = [balanced_scaffold_split(SMILES, seed=s) for s in range(6)]
    assert any(any(not np.array_equal(a, b) for a, b in zip(deterministic, split)) for split in balanced)


def test_bad_inputs_raise():
    with pytest.raises(DataError, match="fractions"):
        balanced_scaffold_split(SMILES, (0.8, 0.3, 0.1))
    with pytest.raises(DataError, match="index 2"):
        balanced_scaffold_split(["CCO", "c1ccccc1", "C1CC("])


def test_registered_and_seeded_by_split_seed():
    dataset = SimpleNamespace(name="toy", smiles=SMILES, __len__=lambda: len(SMILES))
    for name in ("balanced_scaffold", "balanced-scaffold"):
        assert name in SPLITS
    config = SimpleNamespace(split="balanced_scaffold", split_fractions=[0.8, 0.1, 0.1], split_seed=4)
    split = make_split(dataset, config)
    expected = balanced_scaffold_split(SMILES, seed=4)
    for got, want in zip((split.train, split.valid, split.test), expected):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ConfigError, match="balanced_scaffold split needs molecules with SMILES"):
        make_split(SimpleNamespace(name="crystals"), config)
