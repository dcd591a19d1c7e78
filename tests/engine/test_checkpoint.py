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


def test_a_folder_is_named_as_a_folder_with_the_file_expected(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder, not a file.*encoder.pt.*holds no checkpoint"):
        load_checkpoint(tmp_path)
    save_checkpoint(tmp_path / "encoder.pt", {"kind": "pretrained-encoder"})
    with pytest.raises(CheckpointError, match="is a folder.*it holds encoder.pt"):
        load_checkpoint(tmp_path)


def test_unsafe_files_are_refused_without_advice_to_load_them_unsafely(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    for name, write in [("pickled.pt", lambda p: p.write_bytes(pickle.dumps(Evil()))),
                        ("saved.pt", lambda p: torch.save({"a": Evil()}, p))]:
        path = tmp_path / name
        write(path)
        with pytest.raises(CheckpointError) as caught:
            load_checkpoint(path)
        message = str(caught.value)
        assert "cannot be read" in message and "\n" not in message
        assert "weights_only" not in message and "trusted source" not in message
    assert "Unsupported global" in message  # what is wrong with the file is still said


def test_a_path_under_home_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    save_checkpoint(tmp_path / "ck.pt", {"step": 4})
    assert load_checkpoint("~/ck.pt")["step"] == 4
