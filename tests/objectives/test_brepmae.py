"""BRepMAE: per-face geometry and attribute reconstruction on Hi-GMAE's hierarchy."""

import math

import pytest
import torch
from torch_geometric.data import Batch, Data

from graphssl.brep.encoders import NUM_SURFACE_TYPES, brep_feature_spec
from graphssl.core.config import ModelConfig, load_config, options_text
from graphssl.core.errors import ConfigError, DataError
from graphssl.engine.checkpoint import load_checkpoint
from graphssl.engine.pretrain import pretrain
from graphssl.molecule.adapter import smiles_to_data
from graphssl.molecule.features import molecule_feature_spec
from graphssl.nn import build_encoder
from graphssl.objectives import OBJECTIVES, BRepMAE, build_objective, objective_options
from graphssl.objectives.brepmae import TERMS, per_part_mask
from graphssl.objectives.higmae import HiGMAE
from graphssl.transforms.coarsen import level_batch

pytestmark = pytest.mark.usefixtures("one_thread")

NAN = float("nan")


def _encoder(backbone="gine", grid=2, hidden=16):
    return build_encoder(ModelConfig(backbone=backbone, hidden=hidden, num_layers=2), brep_feature_spec(grid=grid))


def _part(types, areas, pairs, grid=2):
    """A synthetic face graph with the adapter's fields; B-rep edge k between faces a < b is
    graph edges 2k (a -> b) and 2k + 1 (b -> a)."""
    n = len(types)
    src = [v for a, b in pairs for v in (a, b)]
    dst = [v for a, b in pairs for v in (b, a)]
    face_grid = torch.zeros(n, 7, grid, grid)
    face_grid[:, 6] = 1.0
    return Data(
        x=torch.tensor(types).view(-1, 1), face_area=torch.tensor(areas).view(-1, 1), face_grid=face_grid,
        edge_index=torch.tensor([src, dst], dtype=torch.long).view(2, -1),
        edge_attr=torch.zeros(len(src), 2, dtype=torch.long), edge_length=torch.full((len(src), 1), 0.5),
        edge_grid=torch.linspace(-1, 1, len(src) * 12).view(len(src), 6, 2), num_nodes=n,
    )


def _two_parts():
    """Part A: three faces in a triangle (degree 2 each); part B: two faces sharing one edge (degree 1)."""
    a = _part([0, 0, 1], [0.3, 0.5, 0.2], [(0, 1), (0, 2), (1, 2)])
    b = _part([1, 0], [0.25, 0.7], [(0, 1)])
    # masked face 1 (part A): points, normals; sample (1, 0) trimmed away, holding junk
    a.face_grid[1, 0:3] = torch.tensor([[[1.0, 2.0], [100.0, 0.0]], [[0.0, 1.0], [-50.0, 1.0]],
                                        [[2.0, 0.0], [77.0, 1.0]]])
    a.face_grid[1, 3:6] = torch.tensor([[[0.0, 0.0], [9.0, 0.0]], [[0.0, 0.0], [9.0, 0.0]],
                                        [[1.0, 1.0], [9.0, -1.0]]])
    a.face_grid[1, 6] = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    # masked face 3 (part B, face 0): only sample (0, 0) inside
    b.face_grid[0, 0:3, 0, 0] = torch.tensor([3.0, 0.0, 1.0])
    b.face_grid[0, 0:3, 1, 1] = 40.0
    b.face_grid[0, 3:6, 0, 0] = torch.tensor([0.0, 1.0, 0.0])
    b.face_grid[0, 6] = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    return a, b


def _fixed_masks(batch, masked_faces, levels):
    """Level masks from a level-0 mask: a supernode counts as masked when any child is (the
    state CoFi-R recovery leaves)."""
    masks = [torch.zeros(batch.num_nodes, dtype=torch.bool)]
    masks[0][masked_faces] = True
    for level in range(1, levels + 1):
        n = int(batch[f"n_{level}"].sum())
        up = torch.zeros(n, dtype=torch.bool)
        up[batch[f"cluster_{level}"][masks[-1]]] = True
        masks.append(up)
    return masks


def _constant_heads(objective, type_bias, area_bias, degree_bias):
    """Heads that ignore the decoder: geometry 0, fixed type logits, area and degree."""
    with torch.no_grad():
        for head in (objective.geometry_head, objective.type_head, objective.area_head, objective.degree_head):
            head.weight.zero_()
        objective.geometry_head.bias.zero_()
        objective.type_head.bias.copy_(type_bias)
        objective.area_head.bias.fill_(area_bias)
        objective.degree_head.bias.fill_(degree_bias)


