import time

import pytest

from graphssl.core.config import (
    DataConfig,
    apply_overrides,
    load_config,
    parse_override,
    undocumented,
)
from graphssl.core.errors import ConfigError


def test_defaults_and_overrides_are_typed(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("pretrain:\n  epochs: 3\nmodel:\n  backbone: gin\n")
    config = load_config(path, ["pretrain.epochs=7", "model.hidden=64", "finetune.lr=0.01"])
    assert config.pretrain.epochs == 7
    assert config.model.backbone == "gin"
    assert config.model.hidden == 64
    assert config.finetune.lr == pytest.approx(0.01)


def test_unknown_option_is_named_with_a_suggestion(tmp_path):
    with pytest.raises(ConfigError, match=r"pretrain\.epohcs.*Did you mean 'epochs'"):
        load_config(None, ["pretrain.epohcs=3"])


def test_wrong_type_is_rejected():
    with pytest.raises(ConfigError, match="pretrain.epochs.*integer"):
        load_config(None, ["pretrain.epochs=three"])
    with pytest.raises(ConfigError, match="progress.*true or false"):
        load_config(None, ["progress=3"])


def test_objective_keys_become_options():
    config = load_config(None, ["objective.name=attrmask", "objective.mask_rate=0.3"])
    assert config.objective.name == "attrmask"
    assert config.objective.options == {"mask_rate": 0.3}


def test_task_by_name_or_mapping():
    config = load_config(None, ["finetune.task=b3db", "finetune.task.on_error=skip"])
    assert config.finetune.task == DataConfig(name="b3db", on_error="skip")


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("seed: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("pretrain.epochs")
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"seed": 1}, ["seed.x=2"])


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_every_option_has_help():
    assert undocumented() == []


# ----------------------------------------------------------------------------- YAML strictness

