"""Pretraining resumes from last.pt exactly, and refuses the state of a different run."""

import re

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


def test_a_state_from_before_an_option_existed_or_built_by_other_processes_resumes(tmp_path, molecule_csv):
    from graphssl.engine.checkpoint import save_checkpoint

    config = _config(tmp_path, molecule_csv)
    config.pretrain.epochs = 1
    pretrain(config)
    last = tmp_path / "run" / "last.pt"
    state = load_checkpoint(last)
    del state["config"]["data"]["workers"]  # a run saved before data.workers existed
    save_checkpoint(last, state)
    config.pretrain.epochs, config.data.workers = 2, 2  # its data built in two processes now
    assert [h["epoch"] for h in load_checkpoint(pretrain(config))["history"]] == [1, 2]
    config.pretrain.epochs, config.data.explicit_h = 3, True  # an option that changes the graphs
    with pytest.raises(CheckpointError, match="different data settings"):
        pretrain(config)


def test_exported_batch_norm_statistics_are_those_of_clean_graphs(tmp_path, molecule_csv):
    from graphssl.core.config import DataConfig
    from graphssl.data.dataset import load_dataset
    from graphssl.engine.pretrained import build_finetune_encoder, load_pretrained
    from graphssl.nn.batch_norm import reestimate_batch_norm

    kept = _config(tmp_path, molecule_csv)
    kept.output_dir, kept.pretrain.clean_batch_norm = str(tmp_path / "kept"), 0
    kept_state = load_checkpoint(pretrain(kept))
    clean = _config(tmp_path, molecule_csv)
    clean.output_dir = str(tmp_path / "clean")
    clean_state = load_checkpoint(pretrain(clean))
    assert (kept_state["batch_norm_graphs"], clean_state["batch_norm_graphs"]) == (0, 24)
    a, b = kept_state["encoder"], clean_state["encoder"]
    stats = [k for k in a if "running_" in k]
    assert stats and all(not torch.equal(a[k], b[k]) for k in stats)
    assert all(torch.equal(a[k], b[k]) for k in a if "running_" not in k and "num_batches" not in k)  # same weights
    # the exported statistics are exactly a re-estimation on the clean (unmasked) graphs
    data = load_dataset(DataConfig(path=str(molecule_csv)), tmp_path / "cache", progress=False, verbose=False)
    encoder = build_finetune_encoder(kept.model, data, load_pretrained(tmp_path / "kept" / "encoder.pt"), 5.0)
    reestimate_batch_norm(encoder, data)
    for key in stats:
        torch.testing.assert_close(encoder.state_dict()[key], b[key])


@pytest.mark.parametrize("change, named", [
    (("pretrain", "batch_size", 4), "pretrain.batch_size 8 (now 4)"),
    (("pretrain", "lr", 0.01), "pretrain.lr 0.001 (now 0.01)"),
    ((None, "seed", 5), "seed 0 (now 5)"),
])
def test_resuming_under_another_recipe_is_refused(tmp_path, molecule_csv, change, named):
    config = _config(tmp_path, molecule_csv)
    config.pretrain.epochs = 1
    pretrain(config)
    section, key, value = change
    setattr(config.pretrain if section else config, key, value)
    config.pretrain.epochs = 2
    with pytest.raises(CheckpointError, match=f"written with {re.escape(named)}.*pretrain.resume=force"):
        pretrain(config)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1  # nothing ran


def test_forced_resume_continues_under_the_new_learning_rate(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv)
    config.pretrain.epochs = 1
    pretrain(config)
    config.pretrain.epochs, config.pretrain.lr, config.pretrain.resume = 2, 0.01, "force"
    pretrain(config)
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["epoch"] == 2 and [g["lr"] for g in state["optimizer"]["param_groups"]] == [0.01]
