"""Fine-tuning recipes: layer-wise learning-rate decay, lp-ft, layer freezing with staged
unfreezing, early stopping, and what finetune.weight_decay is."""

import math
from types import SimpleNamespace

import pytest
import torch

import graphssl.engine.finetune as finetune_module
from graphssl.core.config import FinetuneConfig, ModelConfig, load_config
from graphssl.core.errors import CheckpointError, ConfigError
from graphssl.engine.checkpoint import load_checkpoint, save_checkpoint
from graphssl.engine.finetune import (
    _freeze,
    _layer_of,
    early_stop_epoch,
    encoder_layers,
    finetune,
    frozen_layer_count,
    make_optimizer,
    phase_of,
)
from graphssl.engine.pretrain import pretrain
from graphssl.nn.heads import PredictionHead, PropertyModel
from graphssl import build_encoder, molecule_feature_spec


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _config(tmp_path, molecule_csv, **finetune_options):
    overrides = [
        f"output_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}", "progress=false", "threads=1",
        "model.backbone=gine", "model.hidden=16", "model.num_layers=3", "model.norm=batch_norm",
        f"data.path={molecule_csv}", "pretrain.epochs=1", "pretrain.batch_size=8",
        f"finetune.task.path={molecule_csv}", "finetune.task.label_columns=[logp]",
        "finetune.task.task_type=regression", "finetune.split=random", "finetune.epochs=3", "finetune.batch_size=8",
    ] + [f"finetune.{k}={v}" for k, v in finetune_options.items()]
    return load_config(None, overrides)


def _model(num_layers=3):
    encoder = build_encoder(ModelConfig(backbone="gine", hidden=8, num_layers=num_layers, norm="batch_norm"),
                            molecule_feature_spec())
    return encoder, PropertyModel(encoder, PredictionHead(8, 1))


# ------------------------------------------------------------------ layers and learning rates


def test_layer_of_names_embeddings_layers_and_the_top():
    assert _layer_of("node_embedding.tables.0.weight") == 0
    assert _layer_of("edge_embedding.tables.2.weight") == 0
    assert _layer_of("backbone.embedding.weight") == 0  # SchNet / PaiNN
    assert _layer_of("backbone.convs.0.nn.lins.1.bias") == 1
    assert _layer_of("backbone.norms.1.module.running_mean") == 2  # the norm after convs.1
    assert _layer_of("backbone.interactions.3.mlp.0.weight") == 4
    assert _layer_of("backbone.layer_hook.norms.0.gate.weight") == 1  # SCD's conditioning of layer 0
    assert _layer_of("backbone.lin.weight") is None  # jumping-knowledge projection: after the last layer


def test_encoder_layers_groups_every_parameter_once():
    encoder, _ = _model(num_layers=3)
    layers = encoder_layers(encoder)
    assert len(layers) == 4  # embeddings + 3 message-passing layers
    names = {id(p): n for n, p in encoder.named_parameters()}
    assert sorted(id(p) for layer in layers for p in layer) == sorted(names)
    assert {names[id(p)].split(".")[0] for p in layers[0]} == {"node_embedding", "edge_embedding"}
    assert {".".join(names[id(p)].split(".")[1:3]) for p in layers[1]} == {"convs.0", "norms.0"}
    assert {".".join(names[id(p)].split(".")[1:3]) for p in layers[3]} == {"convs.2"}  # no norm after the last


def test_encoder_layers_refuses_an_encoder_without_numbered_layers():
    encoder = torch.nn.Sequential(torch.nn.Linear(3, 3))
    with pytest.raises(ConfigError, match="'finetune.freeze_layers' needs the encoder's message-passing layers"):
        encoder_layers(encoder, "finetune.freeze_layers")


