"""Bad input, nothing lost: every item of the bad-input corpus (tests/data/bad_inputs.py) is caught.

Strict mode (``on_error=raise``) stops with an error naming the record and the problem;
lenient mode (``on_error=skip``) keeps every good record, skips the bad one and reports it
with its reason; in both, read = kept + skipped.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import bad_inputs  # noqa: E402

from graphssl.core.config import DataConfig, load_config  # noqa: E402
from graphssl.core.errors import ConfigError, DataError  # noqa: E402
from graphssl.data.dataset import load_dataset  # noqa: E402

_HAS_OCP = importlib.util.find_spec("OCP") is not None
_BREP = {f.__name__ for f in bad_inputs.BREP_CASES}


def _case(name: str, folder: Path) -> bad_inputs.Case:
    if name in _BREP and not _HAS_OCP:
        pytest.skip("B-rep cases need the OpenCascade bindings (the cad extra)")
    return bad_inputs.DATA_CASES[name](folder)


@pytest.mark.parametrize("name", sorted(bad_inputs.DATA_CASES))
def test_strict_mode_stops_naming_the_record_and_the_problem(name, tmp_path):
    case = _case(name, tmp_path / "input")
    config = dataclasses.replace(case.config, on_error="raise")
    with pytest.raises(DataError) as caught:
        load_dataset(config, tmp_path / "cache", progress=False, verbose=False)
    message = str(caught.value)
    assert case.identity in message, message
    assert case.reason in message, message
    assert "on_error=skip" in message  # and says how to go on


@pytest.mark.parametrize("name", sorted(bad_inputs.DATA_CASES))
def test_lenient_mode_skips_and_reports_the_record(name, tmp_path):
    case = _case(name, tmp_path / "input")
    config = dataclasses.replace(case.config, on_error="skip")
    dataset = load_dataset(config, tmp_path / "cache", progress=False, verbose=False)
    report = dataset.report
    assert report.read == report.kept + len(report.skipped)
    assert report.kept == case.good == len(dataset)
    assert len(report.skipped) == 1, report.summary()
    [skipped] = report.skipped
    assert skipped.index == case.index
    assert case.name in skipped.input and case.reason in skipped.reason, skipped
    # the same build again comes from the cache with the same accounting
    again = load_dataset(config, tmp_path / "cache", progress=False, verbose=False).report
    assert again.from_cache and (again.read, again.kept, len(again.skipped)) == (report.read, report.kept, 1)


def test_the_corpus_covers_every_adapter_and_kind_of_problem():
    names = " | ".join(bad_inputs.DATA_CASES)
    for kind in ("invalid_smiles", "empty_smiles", "unknown_element", "huge_molecule", "missing_label",
                 "infinite_label", "duplicate", "overlapping_atoms", "zero_volume", "no_neighbour",
                 "empty_step", "truncated_step", "garbage"):
        assert kind in names
    assert len(bad_inputs.MOLECULE_CASES) and len(bad_inputs.STRUCTURE_CASES) and len(bad_inputs.BREP_CASES)


@pytest.mark.parametrize("mode", ["raise", "skip"])
@pytest.mark.parametrize("name", sorted(bad_inputs.CONFIG_CASES))
def test_malformed_config_is_refused_in_both_modes(name, mode, tmp_path):
    """A bad configuration is never a record to skip: ``on_error=skip`` does not soften it."""
    case = bad_inputs.CONFIG_CASES[name]
    path = tmp_path / f"{name}.yaml"
    if case.text is not None:
        path.write_text(case.text)
    overrides = [*case.overrides, *(["data.on_error=skip"] if mode == "skip" else [])]
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides)
    message = str(caught.value)
    assert case.where in message and case.reason in message, message


def test_nan_is_a_missing_label_not_a_bad_record(tmp_path):
    path = tmp_path / "two_tasks.csv"
    path.write_text("smiles,a,b\nCCO,1.0,nan\nCCN,,2.0\nCCC,3.0,4.0\n")
    config = DataConfig(path=str(path), label_columns=["a", "b"], task_type="regression")
    dataset = load_dataset(config, tmp_path / "cache", progress=False, verbose=False)
    assert dataset.report.kept == 3 and not dataset.report.skipped


def test_duplicates_are_kept_in_unlabeled_corpora_unless_rejected(tmp_path):
    path = tmp_path / "corpus.smi"
    path.write_text("CCO\nOCC\nc1ccccc1\nCCO\n")
    kept = load_dataset(DataConfig(path=str(path)), tmp_path / "cache", progress=False, verbose=False)
    assert len(kept) == 4 and not kept.report.skipped
    strict = DataConfig(path=str(path), duplicates="reject")
    with pytest.raises(DataError, match=r"record 1 \('OCC'\): duplicate of record 0"):
        load_dataset(strict, tmp_path / "cache", progress=False, verbose=False)
    lenient = dataclasses.replace(strict, on_error="skip")
    report = load_dataset(lenient, tmp_path / "cache", progress=False, verbose=False).report
    assert (report.read, report.kept) == (4, 2)
    assert [(s.index, s.reason.split(" (")[0]) for s in report.skipped] == [
        (1, "duplicate of record 0"), (3, "duplicate of record 0")]


def test_labelled_duplicates_can_be_kept(tmp_path):
    case = bad_inputs.duplicate_smiles(tmp_path / "input")
    config = dataclasses.replace(case.config, duplicates="keep")
    dataset = load_dataset(config, tmp_path / "cache", progress=False, verbose=False)
    assert len(dataset) == case.good + 1 and not dataset.report.skipped


def test_max_atoms_can_be_raised_or_lifted(tmp_path):
    case = bad_inputs.huge_molecule(tmp_path / "input")
    for limit in (None, 10_000):
        config = dataclasses.replace(case.config, max_atoms=limit)
        dataset = load_dataset(config, tmp_path / "cache", progress=False, verbose=False)
        assert len(dataset) == case.good + 1
    small = dataclasses.replace(case.config, max_atoms=3, on_error="skip")
    report = load_dataset(small, tmp_path / "cache", progress=False, verbose=False).report
    # ethanol (3) fits, phenol (7) and paracetamol (11) do not
    assert report.kept == 1 and report.read == report.kept + len(report.skipped) == 4
