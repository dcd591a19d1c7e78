"""Sharded parallel preparation of molecule corpora (`graphssl data prepare`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from graphssl.core.config import DataConfig
from graphssl.core.errors import DataError
from graphssl.data.dataset import load_dataset, resolve_source
from graphssl.molecule.shards import ShardedDataset, prepare_shards


def _data(path: Path, **kw) -> DataConfig:
    return DataConfig(path=str(path), **kw)


# ----------------------------------------------------------------------------- preparation

@pytest.mark.slow
def test_prepare_with_two_workers_equals_one_worker_and_the_in_memory_build(corpus, tmp_path):
    config = _data(corpus)
    one = prepare_shards(resolve_source(config), config, tmp_path / "w1", workers=1, shard_size=16, progress=False)
    two = prepare_shards(resolve_source(config), config, tmp_path / "w2", workers=2, shard_size=16, progress=False)
    assert (one.read, one.kept, one.skipped) == (two.read, two.kept, two.skipped) == (60, 60, 0)
    a, b = ShardedDataset(tmp_path / "w1"), ShardedDataset(tmp_path / "w2")
    assert len(a.shard_sizes) > 1 and sum(a.shard_sizes) == 60
    memory = load_dataset(config, tmp_path / "cache", progress=False, verbose=False)
    for i in range(60):
        ga, gb, gm = a[i], b[i], memory[i]
        for key in ("x", "edge_index", "edge_attr"):
            assert ga[key].dtype == torch.long
            assert torch.equal(ga[key], gb[key]) and torch.equal(ga[key], gm[key]), (i, key)
        assert ga.smiles == gm.smiles


def test_prepare_reports_every_skipped_record_and_strict_mode_names_it(tmp_path):
    path = tmp_path / "bad.smi"
    path.write_text("CCO\nC1CC\nc1ccccc1\n[Xe](C)(C)(C)(C)(C)(C)(C)(C)C\nO\n")
    with pytest.raises(DataError, match=r"record 1 \('C1CC'\)"):
        prepare_shards(resolve_source(_data(path)), _data(path), tmp_path / "strict", workers=2, progress=False)
    lenient = _data(path, on_error="skip")
    report = prepare_shards(resolve_source(lenient), lenient, tmp_path / "lenient", workers=2, progress=False)
    assert report.read == report.kept + report.skipped == 5 and report.skipped == 2
    skipped = json.loads((tmp_path / "lenient" / "report.json").read_text())["skipped"]
    assert [s["index"] for s in skipped] == [1, 3] and all(s["reason"] for s in skipped)


def test_prepared_and_in_memory_builds_skip_the_same_records_for_the_same_reasons(tmp_path):
    path = tmp_path / "labelled.csv"
    rows = ["smiles,y", "CCO,1.0", "C1CC,2.0", "OCC,3.0", "c1ccccc1,inf", "CCN,4.0", "CCCC,5.0", "NCC,6.0",
            "c1ccccc1,7.0", "CCCC,8.0", "CO,"]
    path.write_text("\n".join(rows) + "\n")  # OCC and NCC repeat CCO and CCN; the last line has no label
    config = DataConfig(path=str(path), label_columns=["y"], task_type="regression", on_error="skip")
    memory = load_dataset(config, tmp_path / "cache", progress=False, verbose=False)
    # chunks of 2 records in 2 workers: duplicates cross chunk and process boundaries
    prepare_shards(resolve_source(config), config, tmp_path / "p", workers=2, shard_size=2, progress=False)
    sharded = ShardedDataset(tmp_path / "p")
    as_rows = lambda report: [(s.index, s.reason) for s in report.skipped]  # noqa: E731
    assert as_rows(sharded.report) == as_rows(memory.report)
    assert [s.index for s in memory.report.skipped] == [1, 2, 3, 6, 8, 9]
    assert "duplicate of record 0" in memory.report.skipped[1].reason
    assert sharded.report.read == sharded.report.kept + len(sharded.report.skipped) == 10
    assert [sharded[i].smiles for i in range(len(sharded))] == [memory[i].smiles for i in range(len(memory))]
    assert torch.equal(torch.cat([sharded[i].y for i in range(len(sharded))]), memory.labels)


def test_unfinished_or_foreign_preparation_is_refused(corpus, tmp_path):
    config = _data(corpus)
    prepare_shards(resolve_source(config), config, tmp_path / "p", progress=False)
    manifest = tmp_path / "p" / "manifest.json"
    raw = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**raw, "format": "something-else"}))
    with pytest.raises(DataError, match="format"):
        ShardedDataset(tmp_path / "p")
    manifest.unlink()
    with pytest.raises(DataError, match="not a prepared data set"):
        ShardedDataset(tmp_path / "p")



def test_prepare_command_writes_shards_and_refuses_structures(corpus, tmp_path, capsys):
    from graphssl.cli import main

    assert main(["data", "prepare", str(corpus), "--out", str(tmp_path / "p"), "--workers", "2",
                 "--shard-size", "25", "--no-progress"]) == 0
    assert "read 60, kept 60, skipped 0" in capsys.readouterr().out
    assert ShardedDataset(tmp_path / "p").shard_sizes == [25, 25, 10]
    assert main(["data", "prepare", "qm9-3d", "--out", str(tmp_path / "q")]) == 2
    assert "shards molecule data sets" in capsys.readouterr().err


# ----------------------------------------------------------------------------- replacing a preparation


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_failed_preparation_leaves_the_earlier_corpus_untouched(corpus, tmp_path):
    good = _data(corpus)
    prepare_shards(resolve_source(good), good, tmp_path / "p", shard_size=25, progress=False)
    before = _snapshot(tmp_path / "p")
    assert {"manifest.json", "report.json", "shard-00000.pt"} <= set(before)
    bad_file = tmp_path / "bad.smi"
    bad_file.write_text("CCO\nC1CC\n")
    bad = _data(bad_file)
    with pytest.raises(DataError, match="C1CC"):  # before: only report.json was left in p
        prepare_shards(resolve_source(bad), bad, tmp_path / "p", progress=False)
    assert _snapshot(tmp_path / "p") == before
    assert len(ShardedDataset(tmp_path / "p")) == 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.smi", "corpus.smi", "p"]  # no work folders left


def test_a_successful_preparation_replaces_the_earlier_one_whole(corpus, tmp_path):
    config = _data(corpus)
    prepare_shards(resolve_source(config), config, tmp_path / "p", shard_size=10, progress=False)
    assert len(ShardedDataset(tmp_path / "p").shard_sizes) == 6
    small = tmp_path / "small.smi"
    small.write_text("CCO\nCCN\n")
    again = _data(small)
    report = prepare_shards(resolve_source(again), again, tmp_path / "p", shard_size=10, progress=False)
    assert report.out_dir == str(tmp_path / "p")
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["manifest.json", "report.json", "shard-00000.pt"]
    assert len(ShardedDataset(tmp_path / "p")) == 2
    assert oct((tmp_path / "p").stat().st_mode & 0o777) != oct(0o700)  # not mkdtemp's private mode


def test_an_output_folder_with_other_files_is_refused_before_any_work(corpus, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    config = _data(corpus)
    with pytest.raises(DataError, match=r"holds files that are not part of a prepared data set \(notes.txt\)"):
        prepare_shards(resolve_source(config), config, tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_prepare_command_keeps_the_corpus_and_names_its_own_option(corpus, tmp_path, capsys):
    from graphssl.cli import main

    assert main(["data", "prepare", str(corpus), "--out", str(tmp_path / "p"), "--no-progress"]) == 0
    before = _snapshot(tmp_path / "p")
    bad = tmp_path / "bad.csv"
    bad.write_text("smiles\nCCO\nCC O\n")
    capsys.readouterr()
    assert main(["data", "prepare", str(bad), "--out", str(tmp_path / "p"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--on-error skip" in err and "whitespace" in err
    assert _snapshot(tmp_path / "p") == before


def test_a_prepared_folder_with_a_damaged_report_still_reads_its_shards(corpus, tmp_path):
    config = _data(corpus)
    prepare_shards(resolve_source(config), config, tmp_path / "p", progress=False)
    (tmp_path / "p" / "report.json").write_text('{"name": "corpus", "rea')  # cut short
    with pytest.warns(UserWarning, match="report.json' is unreadable"):
        dataset = ShardedDataset(tmp_path / "p")
    assert len(dataset) == 60 and (dataset.report.read, dataset.report.kept) == (60, 60)


def test_prepared_classification_reports_its_label_reading(tmp_path):
    path = tmp_path / "mols.csv"
    path.write_text("smiles,active\nCCO,active\nCCN,inactive\nCCC,active\n")
    config = DataConfig(path=str(path), label_columns=["active"], task_type="classification")
    prepare_shards(resolve_source(config), config, tmp_path / "p", progress=False)
    prepared = ShardedDataset(tmp_path / "p")
    assert prepared.report.labels == {"active": "binary classes 'inactive' -> 0 (1 row), 'active' -> 1 (2 rows)"}
    assert torch.cat([prepared[i].y for i in range(3)]).flatten().tolist() == [1.0, 0.0, 1.0]
