"""The property task (regression, multi-task classification with missing labels) and the task registry."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch_geometric.data import Batch, Data

from graphssl.core.config import FinetuneConfig
from graphssl.core.errors import ConfigError, DataError
from graphssl.nn.losses import masked_bce_with_logits
from graphssl.tasks import (
    TASKS,
    EnergyForcesTask,
    PropertyTask,
    SegmentationTask,
    build_task,
)

NAN = float("nan")


def _dataset(labels, task_type="regression", metric="rmse"):
    labels = torch.tensor(labels, dtype=torch.float)
    return SimpleNamespace(name="toy", task_type=task_type, metric=metric, labels=labels,
                           num_tasks=labels.shape[1], task_names=[f"t{i}" for i in range(labels.shape[1])])


class Fixed(nn.Module):
    """A 'model' whose output is fixed: the loss is then computed by hand."""

    def __init__(self, out):
        super().__init__()
        self.out = torch.tensor(out)

    def forward(self, batch):
        return self.out


def _batch(labels):
    return Batch.from_data_list([Data(x=torch.zeros(1, 1), y=torch.tensor([row], dtype=torch.float)) for row in labels])


def test_task_types_pick_their_tasks():
    assert {"classification", "regression", "energy_forces", "segmentation"} <= set(TASKS.names())
    config = FinetuneConfig()
    assert isinstance(build_task(_dataset([[1.0]]), config), PropertyTask)
    assert isinstance(build_task(_dataset([[1.0]], "classification", "roc_auc"), config), PropertyTask)
    assert TASKS.get("energy_forces") is EnergyForcesTask and TASKS.get("segmentation") is SegmentationTask
    with pytest.raises(ConfigError, match="unknown task 'regresion'.*Did you mean 'regression'"):
        build_task(_dataset([[1.0]], "regresion"), config)
    with pytest.raises(DataError, match="no labels"):
        build_task(_dataset([[1.0]], None), config)


def test_regression_targets_are_standardised_on_the_training_split():
    train = _dataset([[1.0, 5.0, 2.0], [3.0, NAN, 2.0], [NAN, 7.0, 2.0]])
    task = build_task(train, FinetuneConfig())
    task.prepare(train)
    np.testing.assert_allclose(task.mean, [2.0, 6.0, 2.0])
    np.testing.assert_allclose(task.std, [1.0, 1.0, 1.0])  # the constant third task keeps its scale
    # the loss is the MSE of standardised targets over the present labels only
    labels = [[2.0, 8.0, 2.0], [NAN, 6.0, 3.0]]
    out = [[0.5, 1.0, 0.0], [9.0, 0.0, 0.0]]
    terms = task.loss(Fixed(out), _batch(labels))
    # standardised: [0, 2, 0], [-, 0, 1] -> squared errors 0.25, 1, 0, 0, 1 over 5 labels
    assert set(terms) == {"loss"} and terms["loss"].item() == pytest.approx((0.25 + 1 + 0 + 0 + 1) / 5)
    assert task.checkpoint_state() == {"target_mean": [2.0, 6.0, 2.0], "target_std": [1.0, 1.0, 1.0]}


def test_classification_is_not_standardised_and_skips_missing_labels():
    data = _dataset([[1.0, NAN], [0.0, 1.0]], "classification", "roc_auc")
    task = build_task(data, FinetuneConfig())
    task.prepare(data)
    assert task.metric == "roc_auc" and task.mean.tolist() == [0.0, 0.0] and task.std.tolist() == [1.0, 1.0]
    out = [[2.0, -1.0], [0.5, 0.3]]
    expected = masked_bce_with_logits(torch.tensor(out), torch.tensor([[1.0, NAN], [0.0, 1.0]]))
    assert task.loss(Fixed(out), _batch([[1.0, NAN], [0.0, 1.0]]))["loss"].item() == pytest.approx(expected.item())


def test_options_a_task_cannot_honour_are_refused():
    with pytest.raises(ConfigError, match="finetune.mode='half'"):
        build_task(_dataset([[1.0]]), FinetuneConfig(mode="half"))
    with pytest.raises(ConfigError, match="geometric backbone"):  # noisy nodes denoises 3D coordinates
        task = build_task(_dataset([[1.0]]), FinetuneConfig(noisy_nodes_weight=0.1))
        task.setup(SimpleNamespace(out_channels=4), "gine")
