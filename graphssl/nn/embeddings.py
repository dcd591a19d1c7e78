"""Input embeddings: categorical feature columns (atoms, bonds) or dense features to vectors."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from graphssl.core.errors import DataError


class CategoricalEmbedding(nn.Module):
    """Sum of one embedding table per categorical column (OGB's AtomEncoder layout).

    Args:
        dims: number of categories of each column, e.g. ``ATOM_FEATURE_DIMS``.
        out_channels: embedding width.
    """

    def __init__(self, dims: Sequence[int], out_channels: int) -> None:
        super().__init__()
        self.dims = tuple(int(d) for d in dims)
        self.out_channels = out_channels
        self.tables = nn.ModuleList(nn.Embedding(d, out_channels) for d in self.dims)
        for table in self.tables:
            nn.init.xavier_uniform_(table.weight)
        self._limits = torch.tensor(self.dims)  # for the range check; not state (rebuilt from dims)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 1:
            x = x.unsqueeze(-1)
        if x.size(-1) != len(self.dims):
            raise DataError(
                f"expected {len(self.dims)} categorical feature columns, got tensor of shape {tuple(x.shape)}"
            )
        if x.numel():
            low, top = torch.aminmax(x, dim=0)  # one pass over x for both ends of the range check
            bad = (top >= self._limits.to(x.device, non_blocking=True)) | (low < 0)
            if bool(bad.any()):
                col = int(bad.nonzero()[0])
                raise DataError(
                    f"categorical feature column {col} has value {int(top[col])} outside 0..{self.dims[col] - 1}"
                )
        out = self.tables[0](x[:, 0])
        for i in range(1, len(self.tables)):
            # in place: embedding lookups do not need their output for the backward pass, so the
            # sum needs no new [N, out_channels] tensor per column (same values, same order)
            out.add_(self.tables[i](x[:, i]))
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(dims={list(self.dims)}, out_channels={self.out_channels})"


class DenseEmbedding(nn.Module):
    """A linear map for continuous node or edge features."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.lin = nn.Linear(in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 1:
            x = x.unsqueeze(-1)
        return self.lin(x.float())
