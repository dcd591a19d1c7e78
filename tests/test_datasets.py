import math

import pytest

from graphssl.core.config import DataConfig
from graphssl.data.dataset import load_dataset
from graphssl.core.errors import DataError


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
    with pytest.raises(DataError, match="unknown data set 'zinc'"):
        load_dataset(DataConfig(name="zinc"), tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(DataConfig(path=str(tmp_path / "none.csv")), tmp_path)
    path = tmp_path / "t.csv"
    path.write_text("smiles,y\nCCO,1\n")
    with pytest.raises(DataError, match=r"no column\(s\) \['z'\]"):
        load_dataset(DataConfig(path=str(path), label_columns=["z"], task_type="regression"), tmp_path)
    with pytest.raises(DataError, match="task_type"):
        load_dataset(DataConfig(path=str(path), label_columns=["y"]), tmp_path)
