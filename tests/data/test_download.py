"""Tests for graphssl.data.download and the MoleculeNet table, served offline through file:// URLs."""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path
from urllib.parse import urlparse

import pytest

from graphssl.core.errors import DataError
from graphssl.data import download as dl
from graphssl.data.download import UnverifiedDownloadWarning, download
from graphssl.molecule.moleculenet import MOLECULENET, RemoteSource, fetch_source

CSV = b"smiles,label\nCCO,1\nc1ccccc1,0\nCC(=O)O,1\n"
MD5 = hashlib.md5(CSV).hexdigest()
SHA256 = hashlib.sha256(CSV).hexdigest()


@pytest.fixture()
def served(tmp_path: Path) -> tuple[str, Path]:
    """A CSV on disk and its file:// URL; downloads go to a separate folder."""
    src = tmp_path / "remote" / "toy.csv"
    src.parent.mkdir()
    src.write_bytes(CSV)
    return src.as_uri(), tmp_path / "cache"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_verifies_both_checksums(served):
    url, cache = served
    dest = cache / "nested" / "toy.csv"
    out = download(url, dest, md5=MD5, sha256=SHA256, progress=False)
    assert out == dest
    assert dest.read_bytes() == CSV
    assert _leftovers(dest.parent) == ["toy.csv"], "no temporary file is left behind"


def test_download_accepts_upper_case_checksum(served):
    url, cache = served
    download(url, cache / "toy.csv", sha256=SHA256.upper(), progress=False)
    assert (cache / "toy.csv").read_bytes() == CSV


def test_download_without_checksum(served):
    url, cache = served
    assert download(url, cache / "toy.csv", progress=False).read_bytes() == CSV


@pytest.mark.parametrize("kind", ["md5", "sha256"])
def test_checksum_mismatch_raises_and_leaves_nothing(served, kind):
    url, cache = served
    dest = cache / "toy.csv"
    wrong = "f" * (32 if kind == "md5" else 64)
    actual = MD5 if kind == "md5" else SHA256
    with pytest.raises(DataError) as info:
        download(url, dest, progress=False, **{kind: wrong})
    message = str(info.value)
    assert url in message and wrong in message and actual in message
    assert not dest.exists()
    assert _leftovers(cache) == []


def test_verified_existing_file_is_reused_without_network(served, tmp_path):
    url, cache = served
    dest = cache / "toy.csv"
    download(url, dest, md5=MD5, progress=False)
    gone = (tmp_path / "remote" / "does-not-exist.csv").as_uri()
    assert download(gone, dest, md5=MD5, sha256=SHA256, progress=False) == dest
    assert dest.read_bytes() == CSV


def test_mismatching_existing_file_is_not_overwritten(served):
    url, cache = served
    dest = cache / "toy.csv"
    cache.mkdir()
    dest.write_bytes(b"not the real file\n")
    with pytest.raises(DataError) as info:
        download(url, dest, md5=MD5, progress=False)
    message = str(info.value)
    assert str(dest) in message and MD5 in message
    assert hashlib.md5(b"not the real file\n").hexdigest() in message
    assert dest.read_bytes() == b"not the real file\n"


def test_unreachable_url_raises_with_url_and_hint(tmp_path):
    url = (tmp_path / "nowhere" / "missing.csv").as_uri()
    dest = tmp_path / "cache" / "missing.csv"
    with pytest.raises(DataError) as info:
        download(url, dest, md5=MD5, progress=False)
    message = str(info.value)
    assert url in message
    assert "offline" in message and str(dest) in message
    assert not dest.exists()
    assert _leftovers(dest.parent) == []


def test_invalid_url_and_checksum_raise(tmp_path):
    with pytest.raises(DataError, match="not a valid URL"):
        download("no-scheme-here", tmp_path / "x.csv", progress=False)
    with pytest.raises(DataError, match="md5"):
        download("file:///x", tmp_path / "x.csv", md5="1234", progress=False)


def test_progress_bar_does_not_break_download(served):
    url, cache = served
    download(url, cache / "toy.csv", md5=MD5, progress=True)
    assert (cache / "toy.csv").read_bytes() == CSV


