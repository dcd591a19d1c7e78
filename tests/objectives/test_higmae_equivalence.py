"""Hi-GMAE's fast forward computes what the straightforward one computes.

``_reference_loss`` below is Hi-GMAE's forward as first written: every level, the transformer
and the decoder run on all nodes (the transformer on zero-padded dense sequences, through
``torch.nn.TransformerEncoder`` itself), and unused rows are masked out afterwards. The
objective may skip rows whose values never reach the loss; with the same weights and seed both
must give the same loss, the same gradient for every parameter and draw the same random numbers.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor
from torch_geometric.data import Batch
from torch_geometric.utils import scatter, to_dense_batch

from graphssl.core.config import ModelConfig
from graphssl.molecule.adapter import smiles_to_data
from graphssl.molecule.features import molecule_feature_spec
from graphssl.nn import build_encoder
from graphssl.nn.backbones import build_backbone
from graphssl.nn.losses import reconstruction_loss
from graphssl.objectives import HiGMAE, build_objective
from graphssl.objectives.decoder import FeatureDecoder
from graphssl.objectives.higmae import coarse_to_fine_masks
from graphssl.objectives.targets import target_tensor
from graphssl.transforms.coarsen import level_batch

MOLS = ["CC(=O)Nc1ccc(O)cc1", "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "[Na+]", "C", "CCO.[Cl-]", "c1ccc2ccccc2c1",
        "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "OCC(O)C(O)C(O)C(O)CO", "CC(C)(C)c1ccc(cc1)S(=O)(=O)N",
        "O=C(O)CCCCCCCCCCCCCCC", "c1ccc(cc1)-c1ccccc1", "C1CC2CCC1C2", "N#N"] * 3


def _reference_transformer(objective: HiGMAE, h: Tensor, pe: Tensor, batch: Tensor, visible: Tensor,
                           num_graphs: int) -> Tensor:
    t = objective.transformer
    tokens = t.inp(torch.cat([h, pe], dim=-1))
    dense, present = to_dense_batch(tokens[visible], batch[visible], batch_size=num_graphs)
    dense = torch.cat([t.graph_token.expand(num_graphs, -1, -1), dense], dim=1)
    present = torch.cat([present.new_ones(num_graphs, 1), present], dim=1)
    out = t.layers(dense, src_key_padding_mask=~present)[:, 1:]
    result = torch.zeros_like(tokens)
    result[visible] = out[present[:, 1:]]
    return result


def _reference_loss(objective: HiGMAE, data) -> Tensor:
    """The loss of one step, every module run on every node of its level."""
    L = objective.levels
    num_graphs = int(data.num_graphs)
    masks = coarse_to_fine_masks(data, L, objective.mask_rate, objective.recovery if objective.training else 0.0)
    h0 = objective.encoder.embed_nodes(data).clone()
    h0[masks[0]] = objective.enc_mask_token.to(h0.dtype)
    edge_features = objective.encoder.embed_edges(data)
    feats = [objective.encoder.propagate(h0, data, edge_features)]
    for level in range(1, L + 1):
        n = int(data[f"n_{level}"].sum())
        pooled = scatter(feats[-1], data[f"cluster_{level}"], dim=0, dim_size=n, reduce="mean")
        if level < L:
            pooled = pooled + objective.level_encoders[level - 1](pooled, data[f"edge_index_{level}"])
        feats.append(pooled)
    visible_top = ~masks[L]
    top = _reference_transformer(objective, feats[L], data[f"rwpe_{L}"], level_batch(data, L), visible_top,
                                 num_graphs)
    z = objective.encoder_to_decoder(top) * visible_top.unsqueeze(-1)
    for level in range(L, 0, -1):
        z = z[data[f"cluster_{level}"]]
        below = level - 1
        z = z + objective.skips[below](feats[below]) * (~masks[below]).unsqueeze(-1)
        if below > 0:
            z = z + objective.level_decoders[below - 1](z, data[f"edge_index_{below}"])
    recon = objective.decoder(z, data, edge_features)
    target = target_tensor(data, objective.target, objective.encoder, index=masks[0])
    return reconstruction_loss(recon[masks[0]], target, objective.loss, objective.alpha)


def _objective(backbone: str = "gine", **options) -> HiGMAE:
    torch.manual_seed(1)
    encoder = build_encoder(ModelConfig(backbone=backbone, hidden=32, num_layers=2), molecule_feature_spec())
    objective = build_objective("higmae", encoder, options)
    with torch.no_grad():  # non-zero tokens, so a wrong row reaching the loss changes it
        for p in objective.parameters():
            if not p.abs().sum() > 0:
                p.normal_(0, 0.5)
    return objective


def _batch(objective: HiGMAE, mols=MOLS):
    return Batch.from_data_list(objective.transform.many([smiles_to_data(s) for s in mols]))


def _assert_same_step(objective: HiGMAE, batch, seeds=(0, 1, 2)) -> None:
    for seed in seeds:
        objective.zero_grad(set_to_none=True)
        torch.manual_seed(seed)
        expected = _reference_loss(objective, batch)
        expected.backward()
        expected_grads = {n: p.grad.clone() for n, p in objective.named_parameters() if p.grad is not None}
        after_reference = torch.rand(4)
        objective.zero_grad(set_to_none=True)
        torch.manual_seed(seed)
        loss = objective(batch)
        loss.backward()
        assert torch.equal(torch.rand(4), after_reference), "the two paths drew different random numbers"
        torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-6)
        grads = {n: p.grad for n, p in objective.named_parameters() if p.grad is not None}
        # the same parameters take part (distributed training relies on it), with the same gradients
        assert set(grads) == set(expected_grads)
        for name, grad in expected_grads.items():
            torch.testing.assert_close(grads[name], grad, rtol=1e-5, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("levels", [1, 2, 3])
@pytest.mark.parametrize("recovery", [0.0, 0.5])
@pytest.mark.parametrize("coarsener", ["algebraic", "chemistry"])
def test_same_loss_and_gradients_as_the_reference(levels, recovery, coarsener):
    objective = _objective(levels=levels, ratio=0.5 if levels == 3 else 0.25, coarsener=coarsener,
                           recovery_rate=recovery)
    objective.train()
    _assert_same_step(objective, _batch(objective))


@pytest.mark.parametrize("backbone", ["gin", "gine"])
def test_same_with_a_gin_decoder_two_transformer_layers_and_mse(backbone):
    objective = _objective(backbone, levels=2, transformer_layers=2, heads=2, loss="mse", target="features",
                           recovery_rate=0.3)
    objective.train()
    _assert_same_step(objective, _batch(objective))


def test_same_in_eval_mode_and_with_everything_masked():
    objective = _objective(levels=2, mask_rate=1.0)
    objective.train()
    _assert_same_step(objective, _batch(objective), seeds=(0,))
    objective = _objective(levels=2, mask_rate=0.6)
    objective.eval()
    _assert_same_step(objective, _batch(objective), seeds=(3,))


@pytest.mark.parametrize("kind", ["gcn", "gin_batch_norm"])
def test_same_with_a_decoder_whose_rows_depend_on_other_rows(kind):
    # GCN normalises by the degrees of the message sources; batch norm by the statistics of all
    # rows: such decoders must run on every node
    objective = _objective(levels=2)
    out_channels = objective.decoder.layer.out_channels
    if kind == "gcn":
        objective.decoder = FeatureDecoder(objective.encoder, out_channels, "gcn")
    else:
        objective.decoder.layer = build_backbone("gin", in_channels=32, hidden=32, num_layers=1,
                                                 out_channels=out_channels, norm="batch_norm")
    objective.train()
    _assert_same_step(objective, _batch(objective), seeds=(0,))


def test_a_change_that_reaches_the_loss_only_through_messages_is_seen():
    objective = _objective(levels=2, recovery_rate=0.0)
    batch = _batch(objective)
    torch.manual_seed(0)
    expected = _reference_loss(objective, batch)
    with torch.no_grad():
        # the level-0 skip of visible nodes reaches the masked nodes only through the decoder's messages
        objective.skips[0].weight.add_(0.1 * torch.randn_like(objective.skips[0].weight))
    torch.manual_seed(0)
    assert not torch.allclose(objective(batch), expected, atol=1e-6)
