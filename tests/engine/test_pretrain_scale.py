"""Pretraining at scale: streaming from shards, distributed processes, exact resume after kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from graphssl.core.config import DataConfig, load_config
from graphssl.core.errors import CheckpointError
from graphssl.data.dataset import resolve_source
from graphssl.engine.checkpoint import load_checkpoint
from graphssl.engine.pretrain import pretrain
from graphssl.molecule.shards import prepare_shards


def _data(path: Path, **kw) -> DataConfig:
    return DataConfig(path=str(path), **kw)


# ----------------------------------------------------------------------------- training

def _config(tmp_path: Path, data_path: Path, out: str, *extra: str):
    return load_config(None, [
        f"output_dir={tmp_path / out}", f"cache_dir={tmp_path / 'cache'}", "progress=false", "threads=1",
        f"data.path={data_path}", "model.backbone=gin", "model.hidden=16", "model.num_layers=2",
        "objective.name=graphmae", "pretrain.epochs=2", "pretrain.batch_size=8", *extra,
    ])


def _params(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["encoder"]


def test_pretraining_streams_from_shards_like_from_memory(corpus, tmp_path):
    config = _data(corpus)
    prepare_shards(resolve_source(config), config, tmp_path / "shards", shard_size=1000, progress=False)
    # one shard holding everything: the sampler's order equals that of the in-memory data set
    streamed = _params(pretrain(_config(tmp_path, tmp_path / "shards", "streamed")))
    in_memory = _params(pretrain(_config(tmp_path, corpus, "memory")))
    for key in in_memory:
        assert torch.allclose(streamed[key].float(), in_memory[key].float(), atol=1e-6), key


def test_mid_epoch_resume_equals_an_uninterrupted_run(corpus, tmp_path):
    straight = _params(pretrain(_config(tmp_path, corpus, "straight")))
    config = _config(tmp_path, corpus, "stopped", "pretrain.max_steps=5")  # 8 steps per epoch: stops mid-epoch
    pretrain(config)
    state = load_checkpoint(tmp_path / "stopped" / "last.pt")
    assert (state["epoch"], state["epoch_step"]) == (0, 5)
    config.pretrain.max_steps = None
    resumed = _params(pretrain(config))
    for key in straight:
        assert torch.allclose(straight[key].float(), resumed[key].float(), atol=1e-6), key


def test_resume_with_another_number_of_micro_batches_is_refused(corpus, tmp_path):
    config = _config(tmp_path, corpus, "run", "pretrain.max_steps=3")
    pretrain(config)
    config.pretrain.accumulate = 2
    config.pretrain.max_steps = None
    with pytest.raises(CheckpointError, match="micro-batches per step"):
        pretrain(config)


_RANK_SPY = """
import sys, torch
import graphssl.engine.pretrain as run
from graphssl.cli import main
out = sys.argv[1]
fingerprint = run._fingerprint
def spy(module):  # runs on every rank after training: keep each replica's weights
    torch.save(module.state_dict(), f"{out}/rank{torch.distributed.get_rank()}.pt")
    return fingerprint(module)
run._fingerprint = spy
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_two_gloo_processes_agree_and_match_one_process_with_the_same_global_batch(corpus, tmp_path, free_port):
    args = [f"output_dir={tmp_path / 'ddp'}", f"cache_dir={tmp_path / 'cache'}", "progress=false", "threads=1",
            f"data.path={corpus}", "model.backbone=gin", "model.hidden=16", "model.num_layers=2",
            "objective.name=graphmae", "pretrain.epochs=2", "pretrain.batch_size=8"]
    (tmp_path / "ddp").mkdir()
    spy = tmp_path / "spy.py"
    spy.write_text(_RANK_SPY)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port}",
               str(spy), str(tmp_path / "ddp"), "pretrain", *[x for a in args for x in ("--set", a)]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0 = torch.load(tmp_path / "ddp" / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "ddp" / "rank1.pt", weights_only=True)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key  # identical replicas, buffers included
    assert load_checkpoint(tmp_path / "ddp" / "encoder.pt")["processes"] == 2
    single = _params(pretrain(_config(tmp_path, corpus, "single", "pretrain.accumulate=2")))
    ddp = _params(tmp_path / "ddp" / "encoder.pt")
    for key, value in single.items():
        if "running_" in key or "num_batches" in key:
            continue  # batch-norm statistics: rank 0's micro-batches under DDP, all of them here
        assert torch.allclose(ddp[key], value, atol=1e-5), key


