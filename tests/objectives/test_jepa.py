"""Graph JEPA: hidden coarsening clusters, an EMA target encoder, latent prediction."""

import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from graphssl.core.config import DataConfig, ModelConfig, load_config
from graphssl.core.errors import ConfigError, DataError
from graphssl.data.dataset import load_dataset
from graphssl.engine.checkpoint import load_checkpoint
from graphssl.engine.pretrain import pretrain
from graphssl.molecule.adapter import smiles_to_data
from graphssl.molecule.features import molecule_feature_spec
from graphssl.nn import build_encoder
from graphssl.objectives import JEPA, build_objective
from graphssl.objectives.jepa import hidden_clusters, node_clusters, vicreg_terms
from graphssl.transforms.coarsen import level_batch

pytestmark = pytest.mark.usefixtures("one_thread")

MOLS = ["CC(=O)Nc1ccc(O)cc1", "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "[Na+]", "C", "CCO.[Cl-]", "c1ccc2ccccc2c1",
        "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "OCC(O)C(O)C(O)C(O)CO"]


def _encoder(backbone: str = "gine", hidden: int = 16, num_layers: int = 3):
    return build_encoder(ModelConfig(backbone=backbone, hidden=hidden, num_layers=num_layers), molecule_feature_spec())


def _objective(**options) -> JEPA:
    return build_objective("jepa", _encoder(), options)


def _batch(objective: JEPA) -> Batch:
    return Batch.from_data_list(objective.transform.many([smiles_to_data(s) for s in MOLS]))


@pytest.mark.parametrize("level", [1, 2])
def test_hidden_clusters_respect_graph_boundaries(level):
    torch.manual_seed(0)
    objective = _objective(levels=2, level=level, mask_rate=0.4)
    batch = _batch(objective)
    graph_of_cluster = level_batch(batch, level)
    hidden = hidden_clusters(graph_of_cluster, batch.num_graphs, 0.4)
    counts = torch.bincount(graph_of_cluster, minlength=batch.num_graphs)
    per_graph = torch.bincount(graph_of_cluster[hidden], minlength=batch.num_graphs)
    expected = [0 if c == 1 else min(max(1, round(0.4 * c)), c - 1) for c in counts.tolist()]
    assert per_graph.tolist() == expected  # at least one hidden and one visible per graph with two clusters
    # a cluster's nodes all belong to the cluster's graph, so hiding it hides nodes of that graph only
    cluster = node_clusters(batch, level)
    assert torch.equal(graph_of_cluster[cluster], batch.batch)


def test_the_context_sees_nothing_of_the_hidden_substructures():
    torch.manual_seed(0)
    objective = _objective(mask_rate=0.4).eval()
    batch = _batch(objective)
    contexts, predictions = [], []
    objective.encoder.register_forward_pre_hook(lambda module, args: contexts.append(args[0]) and None)
    objective.predictor.register_forward_hook(lambda module, args, out: predictions.append(out) and None)
    torch.manual_seed(1)
    objective(batch)
    context = contexts[0]
    # the context holds exactly the nodes of visible clusters, and no edge reaches a hidden node
    torch.manual_seed(1)
    hidden = hidden_clusters(level_batch(batch, 2), batch.num_graphs, 0.4)
    visible = ~hidden[node_clusters(batch, 2)]
    assert context.num_nodes == int(visible.sum()) and context.num_graphs == batch.num_graphs
    assert torch.equal(context.x, batch.x[visible]) and torch.equal(context.batch, batch.batch[visible])
    assert context.edge_index.size(1) == int((visible[batch.edge_index[0]] & visible[batch.edge_index[1]]).sum())
    # changing the hidden atoms changes the targets but not the predictions
    changed = batch.clone()
    changed.x[~visible, 0] = 16  # every hidden atom becomes sulfur
    torch.manual_seed(1)
    objective(changed)
    assert torch.equal(predictions[0], predictions[1])
    full = objective._targets(objective_plain(batch), node_clusters(batch, 2), int(batch.n_2.sum()))
    altered = objective._targets(objective_plain(changed), node_clusters(batch, 2), int(batch.n_2.sum()))
    assert not torch.allclose(full[hidden], altered[hidden])


def objective_plain(batch):
    from graphssl.objectives.jepa import without_levels

    plain = without_levels(batch)
    assert not any(k.startswith(("cluster_", "rwpe_")) for k in plain.keys())
    return plain


@pytest.mark.parametrize("backbone", ["gin", "gine", "gcn", "gat"])
def test_gradients_reach_the_context_encoder_and_predictor_but_not_the_target(backbone):
    torch.manual_seed(0)
    objective = build_objective("jepa", _encoder(backbone), {})
    loss = objective(_batch(objective))
    assert torch.isfinite(loss)
    loss.backward()
    trainable = [(n, p) for n, p in objective.named_parameters() if p.requires_grad]
    assert sorted(n for n, p in trainable if p.grad is None) == sorted(objective.unused_parameters())
    assert all(n.startswith("target.") for n, p in objective.named_parameters() if not p.requires_grad)
    assert all(p.grad is None and not p.requires_grad for p in objective.target.parameters())


def test_target_follows_the_ema_formula_exactly():
    torch.manual_seed(0)
    objective = _objective(momentum=0.8)
    optimiser = torch.optim.Adam(objective.parameters(), lr=1e-2)
    batch = _batch(objective)
    objective.set_epoch(0, 10)
    assert objective.momentum == pytest.approx(0.8)
    for _ in range(2):
        before = {n: p.detach().clone() for n, p in objective.target.encoder.named_parameters()}
        loss = objective(batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        objective.after_step()
        online = dict(objective.encoder.named_parameters())
        for name, p in objective.target.encoder.named_parameters():
            assert torch.equal(p, before[name].mul(0.8).add(online[name].detach(), alpha=0.2)), name
    objective.set_epoch(5, 10)
    assert objective.momentum == pytest.approx(0.9)


def test_hidden_layer_targets_are_the_target_encoders_layers():
    torch.manual_seed(0)
    objective = _objective(target_layers=3)
    assert objective.predictor.out.out_features == 3 * 16
    encoder = objective.target.encoder.eval()
    batch = _batch(objective)
    layers = objective._tap(encoder, batch)
    assert len(layers) == 3 and torch.equal(layers[-1], encoder(batch))
    conv0 = encoder.backbone.convs[0](encoder.embed_nodes(batch), batch.edge_index, edge_attr=encoder.embed_edges(batch))
    assert torch.allclose(layers[0], conv0)
    assert not torch.allclose(layers[0], layers[1])
    with pytest.raises(ConfigError, match="exceeds the encoder's 3 layers"):
        _objective(target_layers=4)


def test_geometric_backbones_take_part(tmp_path):
    from graphssl.atomistic.adapters import from_positions

    torch.manual_seed(0)
    cells = []
    for k in range(4):
        a = 3.0 + 0.2 * k
        pos = torch.tensor([[0.0, 0.0, 0.0], [a / 2, a / 2, 0.0], [a / 2, 0.0, a / 2], [0.0, a / 2, a / 2]])
        cells.append(from_positions([29, 79, 29, 13 + k], pos, cell=torch.eye(3) * a, pbc=True, cutoff=4.5))
    for backbone in ("schnet", "painn"):
        encoder = build_encoder(ModelConfig(backbone=backbone, hidden=16, num_layers=2), cutoff=4.5)
        objective = build_objective("jepa", encoder, {"levels": 1, "target_layers": 2})
        loss = objective(Batch.from_data_list(objective.transform.many(cells)))
        loss.backward()
        assert torch.isfinite(loss)
        assert all(p.grad is not None for p in encoder.parameters())


def test_variance_and_covariance_terms():
    variance, covariance = vicreg_terms(torch.ones(5, 3))
    assert variance.item() == pytest.approx(1 - 1e-2, abs=1e-6) and covariance.item() == 0.0
    z = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, 1.0], [-1.0, -1.0]])  # std 1.15 per column, fully correlated
    variance, covariance = vicreg_terms(z)
    assert variance.item() == 0.0
    assert covariance.item() == pytest.approx(2 * (4 / 3) ** 2 / 2)
    torch.manual_seed(0)
    objective = _objective(var_weight=1.0, cov_weight=0.04, loss="cosine")
    loss = objective(_batch(objective))
    loss.backward()
    assert torch.isfinite(loss)


