"""Coordinate denoising (Zaidi et al. 2022): corrupt atom positions with Gaussian noise and
predict the noise per atom with an equivariant vector head, around any geometric backbone
(SchNet, PaiNN, ET). Self-conditioned denoising builds on it in :mod:`graphssl.objectives.scd`.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from graphssl.atomistic.heads import VectorHead
from graphssl.core.errors import ConfigError
from graphssl.nn.geometric import GeometricEncoder
from graphssl.objectives.base import GEOMETRIC, Objective, require_encoder
from graphssl.objectives.registry import OBJECTIVES
from graphssl.transforms.noise import coordinate_noise, displaced, remove_mean

__all__ = ["CoordinateDenoising", "RunningStandardiser"]


class RunningStandardiser(nn.Module):
    """Running mean and standard deviation of a target (one scalar for all components),
    updated in training mode; used to normalise denoising targets."""

    def __init__(self, momentum: float = 0.01) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("var", torch.ones(()))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    def forward(self, target: Tensor) -> Tensor:
        if self.training and target.numel():
            with torch.no_grad():
                mean, var = target.mean(), target.var(unbiased=False)
                if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
                    # every process normalises with the statistics of the whole global batch, so
                    # the replicas' running statistics never drift apart
                    count = torch.tensor(float(target.numel()), device=target.device, dtype=torch.float64)
                    stats = torch.stack([mean.double() * count, (var.double() + mean.double() ** 2) * count, count])
                    dist.all_reduce(stats)
                    mean64 = stats[0] / stats[2]
                    mean, var = mean64.to(mean.dtype), (stats[1] / stats[2] - mean64 ** 2).clamp(min=0).to(var.dtype)
                if int(self.seen) == 0:
                    self.mean.copy_(mean)
                    self.var.copy_(var)
                else:
                    self.mean.lerp_(mean, self.momentum)
                    self.var.lerp_(var, self.momentum)
                self.seen += 1
        return (target - self.mean) / self.var.clamp(min=1e-12).sqrt()



@OBJECTIVES.register("denoise")
class CoordinateDenoising(Objective):
    """Plain coordinate denoising: add noise, predict it per atom, mean squared error.

    Every parameter gets a gradient in every step: the backbone is plain (no conditioning).

    Args:
        encoder: a geometric encoder (``build_encoder`` with schnet, painn or et).
        sigma: noise standard deviation in Angstrom (0.04 is common).
    """

    def __init__(self, encoder: GeometricEncoder, sigma: float = 0.04) -> None:
        require_encoder("coordinate denoising", encoder, GeometricEncoder, GEOMETRIC)
        super().__init__(encoder)
        if sigma <= 0:
            raise ConfigError(f"sigma must be positive, got {sigma}")
        self.sigma = sigma
        self.head = VectorHead.for_backbone(encoder.backbone)

    def forward(self, data: Data) -> Tensor:
        noise = coordinate_noise(data, self.sigma)
        noisy = displaced(data, noise)
        s, v = self.encoder.features(noisy)
        # the target is centre-of-mass free, so the prediction is made so too
        return F.mse_loss(remove_mean(self.head(s, v, noisy), noisy), noise / self.sigma)
