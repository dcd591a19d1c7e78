"""graphssl objectives and tasks inside a Lightning Trainer: the hooks run, weights move, encoder.pt round-trips."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from graphssl.core.config import DataConfig, FinetuneConfig, ModelConfig, load_config
from graphssl.core.errors import ConfigError, DataError, TrainingDiverged
from graphssl.data.dataset import load_dataset
from graphssl.data.splits import make_split
from graphssl.engine.finetune import finetune
from graphssl.engine.pretrained import load_pretrained
from graphssl.lightning import (
    ObjectiveModule,
    TaskModule,
    build_objective_module,
    finetune_encoder,
    objective_dataloader,
)
from graphssl.nn import build_encoder
from graphssl.objectives import GraphMAE
from graphssl.tasks import build_task

pytestmark = pytest.mark.usefixtures("one_thread")

MODEL = ModelConfig(backbone="gine", hidden=16, num_layers=2)


def _trainer(**options) -> pl.Trainer:
    defaults = {"accelerator": "cpu", "devices": 1, "fast_dev_run": True, "logger": False,
                "enable_progress_bar": False, "enable_model_summary": False, "enable_checkpointing": False}
    return pl.Trainer(**{**defaults, **options})


def _quiet_fit(trainer: pl.Trainer, *args) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on dataloader workers and batch sizes
        trainer.fit(*args)


@pytest.fixture
def unlabeled(smiles_file, tmp_path):
    return load_dataset(DataConfig(path=str(smiles_file)), tmp_path / "cache", progress=False, verbose=False)


@pytest.fixture
def labelled(molecule_csv, tmp_path):
    config = DataConfig(path=str(molecule_csv), label_columns=["logp"], task_type="regression")
    return load_dataset(config, tmp_path / "cache", progress=False, verbose=False)


def _copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> list[str]:
    return [k for k, v in module.state_dict().items() if v.is_floating_point() and not torch.equal(before[k], v)]


def test_graphmae_trains_one_step_and_its_encoder_round_trips_into_finetuning(unlabeled, molecule_csv, tmp_path):
    torch.manual_seed(0)
    module = build_objective_module(MODEL, "graphmae", unlabeled, {"mask_rate": 0.5}, lr=1e-2)
    before = _copy(module.encoder)
    _quiet_fit(_trainer(), module, objective_dataloader(unlabeled, module.objective, batch_size=8))
    assert module.global_step == 1
    [entry] = module.history
    assert math.isfinite(entry["loss"]) and entry["loss"] > 0 and entry["steps"] == 1 and entry["skipped_steps"] == 0
    assert _changed(before, module.encoder)  # the optimiser stepped the encoder's weights

    path = module.export_encoder(tmp_path / "out" / "encoder.pt", clean=unlabeled, clean_graphs=20)
    pretrained = load_pretrained(path)
    assert pretrained.objective == "graphmae" and pretrained.model == MODEL
    # the weights as trained; batch-norm statistics re-estimated on clean graphs, never on the training copy
    trained = module.encoder.state_dict()
    for name, value in pretrained.weights.items():
        if "running_" in name:
            continue
        assert torch.equal(value, trained[name]), name
    assert any(not torch.equal(pretrained.weights[k], trained[k]) for k in trained if k.endswith("running_mean"))

    # graphssl's own fine-tuning loop reads it (the `graphssl finetune --checkpoint` path)
    config = load_config(None, [f"output_dir={tmp_path / 'ft'}", f"cache_dir={tmp_path / 'cache'}", "progress=false",
                                "threads=1", f"finetune.task.path={molecule_csv}", "finetune.task.label_columns=[logp]",
                                "finetune.task.task_type=regression", "finetune.split=random", "finetune.epochs=1",
                                "finetune.batch_size=8", "finetune.save_checkpoints=false"])
    result = finetune(config, checkpoint=path)
    assert result.metric == "rmse" and math.isfinite(result.test)
    # and so does the encoder TaskModule fine-tunes, with fine-tuning's dropout
    encoder = finetune_encoder(path, unlabeled, FinetuneConfig(dropout=0.3))
    assert all(torch.equal(encoder.state_dict()[k], v) for k, v in pretrained.weights.items())
    assert encoder.backbone.dropout.p == 0.3


@pytest.mark.parametrize("name,options", [("graphcl", {"loss": "bgrl"}), ("jepa", {})])
def test_an_ema_target_moves_after_each_optimiser_step(unlabeled, name, options):
    torch.manual_seed(0)
    module = build_objective_module(MODEL, name, unlabeled, options, lr=1e-2)
    target = module.objective.target
    target_before, online_before = _copy(target), _copy(module.encoder)
    calls = []
    original = module.objective.set_epoch
    module.objective.set_epoch = lambda epoch, total: (calls.append((epoch, total)), original(epoch, total))
    _quiet_fit(_trainer(), module, objective_dataloader(unlabeled, module.objective, batch_size=8))
    assert calls == [(0, 1)]  # fast_dev_run is one epoch
    assert _changed(online_before, module.encoder)
    moved = _changed(target_before, target)
    # after_step ran: the target's parameters, which get no gradient, moved towards the online ones
    params = [k for k, _ in target.named_parameters()]
    assert set(params) & set(moved)
    assert all(not p.requires_grad for p in target.parameters())
    assert math.isfinite(module.history[0]["loss"])
    assert "embedding_std" in module.history[0]  # the objective's metrics() reach the epoch's entry


def test_schedules_span_the_epochs_max_steps_takes(unlabeled):
    module = build_objective_module(MODEL, "graphmae", unlabeled)
    calls = []
    module.objective.set_epoch = lambda epoch, total: calls.append((epoch, total))
    loader = objective_dataloader(unlabeled, module.objective, batch_size=8)  # 72 graphs: 9 steps an epoch
    _quiet_fit(_trainer(fast_dev_run=False, max_steps=12), module, loader)
    assert module.global_step == 12 and calls == [(0, 2), (1, 2)]
    assert [entry["steps"] for entry in module.history] == [9, 12]


def test_a_transform_runs_once_over_the_data(unlabeled):
    module = build_objective_module(MODEL, "higmae", unlabeled)
    loader = objective_dataloader(unlabeled, module.objective, batch_size=4, shuffle=False)
    first = next(iter(loader))
    assert first.num_graphs == 4
    # Hi-GMAE's coarsening writes its hierarchy onto every graph before batching
    added = set(loader.dataset[0].keys()) - set(unlabeled[0].keys())
    assert added


def test_a_nonfinite_loss_is_skipped_within_the_budget_then_stops(unlabeled):
    class Exploding(GraphMAE):
        def forward(self, data):
            loss = super().forward(data)
            if self.explode == "loss":
                return loss * float("nan")
            weight = next(self.encoder.parameters()) * 1.0
            weight.register_hook(lambda grad: torch.full_like(grad, float("inf")))
            return loss + 0.0 * weight.sum()  # a finite loss whose gradient is infinite

    torch.manual_seed(0)
    encoder = build_encoder(MODEL, unlabeled.feature_spec)
    objective = Exploding(encoder)
    before = _copy(objective)
    loader = objective_dataloader(unlabeled, objective, batch_size=8)
    for cause in ("loss", "grads"):
        objective.explode = cause
        module = ObjectiveModule(objective, model=MODEL, skip_nonfinite=1)
        _quiet_fit(_trainer(), module, loader)
        assert module.history[0]["skipped_steps"] == 1, cause
        assert not _changed(before, objective), cause  # no update and the batch-norm statistics restored
    with pytest.raises(TrainingDiverged, match="the gradients held NaN.*skip_nonfinite=N"):
        _quiet_fit(_trainer(), ObjectiveModule(objective, model=MODEL), loader)
    objective.explode = "loss"
    with pytest.raises(TrainingDiverged, match="the loss was nan.*skip_nonfinite=N"):
        _quiet_fit(_trainer(), ObjectiveModule(objective, model=MODEL), loader)


def test_bad_arguments_fail_by_name(unlabeled, tmp_path):
    with pytest.raises(ConfigError, match="'encoder' submodule"):
        ObjectiveModule(torch.nn.Linear(2, 2))
    encoder = build_encoder(MODEL, unlabeled.feature_spec)
    with pytest.raises(ConfigError, match="lr"):
        ObjectiveModule(GraphMAE(encoder), lr=0.0)
    with pytest.raises(ConfigError, match="model config"):
        ObjectiveModule(GraphMAE(encoder)).export_encoder(tmp_path / "encoder.pt")
    with pytest.warns(UserWarning, match="batch-norm statistics come from the training inputs"):
        path = ObjectiveModule(GraphMAE(encoder), model=MODEL).export_encoder(tmp_path / "encoder.pt")
    assert load_pretrained(path).objective == "graphmae"  # unattached to a Trainer, it still writes
    with pytest.raises(ConfigError, match="not a registered objective"):
        ObjectiveModule(type("Mine", (GraphMAE,), {})(encoder), model=MODEL).export_encoder(tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="batch_size"):
        objective_dataloader(unlabeled, GraphMAE(encoder), batch_size=0)
    with pytest.raises(ConfigError, match="skip_nonfinite"):
        ObjectiveModule(GraphMAE(encoder), skip_nonfinite=-1)


def test_task_module_trains_and_logs_the_validation_metric(labelled):
    torch.manual_seed(0)
    ft = FinetuneConfig(split="random", batch_size=8, lr=1e-2)
    split = make_split(labelled, ft)
    train, valid, test = labelled.subset(split.train), labelled.subset(split.valid), labelled.subset(split.test)
    task = build_task(labelled, ft)
    module = TaskModule(task, finetune_encoder(None, train, ft, model=MODEL), train)
    assert (module.monitor, module.monitor_mode, module.metric) == ("val_metric", "min", "rmse")
    before = _copy(module.model.encoder)
    from torch_geometric.loader import DataLoader

    trainer = _trainer()
    _quiet_fit(trainer, module, DataLoader(train, batch_size=8, shuffle=True), DataLoader(valid, batch_size=8))
    assert _changed(before, module.model.encoder)
    logged = trainer.callback_metrics
    assert math.isfinite(float(logged["train_loss"])) and math.isfinite(float(logged["val_loss"]))
    # the metric is the task's own score of the whole split, with the weights after the step
    expected = task.evaluate(module.model, valid, torch.device("cpu"))["rmse"]
    assert float(logged["val_metric"]) == pytest.approx(expected, rel=1e-5)
    assert float(logged["val_rmse"]) == pytest.approx(expected, rel=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.test(module, DataLoader(test, batch_size=8), verbose=False)
    assert float(trainer.callback_metrics["test_metric"]) == pytest.approx(
        task.evaluate(module.model, test, torch.device("cpu"))["rmse"], rel=1e-5)


def test_task_module_refuses_what_it_cannot_run(labelled):
    ft = FinetuneConfig(split="random", mode="lp-ft", probe_epochs=1)
    task = build_task(labelled, ft)
    encoder = finetune_encoder(None, labelled, ft, model=MODEL)
    with pytest.raises(ConfigError, match="lp-ft"):
        TaskModule(task, encoder, labelled)
    with pytest.raises(ConfigError, match="model=ModelConfig"):
        finetune_encoder(None, labelled, ft)
    with pytest.raises(DataError, match="training split"):
        TaskModule(build_task(labelled, FinetuneConfig()), encoder, labelled.subset([]))


@pytest.mark.slow
def test_without_lightning_graphssl_imports_and_the_module_names_the_extra(tmp_path):
    script = textwrap.dedent("""
        import importlib.abc
        import sys


        class Refuse(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("lightning", "pytorch_lightning"):
                    raise ModuleNotFoundError(f"No module named {name!r} (made unimportable)", name=name)
                return None


        sys.meta_path.insert(0, Refuse())
        import graphssl
        import graphssl.cli

        try:
            import graphssl.lightning
        except ImportError as exc:
            print("error:", exc)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "error: graphssl.lightning needs Lightning: pip install 'graphssl-pretrain[lightning]'" in result.stdout
