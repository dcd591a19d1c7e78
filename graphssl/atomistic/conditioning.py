"""SCD's conditioning: gated adaptive layer norm on per-atom scalars, and the null token.

The backbones know nothing of it. :class:`LayerConditioning` is installed from outside as a
backbone's layer hook (:meth:`~graphssl.nn.geometric.GeometricBackbone.set_layer_hook`), which
every geometric backbone calls on its scalars after each interaction block; so
self-conditioned denoising wraps any backbone, and a backbone without it (plain denoising,
fine-tuning from scratch) carries no conditioning parameters. In every layer the per-graph
condition (the clean structure's embedding) sets a per-channel scale, shift and gate::

    s <- s + tanh(gate) * ((1 + scale) * LN(s) + shift - s)

The gate's linear map starts at zero (as DiT's adaLN-Zero), so a fresh model ignores the
condition, and ``condition=None`` is exactly the identity: "unconditioned" and
"conditioned through a closed gate" give the same numbers.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch_geometric.data import Data

from graphssl.core.errors import ConfigError
from graphssl.nn.geometric import GeometricBackbone


def _graph_index(batch: Tensor | None, num_atoms: int, device: torch.device) -> Tensor:
    return batch if batch is not None else torch.zeros(num_atoms, dtype=torch.long, device=device)


class AdaptiveNorm(nn.Module):
    """Gated adaptive layer norm of per-atom scalars ``s`` ``[N, hidden]`` by a per-graph
    condition ``[B, cond_dim]`` (``batch`` maps atoms to graphs; None means one graph)."""

    def __init__(self, hidden: int, cond_dim: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.cond_dim = cond_dim
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)
        self.modulation = nn.Linear(cond_dim, 2 * hidden)  # scale, shift
        self.gate = nn.Linear(cond_dim, hidden)
        self.reset_gate()

    def reset_gate(self) -> None:
        """Close the gate: the layer ignores any condition until training opens it."""
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def forward(self, s: Tensor, condition: Tensor | None = None, batch: Tensor | None = None) -> Tensor:
        if condition is None:
            return s
        if condition.dim() == 1:
            condition = condition.unsqueeze(0)
        if condition.size(-1) != self.cond_dim:
            raise ConfigError(
                f"condition has {condition.size(-1)} channels but AdaptiveNorm expects cond_dim={self.cond_dim}; "
                "pass a [num_graphs, cond_dim] tensor (e.g. from GraphEmbedding) or None"
            )
        # Modulate per graph first, then broadcast: B rows of matmul instead of N.
        cond = F.silu(condition)
        scale, shift = self.modulation(cond).chunk(2, dim=-1)
        gate = torch.tanh(self.gate(cond))
        index = _graph_index(batch, s.size(0), s.device)
        scale, shift, gate = scale[index], shift[index], gate[index]
        return s + gate * ((1 + scale) * self.norm(s) + shift - s)

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}, cond_dim={self.cond_dim}"


class NullCondition(nn.Module):
    """A learned null token that stands in for a missing condition (classifier-free
    guidance style); SCD drops the condition with probability 0.2 during pretraining and
    fine-tunes with the null token only."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.token = nn.Parameter(torch.randn(hidden) * 0.02)

    def forward(self, num_graphs: int) -> Tensor:
        """The null condition for ``num_graphs`` graphs, ``[num_graphs, hidden]``."""
        return self.token.unsqueeze(0).expand(num_graphs, -1)

    def drop(self, condition: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
        """Replace each graph's row of ``condition`` by the null token with probability ``p``."""
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"drop probability must lie in [0, 1], got {p}")
        if p == 0.0:
            return condition
        device = generator.device if generator is not None else condition.device
        mask = (torch.rand(condition.size(0), generator=generator, device=device) < p).to(condition.device)
        return torch.where(mask.unsqueeze(-1), self.token.to(condition.dtype).expand_as(condition), condition)

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}"


class LayerConditioning(nn.Module):
    """A plain geometric backbone's conditioning, installed as its layer hook: one
    :class:`AdaptiveNorm` per interaction block and the learned null token.

    Inside ``with conditioning.given(condition):`` every layer is modulated by
    ``condition`` ``[num_graphs, cond_dim]``; elsewhere (SCD's clean pass, fine-tuning,
    inference) by the null token, as SCD fine-tunes.

    Args:
        hidden: the backbone's width.
        num_layers: the backbone's number of interaction blocks.
        cond_dim: width of the condition (default ``hidden``).
    """

    def __init__(self, hidden: int, num_layers: int, cond_dim: int | None = None) -> None:
        super().__init__()
        cond_dim = cond_dim or hidden
        self.norms = nn.ModuleList(AdaptiveNorm(hidden, cond_dim) for _ in range(num_layers))
        self.null = NullCondition(cond_dim)
        self._condition: Tensor | None = None  # set only inside given()

    @classmethod
    def install(cls, backbone: GeometricBackbone, cond_dim: int | None = None) -> LayerConditioning:
        """A new conditioning sized for ``backbone``, installed as its layer hook."""
        if not isinstance(backbone, GeometricBackbone):
            raise ConfigError(f"SCD's conditioning wraps a geometric backbone (schnet, painn, et), "
                              f"got {type(backbone).__name__}")
        conditioning = cls(backbone.hidden, backbone.num_layers, cond_dim)
        backbone.set_layer_hook(conditioning)
        return conditioning

    @contextmanager
    def given(self, condition: Tensor) -> Iterator[None]:
        """Condition the backbone's passes inside the block on ``condition`` ``[num_graphs, cond_dim]``."""
        previous, self._condition = self._condition, condition
        try:
            yield
        finally:
            self._condition = previous

    def forward(self, layer: int, s: Tensor, data: Data) -> Tensor:
        condition = self._condition
        if condition is None:
            num_graphs = int(data.num_graphs) if hasattr(data, "num_graphs") else 1
            condition = self.null(num_graphs)
        return self.norms[layer](s, condition, getattr(data, "batch", None))

    def extra_repr(self) -> str:
        return f"layers={len(self.norms)}, cond_dim={self.null.hidden}"
