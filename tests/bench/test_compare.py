"""``graphssl compare``: defaults read from the zoo, task inference, verdicts, and the errors before any work."""

from __future__ import annotations

import json

import pytest
import torch

from graphssl import zoo
from graphssl.bench import compare as compare_module
from graphssl.bench.compare import infer_task_type, verdict, zoo_methods
from graphssl.cli import main
from graphssl.core.config import ModelConfig
from graphssl.core.errors import ConfigError, DataError
from graphssl.molecule.features import molecule_feature_spec
from graphssl.nn import build_encoder

# 55 FreeSolv molecules (hydration free energy, kcal/mol) with mostly distinct scaffolds, so that
# the scaffold split leaves molecules for validation and test.
FREESOLV = [
    ("CN(C)C(=O)c1ccc(cc1)OC", -11.01), ("CS(=O)(=O)Cl", -4.87), ("CC(C)C=C", 1.83), ("CCc1cnccn1", -5.45),
    ("CCCCCCCO", -4.21), ("CC(C)C(C)C", 2.34), ("CCCC(C)(C)O", -3.92), ("C[C@@H]1CCCC[C@@H]1C", 1.58),
    ("CC[C@H](C)O", -4.62), ("C(Br)Br", -1.96), ("CC[C@H](C(C)C)O", -3.88), ("CCc1ccccn1", -4.33),
    ("CCCCC(=O)OCC", -2.49), ("c1ccc2c(c1)CCC2", -1.46), ("C1CCCC(CC1)O", -5.48), ("COC(=O)C1CC1", -4.1),
    ("Cc1cccc(c1C)Nc2ccccc2C(=O)O", -6.78), ("c1ccc2cc(ccc2c1)O", -8.11), ("C1CNC1", -5.56),
    ("CCNc1nc(nc(n1)Cl)NCC", -10.22), ("c1ccc2c(c1)Oc3cc(c(cc3O2)Cl)Cl", -3.56),
    ("c1ccc(cc1)n2c(=O)c(c(cn2)N)Cl", -16.43), ("c1ccc2c(c1)C(=O)c3cccc(c3C2=O)NCCO", -14.21),
    ("CN1CCNCC1", -7.77), ("C1C=CC=CC=C1", -0.99), ("c1ccc2c(c1)Cc3ccccc3C2", -3.78),
    ("c1cc2cccc3c2c(c1)CC3", -3.15), ("c1c(c(=O)[nH]c(=O)[nH]1)Br", -18.17), ("c1cnc[nH]1", -9.63),
    ("CC1(Cc2cccc(c2O1)OC(=O)NC)C", -9.61), ("CN1CCOCC1", -6.32), ("c1cc(c(cc1c2c(c(cc(c2Cl)Cl)Cl)Cl)Cl)Cl", -4.38),
    ("Cn1cnc2c1c(=O)n(c(=O)n2C)C", -12.64), ("C1CCNCC1", -5.11), ("c1ccc2c(c1)ccc3c2cccc3", -3.88),
    ("C1CCOCC1", -3.12), ("C1CCC=CC1", 0.14), ("C1=CC(=O)C=CC1=O", -6.5), ("c1(=O)[nH]c(=O)[nH]c(=O)[nH]1", -18.06),
    ("CC(=O)N1CCCC1", -9.8), ("COP(=S)(OC)SCn1c(=O)c2ccccc2nn1", -10.03), ("C1CCC(=O)C1", -4.7),
    ("CC1CCCC1", 1.59), ("C[C@H]1CCCO1", -3.3), ("c1ccc2cc3ccccc3cc2c1", -3.95), ("Cc1c[nH]c2c1cccc2", -5.88),
    ("Cc1cccs1", -1.38), ("Cn1cccc1", -2.89), ("CC1=CC(=O)CC(C1)(C)C", -5.18), ("CN(C)CCOC(c1ccccc1)c2ccccc2", -9.34),
    ("c1ccc(cc1)Oc2ccccc2", -2.87), ("C1CCC(=O)CC1", -4.91), ("C=C(c1ccccc1)c2ccccc2", -2.78),
    ("c1ccc-2c(c1)Cc3c2cccc3", -3.35), ("CCOC(=O)c1ccccc1", -3.64),
]


