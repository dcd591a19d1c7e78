"""GraphCL (NT-Xent over two augmented views) and its negative-free BGRL variant."""

import math

import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from graphssl.core.config import DataConfig, ModelConfig, load_config
from graphssl.core.errors import ConfigError
from graphssl.data.dataset import load_dataset
from graphssl.engine.checkpoint import load_checkpoint
from graphssl.engine.pretrain import pretrain
from graphssl.molecule.adapter import smiles_to_data
from graphssl.molecule.features import molecule_feature_spec
from graphssl.nn import Encoder, build_encoder
from graphssl.nn.backbones import build_backbone
from graphssl.objectives import GraphCL, build_objective
from graphssl.objectives.base import ema_momentum, embedding_std
from graphssl.objectives.graphcl import nt_xent

pytestmark = pytest.mark.usefixtures("one_thread")

MOLS = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "C1CCCCC1N", "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "[Na+].[Cl-]", "C"]


def _batch():
    return Batch.from_data_list([smiles_to_data(s) for s in MOLS])


def _encoder(backbone: str = "gine", hidden: int = 16, num_layers: int = 2):
    return build_encoder(ModelConfig(backbone=backbone, hidden=hidden, num_layers=num_layers), molecule_feature_spec())


def test_nt_xent_matches_a_hand_computed_value():
    # views a1, b1 (first view of graphs a, b) and a2, b2; all unit vectors, temperature 0.5
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    # cosines: a1.b1 = 0, a1.a2 = 0.6, a1.b2 = 0, b1.a2 = 0.8, b1.b2 = 1, a2.b2 = 0.8; divided by 0.5
    e = math.exp
    rows = [e(1.2) / (e(0) + e(1.2) + e(0)),      # a1: positive a2, negatives b1, b2
            e(2.0) / (e(0) + e(1.6) + e(2.0)),    # b1: positive b2, negatives a1, a2
            e(1.2) / (e(1.2) + e(1.6) + e(1.6)),  # a2: positive a1, negatives b1, b2
            e(2.0) / (e(0) + e(2.0) + e(1.6))]    # b2: positive b1, negatives a1, a2
    expected = -sum(math.log(r) for r in rows) / 4
    assert expected == pytest.approx(0.758885198, abs=1e-8)
    assert nt_xent(z1, z2, 0.5).item() == pytest.approx(expected, abs=1e-6)
    # rows are normalised first, so scale does not matter; swapping the views does not either
    assert nt_xent(3 * z1, 0.5 * z2, 0.5).item() == pytest.approx(expected, abs=1e-6)
    assert nt_xent(z2, z1, 0.5).item() == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z1, z2, 0.0)


@pytest.mark.parametrize("loss", ["ntxent", "bgrl"])
@pytest.mark.parametrize("augmentations", [("drop_nodes", "subgraph"), ("mask_nodes", "perturb_edges")])
def test_gradients_reach_the_encoder_and_only_the_declared_parameters_miss_them(loss, augmentations):
    torch.manual_seed(0)
    objective = GraphCL(_encoder(), augmentations=augmentations, loss=loss)
    value = objective(_batch())
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    trainable = [(n, p) for n, p in objective.named_parameters() if p.requires_grad]
    assert [n for n, p in trainable if p.grad is None] == objective.unused_parameters() == []
    assert all(p.grad is None for n, p in objective.named_parameters() if n.startswith("target."))


def test_unread_edge_embeddings_are_declared():
    spec = molecule_feature_spec()
    backbone = build_backbone("gin", in_channels=16, hidden=16, num_layers=2)
    encoder = Encoder(backbone, spec.node_embedding(16), out_channels=16, edge_embedding=spec.edge_embedding(16))
    objective = GraphCL(encoder)
    objective(_batch()).backward()
    unused = sorted(n for n, p in objective.named_parameters() if p.requires_grad and p.grad is None)
    assert unused and unused == sorted(objective.unused_parameters())


