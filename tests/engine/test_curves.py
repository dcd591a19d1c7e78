"""Training curves: written into every pretraining and fine-tuning run folder, the running
training score of an epoch, and a curve that cannot be drawn never failing the run."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from torch import nn

from graphssl.core.config import load_config
from graphssl.engine import curves
from graphssl.engine.curves import TrainingScore, finetune_figure, pretrain_figure, write_finetune_curves
from graphssl.engine.finetune import finetune
from graphssl.engine.pretrain import pretrain
from graphssl.tasks.property import PropertyTask

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def _config(tmp_path, molecule_csv):
    return load_config(None, [
        f"output_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}", "progress=false", "threads=1",
        "model.backbone=gine", "model.hidden=16", "model.num_layers=2",
        f"data.path={molecule_csv}", "pretrain.epochs=2", "pretrain.batch_size=8",
        f"finetune.task.path={molecule_csv}", "finetune.task.label_columns=[logp]",
        "finetune.task.task_type=regression", "finetune.split=random", "finetune.epochs=3", "finetune.batch_size=8",
    ])


def _assert_png(path):
    assert path.read_bytes()[:8] == PNG
    image = imread(path)  # decodes the whole file: a truncated PNG fails here
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_pretrain_and_finetune_runs_write_their_curves(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv)
    encoder = pretrain(config)
    _assert_png(tmp_path / "run" / "pretrain_curves.png")
    config.output_dir = str(tmp_path / "tuned")
    result = finetune(config, checkpoint=encoder)
    _assert_png(tmp_path / "tuned" / "finetune_curves.png")
    # the training score is recorded every epoch, in the metric's units, next to validation
    saved = json.loads((tmp_path / "tuned" / "result.json").read_text())["history"]
    assert [h["epoch"] for h in saved] == [1, 2, 3]
    assert all(math.isfinite(h["train"]) and h["train"] > 0 for h in saved)
    assert result.history == saved


class _Fixed(nn.Module):
    """Returns preset outputs, one per call, as a property model's raw (standardised) values."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs = list(outputs)

    def forward(self, batch):
        return self.outputs.pop(0)


def test_training_score_uses_kept_training_predictions_in_real_units():
    task = PropertyTask.__new__(PropertyTask)  # the scoring needs only these attributes
    task.classification, task.metric = False, "rmse"
    task.mean, task.std = np.array([1.0]), np.array([2.0])
    raw = [torch.tensor([[0.0], [1.0]]), torch.tensor([[5.0]]), torch.tensor([[-1.0]]), torch.tensor([[9.0]])]
    model = _Fixed(raw)
    batches = [SimpleNamespace(y=torch.tensor([1.0, 4.0])), SimpleNamespace(y=torch.tensor([0.0])),
               SimpleNamespace(y=torch.tensor([-3.0])), SimpleNamespace(y=torch.tensor([0.0]))]
    score = TrainingScore(task, model)
    model.train()
    model(batches[0])
    score.keep()  # predictions 1 and 3 (raw * 2 + 1) for labels 1 and 4
    model(batches[1])  # a skipped batch: never kept
    model(batches[2])
    score.keep()  # prediction -1 for label -3
    model.eval()
    model(batches[3])  # an evaluation pass: not a training prediction
    score.keep()
    # errors 0, -1, 2: RMSE = sqrt((0 + 1 + 4) / 3)
    assert score.result() == {"train": pytest.approx(math.sqrt(5 / 3))}
    assert not model._forward_hooks  # the hook is gone after the epoch


def test_finetune_figure_marks_the_selected_epoch():
    history = [{"epoch": e, "loss": l, "skipped_steps": 0, "train": t, "valid": v, "test": v + 0.1}
               for e, l, t, v in [(1, 1.0, 2.0, 3.0), (2, 0.5, 1.5, 2.0), (3, 0.4, 1.2, 2.5)]]
    fig = finetune_figure(history, best_epoch=2, metric="rmse")
    loss_ax, metric_ax = fig.axes
    assert [tuple(line.get_ydata()) for line in loss_ax.lines] == [(1.0, 0.5, 0.4)]
    labels = [line.get_label() for line in metric_ax.lines]
    assert labels[:2] == ["training (running, dropout on)", "validation"]
    assert tuple(metric_ax.lines[1].get_ydata()) == (3.0, 2.0, 2.5)  # validation, not test
    marker = metric_ax.collections[0].get_offsets()
    assert marker.tolist() == [[2.0, 2.0]]
    assert "lower is better" in metric_ax.get_ylabel()


def test_pretrain_figure_puts_objective_numbers_on_a_second_panel():
    history = [{"epoch": 1, "loss": 2.0, "graphs_per_s": 10.0, "seconds": 1.0, "steps": 5, "skipped_steps": 0,
                "embedding_std": 0.3},
               {"epoch": 2, "loss": 1.0, "graphs_per_s": 11.0, "seconds": 1.0, "steps": 10, "skipped_steps": 0,
                "embedding_std": 0.2}]
    loss_ax, extra_ax = pretrain_figure(history).axes
    assert tuple(loss_ax.lines[0].get_xdata()) == (5.0, 10.0)  # optimiser steps
    assert [line.get_label() for line in extra_ax.lines] == ["embedding_std"]
    plain = [{k: v for k, v in h.items() if k != "embedding_std"} for h in history]
    assert len(pretrain_figure(plain).axes) == 1


def test_a_broken_history_warns_and_writes_nothing(tmp_path):
    with pytest.warns(RuntimeWarning, match="no 'loss'"):
        assert write_finetune_curves([{"epoch": 1, "valid": 1.0}], 1, "rmse", tmp_path) is None
    with pytest.warns(RuntimeWarning, match="non-empty list"):
        assert curves.write_pretrain_curves({"loss": 1.0}, tmp_path) is None
    assert not list(tmp_path.iterdir())


def test_a_curve_that_fails_to_draw_does_not_fail_the_run(tmp_path, molecule_csv, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("history unreadable")

    monkeypatch.setattr(curves, "finetune_figure", broken)
    config = _config(tmp_path, molecule_csv)
    with pytest.warns(RuntimeWarning, match="history unreadable"):
        result = finetune(config)
    assert math.isfinite(result.test)
    assert (tmp_path / "run" / "result.json").is_file()
    assert not (tmp_path / "run" / "finetune_curves.png").exists()
