"""A NaN or infinite loss or gradient stops a run (or, when allowed, skips the step), and nothing
non-finite is ever written: no encoder.pt, no best.pt, and last.pt keeps the last good state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import ClassVar

import pytest
import torch

from graphssl.core.config import load_config
from graphssl.core.errors import TrainingDiverged
from graphssl.engine.checkpoint import load_checkpoint
from graphssl.engine.finetune import finetune
from graphssl.engine.pretrain import pretrain
from graphssl.objectives import OBJECTIVES
from graphssl.objectives.attrmask import AttrMask
from graphssl.tasks.base import Task

# 24 molecules, batch 8: three pretraining steps per epoch


class NaNAt(AttrMask):
    """AttrMask whose loss is NaN at the forward calls (1-based) listed in ``bad_calls``."""

    bad_calls: ClassVar[set[int]] = set()

    def __init__(self, encoder, mask_rate: float = 0.15, mask_edges: bool = True) -> None:
        super().__init__(encoder, mask_rate, mask_edges)
        self.calls = 0

    def forward(self, data):
        self.calls += 1
        loss = super().forward(data)
        return loss * float("nan") if self.calls in type(self).bad_calls else loss


@pytest.fixture
def nan_at():
    OBJECTIVES.register("nan-at", NaNAt, replace=True)
    yield NaNAt
    NaNAt.bad_calls = set()
    OBJECTIVES._entries.pop("nan-at")
    OBJECTIVES._names.pop("nan-at")


def _config(tmp_path, molecule_csv, *extra: str):
    return load_config(None, [
        f"output_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}", "progress=false", "threads=1",
        "model.backbone=gine", "model.hidden=16", "model.num_layers=2", f"data.path={molecule_csv}",
        "objective.name=attrmask", "pretrain.epochs=2", "pretrain.batch_size=8",
        f"finetune.task.path={molecule_csv}", "finetune.task.label_columns=[logp]",
        "finetune.task.task_type=regression", "finetune.split=random", "finetune.epochs=3", "finetune.batch_size=8",
        *extra,
    ])


def _finite(state: dict) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in state.values() if torch.is_tensor(v) and v.is_floating_point())


# ----------------------------------------------------------------------------- pretraining

def test_pretraining_with_a_huge_learning_rate_stops_and_writes_no_encoder(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv, "pretrain.lr=1e30")
    with pytest.raises(TrainingDiverged) as caught:
        pretrain(config)
    message = str(caught.value)
    assert "\n" not in message
    assert "pretraining diverged at step 2 (epoch 1, step 2 of 3)" in message
    assert "learning rate is likely too high (pretrain.lr=1e+30)" in message
    assert "no encoder.pt" in message.lower()
    assert not (tmp_path / "run" / "encoder.pt").exists() and not (tmp_path / "run" / "last.pt").exists()


def test_divergence_keeps_the_last_good_checkpoint(tmp_path, molecule_csv, nan_at):
    nan_at.bad_calls = {5}  # epoch 2, step 2
    config = _config(tmp_path, molecule_csv, "objective.name=nan-at")
    with pytest.raises(TrainingDiverged, match=r"at step 5 \(epoch 2, step 2 of 3\): the loss was nan.*"
                                               r"skip_nonfinite=N.*last\.pt keeps the last good state \(after step 3\)"):
        pretrain(config)
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert (state["epoch"], state["step"]) == (1, 3) and _finite(state["objective"])
    assert not (tmp_path / "run" / "encoder.pt").exists()


def test_isolated_nonfinite_steps_are_skipped_and_counted(tmp_path, molecule_csv, nan_at):
    nan_at.bad_calls = {5}
    config = _config(tmp_path, molecule_csv, "objective.name=nan-at", "pretrain.skip_nonfinite=1")
    payload = load_checkpoint(pretrain(config))
    assert _finite(payload["encoder"])
    assert [h["skipped_steps"] for h in payload["history"]] == [0, 1]
    assert all(h["loss"] == h["loss"] for h in payload["history"])  # the skipped step's NaN is not averaged in
    saved = json.loads((tmp_path / "run" / "pretrain_history.json").read_text())
    assert [h["skipped_steps"] for h in saved] == [0, 1]
    assert load_checkpoint(tmp_path / "run" / "last.pt")["skipped_steps"] == 1


def test_skipping_stops_once_the_budget_is_spent(tmp_path, molecule_csv, nan_at):
    nan_at.bad_calls = {2, 5}
    config = _config(tmp_path, molecule_csv, "objective.name=nan-at", "pretrain.skip_nonfinite=1")
    with pytest.raises(TrainingDiverged, match=r"at step 5 .*1 such steps were skipped already"):
        pretrain(config)
    assert not (tmp_path / "run" / "encoder.pt").exists()


def test_a_skipped_step_leaves_weights_and_optimiser_untouched(tmp_path, molecule_csv, nan_at):
    config = _config(tmp_path, molecule_csv, "objective.name=nan-at", "pretrain.skip_nonfinite=1",
                     "pretrain.epochs=1", "pretrain.max_steps=2")
    pretrain(config)
    after_two = load_checkpoint(tmp_path / "run" / "last.pt")
    config.pretrain.max_steps = None
    nan_at.bad_calls = {1}  # the resumed run's first step (step 3, the last of the epoch) is NaN
    pretrain(config)
    after_three = load_checkpoint(tmp_path / "run" / "last.pt")
    assert after_three["step"] == 3 and after_three["skipped_steps"] == 1
    for key, value in after_two["objective"].items():
        assert torch.equal(value, after_three["objective"][key]), key
    assert after_two["optimizer"]["state"].keys() == after_three["optimizer"]["state"].keys()
    for key, value in after_two["optimizer"]["state"].items():
        assert torch.equal(value["exp_avg"], after_three["optimizer"]["state"][key]["exp_avg"])


# ----------------------------------------------------------------------------- fine-tuning

@pytest.fixture
def nan_loss_at(monkeypatch):
    """Make the fine-tuning loss NaN at the listed (1-based) training batches."""
    calls = {"n": 0, "bad": set()}
    original = Task.loss

    def loss(self, model, batch):
        calls["n"] += 1
        terms = original(self, model, batch)
        if calls["n"] in calls["bad"]:
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(Task, "loss", loss)
    return calls["bad"]


def test_finetuning_with_a_huge_learning_rate_stops_without_a_result(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv, "finetune.lr=1e6")
    with pytest.raises(TrainingDiverged) as caught:
        finetune(config)
    message = str(caught.value)
    assert "\n" not in message and "fine-tuning diverged at epoch 1, batch" in message
    assert "(finetune.lr=1e+06)" in message
    assert not any((tmp_path / "run" / name).exists() for name in ("best.pt", "result.json"))


def test_finetuning_divergence_keeps_the_previous_epoch(tmp_path, molecule_csv, nan_loss_at):
    nan_loss_at.add(3)  # two training batches per epoch: epoch 2, batch 1
    with pytest.raises(TrainingDiverged, match=r"epoch 2, batch 1 of 2: the loss was nan.*"
                                               r"finetune.skip_nonfinite=N.*keeps the state after epoch 1"):
        finetune(_config(tmp_path, molecule_csv))
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["epoch"] == 1 and _finite(state["model"])
    assert not (tmp_path / "run" / "best.pt").exists()


def test_finetuning_skips_an_isolated_nonfinite_batch(tmp_path, molecule_csv, nan_loss_at):
    nan_loss_at.add(3)
    result = finetune(_config(tmp_path, molecule_csv, "finetune.skip_nonfinite=1"))
    assert [h["skipped_steps"] for h in result.history] == [0, 1, 0]
    assert all(h["loss"] == h["loss"] for h in result.history)
    assert _finite(load_checkpoint(tmp_path / "run" / "best.pt")["model"])


def test_resuming_counts_earlier_skips_against_the_budget(tmp_path, molecule_csv, nan_loss_at):
    nan_loss_at.update({1})
    config = _config(tmp_path, molecule_csv, "finetune.skip_nonfinite=1", "finetune.epochs=1")
    finetune(config)
    nan_loss_at.update({3})  # calls restart in the resumed run: its first batch is fine, its second is NaN
    config.finetune.epochs = 2
    with pytest.raises(TrainingDiverged, match="1 such batches were skipped already"):
        finetune(config)


# ----------------------------------------------------------------------------- distributed

_RANK_NAN = """
import sys, torch
import torch.distributed as dist
from graphssl.cli import main
from graphssl.objectives import OBJECTIVES
from graphssl.objectives.attrmask import AttrMask

