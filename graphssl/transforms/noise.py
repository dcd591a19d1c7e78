"""Coordinate noise for denoising objectives and the noisy-nodes auxiliary loss."""

from __future__ import annotations

import copy

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import scatter


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
