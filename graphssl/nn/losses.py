"""Loss functions as plain functions of tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def sce_loss(pred: Tensor, target: Tensor, alpha: float = 1.0) -> Tensor:
    """Scaled cosine error (GraphMAE): mean over rows of ``(1 - cos(pred, target)) ** alpha``.

    ``alpha >= 1`` down-weights rows that are already well reconstructed.
    """
    if alpha < 1:
        raise ValueError(f"sce_loss needs alpha >= 1, got {alpha}")
    if pred.shape != target.shape:
        raise ValueError(f"sce_loss shapes differ: pred {tuple(pred.shape)} vs target {tuple(target.shape)}")
    if pred.size(0) == 0:
        return pred.sum() * 0.0
    cos = (F.normalize(pred, p=2, dim=-1) * F.normalize(target, p=2, dim=-1)).sum(dim=-1)
    error = 1.0 - cos
    return (error if alpha == 1 else error.pow(alpha)).mean()  # x ** 1 is x, and so is its gradient


def masked_bce_with_logits(logits: Tensor, target: Tensor) -> Tensor:
    """Binary cross-entropy over the labels that are present (NaN marks a missing label)."""
    present = ~torch.isnan(target)
    if not bool(present.any()):
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[present], target[present])


def masked_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over the labels that are present (NaN marks a missing label)."""
    present = ~torch.isnan(target)
    if not bool(present.any()):
        return pred.sum() * 0.0
    return F.mse_loss(pred[present], target[present])


RECONSTRUCTION_LOSSES = ("sce", "mse")


def reconstruction_loss(pred: Tensor, target: Tensor, kind: str = "sce", alpha: float = 1.0) -> Tensor:
    """Masked-autoencoder reconstruction loss: ``sce`` (direction only, for one-hot or
    feature targets) or ``mse`` (values matter, e.g. UV-grid coordinates and normals)."""
    if kind == "sce":
        return sce_loss(pred, target, alpha)
    if kind == "mse":
        return F.mse_loss(pred, target) if pred.numel() else pred.sum() * 0.0
    raise ValueError(f"unknown reconstruction loss '{kind}'. Choose one of: {', '.join(RECONSTRUCTION_LOSSES)}")
