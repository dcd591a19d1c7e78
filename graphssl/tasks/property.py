"""Property prediction: one value per graph and task, regression or binary classification.

Labels are ``[num_graphs, num_tasks]`` with NaN for a missing label; the loss and the metric
skip missing labels. Regression targets are standardised with the training split's mean and
standard deviation (per task) and predictions mapped back before scoring. Works on any
encoder: 2D molecule graphs and, with a geometric backbone, atomistic structures (pooled
atom features).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from graphssl.nn.heads import PredictionHead, PropertyModel
from graphssl.nn.losses import masked_bce_with_logits, masked_mse
from graphssl.tasks.base import TASKS, Output, Task
from graphssl.tasks.metrics import compute_metric


def labels_of(dataset: Any) -> np.ndarray:
    """The label matrix ``[num_graphs, num_tasks]`` of a data set, float64, NaN = missing."""
    return dataset.labels.numpy().astype(np.float64)


@torch.no_grad()
def predict_graphs(model: nn.Module, dataset: Any, device: torch.device, batch_size: int = 256) -> np.ndarray:
    """Raw model outputs (logits or standardised values) ``[num_graphs, num_tasks]``, in order."""
    model.eval()
    outs = [model(batch.to(device)).float().cpu() for batch in DataLoader(dataset, batch_size=batch_size)]
    return torch.cat(outs).numpy().astype(np.float64)


@TASKS.register("regression")
@TASKS.register("classification")
class PropertyTask(Task):
    """Graph-level regression (``rmse`` / ``mae``) or multi-task binary classification (``roc_auc``)."""

    name = "property"

    def __init__(self, dataset: Any, config: Any) -> None:
        super().__init__(dataset, config)
        self.classification = dataset.task_type == "classification"
        num_tasks = dataset.num_tasks
        self.mean, self.std = np.zeros(num_tasks), np.ones(num_tasks)  # identity until prepare()
        loss = self._bce if self.classification else self._mse
        # the one main term is the whole loss (plus auxiliary terms), so it is not logged again
        self.outputs = [Output("bce" if self.classification else "mse", 1.0, loss, logged=False)]

    def prepare(self, train: Any) -> None:
        """Per-task mean and standard deviation of the training labels (regression only)."""
        if self.classification:
            return
        y = labels_of(train)
        self.mean = np.nan_to_num(np.nanmean(y, axis=0))
        self.std = np.nan_to_num(np.nanstd(y, axis=0), nan=1.0)
        self.std[self.std < 1e-8] = 1.0  # a constant task: leave its values unscaled

    def build_model(self, encoder: nn.Module) -> nn.Module:
        ft = self.config
        return PropertyModel(encoder, PredictionHead(encoder.out_channels, self.dataset.num_tasks, ft.head_hidden,
                                                     ft.dropout))

    def predict(self, model: nn.Module, batch: Data) -> Tensor:
        return model(batch)

    def _bce(self, model: nn.Module, batch: Data, out: Tensor) -> Tensor:
        return masked_bce_with_logits(out, batch.y.view(out.shape))

    def _mse(self, model: nn.Module, batch: Data, out: Tensor) -> Tensor:
        mean = torch.tensor(self.mean, dtype=torch.float32, device=out.device)
        std = torch.tensor(self.std, dtype=torch.float32, device=out.device)
        return masked_mse(out, (batch.y.view(out.shape) - mean) / std)

    def evaluate(self, model: nn.Module, dataset: Any, device: torch.device) -> dict[str, float]:
        raw = predict_graphs(model, dataset, device)
        pred = raw if self.classification else raw * self.std + self.mean
        return {self.metric: compute_metric(self.metric, labels_of(dataset), pred)}

    def checkpoint_state(self) -> dict[str, Any]:
        return {"target_mean": self.mean.tolist(), "target_std": self.std.tolist()}
