"""Structure files as the crystals they describe: CIFs read with pymatgen, disordered structures
refused on every path, and a labelled folder that reads only its own files and rebuilds when
one of them changes. Every test writes its own small files."""

from __future__ import annotations

import os
from pathlib import Path

import ase.io
import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from graphssl.atomistic.adapters import from_ase, from_pymatgen, read_structures
from graphssl.core.config import DataConfig
from graphssl.core.errors import DataError
from graphssl.data.dataset import load_dataset

_CELL = {"a": 5.64, "b": 5.64, "c": 5.64, "alpha": 90, "beta": 90, "gamma": 90}


def _cif(path: Path, sites: list[tuple], group: str = "P 1", operations: list[str] | None = None,
         cell: dict | None = None) -> Path:
    """A CIF with ``sites`` as (label, element, x, y, z, occupancy)."""
    cell = cell or _CELL
    lines = ["data_test", *(f"_cell_length_{k} {cell[k]}" for k in "abc"),
             *(f"_cell_angle_{k} {cell[k]}" for k in ("alpha", "beta", "gamma")),
             f"_symmetry_space_group_name_H-M '{group}'"]
    if operations:
        lines += ["loop_", "_symmetry_equiv_pos_as_xyz", *(f"'{op}'" for op in operations)]
    lines += ["loop_", "_atom_site_label", "_atom_site_type_symbol", "_atom_site_fract_x", "_atom_site_fract_y",
              "_atom_site_fract_z", "_atom_site_occupancy", *(" ".join(str(v) for v in site) for site in sites)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _load(config: DataConfig, cache: Path):
    return load_dataset(config, cache_dir=cache, progress=False, verbose=False)


# ------------------------------------------------------------------ CIFs through pymatgen

P21N = ["x, y, z", "-x+1/2, y+1/2, -z+1/2", "-x, -y, -z", "x+1/2, -y+1/2, z+1/2"]


@pytest.mark.filterwarnings("ignore:Issues encountered while parsing CIF")  # the reference read below
def test_a_cif_setting_ase_rejects_is_read_with_pymatgen(tmp_path):
    path = _cif(tmp_path / "p21n.cif", [("Si1", "Si", 0.13, 0.11, 0.17, 1), ("O1", "O", 0.3, 0.1, 0.2, 1)],
                group="P 1 21/n 1", operations=P21N, cell={**_CELL, "b": 6.1, "c": 7.2, "beta": 97.0})
    with pytest.raises(Exception, match="P 1 21/n 1"):
        ase.io.read(path)  # ASE knows no such setting
    [data] = read_structures(path, cutoff=4.0)
    assert sorted(data.z.tolist()) == [8] * 4 + [14] * 4  # two sites, four positions each
    assert data.name == "p21n.cif[0]"
    reference = Structure.from_file(path)
    assert abs(abs(float(np.linalg.det(data.cell[0].double().numpy()))) - reference.volume) < 1e-3


def test_a_named_group_pymatgen_cannot_expand_is_refused_not_read_as_p1(tmp_path):
    path = _cif(tmp_path / "fd3.cif", [("Si1", "Si", 0.125, 0.125, 0.125, 1)], group="F d 3",
                cell={**_CELL, "a": 10.0, "b": 10.0, "c": 10.0})
    with pytest.raises(DataError, match=r"fd3.cif.*space group 'F d 3' is unknown to pymatgen and the file lists "
                                        r"no symmetry operations"):
        read_structures(path)


def test_unreadable_cifs_name_the_file(tmp_path):
    (tmp_path / "junk.cif").write_text("data_x\n_cell_length_a 3\n")
    with pytest.raises(DataError, match=r"cannot read structures from '.*junk.cif'"):
        read_structures(tmp_path / "junk.cif")


# ------------------------------------------------------------------ disorder, on every path


def _mixed(folder: Path) -> Path:
    return _cif(folder / "cuau.cif", [("Cu1", "Cu", 0, 0, 0, 0.5), ("Au1", "Au", 0, 0, 0, 0.5)],
                cell={**_CELL, "a": 3.8, "b": 3.8, "c": 3.8})


def _vacant(folder: Path) -> Path:
    return _cif(folder / "na_half.cif", [("Na1", "Na", 0, 0, 0, 0.5), ("Cl1", "Cl", 0.5, 0.5, 0.5, 1)])


def test_disordered_cifs_are_refused_not_read_as_one_species(tmp_path):
    mixed, vacant = _mixed(tmp_path), _vacant(tmp_path)
    # what ASE's reader makes of them: one species per site, full occupancy
    assert ase.io.read(mixed).get_chemical_formula() == "Au"
    assert ase.io.read(vacant).get_chemical_formula() == "ClNa"
    with pytest.raises(DataError, match=r"'cuau.cif\[0\]': site 0 is shared by Cu \(0.5\), Au \(0.5\); "
                                        r"disordered structures"):
        read_structures(mixed)
    with pytest.raises(DataError, match=r"'na_half.cif\[0\]': site 0 is only partly occupied \(Na 0.5\)"):
        read_structures(vacant)
    # the same answer for ASE's atoms (it records the occupancies) and for pymatgen objects
    with pytest.raises(DataError, match=r"'mixed': site kind 0 is shared by Cu \(0.5\), Au \(0.5\)"):
        from_ase(ase.io.read(mixed), name="mixed")
    with pytest.raises(DataError, match=r"site kind 0 is only partly occupied \(Na 0.5\)"):
        from_ase(ase.io.read(vacant))
    disordered = Structure(Lattice.cubic(3.8), [{"Cu": 0.5, "Au": 0.5}], [[0, 0, 0]])
    with pytest.raises(DataError, match=r"'alloy': site 0 is shared by Cu \(0.5\), Au \(0.5\)"):
        from_pymatgen(disordered, name="alloy")


def test_nearly_full_occupancy_is_a_full_site(tmp_path):
    path = _cif(tmp_path / "nacl.cif", [("Na1", "Na", 0, 0, 0, 0.9999), ("Cl1", "Cl", 0.5, 0.5, 0.5, 1.0)])
    [data] = read_structures(path)
    assert sorted(data.z.tolist()) == [11, 17]


def test_a_folder_with_disordered_files_stops_or_skips_with_the_reason(tmp_path):
    folder = tmp_path / "cifs"
    folder.mkdir()
    _mixed(folder)
    _vacant(folder)
    Structure(Lattice.cubic(5.43), ["Si", "Si"], [[0, 0, 0], [0.25, 0.25, 0.25]]).to(filename=str(folder / "si.cif"))
    with pytest.raises(DataError, match="cuau.cif.*shared by Cu"):
        _load(DataConfig(path=str(folder)), tmp_path / "cache")
    dataset = _load(DataConfig(path=str(folder), on_error="skip"), tmp_path / "cache")
    assert dataset.names == ["si.cif"]
    reasons = {item.input: item.reason for item in dataset.report.skipped}
    assert set(reasons) == {"cuau.cif", "na_half.cif"}
    assert "shared by Cu (0.5), Au (0.5)" in reasons["cuau.cif"]
    assert "only partly occupied (Na 0.5)" in reasons["na_half.cif"]


# ------------------------------------------------------------------ labelled folders


def _poscar(path: Path, a: float) -> Path:
    structure = Structure(Lattice.cubic(a), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    path.parent.mkdir(parents=True, exist_ok=True)
    structure.to(filename=str(path), fmt="poscar")
    return path


def test_label_ids_cannot_leave_the_folder(tmp_path):
    folder = tmp_path / "data"
    _poscar(folder / "inside.vasp", 4.12)
    outside = _poscar(tmp_path / "outside" / "x.vasp", 4.12)  # a valid file: it would be read
    rows = ["file,y", "inside.vasp,1.0", "../outside/x.vasp,2.0", f"{outside},3.0"]
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    config = DataConfig(path=str(folder), label_file="labels.csv", id_column="file")
    with pytest.raises(DataError, match=r"'file' in row 1 of 'labels.csv' is '../outside/x.vasp', a path outside "
                                        r"the folder"):
        _load(config, tmp_path / "cache")
    config.on_error = "skip"
    dataset = _load(config, tmp_path / "cache")
    assert dataset.names == ["inside.vasp"]
    assert [item.index for item in dataset.report.skipped] == [1, 2]
    assert all("outside the folder" in item.reason for item in dataset.report.skipped)


def test_the_cache_key_covers_every_file_read_sub_folders_included(tmp_path):
    folder = tmp_path / "data"
    _poscar(folder / "top.vasp", 4.12)
    nested = _poscar(folder / "sub" / "nested.vasp", 4.21)
    (folder / "labels.csv").write_text("file,y\ntop.vasp,1.0\nsub/nested.vasp,2.0\n")
    config = DataConfig(path=str(folder), label_file="labels.csv", id_column="file", cutoff=6.0)
    first = _load(config, tmp_path / "cache")
    assert first.names == ["top.vasp", "sub/nested.vasp"] and not first.report.from_cache
    assert _load(config, tmp_path / "cache").report.from_cache
    stamp = nested.stat().st_mtime_ns
    _poscar(nested, 4.5)  # the same size of file, another crystal
    os.utime(nested, ns=(stamp + 10**9, stamp + 10**9))
    again = _load(config, tmp_path / "cache")
    assert not again.report.from_cache
    volume = abs(float(np.linalg.det(again[1].cell[0].double().numpy())))
    assert volume == pytest.approx(4.5**3, rel=1e-4)
