"""The plain-PyG baseline of benchmarks/pretrain_overhead.py computes what graphssl's GraphMAE
computes, so the throughput ratio compares the same work."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from graphssl.core.errors import DataError
from graphssl.nn.losses import sce_loss

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "pretrain_overhead.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("pretrain_overhead_bench", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _batch(bench, sizes=(7, 12, 30, 3)) -> Batch:
    rng = np.random.default_rng(1)
    return Batch.from_data_list([bench.molecule_like_graph(n, rng) for n in sizes])


@pytest.mark.parametrize("alpha", [1.0, 2.0, 3.0])
def test_baseline_sce_equals_graphssl_sce(bench, alpha):
    torch.manual_seed(0)
    pred = torch.randn(40, 119, requires_grad=True)
    target = torch.nn.functional.one_hot(torch.randint(0, 119, (40,)), 119).float()
    ours = sce_loss(pred, target, alpha)
    (g_ours,) = torch.autograd.grad(ours, pred)
    plain = bench.sce(pred, target, alpha)
    (g_plain,) = torch.autograd.grad(plain, pred)
    assert torch.allclose(ours, plain, atol=1e-7)
    assert torch.allclose(g_ours, g_plain, atol=1e-7)


def test_baseline_is_the_same_graphmae(bench):
    """Same weights and seed: the same loss and the same gradients, step after step."""
    batch = _batch(bench)
    ours = bench.graphssl_graphmae(hidden=16, layers=3)
    plain = bench.PlainGraphMAE(hidden=16, num_layers=3)
    plain.load_state_dict(bench.PlainGraphMAE.state_from_graphssl(ours.state_dict()), strict=True)
    for seed in range(3):
        torch.manual_seed(seed)
        a = ours(batch)
        torch.manual_seed(seed)
        b = plain(batch.x, batch.edge_index)
        assert torch.allclose(a, b, atol=1e-6), (a, b)
        ours.zero_grad()
        plain.zero_grad()
        a.backward()
        b.backward()
        grads = bench.PlainGraphMAE.state_from_graphssl({k: p.grad for k, p in ours.named_parameters()})
        for name, p in plain.named_parameters():
            assert torch.allclose(grads[name], p.grad, atol=1e-6), name


def test_synthetic_graphs_are_molecule_like(bench):
    rng = np.random.default_rng(0)
    g = bench.molecule_like_graph(2000, rng)
    assert g.num_nodes == 2000
    assert 2.0 < g.num_edges / g.num_nodes < 2.4  # directed edges per node; MOSES has about 2.15
    from graphssl.molecule.features import ATOM_FEATURE_DIMS

    assert bool((g.x >= 0).all()) and bool((g.x < torch.tensor(ATOM_FEATURE_DIMS)).all())


def test_embedding_range_check_still_rejects_negative_values(bench):
    model = bench.graphssl_graphmae(hidden=8, layers=1)
    batch = _batch(bench, (5,))
    batch.x[2, 1] = -1
    with pytest.raises(DataError, match="column 1"):
        model(batch)
