"""Per-face segmentation of B-rep parts as a fine-tuning task (mIoU selected, accuracy alongside)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("OCP")

from graphssl.cli import main  # noqa: E402
from graphssl.core.config import load_config  # noqa: E402
from graphssl.core.errors import CheckpointError, ConfigError, DataError  # noqa: E402
from graphssl.data.dataset import load_dataset  # noqa: E402
from graphssl.engine.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from graphssl.engine.finetune import SELECTION_RULE, finetune  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _overrides(run: Path, parts_dir: Path, cache: Path) -> list[str]:
    values = [f"output_dir={run}", f"cache_dir={cache}", "progress=false", "threads=1",
              "model.backbone=gine", "model.hidden=32", "model.num_layers=2", f"data.path={parts_dir}",
              "pretrain.epochs=1", "pretrain.batch_size=8", "objective.name=graphmae", "objective.loss=mse",
              f"finetune.task.path={parts_dir}", "finetune.split=random", "finetune.epochs=5",
              "finetune.batch_size=4", "finetune.label_fraction=0.1", "finetune.lr=0.005", "finetune.dropout=0.1"]
    return [a for v in values for a in ("--set", v)]


def _small(tmp_path: Path, parts_dir: Path, cache: Path, *extra: str) -> list[str]:
    return [f"output_dir={tmp_path}", f"cache_dir={cache}", "progress=false", "threads=1", "model.hidden=16",
            "model.num_layers=1", f"finetune.task.path={parts_dir}", "finetune.epochs=1", *extra]


@pytest.mark.slow
def test_segmentation_end_to_end_through_the_cli(parts_dir, cache, tmp_path, capsys):
    assert main(["pretrain", *_overrides(tmp_path / "pre", parts_dir, cache)]) == 0
    encoder = tmp_path / "pre" / "encoder.pt"
    assert main(["finetune", "--checkpoint", str(encoder), *_overrides(tmp_path / "run", parts_dir, cache)]) == 0
    assert "valid miou" in capsys.readouterr().out
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["metric"] == "miou" and result["selection"] == SELECTION_RULE
    assert result["train_size"] == 2  # 10% of 24 training parts
    history = result["history"]
    assert len(history) == 5 and {"valid_accuracy", "test_accuracy"} <= set(history[0])
    best = max(history, key=lambda h: h["valid"])  # first best on ties, as the loop keeps it
    assert result["best_epoch"] == best["epoch"] and result["test"] == pytest.approx(best["test"])
    assert result["test_accuracy"] == pytest.approx(best["test_accuracy"])
    assert 0 < result["valid"] <= 1 and 0 < result["test_accuracy"] <= 1
    saved = load_checkpoint(tmp_path / "run" / "best.pt")
    assert saved["task_type"] == "segmentation" and len(saved["class_names"]) == result["num_classes"]


def test_scaffold_split_is_refused_and_foreign_state_is_not_resumed(parts_dir, cache, tmp_path):
    with pytest.raises(ConfigError, match="split=random"):
        finetune(load_config(None, _small(tmp_path, parts_dir, cache)))
    save_checkpoint(tmp_path / "last.pt", {"kind": "pretrain-state"})
    with pytest.raises(CheckpointError, match="pretrain-state"):
        finetune(load_config(None, _small(tmp_path, parts_dir, cache, "finetune.split=random")))


def test_geometric_backbones_are_refused(parts_dir, cache, tmp_path):
    config = load_config(None, _small(tmp_path, parts_dir, cache, "finetune.split=random", "model.backbone=schnet"))
    with pytest.raises(ConfigError, match="2D backbone"):
        finetune(config)


def test_one_percent_of_labels_still_keeps_a_part(parts_dir, cache, tmp_path):
    config = load_config(None, _small(tmp_path, parts_dir, cache, "finetune.split=random",
                                      "finetune.label_fraction=0.01", "finetune.save_checkpoints=false"))
    result = finetune(config)
    assert result.train_size == 1 and result.num_classes == result.to_dict()["num_classes"] > 1
    assert 0 <= result.test_accuracy <= 1  # secondary scores read as attributes
    five = load_dataset(config.finetune.task, cache, progress=False, verbose=False).subset(range(5))
    with pytest.raises(DataError, match="at least one"):  # 10% of 5 parts is no validation part
        finetune(config, dataset=five)
