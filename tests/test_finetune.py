import json

import numpy as np
import pytest
import torch

from graphssl.core.config import DataConfig, RunConfig, load_config
from graphssl.data.dataset import load_dataset
from graphssl.core.errors import ConfigError
from graphssl.engine.checkpoint import load_checkpoint
from graphssl.engine.finetune import SELECTION_RULE, finetune
from graphssl.engine.pretrain import pretrain


def _config(tmp_path, molecule_csv, **finetune):
    overrides = [
        f"output_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}", "progress=false",
        "model.backbone=gine", "model.hidden=16", "model.num_layers=2",
        f"data.path={molecule_csv}", "pretrain.epochs=2", "pretrain.batch_size=8",
        f"finetune.task.path={molecule_csv}", "finetune.task.label_columns=[logp, active]",
        "finetune.task.task_type=regression", "finetune.split=random", "finetune.epochs=4", "finetune.batch_size=8",
    ] + [f"finetune.{k}={v}" for k, v in finetune.items()]
    return load_config(None, overrides)


def test_multitask_regression_with_missing_labels(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv)
    result = finetune(config)
    assert result.metric == "rmse" and np.isfinite(result.test) and np.isfinite(result.valid)
    assert result.selection == SELECTION_RULE
    history = result.history
    assert len(history) == 4
    # The reported scores are those of the epoch with the best validation score.
    best = min(history, key=lambda h: h["valid"])
    assert result.best_epoch == best["epoch"] and result.test == pytest.approx(best["test"])
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["best_epoch"] == result.best_epoch
    assert load_checkpoint(tmp_path / "run" / "best.pt")["kind"] == "finetuned-model"


def test_linear_probe_keeps_pretrained_encoder_fixed(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv, mode="linear", save_checkpoints="true")
    encoder_path = pretrain(config)
    pretrained = load_checkpoint(encoder_path)["encoder"]
    config.output_dir = str(tmp_path / "probe")
    finetune(config, checkpoint=encoder_path)
    tuned = load_checkpoint(tmp_path / "probe" / "best.pt")["model"]
    for name, value in pretrained.items():
        assert torch.equal(tuned[f"encoder.{name}"], value), name  # batch-norm statistics included


def test_full_finetuning_changes_the_encoder(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv)
    encoder_path = pretrain(config)
    pretrained = load_checkpoint(encoder_path)["encoder"]
    config.output_dir = str(tmp_path / "full")
    finetune(config, checkpoint=encoder_path)
    tuned = load_checkpoint(tmp_path / "full" / "best.pt")["model"]
    assert any(not torch.equal(tuned[f"encoder.{k}"], v) for k, v in pretrained.items())


def test_classification_roc_auc(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv)
    config.finetune.task = DataConfig(path=str(molecule_csv), label_columns=["active"], task_type="classification")
    with pytest.raises(Exception, match="no label present"):
        finetune(config)  # rows whose only label is missing are bad records
    config.finetune.task.on_error = "skip"
    result = finetune(config)
    assert result.metric == "roc_auc" and result.train_size == 16


def test_resume_continues_from_last_epoch(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv, epochs=2)
    finetune(config)
    config.finetune.epochs = 4
    result = finetune(config)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]


def test_pretrain_resume_matches_uninterrupted_run(tmp_path, molecule_csv):
    straight = _config(tmp_path, molecule_csv)
    straight.output_dir = str(tmp_path / "straight")
    a = load_checkpoint(pretrain(straight))["encoder"]
    resumed = _config(tmp_path, molecule_csv)
    resumed.output_dir = str(tmp_path / "resumed")
    resumed.pretrain.epochs = 1
    pretrain(resumed)
    resumed.pretrain.epochs = 2
    b = load_checkpoint(pretrain(resumed))["encoder"]
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key


def test_finetune_rejects_wrong_checkpoint_and_unlabeled_data(tmp_path, molecule_csv, smiles_file):
    config = _config(tmp_path, molecule_csv, epochs=1)
    finetune(config)
    with pytest.raises(ConfigError, match="pretrained"):
        finetune(config, checkpoint=tmp_path / "run" / "best.pt")
    config.finetune.task = DataConfig(path=str(smiles_file))
    with pytest.raises(Exception, match="no labels"):
        finetune(config)


def test_pretrain_refuses_to_resume_a_different_run(tmp_path, molecule_csv):
    from graphssl.core.errors import CheckpointError

    config = _config(tmp_path, molecule_csv)
    config.pretrain.epochs = 1
    pretrain(config)
    config.model.hidden = 24
    with pytest.raises(CheckpointError, match="different model"):
        pretrain(config)
