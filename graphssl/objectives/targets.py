"""What masked-feature objectives reconstruct or classify, from ``data.x``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from graphssl.nn.embeddings import CategoricalEmbedding
from graphssl.nn.encoder import Encoder
from graphssl.core.errors import ConfigError

TARGETS = ("auto", "atom_type", "features", "embedding")


def resolve_target(encoder: Encoder, target: str) -> tuple[str, int]:
    """Pick the reconstruction target and its width for this encoder's inputs.

    ``atom_type`` is the first categorical column (the element, 119 classes for molecules);
    ``features`` is all of ``x``: one-hot per categorical column, or the dense vector.
    """
    if target not in TARGETS:
        raise ConfigError(f"unknown target '{target}'. Choose one of: {', '.join(TARGETS)}")
    emb = encoder.node_embedding
    categorical = isinstance(emb, CategoricalEmbedding)
    custom = hasattr(emb, "reconstruction_target")
    if target == "auto":
        target = "embedding" if custom else "atom_type" if categorical else "features"
    if target == "embedding":
        # the input module says what to reconstruct (e.g. a B-rep face's UV-grid points and normals)
        if not custom:
            raise ConfigError("target 'embedding' needs a node embedding with reconstruction_target(data)")
        return target, int(emb.target_channels)
    if target == "atom_type":
        if not categorical:
            raise ConfigError("target 'atom_type' needs categorical node features; use target='features'")
        return target, emb.dims[0]
    if categorical:
        return target, sum(emb.dims)
    width = getattr(emb, "in_channels", None)
    if width is None:
        raise ConfigError("cannot tell the node feature width of this encoder; use a DenseEmbedding")
    return target, int(width)


def target_tensor(data, target: str, encoder: Encoder, index: Tensor | None = None) -> Tensor:
    """The float target matrix for ``target`` (see :func:`resolve_target`); with ``index``,
    only those nodes' rows (the same values as ``target_tensor(...)[index]``, without
    building the rows of the other nodes)."""
    emb = encoder.node_embedding
    if target == "embedding":
        out = emb.reconstruction_target(data)
        return out if index is None else out[index]
    x = data.x if index is None else data.x[index]
    if target == "atom_type":
        return F.one_hot(x[:, 0].long(), emb.dims[0]).float()
    if isinstance(emb, CategoricalEmbedding):
        return torch.cat([F.one_hot(x[:, i].long(), d).float() for i, d in enumerate(emb.dims)], dim=-1)
    return x.float()