WEIGHTS = {"point_weight": 2.0, "normal_weight": 0.5, "type_weight": 3.0, "area_weight": 0.25, "degree_weight": 4.0}


def _tiny_setup(**options):
    torch.manual_seed(0)
    objective = build_objective("brepmae", _encoder(), {"levels": 1, "ratio": 0.5, **WEIGHTS, **options})
    batch = Batch.from_data_list(objective.transform.many(list(_two_parts())))
    type_bias = torch.zeros(NUM_SURFACE_TYPES)
    type_bias[0] = math.log(3.0)
    _constant_heads(objective, type_bias, area_bias=0.0, degree_bias=0.5)
    return objective, batch, _fixed_masks(batch, [1, 3], levels=1)


def test_each_term_and_the_loss_equal_hand_computed_values():
    objective, batch, masks = _tiny_setup()
    loss, terms = objective.loss_terms(batch, masks)
    # points: valid samples of face 1 at (0,0), (0,1), (1,1): (1,0,2), (2,1,0), (0,1,1); face 3 at (0,0): (3,0,1)
    points = (1 + 4) + (4 + 1) + (1 + 1) + (9 + 1)
    # normals, the same samples: (0,0,1), (0,0,1), (0,0,-1) and (0,1,0)
    normals = 1 + 1 + 1 + 1
    assert terms["points"].item() == pytest.approx(points / (4 * 3))
    assert terms["normals"].item() == pytest.approx(normals / (4 * 3))
    # logits log 3 for plane, 0 for the other 10 types: p(plane) = 3/13, p(cylinder) = 1/13
    kind = (-math.log(3 / 13) - math.log(1 / 13)) / 2  # face 1 is a plane, face 3 a cylinder
    assert terms["type"].item() == pytest.approx(kind, rel=1e-6)
    area = (math.log(0.5 + 1e-6) ** 2 + math.log(0.25 + 1e-6) ** 2) / 2
    assert terms["area"].item() == pytest.approx(area, rel=1e-5)
    degree = ((0.5 - math.log(3)) ** 2 + (0.5 - math.log(2)) ** 2) / 2  # degrees 2 and 1
    assert terms["degree"].item() == pytest.approx(degree, rel=1e-5)
    expected = 2.0 * points / 12 + 0.5 * normals / 12 + 3.0 * kind + 0.25 * area + 4.0 * degree
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_only_masked_faces_contribute():
    objective, batch, masks = _tiny_setup()
    before = objective.loss_terms(batch, masks)[0].item()
    changed = batch.clone()
    unmasked = ~masks[0]
    changed.face_grid[unmasked, :6] += 5.0
    changed.face_area[unmasked] *= 3.0
    changed.x[unmasked] = 4
    assert objective.loss_terms(changed, masks)[0].item() == pytest.approx(before, rel=1e-6)
    # the same change on one masked face moves every term
    changed = batch.clone()
    changed.face_grid[3, :6] += 5.0
    changed.face_area[3] *= 3.0
    changed.x[3] = 0  # a cylinder becomes a plane, whose logit differs
    after = objective.loss_terms(changed, masks)[1]
    reference = objective.loss_terms(batch, masks)[1]
    assert all(after[t].item() != pytest.approx(reference[t].item()) for t in ("points", "normals", "type", "area"))


def test_trimmed_away_samples_do_not_contribute():
    objective, batch, masks = _tiny_setup()
    before = objective.loss_terms(batch, masks)[1]
    junk = batch.clone()
    invalid = junk.face_grid[:, 6:7].expand(-1, 6, -1, -1) == 0
    junk.face_grid[:, :6][invalid] = NAN
    after = objective.loss_terms(junk, masks)[1]
    for term in TERMS:
        assert after[term].item() == pytest.approx(before[term].item(), rel=1e-6), term
    # the prediction at a trimmed-away sample gets no gradient, even against a NaN target
    predicted = objective.predict(objective.decode_masked(junk, masks))
    predicted["geometry"].retain_grad()
    terms = objective.compute_terms(predicted, objective.targets(junk, masks[0]))
    (terms["points"] + terms["normals"]).backward()
    grad = predicted["geometry"].grad
    valid = objective.targets(junk, masks[0])["valid"].unsqueeze(1).expand_as(grad)
    assert torch.isfinite(grad).all()
    assert torch.equal(grad[~valid], torch.zeros_like(grad[~valid])) and grad[valid].abs().sum() > 0