@pytest.fixture
def solvation_csv(tmp_path):
    path = tmp_path / "solv.csv"
    path.write_text("name,smi,dG\n" + "".join(f"m{i},{s},{y}\n" for i, (s, y) in enumerate(FREESOLV)))
    return path


@pytest.mark.slow  # eight fine-tuning and forest runs through the CLI
def test_compare_end_to_end_runs_scratch_the_zoo_and_the_forests(solvation_csv, tmp_path, capsys, one_thread):
    out = tmp_path / "report"
    code = main(["compare", str(solvation_csv), "--label", "dG", "--smiles-column", "smi", "--out", str(out),
                 "--budget", "0.05", "--seeds", "2", "--threads", "1", "--cache-dir", str(tmp_path / "cache"),
                 "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    entries, _, _ = zoo_methods("molecule")
    assert "gine-attrmask-moses" in entries  # the shipped entry, found through the zoo API
    expected = ["scratch", *entries, "ecfp-rf", "rdkit-rf"]

    results = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in results["runs"]] == expected * 2  # two seeds
    assert {r["seed"] for r in results["runs"]} == {0, 1}
    assert all(r["split"] == "scaffold" and r["metric"] == "rmse" for r in results["runs"])
    summary = results["compare"]
    assert summary["task_type"] == "regression" and summary["epochs"] == 1 and summary["trees"] == 10
    assert summary["model"]["backbone"] == zoo.card(entries[0])["model"]["backbone"]
    assert list(summary["methods"]) == expected
    assert summary["methods"]["scratch"]["verdict"] == "reference"
    for name in expected[1:]:
        assert summary["methods"][name]["verdict"] in ("win", "tie", "loss")
        assert summary["methods"][name]["pairs"] == 2
    assert summary["gnn_vs_classical"]["classical"] in ("ecfp-rf", "rdkit-rf")

    # the printed verdict table, also appended to results.md
    assert "## Verdict: does pretraining help on solv:dG?" in printed
    printed = printed[printed.index("## Verdict"):]  # the harness printed its own tables before
    assert "| method | test rmse ↓ mean ± std (n) | minus scratch, mean [95% CI] | verdict |" in printed
    assert "| scratch |" in printed and "| reference |" in printed
    for name in expected[1:]:
        row = next(line for line in printed.splitlines() if line.startswith(f"| {name} |"))
        assert row.endswith(("better than scratch |", "no separable difference from scratch |", "worse than scratch |"))
    assert "Best GNN vs best classical baseline" in printed and "Does pretraining help?" in printed
    assert "## Verdict" in (out / "results.md").read_text()
    # only reports in --out: the runs' folders lived in a temporary folder
    assert sorted(p.name for p in out.iterdir()) == ["paired.png", "results.json", "results.md", "results.png"]


def _cli_error(args, capsys) -> str:
    assert main(["compare", *args]) == 2
    return capsys.readouterr().err


def test_bad_inputs_fail_before_any_work_with_exit_code_2(solvation_csv, tmp_path, capsys):
    out = tmp_path / "never"
    common = ["--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    err = _cli_error([str(tmp_path / "missing.csv"), "--label", "dG", *common], capsys)
    assert "missing.csv' does not exist" in err
    err = _cli_error([str(solvation_csv), "--label", "pIC50", *common], capsys)
    assert "--label 'pIC50'" in err and "its columns are ['name', 'smi', 'dG']" in err
    err = _cli_error([str(solvation_csv), "--label", "dG", "--smiles-column", "smiles", *common], capsys)
    assert "--smiles-column 'smiles'" in err and "['name', 'smi', 'dG']" in err

    one_valued = tmp_path / "one.csv"
    one_valued.write_text("smiles,y\n" + "".join(f"{s},3.5\n" for s, _ in FREESOLV[:10]))
    err = _cli_error([str(one_valued), "--label", "y", *common], capsys)
    assert "label column 'y' holds one value ('3.5' in 10 rows)" in err
    empty = tmp_path / "empty.csv"
    empty.write_text("smiles,y\n" + "".join(f"{s},\n" for s, _ in FREESOLV[:10]))
    assert "label column 'y' is empty" in _cli_error([str(empty), "--label", "y", *common], capsys)
    assert "--label is empty" in _cli_error([str(solvation_csv), "--label", " ", *common], capsys)
    assert "--seeds must be an integer >= 2" in _cli_error([str(solvation_csv), "--label", "dG", "--seeds", "1",
                                                           *common], capsys)
    assert "--budget must be a number > 0" in _cli_error([str(solvation_csv), "--label", "dG", "--budget", "0",
                                                         *common], capsys)
    err = _cli_error([str(solvation_csv), "--label", "dG", "--methods", "graphmae", *common], capsys)
    assert "compare fine-tunes shipped encoders" in err
    assert "no zoo entry named 'nope'" in _cli_error([str(solvation_csv), "--label", "dG", "--methods", "zoo:nope",
                                                       *common], capsys)
    assert not out.exists()  # nothing was started


def test_task_type_inference():
    assert infer_task_type(["0", "1", "", "1.0", "nan"], "active") == "classification"
    assert infer_task_type(["inactive", "Active", "active"], "active") == "classification"
    assert infer_task_type(["-1.5", "2", "3e-1"], "logS") == "regression"
    assert infer_task_type(["1.5", "2.5"], "y", "regression") == "regression"  # --task overrides two values
    with pytest.raises(DataError, match=r"holds one value \('1' in 2 rows\)"):
        infer_task_type(["1", "+1.0"], "y")  # one number written two ways
    with pytest.raises(DataError, match=r"cannot tell the task of label column 'y': it holds 3 distinct values, 1 of 3 "
                                        r"not numbers \('high'\)"):
        infer_task_type(["1.5", "2", "high"], "y")
    with pytest.raises(DataError, match="which is the positive class is unknown"):
        infer_task_type(["red", "blue"], "colour")
    with pytest.raises(DataError, match=r"'y' is not numeric: 1 of 3 labels are not numbers \('high'\)"):
        infer_task_type(["1.5", "2", "high"], "y", "regression")
    with pytest.raises(DataError, match="holds 3 classes"):
        infer_task_type(["1", "2", "3"], "y", "classification")
    with pytest.raises(ConfigError, match="--task"):
        infer_task_type(["1", "2", "3"], "y", "ranking")


def _entry(root, name, hidden, domain="molecule", backbone="gine"):
    model = ModelConfig(backbone="gine", hidden=hidden, num_layers=1, norm="batch_norm")
    state = build_encoder(model, molecule_feature_spec()).state_dict()
    model.backbone = backbone  # the card may name a backbone this installation lacks
    zoo.write_entry(name, root, encoder_state=state, model=model, objective={"name": "attrmask", "options": {}},
                    objective_state={}, feature_spec={"domain": domain, "explicit_h": False})


def test_zoo_entries_are_grouped_by_architecture(tmp_path):
    torch.manual_seed(0)
    root = tmp_path / "zoo"
    assert zoo_methods("molecule", root) == ([], None, {})  # no entry: scratch on the default backbone
    _entry(root, "a-wide", 16)
    _entry(root, "b-narrow", 8)
    _entry(root, "c-narrow", 8)
    _entry(root, "d-parts", 8, domain="brep")
    _entry(root, "e-unknown", 8, backbone="nonesuch")
    names, card, skipped = zoo_methods("molecule", root)
    assert names == ["b-narrow", "c-narrow"]  # the larger group; scratch trains its backbone
    assert card["model"]["hidden"] == 8
    assert set(skipped) == {"a-wide", "e-unknown"}
    assert "architecture differs from b-narrow" in skipped["a-wide"]
    assert "'nonesuch' is not registered" in skipped["e-unknown"]
    assert zoo_methods("brep", root)[0] == ["d-parts"]


def test_verdicts_from_hand_computed_paired_differences():
    def rows(method, tests):
        return [{"method": method, "task": "t", "metric": "rmse", "seed": s, "split": "scaffold", "split_seed": 0,
                 "label_fraction": 1.0, "valid": 0.0, "test": v} for s, v in enumerate(tests)]

    data = (rows("scratch", [1.0, 1.1, 0.9]) + rows("zoo-a", [0.5, 0.6, 0.4])  # always 0.5 lower: better
            + rows("zoo-b", [1.1, 1.0, 0.9])  # differences +0.1, -0.1, 0: no separable difference
            + rows("ecfp-rf", [2.0, 2.1, 1.9]))  # always 1.0 higher: worse
    summary = verdict(data, ["ecfp-rf"])
    methods = summary["methods"]
    assert methods["zoo-a"]["difference"] == pytest.approx(-0.5)
    assert (methods["zoo-a"]["low"], methods["zoo-a"]["high"]) == (pytest.approx(-0.5), pytest.approx(-0.5))
    assert [methods[m]["text"] for m in ("zoo-a", "zoo-b", "ecfp-rf")] == [
        "better than scratch", "no separable difference from scratch", "worse than scratch"]
    # zoo-b: mean 0, sample std 0.1, half-width t(0.975, 2) * 0.1 / sqrt(3) = 4.3027 * 0.05774
    assert methods["zoo-b"]["high"] == pytest.approx(0.24841, abs=1e-4)
    assert methods["scratch"]["mean"] == pytest.approx(1.0) and methods["scratch"]["std"] == pytest.approx(0.1)
    gnn = summary["gnn_vs_classical"]
    assert (gnn["network"], gnn["classical"], gnn["verdict"]) == ("zoo-a", "ecfp-rf", "win")
    assert gnn["difference"] == pytest.approx(-1.5)
    assert summary["answer"] == "yes: zoo-a is better than scratch"
    table = compare_module.verdict_table(summary, "t", 3, "scaffold")
    assert "| zoo-a | 0.500 ± 0.100 (3) | -0.500 [-0.500, -0.500] | better than scratch |" in table
    assert "the best GNN (zoo-a) beats the best classical baseline (ecfp-rf)" in table


def test_crystal_folders_need_a_label_file_with_the_columns(tmp_path, capsys):
    ase_io = pytest.importorskip("ase.io")
    from ase.build import bulk

    folder = tmp_path / "cifs"
    folder.mkdir()
    for i, element in enumerate(("Cu", "Al")):
        ase_io.write(folder / f"s{i}.cif", bulk(element, cubic=True))
    (folder / "labels.csv").write_text("file,gap\ns0.cif,0.1\ns1.cif,0.7\n")
    common = ["--out", str(tmp_path / "never"), "--cache-dir", str(tmp_path / "cache")]
    err = _cli_error([str(folder), "--label", "gap", *common], capsys)
    assert "give --label-file" in err and "--id-column" in err
    err = _cli_error([str(folder), "--label", "band_gap", "--label-file", "labels.csv", "--id-column", "file", *common],
                     capsys)
    assert "--label 'band_gap'" in err and "its columns are ['file', 'gap']" in err
    err = _cli_error([str(folder / "labels.csv"), "--label", "gap", *common], capsys)  # read as a molecule table
    assert "no SMILES column found among ['file', 'gap']; name it with --smiles-column" in err
    assert not (tmp_path / "never").exists()
