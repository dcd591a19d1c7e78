"""The model zoo: safetensors weights with a card, sha256-checked loads, CLI and fine-tuning by name."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Batch

from graphssl import zoo
from graphssl.cli import main
from graphssl.core.config import ModelConfig
from graphssl.core.errors import CheckpointError, ConfigError
from graphssl.engine.pretrained import load_pretrained
from graphssl.molecule.features import molecule_feature_spec
from graphssl.nn import build_encoder

SMALL = ModelConfig(backbone="gine", hidden=16, num_layers=2, norm="batch_norm", pooling="mean")


def _molecules(smiles=("CCO", "c1ccccc1O", "CC(=O)N")) -> Batch:
    from graphssl.molecule.adapter import smiles_to_data

    return Batch.from_data_list([smiles_to_data(s) for s in smiles])


def _write_small(root: Path, name: str = "tiny-mol") -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    encoder = build_encoder(SMALL, molecule_feature_spec())
    with torch.no_grad():  # non-default statistics, so a lost buffer would show
        for module in encoder.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    folder = zoo.write_entry(
        name, root, encoder_state=encoder.state_dict(), model=SMALL,
        objective={"name": "attrmask", "options": {"mask_rate": 0.15}}, objective_state={},
        feature_spec={"domain": "molecule"}, description="A test entry.", data={"name": "test", "records": 3},
        pretrain={"steps": 1, "graph_passes": 3})
    return encoder.eval(), folder


def test_round_trip_gives_the_same_embeddings(tmp_path):
    encoder, folder = _write_small(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["card.json", "weights.safetensors"]
    assert zoo.names(tmp_path) == ["tiny-mol"]
    loaded = zoo.load("zoo:tiny-mol", root=tmp_path)
    assert not loaded.training
    batch = _molecules()
    with torch.no_grad():
        assert torch.equal(loaded.embed_graphs(batch), encoder.embed_graphs(batch))
    card = zoo.card("tiny-mol", tmp_path)
    assert card["weights"]["sha256"] == zoo.sha256_of(folder / "weights.safetensors")
    assert card["weights"]["parameters"] == sum(p.numel() for p in encoder.parameters()) + sum(
        b.numel() for n, b in encoder.named_buffers() if b.is_floating_point())


def test_weights_are_safetensors_without_pickle(tmp_path):
    _, folder = _write_small(tmp_path)
    raw = (folder / "weights.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_len])
    assert header["__metadata__"]["format"] == zoo.CARD_FORMAT
    assert all(k.startswith("encoder.") for k in header if k != "__metadata__")
    assert b"\x80\x04" not in raw[:8 + header_len]  # no pickle protocol marker in the header


def test_a_flipped_byte_fails_the_sha256_check(tmp_path):
    _, folder = _write_small(tmp_path)
    path = folder / "weights.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0x01  # inside the tensor data: still a well-formed file
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"sha256 .* but its card says .* corrupted or was edited"):
        zoo.load("tiny-mol", root=tmp_path)
    with pytest.raises(CheckpointError, match="sha256"):
        zoo.verify("tiny-mol", tmp_path)


def test_unknown_and_unsafe_names_are_refused(tmp_path):
    _write_small(tmp_path)
    with pytest.raises(ConfigError, match=r"no zoo entry named 'tiny'.*tiny-mol.*Did you mean 'tiny-mol'"):
        zoo.card("tiny", tmp_path)
    with pytest.raises(ConfigError, match="no zoo entry named '../tiny-mol'"):
        zoo.card("../tiny-mol", tmp_path)
    with pytest.raises(ConfigError, match="plain folder name"):
        zoo.write_entry("a/b", tmp_path, encoder_state={}, model=SMALL, objective={"name": "x"},
                        objective_state={}, feature_spec={"domain": "molecule"})


def test_non_finite_weights_are_never_written(tmp_path):
    encoder = build_encoder(SMALL, molecule_feature_spec())
    state = encoder.state_dict()
    next(v for v in state.values() if v.is_floating_point()).fill_(float("nan"))
    with pytest.raises(CheckpointError, match="NaN or inf"):
        zoo.write_entry("bad", tmp_path, encoder_state=state, model=SMALL, objective={"name": "attrmask"},
                        objective_state={}, feature_spec={"domain": "molecule"})
    assert not (tmp_path / "bad" / "weights.safetensors").exists()


def test_an_entry_from_a_pretrain_run_reads_its_budget_from_the_run(tmp_path, molecule_csv, one_thread):
    from graphssl.core.config import load_config
    from graphssl.engine.checkpoint import load_checkpoint
    from graphssl.engine.pretrain import pretrain

    config = load_config(None, [f"data.path={molecule_csv}", "model.backbone=gine", "model.hidden=16",
                                "model.num_layers=2", "objective.name=attrmask", "pretrain.epochs=2",
                                "pretrain.batch_size=4", f"output_dir={tmp_path / 'run'}",
                                f"cache_dir={tmp_path / 'cache'}", "progress=false"])
    path = pretrain(config)
    payload = load_checkpoint(path)
    folder = zoo.entry_from_pretrained(payload, "from-run", tmp_path / "zoo", description="From a run.",
                                       command="graphssl pretrain ...", machine="test machine")
    card = zoo.card("from-run", tmp_path / "zoo")
    history = payload["history"]
    assert card["pretrain"]["epochs"] == 2
    assert card["pretrain"]["steps"] == history[-1]["steps"] == 2 * history[0]["steps"]  # a cumulative count
    assert card["pretrain"]["graph_passes"] == card["pretrain"]["steps"] * 4
    assert card["pretrain"]["final_loss"] == pytest.approx(history[-1]["loss"], abs=1e-5)
    assert card["objective"] == {"name": "attrmask", "options": {}} or card["objective"]["name"] == "attrmask"
    assert card["feature_spec"] == {"domain": "molecule", "explicit_h": False}
    # the shipped weights are the encoder.pt weights
    loaded = zoo.read("from-run", tmp_path / "zoo")
    for key, value in payload["encoder"].items():
        assert torch.equal(loaded.weights[key], value)
    # and the card renders
    text = zoo.card_markdown("from-run", tmp_path / "zoo")
    assert "# from-run" in text and card["weights"]["sha256"] in text and "graphssl pretrain ..." in text
    assert folder.name == "from-run"


def test_load_pretrained_accepts_zoo_names(tmp_path, monkeypatch):
    encoder, _ = _write_small(tmp_path)
    monkeypatch.setattr(zoo, "ENTRIES", tmp_path)
    pretrained = load_pretrained("zoo:tiny-mol")
    assert pretrained.objective == "attrmask"
    assert dataclasses.asdict(pretrained.model) == dataclasses.asdict(SMALL)
    for key, value in encoder.state_dict().items():
        assert torch.equal(pretrained.weights[key], value)


def test_cli_lists_shows_and_finetunes_from_the_zoo(tmp_path, monkeypatch, capsys, molecule_csv, one_thread):
    _write_small(tmp_path)
    monkeypatch.setattr(zoo, "ENTRIES", tmp_path)
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert "tiny-mol" in out and "gine 2x16" in out and "molecule" in out
    assert main(["zoo", "show", "tiny-mol"]) == 0
    assert "sha256" in capsys.readouterr().out
    assert main(["zoo", "show", "nope"]) == 2
    assert "no zoo entry named 'nope'" in capsys.readouterr().err
    args = ["finetune", "--set", f"finetune.task.path={molecule_csv}", "--set", "finetune.task.task_type=regression", "--set", "finetune.task.label_columns=[logp]",
            "--set", "finetune.epochs=1", "--set", "finetune.split=random", "--set", f"output_dir={tmp_path / 'ft'}",
            "--set", f"cache_dir={tmp_path / 'cache'}", "--set", "progress=false"]
    assert main([*args, "--checkpoint", "zoo:tiny-mol"]) == 0
    assert "valid" in capsys.readouterr().out
    # the same through the config option, and a corrupted entry fails before any training
    raw = bytearray((tmp_path / "tiny-mol" / "weights.safetensors").read_bytes())
    raw[-1] ^= 0x10
    (tmp_path / "tiny-mol" / "weights.safetensors").write_bytes(bytes(raw))
    assert main([*args, "--set", "finetune.pretrained=zoo:tiny-mol", "--set", f"output_dir={tmp_path / 'ft2'}"]) == 2
    assert "sha256" in capsys.readouterr().err


def _example(spec: dict, request) -> Batch:
    domain = spec["domain"]
    if domain == "molecule":
        return _molecules()
    if domain == "atomistic":
        from graphssl.atomistic.adapters import from_positions

        # the neighbour list the entry was pretrained with
        water = from_positions([8, 1, 1], [[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]],
                               cutoff=spec["cutoff"])
        return Batch.from_data_list([water])
    if domain == "brep":
        from graphssl.brep.adapter import step_to_graphs

        parts_dir = request.getfixturevalue("parts_dir")
        return Batch.from_data_list(step_to_graphs(sorted(parts_dir.glob("*.step"))[0]))
    raise AssertionError(domain)


@pytest.mark.parametrize("name", zoo.names())
def test_every_shipped_entry_loads_and_embeds_an_example_of_its_domain(name, request):
    card = zoo.card(name)
    encoder = zoo.load(name)
    with torch.no_grad():
        out = encoder.embed_graphs(_example(card["feature_spec"], request))
    assert out.shape[-1] == card["model"]["hidden"] and torch.isfinite(out).all()
    assert card["weights"]["bytes"] < 20e6  # the whole zoo stays in the tens of MB
    for field in ("description", "data", "objective", "pretrain", "machine", "license", "versions", "command"):
        assert card.get(field), f"zoo card of {name} lacks {field}"
