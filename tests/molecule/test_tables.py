"""Molecule readers (CSV/TSV, SMI, SDF, registry tables): SMILES with whitespace inside, byte-order
marks, the .smi name column, and the split column read back from a file."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pytest

from graphssl.core.config import DataConfig
from graphssl.core.errors import DataError, MoleculeError
from graphssl.data.dataset import load_dataset, resolve_source
from graphssl.molecule.adapter import mol_from_smiles, smiles_to_data
from graphssl.molecule.tables import read_smi, read_table, record_column

BOM = "\ufeff"


def _load(path: Path, cache: Path, **options):
    return load_dataset(DataConfig(path=str(path), **options), cache, progress=False, verbose=False)


# ----------------------------------------------------------------------------- whitespace in SMILES


@pytest.mark.parametrize("smiles, head", [("CC O", "CC"), ("c1ccccc1 OCCN", "c1ccccc1"), ("CC\tN", "CC"),
                                          ("CC\nN", "CC"), ("CC\rN", "CC")])
def test_a_smiles_with_whitespace_inside_is_refused_not_cut_short(smiles, head):
    # RDKit alone reads the part before the whitespace and keeps the rest as a name
    from rdkit import Chem

    if "\r" not in smiles:
        assert Chem.MolToSmiles(Chem.MolFromSmiles(smiles)) == Chem.MolToSmiles(Chem.MolFromSmiles(head))
    with pytest.raises(MoleculeError, match="whitespace") as caught:
        smiles_to_data(smiles)
    assert f"only {head!r}" in str(caught.value)
    with pytest.raises(MoleculeError, match="whitespace"):
        mol_from_smiles(smiles)


def test_whitespace_around_a_smiles_is_not_part_of_it():
    assert smiles_to_data("  CCO\n").smiles == "CCO"


def test_csv_row_with_a_space_in_its_smiles_is_a_bad_record_not_ethane(tmp_path):
    path = tmp_path / "mols.csv"
    path.write_text("smiles,y\nCCO,1.0\nCC O,2.2\nc1ccccc1,3.0\n")
    with pytest.raises(DataError, match=r"record 1 \('CC O'\).*whitespace"):
        _load(path, tmp_path / "cache", label_columns=["y"], task_type="regression")
    dataset = _load(path, tmp_path / "cache", label_columns=["y"], task_type="regression", on_error="skip")
    assert dataset.smiles == ["CCO", "c1ccccc1"]
    assert dataset.labels.flatten().tolist() == [1.0, 3.0]  # 2.2 did not become ethane's label
    [skipped] = dataset.report.skipped
    assert skipped.index == 1 and "whitespace" in skipped.reason


def test_quoted_csv_cell_with_a_line_break_and_tsv_cell_with_a_tab_are_bad_records(tmp_path):
    for name, sep, bad in (("mols.csv", ",", "CC\nN"), ("mols.tsv", "\t", "CC\tN")):
        path = tmp_path / name
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle, delimiter=sep)
            writer.writerows([["smiles", "y"], ["CCO", "1"], [bad, "2"], ["CCCC", "3"]])
        dataset = _load(path, tmp_path / "cache", label_columns=["y"], task_type="regression", on_error="skip")
        assert dataset.smiles == ["CCO", "CCCC"], name
        assert "whitespace" in dataset.report.skipped[0].reason


def test_smi_name_column_stays_supported(tmp_path):
    path = tmp_path / "named.smi"
    path.write_text("CC O-name\nc1ccccc1\tbenzene ring\nCCN\n")
    assert [(r.index, r.smiles) for r in read_smi(path)] == [(0, "CC"), (1, "c1ccccc1"), (2, "CCN")]
    assert _load(path, tmp_path / "cache").smiles == ["CC", "c1ccccc1", "CCN"]


def test_registry_table_with_a_space_in_a_smiles_skips_it(tmp_path, monkeypatch):
    from graphssl.molecule import sources

    table = tmp_path / "B3DB_classification.tsv"
    table.write_text("SMILES\tBBB+/BBB-\nCCO\tBBB+\nCC O\tBBB-\nCCCN\tBBB-\n")
    monkeypatch.setattr(sources, "packaged_file", lambda package, name: table)
    dataset = load_dataset(DataConfig(name="b3db", on_error="skip"), tmp_path / "cache", progress=False,
                           verbose=False)
    assert dataset.smiles == ["CCO", "CCCN"]
    assert "whitespace" in dataset.report.skipped[0].reason


def test_prepare_refuses_a_smiles_with_whitespace(tmp_path):
    from graphssl.molecule.shards import ShardedDataset, prepare_shards

    path = tmp_path / "mols.csv"
    path.write_text("smiles\nCCO\nCC O\nCCN\n")
    config = DataConfig(path=str(path))
    with pytest.raises(DataError, match=r"record 1 \('CC O'\).*whitespace"):
        prepare_shards(resolve_source(config), config, tmp_path / "strict", progress=False)
    lenient = DataConfig(path=str(path), on_error="skip")
    prepare_shards(resolve_source(lenient), lenient, tmp_path / "lenient", progress=False)
    prepared = ShardedDataset(tmp_path / "lenient")
    assert [prepared[i].smiles for i in range(len(prepared))] == ["CCO", "CCN"]


# ----------------------------------------------------------------------------- byte-order marks


def test_smi_header_is_found_after_a_byte_order_mark(tmp_path):
    path = tmp_path / "bom.smi"
    path.write_text(BOM + "smiles name\nCCO ethanol\nc1ccccc1 benzene\n", encoding="utf-8")
    assert [(r.index, r.smiles) for r in read_smi(path)] == [(1, "CCO"), (2, "c1ccccc1")]
    dataset = _load(path, tmp_path / "cache")  # before: '\ufeffsmiles' was an invalid SMILES
    assert dataset.report.read == dataset.report.kept == 2


def test_smi_without_a_header_keeps_its_first_molecule_after_a_byte_order_mark(tmp_path):
    path = tmp_path / "bom.smi"
    path.write_text(BOM + "CCO\nCCN\n", encoding="utf-8")
    assert [r.smiles for r in read_smi(path)] == ["CCO", "CCN"]


@pytest.mark.parametrize("name", ["bom.csv", "bom.tsv", "bom.csv.gz"])
def test_table_column_names_are_found_after_a_byte_order_mark(tmp_path, name):
    sep = "\t" if ".tsv" in name else ","
    text = BOM + f"smiles{sep}y\nCCO{sep}1.5\n"
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    [record] = list(read_table(path, None, ["y"], task_type="regression"))
    assert (record.smiles, record.labels) == ("CCO", [1.5])
    assert record_column(path, "y") == ["1.5"]


def test_sdf_title_after_a_byte_order_mark(tmp_path):
    from graphssl.molecule.adapter import iter_sdf

    block = "ethanol\n  test\n\n  3  2  0  0  0  0  0  0  0  0999 V2000\n" + "".join(
        f"{x:10.4f}    0.0000    0.0000 {s:<3} 0  0  0  0  0  0  0  0  0  0  0  0\n"
        for s, x in (("C", 0.0), ("C", 1.5), ("O", 3.0))) + "  1  2  1  0\n  2  3  1  0\nM  END\n$$$$\n"
    path = tmp_path / "bom.sdf"
    path.write_text(BOM + block, encoding="utf-8")
    [record] = list(iter_sdf(path))
    assert record.mol.GetProp("_Name") == "ethanol"


# ----------------------------------------------------------------------------- columns


def test_record_column_follows_record_numbering(tmp_path):
    path = tmp_path / "mols.csv"
    path.write_text("smiles,split\nCCO,train\n\nCCN, Test \nCCC\n")  # a blank line is no record
    assert record_column(path, "split") == ["train", "Test", ""]
    assert record_column(path, "split", limit=2) == ["train", "Test"]
    with pytest.raises(DataError, match="no column 'fold'"):
        record_column(path, "fold")
    smi = tmp_path / "mols.smi"
    smi.write_text("CCO\n")
    with pytest.raises(DataError, match="has no columns"):
        record_column(smi, "split")
