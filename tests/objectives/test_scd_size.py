"""SCD on crystals of any size: the clean-structure condition is a mean over atoms, so every
supercell of a crystal gets its unit cell's condition and a loss of the same size."""

from __future__ import annotations

import pytest
import torch
from ase.build import bulk
from torch_geometric.data import Batch

from graphssl.atomistic import from_ase
from graphssl.atomistic.heads import GraphEmbedding
from graphssl.core.config import ModelConfig
from graphssl.core.errors import ConfigError
from graphssl.nn import build_encoder
from graphssl.objectives import SCD

SIZES = (1, 2, 3, 4)  # supercells of 2, 16, 54 and 128 atoms


def _supercells() -> list[Batch]:
    si = bulk("Si", "diamond", a=5.43)
    return [Batch.from_data_list([from_ase(si * (n, n, n), cutoff=5.0)]) for n in SIZES]


@pytest.fixture(scope="module")
def trained() -> SCD:
    """SCD after 20 steps on 8 copies of the 2-atom cell: the conditioning gates are open."""
    torch.manual_seed(0)
    scd = SCD(build_encoder(ModelConfig(backbone="painn", hidden=32, num_layers=2), cutoff=5.0), clean_sigma=0.0)
    unit = from_ase(bulk("Si", "diamond", a=5.43), cutoff=5.0)
    batch = Batch.from_data_list([unit] * 8)
    optimiser = torch.optim.Adam(scd.parameters(), lr=1e-3)
    for _ in range(20):
        optimiser.zero_grad()
        scd(batch).backward()
        optimiser.step()
    return scd.eval()


def test_every_supercell_gets_the_unit_cells_condition(trained):
    with torch.no_grad():
        conditions = [trained.condition(batch) for batch in _supercells()]
    assert conditions[0].abs().max() > 1e-3  # a condition, not zeros
    for condition in conditions[1:]:
        torch.testing.assert_close(condition, conditions[0], atol=1e-4, rtol=1e-4)


def test_the_loss_stays_bounded_across_supercells(trained):
    losses = []
    for batch in _supercells():
        torch.manual_seed(1)
        with torch.no_grad():
            losses.append(trained(batch).item())
    # A sum-pooled condition gave 8e4 at 16 atoms and 3e15 at 128 after the same 20 steps.
    assert max(losses) < 10.0 * max(losses[0], 0.2), losses  # measured: 0.13, then 0.5 to 0.7


def test_graph_embedding_pools_by_mean_unless_told_otherwise():
    s = torch.randn(6, 4)
    data = Batch.from_data_list([from_ase(bulk("Cu", "fcc", a=3.6) * (1, 1, 2)),
                                 from_ase(bulk("Cu", "fcc", a=3.6) * (1, 2, 2))])
    mean, total = GraphEmbedding(4), GraphEmbedding(4, reduce="sum")
    total.load_state_dict(mean.state_dict())
    torch.testing.assert_close(mean(s, data), mean.mlp(torch.stack([s[:2].mean(0), s[2:].mean(0)])))
    torch.testing.assert_close(total(s, data), mean.mlp(torch.stack([s[:2].sum(0), s[2:].sum(0)])))
    with pytest.raises(ConfigError, match="reduce must be 'mean' or 'sum', got 'max'"):
        GraphEmbedding(4, reduce="max")
