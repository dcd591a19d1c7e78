import pickle

import pytest
import torch

from graphssl.core.errors import CheckpointError
from graphssl.engine.checkpoint import (
    CHECKPOINT_FORMAT,
    load_checkpoint,
    save_checkpoint,
)


def test_round_trip_keeps_tensors_and_metadata(tmp_path):
    weights = {"w": torch.randn(3, 4), "b": torch.arange(4)}
    path = save_checkpoint(tmp_path / "ck.pt", {"kind": "test", "encoder": weights, "config": {"seed": 3}})
    state = load_checkpoint(path)
    assert state["format"] == CHECKPOINT_FORMAT
    assert "torch" in state["versions"]
    assert torch.equal(state["encoder"]["w"], weights["w"]) and state["config"] == {"seed": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temporary file left behind


def test_truncated_checkpoint_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "ck.pt", {"encoder": {"w": torch.randn(100, 100)}})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_foreign_files_are_refused(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="not a graphssl checkpoint"):
        load_checkpoint(plain)

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(evil)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_failed_write_keeps_previous_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / "ck.pt", {"step": 1})

    class Unsaveable:
        pass

    with pytest.raises(Exception):
        save_checkpoint(path, {"step": 2, "bad": lambda: None})
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]
