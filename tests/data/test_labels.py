"""Label columns are read by task type, explicitly, and the build report says how."""

from __future__ import annotations

import math

import pytest
import torch

from graphssl.core.config import DataConfig, FinetuneConfig
from graphssl.core.errors import DataError
from graphssl.data.dataset import load_dataset
from graphssl.data.labels import class_mapping, parse_label
from graphssl.data.splits import make_split

SMILES = ["CCO", "CCN", "CCC", "c1ccccc1", "CC(=O)O", "CCCl", "OCCO", "CNC", "CCOC", "c1ccncc1"]


def _csv(tmp_path, values, name="mols.csv"):
    path = tmp_path / name
    path.write_text("smiles,y\n" + "".join(f"{s},{v}\n" for s, v in zip(SMILES, values)))
    return path


def _load(path, cache, task_type, **options):
    config = DataConfig(path=str(path), label_columns=["y"], task_type=task_type, **options)
    return load_dataset(config, cache, progress=False, verbose=False)


# ----------------------------------------------------------------------------- regression: numbers only


@pytest.mark.parametrize("text", ["-", "inactive", "no", "active", "yes", "1_000", "1,5", "0x10", "one"])
def test_regression_labels_are_numbers_only(text):
    value, error = parse_label(text, "y")
    assert math.isnan(value) and error is not None
    assert f"non-numeric value {text!r}" in error


@pytest.mark.parametrize("text, number", [("1.5", 1.5), ("-2", -2.0), ("+3", 3.0), (".5", 0.5), ("3e-4", 3e-4),
                                          (" 7 ", 7.0), ("1E3", 1000.0)])
def test_regression_numbers_are_read_as_written(text, number):
    assert parse_label(text, "y") == (number, None)


@pytest.mark.parametrize("text", ["", "nan", "NA", "None", None])
def test_empty_cells_are_missing_labels(text):
    value, error = parse_label(text, "y")
    assert math.isnan(value) and error is None


def test_regression_column_of_words_is_refused_not_read_as_zeros_and_ones(tmp_path):
    path = _csv(tmp_path, ["1.5", "-", "inactive", "no", "active", "yes", "1_000", "2.5", "3.5", "4.5"])
    with pytest.raises(DataError, match=r"record 1 .*non-numeric value '-'"):
        _load(path, tmp_path / "cache", "regression")
    dataset = _load(path, tmp_path / "cache", "regression", on_error="skip")
    assert dataset.labels.flatten().tolist() == [1.5, 2.5, 3.5, 4.5]
    assert [s.index for s in dataset.report.skipped] == [1, 2, 3, 4, 5, 6]
    assert "set the task type to classification" in dataset.report.skipped[1].reason
    assert dataset.report.labels == {"y": "numbers (regression)"}


# ----------------------------------------------------------------------------- classification: two classes


def test_minus_one_plus_one_labels_are_mapped_to_zero_one_and_reported(tmp_path):
    path = _csv(tmp_path, ["-1", "1", "+1", "-1", "1", "-1.0", "1", "", "-1", "1"])
    dataset = _load(path, tmp_path / "cache", "classification", on_error="skip")  # record 7 has no label
    assert dataset.labels.flatten().tolist() == [0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]  # no -1 target
    assert dataset.report.labels == {"y": "binary classes '-1' -> 0 (4 rows), '1' -> 1 (5 rows)"}
    assert "label column 'y': binary classes '-1' -> 0" in dataset.report.summary()
    again = _load(path, tmp_path / "cache", "classification", on_error="skip")
    assert again.report.from_cache and again.report.labels == dataset.report.labels


def test_word_classes_are_mapped_explicitly(tmp_path):
    path = _csv(tmp_path, ["active", "inactive", "Active", "INACTIVE", "active", "inactive", "", "active",
                           "inactive", "active"])
    dataset = _load(path, tmp_path / "cache", "classification", on_error="skip")
    assert dataset.labels.flatten()[:4].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert dataset.report.labels["y"].startswith("binary classes 'inactive' -> 0")