def test_masked_nodes_get_the_token_instead_of_their_features():
    torch.manual_seed(0)
    objective = GraphCL(_encoder(), augmentations=("mask_nodes", "mask_nodes"), strength=0.5)
    with torch.no_grad():
        objective.mask_token.weight.fill_(7.0)
    seen = []

    def record(module, args):
        seen.append(args[0])

    objective.encoder.backbone.register_forward_pre_hook(record)
    torch.manual_seed(1)
    view, _ = objective.views(_batch())
    torch.manual_seed(1)
    objective(_batch())
    h0 = seen[0]  # the first view's input embeddings
    assert bool((h0[view.masked] == 7.0).all()) and not bool((h0[~view.masked] == 7.0).all(-1).any())


def test_bgrl_target_gets_no_gradient_and_follows_the_ema_formula_exactly():
    torch.manual_seed(0)
    objective = GraphCL(_encoder(), augmentations=("mask_nodes", "drop_nodes"), loss="bgrl", momentum=0.9)
    target = objective.target
    assert all(not p.requires_grad for p in target.parameters())
    optimiser = torch.optim.Adam(objective.parameters(), lr=1e-2)
    objective.set_epoch(0, 4)
    for _ in range(2):
        before = {n: p.detach().clone() for n, p in target.named_parameters()}
        loss = objective(_batch())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        assert all(p.grad is None for p in target.parameters())
        assert all(torch.equal(p, before[n]) for n, p in target.named_parameters())  # the step left it alone
        objective.after_step()
        online = dict(objective.named_parameters())
        for name, p in target.named_parameters():
            expected = before[name].mul(0.9).add(online[name].detach(), alpha=1 - 0.9)
            assert torch.equal(p, expected), name
        assert not torch.equal(target.encoder.node_embedding.tables[0].weight,
                               objective.encoder.node_embedding.tables[0].weight)
    for (name, mine), theirs in zip(target.encoder.named_buffers(), objective.encoder.buffers()):
        assert torch.equal(mine, theirs), name  # batch-norm statistics are copied


def test_ema_rate_rises_on_a_cosine_to_one():
    assert ema_momentum(0, 10, 0.99) == pytest.approx(0.99)
    assert ema_momentum(5, 10, 0.99) == pytest.approx(0.995)
    assert ema_momentum(10, 10, 0.99) == pytest.approx(1.0)
    objective = GraphCL(_encoder(), loss="bgrl", momentum=0.98)
    objective.set_epoch(3, 6)
    assert objective.momentum == pytest.approx(0.99)


def test_options_are_checked():
    encoder = _encoder()
    with pytest.raises(ConfigError, match="unknown augmentation 'drop_node'"):
        build_objective("graphcl", encoder, {"augmentations": ["drop_node", "subgraph"]})
    with pytest.raises(ConfigError, match="two names"):
        build_objective("graphcl", encoder, {"augmentations": ["drop_nodes"]})
    with pytest.raises(ConfigError, match="strength must be in"):
        build_objective("graphcl", encoder, {"strength": [0.2, 1.5]})
    with pytest.raises(ConfigError, match="unknown loss 'byol'"):
        build_objective("graphcl", encoder, {"loss": "byol"})
    with pytest.raises(ConfigError, match="momentum"):
        build_objective("graphcl", encoder, {"momentum": 1.5})
    with pytest.raises(ConfigError, match="message-passing backbone"):
        build_objective("graphcl", build_encoder(ModelConfig(backbone="schnet", hidden=8, num_layers=1)))


