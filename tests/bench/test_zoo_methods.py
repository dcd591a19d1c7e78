"""Zoo entries as benchmark methods: fine-tuned from the shipped weights, against scratch on the same backbone."""

from __future__ import annotations

import json

import pytest
import torch

from graphssl import zoo
from graphssl.bench import harness
from graphssl.core.config import ModelConfig, RunConfig, from_dict, same_settings
from graphssl.core.errors import ConfigError
from graphssl.molecule.features import molecule_feature_spec
from graphssl.nn import build_encoder

ARCH = {"backbone": "gine", "hidden": 16, "num_layers": 2, "norm": "batch_norm"}


@pytest.fixture
def entry(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = ModelConfig(**ARCH)
    encoder = build_encoder(model, molecule_feature_spec())
    zoo.write_entry("tiny", tmp_path / "zoo", encoder_state=encoder.state_dict(), model=model,
                    objective={"name": "attrmask", "options": {}}, objective_state={},
                    feature_spec={"domain": "molecule", "explicit_h": False},
                    data={"name": "test", "records": 10}, pretrain={"graph_passes": 1000, "wall_time_s": 36.0})
    monkeypatch.setattr(zoo, "ENTRIES", tmp_path / "zoo")
    return encoder


def _config(tmp_path, molecule_csv, methods, model=ARCH):
    task = {"path": str(molecule_csv), "label_columns": ["logp"], "task_type": "regression", "label": "logp"}
    return from_dict(RunConfig, {
        "output_dir": str(tmp_path / "bench"), "cache_dir": str(tmp_path / "cache"), "progress": False,
        "threads": 1, "model": dict(model), "finetune": {"split": "random", "epochs": 1, "batch_size": 8},
        "benchmark": {"seeds": [0], "methods": methods, "tasks": [task]},
    })


def _record_checkpoints(monkeypatch) -> list:
    """The checkpoint each fine-tuning run of the harness starts from, in order."""
    seen = []
    finetune = harness.finetune

    def record(cfg, checkpoint=None, dataset=None, split=None):
        seen.append(checkpoint)
        return finetune(cfg, checkpoint=checkpoint, dataset=dataset, split=split)

    monkeypatch.setattr(harness, "finetune", record)
    return seen


def test_a_zoo_method_fine_tunes_the_entry_and_pretrains_nothing(tmp_path, molecule_csv, entry, monkeypatch,
                                                                  one_thread):
    seen = _record_checkpoints(monkeypatch)
    monkeypatch.setattr(harness, "pretrain", lambda *a, **k: pytest.fail("a zoo method must not pretrain"))
    config = _config(tmp_path, molecule_csv, ["scratch", {"name": "zoo:tiny", "label": "tiny-zoo"}])
    out = harness.run_benchmark(config, command="test")
    assert seen == [None, "zoo:tiny"]
    runs = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in runs["runs"]] == ["scratch", "tiny-zoo"]
    assert runs["meta"]["zoo"]["tiny-zoo"]["entry"] == "tiny"
    assert "zoo entry `tiny`" in (out / "results.md").read_text()


def test_zoo_methods_are_checked_before_any_work(tmp_path, molecule_csv, entry):
    with pytest.raises(ConfigError, match="no zoo entry named 'nope'"):
        harness.run_benchmark(_config(tmp_path, molecule_csv, ["scratch", "zoo:nope"]), command="test")
    with pytest.raises(ConfigError, match="takes no options"):
        harness.parse_methods([{"name": "zoo:tiny", "mask_rate": 0.5}])
    wider = {**ARCH, "hidden": 32}
    with pytest.raises(ConfigError, match=r"differs from model: in hidden; set model.hidden=16"):
        harness.run_benchmark(_config(tmp_path, molecule_csv, ["scratch", "zoo:tiny"], model=wider), command="test")
    assert not (tmp_path / "bench" / "results.json").exists()


def test_an_encoder_file_is_a_method_fine_tuned_like_a_zoo_entry(tmp_path, molecule_csv, monkeypatch, one_thread):
    from graphssl.core.config import load_config
    from graphssl.engine.pretrain import pretrain

    with pytest.raises(ConfigError, match=r"encoder file '.*missing/encoder.pt' does not exist"):
        harness.parse_methods([f"encoder:{tmp_path / 'missing' / 'encoder.pt'}"])
    run = tmp_path / "Step-500"  # the run folder names the method; case is kept in the path
    path = pretrain(load_config(None, [f"output_dir={run}", f"cache_dir={tmp_path / 'cache'}", "progress=false",
                                       "threads=1", f"data.path={molecule_csv}", "objective.name=attrmask",
                                       "pretrain.epochs=1", "pretrain.batch_size=8",
                                       *[f"model.{k}={v}" for k, v in ARCH.items()]]))
    [method] = harness.parse_methods([f"encoder:{path}"])
    assert (method.label, method.checkpoint, method.objective) == ("Step-500", str(path), None)
    with pytest.raises(ConfigError, match=r"differs from model: in hidden; set model.hidden=16"):
        harness.run_benchmark(_config(tmp_path, molecule_csv, ["scratch", f"encoder:{path}"],
                                      model={**ARCH, "hidden": 32}), command="test")
    seen = _record_checkpoints(monkeypatch)
    monkeypatch.setattr(harness, "pretrain", lambda *a, **k: pytest.fail("an encoder method must not pretrain"))
    out = harness.run_benchmark(_config(tmp_path, molecule_csv, ["scratch", f"encoder:{path}"]), command="test")
    assert seen == [None, str(path)]
    meta = json.loads((out / "results.json").read_text())["meta"]
    assert meta["encoders"]["Step-500"] == {"path": str(path), "objective": "attrmask"}