# --- the MoleculeNet table -------------------------------------------------

PRETRAIN_GNNS = {"bbbp", "tox21", "toxcast", "sider", "clintox", "muv", "hiv", "bace"}


def test_moleculenet_table_is_well_formed():
    assert PRETRAIN_GNNS | {"esol", "freesolv", "lipophilicity"} <= set(MOLECULENET)
    for key, source in MOLECULENET.items():
        assert key == source.name
        parsed = urlparse(source.url)
        assert parsed.scheme == "https" and parsed.netloc, source.url
        assert source.url.rsplit("/", 1)[-1] == source.filename
        assert source.task_type in ("classification", "regression")
        assert source.smiles_column
        for digest, length in ((source.md5, 32), (source.sha256, 64)):
            assert digest is None or re.fullmatch(f"[0-9a-f]{{{length}}}", digest), key
    for key in PRETRAIN_GNNS:
        assert MOLECULENET[key].task_type == "classification"
    for key in ("esol", "freesolv", "lipophilicity"):
        assert MOLECULENET[key].task_type == "regression"


def test_moleculenet_columns():
    assert MOLECULENET["bbbp"].label_columns == ("p_np",)
    assert MOLECULENET["bace"].smiles_column == "mol"
    assert len(MOLECULENET["tox21"].label_columns) == 12
    assert len(MOLECULENET["muv"].label_columns) == 17
    assert len(MOLECULENET["sider"].label_columns) == 27
    assert MOLECULENET["toxcast"].label_columns == ()


def test_resolve_label_columns():
    toxcast = MOLECULENET["toxcast"]
    assert toxcast.resolve_label_columns(["smiles", "A", "B"]) == ("A", "B")
    bbbp = MOLECULENET["bbbp"]
    assert bbbp.resolve_label_columns(["num", "name", "p_np", "smiles"]) == ("p_np",)
    with pytest.raises(DataError, match="p_np"):
        bbbp.resolve_label_columns(["smiles", "other"])


def test_remote_source_rejects_unknown_task_type():
    with pytest.raises(DataError, match="task_type"):
        RemoteSource("x", "https://e/x.csv", "x.csv", None, None, "smiles", (), "ranking", "")


def test_fetch_source_unknown_name_lists_valid_names(tmp_path):
    with pytest.raises(DataError) as info:
        fetch_source("not-a-dataset", tmp_path)
    assert "bbbp" in str(info.value) and "tox21" in str(info.value)


def test_fetch_source_downloads_and_reuses(monkeypatch, served):
    url, cache = served
    toy = RemoteSource("toy", url, "toy.csv", MD5, None, "smiles", ("label",), "classification", "toy")
    monkeypatch.setitem(MOLECULENET, "toy", toy)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedDownloadWarning)
        path = fetch_source("TOY", cache, progress=False)
        assert path.read_bytes() == CSV
        Path(urlparse(url).path).unlink()  # the "remote" is gone: the verified copy must do
        assert fetch_source("toy", cache, progress=False) == path


def test_fetch_source_without_checksum_warns_with_sha256(tmp_path):
    # A file placed by hand: no network access is attempted for it.
    assert MOLECULENET["freesolv"].md5 is None and MOLECULENET["freesolv"].sha256 is None
    (tmp_path / "SAMPL.csv").write_bytes(CSV)
    with pytest.warns(UnverifiedDownloadWarning) as record:
        path = fetch_source("freesolv", tmp_path, progress=False)
    assert path == tmp_path / "SAMPL.csv"
    assert SHA256 in str(record[0].message) and "NOT verified" in str(record[0].message)


def test_fetch_source_rejects_mismatching_placed_file(tmp_path):
    (tmp_path / MOLECULENET["bbbp"].filename).write_bytes(CSV)
    with pytest.raises(DataError, match=MOLECULENET["bbbp"].md5):
        fetch_source("bbbp", tmp_path, progress=False)


def test_file_checksum(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(CSV)
    assert dl.file_checksum(path) == SHA256
    assert dl.file_checksum(path, "md5") == MD5
