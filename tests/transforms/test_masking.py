import pytest
import torch

from graphssl.transforms.masking import incident_edges, sample_node_mask


def test_mask_count_and_partition():
    mask = sample_node_mask(1000, 0.25, replace_rate=0.1, keep_rate=0.1)
    assert mask.masked.numel() == 250
    assert mask.masked.unique().numel() == 250
    assert mask.random.numel() == 25 and mask.unchanged.numel() == 25 and mask.token.numel() == 200
    parts = torch.cat([mask.token, mask.random, mask.unchanged]).sort().values
    assert torch.equal(parts, mask.masked.sort().values)
    assert mask.random_source.numel() == 25 and int(mask.random_source.max()) < 1000


def test_mask_rate_over_many_draws_is_uniform_over_nodes():
    torch.manual_seed(0)
    hits = torch.zeros(40)
    for _ in range(2000):
        hits[sample_node_mask(40, 0.25).masked] += 1
    rate = hits / 2000
    assert rate.mean().item() == pytest.approx(0.25, abs=1e-6)
    assert rate.min().item() > 0.2 and rate.max().item() < 0.3


def test_mask_at_least_one_node_and_validation():
    assert sample_node_mask(3, 0.1).masked.numel() == 1
    assert sample_node_mask(0, 0.5).masked.numel() == 0
    with pytest.raises(ValueError, match="mask_rate"):
        sample_node_mask(10, 0.0)
    with pytest.raises(ValueError, match="replace_rate"):
        sample_node_mask(10, 0.5, replace_rate=0.7, keep_rate=0.5)


def test_incident_edges():
    edge_index = torch.tensor([[0, 1, 1, 2, 3], [1, 0, 2, 1, 3]])
    node = torch.tensor([False, False, True, False])
    assert incident_edges(edge_index, node).tolist() == [False, False, True, True, False]