def test_layer_decay_learning_rates_are_hand_computed():
    encoder, model = _model(num_layers=3)
    ft = FinetuneConfig(lr=0.01, encoder_lr=0.001, layer_decay=0.5)
    groups = {g["name"]: g for g in make_optimizer(model, encoder, ft).param_groups}
    # head at lr; layer 3 (the last) at encoder_lr; each layer below it half the one above
    expected = {"head": 0.01, "layer 3": 0.001, "layer 2": 0.0005, "layer 1": 0.00025, "layer 0": 0.000125}
    assert {name: g["lr"] for name, g in groups.items()} == pytest.approx(expected, rel=1e-12)
    assert {id(p) for p in groups["head"]["params"]} == {id(p) for p in model.head.parameters()}
    layers = encoder_layers(encoder)
    for i in range(4):
        assert [id(p) for p in groups[f"layer {i}"]["params"]] == [id(p) for p in layers[i]]
    # without encoder_lr the last layer trains at lr
    ft = FinetuneConfig(lr=0.01, layer_decay=0.7)
    lrs = {g["name"]: g["lr"] for g in make_optimizer(model, encoder, ft).param_groups}
    assert lrs == pytest.approx({"head": 0.01, "layer 3": 0.01, "layer 2": 0.007, "layer 1": 0.0049,
                                 "layer 0": 0.00343}, rel=1e-12)


def test_finetune_writes_the_layer_decay_groups_into_its_optimizer_state(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv, epochs=1, lr=0.01, encoder_lr=0.002, layer_decay=0.5)
    finetune(config)
    groups = load_checkpoint(tmp_path / "run" / "last.pt")["optimizer"]["param_groups"]
    assert sorted((g["name"], g["lr"]) for g in groups) == sorted(
        [("head", 0.01), ("layer 3", 0.002), ("layer 2", 0.001), ("layer 1", 0.0005), ("layer 0", 0.00025)])


def test_weight_decay_is_adam_s_coupled_l2_penalty_not_adamw():
    # one parameter w = 2 with no loss gradient: coupled L2 makes the gradient 0.1 * 2 = 0.2, which
    # Adam scales to a step of lr (m_hat / sqrt(v_hat) = 0.2 / 0.2); AdamW would shrink w by lr * wd only
    weight = torch.nn.Parameter(torch.tensor([2.0]))
    model = torch.nn.Module()
    model.head = torch.nn.Linear(1, 1)
    model.w = weight
    ft = SimpleNamespace(lr=0.01, encoder_lr=None, layer_decay=None, weight_decay=0.1)
    optimizer = make_optimizer(model, torch.nn.Module(), ft)
    assert type(optimizer) is torch.optim.Adam
    weight.grad = torch.zeros(1)
    optimizer.step()
    assert weight.item() == pytest.approx(2.0 - 0.01 * 0.2 / (0.2 + 1e-8), abs=1e-7)  # 1.99
    assert not math.isclose(weight.item(), 2.0 * (1 - 0.01 * 0.1), abs_tol=1e-4)  # AdamW's 1.998


# ------------------------------------------------------------------ freezing


def test_frozen_layer_schedule_with_staged_unfreezing_and_lp_ft():
    ft = FinetuneConfig(epochs=10, freeze_layers=3, unfreeze_every=2)
    assert [frozen_layer_count(ft, e, 6) for e in range(8)] == [3, 3, 2, 2, 1, 1, 0, 0]
    ft = FinetuneConfig(epochs=10, freeze_layers=2)
    assert [frozen_layer_count(ft, e, 6) for e in range(3)] == [2, 2, 2]
    ft = FinetuneConfig(epochs=10, mode="lp-ft", probe_epochs=2, freeze_layers=2, unfreeze_every=1)
    assert [frozen_layer_count(ft, e, 6) for e in range(6)] == [6, 6, 2, 1, 0, 0]  # staging starts after the probe
    assert [phase_of(ft, e) for e in range(4)] == ["probe", "probe", "finetune", "finetune"]
    ft = FinetuneConfig(freeze_layers=7)
    with pytest.raises(ConfigError, match="'finetune.freeze_layers' is 7, but the encoder has 6 layers"):
        frozen_layer_count(ft, 0, 6)


