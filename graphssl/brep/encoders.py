"""Input embeddings for B-rep face-adjacency graphs: small CNNs over UV grids.

Both modules read the whole ``Data`` (``reads_data = True``), so :class:`Encoder` hands them
the graphs that :func:`graphssl.brep.adapter.solid_to_data` builds, and any PyG backbone
(gin, gine, gat, ...) runs on their output.

Masked pretraining (GraphMAE, HiGMAE with ``target: auto``) reconstructs what
:meth:`FaceGridEmbedding.reconstruction_target` returns: each masked face's UV grid of
points and normals, ``[F, 6 * g * g]``, with the points outside the trimmed face zeroed as
in the input. Use ``loss: mse`` there. The scaled cosine error (SCE) compares directions
only: ``1 - cos(pred, target)`` is unchanged when a prediction is scaled by any positive
factor, so a face predicted at half its size, or shrunk towards the part's centre, would
score as well as the right one. For geometry the values themselves matter, and MSE scores
them (points live in the unit box of the part, normals are unit vectors, so both channels
have similar ranges).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from graphssl.nn.features import FeatureSpec
from graphssl.core.errors import DataError

__all__ = ["EdgeGridEmbedding", "FaceGridEmbedding", "brep_feature_spec"]

# Kept in step with graphssl.brep.adapter (not imported: that module needs OpenCascade,
# and a trained model must load without it).
NUM_SURFACE_TYPES = 11
NUM_CURVE_TYPES = 9
NUM_CONVEXITY = 3
_LOG_EPS = 1e-6  # areas and lengths of sliver faces can be 0 after normalisation


def _check_grid(name: str, value: Tensor, expected: tuple[int, ...]) -> None:
    if tuple(value.shape[1:]) != expected:
        raise DataError(f"{name} has shape {tuple(value.shape)}, expected [N, {', '.join(map(str, expected))}]; "
                        "was the data set built with a different grid size?")


class FaceGridEmbedding(nn.Module):
    """Face -> vector: a 2D CNN over the face's UV grid, its surface type and log area.

    The CNN sees 7 channels: point xyz and normal, both zeroed where the trimming mask is 0
    (so geometry the face's boundary cuts away cannot leak in), and the mask itself.

    Args:
        out_channels: width of the face embeddings.
        grid: samples per side of the UV grid (the data set's ``face_grid`` is ``[F, 7, g, g]``).
        channels: width of the CNN's first layer (the second has twice as many).
    """

    reads_data = True

    def __init__(self, out_channels: int, grid: int = 10, channels: int = 16) -> None:
        super().__init__()
        self.out_channels, self.grid = out_channels, grid
        self.target_channels = 6 * grid * grid
        self.cnn = nn.Sequential(
            nn.Conv2d(7, channels, 3, padding=1), nn.GELU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.GELU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.surface = nn.Embedding(NUM_SURFACE_TYPES, out_channels)
        self.area = nn.Linear(1, out_channels)
        self.mix = nn.Linear(2 * channels, out_channels)

    @staticmethod
    def _masked(grid: Tensor) -> Tensor:
        mask = grid[:, 6:7]
        return torch.cat([grid[:, :6] * mask, mask], dim=1)

    def forward(self, data: Data) -> Tensor:
        _check_grid("face_grid", data.face_grid, (7, self.grid, self.grid))
        h = self.mix(self.cnn(self._masked(data.face_grid.float())))
        log_area = torch.log(data.face_area.float().view(-1, 1) + _LOG_EPS)
        return h + self.surface(data.x.view(-1).long()) + self.area(log_area)

    def reconstruction_target(self, data: Data) -> Tensor:
        """Masked points and normals of each face, flattened: ``[F, 6 * g * g]``."""
        _check_grid("face_grid", data.face_grid, (7, self.grid, self.grid))
        return self._masked(data.face_grid.float())[:, :6].flatten(1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(out_channels={self.out_channels}, grid={self.grid})"


class EdgeGridEmbedding(nn.Module):
    """Directed edge -> vector: a 1D CNN over the curve's U grid (points, tangents), plus
    embeddings of curve type and convexity and a projection of the log length.

    Args:
        out_channels: width of the edge embeddings.
        grid: samples along the curve (the data set's ``edge_grid`` is ``[2E, 6, g]``).
        channels: width of the CNN's first layer (the second has twice as many).
    """

    reads_data = True

    def __init__(self, out_channels: int, grid: int = 10, channels: int = 16) -> None:
        super().__init__()
        self.out_channels, self.grid = out_channels, grid
        self.cnn = nn.Sequential(
            nn.Conv1d(6, channels, 3, padding=1), nn.GELU(),
            nn.Conv1d(channels, 2 * channels, 3, padding=1), nn.GELU(),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(),
        )
        self.curve = nn.Embedding(NUM_CURVE_TYPES, out_channels)
        self.convexity = nn.Embedding(NUM_CONVEXITY, out_channels)
        self.length = nn.Linear(1, out_channels)
        self.mix = nn.Linear(2 * channels, out_channels)

    def forward(self, data: Data) -> Tensor:
        grid = data.edge_grid.float()
        _check_grid("edge_grid", grid, (6, self.grid))
        attr = data.edge_attr.long()
        log_length = torch.log(data.edge_length.float().view(-1, 1) + _LOG_EPS)
        return (self.mix(self.cnn(grid)) + self.curve(attr[:, 0]) + self.convexity(attr[:, 1])
                + self.length(log_length))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(out_channels={self.out_channels}, grid={self.grid})"


def brep_feature_spec(grid: int = 10) -> FeatureSpec:
    """Embeddings for B-rep graphs sampled with ``grid`` points per side, for :func:`build_encoder`."""
    return FeatureSpec(node_factory=partial(FaceGridEmbedding, grid=grid),
                       edge_factory=partial(EdgeGridEmbedding, grid=grid))
