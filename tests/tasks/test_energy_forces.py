"""Energies, forces and stress as weighted outputs of one task; reference energies; noisy nodes.

Tiny models (PaiNN, hidden 16, 2 layers) on a few dozen structures.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from graphssl.atomistic.adapters import from_positions
from graphssl.atomistic.emt import generate_emt
from graphssl.atomistic.graph import AtomisticData
from graphssl.atomistic.heads import EnergyHead, VectorHead
from graphssl.cli import main
from graphssl.core.config import DataConfig, FinetuneConfig, ModelConfig, load_config
from graphssl.core.errors import ConfigError
from graphssl.data.dataset import load_dataset
from graphssl.data.splits import make_split
from graphssl.engine.checkpoint import load_checkpoint
from graphssl.engine.finetune import SELECTION_RULE, finetune
from graphssl.engine.pretrained import build_finetune_encoder
from graphssl.tasks import (
    EnergyForcesTask,
    build_task,
    fit_reference_energies,
    noisy_nodes_batch,
    noisy_nodes_loss,
)

TINY = ["model.backbone=painn", "model.hidden=16", "model.num_layers=2", "progress=false", "threads=2"]
PAINN = ModelConfig(backbone="painn", hidden=16, num_layers=2)


@pytest.fixture(scope="module")
def emt_file(tmp_path_factory) -> Path:
    return generate_emt(40, tmp_path_factory.mktemp("emt"), seed=0, progress=False)


def _sets(*pairs: str) -> list[str]:
    return [arg for pair in pairs for arg in ("--set", pair)]


@pytest.mark.slow
def test_energy_force_finetuning_through_the_cli(emt_file, tmp_path, capsys):
    run = tmp_path / "run"
    overrides = TINY + [f"output_dir={run}", f"cache_dir={tmp_path / 'cache'}", f"finetune.task.path={emt_file}",
                        "finetune.task.cutoff=4.0", "finetune.split=random", "finetune.epochs=4",
                        "finetune.batch_size=8", "finetune.lr=0.003"]
    assert main(["finetune", *_sets(*overrides)]) == 0
    assert "force_mae" in capsys.readouterr().out
    result = json.loads((run / "result.json").read_text())
    assert result["metric"] == "force_mae" and result["selection"] == SELECTION_RULE
    assert np.isfinite(result["test"]) and np.isfinite(result["valid"]) and np.isfinite(result["test_energy_mae"])
    assert result["units"] == {"force_mae": "eV/A", "energy_mae": "eV/atom"}
    history = result["history"]
    assert len(history) == 4 and all({"valid_energy_mae", "test_energy_mae", "force_mse", "energy_mse"} <= set(h)
                                     for h in history)
    best = min(history, key=lambda h: h["valid"])
    assert result["best_epoch"] == best["epoch"] and result["valid"] == pytest.approx(best["valid"])
    assert result["test"] == best["test"] and result["test_energy_mae"] == best["test_energy_mae"]

    # The reported test score is that of the best validation epoch's weights (best.pt), re-scored here.
    config = load_config(None, overrides)
    dataset = load_dataset(config.finetune.task, config.cache_dir, progress=False, verbose=False)
    assert dataset.task_type == "energy_forces" and dataset.metric == "force_mae"
    split = make_split(dataset, config.finetune)
    saved = load_checkpoint(run / "best.pt")
    assert saved["task_names"] == ["energy", "forces"] and saved["task_type"] == "energy_forces"
    task = build_task(dataset, config.finetune)
    task.prepare(dataset.subset(split.train))
    assert torch.equal(task.reference_energies, saved["reference_energies"])
    model_cfg = dataclasses.replace(config.model, dropout=config.finetune.dropout)
    model = task.setup(build_finetune_encoder(model_cfg, dataset, None, 4.0), model_cfg.backbone)
    model.load_state_dict(saved["model"])
    scores = task.evaluate(model, dataset.subset(split.test), torch.device("cpu"))
    assert scores["force_mae"] == pytest.approx(result["test"], rel=1e-6)
    assert scores["energy_mae"] == pytest.approx(result["test_energy_mae"], rel=1e-6)


def test_reference_energies_recover_a_linear_model():
    refs = {13: -3.75, 29: -4.1, 79: -3.2}
    rng = np.random.default_rng(0)
    structures = []
    for k in range(12):
        z = rng.choice(list(refs), size=int(rng.integers(2, 9)))
        energy = sum(refs[int(a)] for a in z)
        structures.append(AtomisticData(z=torch.as_tensor(z), pos=torch.zeros(len(z), 3),
                                        energy=torch.tensor([energy]), name=f"s{k}"))
    fitted = fit_reference_energies(structures)
    assert fitted.shape == (120,)
    for z, value in refs.items():
        assert fitted[z].item() == pytest.approx(value, abs=1e-5)
    others = torch.ones(120, dtype=torch.bool)
    others[list(refs)] = False
    assert torch.count_nonzero(fitted[others]) == 0  # absent elements get no reference
    # With a silent network the head predicts the references' sum exactly.
    head = EnergyHead(8, reference_energies=fitted)
    torch.nn.init.zeros_(head.mlp[-1].weight)
    torch.nn.init.zeros_(head.mlp[-1].bias)
    batch = Batch.from_data_list(structures)
    predicted = head(torch.randn(batch.num_nodes, 8), batch)
    torch.testing.assert_close(predicted, batch.energy.view(-1), atol=1e-5, rtol=0)


def test_stress_is_a_third_weighted_output(emt_file, tmp_path):
    dataset = load_dataset(DataConfig(path=str(emt_file), cutoff=4.0), tmp_path, progress=False, verbose=False)
    train = dataset.subset(range(8))
    config = FinetuneConfig(energy_weight=1.0, force_weight=10.0)
    task = EnergyForcesTask(dataset, config, stress_weight=100.0)
    assert task.task_names == ["energy", "forces", "stress"] and task.secondary == ("energy_mae", "stress_mae")
    assert EnergyForcesTask(dataset, config).task_names == ["energy", "forces"]  # off by default
    from_config = EnergyForcesTask(dataset, FinetuneConfig(stress_weight=100.0))
    assert from_config.task_names == task.task_names and from_config.outputs[-1].weight == 100.0
    task.prepare(train)
    torch.manual_seed(0)
    model = task.setup(build_finetune_encoder(PAINN, train, None, 4.0), "painn")
    terms = task.loss(model, Batch.from_data_list([train[i] for i in range(4)]))
    assert set(terms) == {"loss", "energy_mse", "force_mse", "stress_mse"}
    expected = terms["energy_mse"] + 10.0 * terms["force_mse"] + 100.0 * terms["stress_mse"]
    torch.testing.assert_close(terms["loss"], expected)
    terms["loss"].backward()
    assert model.head.mlp[0].weight.grad.abs().sum() > 0
    scores = task.evaluate(model, train, torch.device("cpu"))
    assert set(scores) == {"force_mae", "energy_mae", "stress_mae"} and all(np.isfinite(list(scores.values())))
    with pytest.raises(ConfigError, match="stress_weight must be >= 0"):
        EnergyForcesTask(dataset, config, stress_weight=-1.0)


def test_energy_forces_needs_full_finetuning_and_a_geometric_backbone(emt_file, tmp_path):
    dataset = load_dataset(DataConfig(path=str(emt_file), cutoff=4.0), tmp_path, progress=False, verbose=False)
    with pytest.raises(ConfigError, match="finetune.mode='linear' is not supported by the energy_forces task"):
        build_task(dataset, FinetuneConfig(mode="linear"))
    with pytest.raises(ConfigError, match="need a geometric backbone.*'gine'"):
        build_task(dataset, FinetuneConfig()).setup(SimpleNamespace(out_channels=8), "gine")


def _molecules() -> Batch:
    water = from_positions(["O", "H", "H"], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], cutoff=4.0, name="water")
    methane = from_positions(["C", "H", "H", "H", "H"], [[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63],
                                                         [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]],
                             cutoff=4.0, name="methane")
    return Batch.from_data_list([water, methane])


def test_noisy_nodes_target_is_centred_and_the_loss_trains_encoder_and_head():
    batch = _molecules()
    torch.manual_seed(0)
    noisy, target = noisy_nodes_batch(batch, sigma=0.5)
    for g in range(2):
        mask = batch.batch == g
        torch.testing.assert_close(target[mask].mean(0), torch.zeros(3), atol=1e-6, rtol=0)
        torch.testing.assert_close(noisy.pos[mask] - batch.pos[mask], 0.5 * target[mask])
    encoder = build_finetune_encoder(PAINN, None, None, 4.0)
    head = VectorHead.for_backbone(encoder.backbone)
    loss = noisy_nodes_loss(encoder, head, batch, sigma=0.005)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert head.blocks[0].lin_v1.weight.grad.abs().sum() > 0
    assert encoder.backbone.embedding.weight.grad.abs().sum() > 0


def test_noisy_nodes_changes_the_finetuning_loss(tmp_path):
    def run(weight: float):
        config = load_config(None, TINY + [
            f"output_dir={tmp_path / f'w{weight}'}", f"cache_dir={tmp_path / 'cache'}", "finetune.task.name=qm9-3d",
            "finetune.task.limit=24", "finetune.task.label_columns=[gap]", "finetune.task.cutoff=4.0",
            "finetune.split=random", "finetune.epochs=1", "finetune.batch_size=8", "finetune.save_checkpoints=false",
            f"finetune.noisy_nodes_weight={weight}"])
        return finetune(config).history[0]

    plain, noisy = run(0.0), run(1.0)
    assert "noisy_nodes" not in plain and noisy["noisy_nodes"] > 0
    assert noisy["loss"] != pytest.approx(plain["loss"])
    with pytest.raises(ConfigError, match="noisy_nodes_weight"):
        run(-1.0)