def test_options_and_inputs_are_checked():
    with pytest.raises(ConfigError, match="level must be between 1 and levels=2"):
        _objective(level=3)
    with pytest.raises(ConfigError, match="unknown loss 'l2'"):
        _objective(loss="l2")
    with pytest.raises(ConfigError, match="mask_rate"):
        _objective(mask_rate=1.0)
    objective = _objective()
    with pytest.raises(DataError, match="coarse levels"):
        objective(Batch.from_data_list([smiles_to_data("CCO")]))


def test_short_run_on_real_molecules_does_not_collapse(cache):
    """After 40 steps on FreeSolv the context and target graph embeddings stay spread (embedding_std
    about 0.1; 0 would be a collapse, 1 / sqrt(32) = 0.18 is the most possible)."""
    data = load_dataset(DataConfig(name="freesolv"), cache, progress=False, verbose=False)
    torch.manual_seed(0)
    encoder = build_encoder(ModelConfig(backbone="gin", hidden=32, num_layers=2), data.feature_spec)
    objective = JEPA(encoder)
    graphs = objective.transform.many([data[i] for i in range(320)])
    optimiser = torch.optim.Adam(objective.parameters(), lr=1e-3)
    for epoch in range(4):
        objective.set_epoch(epoch, 4)
        for batch in DataLoader(graphs, batch_size=32, shuffle=True):
            loss = objective(batch)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            objective.after_step()
        metrics = objective.metrics()
        assert torch.isfinite(loss)
        assert metrics["embedding_std"] > 0.05 and metrics["target_std"] > 0.05, (epoch, metrics)


