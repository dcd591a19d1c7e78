"""Pretraining resumes from last.pt exactly, and refuses the state of a different run."""

import pytest
import torch

from graphssl.core.config import load_config
from graphssl.core.errors import CheckpointError
from graphssl.engine.checkpoint import load_checkpoint
from graphssl.engine.pretrain import pretrain


def _config(tmp_path, molecule_csv):
    return load_config(None, [
        f"output_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}", "progress=false",
        "model.backbone=gine", "model.hidden=16", "model.num_layers=2",
        f"data.path={molecule_csv}", "pretrain.epochs=2", "pretrain.batch_size=8",
    ])


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


def test_pretrain_refuses_to_resume_a_different_run(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv)
    config.pretrain.epochs = 1
    pretrain(config)
    config.model.hidden = 24
    with pytest.raises(CheckpointError, match="different model"):
        pretrain(config)
