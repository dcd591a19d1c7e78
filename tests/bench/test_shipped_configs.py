"""Every YAML config the project ships parses, and names only known objectives and data sets."""

from pathlib import Path

import pytest

from graphssl.bench.harness import parse_methods, parse_tasks
from graphssl.brep.encoders import brep_feature_spec
from graphssl.core.config import data_config, load_config
from graphssl.data.sources import catalogue
from graphssl.molecule.features import molecule_feature_spec
from graphssl.nn import build_encoder
from graphssl.objectives.registry import build_objective

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted([*ROOT.glob("configs/*.yaml"), *ROOT.glob("benchmarks/*.yaml"), *ROOT.glob("benchmarks/zoo/*.yaml")])


def test_configs_exist():
    names = {p.name for p in CONFIGS}
    assert {"demo.yaml", "quick.yaml", "paper.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_parses(path):
    config = load_config(path)
    benchmark_tasks = [t.data for t in parse_tasks(config.benchmark.tasks, config.finetune)]
    for task in [data_config(config.data), data_config(config.finetune.task), *benchmark_tasks]:
        if task.name:
            assert task.name in {row[0] for row in catalogue()}
    features = molecule_feature_spec()
    if "brep" in path.name:
        features = brep_feature_spec()
    encoder = build_encoder(config.model, features)
    # encoder:PATH methods name the outputs of earlier runs (documented in the config), not shipped files
    specs = [m for m in config.benchmark.methods
             if not str(m.get("name") if isinstance(m, dict) else m).startswith("encoder:")]
    zoo_run = path.parent.name == "zoo"  # a zoo entry's pretraining run: its objective, no benchmark section
    for method in parse_methods([] if zoo_run else specs):
        if method.objective:
            build_objective(method.objective, encoder, method.options)
    if zoo_run or config.objective.options:
        build_objective(config.objective.name, encoder, config.objective.options)
