"""A pretraining corpus of several data sets (data.sources): indexing, repeats, labels dropped,
options inherited from the section, and the errors for what cannot be mixed."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data

from graphssl.core.config import DataConfig, load_config
from graphssl.core.errors import ConfigError, DataError
from graphssl.data.corpus import Corpus
from graphssl.data.dataset import domain_of, load_dataset
from graphssl.data.records import BuildReport, SkippedRecord
from graphssl.engine.runtime import validate


class _Set(list):
    """A data set as the corpus sees one: graphs plus name, feature_spec and report."""

    def __init__(self, name: str, graphs: list[Data], spec: str = "atoms", skipped: int = 0) -> None:
        super().__init__(graphs)
        self.name, self.feature_spec = name, spec
        self.report = BuildReport(name, read=len(graphs) + skipped, kept=len(graphs),
                                  skipped=[SkippedRecord(i, f"record {i}", "broken") for i in range(skipped)])


def _graphs(n: int, targets: int, tag: float) -> list[Data]:
    return [Data(z=torch.tensor([6, 1]), pos=torch.zeros(2, 3) + i, y=torch.full((1, targets), tag),
                 energy=torch.tensor([tag]), edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=2)
            for i in range(n)]


def test_indexing_walks_the_sets_in_turn_with_their_repeats():
    a, b = _Set("a", _graphs(3, 12, 1.0)), _Set("b", _graphs(2, 1, 2.0))
    corpus = Corpus([a, b], [1, 3])
    assert len(corpus) == 3 + 2 * 3
    # positions 0-2 are a's graphs, then b's two graphs three times over
    assert [float(corpus[i].pos[0, 0]) for i in range(len(corpus))] == [0, 1, 2, 0, 1, 0, 1, 0, 1]
    assert float(corpus[-1].pos[0, 0]) == 1.0
    with pytest.raises(IndexError, match="out of range for a corpus of 9 graphs"):
        corpus[9]
    assert corpus.name == "a+b"
    assert corpus.summary() == [{"name": "a", "records": 3, "repeat": 1}, {"name": "b", "records": 2, "repeat": 3}]


def test_labels_are_dropped_so_sets_with_different_label_columns_batch():
    a, b = _Set("a", _graphs(2, 12, 1.0)), _Set("b", _graphs(2, 1, 2.0))
    with pytest.raises(RuntimeError):  # the reason for dropping them: y is [1, 12] in one set, [1, 1] in the other
        Batch.from_data_list([a[0], b[0]])
    corpus = Corpus([a, b])
    batch = Batch.from_data_list([corpus[i] for i in range(len(corpus))])
    assert "y" not in batch and "energy" not in batch
    assert batch.num_graphs == 4 and batch.pos.shape == (8, 3)
    assert "y" in a[0]  # the sets' own graphs are left as they were


def test_only_attributes_every_set_has_are_kept():
    a = _Set("a", _graphs(2, 1, 1.0))
    b = _Set("b", [Data(z=torch.tensor([8]), pos=torch.zeros(1, 3), edge_index=torch.zeros(2, 0, dtype=torch.long),
                        cell=torch.eye(3).view(1, 3, 3), num_nodes=1)])
    corpus = Corpus([a, b])
    assert set(corpus[2].keys()) == {"z", "pos", "edge_index", "num_nodes"}


def test_sets_with_other_input_features_are_refused_by_name():
    with pytest.raises(DataError, match="'a' and 'b' give graphs with different input features"):
        Corpus([_Set("a", _graphs(1, 1, 0.0), spec="atoms"), _Set("b", _graphs(1, 1, 0.0), spec="atoms+charges")])
    with pytest.raises(DataError, match="'b' of the corpus holds no graphs"):
        Corpus([_Set("a", _graphs(1, 1, 0.0)), _Set("b", [])])
    with pytest.raises(DataError, match="positive repeat count"):
        Corpus([_Set("a", _graphs(1, 1, 0.0))], [0])


def test_the_report_adds_the_sets_up_and_names_the_set_of_each_skipped_record():
    corpus = Corpus([_Set("a", _graphs(3, 1, 0.0), skipped=1), _Set("b", _graphs(2, 1, 0.0), skipped=2)])
    report = corpus.report
    assert (report.read, report.kept, len(report.skipped)) == (8, 5, 3)
    assert [s.input for s in report.skipped] == ["a: record 0", "b: record 0", "b: record 1"]


def test_spread_samples_every_set_in_its_share():
    corpus = Corpus([_Set("a", _graphs(90, 1, 0.0)), _Set("b", _graphs(10, 1, 0.0))])
    picked = corpus.spread(10)
    assert picked == list(range(0, 100, 10))
    assert sum(i >= 90 for i in picked) == 1  # b's share of the corpus is a tenth
    assert corpus.spread(1000) == list(range(100))


# --------------------------------------------------------------------------- configuration

def test_items_take_the_options_they_leave_out_from_the_section():
    data = DataConfig(cutoff=4.0, on_error="skip", sources=["qm9-3d", {"name": "matbench-dielectric",
                                                                       "max_neighbors": 12, "repeat": 4}])
    data.check()
    (qm9, one), (matbench, four) = data.parts()
    assert (qm9.name, qm9.cutoff, qm9.on_error, qm9.max_neighbors, one) == ("qm9-3d", 4.0, "skip", None, 1)
    assert (matbench.name, matbench.cutoff, matbench.max_neighbors, four) == ("matbench-dielectric", 4.0, 12, 4)
    assert matbench.sources == [] and matbench.repeat == 1
    assert DataConfig(name="qm9-3d").parts() == [(DataConfig(name="qm9-3d"), 1)]


@pytest.mark.parametrize("overrides, message", [
    (["data.name=qm9-3d", "data.sources=[freesolv]"], "give either data.sources or a single data set"),
    (["data.sources=[{name: qm9-3d, cutoff: 6.0}]"], r"option 'data.sources\[0\].cutoff': every data set of a corpus"),
    (["data.sources=[qm9-3d, {name: freesolv, explicit_h: true}]"], r"data.sources\[1\].explicit_h"),
    (["data.sources=[{limit: 10}]"], r"option 'data.sources\[0\]' names no data set"),
    (["data.sources=[qm9-3d, 3]"], r"option 'data.sources\[1\]' must be a data set name or a mapping"),
    (["data.sources=[{name: qm9-3d, repeat: 0}]"], r"option 'data.sources\[0\].repeat' must be a positive integer"),
    (["data.sources=[{name: qm9-3d, limt: 10}]"], r"unknown option 'data.sources\[0\].limt'. Did you mean 'limit'"),
    (["data.name=qm9-3d", "data.repeat=2"], "option 'data.repeat' weights one data set of a corpus"),
])
def test_bad_corpus_options_name_the_item_and_what_is_wrong(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_an_unknown_name_in_an_item_is_refused_before_any_work():
    config = load_config(None, ["data.sources=[qm9-3d, {name: qm9-4d}]", "objective.name=denoise",
                                "model.backbone=painn"])
    with pytest.raises(ConfigError, match=r"option 'data.sources\[1\].name'"):
        validate(config, "pretrain")


def test_a_fine_tuning_task_is_one_labelled_data_set():
    config = load_config(None, ["finetune.task.sources=[freesolv, b3db]"])
    with pytest.raises(ConfigError, match="option 'finetune.task.sources' makes a pretraining corpus"):
        validate(config, "finetune")


def test_a_corpus_holds_one_domain():
    assert domain_of(DataConfig(sources=["qm9-3d", "matbench-dielectric"])) == "atomistic"
    with pytest.raises(DataError, match=r"data.sources\[1\] \('freesolv'\) is molecule data and data.sources\[0\] "
                                        r"\('qm9-3d'\) is atomistic data"):
        domain_of(DataConfig(sources=["qm9-3d", "freesolv"]))


def test_load_dataset_builds_each_file_and_reads_them_as_one(tmp_path, molecule_csv, smiles_file):
    data = DataConfig(sources=[{"path": str(molecule_csv)}, {"path": str(smiles_file), "limit": 10, "repeat": 2}])
    corpus = load_dataset(data, tmp_path / "cache", progress=False, verbose=False)
    assert isinstance(corpus, Corpus)
    assert corpus.summary() == [{"name": "mols", "records": 24, "repeat": 1},
                                {"name": "mols", "records": 10, "repeat": 2}]
    assert len(corpus) == 44
    # the labelled CSV's graphs lose their labels; the features are the same molecule featuriser's
    assert "y" not in corpus[0] and corpus[0].x.shape[1] == corpus[30].x.shape[1]
    assert torch.equal(corpus[24].x, corpus[34].x)  # the .smi part, its second time round


def test_pretraining_on_a_corpus_writes_its_sets_on_the_zoo_card(tmp_path, molecule_csv, smiles_file, one_thread):
    from graphssl import zoo
    from graphssl.engine.checkpoint import load_checkpoint
    from graphssl.engine.pretrain import pretrain

    config = load_config(None, [f"data.sources=[{{path: '{molecule_csv}'}}, {{path: '{smiles_file}', repeat: 2}}]",
                                "model.backbone=gine", "model.hidden=16", "model.num_layers=2",
                                "objective.name=attrmask", "pretrain.epochs=1", "pretrain.batch_size=8",
                                f"output_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}", "progress=false"])
    payload = load_checkpoint(pretrain(config))
    assert payload["corpus"] == [{"name": "mols", "records": 24, "repeat": 1},
                                 {"name": "mols", "records": 72, "repeat": 2}]
    assert payload["batch_norm_graphs"] == 24 + 144
    zoo.entry_from_pretrained(payload, "corpus-run", tmp_path / "zoo", description="x")
    card = zoo.card("corpus-run", tmp_path / "zoo")
    assert card["data"]["records"] == 96 and card["data"]["sources"] == payload["corpus"]
    assert card["data"]["description"] == (f"the first 24 records of {molecule_csv}; the first 72 records of "
                                           f"{smiles_file}, each 2 times per epoch; labels unused")
    assert card["feature_spec"] == {"domain": "molecule", "explicit_h": False}
    assert card["pretrain"]["graph_passes"] == 8 * 21  # ceil(168 / 8) steps of 8 graphs



def test_a_streamed_set_keeps_its_shards_as_blocks_and_sets_in_memory_stay_one_block():
    streamed = _Set("shards", _graphs(5, 1, 0.0))
    streamed.shard_sizes = [3, 2]
    corpus = Corpus([streamed, _Set("file", _graphs(4, 1, 0.0))], [1, 2])
    assert corpus.streamed and corpus.shard_sizes == [3, 2, 4, 4]
    assert sum(corpus.shard_sizes) == len(corpus)
    in_memory = Corpus([_Set("a", _graphs(3, 1, 0.0)), _Set("b", _graphs(4, 1, 0.0))])
    assert not in_memory.streamed and not hasattr(in_memory, "shard_sizes")  # shuffled as one block


def test_pretraining_on_prepared_shards_and_a_file_transforms_lazily(tmp_path, corpus, smiles_file, monkeypatch,
                                                                     one_thread):
    from graphssl.data.dataset import resolve_source
    from graphssl.engine import pretrain as pretrain_module
    from graphssl.molecule.shards import prepare_shards

    shards = tmp_path / "shards"
    prepare_shards(resolve_source(DataConfig(path=str(corpus))), DataConfig(path=str(corpus)), shards,
                   shard_size=20, progress=False)

    def no_precompute(*args, **kwargs):
        raise AssertionError("a corpus with a streamed set must not be transformed into memory")

    monkeypatch.setattr(pretrain_module, "PrecomputedDataset", no_precompute)
    config = load_config(None, [f"data.sources=[{{path: '{shards}'}}, {{path: '{smiles_file}'}}]",
                                "model.backbone=gin", "model.hidden=16", "model.num_layers=2",
                                "objective.name=higmae", "pretrain.epochs=1", "pretrain.batch_size=8",
                                f"output_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}", "progress=false"])
    payload = pretrain_module.load_checkpoint(pretrain_module.pretrain(config))
    assert [row["records"] for row in payload["corpus"]] == [60, 72]
    assert payload["history"][-1]["steps"] == 132 // 8 + 1  # 16 full steps and a last one of 4 graphs
