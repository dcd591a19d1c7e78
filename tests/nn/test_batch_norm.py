"""Re-estimating batch-norm statistics: exact averages over the data, weights and random state untouched."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.data import Data

from graphssl.nn.batch_norm import batch_norms, reestimate_batch_norm


class Tiny(nn.Module):
    """x -> BatchNorm -> Dropout -> Linear: enough to check what runs in which mode."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(3)
        self.drop = nn.Dropout(0.5)
        self.lin = nn.Linear(3, 2)

    def forward(self, data: Data) -> torch.Tensor:
        return self.lin(self.drop(self.norm(data.x)))


def test_statistics_become_the_averages_over_the_data_and_nothing_else_changes():
    torch.manual_seed(0)
    graphs = [Data(x=torch.randn(n, 3) * 2 + 5, num_nodes=n) for n in (4, 6, 5, 7)]
    model = Tiny()
    model.norm.running_mean.fill_(-3.0)  # statistics of some other data
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    model.train()
    state = torch.get_rng_state()
    assert reestimate_batch_norm(model, graphs, batch_size=2) == 1
    assert torch.equal(torch.get_rng_state(), state)  # dropout stayed off: no random number drawn
    assert model.training and model.drop.training  # modes restored
    # two batches of 10 and 12 nodes: the running mean is the average of the two batch means
    first, second = torch.cat([g.x for g in graphs[:2]]), torch.cat([g.x for g in graphs[2:]])
    torch.testing.assert_close(model.norm.running_mean, (first.mean(0) + second.mean(0)) / 2)
    torch.testing.assert_close(model.norm.running_var, (first.var(0) + second.var(0)) / 2)
    assert model.norm.momentum == 0.1
    for key, value in weights.items():
        assert torch.equal(model.state_dict()[key], value), key


def test_a_module_without_batch_norm_is_left_alone():
    model = nn.Sequential(nn.Linear(3, 3))
    assert batch_norms(model) == [] and reestimate_batch_norm(model, []) == 0