class NaNOnRank1(AttrMask):
    calls = 0
    def forward(self, data):
        NaNOnRank1.calls += 1
        loss = super().forward(data)
        # only rank 1 sees a NaN, at its second step: rank 0 must skip (or stop) with it
        return loss * float("nan") if dist.get_rank() == 1 and NaNOnRank1.calls == 2 else loss

OBJECTIVES.register("nan-on-rank-1", NaNOnRank1)
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("skip", [0, 1])
def test_every_process_skips_or_stops_together(corpus, tmp_path, free_port, skip):
    out = tmp_path / "ddp"
    args = [f"output_dir={out}", f"cache_dir={tmp_path / 'cache'}", "progress=false", "threads=1",
            f"data.path={corpus}", "model.backbone=gin", "model.hidden=16", "model.num_layers=2",
            "objective.name=nan-on-rank-1", "pretrain.epochs=1", "pretrain.batch_size=8",
            f"pretrain.skip_nonfinite={skip}"]
    script = tmp_path / "nan_rank.py"
    script.write_text(_RANK_NAN)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port}",
               str(script), "pretrain", *[x for a in args for x in ("--set", a)]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    if skip:
        assert done.returncode == 0, done.stderr[-3000:]
        payload = load_checkpoint(out / "encoder.pt")
        assert payload["processes"] == 2 and [h["skipped_steps"] for h in payload["history"]] == [1]
    else:
        assert done.returncode != 0 and not (out / "encoder.pt").exists()
        assert done.stderr.count("pretraining diverged at step 2 (epoch 1, step 2 of 8)") == 2, done.stderr[-3000:]
        # rank 1 saw the NaN loss; rank 0's own loss was finite, but the averaged gradients were not
        assert "the loss was nan" in done.stderr and "the gradients held NaN" in done.stderr
