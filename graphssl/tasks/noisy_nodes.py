"""Noisy nodes (Godwin et al. 2022): an auxiliary denoising loss while fine-tuning.

Any task on a geometric encoder can add it (``finetune.noisy_nodes_weight > 0``; SCD fine-tunes
with sigma 0.005 A, weight 0.1): the positions are corrupted with Gaussian noise and a vector
head predicts the noise per atom from the encoder's features.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from graphssl.atomistic.heads import VectorHead
from graphssl.core.config import FinetuneConfig
from graphssl.core.errors import ConfigError
from graphssl.nn.geometric import GeometricEncoder
from graphssl.transforms.noise import coordinate_noise, displaced, remove_mean


def noisy_nodes_batch(batch: Data, sigma: float) -> tuple[Data, Tensor]:
    """The batch with Gaussian coordinate noise and the target ``noise / sigma`` ``[N, 3]``.

    The noise of each molecule (non-periodic structure) is centre-of-mass free, so the target
    has zero mean per molecule and unit variance per component.
    """
    if sigma <= 0:
        raise ConfigError(f"finetune.noisy_nodes_sigma must be positive (Angstrom), got {sigma}")
    noise = coordinate_noise(batch, sigma)
    return displaced(batch, noise.detach()), noise / sigma


def noisy_nodes_loss(encoder: GeometricEncoder, head: VectorHead, batch: Data, sigma: float) -> Tensor:
    """Corrupt the positions, predict the noise per atom with ``head`` on the encoder's features, MSE.

    A separate pass from the task's own, so properties (and forces) are read from the clean
    structure. The prediction is made translation free like the target.
    """
    noisy, target = noisy_nodes_batch(batch, sigma)
    s, v = encoder.features(noisy)
    return F.mse_loss(remove_mean(head(s, v, noisy), noisy), target)


def noisy_nodes_head(encoder: nn.Module, config: FinetuneConfig) -> VectorHead | None:
    """The vector head of the noisy-nodes loss, or None when ``finetune.noisy_nodes_weight`` is 0."""
    if config.noisy_nodes_weight < 0:
        raise ConfigError(f"finetune.noisy_nodes_weight must be >= 0, got {config.noisy_nodes_weight}")
    if config.noisy_nodes_weight == 0:
        return None
    if not isinstance(encoder, GeometricEncoder):
        raise ConfigError("finetune.noisy_nodes_weight > 0 needs a geometric backbone (schnet, painn, et): it "
                          f"denoises 3D coordinates; got a {type(encoder).__name__}. Set it to 0")
    if config.mode != "full":
        raise ConfigError("noisy nodes regularises the encoder, which linear probing freezes; set "
                          "finetune.noisy_nodes_weight=0 or finetune.mode=full")
    if config.noisy_nodes_sigma <= 0:
        raise ConfigError(f"finetune.noisy_nodes_sigma must be positive (Angstrom), got {config.noisy_nodes_sigma}")
    return VectorHead.for_backbone(encoder.backbone)
