"""Descriptor prediction: robust scaling, the masked loss, fitting the statistics, and pretraining."""

from __future__ import annotations

import math

import pytest
import torch
from torch_geometric.data import Batch, Data

from graphssl.core.config import ModelConfig
from graphssl.core.errors import ConfigError
from graphssl.molecule.features import molecule_feature_spec
from graphssl.nn import build_encoder
from graphssl.objectives import OBJECTIVES, DescriptorPrediction, build_objective
from graphssl.objectives import descriptors as od

nan, inf = math.nan, math.inf


def test_loss_over_scored_finite_entries_only_by_hand():
    pred = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([[0.0, nan, 5.0], [1.0, 2.0, 4.0]])
    scored = torch.tensor([[True, True, True], [False, True, True]])
    # scored and finite: (1 - 0), (3 - 5), (0 - 2), (0 - 4)
    assert od.descriptor_loss(pred, target, scored, "mse").item() == pytest.approx((1 + 4 + 4 + 16) / 4)
    # smooth L1 (beta 1): 0.5 * 1^2, then |d| - 0.5 for |d| = 2, 2, 4
    assert od.descriptor_loss(pred, target, scored, "smooth_l1").item() == pytest.approx((0.5 + 1.5 + 1.5 + 3.5) / 4)


def test_loss_without_any_scored_entry_is_zero_with_a_gradient():
    pred = torch.ones(2, 3, requires_grad=True)
    loss = od.descriptor_loss(pred, torch.full((2, 3), nan), torch.ones(2, 3, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(pred.grad, torch.zeros(2, 3))


def test_robust_statistics_by_hand():
    values = torch.tensor([
        # median/IQR, IQR 0 -> std, constant, never finite, infinities ignored
        [1.0, 0.0, 7.0, nan, 1.0],
        [2.0, 0.0, 7.0, nan, inf],
        [3.0, 0.0, 7.0, inf, 3.0],
        [4.0, 0.0, 7.0, nan, -inf],
        [5.0, 10.0, 7.0, nan, 5.0],
        [nan, 0.0, 7.0, nan, 7.0],
    ])
    center, scale, valid = od.robust_statistics(values)
    # column 0: 1..5 -> median 3, quartiles 2 and 4; column 4: finite 1, 3, 5, 7 -> median 4, IQR 5.5 - 2.5
    assert center.tolist() == pytest.approx([3.0, 0.0, 7.0, 0.0, 4.0])
    std = math.sqrt(sum((v - 10 / 6) ** 2 for v in [0, 0, 0, 0, 10, 0]) / 6)
    assert scale.tolist() == pytest.approx([2.0, std, 1.0, 1.0, 3.0])
    assert valid.tolist() == [True, True, True, False, True]
    assert torch.isfinite(center).all() and torch.isfinite(scale).all()  # buffers must stay finite


def test_robust_scale_clips_and_keeps_missing_values_missing():
    center, scale = torch.tensor([3.0, 0.0]), torch.tensor([2.0, 1.0])
    raw = torch.tensor([[5.0, 100.0], [nan, -100.0], [inf, 0.5], [-inf, -3.0]])
    out = od.robust_scale(raw, center, scale, clip=10.0)
    assert out[0].tolist() == [1.0, 10.0] and out[1, 1].item() == -10.0
    assert out[2, 1].item() == 0.5 and out[3, 1].item() == -3.0
    # an infinite raw value is missing, never clipped into the largest real value
    assert math.isnan(out[1, 0]) and math.isnan(out[2, 0]) and math.isnan(out[3, 0])


# ------------------------------------------------------------------------------ the objective


def _encoder(norm: str | None = None):
    return build_encoder(ModelConfig(backbone="gin", hidden=16, num_layers=2, norm=norm), molecule_feature_spec())


def _graph(values: list[float], nodes: int = 3) -> Data:
    x = torch.zeros(nodes, 9, dtype=torch.long)
    x[:, 0] = 5
    edge_index = torch.tensor([[i for i in range(nodes - 1)] + [i + 1 for i in range(nodes - 1)],
                               [i + 1 for i in range(nodes - 1)] + [i for i in range(nodes - 1)]])
    return Data(x=x, edge_index=edge_index, edge_attr=torch.zeros(edge_index.size(1), 3, dtype=torch.long),
                descriptors=torch.tensor([values]), num_nodes=nodes)


@pytest.fixture
def objective(monkeypatch) -> DescriptorPrediction:
    """An objective sized for 4 descriptors (as if a set of 4 were chosen)."""
    monkeypatch.setattr(od, "descriptor_width", lambda name, encoder=None: ("four", 4))
    return DescriptorPrediction(_encoder(), target_rate=1.0)


def test_registered_with_its_options():
    assert OBJECTIVES.get("descriptors") is DescriptorPrediction
    objective = build_objective("descriptors", _encoder(), {"descriptors": "fast", "target_rate": 0.5})
    from graphssl.molecule.descriptors import descriptor_names

    assert objective.num_descriptors == len(descriptor_names("fast"))
    assert objective.head[-1].out_features == objective.num_descriptors
    assert build_objective("descriptors", _encoder(), {}).descriptors == "fast"  # auto on molecules
    for bad, match in (({"target_rate": 0.0}, "target_rate"), ({"target_rate": 1.5}, "target_rate"),
                       ({"loss": "l1"}, "unknown loss"), ({"clip": -1}, "clip"), ({"fit_graphs": 0}, "fit_graphs"),
                       ({"descriptors": "some"}, "unknown descriptor set 'some'"), ({"rate": 0.7}, "no option")):
        with pytest.raises(ConfigError, match=match):
            build_objective("descriptors", _encoder(), bad)


def test_forward_is_the_loss_on_scaled_targets(objective):
    graphs = [_graph([1.0, 10.0, nan, 0.0]), _graph([2.0, 20.0, 5.0, 0.0]), _graph([3.0, 90.0, 6.0, 0.0], nodes=4)]
    objective.fit(torch.cat([g.descriptors for g in graphs]))
    assert objective.center.tolist() == pytest.approx([2.0, 20.0, 5.5, 0.0])
    assert objective.scale.tolist() == pytest.approx([1.0, 40.0, 0.5, 1.0])  # last: constant, scale 1
    batch = Batch.from_data_list(graphs)
    objective.eval()
    loss = objective(batch)
    pred = objective.head(objective.encoder.embed_graphs(batch))
    target = torch.tensor([[-1.0, -0.25, nan, 0.0], [0.0, 0.0, -1.0, 0.0], [1.0, 1.75, 1.0, 0.0]])
    finite = torch.isfinite(target)
    assert loss.item() == pytest.approx(((pred - target)[finite] ** 2).mean().item(), rel=1e-5)


def test_a_share_of_the_targets_is_scored_per_step(objective, monkeypatch):
    seen = []
    monkeypatch.setattr(od, "descriptor_loss", lambda pred, target, scored, loss: seen.append(scored) or pred.sum())
    objective.target_rate = 0.3
    graphs = [_graph([float(i), 1.0, nan, 2.0 * i]) for i in range(200)]
    objective.fit(torch.cat([g.descriptors for g in graphs]))
    torch.manual_seed(0)
    objective(Batch.from_data_list(graphs))
    scored = seen[0]
    assert scored.shape == (200, 4)
    share = scored[:, [0, 1, 3]].float().mean().item()
    assert 0.25 < share < 0.35
    assert not scored[:, 2].any()  # a descriptor that is never finite is never a target


def test_missing_or_mismatched_descriptors_name_the_option(objective):
    plain = _graph([1.0, 2.0, 3.0, 4.0])
    del plain.descriptors
    with pytest.raises(ConfigError, match="data.descriptors"):
        objective(Batch.from_data_list([plain]))
    with pytest.raises(ConfigError, match="expects 4 descriptors.*carry 3.*objective.descriptors"):
        objective(Batch.from_data_list([_graph([1.0, 2.0, 3.0])]))


def test_transform_fits_on_the_whole_data_set_once(objective):
    graphs = [_graph([float(i), float(i % 3), nan, 1.0]) for i in range(11)]
    out = objective.transform.many(graphs)
    assert out is graphs  # no copy of the graphs
    expected = od.robust_statistics(torch.cat([g.descriptors for g in graphs]))
    assert torch.equal(objective.center, expected[0]) and torch.equal(objective.scale, expected[1])
    assert bool(objective.fit_done) and int(objective.fitted) == 11
    objective.train()
    objective(Batch.from_data_list([_graph([100.0, 100.0, 100.0, 100.0])]))  # training batches change nothing
    assert torch.equal(objective.center, expected[0])
    objective.transform.limit = 4  # a sample spread over the data set: positions 0, 3, 7, 10
    objective.transform.many(graphs)
    assert int(objective.fitted) == 4 and objective.center[0].item() == pytest.approx(5.0)


def test_streamed_data_fits_on_the_first_batches_then_stops(monkeypatch):
    monkeypatch.setattr(od, "descriptor_width", lambda name, encoder=None: ("four", 4))
    objective = DescriptorPrediction(_encoder(), fit_graphs=8)
    objective.train()
    batches = [[_graph([float(4 * b + i), 0.0, 0.0, 0.0]) for i in range(2)] for b in range(8)]
    fitted = []
    for graphs in batches:
        objective(Batch.from_data_list(graphs))
        fitted.append((int(objective.fitted), bool(objective.fit_done)))
    # refits at 2, 4 and 8 graphs seen, then fixed
    assert fitted == [(2, False), (4, False), (4, False), (8, True), (8, True), (8, True), (8, True), (8, True)]
    # the first 8 graphs' first descriptor: 0, 1, 4, 5, 8, 9, 12, 13
    assert objective.center[0].item() == pytest.approx(6.5)


def test_statistics_survive_a_state_dict_round_trip(objective, monkeypatch):
    objective.fit(torch.tensor([[1.0, 2.0, 3.0, nan], [3.0, 6.0, 9.0, nan]]))
    other = DescriptorPrediction(_encoder(), target_rate=1.0)
    other.load_state_dict(objective.state_dict())
    for name in ("center", "scale", "valid", "fitted", "fit_done"):
        assert torch.equal(getattr(other, name), getattr(objective, name)), name


def test_short_pretraining_on_real_molecules_lowers_the_loss(tmp_path):
    import graphssl as gs
    from graphssl.core.config import RunConfig

    config = RunConfig()
    config.data.name, config.data.limit, config.data.descriptors = "freesolv", 200, "fast"
    config.model.backbone, config.model.hidden, config.model.num_layers = "gine", 64, 3
    config.objective.name = "descriptors"
    config.pretrain.epochs, config.pretrain.batch_size, config.pretrain.lr = 12, 32, 3e-3
    config.output_dir, config.cache_dir, config.progress, config.threads = str(tmp_path / "run"), str(tmp_path / "c"), False, 1
    path = gs.pretrain(config)
    history = torch.load(path, weights_only=False)["history"]
    losses = [h["loss"] for h in history]
    assert len(losses) == 12 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.75 * losses[0], losses  # measured: 0.96 -> 0.59
