"""Batch-norm running statistics: re-estimating them on other data without touching the weights."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch_geometric.data import Batch


def batch_norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every batch-norm layer inside ``module``."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def reestimate_batch_norm(encoder: nn.Module, dataset: Any, device: torch.device | str = "cpu",
                          batch_size: int = 256) -> int:
    """Replace the running statistics of ``encoder``'s batch norms by their average over ``dataset``.

    Only the batch norms run in training mode and no random number is drawn (dropout stays off),
    so a run's random streams do not change; weights are unchanged. Returns the number of layers re-estimated. A pretrained encoder's
    statistics describe its pretraining inputs (masked graphs, another corpus), which need not
    match the graphs it is fine-tuned or probed on.
    """
    norms = batch_norms(encoder)
    if not norms:
        return 0
    was_training = encoder.training
    momenta = [m.momentum for m in norms]
    encoder.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over all batches
        m.train()
    # batches built by hand: a DataLoader draws a seed from the global generator on every pass
    for start in range(0, len(dataset), batch_size):
        batch = Batch.from_data_list([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        encoder(batch.to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    encoder.train(was_training)
    return len(norms)
