"""Energy/force fine-tuning, reference energies, the matbench split, noisy nodes and data.offset.

Tiny models (PaiNN, hidden 16, 2 layers) on a few dozen structures: the whole file runs in
well under a minute on two cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from graphssl.atomistic.adapters import from_positions
from graphssl.atomistic.datasets import matbench_folds
from graphssl.atomistic.emt import generate_emt
from graphssl.atomistic.encoder import GeometricEncoder
from graphssl.atomistic.graph import AtomisticData
from graphssl.atomistic.heads import EnergyHead, VectorHead
from graphssl.cli import main
from graphssl.core.config import DataConfig, FinetuneConfig, ModelConfig, load_config
from graphssl.data.dataset import load_dataset
from graphssl.nn import build_encoder
from graphssl.core.errors import ConfigError
from graphssl.engine.atomistic import (
    EnergyForceModel,
    evaluate,
    fit_reference_energies,
    noisy_nodes_batch,
    noisy_nodes_loss,
)
from graphssl.engine.checkpoint import load_checkpoint
from graphssl.atomistic.splits import matbench_split
from graphssl.data.splits import make_split
from graphssl.engine.finetune import SELECTION_RULE, finetune

TINY = ["model.backbone=painn", "model.hidden=16", "model.num_layers=2", "progress=false", "threads=2"]


@pytest.fixture(scope="module")
def emt_file(tmp_path_factory) -> Path:
    return generate_emt(40, tmp_path_factory.mktemp("emt"), seed=0, progress=False)


def _sets(*pairs: str) -> list[str]:
    return [arg for pair in pairs for arg in ("--set", pair)]


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
    history = result["history"]
    assert len(history) == 4 and all("valid_energy_mae" in h and "force_mse" in h for h in history)
    best = min(history, key=lambda h: h["valid"])
    assert result["best_epoch"] == best["epoch"] and result["valid"] == pytest.approx(best["valid"])

    # The reported test score is that of the best validation epoch's weights (best.pt), re-scored here.
    config = load_config(None, overrides)
    dataset = load_dataset(config.finetune.task, config.cache_dir, progress=False, verbose=False)
    assert dataset.task_type == "energy_forces" and dataset.metric == "force_mae"
    split = make_split(dataset, config.finetune)
    saved = load_checkpoint(run / "best.pt")
    encoder = GeometricEncoder(build_encoder(config.model, cutoff=4.0))
    model = EnergyForceModel(encoder, EnergyHead(16, reference_energies=saved["reference_energies"]))
    model.load_state_dict(saved["model"])
    scores = evaluate(model, dataset.subset(split.test), torch.device("cpu"))
    assert scores["force_mae"] == pytest.approx(result["test"], rel=1e-5)
    assert scores["energy_mae"] == pytest.approx(result["test_energy_mae"], rel=1e-5)


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


def test_matbench_split_is_disjoint_covering_and_matches_the_folds():
    n = 4764
    folds = matbench_folds(n)
    tests = []
    for fold in range(5):
        split = make_split(range(n), FinetuneConfig(split="matbench", split_seed=fold))  # only len() is used
        parts = [split.train, split.valid, split.test]
        joined = np.concatenate(parts)
        assert len(joined) == n and np.array_equal(np.sort(joined), np.arange(n))  # disjoint and covering
        assert np.array_equal(split.test, np.sort(folds[fold][1]))
        assert len(split.valid) == round(0.1 * len(folds[fold][0]))
        assert np.array_equal(matbench_split(n, fold).valid, split.valid)  # seeded: reproducible
        tests.append(split.test)
    assert np.array_equal(np.sort(np.concatenate(tests)), np.arange(n))  # each structure tested once
    with pytest.raises(ConfigError, match="0..4"):
        matbench_split(n, 5)


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
    encoder = GeometricEncoder(build_encoder(ModelConfig(backbone="painn", hidden=16, num_layers=2), cutoff=4.0))
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


def test_offset_makes_structure_sets_disjoint(emt_file, tmp_path):
    def load(**options):
        return load_dataset(DataConfig(**options), tmp_path / "cache", progress=False, verbose=False)

    first, rest = load(name="qm9-3d", limit=6), load(name="qm9-3d", offset=6, limit=6)
    assert not set(first.names) & set(rest.names)
    assert rest.names[0] == "dsgdb9nsd_000007.xyz" and rest.report.read == 6  # skipped records are not read
    both = load(name="qm9-3d", limit=12).names
    assert both == first.names + rest.names

    head, tail = load(path=str(emt_file), limit=30), load(path=str(emt_file), offset=30)
    assert len(head) == 30 and len(tail) == 10 and tail.report.read == 10
    assert not set(head.names) & set(tail.names) and tail.names[0] == "emt.extxyz[30]"
    frames = ase.io.read(emt_file, "30:", format="extxyz")
    assert [d.energy.item() for d in tail] == pytest.approx([a.get_potential_energy() for a in frames], rel=1e-6)

    crystals = load(name="matbench-dielectric", offset=2, limit=2)
    assert crystals.names == ["matbench_dielectric[2]", "matbench_dielectric[3]"]
    with pytest.raises(Exception, match="offset"):
        load(name="qm9-3d", offset=-1, limit=2)
