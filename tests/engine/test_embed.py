"""Embedding inputs with a pretrained encoder: rows that never shift, every input kind, the CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch_geometric.data import Batch

import graphssl
from graphssl import zoo
from graphssl.cli import main
from graphssl.core.config import ModelConfig
from graphssl.core.errors import ConfigError, DataError
from graphssl.engine.embed import embed_file, index_path, load_encoder, plot_path
from graphssl.molecule.features import molecule_feature_spec
from graphssl.nn import build_encoder

pytestmark = pytest.mark.usefixtures("one_thread")

MOL_MODEL = ModelConfig(backbone="gine", hidden=16, num_layers=2, norm="batch_norm", pooling="mean")
GEO_MODEL = ModelConfig(backbone="schnet", hidden=16, num_layers=2, pooling="sum")
GOOD = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "c1ccncc1C", "CCN(CC)CC", "C1CCCCC1N", "OC(=O)c1ccccc1O"]
BAD_ROW = 2  # "C1CC": an unclosed ring


def _randomise_batch_norm(encoder: torch.nn.Module) -> None:
    # non-default statistics: a batch embedded in training mode would then differ visibly
    with torch.no_grad():
        for module in encoder.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)


@pytest.fixture
def entries(tmp_path, monkeypatch) -> Path:
    """A zoo with a tiny molecule encoder and a tiny geometric one (cutoff 4 A)."""
    root = tmp_path / "zoo"
    torch.manual_seed(0)
    mol = build_encoder(MOL_MODEL, molecule_feature_spec())
    _randomise_batch_norm(mol)
    zoo.write_entry("tiny-mol", root, encoder_state=mol.state_dict(), model=MOL_MODEL,
                    objective={"name": "attrmask"}, objective_state={}, feature_spec={"domain": "molecule"})
    geo = build_encoder(GEO_MODEL, cutoff=4.0)
    zoo.write_entry("tiny-geo", root, encoder_state=geo.state_dict(), model=GEO_MODEL,
                    objective={"name": "denoise"}, objective_state={},
                    feature_spec={"domain": "atomistic", "cutoff": 4.0})
    monkeypatch.setattr(zoo, "ENTRIES", root)
    return root


@pytest.fixture
def table(tmp_path) -> Path:
    """A CSV of molecules with one bad SMILES (row 2) and a label column."""
    smiles = [*GOOD[:BAD_ROW], "C1CC", *GOOD[BAD_ROW:]]
    path = tmp_path / "mols.csv"
    path.write_text("smiles,logp\n" + "".join(f"{s},{0.3 * k - 1:.2f}\n" for k, s in enumerate(smiles)))
    return path


def _direct(smiles: str, level: str = "graph") -> np.ndarray:
    """The entry's embedding of one molecule, computed by hand from the loaded encoder."""
    from graphssl.molecule.adapter import smiles_to_data

    encoder = zoo.load("tiny-mol")
    batch = Batch.from_data_list([smiles_to_data(smiles)])
    with torch.no_grad():
        out = encoder.embed_graphs(batch) if level == "graph" else encoder(batch)
    return out.numpy()


def _index(out: Path) -> pd.DataFrame:
    return pd.read_csv(index_path(out), keep_default_na=False, dtype={"id": str, "reason": str, "row": str})


def test_a_bad_row_is_skipped_with_its_reason_and_no_row_shifts(entries, table, tmp_path):
    out = tmp_path / "emb.npy"
    summary = embed_file("zoo:tiny-mol", table, out, batch_size=3, progress=False)
    vectors = np.load(out)
    assert vectors.shape == (len(GOOD), 16) and vectors.dtype == np.float32
    assert summary.rows == len(GOOD) and summary.report.read == len(GOOD) + 1
    index = _index(out)
    assert list(index["record"]) == list(range(len(GOOD) + 1))  # every input row, in input order
    bad = index[index["status"] == "skipped"]
    assert list(bad["record"]) == [BAD_ROW] and bad["id"].iloc[0] == "C1CC" and bad["row"].iloc[0] == ""
    assert "unclosed ring" in bad["reason"].iloc[0]
    kept = index[index["status"] == "embedded"]
    assert list(kept["row"].astype(int)) == list(range(len(GOOD)))
    assert list(kept["id"]) == GOOD
    for row, smiles in zip(kept["row"].astype(int), kept["id"]):
        np.testing.assert_allclose(vectors[row], _direct(smiles)[0], rtol=1e-5, atol=1e-5)
    # eval mode: a vector does not depend on the batch it was computed in
    single = graphssl.embed("zoo:tiny-mol", table, batch_size=1, device="cpu")
    np.testing.assert_allclose(single.vectors, vectors, rtol=1e-5, atol=1e-5)
    assert not list(tmp_path.glob(".*graphssl-tmp"))


