import copy

import pytest
import torch
from ase.build import bulk, molecule
from torch_geometric.data import Batch

from graphssl.atomistic import from_ase
from graphssl.core.config import ModelConfig
from graphssl.nn import build_encoder
from graphssl.core.errors import ConfigError
from graphssl.objectives import SCD, CoordinateDenoising, build_objective
from graphssl.objectives.denoise import RunningStandardiser, coordinate_noise, remove_mean

BACKBONES = ["schnet", "painn", "et"]


def _batch():
    crystal = from_ase(bulk("Cu", "fcc", a=3.6, cubic=True), cutoff=4.0)
    mol = from_ase(molecule("CH3CH2OH"), cutoff=4.0)
    return Batch.from_data_list([crystal, mol])


def _backbone(name):
    return build_encoder(ModelConfig(backbone=name, hidden=32, num_layers=2), cutoff=4.0)


def test_noise_is_centred_for_molecules_only():
    torch.manual_seed(0)
    batch = _batch()
    noise = coordinate_noise(batch, 0.1)
    molecule_noise = noise[batch.batch == 1]
    crystal_noise = noise[batch.batch == 0]
    assert torch.allclose(molecule_noise.mean(0), torch.zeros(3), atol=1e-6)
    assert crystal_noise.mean(0).abs().max() > 1e-4  # periodic cells keep their raw noise
    assert noise.std().item() == pytest.approx(0.1, rel=0.5)


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("objective", ["denoise", "scd"])
def test_losses_train_every_backbone(name, objective):
    torch.manual_seed(0)
    model = build_objective(objective, _backbone(name), {"sigma": 0.1})
    loss = model(_batch())
    assert torch.isfinite(loss)
    loss.backward()
    missing = {n.split(".")[-2] if "norm" in n else n for n, p in model.encoder.named_parameters() if p.grad is None}
    # plain denoising never conditions, so only the (unused) adaptive norms may lack gradients
    assert all("conditioning" in n or n in {"gate", "modulation"} for n in missing), missing
    if objective == "scd":
        assert not missing


@pytest.mark.parametrize("name", BACKBONES)
def test_scd_conditions_every_layer_of_each_backbone(name):
    """Opening the gates makes the condition change the denoising pass's features, in
    every backbone; with the null condition the network equals its unconditioned use."""
    torch.manual_seed(0)
    scd = SCD(_backbone(name))
    batch = _batch()
    norms = [m for m in scd.encoder.modules() if m.__class__.__name__ == "AdaptiveNorm"]
    assert len(norms) >= 2  # one per interaction layer
    for norm in norms:
        torch.nn.init.normal_(norm.gate.weight, std=0.5)
    condition = torch.randn(2, 32)
    s_cond, _ = scd.encoder(batch, condition=condition)
    s_null, _ = scd.encoder(batch, condition=scd.null(2))
    assert not torch.allclose(s_cond, s_null)
    s_unconditioned, _ = scd.unconditioned(batch)
    assert torch.allclose(s_unconditioned, s_null)


def test_scd_with_condition_always_dropped_uses_the_null_token():
    torch.manual_seed(0)
    scd = SCD(_backbone("painn"), drop_prob=1.0)
    for norm in (m for m in scd.encoder.modules() if m.__class__.__name__ == "AdaptiveNorm"):
        torch.nn.init.normal_(norm.gate.weight, std=0.5)
    batch = _batch()
    torch.manual_seed(1)
    loss_dropped = scd(batch)
    # the same step by hand: clean pass, condition replaced by the null token, noisy pass
    reference = copy.deepcopy(scd)
    torch.manual_seed(1)
    reference.condition(batch)  # consumes the same random numbers as SCD's first pass
    reference.null.drop(torch.zeros(2, 32), 1.0)
    noise = coordinate_noise(batch, reference.sigma)
    noisy = copy.copy(batch)
    noisy.pos = batch.pos + noise
    s, v = reference.encoder(noisy, condition=reference.null(2))
    target = reference.standardise(noise / reference.sigma)
    expected = torch.nn.functional.mse_loss(remove_mean(reference.head(s, v, noisy), noisy), target)
    assert loss_dropped.item() == pytest.approx(expected.item(), rel=1e-5)


def test_running_standardiser():
    norm = RunningStandardiser(momentum=0.5)
    x = torch.tensor([1.0, 3.0])
    assert torch.allclose(norm(x), torch.tensor([-1.0, 1.0]))  # first batch sets the statistics
    norm.eval()
    assert torch.allclose(norm(torch.tensor([2.0])), torch.tensor([0.0]))


def test_denoising_needs_a_geometric_backbone():
    encoder = build_encoder(ModelConfig(backbone="gin", hidden=8, num_layers=1))
    with pytest.raises(ConfigError, match="geometric backbone"):
        CoordinateDenoising(encoder)
    with pytest.raises(ConfigError, match="drop_prob"):
        SCD(_backbone("schnet"), drop_prob=1.5)


def _standardise_on_rank(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    norm = RunningStandardiser().train()
    target = torch.tensor([1.0, 2.0, 3.0]) if rank == 0 else torch.tensor([10.0, 20.0, 30.0, 40.0, 50.0])
    norm(target)
    torch.save({"mean": norm.mean.clone(), "var": norm.var.clone()}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_running_statistics_are_those_of_the_global_batch_across_processes(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_standardise_on_rank, args=(port, str(tmp_path)), nprocs=2, join=True)
    union = torch.tensor([1.0, 2.0, 3.0, 10.0, 20.0, 30.0, 40.0, 50.0])
    for rank in range(2):
        stats = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert torch.allclose(stats["mean"], union.mean()), rank
        assert torch.allclose(stats["var"], union.var(unbiased=False)), rank