@pytest.mark.parametrize("backbone", ["gine", "gin", "gat"])
def test_gradients_reach_the_encoder(backbone):
    torch.manual_seed(0)
    objective = build_objective("brepmae", _encoder(backbone), {"levels": 1, "ratio": 0.5})
    parts = [_part([0, 1, 0, 2], [0.1, 0.2, 0.3, 0.4], [(0, 1), (1, 2), (2, 3), (0, 3)]) for _ in range(3)]
    for k, part in enumerate(parts):
        part.face_grid[:, :6] = torch.randn(4, 6, 2, 2) + k
    batch = Batch.from_data_list(objective.transform.many(parts))
    objective(batch).backward()
    missing = [n for n, p in objective.named_parameters() if p.grad is None]
    assert missing == sorted(objective.unused_parameters()) == []
    encoder = objective.encoder
    assert encoder.node_embedding.cnn[0].weight.grad.abs().sum() > 0
    edge_grad = encoder.edge_embedding.cnn[0].weight.grad.abs().sum()
    if encoder.reads_edge_features:
        assert edge_grad > 0
    else:  # gin reads no edge features, and the decoder reads only masked faces' edges, all hidden by the token
        assert edge_grad == 0 and objective.edge_mask_token.grad.abs().sum() > 0
    assert all(p.grad.abs().sum() > 0 for p in encoder.backbone.parameters() if p.grad is not None)


def test_per_part_mask_counts_and_boundaries():
    batch = torch.tensor([0] + [1] * 2 + [2] * 5 + [3] * 10)
    # round(0.6 n), at least 1, at most n - 1 when n >= 2: n = 1, 2, 5, 10 -> 1, 1, 3, 6
    hits = torch.zeros(batch.numel())
    for _ in range(400):
        mask = per_part_mask(batch, 4, 0.6)
        assert torch.bincount(batch[mask], minlength=4).tolist() == [1, 1, 3, 6]
        hits += mask.float()
    # uniform within a part: each face of the 10-face part is masked in about 60 % of the draws
    assert (hits[8:] / 400 - 0.6).abs().max() < 0.1
    with pytest.raises(ConfigError, match="mask_rate"):
        build_objective("brepmae", _encoder(), {"mask_rate": 1.0})


def test_masks_of_a_batch_stay_inside_each_part():
    torch.manual_seed(0)
    objective = build_objective("brepmae", _encoder(), {"levels": 2, "ratio": 0.5, "mask_rate": 0.5})
    sizes = [6, 9, 3, 12]
    parts = [_part([0] * n, [0.1] * n, [(i, i + 1) for i in range(n - 1)]) for n in sizes]
    batch = Batch.from_data_list(objective.transform.many(parts))
    for _ in range(20):
        masks = objective.sample_masks(batch)
        top = level_batch(batch, 2)
        top_counts = torch.bincount(top, minlength=4)
        expected = [min(max(round(0.5 * int(n)), 1), max(int(n) - 1, 1)) for n in top_counts]
        assert torch.bincount(top[masks[2]], minlength=4).tolist() == expected
        per_part = torch.bincount(batch.batch[masks[0]], minlength=4)
        # every part has masked faces; a part of two or more supernodes keeps visible ones
        assert bool((per_part > 0).all())
        assert torch.equal(per_part < torch.tensor(sizes), top_counts >= 2)
        # level-0 masks are exactly the descendants of masked supernodes (recovery is off)
        ancestor = batch["cluster_2"][batch["cluster_1"]]
        assert torch.equal(masks[0], masks[2][ancestor])


def test_refuses_non_brep_encoders_and_data():
    molecular = build_encoder(ModelConfig(backbone="gine", hidden=16, num_layers=2), molecule_feature_spec())
    with pytest.raises(ConfigError, match="FaceGridEmbedding"):
        build_objective("brepmae", molecular)
    geometric = build_encoder(ModelConfig(backbone="schnet", hidden=8, num_layers=1))
    with pytest.raises(ConfigError, match="message-passing backbone"):
        build_objective("brepmae", geometric)
    objective = build_objective("brepmae", _encoder(), {"levels": 1})
    molecules = objective.transform.many([smiles_to_data("CCO"), smiles_to_data("c1ccccc1")])
    with pytest.raises(DataError, match="no face_area, face_grid"):
        objective(Batch.from_data_list(molecules))
    wrong_grid = objective.transform.many([_part([0, 1], [0.1, 0.2], [(0, 1)], grid=3)])
    with pytest.raises(DataError, match=r"expected \[F, 7, 2, 2\]"):
        objective(Batch.from_data_list(wrong_grid))
    with pytest.raises(DataError, match="coarse levels"):  # Hi-GMAE's check: the transform was not applied
        objective(Batch.from_data_list([_part([0, 1], [0.1, 0.2], [(0, 1)])]))
    with pytest.raises(ConfigError, match="area_weight must be >= 0"):
        build_objective("brepmae", _encoder(), {"area_weight": -1.0})
    with pytest.raises(ConfigError, match="at least one of point_weight"):
        build_objective("brepmae", _encoder(), {k: 0.0 for k in WEIGHTS})