def test_node_level_gives_one_row_per_atom(entries, table, tmp_path):
    out = tmp_path / "nodes.npy"
    embed_file("zoo:tiny-mol", table, out, level="node", batch_size=4, progress=False)
    vectors, index = np.load(out), _index(out)
    kept = index[index["status"] == "embedded"]
    from rdkit import Chem

    atoms = [Chem.MolFromSmiles(s).GetNumAtoms() for s in GOOD]
    assert len(vectors) == len(kept) == sum(atoms)
    for record, smiles in [(0, GOOD[0]), (4, GOOD[3])]:  # record 4 comes after the skipped row
        rows = kept[kept["record"] == record]
        assert list(rows["node"].astype(int)) == list(range(Chem.MolFromSmiles(smiles).GetNumAtoms()))
        np.testing.assert_allclose(vectors[rows["row"].astype(int).to_numpy()], _direct(smiles, "node"),
                                   rtol=1e-5, atol=1e-5)
    assert index.loc[index["status"] == "skipped", "record"].tolist() == [BAD_ROW]


def test_csv_output_carries_the_identifier_next_to_each_vector(entries, table, tmp_path):
    embed_file("zoo:tiny-mol", table, tmp_path / "emb.npy", progress=False)
    embed_file("zoo:tiny-mol", table, tmp_path / "emb.csv", progress=False)
    frame = pd.read_csv(tmp_path / "emb.csv")
    assert list(frame.columns[:3]) == ["record", "id", "graph"]
    assert list(frame["id"]) == GOOD and BAD_ROW not in set(frame["record"])
    np.testing.assert_allclose(frame[[f"e{k}" for k in range(16)]].to_numpy(), np.load(tmp_path / "emb.npy"),
                               rtol=1e-6, atol=1e-7)


def test_parquet_needs_pyarrow_or_round_trips(entries, table, tmp_path):
    out = tmp_path / "emb.parquet"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="writing Parquet needs pyarrow"):
            embed_file("zoo:tiny-mol", table, out, progress=False)
        assert not out.exists() and not index_path(out).exists()
        return
    embed_file("zoo:tiny-mol", table, out, progress=False)
    frame = pd.read_parquet(out)
    assert list(frame["id"]) == GOOD
    np.testing.assert_allclose(frame["e0"].to_numpy(), [_direct(s)[0, 0] for s in GOOD], rtol=1e-5, atol=1e-5)


