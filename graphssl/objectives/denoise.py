"""Coordinate denoising (Zaidi et al. 2022) and self-conditioned denoising (SCD).

Both corrupt atom positions with Gaussian noise and predict the noise per atom with an
equivariant vector head; both wrap any :class:`GeometricBackbone` (SchNet, PaiNN, ET).
"""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from graphssl.atomistic.backbones.base import GeometricBackbone
from graphssl.atomistic.conditioning import NullCondition
from graphssl.atomistic.heads import GraphEmbedding, VectorHead
from graphssl.core.errors import ConfigError


def remove_mean(vectors: Tensor, data: Data) -> Tensor:
    """Subtract each non-periodic structure's mean vector (periodic ones are left as they are)."""
    batch = getattr(data, "batch", None)
    index = batch if batch is not None else torch.zeros(vectors.size(0), dtype=torch.long, device=vectors.device)
    num_graphs = int(index.max()) + 1 if index.numel() else 0
    pbc = getattr(data, "pbc", None)
    periodic = (pbc.view(-1, 3).any(-1) if pbc is not None
                else torch.zeros(num_graphs, dtype=torch.bool, device=vectors.device))
    mean = scatter(vectors, index, dim=0, dim_size=num_graphs, reduce="mean")
    mean = torch.where(periodic.unsqueeze(-1), torch.zeros_like(mean), mean)
    return vectors - mean[index]


def coordinate_noise(data: Data, sigma: float, centre: bool = True) -> Tensor:
    """Gaussian noise ``[N, 3]`` of standard deviation ``sigma`` (Angstrom).

    With ``centre``, each non-periodic structure's noise has zero mean (centre-of-mass
    free), so the target holds no global translation the model could not see.
    """
    noise = torch.randn_like(data.pos) * sigma
    return remove_mean(noise, data) if centre else noise


def displaced(data: Data, displacement: Tensor) -> Data:
    """A shallow copy of ``data`` with positions moved by ``displacement`` (edges kept)."""
    out = copy.copy(data)
    out.pos = data.pos + displacement
    return out


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


class CoordinateDenoising(nn.Module):
    """Plain coordinate denoising: add noise, predict it per atom, mean squared error.

    Args:
        encoder: any geometric backbone.
        sigma: noise standard deviation in Angstrom (0.04 is common).
    """

    # the backbone carries SCD's conditioning layers, which plain denoising never uses; the
    # distributed wrapper must look for parameters without gradients
    find_unused_parameters = True

    def __init__(self, encoder: GeometricBackbone, sigma: float = 0.04) -> None:
        super().__init__()
        if sigma <= 0:
            raise ConfigError(f"sigma must be positive, got {sigma}")
        _check_backbone(encoder)
        self.encoder = encoder
        self.sigma = sigma
        self.head = VectorHead.for_backbone(encoder)

    def forward(self, data: Data) -> Tensor:
        noise = coordinate_noise(data, self.sigma)
        noisy = displaced(data, noise)
        s, v = self.encoder(noisy)
        # the target is centre-of-mass free, so the prediction is made so too
        return F.mse_loss(remove_mean(self.head(s, v, noisy), noisy), noise / self.sigma)


class SCD(nn.Module):
    """Self-conditioned denoising (Perez and Gomez-Bombarelli).

    Two passes of the same backbone per step, with gradients through both:

    1. the clean structure (plus tiny regularisation noise ``clean_sigma``) gives a
       per-structure embedding (sum pool + MLP);
    2. the corrupted structure (centre-of-mass-free noise ``sigma``) goes through the
       backbone conditioned on that embedding in every layer (gated adaptive norm); the
       condition is replaced by a learned null token with probability ``drop_prob``.

    The noise is predicted by an equivariant vector head; targets are standardised by
    running statistics; mean squared error. Unconditioned use (fine-tuning, inference)
    passes the null token: :meth:`unconditioned`.
    """

    def __init__(self, encoder: GeometricBackbone, sigma: float = 0.04, clean_sigma: float = 0.005,
                 drop_prob: float = 0.2) -> None:
        super().__init__()
        if sigma <= 0 or clean_sigma < 0:
            raise ConfigError(f"sigma must be positive and clean_sigma non-negative, got {sigma}, {clean_sigma}")
        if not 0.0 <= drop_prob <= 1.0:
            raise ConfigError(f"drop_prob must lie in [0, 1], got {drop_prob}")
        _check_backbone(encoder)
        self.encoder = encoder
        self.sigma, self.clean_sigma, self.drop_prob = sigma, clean_sigma, drop_prob
        self.embed = GraphEmbedding(encoder.hidden)
        self.null = NullCondition(encoder.hidden)
        self.head = VectorHead.for_backbone(encoder)
        self.standardise = RunningStandardiser()

    @staticmethod
    def _num_graphs(data: Data) -> int:
        return int(data.num_graphs) if hasattr(data, "num_graphs") else 1

    def unconditioned(self, data: Data) -> tuple[Tensor, Tensor | None]:
        """The backbone's features with the null condition (how fine-tuning uses it)."""
        return self.encoder(data, condition=self.null(self._num_graphs(data)))

    def condition(self, data: Data) -> Tensor:
        """The clean-structure embedding ``[B, hidden]`` (pass 1)."""
        clean = displaced(data, coordinate_noise(data, self.clean_sigma)) if self.clean_sigma else data
        s, _ = self.unconditioned(clean)
        return self.embed(s, clean)

    def forward(self, data: Data) -> Tensor:
        condition = self.condition(data)
        if self.training:
            condition = self.null.drop(condition, self.drop_prob)
        noise = coordinate_noise(data, self.sigma)
        noisy = displaced(data, noise)
        s, v = self.encoder(noisy, condition=condition)
        target = self.standardise(noise / self.sigma)
        return F.mse_loss(remove_mean(self.head(s, v, noisy), noisy), target)


def _check_backbone(encoder: nn.Module) -> None:
    if not isinstance(encoder, GeometricBackbone):
        raise ConfigError(
            f"denoising objectives need a geometric backbone (schnet, painn, et), got {type(encoder).__name__}; "
            "set model.backbone to one of them"
        )
