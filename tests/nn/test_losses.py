import math

import pytest
import torch

from graphssl.nn.losses import masked_bce_with_logits, masked_mse, sce_loss


def test_sce_hand_computed():
    pred = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    target = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    # cosines: 1, 1/sqrt(2), 0
    errors = torch.tensor([0.0, 1 - 1 / math.sqrt(2), 1.0])
    assert sce_loss(pred, target, alpha=1).item() == pytest.approx(errors.mean().item(), abs=1e-6)
    assert sce_loss(pred, target, alpha=3).item() == pytest.approx(errors.pow(3).mean().item(), abs=1e-6)


def test_sce_is_scale_invariant_and_validates():
    pred, target = torch.randn(5, 4), torch.randn(5, 4)
    assert sce_loss(3.0 * pred, target).item() == pytest.approx(sce_loss(pred, target).item(), abs=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        sce_loss(pred, target, alpha=0.5)
    with pytest.raises(ValueError, match="shapes"):
        sce_loss(pred, target[:, :3])


def test_masked_losses_ignore_missing_labels():
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    y = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor([0.0, 1.0, -1.0]), torch.tensor([1.0, 0.0, 1.0]))
    assert masked_bce_with_logits(logits, y).item() == pytest.approx(expected.item())
    pred = torch.tensor([[1.0], [5.0]])
    assert masked_mse(pred, torch.tensor([[3.0], [float("nan")]])).item() == pytest.approx(4.0)