@pytest.mark.parametrize("loss", ["ntxent", "bgrl"])
def test_short_run_on_real_molecules_does_not_collapse(loss, cache):
    """A collapsed encoder maps every molecule the same way (embedding_std 0, as the zeroed encoder
    below shows); a healthy one keeps its graph embeddings spread (about 0.1 here, 1 / sqrt(32) =
    0.18 at most) after 40 steps of pretraining on FreeSolv."""
    data = load_dataset(DataConfig(name="freesolv"), cache, progress=False, verbose=False)
    torch.manual_seed(0)
    encoder = build_encoder(ModelConfig(backbone="gin", hidden=32, num_layers=2), data.feature_spec)
    objective = GraphCL(encoder, loss=loss)
    optimiser = torch.optim.Adam(objective.parameters(), lr=1e-3)
    graphs = [data[i] for i in range(320)]
    for epoch in range(4):
        objective.set_epoch(epoch, 4)
        for batch in DataLoader(graphs, batch_size=32, shuffle=True):
            value = objective(batch)
            optimiser.zero_grad()
            value.backward()
            optimiser.step()
            objective.after_step()
        assert torch.isfinite(value)
        assert objective.metrics()["embedding_std"] > 0.05, (epoch, objective.metrics())
    with torch.no_grad():
        for p in encoder.parameters():
            p.zero_()
    collapsed = embedding_std(encoder.embed_graphs(Batch.from_data_list(graphs[:32])))
    assert collapsed < 1e-6


def _overrides(tmp_path, data_path, objective: str, *extra: str, cache=None) -> list[str]:
    values = [f"output_dir={tmp_path / 'run'}", f"cache_dir={cache or tmp_path / 'cache'}", "progress=false", "threads=1",
              "model.backbone=gine", "model.hidden=16", "model.num_layers=2", f"data.path={data_path}",
              "pretrain.epochs=1", "pretrain.batch_size=8", f"objective.name={objective}", *extra]
    return [a for v in values for a in ("--set", v)]


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["ntxent", "bgrl"])
def test_pretrain_command_on_molecules(tmp_path, molecule_csv, loss):
    from graphssl.cli import main

    assert main(["pretrain", *_overrides(tmp_path, molecule_csv, "graphcl", f"objective.loss={loss}")]) == 0
    saved = load_checkpoint(tmp_path / "run" / "encoder.pt")
    assert saved["objective_name"] == "graphcl" and not any(k.startswith("target.") for k in saved["encoder"])
    assert torch.isfinite(torch.tensor(saved["history"][0]["loss"]))


@pytest.mark.slow
@pytest.mark.parametrize("options", [["objective.strength=0.3"],  # node dropping and subgraph, NT-Xent
                                     ["objective.augmentations=[mask_nodes, perturb_edges]", "objective.loss=bgrl"]])
def test_pretrain_command_on_brep_parts(tmp_path, parts_dir, cache, options):
    from graphssl.cli import main

    args = _overrides(tmp_path, parts_dir, "graphcl", *options, cache=cache)
    assert main(["pretrain", *args]) == 0
    saved = load_checkpoint(tmp_path / "run" / "encoder.pt")
    assert "node_embedding.cnn.0.weight" in saved["encoder"]  # the face-grid CNN was pretrained


@pytest.mark.slow
def test_resume_restores_the_ema_target_exactly(tmp_path, molecule_csv):
    def config(folder, epochs):
        return load_config(None, [
            f"output_dir={tmp_path / folder}", f"cache_dir={tmp_path / 'cache'}", "progress=false",
            "model.backbone=gine", "model.hidden=16", "model.num_layers=2", f"data.path={molecule_csv}",
            f"pretrain.epochs={epochs}", "pretrain.batch_size=8", "objective.name=graphcl", "objective.loss=bgrl",
        ])

    pretrain(config("straight", 2))
    pretrain(config("resumed", 1))
    pretrain(config("resumed", 2))
    a = load_checkpoint(tmp_path / "straight" / "last.pt")["objective"]
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")["objective"]
    targets = [k for k in a if k.startswith("target.")]
    assert targets and a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key
    # the target is a moving average, not a copy, of the trained encoder
    online = "encoder.node_embedding.tables.0.weight"
    assert not torch.allclose(a["target." + online], a[online])
    # and a fresh objective loads it back exactly
    objective = GraphCL(_encoder(), loss="bgrl")
    objective.load_state_dict(a)
    assert all(torch.equal(v, a[k]) for k, v in objective.state_dict().items())