def test_a_section_given_twice_is_refused_naming_both_lines(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("pretrain:\n  epochs: 1\nmodel: {hidden: 16}\npretrain:\n  epochs: 10\n  batch_size: 256\n")
    with pytest.raises(ConfigError, match=r"twice\.yaml.*key 'pretrain' appears twice.*line 1 and line 4"):
        load_config(path)


def test_a_nested_key_given_twice_is_refused(tmp_path):
    path = tmp_path / "nested.yaml"
    path.write_text("finetune:\n  task:\n    name: b3db\n    limit: 5\n    name: freesolv\n")
    with pytest.raises(ConfigError, match="key 'name' appears twice.*line 3 and line 5"):
        load_config(path)
    with pytest.raises(ConfigError, match="key 'epochs' appears twice"):
        load_config(None, ["pretrain={epochs: 1, epochs: 2}"])


def test_merge_keys_may_still_be_overridden(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("pretrain: &base {epochs: 5, lr: 0.1}\nfinetune:\n  <<: *base\n  epochs: 7\n")
    config = load_config(path)
    assert (config.finetune.epochs, config.finetune.lr, config.pretrain.epochs) == (7, 0.1, 5)


def test_exponent_numbers_without_a_dot_are_numbers(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("pretrain:\n  lr: 1e-4\n  max_steps: 1e3\nfinetune:\n  lr: 1E+2\n  encoder_lr: 2.5e-5\n")
    config = load_config(path, ["pretrain.weight_decay=1e-6"])
    assert config.pretrain.lr == pytest.approx(1e-4) and config.pretrain.max_steps == 1000
    assert config.finetune.lr == pytest.approx(100.0) and config.finetune.encoder_lr == pytest.approx(2.5e-5)
    assert config.pretrain.weight_decay == pytest.approx(1e-6)
    # names that only look like numbers stay text, and a fractional step count is still refused
    assert load_config(None, ["finetune.task.name=e5"]).finetune.task.name == "e5"
    with pytest.raises(ConfigError, match="pretrain.max_steps.*integer"):
        load_config(None, ["pretrain.max_steps=1.5e0"])


def test_an_alias_bomb_is_refused_quickly(tmp_path):
    levels = ["    a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"]
    for previous, name in zip("abcde", "bcdef"):
        levels.append(f"    {name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("model:\n  options:\n" + "\n".join(levels) + "\n")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"bomb\.yaml.*aliases expand to more than"):
        load_config(path)
    assert time.perf_counter() - start < 2.0
    with pytest.raises(ConfigError, match="override.*aliases expand"):
        load_config(None, ["model.options=" + "{" + ", ".join(l.strip() for l in levels) + "}"])
    # a few aliases are fine
    path.write_text("model:\n  options:\n    a: &a [1, 2]\n    b: [*a, *a]\n")
    assert load_config(path).model.options == {"a": [1, 2], "b": [[1, 2], [1, 2]]}


def test_an_alias_inside_itself_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("model:\n  options: &loop\n    again: *loop\n")
    with pytest.raises(ConfigError, match="refers to the mapping or list that holds it"):
        load_config(path)


# ----------------------------------------------------------------------------- value ranges

@pytest.mark.parametrize("override, option, reason", [
    ("finetune.epochs=0", "finetune.epochs", "positive integer"),
    ("pretrain.epochs=0", "pretrain.epochs", "positive integer"),
    ("pretrain.epochs=-3", "pretrain.epochs", "positive integer"),
    ("finetune.batch_size=0", "finetune.batch_size", "positive integer"),
    ("pretrain.batch_size=-8", "pretrain.batch_size", "positive integer"),
    ("finetune.dropout=1.5", "finetune.dropout", r"\[0, 1\)"),
    ("model.dropout=-0.1", "model.dropout", r"\[0, 1\)"),
    ("finetune.lr=-1", "finetune.lr", "positive number"),
    ("pretrain.lr=-0.001", "pretrain.lr", "positive number"),
    ("pretrain.lr=.inf", "pretrain.lr", "positive number"),
    ("finetune.encoder_lr=0", "finetune.encoder_lr", "positive number"),
    ("pretrain.num_workers=-1", "pretrain.num_workers", "non-negative integer"),
    ("pretrain.accumulate=0", "pretrain.accumulate", "positive integer"),
    ("pretrain.skip_nonfinite=-1", "pretrain.skip_nonfinite", "non-negative integer"),
    ("finetune.label_fraction=0", "finetune.label_fraction", r"\(0, 1\]"),
    ("finetune.label_fraction=1.5", "finetune.label_fraction", r"\(0, 1\]"),
    ("finetune.split_fractions=[0.5, 0.5]", "finetune.split_fractions", "three numbers"),
    ("finetune.split_fractions=[0.5, 0.6, 0.1]", "finetune.split_fractions", "sum to 1"),
    ("finetune.split_fractions=[0, 0.5, 0.5]", r"finetune.split_fractions\[0\]", r"\(0, 1\]"),
    ("model.jk=concat", "model.jk", "Did you mean 'cat'"),
    ("model.hidden=0", "model.hidden", "positive integer"),
    ("finetune.seed=-1", "finetune.seed", "non-negative integer"),
    ("benchmark.label_fractions=[0.5, 0]", r"benchmark.label_fractions\[1\]", r"\(0, 1\]"),
    ("benchmark.seeds=[]", "benchmark.seeds", "empty"),
    ("pretrain.resume=maybe", "pretrain.resume", "true, false or force"),
    ("output_dir=''", "output_dir", "empty"),
    ("cache_dir=' '", "cache_dir", "empty"),
])
def test_values_out_of_range_are_refused_naming_the_option(override, option, reason):
    with pytest.raises(ConfigError, match=f"'{option}'.*{reason}"):
        load_config(None, [override])


def test_a_task_type_typo_names_the_section_it_is_in():
    with pytest.raises(ConfigError, match="'finetune.task.task_type'.*Did you mean 'regression'"):
        load_config(None, ["finetune.task.task_type=regresion"])
    with pytest.raises(ConfigError, match=r"'benchmark.tasks\[0\].task_type'"):
        load_config(None, ["benchmark.tasks=[{path: x.csv, task_type: clasification}]"])


def test_checks_run_again_on_a_config_changed_after_loading():
    config = load_config(None, [])
    config.finetune.epochs = 0
    with pytest.raises(ConfigError, match="'finetune.epochs'"):
        config.check()


def test_resume_accepts_force_and_folders_expand_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_config(None, ["pretrain.resume=force", "output_dir=~/runs/a", "cache_dir=~/cache"])
    assert config.pretrain.resume == "force"
    assert config.output_dir == str(tmp_path / "runs" / "a") and config.cache_dir == str(tmp_path / "cache")
