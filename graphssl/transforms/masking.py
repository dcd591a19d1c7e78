"""Random node masks for masked-autoencoding objectives.

Masks are sampled on the batch, on the batch's device, once per optimisation step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class NodeMask:
    """A sampled node mask and the BERT-style split of the masked nodes.

    Attributes:
        masked: indices of all masked nodes (the loss is computed on these).
        token: masked nodes whose input becomes the learned [MASK] token.
        random: masked nodes whose input is replaced by another node's input.
        random_source: for each node in ``random``, the node whose input it receives.
        unchanged: masked nodes that keep their own input.
    """

    masked: Tensor
    token: Tensor
    random: Tensor
    random_source: Tensor
    unchanged: Tensor

    def boolean(self, num_nodes: int) -> Tensor:
        out = torch.zeros(num_nodes, dtype=torch.bool, device=self.masked.device)
        out[self.masked] = True
        return out


def sample_node_mask(
    num_nodes: int,
    mask_rate: float,
    replace_rate: float = 0.0,
    keep_rate: float = 0.0,
    *,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> NodeMask:
    """Mask ``round(mask_rate * num_nodes)`` nodes (at least one when any node exists).

    Of the masked nodes, a share ``replace_rate`` receive a random node's input, a share
    ``keep_rate`` keep their input, and the rest get the mask token.
    """
    if not 0.0 < mask_rate <= 1.0:
        raise ValueError(f"mask_rate must be in (0, 1], got {mask_rate}")
    if replace_rate < 0 or keep_rate < 0 or replace_rate + keep_rate > 1.0:
        raise ValueError(
            f"replace_rate ({replace_rate}) and keep_rate ({keep_rate}) must be >= 0 and sum to at most 1"
        )
    gen_device = generator.device if generator is not None else device
    perm = torch.randperm(num_nodes, device=gen_device, generator=generator)
    num_mask = min(num_nodes, max(1, int(round(mask_rate * num_nodes)))) if num_nodes else 0
    masked = perm[:num_mask]
    num_random = int(round(replace_rate * num_mask))
    num_keep = int(round(keep_rate * num_mask))
    num_random = min(num_random, num_mask)
    num_keep = min(num_keep, num_mask - num_random)
    order = masked[torch.randperm(num_mask, device=gen_device, generator=generator)]
    random = order[:num_random]
    unchanged = order[num_random : num_random + num_keep]
    token = order[num_random + num_keep :]
    source = torch.randint(0, max(num_nodes, 1), (num_random,), device=gen_device, generator=generator)
    out = NodeMask(masked, token, random, source, unchanged)
    if device is not None and gen_device != device:
        out = NodeMask(*(t.to(device) for t in (masked, token, random, source, unchanged)))
    return out


def incident_edges(edge_index: Tensor, node_mask: Tensor) -> Tensor:
    """Boolean mask of the edges with at least one endpoint in ``node_mask`` (boolean per node)."""
    return node_mask[edge_index[0]] | node_mask[edge_index[1]]