def test_freeze_sets_gradients_and_puts_frozen_batch_norms_in_eval_mode():
    encoder, _ = _model(num_layers=3)
    layers = encoder_layers(encoder)
    trainable = {id(p) for p in encoder.parameters()}
    eval_modules = _freeze(encoder, layers, trainable, 2)  # embeddings and the first layer
    for i, params in enumerate(layers):
        assert all(p.requires_grad == (i >= 2) for p in params), i
    assert eval_modules == [encoder.backbone.norms[0].module]  # norms.0 follows convs.0: layer 1
    assert _freeze(encoder, layers, trainable, 4) == [encoder]  # everything frozen: the whole encoder
    assert _freeze(encoder, layers, trainable, 0) == [] and all(p.requires_grad for p in encoder.parameters())


def test_frozen_layers_do_not_change_and_keep_their_batch_norm_statistics(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv, freeze_layers=2, weight_decay=0.1, reestimate_batch_norm="false")
    encoder_path = pretrain(config)
    pretrained = load_checkpoint(encoder_path)["encoder"]
    config.output_dir = str(tmp_path / "frozen")
    finetune(config, checkpoint=encoder_path)
    tuned = load_checkpoint(tmp_path / "frozen" / "last.pt")["model"]
    frozen = [k for k in pretrained if (_layer_of(k) if _layer_of(k) is not None else 3) < 2]
    trained = [k for k in pretrained if k not in frozen]
    assert any(k.startswith("node_embedding") for k in frozen) and "backbone.norms.0.module.running_mean" in frozen
    for name in frozen:  # weights, and the running statistics of norms.0 (eval mode: never updated)
        assert torch.equal(tuned[f"encoder.{name}"], pretrained[name]), name
    # the layers above train, and the batch norm of layer 2 (train mode) moves its statistics
    assert not torch.equal(tuned["encoder.backbone.norms.1.module.running_mean"],
                           pretrained["backbone.norms.1.module.running_mean"])
    assert any(not torch.equal(tuned[f"encoder.{k}"], pretrained[k]) for k in trained if "convs.2" in k)


# ------------------------------------------------------------------ lp-ft


def test_lp_ft_trains_the_head_alone_then_everything(tmp_path, molecule_csv, monkeypatch):
    config = _config(tmp_path, molecule_csv, mode="lp-ft", probe_epochs=2, epochs=3, reestimate_batch_norm="false")
    encoder_path = pretrain(config)
    pretrained = load_checkpoint(encoder_path)["encoder"]
    states = []
    original = finetune_module.save_checkpoint

    def keep(path, payload):
        if payload.get("kind") == "finetune-state":
            states.append({k: v.clone() for k, v in payload["model"].items()})
        return original(path, payload)

    monkeypatch.setattr(finetune_module, "save_checkpoint", keep)
    config.output_dir = str(tmp_path / "lpft")
    result = finetune(config, checkpoint=encoder_path)
    assert [h["phase"] for h in result.history] == ["probe", "probe", "finetune"]
    assert len(states) == 3
    for epoch in (0, 1):  # probe epochs: encoder weights and statistics exactly as pretrained
        assert all(torch.equal(states[epoch][f"encoder.{k}"], v) for k, v in pretrained.items()), epoch
    head = [k for k in states[0] if k.startswith("head.")]
    assert head and any(not torch.equal(states[0][k], states[1][k]) for k in head)  # the head trains meanwhile
    # from epoch 3 on the encoder trains too
    assert any(not torch.equal(states[2][f"encoder.{k}"], v) for k, v in pretrained.items() if "running" not in k)
    # selection covers every epoch, probe ones included
    best = min(result.history, key=lambda h: h["valid"])
    assert result.best_epoch == best["epoch"] and result.test == best["test"]


# ------------------------------------------------------------------ early stopping


