"""`import graphssl` gives the names a user composes with, and the examples use only those."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import graphssl

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


def test_every_public_name_resolves():
    assert len(graphssl.__all__) == len(set(graphssl.__all__))
    for name in graphssl.__all__:
        assert getattr(graphssl, name) is not None, name


def test_an_unknown_name_is_an_attribute_error():
    try:
        graphssl.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("graphssl.no_such_thing resolved")


def test_the_rdkit_and_ocp_names_load_on_first_use(tmp_path):
    code = ("import sys, graphssl; before = 'rdkit' in sys.modules; data = graphssl.smiles_to_data('CCO'); "
            "print(before, 'rdkit' in sys.modules, data.num_nodes)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "True", "3"]


def test_examples_import_only_public_names():
    assert EXAMPLES
    for path in EXAMPLES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("graphssl"):
                assert node.module == "graphssl", f"{path.name} imports from {node.module}"
                missing = [a.name for a in node.names if a.name not in graphssl.__all__]
                assert not missing, f"{path.name} imports {missing}, which graphssl does not export"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("graphssl.") for a in node.names), path.name