def _overrides(tmp_path, data_path, *extra: str, cache=None) -> list[str]:
    values = [f"output_dir={tmp_path / 'run'}", f"cache_dir={cache or tmp_path / 'cache'}", "progress=false",
              "threads=1", "model.backbone=gine", "model.hidden=16", "model.num_layers=2", f"data.path={data_path}",
              "pretrain.epochs=1", "pretrain.batch_size=8", "objective.name=jepa", *extra]
    return [a for v in values for a in ("--set", v)]


@pytest.mark.slow
def test_pretrain_command_on_molecules(tmp_path, molecule_csv):
    from graphssl.cli import main

    assert main(["pretrain", *_overrides(tmp_path, molecule_csv, "objective.coarsener=chemistry",
                                         "objective.target_layers=2")]) == 0
    saved = load_checkpoint(tmp_path / "run" / "encoder.pt")
    assert saved["objective_name"] == "jepa" and not any(k.startswith("target.") for k in saved["encoder"])


@pytest.mark.slow
def test_pretrain_command_on_brep_parts(tmp_path, parts_dir, cache):
    from graphssl.cli import main

    assert main(["pretrain", *_overrides(tmp_path, parts_dir, "objective.loss=cosine", cache=cache)]) == 0
    saved = load_checkpoint(tmp_path / "run" / "encoder.pt")
    assert "node_embedding.cnn.0.weight" in saved["encoder"]


@pytest.mark.slow
def test_resume_restores_the_ema_target_exactly(tmp_path, molecule_csv):
    def config(folder, epochs):
        return load_config(None, [
            f"output_dir={tmp_path / folder}", f"cache_dir={tmp_path / 'cache'}", "progress=false",
            "model.backbone=gine", "model.hidden=16", "model.num_layers=2", f"data.path={molecule_csv}",
            f"pretrain.epochs={epochs}", "pretrain.batch_size=8", "objective.name=jepa",
        ])

    pretrain(config("straight", 2))
    pretrain(config("resumed", 1))
    pretrain(config("resumed", 2))
    a = load_checkpoint(tmp_path / "straight" / "last.pt")["objective"]
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")["objective"]
    assert any(k.startswith("target.encoder.") for k in a) and a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key
    online = "encoder.node_embedding.tables.0.weight"
    assert not torch.allclose(a["target." + online], a[online])
    objective = build_objective("jepa", _encoder(num_layers=2), {})
    objective.load_state_dict(a)
    assert all(torch.equal(v, a[k]) for k, v in objective.state_dict().items())