def test_patience_stops_at_the_right_epoch_on_a_constructed_history():
    rmse = [3.0, 2.5, 2.6, 2.4, 2.45, 2.5, 2.3, 2.2]
    # best at epoch 4; epochs 5 and 6 do not improve: patience 2 stops after epoch 6
    assert early_stop_epoch(rmse, "rmse", 2) == 6
    assert early_stop_epoch(rmse, "rmse", 3) == 8  # epoch 7 improves within 3: runs to the end
    assert early_stop_epoch(rmse, "rmse", 1) == 3  # epoch 3 is worse than epoch 2
    assert early_stop_epoch(rmse, "rmse", None) == 8
    auc = [0.6, 0.7, 0.7, 0.65, 0.71]  # higher is better; a tie is no improvement
    assert early_stop_epoch(auc, "roc_auc", 2) == 4
    assert early_stop_epoch([float("nan")] * 5, "rmse", 2) == 2  # NaN never improves
    # lp-ft: the count starts no earlier than the end of the probe phase
    assert early_stop_epoch([3.0, 3.1, 3.2, 3.3, 3.4, 3.5], "rmse", 2, probe_epochs=3) == 5


def test_patience_stops_the_loop_where_the_rule_says(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv, epochs=8, patience=1, lr=0.05)
    result = finetune(config)
    valid = [h["valid"] for h in result.history]
    stopped = early_stop_epoch(valid, "rmse", 1)
    assert len(result.history) == stopped  # the loop stopped exactly where the rule replays
    assert result.best_epoch == min(result.history, key=lambda h: h["valid"])["epoch"]
    assert result.test == result.history[result.best_epoch - 1]["test"]
    assert len(valid) < 8 and len(valid) - result.best_epoch == 1  # this run stops early, one epoch after its best


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize("options, message", [
    ({"mode": "lp-ft"}, "'finetune.probe_epochs' must be at least 1 and below finetune.epochs \\(100\\) with "
                        "finetune.mode=lp-ft; got 0"),
    ({"mode": "lp-ft", "probe_epochs": 100}, "'finetune.probe_epochs' must be at least 1 .*got 100"),
    ({"probe_epochs": 3}, "'finetune.probe_epochs' applies only to finetune.mode=lp-ft .*got 3"),
    ({"layer_decay": 0.0}, "'finetune.layer_decay' must be a number in \\(0, 1\\].*got 0.0"),
    ({"layer_decay": 1.5}, "'finetune.layer_decay' must be a number in \\(0, 1\\].*got 1.5"),
    ({"freeze_layers": -1}, "'finetune.freeze_layers' must be a non-negative integer; got -1"),
    ({"unfreeze_every": 2}, "'finetune.unfreeze_every' \\(2\\) unfreezes layers of finetune.freeze_layers, which is 0"),
    ({"freeze_layers": 2, "unfreeze_every": 0}, "'finetune.unfreeze_every' must be a positive integer.*got 0"),
    ({"patience": 0}, "'finetune.patience' must be a positive integer, or empty for no early stopping; got 0"),
    ({"mode": "linear", "layer_decay": 0.7}, "'finetune.layer_decay' \\(0.7\\) acts on the encoder, which "
                                             "finetune.mode=linear freezes whole"),
    ({"mode": "linear", "freeze_layers": 1}, "'finetune.freeze_layers' \\(1\\) acts on the encoder"),
])
def test_bad_recipe_options_are_named_with_their_value(options, message):
    with pytest.raises(ConfigError, match=message):
        FinetuneConfig(**options).check()


def test_too_many_frozen_layers_fail_before_training(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv, freeze_layers=5)
    with pytest.raises(ConfigError, match="'finetune.freeze_layers' is 5, but the encoder has 4 layers"):
        finetune(config)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_state_written_before_the_recipe_options_existed_still_resumes(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv, epochs=1)
    finetune(config)
    last = tmp_path / "run" / "last.pt"
    state = load_checkpoint(last)
    for name in ("probe_epochs", "layer_decay", "freeze_layers", "unfreeze_every", "patience"):
        del state["config"]["finetune"][name]
    del state["config"]["finetune"]["task"]["workers"]  # nor the task's data.workers
    save_checkpoint(last, state)
    config.finetune.epochs = 2
    config.finetune.task.workers = 2  # how the task's graphs are built does not change the run
    result = finetune(config)
    assert [h["epoch"] for h in result.history] == [1, 2]  # epoch 1 came from the old state
    config.finetune.epochs, config.finetune.patience = 3, 1  # a new option set away from its default
    with pytest.raises(CheckpointError, match="different settings \\(finetune\\)"):
        finetune(config)
