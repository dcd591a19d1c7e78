"""finetune.split=column: the split column a file ships with (train / valid / test per record)."""

from __future__ import annotations

import numpy as np
import pytest

from graphssl.core.config import DataConfig, FinetuneConfig, load_config
from graphssl.core.errors import ConfigError, DataError
from graphssl.data.dataset import load_dataset
from graphssl.data.splits import SPLITS, column_split, make_split

ROWS = [("CCO", "1.0", "train"), ("CCN", "2.0", "train"), ("C1CC", "3.0", "valid"), ("CCC", "4.0", "valid"),
        ("c1ccccc1", "5.0", "test"), ("CCCl", "6.0", "train"), ("OCC", "7.0", "test"), ("CNC", "8.0", "TEST")]


def _csv(tmp_path, rows=ROWS, header="smiles,y,split"):
    path = tmp_path / "mols.csv"
    path.write_text(header + "\n" + "".join(",".join(row) + "\n" for row in rows))
    return path


def _dataset(path, cache, **options):
    config = DataConfig(path=str(path), label_columns=["y"], task_type="regression", on_error="skip", **options)
    return load_dataset(config, cache, progress=False, verbose=False), config


def test_column_split_follows_the_files_own_column_past_skipped_records(tmp_path):
    # C1CC (record 2) is invalid and OCC (record 6) repeats CCO: the kept records are 0 1 3 4 5 7
    dataset, config = _dataset(_csv(tmp_path), tmp_path / "cache")
    assert dataset.smiles == ["CCO", "CCN", "CCC", "c1ccccc1", "CCCl", "CNC"]
    split = make_split(dataset, FinetuneConfig(task=config, split="column"))
    assert split.train.tolist() == [0, 1, 4] and split.valid.tolist() == [2] and split.test.tolist() == [3, 5]
    assert dataset.labels[split.valid].flatten().tolist() == [4.0]


def test_column_split_with_its_own_column_name_and_values(tmp_path):
    rows = [(s, y, {"train": "Training", "valid": "val", "test": "Testing", "TEST": "testing"}[v]) for s, y, v in ROWS]
    dataset, config = _dataset(_csv(tmp_path, rows, header="smiles,y,fold"), tmp_path / "cache")
    config_ = load_config(None, ["finetune.split=column", "finetune.split_column=fold",
                                 "finetune.split_values=[training, val, testing]"])
    split = make_split(dataset, config_.finetune)
    assert (split.train.tolist(), split.valid.tolist(), split.test.tolist()) == ([0, 1, 4], [2], [3, 5])


def test_a_value_outside_the_split_values_is_an_error_naming_it(tmp_path):
    rows = [*ROWS[:2], ("CCCC", "9.0", "holdout"), ("CCCCC", "9.5", "")]
    dataset, _ = _dataset(_csv(tmp_path, rows), tmp_path / "cache")
    with pytest.raises(DataError, match=r"split column 'split' of '.*mols.csv' holds 'holdout' \(1 record\), '' "
                                        r"\(1 record\), which are none of finetune.split_values"):
        make_split(dataset, FinetuneConfig(split="column"))
    with pytest.raises(DataError, match="no column 'fold'"):
        make_split(dataset, FinetuneConfig(split="column", split_column="fold"))


def test_split_values_must_be_three_different_names():
    with pytest.raises(ConfigError, match="needs 3 values"):
        column_split(["train"], ["train", "test"], "x")
    with pytest.raises(ConfigError, match="3 different values"):
        column_split(["train"], ["train", "Train", "test"], "x")


def test_column_split_of_an_sdf_property(tmp_path):
    block = ("m{k}\n  test\n\n  2  1  0  0  0  0  0  0  0  0999 V2000\n"
             "    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
             "    1.5000    0.0000    0.0000 {atom:<3} 0  0  0  0  0  0  0  0  0  0  0  0\n"
             "  1  2  1  0\nM  END\n>  <y>\n{k}.5\n\n>  <split>\n{part}\n\n$$$$\n")
    path = tmp_path / "mols.sdf"
    parts = [("O", "train"), ("N", "test"), ("C", "valid"), ("F", "train")]
    path.write_text("".join(block.format(k=k, atom=a, part=p) for k, (a, p) in enumerate(parts)))
    dataset, _ = _dataset(path, tmp_path / "cache")
    split = make_split(dataset, FinetuneConfig(split="column"))
    assert (split.train.tolist(), split.valid.tolist(), split.test.tolist()) == ([0, 3], [2], [1])


def test_column_split_needs_a_file_with_columns(tmp_path):
    smi = tmp_path / "mols.smi"
    smi.write_text("CCO\nCCN\n")
    dataset = load_dataset(DataConfig(path=str(smi)), tmp_path / "cache", progress=False, verbose=False)
    with pytest.raises(DataError, match="has no columns"):
        make_split(dataset, FinetuneConfig(split="column"))
    moses = load_dataset(DataConfig(name="moses", limit=5), tmp_path / "cache", progress=False, verbose=False)
    with pytest.raises(ConfigError, match="was not built from one: use scaffold or random"):
        make_split(moses, FinetuneConfig(split="column"))


def test_the_column_split_is_registered_and_documented():
    assert "column" in SPLITS
    assert "column" in FinetuneConfig.__dataclass_fields__["split"].metadata["help"]
    assert FinetuneConfig().split_values == ["train", "valid", "test"] and FinetuneConfig().split_column == "split"


def test_column_split_limit_follows_the_records_read(tmp_path):
    dataset, config = _dataset(_csv(tmp_path), tmp_path / "cache", limit=4)
    split = make_split(dataset, FinetuneConfig(task=config, split="column"))
    assert (split.train.tolist(), split.valid.tolist(), split.test.tolist()) == ([0, 1], [2], [])
    assert np.concatenate([split.train, split.valid]).tolist() == [0, 1, 2]
