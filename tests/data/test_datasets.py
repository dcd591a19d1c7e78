import math

import pytest
import torch

from graphssl.atomistic.graph import ATOMISTIC_FIELDS
from graphssl.core.config import DataConfig
from graphssl.core.errors import ConfigError, DataError
from graphssl.data.dataset import load_dataset
from graphssl.data.sources import SOURCES, catalogue, input_kind
from graphssl.data.store import TensorStore
from graphssl.molecule.featurise import MOLECULE_FIELDS


def test_csv_with_labels(tmp_path, molecule_csv):
    cfg = DataConfig(path=str(molecule_csv), label_columns=["logp", "active"], task_type="regression")
    ds = load_dataset(cfg, tmp_path / "cache", progress=False)
    assert len(ds) == 24 and ds.num_tasks == 2
    assert ds[0].y.shape == (1, 2)
    assert ds[4].y[0, 0].item() == pytest.approx(-0.6) and math.isnan(ds[4].y[0, 1].item())
    assert ds.report.read == 24 and ds.report.kept == 24 and not ds.report.skipped


def test_bad_records_raise_by_default_and_are_reported_when_skipped(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("smiles,y\nCCO,1.0\nC1CC,2.0\n,3.0\nCCN,abc\nCCC,\nCCCl,inf\nc1ccccc1,0.5\n")
    cfg = DataConfig(path=str(path), label_columns=["y"], task_type="regression")
    with pytest.raises(DataError, match=r"record 1 \('C1CC'\).*on_error=skip"):
        load_dataset(cfg, tmp_path / "c1", progress=False)
    cfg.on_error = "skip"
    ds = load_dataset(cfg, tmp_path / "c2", progress=False)
    report = ds.report
    assert report.read == 7 and report.kept == 2
    assert report.read == report.kept + len(report.skipped)
    reasons = {s.index: s.reason for s in report.skipped}
    assert "C1CC" in reasons[1]
    assert "non-numeric" in reasons[3] and "abc" in reasons[3]
    assert "no label" in reasons[4]
    assert "infinite" in reasons[5]
    assert 2 in reasons  # the empty SMILES
    assert "skipped record 1" in report.summary()


def test_cache_is_reused_and_invalidated_by_options(tmp_path, smiles_file):
    cache = tmp_path / "cache"
    first = load_dataset(DataConfig(path=str(smiles_file)), cache, progress=False)
    assert not first.report.from_cache and len(first) == 72
    again = load_dataset(DataConfig(path=str(smiles_file)), cache, progress=False)
    assert again.report.from_cache and len(again) == 72
    with_h = load_dataset(DataConfig(path=str(smiles_file), explicit_h=True), cache, progress=False)
    assert not with_h.report.from_cache
    assert with_h[0].num_nodes > first[0].num_nodes
    assert len(list(cache.iterdir())) == 2


def test_sdf_with_properties(tmp_path):
    from rdkit import Chem

    path = tmp_path / "m.sdf"
    writer = Chem.SDWriter(str(path))
    for smi, value in [("CCO", "1.5"), ("c1ccccc1", "-0.5"), ("CCN", "2.0")]:
        mol = Chem.MolFromSmiles(smi)
        mol.SetProp("SOL", value)
        writer.write(mol)
    writer.close()
    ds = load_dataset(DataConfig(path=str(path), label_columns=["SOL"], task_type="regression"),
                      tmp_path / "cache", progress=False)
    assert [round(float(d.y), 2) for d in ds] == [1.5, -0.5, 2.0]


def test_registry_sets_load(tmp_path):
    b3db = load_dataset(DataConfig(name="b3db", limit=50, on_error="skip"), tmp_path, progress=False)
    assert "only class 0" in b3db.report.labels["BBB+"]  # its first 128 molecules are all BBB-
    assert b3db.task_type == "classification" and set(b3db.labels.flatten().tolist()) <= {0.0, 1.0}
    freesolv = load_dataset(DataConfig(name="freesolv", limit=20), tmp_path, progress=False)
    assert freesolv.metric == "rmse" and len(freesolv) == 20
    qm9 = load_dataset(DataConfig(name="qm9", limit=5), tmp_path, progress=False)
    assert qm9.num_tasks == 12 and "gap" in qm9.task_names
    # methane's HOMO-LUMO gap is 0.5048 Ha = 13.74 eV
    assert qm9[0].y[0, qm9.task_names.index("gap")].item() == pytest.approx(0.5048 * 27.211386, rel=1e-4)
    moses = load_dataset(DataConfig(name="moses", limit=10), tmp_path, progress=False)
    assert moses.task_type is None and len(moses) == 10
    sol = load_dataset(DataConfig(name="rdkit-solubility", limit=10), tmp_path, progress=False)
    assert sol.num_tasks == 1 and len(sol) == 10


def test_source_errors_name_the_input(tmp_path):
    with pytest.raises(ConfigError, match="unknown data set 'zinc'.*data.path"):
        load_dataset(DataConfig(name="zinc"), tmp_path)
    with pytest.raises(ConfigError, match="Did you mean 'b3db'"):
        load_dataset(DataConfig(name="b3bd"), tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(DataConfig(path=str(tmp_path / "none.csv")), tmp_path)
    path = tmp_path / "t.csv"
    path.write_text("smiles,y\nCCO,1\n")
    with pytest.raises(DataError, match=r"no column\(s\) \['z'\]"):
        load_dataset(DataConfig(path=str(path), label_columns=["z"], task_type="regression"), tmp_path)
    with pytest.raises(DataError, match="task_type"):
        load_dataset(DataConfig(path=str(path), label_columns=["y"]), tmp_path)


# ----------------------------------------------------------------------------- input kinds


def _folder(root, name: str, files: list[str]):
    folder = root / name
    folder.mkdir()
    for file in files:
        (folder / file).write_text("")
    return folder


def test_the_kind_of_a_path_follows_the_documented_rules(tmp_path):
    cases = {
        "mols.csv": "molecule file", "mols.tsv.gz": "molecule file", "mols.SMI": "molecule file",
        "frames.extxyz": "atomistic structures", "rows.db": "atomistic structures", "one.cif": "atomistic structures",
        "POSCAR": "atomistic structures", "part.STEP": "B-rep parts", "part.stp": "B-rep parts",
    }
    for name, kind in cases.items():
        (tmp_path / name).write_text("")
        assert input_kind(tmp_path / name).name == kind, name
    # a folder is claimed by the files in it; other files (labels, notes) do not count
    assert input_kind(_folder(tmp_path, "cifs", ["a.cif", "CONTCAR_2", "labels.csv"])).domain == "atomistic"
    assert input_kind(_folder(tmp_path, "parts", ["a.step", "a.labels", "classes.txt"])).domain == "brep"
    assert input_kind(_folder(tmp_path, "prepared", ["manifest.json", "shard-00000.pt"])).name == "prepared molecules"


def test_a_path_no_kind_or_several_kinds_claim_is_an_error_naming_it(tmp_path):
    notes = _folder(tmp_path, "notes", ["todo.md", "labels.csv"])
    with pytest.raises(DataError, match=r"notes.*holds 2 files \(labels.csv, todo.md\), which no input kind claims"):
        input_kind(notes)  # any folder used to count as atomistic structures
    with pytest.raises(DataError, match="no input kind claims"):
        load_dataset(DataConfig(path=str(_folder(tmp_path, "empty", []))), tmp_path / "cache")
    mixed = _folder(tmp_path, "mixed", ["a.cif", "b.step"])
    with pytest.raises(DataError, match=r"mixed.*several input kinds: atomistic structures \(1 file \(a.cif\)\); "
                                        r"B-rep parts \(1 file \(b.step\)\)"):
        input_kind(mixed)
    (tmp_path / "table.parquet").write_text("")
    with pytest.raises(DataError, match=r"table.parquet.*no input kind reads.*\*\.csv"):
        load_dataset(DataConfig(path=str(tmp_path / "table.parquet")), tmp_path / "cache")
    (tmp_path / "poscar.csv").write_text("")
    with pytest.raises(DataError, match="matches several input kinds"):
        input_kind(tmp_path / "poscar.csv")


def test_every_registered_data_set_is_in_the_catalogue_with_its_domain():
    rows = {name: (task_type, metric) for name, task_type, metric, _ in catalogue()}
    assert rows["b3db"] == ("classification", "roc_auc") and rows["moses"] == (None, None)
    assert rows["qm9-3d"] == ("regression", "mae") and rows["brep-machining"] == ("segmentation", "miou")
    assert {"moleculenet-bbbp", "moleculenet-esol"} <= set(rows)
    assert {SOURCES.get(name).domain for name in rows} == {"molecule", "atomistic", "brep"}


# ----------------------------------------------------------------------------- the store


def test_store_reads_legacy_files_and_refuses_damaged_or_foreign_ones(tmp_path, smiles_file):
    built = load_dataset(DataConfig(path=str(smiles_file), conformer=False), tmp_path / "cache", progress=False)
    [folder] = (tmp_path / "cache").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["graphs.pt", "report.json"]  # no temporary left
    store = built.store
    # a cache written before the common store: read as it is, never rebuilt or misread
    legacy = tmp_path / "legacy.pt"
    torch.save({"format": "graphssl-graph-store/1", "tensors": store.t, "smiles": store.strings["smiles"]}, legacy)
    old = TensorStore.load(legacy, MOLECULE_FIELDS)
    for i in (0, len(store) - 1):
        a, b = store.get(i), old.get(i)
        assert a.smiles == b.smiles and all(torch.equal(a[k], b[k]) for k in ("x", "edge_index", "edge_attr", "y"))
    with pytest.raises(DataError, match=r"not a graphssl atomistic store.*holds a 'molecule' store"):
        TensorStore.load(folder / "graphs.pt", ATOMISTIC_FIELDS)
    raw = (folder / "graphs.pt").read_bytes()
    (tmp_path / "half.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="half.pt.*unreadable"):
        TensorStore.load(tmp_path / "half.pt", MOLECULE_FIELDS)
    bad = dict(store.t, x=store.t["x"][:-1])
    TensorStore(bad, store.strings, MOLECULE_FIELDS).save(tmp_path / "short.pt")
    with pytest.raises(DataError, match=r"short.pt' has inconsistent sizes \(x\)"):
        TensorStore.load(tmp_path / "short.pt", MOLECULE_FIELDS)


def test_a_field_on_some_graphs_only_is_refused(tmp_path):
    from graphssl.molecule.adapter import smiles_to_data

    with_pos, without = smiles_to_data("CCO", conformer=True), smiles_to_data("CCN")
    for g in (with_pos, without):
        g.y = torch.zeros(1, 0)
    with pytest.raises(DataError, match="'pos' is present on 1 of 2 graphs but missing on 'CCN'"):
        TensorStore.from_graphs([with_pos, without], MOLECULE_FIELDS)


# ----------------------------------------------------------------------------- cache and paths


@pytest.mark.parametrize("damage", ["", '{"name": "mols", "read": 7', "[1, 2]", '{"name": "mols", "unknown": 1}'])
def test_an_empty_or_half_written_report_is_a_cache_miss(tmp_path, smiles_file, damage, capsys):
    cache = tmp_path / "cache"
    first = load_dataset(DataConfig(path=str(smiles_file)), cache, progress=False, verbose=False)
    [folder] = list(cache.iterdir())
    (folder / "report.json").write_text(damage)  # before: a JSONDecodeError traceback
    again = load_dataset(DataConfig(path=str(smiles_file)), cache, progress=False)
    assert not again.report.from_cache and len(again) == len(first) == 72
    assert "rebuilding" in capsys.readouterr().out
    third = load_dataset(DataConfig(path=str(smiles_file)), cache, progress=False, verbose=False)
    assert third.report.from_cache and third.report.read == 72  # the rebuilt report was written whole


def test_a_truncated_store_is_a_cache_miss(tmp_path, smiles_file):
    cache = tmp_path / "cache"
    load_dataset(DataConfig(path=str(smiles_file)), cache, progress=False, verbose=False)
    [folder] = list(cache.iterdir())
    store = folder / "graphs.pt"
    store.write_bytes(store.read_bytes()[:100])
    again = load_dataset(DataConfig(path=str(smiles_file)), cache, progress=False, verbose=False)
    assert not again.report.from_cache and len(again) == 72


def test_a_missing_relative_path_names_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as caught:
        load_dataset(DataConfig(path="data/mols.csv"), tmp_path / "cache")
    message = str(caught.value)
    assert "'data/mols.csv' does not exist" in message
    assert f"looked for '{tmp_path / 'data' / 'mols.csv'}'" in message and "working directory" in message


def test_a_path_under_home_is_expanded(tmp_path, monkeypatch, smiles_file):
    monkeypatch.setenv("HOME", str(smiles_file.parent))
    dataset = load_dataset(DataConfig(path=f"~/{smiles_file.name}"), tmp_path / "cache", progress=False,
                           verbose=False)
    assert len(dataset) == 72
    with pytest.raises(DataError) as caught:
        load_dataset(DataConfig(path="~/missing.csv"), tmp_path / "cache")
    assert f"'{smiles_file.parent / 'missing.csv'}' does not exist" in str(caught.value)


def test_building_in_several_processes_gives_the_same_graphs_and_report(tmp_path):
    path = tmp_path / "mixed.csv"
    # a bad SMILES, a bad label and a duplicate (rejected: the set is labelled) among good records
    path.write_text("smiles,y\nCCO,1.0\nC1CC,2.0\nCCN,abc\nc1ccccc1,0.5\nOCC,4.0\nCCCl,1.5\nCC(=O)O,2.5\nCCO,9.0\n")
    stores, reports = [], []
    for workers in (1, 2):
        cfg = DataConfig(path=str(path), label_columns=["y"], task_type="regression", on_error="skip",
                         workers=workers)
        ds = load_dataset(cfg, tmp_path / f"cache{workers}", progress=False)
        stores.append(TensorStore.load(next((tmp_path / f"cache{workers}").glob("*/graphs.pt")), MOLECULE_FIELDS))
        reports.append(ds.report)
    # the same cache folder name: the process count is not part of the cache key
    assert [p.name for p in (tmp_path / "cache1").iterdir()] == [p.name for p in (tmp_path / "cache2").iterdir()]
    one, two = reports
    assert (one.read, one.kept) == (two.read, two.kept) == (8, 4)
    assert [(s.index, s.input, s.reason) for s in one.skipped] == [(s.index, s.input, s.reason) for s in two.skipped]
    assert "duplicate" in {s.index: s.reason for s in two.skipped}[7]
    assert stores[0].t.keys() == stores[1].t.keys() and stores[0].strings == stores[1].strings
    for name, tensor in stores[0].t.items():
        assert torch.equal(tensor, stores[1].t[name]), name


def test_a_bad_process_count_is_refused_by_name(tmp_path, smiles_file):
    with pytest.raises(ConfigError, match=r"'data.workers' must be a positive integer; got 0"):
        load_dataset(DataConfig(path=str(smiles_file), workers=0), tmp_path / "cache", progress=False)


def test_a_source_that_cannot_reach_other_processes_is_named(tmp_path):
    from graphssl.data.builder import build
    from graphssl.data.records import Source
    from graphssl.molecule.dataset import MOLECULE_RECIPE
    from graphssl.molecule.tables import MoleculeRecord

    records = [MoleculeRecord(0, "CCO")]
    # a lambda cannot be pickled: the several-process path must say so before it starts
    source = Source("odd", records, [], None, None, "odd", input={"reader": lambda: None})
    build(source, MOLECULE_RECIPE, DataConfig(), progress=False)  # one process: fine
    with pytest.raises(DataError, match=r"odd: data.workers=2 needs .*set data.workers=1"):
        build(source, MOLECULE_RECIPE, DataConfig(workers=2), progress=False)


_MANY_GRAPHS = """
import resource, sys
from graphssl.core.config import DataConfig
from graphssl.data.dataset import load_dataset
# far fewer file descriptors than the graphs hold tensors: sending tensors between processes as
# shared-memory descriptors would run out of them (and leave the build waiting for good)
resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
if __name__ == "__main__":
    ds = load_dataset(DataConfig(path=sys.argv[1], workers=2), sys.argv[2], progress=False, verbose=False)
    print(len(ds))
"""


@pytest.mark.slow
def test_a_build_in_several_processes_does_not_run_out_of_file_descriptors(tmp_path, smiles_file):
    import subprocess
    import sys

    many = tmp_path / "many.smi"
    many.write_text(smiles_file.read_text() * 8)  # 576 molecules, about 3,000 tensors
    script = tmp_path / "many.py"
    script.write_text(_MANY_GRAPHS)
    done = subprocess.run([sys.executable, str(script), str(many), str(tmp_path / "cache")], capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "576"
