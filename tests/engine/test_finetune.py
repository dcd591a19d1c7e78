"""The one fine-tuning loop: selection rule, results, checkpoints, modes, label fractions and resuming."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.loader import DataLoader
from torch_geometric.utils import degree

from graphssl.core.config import DataConfig, load_config
from graphssl.core.errors import CheckpointError, ConfigError, DataError
from graphssl.data.dataset import load_dataset
from graphssl.data.splits import check_parts_scorable
from graphssl.engine.checkpoint import load_checkpoint, save_checkpoint
from graphssl.engine.finetune import SELECTION_RULE, FinetuneResult, finetune
from graphssl.engine.pretrain import pretrain
from graphssl.nn.heads import PredictionHead, PropertyModel
from graphssl.tasks import TASKS, Output, Task


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
    assert len(history) == 4 and all({"epoch", "loss", "skipped_steps", "train", "valid", "test"} == set(h) for h in history)
    assert all(h["skipped_steps"] == 0 for h in history)
    # The reported scores are those of the epoch with the best validation score.
    best = min(history, key=lambda h: h["valid"])
    assert result.best_epoch == best["epoch"] and result.test == best["test"] and result.valid == best["valid"]
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved == json.loads(json.dumps(result.to_dict()))
    best_pt = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best_pt["kind"] == "finetuned-model" and best_pt["task_names"] == ["logp", "active"]
    assert len(best_pt["target_mean"]) == len(best_pt["target_std"]) == 2
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert (last["kind"], last["task"], last["epoch"], last["best_epoch"]) == ("finetune-state", "property", 4,
                                                                                result.best_epoch)


def test_linear_probe_keeps_pretrained_encoder_fixed(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv, mode="linear", save_checkpoints="true", reestimate_batch_norm="false")
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


def test_linear_probe_with_reestimated_batch_norm_keeps_weights_and_changes_only_statistics(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv, mode="linear", reestimate_batch_norm="true")
    encoder_path = pretrain(config)
    pretrained = load_checkpoint(encoder_path)["encoder"]
    config.output_dir = str(tmp_path / "probe")
    finetune(config, checkpoint=encoder_path)
    tuned = load_checkpoint(tmp_path / "probe" / "best.pt")["model"]
    statistics = [k for k in pretrained if "running_" in k]
    assert statistics
    for name, value in pretrained.items():
        if name in statistics:
            assert not torch.equal(tuned[f"encoder.{name}"], value), name  # the task's statistics now
        elif "num_batches_tracked" not in name:
            assert torch.equal(tuned[f"encoder.{name}"], value), name


def test_encoder_learning_rate_applies_to_the_encoder_only(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv, epochs=1, encoder_lr=0.0001, lr=0.01)
    finetune(config)
    groups = load_checkpoint(tmp_path / "run" / "last.pt")["optimizer"]["param_groups"]
    assert sorted(g["lr"] for g in groups) == [0.0001, 0.01]
    # the head (a linear layer: weight and bias) is the group at lr, the encoder the rest
    assert len(next(g for g in groups if g["lr"] == 0.01)["params"]) == 2
    assert len(next(g for g in groups if g["lr"] == 0.0001)["params"]) > 2
    config.finetune.encoder_lr = -1.0
    config.output_dir = str(tmp_path / "bad")
    with pytest.raises(ConfigError, match="'finetune.encoder_lr' must be a positive number"):
        finetune(config)


def test_finetune_pooling_overrides_the_checkpoint_s_readout(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv, epochs=1)
    encoder_path = pretrain(config)  # model.pooling: mean
    config.finetune.pooling = "sum"
    config.output_dir = str(tmp_path / "sum")
    finetune(config, checkpoint=encoder_path)
    assert load_checkpoint(tmp_path / "sum" / "best.pt")["model_config"]["pooling"] == "sum"
    config.finetune.pooling = "median"
    config.output_dir = str(tmp_path / "bad")
    with pytest.raises(ConfigError, match="unknown pooling 'median'"):
        finetune(config, checkpoint=encoder_path)


def test_classification_roc_auc(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv)
    config.finetune.task = DataConfig(path=str(molecule_csv), label_columns=["active"], task_type="classification")
    with pytest.raises(Exception, match="no label present"):
        finetune(config)  # rows whose only label is missing are bad records
    config.finetune.task.on_error = "skip"
    config.finetune.split_seed = 3  # a random split whose 2 validation and 2 test molecules hold both classes
    result = finetune(config)
    assert result.metric == "roc_auc" and result.train_size == 16 and np.isfinite(result.valid)


def test_a_validation_part_with_one_class_is_refused_before_training(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv, split_seed=0)
    config.finetune.task = DataConfig(path=str(molecule_csv), label_columns=["active"], task_type="classification",
                                      on_error="skip")
    with pytest.raises(DataError, match=r"the valid part of the random split of 'mols' \(2 records\) cannot be "
                                        r"scored.*'active': 0 of class 0, 2 of class 1"):
        finetune(config)
    assert not (tmp_path / "run" / "last.pt").exists()


class _Part:
    """A data set view as check_parts_scorable sees it."""

    def __init__(self, labels, task_type, name="tbl"):
        self.labels, self.task_type, self.name = torch.tensor(labels, dtype=torch.float32), task_type, name
        self.task_names = [f"t{k}" for k in range(self.labels.shape[1])]

    def __len__(self):
        return self.labels.shape[0]


def test_parts_without_a_scorable_label_are_refused():
    nan = float("nan")
    ok = _Part([[0.5, nan], [nan, 1.0]], "regression")
    check_parts_scorable({"train": ok, "valid": ok, "test": ok}, "scaffold")
    with pytest.raises(DataError, match=r"the test part of the scaffold split of 'tbl' has 2 records and not one label"):
        check_parts_scorable({"train": ok, "test": _Part([[nan, nan], [nan, nan]], "regression")}, "scaffold")
    # multi-task classification: one task with both classes is enough to score the part
    check_parts_scorable({"valid": _Part([[0, 1], [1, 1]], "classification")}, "random")
    with pytest.raises(DataError, match=r"'t0': 2 of class 0, 0 of class 1; 't1': 0 of class 0, 1 of class 1"):
        check_parts_scorable({"valid": _Part([[0, 1], [0, nan]], "classification")}, "random")


def test_label_fraction_keeps_a_share_of_the_training_labels(tmp_path, molecule_csv):
    full = finetune(_config(tmp_path, molecule_csv, epochs=1, save_checkpoints="false"))
    half = finetune(_config(tmp_path, molecule_csv, epochs=1, save_checkpoints="false", label_fraction=0.5))
    assert (full.train_size, half.train_size) == (19, 10)  # round(0.5 * 19) training molecules


def test_resumed_run_matches_an_uninterrupted_one(tmp_path, molecule_csv):
    straight = finetune(_config(tmp_path / "straight", molecule_csv))
    config = _config(tmp_path / "resumed", molecule_csv, epochs=2)
    finetune(config)
    config.finetune.epochs = 4
    resumed = finetune(config)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert resumed.history == straight.history  # same batches, dropout masks and scores
    assert (resumed.best_epoch, resumed.valid, resumed.test) == (straight.best_epoch, straight.valid, straight.test)


def test_resume_refuses_another_run_or_task(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv, epochs=1)
    finetune(config)
    config.finetune.lr = 0.01
    with pytest.raises(CheckpointError, match="different settings \\(finetune\\)"):
        finetune(config)
    config.finetune.resume = False  # starts over instead
    assert finetune(config).history[0]["epoch"] == 1
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    save_checkpoint(tmp_path / "run" / "last.pt", {**state, "task": "segmentation"})
    config.finetune.resume = True
    with pytest.raises(CheckpointError, match="'segmentation' fine-tuning run, not of a 'property' one"):
        finetune(config)


def test_finetune_rejects_wrong_checkpoint_bad_mode_and_unlabeled_data(tmp_path, molecule_csv, smiles_file):
    config = _config(tmp_path, molecule_csv, epochs=1)
    finetune(config)
    with pytest.raises(ConfigError, match="pretrained"):
        finetune(config, checkpoint=tmp_path / "run" / "best.pt")
    with pytest.raises(ConfigError, match="'finetune.mode' must be one of full, linear, lp-ft, got 'half'"):
        finetune(_config(tmp_path, molecule_csv, mode="half"))
    config.finetune.task = DataConfig(path=str(smiles_file))
    with pytest.raises(Exception, match="no labels"):
        finetune(config)


def test_result_reads_secondary_scores_as_attributes():
    result = FinetuneResult("t", "miou", 2, 0.5, 0.4, 10, 1.0, extra={"test_accuracy": 0.9, "num_classes": 3})
    assert result.test_accuracy == 0.9 and result.to_dict()["num_classes"] == 3 and "extra" not in result.to_dict()
    with pytest.raises(AttributeError, match="test_energy_mae"):
        getattr(result, "test_energy_mae")



class _AtomCounts:
    """A molecule data set relabelled with a task type no built-in task serves."""

    task_type = "toy-atom-count"

    def __init__(self, base):
        self.base = base

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        return self.base[i]

    def subset(self, indices):
        return _AtomCounts(self.base.subset(indices))

    def __getattr__(self, name):
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)


def _atoms(batch):
    return degree(batch.batch, int(batch.num_graphs)).unsqueeze(-1)  # atoms per molecule [B, 1]


class AtomCount(Task):
    """Predict the number of atoms: a whole task in a few lines."""

    name = "atom-count"

    def __init__(self, dataset, config):
        super().__init__(dataset, config)
        self.outputs = [Output("mse", 1.0, lambda model, batch, out: F.mse_loss(out, _atoms(batch)))]

    def selection_metric(self, dataset):
        return "mae"

    def build_model(self, encoder):
        return PropertyModel(encoder, PredictionHead(encoder.out_channels, 1))

    def predict(self, model, batch):
        return model(batch)

    @torch.no_grad()
    def evaluate(self, model, dataset, device):
        model.eval()
        errors = [(model(b.to(device)) - _atoms(b)).abs() for b in DataLoader(dataset, batch_size=64)]
        return {"mae": float(torch.cat(errors).mean())}


def test_a_new_task_is_one_registered_class(tmp_path, molecule_csv):
    TASKS.register("toy-atom-count", AtomCount, replace=True)
    config = _config(tmp_path, molecule_csv, lr=0.01)
    dataset = _AtomCounts(load_dataset(config.finetune.task, config.cache_dir, progress=False, verbose=False))
    result = finetune(config, dataset=dataset)
    assert result.metric == "mae" and len(result.history) == 4
    assert {"mse", "loss", "valid", "test"} <= set(result.history[0])
    assert load_checkpoint(tmp_path / "run" / "last.pt")["task"] == "atom-count"
