"""The whole config is checked before any work: registry names, backbone options and folders fail
with one-line graphssl errors naming the option, before a data set is built."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import graphssl.engine.finetune as finetune_module
import graphssl.engine.pretrain as pretrain_module
from graphssl.core import io
from graphssl.core.config import load_config
from graphssl.core.errors import CheckpointError, ConfigError
from graphssl.engine.checkpoint import load_checkpoint, save_checkpoint
from graphssl.engine.finetune import finetune
from graphssl.engine.pretrain import pretrain
from graphssl.engine.runtime import prepare_folder, validate


def _config(tmp_path, molecule_csv, *extra: str):
    return load_config(None, [
        f"output_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}", "progress=false", "threads=1",
        "model.backbone=gine", "model.hidden=16", "model.num_layers=2", f"data.path={molecule_csv}",
        "objective.name=attrmask", "pretrain.epochs=1", "pretrain.batch_size=8",
        f"finetune.task.path={molecule_csv}", "finetune.task.label_columns=[logp]",
        "finetune.task.task_type=regression", "finetune.split=random", "finetune.epochs=1", "finetune.batch_size=8",
        *extra,
    ])


@pytest.fixture
def no_data_build(monkeypatch):
    """Fail loudly if a run gets as far as building its data set."""
    def refuse(*args, **kwargs):
        raise AssertionError("the data set was built before the config was checked")

    monkeypatch.setattr(pretrain_module, "load_dataset", refuse)
    monkeypatch.setattr(finetune_module, "load_dataset", refuse)


@pytest.mark.parametrize("override, message", [
    ("model.backbone=gne", r"option 'model.backbone': unknown backbone 'gne'. Did you mean 'gine'"),
    ("model.norm=batchnrm", r"option 'model.norm' must be one of .*Did you mean 'batch_norm'"),
    ("model.options.hiden=3", r"option 'model.options.hiden' is not an option of backbone 'gine'"),
    ("model.pooling=avg", r"option 'model.pooling': unknown pooling 'avg'"),
    ("objective.name=atrmask", r"option 'objective.name': unknown objective 'atrmask'. Did you mean 'attrmask'"),
    ("objective.mask_rte=0.3", r"option 'objective.mask_rte' is not an option of objective 'attrmask'"),
    ("data.name=moses", r"give either data.name \('moses'\) or data.path"),
])
def test_pretraining_checks_names_before_building_data(tmp_path, molecule_csv, no_data_build, override, message):
    with pytest.raises(ConfigError, match=message) as caught:
        pretrain(_config(tmp_path, molecule_csv, override))
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "run").exists()  # nothing was written either


@pytest.mark.parametrize("override, message", [
    ("finetune.split=scafold", r"option 'finetune.split': unknown split 'scafold'. Did you mean 'scaffold'"),
    ("finetune.pooling=median", r"option 'finetune.pooling': unknown pooling 'median'"),
    ("model.jk=lstmm", r"option 'model.jk' must be one of"),
    ("model.options.hiden=3", r"option 'model.options.hiden'"),
])
def test_finetuning_checks_names_before_building_data(tmp_path, molecule_csv, no_data_build, override, message):
    with pytest.raises(ConfigError, match=message):
        finetune(_config(tmp_path, molecule_csv, override))


def test_unknown_task_data_set_is_named_with_its_option(tmp_path, molecule_csv, no_data_build):
    config = _config(tmp_path, molecule_csv)
    config.finetune.task.path, config.finetune.task.name = None, "b3bd"
    with pytest.raises(ConfigError, match=r"option 'finetune.task.name': unknown data set 'b3bd'. Did you mean 'b3db'"):
        finetune(config)


def test_a_changed_config_is_checked_again_at_the_start_of_a_run(tmp_path, molecule_csv, no_data_build):
    config = _config(tmp_path, molecule_csv)
    config.finetune.mode = "half"
    with pytest.raises(ConfigError, match="'finetune.mode' must be one of full, linear"):
        finetune(config)
    config = _config(tmp_path, molecule_csv)
    config.pretrain.epochs = 0
    with pytest.raises(ConfigError, match="'pretrain.epochs' must be a positive integer"):
        pretrain(config)


def test_backbones_are_tried_without_memory_or_random_numbers(tmp_path, molecule_csv):
    for backbone in ["gine", "gat", "pna", "schnet", "painn"]:
        config = _config(tmp_path, molecule_csv, f"model.backbone={backbone}")
        before = torch.get_rng_state()
        validate(config, "pretrain")
        assert torch.equal(before, torch.get_rng_state()), backbone
    huge = _config(tmp_path, molecule_csv, "model.hidden=1000000", "model.num_layers=1000")
    validate(huge, "pretrain")  # built on the meta device: no 10^15 weights allocated


# ----------------------------------------------------------------------------- folders

@pytest.mark.parametrize("option", ["output_dir", "cache_dir"])
def test_bad_folders_fail_before_featurising(tmp_path, molecule_csv, no_data_build, option):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for path, message in [(a_file, "is a file, not a folder"), (a_file / "sub", "lies under .*a_file.*which is a file")]:
        config = _config(tmp_path, molecule_csv, f"{option}={path}")
        with pytest.raises(ConfigError, match=f"option '{option}': .*{message}"):
            pretrain(config)
        with pytest.raises(ConfigError, match=f"option '{option}'"):
            finetune(config)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_folder_that_cannot_be_created_is_named(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match=r"option 'output_dir': cannot create the folder .*Permission denied"):
        prepare_folder(locked / "run", "output_dir")


def test_a_folder_that_cannot_be_created_is_named_even_as_root(tmp_path):
    with pytest.raises(ConfigError, match=r"option 'cache_dir': cannot create the folder '/proc/graphssl-x'"):
        prepare_folder("/proc/graphssl-x", "cache_dir")
    with pytest.raises(ConfigError, match="option 'output_dir' is empty"):
        prepare_folder("", "output_dir")


def test_home_is_expanded_in_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert prepare_folder("~/runs/x", "output_dir") == tmp_path / "runs" / "x"
    assert (tmp_path / "runs" / "x").is_dir() and not (tmp_path / "~").exists()


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_run_removes_the_orphans_of_killed_writes(tmp_path, molecule_csv):
    orphan = f".last.pt.{io._host()}-{_dead_pid()}.abcd{io.TEMP_SUFFIX}"
    config = _config(tmp_path, molecule_csv)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / orphan).write_bytes(b"\0" * 1000)
    (tmp_path / "cache" / "mols-0123").mkdir(parents=True)
    (tmp_path / "cache" / "mols-0123" / orphan.replace("last", "graphs")).write_bytes(b"\0" * 1000)
    finetune(config)
    leftovers = [p for p in [*(tmp_path / "run").rglob("*"), *(tmp_path / "cache").rglob("*")]
                 if p.name.endswith((io.TEMP_SUFFIX, ".tmp"))]
    assert leftovers == []


# ----------------------------------------------------------------------------- pretrained checkpoints

@pytest.fixture
def encoder_pt(tmp_path, molecule_csv):
    return pretrain(_config(tmp_path, molecule_csv, f"output_dir={tmp_path / 'pre'}"))


def _altered(tmp_path, encoder_pt, name, change) -> str:
    payload = load_checkpoint(encoder_pt)
    change(payload)
    return str(save_checkpoint(tmp_path / name, payload))


def _widen_first_matrix(payload):
    weights = dict(payload["encoder"])
    key = next(k for k, v in weights.items() if v.dim() == 2 and "convs" in k)
    weights[key] = torch.zeros(3, 3)
    payload["encoder"] = weights


@pytest.mark.parametrize("name, change, message", [
    ("no_encoder.pt", lambda p: p.pop("encoder"), r"lacks 'encoder'; it is not a complete encoder.pt"),
    ("absurd_hidden.pt", lambda p: p["model"].update(hidden=10**9),
     r"does not fit its own model config: model.hidden=1000000000, but no stored tensor"),
    ("absurd_layers.pt", lambda p: p["model"].update(num_layers=10**7),
     r"model.num_layers=10000000, but it holds only \d+ tensors"),
    ("bad_backbone.pt", lambda p: p["model"].update(backbone="nope"), r"stores a model config that cannot be used"),
    ("empty_weights.pt", lambda p: p.update(encoder={}), r"holds no encoder weights"),
])
def test_a_damaged_encoder_is_refused_before_the_data_build(tmp_path, molecule_csv, encoder_pt, no_data_build,
                                                              name, change, message):
    path = _altered(tmp_path, encoder_pt, name, change)
    with pytest.raises(CheckpointError, match=message) as caught:
        finetune(_config(tmp_path, molecule_csv, f"output_dir={tmp_path / 'ft'}"), checkpoint=path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name, change, message", [
    ("wrong_shape.pt", _widen_first_matrix, r"'backbone.convs.0.nn.lins.0.weight' is \[3, 3\] in the file but \[32, 16\]"),
    ("other_hidden.pt", lambda p: p["model"].update(hidden=32), r"backbone gine, hidden 32.* is \[32, 16\] in the file"),
])
def test_weights_that_do_not_fit_their_config_are_refused(tmp_path, molecule_csv, encoder_pt, name, change, message):
    path = _altered(tmp_path, encoder_pt, name, change)
    with pytest.raises(CheckpointError, match=message):
        finetune(_config(tmp_path, molecule_csv, f"output_dir={tmp_path / 'ft'}"), checkpoint=path)
