import pytest
import torch
from torch_geometric.data import Batch

from graphssl.molecule.adapter import smiles_to_data
from graphssl.core.config import ModelConfig
from graphssl.nn import build_encoder
from graphssl.core.errors import ConfigError
from graphssl.objectives import AttrMask, GraphMAE, build_objective

MOLS = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "C1CCCCC1N", "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "[Na+]"]


def _batch():
    return Batch.from_data_list([smiles_to_data(s) for s in MOLS])


@pytest.mark.parametrize("backbone", ["gine", "gcn"])
@pytest.mark.parametrize("name", ["graphmae", "attrmask"])
def test_loss_is_finite_and_reaches_every_encoder_parameter(name, backbone):
    torch.manual_seed(0)
    encoder = build_encoder(ModelConfig(backbone=backbone, hidden=16, num_layers=2))
    objective = build_objective(name, encoder)
    loss = objective(_batch())
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    # Every encoder parameter that takes part in the forward pass gets a gradient.
    missing = [n for n, p in encoder.named_parameters() if p.grad is None]
    assert missing == []


def test_graphmae_learns_atom_types():
    torch.manual_seed(0)
    encoder = build_encoder(ModelConfig(backbone="gine", hidden=32, num_layers=2))
    objective = GraphMAE(encoder, mask_rate=0.3)
    optimiser = torch.optim.Adam(objective.parameters(), lr=1e-2)
    batch = _batch()
    first = objective(batch).item()
    for _ in range(60):
        loss = objective(batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.5 * first


def test_graphmae_decoder_does_not_see_masked_inputs():
    """With re-masking, the reconstruction of a masked node cannot depend on its own
    encoder output (only on its neighbours')."""
    torch.manual_seed(0)
    encoder = build_encoder(ModelConfig(backbone="gin", hidden=8, num_layers=1, norm=None))
    objective = GraphMAE(encoder, mask_rate=0.5, replace_rate=0.0, keep_rate=0.0)
    batch = _batch()
    captured = {}

    def hook(module, args):
        captured["z"] = args[0].detach().clone()

    objective.decoder.register_forward_pre_hook(hook)
    torch.manual_seed(1)
    objective(batch)
    z = captured["z"]
    zero_rows = (z.abs().sum(-1) == 0).sum().item()
    assert zero_rows == round(0.5 * batch.num_nodes)


def test_target_and_option_validation():
    encoder = build_encoder(ModelConfig(backbone="gin", hidden=8, num_layers=1))
    with pytest.raises(ConfigError, match="has no option 'mask_ratio'.*mask_rate"):
        build_objective("graphmae", encoder, {"mask_ratio": 0.3})
    with pytest.raises(ConfigError, match="unknown objective 'byol'"):
        build_objective("byol", encoder)
    with pytest.raises(ConfigError, match="alpha"):
        build_objective("graphmae", encoder, {"alpha": 0.5})
    with pytest.raises(ValueError, match="mask_rate"):
        AttrMask(encoder, mask_rate=1.5)
