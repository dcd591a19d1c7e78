"""Per-face segmentation of B-rep parts: a classification head on node embeddings.

Parts (not faces) are split randomly into train/valid/test by ``finetune.split_seed``;
``finetune.label_fraction`` keeps the labels of that share of the training parts (nested
subsets, at least one part). Scores are pooled over all faces of a split: mean IoU over
the classes present in its truth or its predictions (the selection metric) and per-face
accuracy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from graphssl.core.errors import ConfigError
from graphssl.nn.geometric import GeometricEncoder
from graphssl.nn.heads import PredictionHead
from graphssl.tasks import metrics
from graphssl.tasks.base import TASKS, Output, Task


class SegmentationModel(nn.Module):
    """Encoder and a per-node head: ``Data`` -> ``[num_faces, num_classes]`` logits."""

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, data: Data) -> Tensor:
        return self.head(self.encoder(data))


@torch.no_grad()
def predict_faces(model: nn.Module, dataset: Any, device: torch.device,
                  batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) class of every face of ``dataset``, in order."""
    model.eval()
    truth, pred = [], []
    for batch in DataLoader(dataset, batch_size=batch_size):
        batch = batch.to(device)
        pred.append(model(batch).argmax(-1).cpu())
        truth.append(batch.y.cpu())
    return torch.cat(truth).numpy(), torch.cat(pred).numpy()


def cross_entropy(model: nn.Module, batch: Data, logits: Tensor) -> Tensor:
    return F.cross_entropy(logits, batch.y)


@TASKS.register("segmentation")
class SegmentationTask(Task):
    """Per-face classes: cross-entropy per face, selected on mIoU, face accuracy alongside."""

    name = "segmentation"
    # Batch norm here normalises over faces, so even a one-part batch is fine, and a few-shot
    # run may have fewer parts than one batch.
    drop_last = False
    secondary = ("accuracy",)

    def __init__(self, dataset: Any, config: Any) -> None:
        super().__init__(dataset, config)
        self.outputs = [Output("cross_entropy", 1.0, cross_entropy, logged=False)]

    def selection_metric(self, dataset: Any) -> str:
        return "miou"

    def check_options(self) -> None:
        if self.config.split not in ("random", "official"):
            raise ConfigError(f"finetune.split={self.config.split!r} does not apply to B-rep parts (no scaffolds); "
                              "set finetune.split=random")

    def check_encoder(self, encoder: nn.Module, backbone: str) -> None:
        if isinstance(encoder, GeometricEncoder):
            raise ConfigError(f"backbone {backbone!r} reads atoms and positions; B-rep face graphs need a "
                              "2D backbone such as gin, gine or gat")

    def build_model(self, encoder: nn.Module) -> nn.Module:
        ft = self.config
        return SegmentationModel(encoder, PredictionHead(encoder.out_channels, self.dataset.num_classes,
                                                         ft.head_hidden, ft.dropout))

    def predict(self, model: nn.Module, batch: Data) -> Tensor:
        return model(batch)

    def count(self, batch: Data) -> int:
        return int(batch.num_nodes)  # the loss is a mean over faces

    def evaluate(self, model: nn.Module, dataset: Any, device: torch.device) -> dict[str, float]:
        truth, pred = predict_faces(model, dataset, device)
        return {"miou": metrics.mean_iou(truth, pred), "accuracy": metrics.accuracy(truth, pred)}

    def checkpoint_state(self) -> dict[str, Any]:
        return {"class_names": list(self.dataset.class_names)}

    def info(self) -> dict[str, Any]:
        return {"num_classes": int(self.dataset.num_classes)}