def test_on_error_raise_names_the_record_and_leaves_no_output(entries, table, tmp_path):
    out = tmp_path / "emb.npy"
    with pytest.raises(DataError, match=r"record 2 \('C1CC'\): .*unclosed ring.*on_error=skip"):
        embed_file("zoo:tiny-mol", table, out, on_error="raise", batch_size=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mols.csv", "zoo"]


def test_in_memory_inputs_keep_their_positions(entries):
    result = graphssl.embed("zoo:tiny-mol", ["CCO", None, "C1CC", "c1ccccc1O", 42], device="cpu")
    assert result.vectors.shape == (2, 16)
    assert result.index["record"].tolist() == [0, 3] and result.index["id"].tolist() == ["CCO", "c1ccccc1O"]
    reasons = dict(zip(result.skipped["record"], result.skipped["reason"]))
    assert set(reasons) == {1, 2, 4}
    assert "missing input" in reasons[1] and "unclosed ring" in reasons[2] and "unsupported input type" in reasons[4]
    np.testing.assert_allclose(result.vectors[1], _direct("c1ccccc1O")[0], rtol=1e-5, atol=1e-5)
    # an encoder module works as well as a checkpoint, and gives the same vectors
    again = graphssl.embed(zoo.load("tiny-mol"), ["CCO", "c1ccccc1O"], device="cpu")
    np.testing.assert_allclose(again.vectors, result.vectors, rtol=1e-6, atol=1e-6)


def test_a_molecule_encoder_refuses_other_domains(entries, tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "part_0.step").write_text("ISO-10303-21;\n")  # the folder's kind is decided by its file names
    with pytest.raises(ConfigError, match=r"tiny-mol' was pretrained on molecule inputs.*holds B-rep parts"):
        embed_file("zoo:tiny-mol", parts, tmp_path / "emb.npy", progress=False)
    with pytest.raises(ConfigError, match=r"tiny-geo' was pretrained on atomistic inputs.*holds molecules"):
        graphssl.embed("zoo:tiny-geo", ["CCO", "CCN"])
    assert not (tmp_path / "emb.npy").exists()


def test_atomistic_frames_use_the_encoders_cutoff_and_need_no_energies(entries, tmp_path):
    ase = pytest.importorskip("ase")
    pytest.importorskip("vesin")
    from ase.build import bulk, molecule

    from graphssl.atomistic.adapters import from_ase

    frames = [bulk("Cu", "fcc", a=3.6, cubic=True), molecule("H2O"), bulk("Al", "fcc", a=4.05).repeat(2)]
    path = tmp_path / "frames.extxyz"
    ase.io.write(path, frames, format="extxyz")  # no calculator: no energy, no forces
    text = path.read_text().splitlines(keepends=True)
    # a garbage element in the second frame: that frame is skipped, the others keep their numbers
    first = int(text[0]) + 2
    text[first + 2] = "Xx" + text[first + 2][1:]
    path.write_text("".join(text))
    result = graphssl.embed("zoo:tiny-geo", path, device="cpu")
    assert result.index["record"].tolist() == [0, 2]
    assert result.index["id"].tolist() == ["frames.extxyz[0]", "frames.extxyz[2]"]
    assert result.skipped["record"].tolist() == [1]
    encoder = zoo.load("tiny-geo")
    with torch.no_grad():
        direct = encoder.embed_graphs(Batch.from_data_list([from_ase(frames[2], cutoff=4.0)]))
    np.testing.assert_allclose(result.vectors[1], direct[0].numpy(), rtol=1e-5, atol=1e-5)
    nodes = graphssl.embed("zoo:tiny-geo", [frames[0], frames[2]], level="node", device="cpu")
    assert len(nodes.vectors) == len(frames[0]) + len(frames[2])
    assert nodes.index.groupby("record")["node"].max().tolist() == [len(frames[0]) - 1, len(frames[2]) - 1]


def test_brep_parts_give_one_row_per_solid(tmp_path, monkeypatch, parts_dir):
    from graphssl.brep.adapter import step_to_graphs
    from graphssl.brep.encoders import brep_feature_spec

    model = ModelConfig(backbone="gin", hidden=16, num_layers=2)
    torch.manual_seed(0)
    encoder = build_encoder(model, brep_feature_spec(10))
    zoo.write_entry("tiny-brep", tmp_path, encoder_state=encoder.state_dict(), model=model,
                    objective={"name": "graphmae"}, objective_state={}, feature_spec={"domain": "brep", "grid": 10})
    monkeypatch.setattr(zoo, "ENTRIES", tmp_path)
    folder = tmp_path / "few"
    folder.mkdir()
    files = sorted(parts_dir.glob("*.step"))[:3]
    for path in files:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.step").write_text("ISO-10303-21;\nnot a part\n")
    out = tmp_path / "parts.npy"
    embed_file("zoo:tiny-brep", folder, out, progress=False)
    index = _index(out)
    kept = index[index["status"] == "embedded"]
    assert kept["id"].tolist() == [p.name for p in files]  # one solid each
    assert index.loc[index["status"] == "skipped", "id"].tolist() == ["broken.step"]
    loaded = zoo.load("tiny-brep")
    with torch.no_grad():
        direct = loaded.embed_graphs(Batch.from_data_list(step_to_graphs(files[1], grid=10)))
    np.testing.assert_allclose(np.load(out)[1], direct[0].numpy(), rtol=1e-4, atol=1e-5)
    nodes = graphssl.embed("zoo:tiny-brep", [str(files[0])], level="node", device="cpu")
    assert len(nodes.vectors) == step_to_graphs(files[0], grid=10)[0].num_nodes


def test_an_encoder_pt_brings_its_explicit_hydrogens(tmp_path, molecule_csv):
    from graphssl.core.config import load_config
    from graphssl.engine.pretrain import pretrain

    config = load_config(None, [f"data.path={molecule_csv}", "data.explicit_h=true", "model.backbone=gin",
                                "model.hidden=8", "model.num_layers=1", "objective.name=attrmask",
                                "pretrain.epochs=1", "pretrain.batch_size=8", f"output_dir={tmp_path / 'run'}",
                                f"cache_dir={tmp_path / 'cache'}", "progress=false"])
    pretrain(config)
    model = load_encoder(tmp_path / "run", device="cpu")  # the run folder
    assert model.spec.domain == "molecule" and model.spec.explicit_h
    result = graphssl.embed(model, ["CCO"], level="node", device="cpu")
    assert len(result.vectors) == 9  # 3 heavy atoms and 6 hydrogens, as in pretraining


def test_cli_writes_vectors_index_and_map(entries, table, tmp_path, capsys):
    out = tmp_path / "cli" / "emb.npy"
    code = main(["embed", "--checkpoint", "zoo:tiny-mol", "--input", str(table), "--out", str(out),
                 "--plot", "logp", "--no-progress", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert f"embedded {len(GOOD)} of {len(GOOD) + 1} records (1 skipped" in printed and "C1CC" in printed
    assert np.load(out).shape == (len(GOOD), 16)
    with index_path(out).open() as handle:
        assert next(csv.reader(handle)) == ["row", "record", "id", "graph", "status", "reason"]
    assert plot_path(out).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["embed", "--checkpoint", "zoo:tiny-mol", "--input", str(table), "--out", str(tmp_path / "e.txt")]) == 2
    assert "unknown output format '.txt'" in capsys.readouterr().err
    assert main(["embed", "--checkpoint", "zoo:tiny-mol", "--input", str(table), "--out", str(tmp_path / "e.npy"),
                 "--plot", "nope", "--no-progress"]) == 2
    assert "has no column 'nope'" in capsys.readouterr().err
    assert main(["embed", "--checkpoint", "zoo:nope", "--input", str(table), "--out", str(tmp_path / "e.npy")]) == 2
    assert "no zoo entry named 'nope'" in capsys.readouterr().err
