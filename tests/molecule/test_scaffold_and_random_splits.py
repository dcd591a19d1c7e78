"""Tests for graphssl.data.splits."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rdkit")

from graphssl.core.errors import DataError
from graphssl.data.splits import random_split, subsample_fraction
from graphssl.molecule.scaffold import murcko_scaffold, scaffold_split

BENZENE, PYRIDINE, CYCLOHEXANE, ACYCLIC = "c1ccccc1", "c1ccncc1", "C1CCCCC1", ""
NAPHTHALENE, THIOPHENE, PIPERIDINE, FURAN = "c1ccc2ccccc2c1", "c1ccsc1", "C1CCNCC1", "c1ccoc1"

# scaffold -> molecules built on it. Group sizes 14, 8, 6, 5, 3, 2, 1, 1 (40 molecules).
GROUPS: dict[str, list[str]] = {
    BENZENE: [
        "Cc1ccccc1", "Oc1ccccc1", "Nc1ccccc1", "Clc1ccccc1", "OC(=O)c1ccccc1", "CCc1ccccc1",
        "COc1ccccc1", "CC(=O)c1ccccc1", "O=Cc1ccccc1", "[O-][N+](=O)c1ccccc1", "Fc1ccccc1",
        "Brc1ccccc1", "Cc1ccccc1C", "N[C@@H](Cc1ccccc1)C(=O)O",
    ],
    PYRIDINE: [
        "c1ccncc1", "Cc1ccncc1", "Nc1ccccn1", "OC(=O)c1cccnc1", "Clc1ccncc1", "COc1ccncc1",
        "CCc1ccncc1", "Oc1cccnc1",
    ],
    CYCLOHEXANE: ["C1CCCCC1", "CC1CCCCC1", "OC1CCCCC1", "NC1CCCCC1", "ClC1CCCCC1", "OC(=O)C1CCCCC1"],
    ACYCLIC: ["CCO", "CCCC", "CC(=O)O", "CCN", "CC(C)C"],
    NAPHTHALENE: ["c1ccc2ccccc2c1", "Cc1ccc2ccccc2c1", "Oc1ccc2ccccc2c1"],
    THIOPHENE: ["c1ccsc1", "Cc1ccsc1"],
    PIPERIDINE: ["C1CCNCC1"],
    FURAN: ["c1ccoc1"],
}  # fmt: skip


def _dataset() -> tuple[list[str], list[str]]:
    """(smiles, scaffold of each) in a fixed interleaved order, so groups are not contiguous."""
    pairs = [(smi, scaf) for scaf, members in GROUPS.items() for smi in members]
    order = np.random.default_rng(1234).permutation(len(pairs))
    pairs = [pairs[i] for i in order]
    return [p[0] for p in pairs], [p[1] for p in pairs]


SMILES, SCAFFOLDS = _dataset()


def _scaffolds_of(idx: np.ndarray) -> set[str]:
    return {SCAFFOLDS[i] for i in idx}


def test_fixture_scaffolds_are_what_we_think():
    assert len(SMILES) == 40
    for smi, scaf in zip(SMILES, SCAFFOLDS):
        assert murcko_scaffold(smi) == scaf, smi


def test_murcko_scaffold_chirality_flag():
    trans_decalin = "[C@H]12CCCC[C@@H]1CCCC2"
    assert "@" in murcko_scaffold(trans_decalin, include_chirality=True)
    assert "@" not in murcko_scaffold(trans_decalin, include_chirality=False)
    assert murcko_scaffold("CCCCO") == ""


def test_scaffold_split_partitions_and_separates_scaffolds():
    train, valid, test = scaffold_split(SMILES)
    for part in (train, valid, test):
        assert part.dtype == np.int64
        assert np.all(np.diff(part) > 0), "each split is sorted without duplicates"
    every = np.concatenate([train, valid, test])
    assert sorted(every.tolist()) == list(range(len(SMILES)))
    s_train, s_valid, s_test = _scaffolds_of(train), _scaffolds_of(valid), _scaffolds_of(test)
    assert not (s_train & s_valid) and not (s_train & s_test) and not (s_valid & s_test)


def test_scaffold_split_follows_reference_protocol():
    # n = 40: train cutoff 32, train+valid cutoff 36. Groups by size: benzene 14,
    # pyridine 8, cyclohexane 6 -> train (28); acyclic 5 would make 33 > 32 -> valid;
    # naphthalene 3 -> train (31); thiophene 2 -> neither fits -> test; of the two
    # singletons the one with the larger first index comes first -> train (32),
    # the other -> test.
    train, valid, test = scaffold_split(SMILES, (0.8, 0.1, 0.1))
    assert (len(train), len(valid), len(test)) == (32, 5, 3)
    later, earlier = sorted([PIPERIDINE, FURAN], key=lambda s: SCAFFOLDS.index(s), reverse=True)
    assert _scaffolds_of(train) == {BENZENE, PYRIDINE, CYCLOHEXANE, NAPHTHALENE, later}
    assert _scaffolds_of(valid) == {ACYCLIC}
    assert _scaffolds_of(test) == {THIOPHENE, earlier}


def test_scaffold_split_sizes_near_fractions_and_largest_group_in_train():
    n = len(SMILES)
    train, valid, test = scaffold_split(SMILES)
    for part, frac in zip((train, valid, test), (0.8, 0.1, 0.1)):
        assert abs(len(part) / n - frac) <= 0.1
    assert BENZENE in _scaffolds_of(train)


def test_scaffold_split_is_deterministic():
    first = scaffold_split(SMILES)
    second = scaffold_split(list(SMILES))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_scaffold_split_valid_check_uses_train_size_at_that_moment():
    # Reference quirk kept on purpose: the valid test compares
    # len(train) + len(valid) + len(group) with (f_train + f_valid) * n when the
    # group is placed, and train can still grow afterwards. n = 40, cutoffs 24 / 32:
    # benzene 14, pyridine 8 -> train (22); cyclohexane 6 -> valid (22+6 = 28);
    # acyclic 5 -> 33 > 32 -> test; naphthalene 3 -> valid (22+6+3 = 31);
    # thiophene 2 -> train (24); both singletons -> 24+9+1 > 32 -> test.
    train, valid, test = scaffold_split(SMILES, (0.6, 0.2, 0.2))
    assert (len(train), len(valid), len(test)) == (24, 9, 7)
    assert _scaffolds_of(train) == {BENZENE, PYRIDINE, THIOPHENE}
    assert _scaffolds_of(valid) == {CYCLOHEXANE, NAPHTHALENE}
    assert _scaffolds_of(test) == {ACYCLIC, PIPERIDINE, FURAN}


def test_scaffold_split_bad_smiles_names_it_and_its_index():
    smiles = ["CCO", "c1ccccc1", "C1CC(", "CCN"]
    with pytest.raises(DataError) as info:
        scaffold_split(smiles)
    message = str(info.value)
    assert "C1CC(" in message and "index 2" in message
    with pytest.raises(DataError, match="index 1"):
        scaffold_split(["CCO", ""])


@pytest.mark.parametrize(
    "fractions",
    [(0.5, 0.5, 0.5), (0.8, 0.2, 0.0), (1.0, 0.0, 0.0), (0.9, 0.2, -0.1), (0.8, 0.2), (float("nan"), 0.5, 0.5)],
)
def test_bad_fractions_raise(fractions):
    with pytest.raises(DataError, match="fractions"):
        scaffold_split(SMILES, fractions)
    with pytest.raises(DataError, match="fractions"):
        random_split(40, fractions)


def test_bad_fraction_message_names_values():
    with pytest.raises(DataError, match=r"0\.7"):
        scaffold_split(SMILES, (0.7, 0.7, 0.1))


def test_random_split_deterministic_per_seed_and_differs_across_seeds():
    a = random_split(100, seed=3)
    b = random_split(100, seed=3)
    c = random_split(100, seed=4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, z) for x, z in zip(a, c))


def test_random_split_sizes_and_partition():
    for n, fractions, sizes in [
        (100, (0.8, 0.1, 0.1), (80, 10, 10)),
        (7, (0.8, 0.1, 0.1), (5, 0, 2)),
        (100, (0.29, 0.29, 0.42), (29, 29, 42)),  # 0.29 * 100 is 28.999999999999996 in floats
        (0, (0.8, 0.1, 0.1), (0, 0, 0)),
    ]:
        parts = random_split(n, fractions, seed=0)
        assert tuple(len(p) for p in parts) == sizes
        assert sorted(np.concatenate(parts).tolist()) == list(range(n))
        for p in parts:
            assert p.dtype == np.int64 and np.all(np.diff(p) > 0)


def test_random_split_bad_num_items():
    with pytest.raises(DataError):
        random_split(-1)


FRACTIONS = (0.01, 0.05, 0.1, 0.25, 0.5)


def test_subsample_sizes_and_membership():
    train = np.arange(0, 2000, 2)  # non-contiguous indices, as from a split
    for fraction in FRACTIONS:
        sub = subsample_fraction(train, fraction, seed=7)
        assert len(sub) == max(1, round(fraction * len(train)))
        assert np.all(np.diff(sub) > 0)
        assert set(sub.tolist()) <= set(train.tolist())


def test_subsample_is_nested_for_a_seed():
    train = np.arange(5, 1005)
    for seed in (0, 1, 2):
        subsets = [set(subsample_fraction(train, f, seed=seed).tolist()) for f in FRACTIONS + (1.0,)]
        for small, large in zip(subsets, subsets[1:]):
            assert small <= large


def test_subsample_seeds_and_determinism():
    train = np.arange(1000)
    a = subsample_fraction(train, 0.1, seed=0)
    np.testing.assert_array_equal(a, subsample_fraction(train, 0.1, seed=0))
    assert not np.array_equal(a, subsample_fraction(train, 0.1, seed=1))


def test_subsample_full_fraction_returns_everything_unchanged():
    train = np.array([9, 3, 7, 1])
    out = subsample_fraction(train, 1.0, seed=5)
    np.testing.assert_array_equal(out, train)
    assert out is not train


def test_subsample_min_count():
    train = np.arange(50)
    assert len(subsample_fraction(train, 0.01)) == 1  # round(0.5) == 0, min_count lifts it to 1
    assert len(subsample_fraction(train, 0.01, min_count=10)) == 10
    assert len(subsample_fraction(train, 0.01, min_count=500)) == 50  # never more than available
    assert len(subsample_fraction(np.array([], dtype=np.int64), 0.5)) == 0


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, float("nan")])
def test_subsample_bad_fraction(fraction):
    with pytest.raises(DataError, match="fraction"):
        subsample_fraction(np.arange(10), fraction)
