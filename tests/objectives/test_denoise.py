import copy

import pytest
import torch
from ase.build import bulk, molecule
from torch_geometric.data import Batch

from graphssl.atomistic import from_ase
from graphssl.atomistic.conditioning import AdaptiveNorm, LayerConditioning
from graphssl.core.config import ModelConfig
from graphssl.core.errors import ConfigError
from graphssl.molecule.features import molecule_feature_spec
from graphssl.nn import GeometricEncoder, build_encoder
from graphssl.objectives import SCD, CoordinateDenoising, build_objective
from graphssl.objectives.denoise import RunningStandardiser
from graphssl.transforms.noise import coordinate_noise, remove_mean

BACKBONES = ["schnet", "painn", "et"]


def _batch():
    crystal = from_ase(bulk("Cu", "fcc", a=3.6, cubic=True), cutoff=4.0)
    mol = from_ase(molecule("CH3CH2OH"), cutoff=4.0)
    return Batch.from_data_list([crystal, mol])


def _encoder(name):
    return build_encoder(ModelConfig(backbone=name, hidden=32, num_layers=2), cutoff=4.0)


def _open_gates(module, std=0.5):
    for norm in (m for m in module.modules() if isinstance(m, AdaptiveNorm)):
        torch.nn.init.normal_(norm.gate.weight, std=std)


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
    model = build_objective(objective, _encoder(name), {"sigma": 0.1})
    loss = model(_batch())
    assert torch.isfinite(loss)
    loss.backward()
    # the backbones are plain: every parameter gets a gradient, and none is declared unused
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    assert model.unused_parameters() == []
    conditioning = [m for m in model.modules() if isinstance(m, AdaptiveNorm)]
    assert len(conditioning) == (2 if objective == "scd" else 0)  # only SCD conditions, once per layer


@pytest.mark.parametrize("name", BACKBONES)
def test_plain_denoising_carries_no_conditioning_parameters(name):
    torch.manual_seed(0)
    encoder = _encoder(name)
    plain = {n for n, _ in encoder.named_parameters()}
    denoise = CoordinateDenoising(encoder)
    assert {n[len("encoder."):] for n, _ in denoise.named_parameters() if n.startswith("encoder.")} == plain
    scd = SCD(_encoder(name))
    added = {n for n, _ in scd.encoder.named_parameters()} - plain
    assert added and all(n.startswith("backbone.layer_hook.") for n in added)
    # the conditioning lives in the encoder only, so it is saved once
    assert not any(k.startswith("conditioning.") for k in scd.state_dict())


@pytest.mark.parametrize("name", BACKBONES)
def test_scd_conditions_every_layer_of_each_backbone(name):
    """Opening the gates makes the condition change the denoising pass's features, in
    every backbone; outside a conditioned pass the network runs with the null token."""
    torch.manual_seed(0)
    scd = SCD(_encoder(name))
    batch = _batch()
    norms = [m for m in scd.encoder.modules() if isinstance(m, AdaptiveNorm)]
    assert len(norms) == 2  # one per interaction layer
    _open_gates(scd)
    condition = torch.randn(2, 32)
    with scd.conditioning.given(condition):
        s_cond, _ = scd.encoder.features(batch)
    with scd.conditioning.given(scd.conditioning.null(2)):
        s_null, _ = scd.encoder.features(batch)
    assert not torch.allclose(s_cond, s_null)
    assert torch.allclose(scd.encoder(batch), s_null)


def test_scd_with_condition_always_dropped_uses_the_null_token():
    torch.manual_seed(0)
    scd = SCD(_encoder("painn"), drop_prob=1.0)
    _open_gates(scd)
    batch = _batch()
    torch.manual_seed(1)
    loss_dropped = scd(batch)
    # the same step by hand: clean pass, condition replaced by the null token, noisy pass
    reference = copy.deepcopy(scd)
    torch.manual_seed(1)
    reference.condition(batch)  # consumes the same random numbers as SCD's first pass
    reference.conditioning.null.drop(torch.zeros(2, 32), 1.0)
    noise = coordinate_noise(batch, reference.sigma)
    noisy = copy.copy(batch)
    noisy.pos = batch.pos + noise
    s, v = reference.encoder.features(noisy)  # no condition given: the null token
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
    encoder = build_encoder(ModelConfig(backbone="gin", hidden=8, num_layers=1), molecule_feature_spec())
    with pytest.raises(ConfigError, match="geometric backbone"):
        CoordinateDenoising(encoder)
    with pytest.raises(ConfigError, match="geometric backbone"):
        SCD(encoder)
    with pytest.raises(ConfigError, match="drop_prob"):
        SCD(_encoder("schnet"), drop_prob=1.5)


