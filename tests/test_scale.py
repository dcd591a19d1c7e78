"""Sharded preparation, streaming, step sampling, distributed pretraining and exact resume."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from graphssl.core.config import DataConfig, load_config
from graphssl.data.dataset import load_dataset, resolve_source
from graphssl.data.sampler import StepSampler, epoch_order
from graphssl.molecule.shards import ShardedDataset, prepare_shards
from graphssl.core.errors import CheckpointError, ConfigError, DataError
from graphssl.engine.checkpoint import load_checkpoint
from graphssl.engine.pretrain import pretrain

CORPUS = [
    "CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "C1CCNCC1", "[Na+].[Cl-]", "O=C(O)c1ccccc1", "CCN(CC)CC",
    "c1ccncc1", "CC(C)CC(=O)O", "N#Cc1ccccc1", "OCC(O)CO", "CC1=CC(=O)C=CC1=O", "C[C@H](N)C(=O)O", "[13CH4]",
    "FC(F)(F)c1ccccc1", "CSC", "C=CC=C", "CC(C)(C)O", "c1ccc2ccccc2c1", "O=S(=O)(O)O",
]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.smi"
    path.write_text("\n".join(CORPUS * 3) + "\n")
    return path


def _data(path: Path, **kw) -> DataConfig:
    return DataConfig(path=str(path), **kw)


# ----------------------------------------------------------------------------- sampling

def test_epoch_order_keeps_blocks_together_and_depends_only_on_seed_and_epoch():
    sizes = [5, 3, 4]
    order = epoch_order(sizes, seed=1, epoch=0)
    assert sorted(order.tolist()) == list(range(12))
    starts = [0, 5, 8, 12]
    block_of = np.searchsorted(starts, order, side="right") - 1
    assert (np.diff(block_of) != 0).sum() == 2  # each block is visited in one stretch
    assert np.array_equal(order, epoch_order(sizes, seed=1, epoch=0))
    assert not np.array_equal(order, epoch_order(sizes, seed=1, epoch=1))


def test_step_sampler_splits_each_global_batch_over_ranks_and_accumulation():
    sizes, batch = [37], 8
    single = list(StepSampler(sizes, batch, seed=3, epoch=2, accumulate=4))
    ranks = [list(StepSampler(sizes, batch, seed=3, epoch=2, rank=r, world_size=2, accumulate=2)) for r in range(2)]
    # rank r runs micro-batches 2r, 2r+1 of every step: the same parts as 4-fold accumulation
    steps = len(single) // 4
    assert steps == 5 and len(ranks[0]) == len(ranks[1]) == 2 * steps
    for s in range(steps):
        assert single[4 * s:4 * s + 2] == ranks[0][2 * s:2 * s + 2]
        assert single[4 * s + 2:4 * s + 4] == ranks[1][2 * s:2 * s + 2]
    seen = [i for part in single for i in part]
    assert len(seen) == len(set(seen)) == 37  # last global batch has 5 >= 4 graphs: kept
    resumed = list(StepSampler(sizes, batch, seed=3, epoch=2, accumulate=4, start_step=3))
    assert resumed == single[12:]


def test_step_sampler_refuses_batches_smaller_than_the_number_of_parts():
    with pytest.raises(ConfigError, match="at least the number of micro-batches"):
        StepSampler([10], 3, seed=0, epoch=0, world_size=2, accumulate=2)


# ----------------------------------------------------------------------------- preparation

def test_prepare_with_two_workers_equals_one_worker_and_the_in_memory_build(corpus, tmp_path):
    config = _data(corpus)
    one = prepare_shards(resolve_source(config), config, tmp_path / "w1", workers=1, shard_size=16, progress=False)
    two = prepare_shards(resolve_source(config), config, tmp_path / "w2", workers=2, shard_size=16, progress=False)
    assert (one.read, one.kept, one.skipped) == (two.read, two.kept, two.skipped) == (60, 60, 0)
    a, b = ShardedDataset(tmp_path / "w1"), ShardedDataset(tmp_path / "w2")
    assert len(a.shard_sizes) > 1 and sum(a.shard_sizes) == 60
    memory = load_dataset(config, tmp_path / "cache", progress=False, verbose=False)
    for i in range(60):
        ga, gb, gm = a[i], b[i], memory[i]
        for key in ("x", "edge_index", "edge_attr"):
            assert ga[key].dtype == torch.long
            assert torch.equal(ga[key], gb[key]) and torch.equal(ga[key], gm[key]), (i, key)
        assert ga.smiles == gm.smiles


def test_prepare_reports_every_skipped_record_and_strict_mode_names_it(tmp_path):
    path = tmp_path / "bad.smi"
    path.write_text("CCO\nC1CC\nc1ccccc1\n[Xe](C)(C)(C)(C)(C)(C)(C)(C)C\nO\n")
    with pytest.raises(DataError, match=r"record 1 \('C1CC'\)"):
        prepare_shards(resolve_source(_data(path)), _data(path), tmp_path / "strict", workers=2, progress=False)
    lenient = _data(path, on_error="skip")
    report = prepare_shards(resolve_source(lenient), lenient, tmp_path / "lenient", workers=2, progress=False)
    assert report.read == report.kept + report.skipped == 5 and report.skipped == 2
    skipped = json.loads((tmp_path / "lenient" / "report.json").read_text())["skipped"]
    assert [s["index"] for s in skipped] == [1, 3] and all(s["reason"] for s in skipped)


def test_prepared_and_in_memory_builds_skip_the_same_records_for_the_same_reasons(tmp_path):
    path = tmp_path / "labelled.csv"
    rows = ["smiles,y", "CCO,1.0", "C1CC,2.0", "OCC,3.0", "c1ccccc1,inf", "CCN,4.0", "CCCC,5.0", "NCC,6.0",
            "c1ccccc1,7.0", "CCCC,8.0", "CO,"]
    path.write_text("\n".join(rows) + "\n")  # OCC and NCC repeat CCO and CCN; the last line has no label
    config = DataConfig(path=str(path), label_columns=["y"], task_type="regression", on_error="skip")
    memory = load_dataset(config, tmp_path / "cache", progress=False, verbose=False)
    # chunks of 2 records in 2 workers: duplicates cross chunk and process boundaries
    prepare_shards(resolve_source(config), config, tmp_path / "p", workers=2, shard_size=2, progress=False)
    sharded = ShardedDataset(tmp_path / "p")
    as_rows = lambda report: [(s.index, s.reason) for s in report.skipped]  # noqa: E731
    assert as_rows(sharded.report) == as_rows(memory.report)
    assert [s.index for s in memory.report.skipped] == [1, 2, 3, 6, 8, 9]
    assert "duplicate of record 0" in memory.report.skipped[1].reason
    assert sharded.report.read == sharded.report.kept + len(sharded.report.skipped) == 10
    assert [sharded[i].smiles for i in range(len(sharded))] == [memory[i].smiles for i in range(len(memory))]
    assert torch.equal(torch.cat([sharded[i].y for i in range(len(sharded))]), memory.labels)


def test_unfinished_or_foreign_preparation_is_refused(corpus, tmp_path):
    config = _data(corpus)
    prepare_shards(resolve_source(config), config, tmp_path / "p", progress=False)
    manifest = tmp_path / "p" / "manifest.json"
    raw = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**raw, "format": "something-else"}))
    with pytest.raises(DataError, match="format"):
        ShardedDataset(tmp_path / "p")
    manifest.unlink()
    with pytest.raises(DataError, match="not a prepared data set"):
        ShardedDataset(tmp_path / "p")


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def test_two_gloo_processes_agree_and_match_one_process_with_the_same_global_batch(corpus, tmp_path):
    args = [f"output_dir={tmp_path / 'ddp'}", f"cache_dir={tmp_path / 'cache'}", "progress=false", "threads=1",
            f"data.path={corpus}", "model.backbone=gin", "model.hidden=16", "model.num_layers=2",
            "objective.name=graphmae", "pretrain.epochs=2", "pretrain.batch_size=8"]
    (tmp_path / "ddp").mkdir()
    spy = tmp_path / "spy.py"
    spy.write_text(_RANK_SPY)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
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


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_pretraining_killed_mid_epoch_resumes_to_the_same_weights(corpus, tmp_path, sig):
    many = tmp_path / "many.smi"
    many.write_text("\n".join(CORPUS * 40) + "\n")  # 800 graphs, 100 steps per epoch
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


def test_prepare_command_writes_shards_and_refuses_structures(corpus, tmp_path, capsys):
    from graphssl.cli import main

    assert main(["data", "prepare", str(corpus), "--out", str(tmp_path / "p"), "--workers", "2",
                 "--shard-size", "25", "--no-progress"]) == 0
    assert "read 60, kept 60, skipped 0" in capsys.readouterr().out
    assert ShardedDataset(tmp_path / "p").shard_sizes == [25, 25, 10]
    assert main(["data", "prepare", "qm9-3d", "--out", str(tmp_path / "q")]) == 2
    assert "shards molecule data sets" in capsys.readouterr().err
