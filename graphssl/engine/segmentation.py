"""Per-face segmentation of B-rep parts: a classification head on node embeddings.

Parts (not faces) are split randomly into train/valid/test by ``finetune.split_seed``;
``finetune.label_fraction`` keeps the labels of that share of the training parts (nested
subsets, at least one part). Scores are pooled over all faces of a split: mean IoU over
the classes present in its truth or its predictions (the selection metric) and per-face
accuracy. The reported test score is read at the epoch with the best validation mIoU.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from graphssl.core.config import RunConfig, save_config
from graphssl.data.splits import subsample_fraction
from graphssl.nn.factory import is_geometric
from graphssl.core.errors import ConfigError, DataError
from graphssl.tasks.metrics import is_better
from graphssl.nn.heads import PredictionHead
from graphssl.engine.checkpoint import save_checkpoint
from graphssl.data.splits import Split, make_split
from graphssl.engine.finetune import (FinetuneResult, build_finetune_encoder, load_pretrained,
                                     resume_finetuning)
from graphssl.engine.runtime import start_finetuning

__all__ = ["SegmentationModel", "SegmentationResult", "face_accuracy", "finetune_segmentation", "mean_iou"]

STATE_KIND = "segmentation-state"  # last.pt of a segmentation run (its layout differs from finetune()'s)


def face_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of faces whose predicted class is right (NaN without faces)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred)) if y_true.size else float("nan")


def mean_iou(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over classes of |truth & prediction| / |truth | prediction|.

    Only classes present in the truth or the predictions count: a class absent from both
    has no defined IoU, and counting it as 1 (or 0) would reward (or punish) a split for
    the classes its parts happen to lack.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = np.union1d(y_true, y_pred)
    if not classes.size:
        return float("nan")
    ious = [np.sum((y_true == c) & (y_pred == c)) / np.sum((y_true == c) | (y_pred == c)) for c in classes]
    return float(np.mean(ious))


@dataclass
class SegmentationResult(FinetuneResult):
    """:class:`FinetuneResult` (``metric`` is ``miou``) plus per-face accuracy at the same epoch."""

    valid_accuracy: float = float("nan")
    test_accuracy: float = float("nan")
    num_classes: int = 0


class SegmentationModel(nn.Module):
    """Encoder and a per-node head: ``Data`` -> ``[num_faces, num_classes]`` logits."""

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, data: Data) -> Tensor:
        return self.head(self.encoder(data))


@torch.no_grad()
def predict_faces(model: nn.Module, dataset, device: torch.device,
                  batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) class of every face of ``dataset``, in order."""
    model.eval()
    truth, pred = [], []
    for batch in DataLoader(dataset, batch_size=batch_size):
        batch = batch.to(device)
        pred.append(model(batch).argmax(-1).cpu())
        truth.append(batch.y.cpu())
    return torch.cat(truth).numpy(), torch.cat(pred).numpy()


def _check_options(config: RunConfig) -> None:
    ft = config.finetune
    if ft.split != "random":
        raise ConfigError(f"finetune.split={ft.split!r} does not apply to B-rep parts (no scaffolds); "
                          "set finetune.split=random")
    if ft.mode not in ("full", "linear"):
        raise ConfigError(f"finetune.mode must be 'full' or 'linear', got {ft.mode!r}")