def test_registered_with_its_options():
    assert OBJECTIVES.get("brepmae") is BRepMAE and issubclass(BRepMAE, HiGMAE)
    options = objective_options("brepmae")
    assert options["mask_rate"] == 0.6 and options["recovery_rate"] == 0.0 and options["mask_edges"] is True
    assert {"point_weight", "normal_weight", "type_weight", "area_weight", "degree_weight"} <= set(options)
    assert "brepmae" in options_text()


def test_edge_mask_token_hides_the_edges_of_masked_faces():
    objective, batch, masks = _tiny_setup()
    with_token = objective.loss_terms(batch, masks)[0]
    # edge grids of edges touching a masked face are not read: changing them changes nothing
    changed = batch.clone()
    touching = masks[0][batch.edge_index[0]] | masks[0][batch.edge_index[1]]
    changed.edge_grid[touching] += 3.0
    assert objective.loss_terms(changed, masks)[0].item() == pytest.approx(with_token.item(), rel=1e-6)
    torch.manual_seed(0)
    plain = build_objective("brepmae", _encoder(), {"levels": 1, "ratio": 0.5, "mask_edges": False})
    assert plain.edge_mask_token is None


@pytest.fixture(scope="module")
def part_graphs(parts_dir):
    from graphssl.brep.adapter import step_to_graphs

    return [g for path in sorted(parts_dir.glob("*.step")) for g in step_to_graphs(path)]


def test_thirty_steps_on_generated_parts_lower_the_loss(part_graphs):
    torch.manual_seed(0)
    encoder = build_encoder(ModelConfig(backbone="gine", hidden=32, num_layers=2), brep_feature_spec())
    objective = build_objective("brepmae", encoder, {})
    graphs = objective.transform.many(part_graphs)
    evaluation = Batch.from_data_list(graphs)

    def evaluate():
        objective.eval()
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(123)  # the same masks before and after
            value = torch.stack([objective(evaluation) for _ in range(4)]).mean().item()
        objective.train()
        return value

    before = evaluate()
    optimiser = torch.optim.Adam(objective.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        pick = torch.randperm(len(graphs), generator=generator)[:8]
        loss = objective(Batch.from_data_list([graphs[i] for i in pick]))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    after = evaluate()
    assert after < 0.7 * before, (before, after)


def _config(tmp_path, parts_dir, cache, folder, epochs):
    return load_config(None, [
        f"output_dir={tmp_path / folder}", f"cache_dir={cache}", "progress=false", "threads=1",
        "model.backbone=gine", "model.hidden=16", "model.num_layers=2", f"data.path={parts_dir}",
        f"pretrain.epochs={epochs}", "pretrain.batch_size=8", "objective.name=brepmae", "objective.levels=1",
    ])


@pytest.mark.slow
def test_checkpoint_round_trip_and_resume(tmp_path, parts_dir, cache):
    from graphssl.engine.pretrained import load_pretrained

    straight = pretrain(_config(tmp_path, parts_dir, cache, "straight", 2))
    pretrain(_config(tmp_path, parts_dir, cache, "resumed", 1))
    pretrain(_config(tmp_path, parts_dir, cache, "resumed", 2))
    a = load_checkpoint(tmp_path / "straight" / "last.pt")["objective"]
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")["objective"]
    assert "edge_mask_token" in a and "geometry_head.weight" in a and a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key
    # the objective's state loads into a freshly built one; encoder.pt holds the encoder alone
    objective = build_objective("brepmae", build_encoder(ModelConfig(backbone="gine", hidden=16, num_layers=2),
                                                         brep_feature_spec()), {"levels": 1})
    objective.load_state_dict(a)
    assert all(torch.equal(v, a[k]) for k, v in objective.state_dict().items())
    saved = load_checkpoint(straight)
    assert saved["objective_name"] == "brepmae" and "node_embedding.cnn.0.weight" in saved["encoder"]
    assert not any(k.startswith(("geometry_head", "edge_mask_token")) for k in saved["encoder"])
    pretrained = load_pretrained(straight)
    assert pretrained.objective == "brepmae"
    encoder = build_encoder(pretrained.model, brep_feature_spec())
    encoder.load_state_dict(pretrained.weights)  # strict: exactly the encoder's keys
    assert all(torch.equal(v, saved["encoder"][k]) for k, v in encoder.state_dict().items())
