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