def _train_epoch(model: SegmentationModel, train, optimizer: torch.optim.Optimizer, config: RunConfig,
                 epoch: int, device: torch.device) -> float:
    """One pass over the labelled training parts; returns the mean cross-entropy per face."""
    ft = config.finetune
    model.train()
    if ft.mode == "linear":
        model.encoder.eval()  # frozen: batch-norm statistics and dropout stay as pretrained
    # The shuffle depends only on (seed, epoch), so a resumed run sees the same batches.
    generator = torch.Generator().manual_seed(ft.seed * 100_003 + epoch)
    total, faces = 0.0, 0
    # No drop_last: batch norm here normalises over faces, so even a one-part batch is fine,
    # and a few-shot run may have fewer parts than one batch.
    for batch in DataLoader(train, batch_size=ft.batch_size, shuffle=True, generator=generator):
        batch = batch.to(device)
        loss = F.cross_entropy(model(batch), batch.y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * batch.num_nodes
        faces += batch.num_nodes
    return total / max(faces, 1)


def finetune_segmentation(config: RunConfig, checkpoint: str | Path | None = None, dataset=None,
                          split: Split | None = None) -> SegmentationResult:
    """Fine-tune (``full``) or linearly probe (``linear``) an encoder on per-face classes.

    ``checkpoint`` is a pretrained ``encoder.pt``; without one the same backbone is trained
    from scratch. Writes ``result.json`` (and ``last.pt`` / ``best.pt`` when
    ``finetune.save_checkpoints``) into ``config.output_dir``.
    """
    ft = config.finetune
    device, out = start_finetuning(config)
    _check_options(config)
    if dataset is None:
        from graphssl.data.dataset import load_dataset

        dataset = load_dataset(ft.task, config.cache_dir, progress=config.progress)
    if dataset.task_type != "segmentation":
        raise DataError(f"data set '{dataset.name}' has no per-face labels (task type {dataset.task_type!r})")
    split = split or make_split(dataset, ft)
    train_idx = subsample_fraction(split.train, ft.label_fraction, seed=ft.seed)  # whole parts, >= 1
    train, valid, test = dataset.subset(train_idx), dataset.subset(split.valid), dataset.subset(split.test)
    if not (len(train) and len(valid) and len(test)):
        raise DataError(f"data set '{dataset.name}' has {len(dataset)} parts: the split {list(ft.split_fractions)} "
                        f"leaves {len(split.train)}/{len(valid)}/{len(test)} parts for train/valid/test; "
                        "every part of the split needs at least one, so use more parts")

    pretrained = load_pretrained(checkpoint) if checkpoint is not None else None
    model_cfg = dataclasses.replace(pretrained.model if pretrained else config.model, dropout=ft.dropout)
    if is_geometric(model_cfg.backbone):
        raise ConfigError(f"backbone {model_cfg.backbone!r} reads atoms and positions; B-rep face graphs need a "
                          "2D backbone such as gin, gine or gat")
    encoder = build_finetune_encoder(model_cfg, train, pretrained, ft.task.cutoff)
    head = PredictionHead(encoder.out_channels, dataset.num_classes, ft.head_hidden, ft.dropout)
    model = SegmentationModel(encoder, head).to(device)
    if ft.mode == "linear":
        for p in encoder.parameters():
            p.requires_grad_(False)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=ft.lr,
                                 weight_decay=ft.weight_decay)

    def score(subset) -> tuple[float, float]:
        truth, pred = predict_faces(model, subset, device)
        return mean_iou(truth, pred), face_accuracy(truth, pred)

    start_epoch, history, best_state = 0, [], None
    best = {"epoch": 0, "valid": float("nan"), "test": float("nan"), "valid_acc": float("nan"),
            "test_acc": float("nan")}
    last = out / "last.pt"
    state = resume_finetuning(config, STATE_KIND, model, optimizer, device, checkpoint)
    if state is not None:
        start_epoch, history = state["epoch"], list(state["history"])
        best, best_state = dict(state["best"]), state["best_model"]

    t0 = time.perf_counter()
    epochs = tqdm(range(start_epoch, ft.epochs), desc=f"segment {dataset.name}", disable=not config.progress,
                  unit="epoch", leave=False)
    for epoch in epochs:
        loss = _train_epoch(model, train, optimizer, config, epoch, device)
        (valid_iou, valid_acc), (test_iou, test_acc) = score(valid), score(test)
        history.append({"epoch": epoch + 1, "loss": loss, "valid": valid_iou, "test": test_iou,
                        "valid_accuracy": valid_acc, "test_accuracy": test_acc})
        if is_better("miou", valid_iou, best["valid"] if best["epoch"] else None):
            best = {"epoch": epoch + 1, "valid": valid_iou, "test": test_iou, "valid_acc": valid_acc,
                    "test_acc": test_acc}
            best_state = copy.deepcopy(model.state_dict())
        epochs.set_postfix(valid=f"{valid_iou:.4f}", best=f"{best['valid']:.4f}@{best['epoch']}")
        if ft.save_checkpoints:
            save_checkpoint(last, {
                "kind": STATE_KIND, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "epoch": epoch + 1, "history": history, "best": best,
                "best_model": best_state if best_state is not None else model.state_dict(),
                "rng": torch.get_rng_state(), "config": config.to_dict(),
                "checkpoint": str(checkpoint) if checkpoint else None,
            })

    result = SegmentationResult(
        task=dataset.name, metric="miou", best_epoch=best["epoch"], valid=best["valid"], test=best["test"],
        train_size=len(train), seconds=time.perf_counter() - t0, history=history,
        valid_accuracy=best["valid_acc"], test_accuracy=best["test_acc"], num_classes=dataset.num_classes)
    if ft.save_checkpoints and best_state is not None:
        save_config(config, out / "config.yaml")
        save_checkpoint(out / "best.pt", {
            "kind": "finetuned-model", "model": best_state, "model_config": dataclasses.asdict(model_cfg),
            "task_names": dataset.task_names, "task_type": dataset.task_type,
            "class_names": list(dataset.class_names), "result": result.to_dict(), "config": config.to_dict(),
        })
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=1))
    return result