def test_three_classes_are_a_clear_error_before_any_training(tmp_path):
    path = _csv(tmp_path, ["0", "1", "2", "0", "1", "2", "0", "1", "2", "0"])
    for on_error in ("raise", "skip"):
        with pytest.raises(DataError, match=r"column 'y' holds 3 classes \('0' \(4 rows\), '1' \(3 rows\), "
                                            r"'2' \(3 rows\)\); only binary"):
            _load(path, tmp_path / "cache", "classification", on_error=on_error)


@pytest.mark.parametrize("values, reason", [
    (["1", "x"], "mixes numbers and words"),
    (["toxic", "benign"], "which is the positive class is unknown"),
    (["2"], "cannot tell which class"),
    (["1", "inf"], "holds 'inf', which is no class"),
])
def test_unmappable_classes_name_the_column(values, reason):
    with pytest.raises(DataError, match=reason) as caught:
        class_mapping("y", values, where="'f.csv'")
    assert "'f.csv'" in str(caught.value) and "column 'y'" in str(caught.value)


def test_a_value_outside_the_classes_of_a_column_is_a_bad_record():
    mapping = class_mapping("y", ["0", "1", "1"])
    assert mapping.parse("1.0") == (1.0, None) and mapping.parse(" 0 ") == (0.0, None)
    value, error = mapping.parse("7")
    assert math.isnan(value) and "none of its classes" in error


def test_sdf_classification_property_is_mapped(tmp_path):
    block = ("{name}\n  test\n\n  2  1  0  0  0  0  0  0  0  0999 V2000\n"
             "    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
             "    1.5000    0.0000    0.0000 {atom:<3} 0  0  0  0  0  0  0  0  0  0  0  0\n"
             "  1  2  1  0\nM  END\n>  <BBB>\n{value}\n\n$$$$\n")
    path = tmp_path / "mols.sdf"
    path.write_text("".join(block.format(name=n, atom=a, value=v)
                            for n, a, v in (("a", "O", "yes"), ("b", "N", "no"), ("c", "C", "yes"))))
    config = DataConfig(path=str(path), label_columns=["BBB"], task_type="classification")
    dataset = load_dataset(config, tmp_path / "cache", progress=False, verbose=False)
    assert dataset.labels.flatten().tolist() == [1.0, 0.0, 1.0]
    assert dataset.report.labels == {"BBB": "binary classes 'no' -> 0 (1 row), 'yes' -> 1 (2 rows)"}


# ----------------------------------------------------------------------------- a task that cannot be scored


def test_single_class_task_is_refused_before_training(tmp_path):
    path = _csv(tmp_path, ["1"] * 10)
    dataset = _load(path, tmp_path / "cache", "classification")  # still usable, e.g. for pretraining
    assert "only class 1 among its 10 labels: not scored" in dataset.report.labels["y"]
    with pytest.raises(DataError, match="cannot be scored: no task has both classes"):
        make_split(dataset, FinetuneConfig(split="random"))


def test_a_task_with_one_scorable_column_is_accepted(tmp_path):
    path = tmp_path / "two.csv"
    path.write_text("smiles,a,b\n" + "".join(f"{s},{k % 2},1\n" for k, s in enumerate(SMILES)))
    config = DataConfig(path=str(path), label_columns=["a", "b"], task_type="classification")
    dataset = load_dataset(config, tmp_path / "cache", progress=False, verbose=False)
    assert "not scored" in dataset.report.labels["b"] and "not scored" not in dataset.report.labels["a"]
    split = make_split(dataset, FinetuneConfig(split="random"))
    assert len(split.train) + len(split.valid) + len(split.test) == 10


def test_classification_labels_from_any_source_must_be_zero_or_one(tmp_path):
    from graphssl.data.builder import check_classes
    from graphssl.data.records import BuildReport

    with pytest.raises(DataError, match=r"task 'y' has label values \[-1.0, 1.0\]"):
        check_classes("set", ["y"], torch.tensor([[-1.0], [1.0], [math.nan]]), BuildReport("set"))


def test_label_columns_without_a_task_type_name_every_section_that_sets_it(tmp_path):
    from graphssl.molecule.tables import user_source

    path = tmp_path / "t.csv"
    path.write_text("smiles,y\nCCO,1.0\nCCN,2.0\n")
    with pytest.raises(DataError, match=r"label columns \['y'\] need a task type: .*data.task_type, "
                                        r"finetune.task.task_type, or the task's entry in benchmark.tasks"):
        user_source(path, label_columns=["y"])
