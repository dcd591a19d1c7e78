import pytest
import torch
from torch_geometric.data import Batch

from graphssl.core.config import ModelConfig
from graphssl.core.errors import DataError
from graphssl.molecule.adapter import smiles_to_data
from graphssl.molecule.features import molecule_feature_spec
from graphssl.nn import build_encoder
from graphssl.objectives import HiGMAE, build_objective
from graphssl.objectives.higmae import (
    _GraphTransformer,
    coarse_to_fine_masks,
    recovery_fraction,
)

MOLS = ["CC(=O)Nc1ccc(O)cc1", "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "[Na+]", "C", "CCO.[Cl-]", "c1ccc2ccccc2c1",
        "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "OCC(O)C(O)C(O)C(O)CO"] * 4


def _objective(**options):
    encoder = build_encoder(ModelConfig(backbone="gine", hidden=32, num_layers=2), molecule_feature_spec())
    return build_objective("higmae", encoder, options)


def _batch(objective):
    return Batch.from_data_list(objective.transform.many([smiles_to_data(s) for s in MOLS]))


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_projected_masks_are_exactly_the_descendants(levels):
    objective = _objective(levels=levels, ratio=0.5)
    batch = _batch(objective)
    torch.manual_seed(0)
    masks = coarse_to_fine_masks(batch, levels, 0.3, recovery=0.0)
    assert int(masks[levels].sum()) == round(0.3 * int(batch[f"n_{levels}"].sum()))
    # walk every level-0 node up to its ancestor at the top: masked iff the ancestor is
    ancestor = torch.arange(batch.num_nodes)
    for level in range(1, levels + 1):
        ancestor = batch[f"cluster_{level}"][ancestor]
        assert torch.equal(masks[0], masks[level][ancestor])


def test_recovery_unmasks_the_scheduled_share():
    objective = _objective(levels=1, ratio=0.5)
    batch = Batch.from_data_list(objective.transform.many([smiles_to_data(s) for s in MOLS * 10]))
    torch.manual_seed(0)
    full = coarse_to_fine_masks(batch, 1, 0.5, recovery=0.0)
    torch.manual_seed(0)
    thinned = coarse_to_fine_masks(batch, 1, 0.5, recovery=0.4)
    assert torch.equal(full[1], thinned[1])
    assert not bool((thinned[0] & ~full[0]).any())  # recovery only un-masks
    share = 1 - thinned[0].sum().item() / full[0].sum().item()
    assert share == pytest.approx(0.4, abs=0.05)


def test_recovery_schedule():
    assert recovery_fraction(0, 0.5, 10, 1.0) == pytest.approx(0.5)
    assert recovery_fraction(5, 0.5, 10, 1.0) == pytest.approx(0.25)
    assert recovery_fraction(5, 0.5, 10, 2.0) == pytest.approx(0.125)
    assert recovery_fraction(10, 0.5, 10, 1.0) == 0.0
    assert recovery_fraction(3, 0.0, 10, 1.0) == 0.0
    objective = _objective(recovery_rate=0.6)
    objective.set_epoch(0, 40)  # T defaults to a quarter of the epochs: 10
    assert objective.recovery == pytest.approx(0.6)
    objective.set_epoch(5, 40)
    assert objective.recovery == pytest.approx(0.3)
    objective.set_epoch(12, 40)
    assert objective.recovery == 0.0


@pytest.mark.parametrize("levels", [1, 2, 3])
@pytest.mark.parametrize("coarsener", ["algebraic", "heavy_edge", "chemistry"])
def test_gradients_reach_every_level(levels, coarsener):
    torch.manual_seed(0)
    objective = _objective(levels=levels, coarsener=coarsener, ratio=0.5)
    loss = objective(_batch(objective))
    assert torch.isfinite(loss)
    loss.backward()
    missing = [name for name, p in objective.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_single_node_and_edgeless_graphs():
    torch.manual_seed(0)
    objective = _objective(levels=2)
    graphs = [smiles_to_data("[Na+]"), smiles_to_data("C"), smiles_to_data("[Na+].[Cl-]")]
    loss = objective(Batch.from_data_list(objective.transform.many(graphs)))
    assert torch.isfinite(loss)


def test_transformer_attends_over_visible_supernodes_only():
    torch.manual_seed(0)
    transformer = _GraphTransformer(hidden=8, pe_steps=3, layers=1, heads=2).eval()
    h, pe = torch.randn(7, 8), torch.randn(7, 3)
    batch = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    visible = torch.tensor([True, False, True, True, False, False, False])  # graph 1 fully masked
    out = transformer(h, pe, batch, visible, num_graphs=2)
    h2 = h.clone()
    h2[~visible] = torch.randn(int((~visible).sum()), 8) * 100  # change only the masked inputs
    out2 = transformer(h2, pe, batch, visible, num_graphs=2)
    assert torch.allclose(out, out2)
    assert torch.equal(out[~visible], torch.zeros_like(out[~visible]))
    assert torch.isfinite(out).all()


def test_needs_a_hierarchy():
    objective = _objective(levels=2)
    with pytest.raises(DataError, match="coarse levels"):
        objective(Batch.from_data_list([smiles_to_data("CCO")]))
    with pytest.raises(ValueError, match="recovery_rate"):
        HiGMAE(objective.encoder, recovery_rate=1.5)


def test_runs_unchanged_on_crystal_graphs():
    # periodic graphs repeat atom pairs once per image and bond atoms to their own images;
    # the 2D encoder reads the atomic number as its one categorical feature
    from graphssl.atomistic.adapters import from_positions
    from graphssl.atomistic.datasets import atomistic_feature_spec

    torch.manual_seed(0)
    cells = []
    for k in range(4):
        a = 3.0 + 0.2 * k
        pos = torch.tensor([[0.0, 0.0, 0.0], [a / 2, a / 2, 0.0], [a / 2, 0.0, a / 2], [0.0, a / 2, a / 2]])
        cells.append(from_positions([29, 79, 29, 13 + k], pos, cell=torch.eye(3) * a, pbc=True, cutoff=4.5))
    encoder = build_encoder(ModelConfig(backbone="gin", hidden=32, num_layers=2), atomistic_feature_spec())
    objective = build_objective("higmae", encoder, {"levels": 2, "ratio": 0.5})
    batch = Batch.from_data_list(objective.transform.many(cells))
    assert torch.equal(batch.x.view(-1), torch.cat([c.z for c in cells]))
    loss = objective(batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert encoder.node_embedding.tables[0].weight.grad.abs().sum() > 0