def test_resume_runs_only_what_an_earlier_results_file_lacks(tmp_path, molecule_csv, entry, monkeypatch, one_thread):
    first = _config(tmp_path, molecule_csv, ["scratch"])
    harness.run_benchmark(first, command="test")
    before = json.loads((tmp_path / "bench" / "results.json").read_text())["runs"]

    seen = _record_checkpoints(monkeypatch)
    more = _config(tmp_path, molecule_csv, ["scratch", {"name": "zoo:tiny", "label": "tiny-zoo"}])
    more.benchmark.resume = True
    out = harness.run_benchmark(more, command="test")
    assert [str(c) for c in seen] == ["zoo:tiny"]  # scratch's run was kept, not repeated
    after = json.loads((out / "results.json").read_text())
    assert after["runs"][0] == before[0]
    assert [r["method"] for r in after["runs"]] == ["scratch", "tiny-zoo"]
    assert "kept 1 runs of earlier ones" in (out / "results.md").read_text()

    # other fine-tuning settings would mix incomparable runs into one table
    changed = _config(tmp_path, molecule_csv, ["scratch"])
    changed.benchmark.resume = True
    changed.finetune.epochs = 2
    with pytest.raises(ConfigError, match="other model, finetune"):
        harness.run_benchmark(changed, command="test")


def test_an_interrupted_resume_keeps_the_earlier_runs_it_had_not_reached(tmp_path, molecule_csv, monkeypatch,
                                                                          one_thread):
    first = _config(tmp_path, molecule_csv, ["scratch"])
    first.benchmark.seeds = [2]
    harness.run_benchmark(first, command="test")
    [earlier] = json.loads((tmp_path / "bench" / "results.json").read_text())["runs"]

    finetune = harness.finetune
    calls = []

    def stop_at_second(cfg, checkpoint=None, dataset=None, split=None):
        calls.append(cfg.seed)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the machine went away during seed 1
        return finetune(cfg, checkpoint=checkpoint, dataset=dataset, split=split)

    monkeypatch.setattr(harness, "finetune", stop_at_second)
    more = _config(tmp_path, molecule_csv, ["scratch"])
    more.benchmark.seeds = [0, 1, 2]
    more.benchmark.resume = True
    with pytest.raises(KeyboardInterrupt):
        harness.run_benchmark(more, command="test")
    runs = json.loads((tmp_path / "bench" / "results.json").read_text())["runs"]
    assert sorted(r["seed"] for r in runs) == [0, 2]  # seed 2 ran before and is not reached yet
    assert earlier in runs


def test_resume_accepts_files_written_before_an_option_existed():
    default = harness._settings(RunConfig())
    now = harness._settings(RunConfig())
    before = json.loads(json.dumps(now))
    del before["finetune"]["task"]["sources"]  # an option added to graphssl after the earlier runs
    assert same_settings(before, now, default)
    now["finetune"]["task"]["sources"] = ["freesolv"]  # ... but set away from its default here
    assert not same_settings(before, now, default)
    now = harness._settings(RunConfig())
    now["finetune"]["epochs"] = 3
    assert not same_settings(before, now, default)
    gone = json.loads(json.dumps(before))
    gone["finetune"]["retired_option"] = 1  # an option the earlier file had and this version lacks
    assert not same_settings(gone, harness._settings(RunConfig()), default)


def test_how_task_data_are_built_is_not_a_benchmark_setting():
    one, two = RunConfig(), RunConfig()
    one.benchmark.tasks, two.benchmark.tasks = [{"name": "freesolv"}], [{"name": "freesolv", "workers": 2}]
    two.finetune.task.workers = 2
    default = harness._settings(RunConfig())
    before, now = harness._settings(one), harness._settings(two)
    del before["finetune"]["task"]["workers"]  # written before the option existed
    assert same_settings(before, now, default)
    two.benchmark.tasks = [{"name": "freesolv", "limit": 100}]
    assert not same_settings(before, harness._settings(two), default)