# ----------------------------------------------------------------------------- killed runs

def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "graphssl.cli", *args]


def _run_and_kill(command: list[str], last: Path, sig: int) -> subprocess.CompletedProcess:
    """Start ``command``, send ``sig`` once its first mid-run checkpoint exists, wait for it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 240
    while not last.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_pretraining_killed_mid_epoch_resumes_to_the_same_weights(corpus, tmp_path, sig):
    many = tmp_path / "many.smi"
    distinct = corpus.read_text().splitlines()[:20]  # the 20 molecules of the corpus
    many.write_text("\n".join(distinct * 40) + "\n")  # 800 graphs, 100 steps per epoch
    options = [f"cache_dir={tmp_path / 'cache'}", "progress=false", "threads=1", f"data.path={many}",
               "model.backbone=gin", "model.hidden=16", "model.num_layers=2", "objective.name=graphmae",
               "pretrain.epochs=3", "pretrain.batch_size=8", "pretrain.checkpoint_every=1"]

    def command(out: str) -> list[str]:
        return _cli("pretrain", *[x for a in [*options, f"output_dir={tmp_path / out}"] for x in ("--set", a)])

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    assert subprocess.run(command("straight"), capture_output=True, timeout=300, env=env).returncode == 0
    killed = _run_and_kill(command("killed"), tmp_path / "killed" / "last.pt", sig)
    expected = -signal.SIGKILL if sig == signal.SIGKILL else 128 + signal.SIGTERM
    assert killed.returncode == expected, killed.stderr[-2000:]
    if sig == signal.SIGTERM:
        assert "run the same command again to resume" in killed.stderr
    state = load_checkpoint(tmp_path / "killed" / "last.pt")
    assert state["step"] < 300  # interrupted before the end
    again = subprocess.run(command("killed"), capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0 and "resuming pretraining" in again.stdout, again.stderr[-2000:]
    straight, resumed = _params(tmp_path / "straight" / "encoder.pt"), _params(tmp_path / "killed" / "encoder.pt")
    for key in straight:
        assert torch.allclose(straight[key].float(), resumed[key].float(), atol=1e-6), key


@pytest.mark.slow
def test_finetuning_killed_resumes_to_the_same_weights(tmp_path, molecule_csv):
    options = [f"cache_dir={tmp_path / 'cache'}", "progress=false", "threads=1", "model.backbone=gine",
               "model.hidden=16", "model.num_layers=2", f"finetune.task.path={molecule_csv}",
               "finetune.task.label_columns=[logp]", "finetune.task.task_type=regression", "finetune.split=random",
               "finetune.epochs=60", "finetune.batch_size=4"]

    def command(out: str) -> list[str]:
        return _cli("finetune", *[x for a in [*options, f"output_dir={tmp_path / out}"] for x in ("--set", a)])

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    assert subprocess.run(command("straight"), capture_output=True, timeout=300, env=env).returncode == 0
    killed = _run_and_kill(command("killed"), tmp_path / "killed" / "last.pt", signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    assert load_checkpoint(tmp_path / "killed" / "last.pt")["epoch"] < 60
    assert subprocess.run(command("killed"), capture_output=True, timeout=300, env=env).returncode == 0
    a = load_checkpoint(tmp_path / "straight" / "best.pt")["model"]
    b = load_checkpoint(tmp_path / "killed" / "best.pt")["model"]
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key
