"""Each domain's extra is optional: a domain's path runs end to end with the others' packages
made unimportable (a meta-path hook in a fresh interpreter refuses them)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import importlib.abc
    import sys

    BLOCKED = set(sys.argv[1].split(","))


    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (made unimportable)", name=name)
            return None


    sys.meta_path.insert(0, Refuse())
    import json

    from graphssl.cli import main

    for argv in json.loads(sys.argv[2]):
        code = main(argv)
        if code != 0:
            sys.exit(f"exit {code} from graphssl {' '.join(argv)}")
    loaded = sorted({m.split(".")[0] for m in sys.modules} & BLOCKED)
    print("blocked modules loaded:", loaded)
    """
)

CRYSTAL = ["vesin", "ase", "pymatgen"]
MOLECULE = ["rdkit"]
CAD = ["OCP"]


def run_without(blocked: list[str], runs: list[list[str]], tmp_path: Path) -> str:
    import json

    result = subprocess.run([sys.executable, "-c", SCRIPT, ",".join(blocked), json.dumps(runs)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    assert "blocked modules loaded: []" in result.stdout
    return result.stdout


def _sets(*values: str) -> list[str]:
    return [arg for value in values for arg in ("--set", value)]


def test_the_blocker_blocks(tmp_path):
    result = subprocess.run([sys.executable, "-c", SCRIPT, "graphssl", "[]"], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode != 0 and "made unimportable" in result.stderr


@pytest.mark.slow
def test_molecules_without_the_crystal_and_cad_extras(tmp_path, molecule_csv):
    common = _sets(f"cache_dir={tmp_path / 'cache'}", "progress=false", "threads=1", f"data.path={molecule_csv}",
                   "model.hidden=16", "model.num_layers=2", "pretrain.epochs=1", "pretrain.batch_size=8")
    runs = [["pretrain", *common, *_sets(f"objective.name={name}", f"output_dir={tmp_path / name}")]
            for name in ("graphmae", "attrmask", "higmae")]
    runs.append(["finetune", "--checkpoint", str(tmp_path / "graphmae" / "encoder.pt"), *common,
                 *_sets(f"finetune.task.path={molecule_csv}", "finetune.task.label_columns=[logp]",
                        "finetune.task.task_type=regression", "finetune.epochs=2", f"output_dir={tmp_path / 'ft'}")])
    out = run_without(CRYSTAL + CAD, runs, tmp_path)
    assert "valid rmse" in out


@pytest.mark.slow
def test_structures_without_the_molecule_and_cad_extras(tmp_path):
    frames = tmp_path / "emt"
    common = _sets(f"cache_dir={tmp_path / 'cache'}", "progress=false", "threads=1",
                   f"data.path={frames / 'emt.extxyz'}", "model.backbone=painn", "model.hidden=16",
                   "model.num_layers=1", "pretrain.epochs=1", "pretrain.batch_size=4")
    runs = [["data", "generate", "emt", "--n", "12", "--out", str(frames), "--no-progress"]]
    runs += [["pretrain", *common, *_sets(f"objective.name={name}", f"output_dir={tmp_path / name}")]
             for name in ("denoise", "scd")]
    runs.append(["finetune", "--checkpoint", str(tmp_path / "scd" / "encoder.pt"), *common,
                 *_sets(f"finetune.task.path={frames / 'emt.extxyz'}", "finetune.split=random", "finetune.epochs=1",
                        "finetune.batch_size=4", f"output_dir={tmp_path / 'ft'}")])
    out = run_without(MOLECULE + CAD, runs, tmp_path)
    assert "valid" in out


@pytest.mark.slow
def test_cad_parts_without_the_molecule_and_crystal_extras(tmp_path):
    pytest.importorskip("OCP")
    parts = tmp_path / "parts"
    common = _sets(f"cache_dir={tmp_path / 'cache'}", "progress=false", "threads=1", f"data.path={parts}",
                   "model.backbone=gine", "model.hidden=16", "model.num_layers=2", "pretrain.epochs=1",
                   "pretrain.batch_size=4", "objective.name=graphmae", "objective.loss=mse")
    runs = [["data", "generate", "brep", "--n", "10", "--out", str(parts), "--no-progress"],
            ["pretrain", *common, *_sets(f"output_dir={tmp_path / 'pre'}")],
            ["finetune", "--checkpoint", str(tmp_path / "pre" / "encoder.pt"), *common,
             *_sets(f"finetune.task.path={parts}", "finetune.split=random", "finetune.epochs=1",
                    "finetune.batch_size=4", f"output_dir={tmp_path / 'ft'}")]]
    out = run_without(MOLECULE + CRYSTAL, runs, tmp_path)
    assert "valid miou" in out