@pytest.mark.parametrize("name", BACKBONES)
def test_scd_exports_its_conditioning_and_a_rebuilt_encoder_runs_with_the_null_token(name):
    """What fine-tuning does with an SCD-pretrained encoder: a fresh encoder of the same
    config, the conditioning rebuilt from the exported state, the weights loaded; it then
    computes exactly the pretrained encoder's unconditioned features."""
    torch.manual_seed(0)
    scd = SCD(_encoder(name))
    _open_gates(scd)
    scd(_batch()).backward()  # a training step's worth of use
    state, weights = scd.export_state(), scd.encoder.state_dict()
    fresh = _encoder(name)
    SCD.restore_encoder(fresh, state)
    fresh.load_state_dict(weights)  # strict: the same modules as in pretraining
    assert isinstance(fresh, GeometricEncoder)
    assert isinstance(fresh.backbone.layer_hook, LayerConditioning)
    scd.eval()
    fresh.eval()
    batch = _batch()
    with torch.no_grad():
        assert torch.equal(fresh(batch), scd.encoder(batch))
        # the null token takes part: a different token changes the features
        fresh.backbone.layer_hook.null.token.add_(1.0)
        assert not torch.allclose(fresh(batch), scd.encoder(batch))
    # pretraining further from an SCD-pretrained encoder keeps its conditioning
    assert SCD(fresh).conditioning is fresh.backbone.layer_hook


def _standardise_on_rank(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    norm = RunningStandardiser().train()
    target = torch.tensor([1.0, 2.0, 3.0]) if rank == 0 else torch.tensor([10.0, 20.0, 30.0, 40.0, 50.0])
    norm(target)
    torch.save({"mean": norm.mean.clone(), "var": norm.var.clone()}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_running_statistics_are_those_of_the_global_batch_across_processes(tmp_path, free_port):
    import torch.multiprocessing as mp

    port = free_port
    mp.spawn(_standardise_on_rank, args=(port, str(tmp_path)), nprocs=2, join=True)
    union = torch.tensor([1.0, 2.0, 3.0, 10.0, 20.0, 30.0, 40.0, 50.0])
    for rank in range(2):
        stats = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert torch.allclose(stats["mean"], union.mean()), rank
        assert torch.allclose(stats["var"], union.var(unbiased=False)), rank


def test_scd_encoder_pt_fine_tunes_with_its_conditioning_and_old_files_are_refused(tmp_path):
    from graphssl.core.config import ObjectiveConfig, PretrainConfig, RunConfig
    from graphssl.core.errors import CheckpointError
    from graphssl.engine.checkpoint import load_checkpoint, save_checkpoint
    from graphssl.engine.pretrain import pretrain
    from graphssl.engine.pretrained import build_finetune_encoder, load_pretrained

    torch.manual_seed(0)
    structures = [from_ase(molecule(name), cutoff=4.0) for name in ("CH3CH2OH", "H2O", "CH4", "NH3")]
    config = RunConfig(output_dir=str(tmp_path / "pre"), progress=False,
                       model=ModelConfig(backbone="schnet", hidden=16, num_layers=2),
                       objective=ObjectiveConfig(name="scd"), pretrain=PretrainConfig(epochs=1, batch_size=2))
    config.data.cutoff = 4.0
    path = pretrain(config, structures)
    pretrained = load_pretrained(path)
    assert pretrained.objective == "scd" and pretrained.objective_state == {"cond_dim": 16}
    assert any(k.startswith("backbone.layer_hook.null.") for k in pretrained.weights)
    encoder = build_finetune_encoder(pretrained.model, structures, pretrained, cutoff=4.0)  # strict load
    token = encoder.backbone.layer_hook.null.token
    assert torch.equal(token, pretrained.weights["backbone.layer_hook.null.token"]) and token.requires_grad
    scratch = build_finetune_encoder(pretrained.model, structures, None, cutoff=4.0)
    assert scratch.backbone.layer_hook is None  # from scratch: the plain backbone

    old = load_checkpoint(path)
    del old["encoder_format"]  # what encoder.pt looked like before the conditioning moved out of the backbones
    save_checkpoint(tmp_path / "old.pt", {k: v for k, v in old.items() if k not in ("format", "versions")})
    with pytest.raises(CheckpointError, match="graphssl-encoder/1.*pretrain again"):
        load_pretrained(tmp_path / "old.pt")


def _denoise_on_rank(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    names = ("H2O", "CH4") if rank else ("NH3", "CH3OH")
    batch = Batch.from_data_list([from_ase(molecule(m), cutoff=4.0) for m in names])
    for name in ("denoise", "scd"):
        torch.manual_seed(0)
        objective = build_objective(name, _encoder("painn"))
        # what the pretraining loop does: no search for unused parameters unless the objective declares some
        model = DistributedDataParallel(objective, find_unused_parameters=bool(objective.unused_parameters()))
        optimiser = torch.optim.Adam(objective.parameters(), lr=1e-3)
        for _ in range(2):
            optimiser.zero_grad()
            model(batch).backward()
            optimiser.step()
        flat = torch.cat([p.detach().flatten() for p in objective.parameters()])
        torch.save(flat, f"{out}/{name}-rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_denoising_objectives_train_under_ddp_without_searching_for_unused_parameters(tmp_path, free_port):
    import torch.multiprocessing as mp

    port = free_port
    mp.spawn(_denoise_on_rank, args=(port, str(tmp_path)), nprocs=2, join=True)
    for name in ("denoise", "scd"):
        ranks = [torch.load(tmp_path / f"{name}-rank{r}.pt", weights_only=True) for r in range(2)]
        assert torch.equal(ranks[0], ranks[1]), name
