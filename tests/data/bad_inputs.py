"""A corpus of bad inputs for every adapter, written by the tests themselves (no shipped files).

Each ``DATA_CASES`` builder writes one bad record among a few good ones into an empty folder
and returns a :class:`Case`: the ``DataConfig`` that reads it (``on_error`` is left to the
test), how errors and reports name the bad record, and a substring of the reason it is bad.
``CONFIG_CASES`` are malformed run configurations for :func:`graphssl.core.config.load_config`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from graphssl.core.config import DataConfig

GOOD_SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1"]


@dataclass
class Case:
    """One bad record in a small data set."""

    config: DataConfig
    index: int  # the bad record's index in errors and in the build report
    identity: str  # how a strict-mode error names it (index and input text or file name)
    name: str  # a substring of its ``input`` in the build report
    reason: str  # a substring of why it is bad
    good: int  # good records around it; a lenient build keeps all of them


@dataclass
class ConfigCase:
    """A malformed configuration: YAML text (None: no file) and ``--set`` overrides."""

    text: str | None
    overrides: list[str] = field(default_factory=list)
    where: str = ""  # the option (or file) the error names
    reason: str = ""


# ------------------------------------------------------------------------------ molecules


def _csv(folder: Path, rows: list[tuple[str, str]], bad: int, name: str, reason: str,
         identity: str | None = None) -> Case:
    """A labelled CSV: GOOD_SMILES with label 1.0 around ``rows`` (inserted at position ``bad``)."""
    folder.mkdir(parents=True, exist_ok=True)
    records = [(s, f"{k + 0.5}") for k, s in enumerate(GOOD_SMILES)]
    records[bad:bad] = rows
    path = folder / "mols.csv"
    path.write_text("smiles,y\n" + "".join(f"{s},{y}\n" for s, y in records))
    config = DataConfig(path=str(path), label_columns=["y"], task_type="regression")
    return Case(config, bad, identity or f"record {bad} ({name!r})", name, reason, len(GOOD_SMILES))


def _smi(folder: Path, smiles: str, name: str, reason: str) -> Case:
    """An unlabeled SMILES file with ``smiles`` as its second line (record 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mols.smi"
    lines = [GOOD_SMILES[0], smiles, *GOOD_SMILES[1:]]
    path.write_text("\n".join(lines) + "\n")
    return Case(DataConfig(path=str(path)), 1, f"record 1 ('{name}", name, reason, len(GOOD_SMILES))


def _molblock(title: str, atoms: list[tuple[str, float]], bonds: list[tuple[int, int]],
              counts: str | None = None) -> str:
    lines = [title, "  graphssl-test", ""]
    lines.append(counts or f"{len(atoms):3d}{len(bonds):3d}  0  0  0  0  0  0  0  0999 V2000")
    for symbol, x in atoms:
        lines.append(f"{x:10.4f}{0.0:10.4f}{0.0:10.4f} {symbol:<3} 0  0  0  0  0  0  0  0  0  0  0  0")
    lines += [f"{a:3d}{b:3d}  1  0" for a, b in bonds]
    lines.append("M  END")
    return "\n".join(lines)


_ETHANOL = ([("C", 0.0), ("C", 1.5), ("O", 3.0)], [(1, 2), (2, 3)])
_PROPANE = ([("C", 0.0), ("C", 1.5), ("C", 3.0)], [(1, 2), (2, 3)])
_METHYLAMINE = ([("C", 0.0), ("N", 1.5)], [(1, 2)])


def _sdf(folder: Path, bad_block: str, bad_value: str, name: str, reason: str, identity: str) -> Case:
    """An SDF with property SOL: ethanol, the bad record (index 1), propane."""
    folder.mkdir(parents=True, exist_ok=True)
    blocks = [(_molblock("ethanol", *_ETHANOL), "1.5"), (bad_block, bad_value), (_molblock("propane", *_PROPANE), "2.5")]
    text = "".join(f"{block}\n>  <SOL>\n{value}\n\n$$$$\n" for block, value in blocks)
    path = folder / "mols.sdf"
    path.write_text(text)
    config = DataConfig(path=str(path), label_columns=["SOL"], task_type="regression")
    return Case(config, 1, identity, name, reason, 2)


def invalid_smiles(folder: Path) -> Case:
    return _csv(folder, [("C1CC", "1.0")], 1, "C1CC", "unclosed ring")


def bad_valence_smiles(folder: Path) -> Case:
    return _csv(folder, [("CC(C)(C)(C)(C)C", "1.0")], 2, "CC(C)(C)(C)(C)C", "valence")


def unkekulizable_smiles(folder: Path) -> Case:
    return _csv(folder, [("c1cccc1", "1.0")], 0, "c1cccc1", "kekulize")


def empty_smiles(folder: Path) -> Case:
    return _csv(folder, [("", "1.0")], 1, "", "empty SMILES")


def too_many_fields(folder: Path) -> Case:
    # an unquoted comma inside a value: the row has one field more than the header
    return _csv(folder, [("CC(C)O", "1.0,2.0")], 1, "CC(C)O", "row has 3 fields but the header has 2")


def blank_smiles(folder: Path) -> Case:
    return _csv(folder, [("   ", "1.0")], 1, "   ", "empty SMILES")


def whitespace_in_smiles(folder: Path) -> Case:
    # RDKit alone would read "CC" (ethane) and keep " O" as a name, with the label 2.2
    return _csv(folder, [("CC O", "2.2")], 1, "CC O", "holds whitespace")


def whitespace_in_smi_smiles(folder: Path) -> Case:
    # in a .smi file whitespace ends the SMILES; a tab inside a bracket atom leaves "C[N" behind
    return _smi(folder, "C[N\tH4+]", "C[N", "syntax error")


def unknown_element_smiles(folder: Path) -> Case:
    return _smi(folder, "CC[Xx]C", "CC[Xx]C", "unknown element 'Xx'")


def unknown_element_sdf(folder: Path) -> Case:
    block = _molblock("qq-compound", [("Qq", 0.0), ("C", 1.5)], [(1, 2)])
    return _sdf(folder, block, "1.0", "record 1", "unknown element 'Qq'", "record 1 ('record 1')")


def broken_sdf_block(folder: Path) -> Case:
    # the counts line promises 9 atoms, the block holds 2
    block = _molblock("broken", *_METHYLAMINE, counts="  9  1  0  0  0  0  0  0  0  0999 V2000")
    return _sdf(folder, block, "1.0", "record 1", "SDF record 1", "record 1 ('record 1')")


def empty_sdf_record(folder: Path) -> Case:
    return _sdf(folder, _molblock("nothing", [], []), "1.0", "record 1", "no atoms", "record 1 ('record 1')")


def huge_molecule(folder: Path) -> Case:
    # one more carbon than the default data.max_atoms
    limit = DataConfig().max_atoms
    return _smi(folder, "C" * (limit + 1), "C" * 50, f"{limit + 1} atoms, more than data.max_atoms={limit}")


def missing_label(folder: Path) -> Case:
    # NaN is a missing label; a record with no label at all cannot be used for a labelled task
    return _csv(folder, [("CCN", "nan")], 1, "CCN", "no label present")


def infinite_label(folder: Path) -> Case:
    return _csv(folder, [("CCN", "inf")], 1, "CCN", "infinite value 'inf'")


def negative_infinite_label(folder: Path) -> Case:
    return _csv(folder, [("CCN", "-inf")], 1, "CCN", "infinite value '-inf'")


def overflowing_label(folder: Path) -> Case:
    return _csv(folder, [("CCN", "1e999")], 1, "CCN", "infinite value '1e999'")


def non_numeric_label(folder: Path) -> Case:
    return _csv(folder, [("CCN", "high")], 1, "CCN", "non-numeric value 'high'")


def word_in_regression_label(folder: Path) -> Case:
    # "inactive" used to become 0.0 in a regression column
    return _csv(folder, [("CCN", "inactive")], 1, "CCN", "non-numeric value 'inactive'")


def digit_separator_label(folder: Path) -> Case:
    # Python's float() reads "1_000" as 1000; a table cell with it is no number
    return _csv(folder, [("CCN", "1_000")], 1, "CCN", "non-numeric value '1_000'")


def infinite_label_sdf(folder: Path) -> Case:
    block = _molblock("methylamine", *_METHYLAMINE)
    return _sdf(folder, block, "Infinity", "methylamine", "infinite value 'Infinity'", "record 1 ('methylamine')")


def duplicate_smiles(folder: Path) -> Case:
    # "OCC" is ethanol again, written differently: the same canonical SMILES as record 0
    return _csv(folder, [("OCC", "9.0")], 3, "OCC", "duplicate of record 0")


def duplicate_sdf_record(folder: Path) -> Case:
    block = _molblock("ethanol again", *_ETHANOL)
    return _sdf(folder, block, "7.0", "ethanol again", "duplicate of record 0", "record 1 ('ethanol again')")


# ------------------------------------------------------------------------------ structures


def _good_structures() -> list:
    from ase.build import bulk

    return [bulk("Cu", "fcc", a=3.6), bulk("NaCl", "rocksalt", a=5.64), bulk("Si", "diamond", a=5.43)]


def _structure_folder(folder: Path, bad_name: str, write_bad: Callable[[Path], None],
                      label: str = "1.0", reason: str = "", cutoff: float = 5.0) -> Case:
    """A folder of POSCAR files with a label CSV; the bad file is the second row (record 1)."""
    import ase.io

    folder.mkdir(parents=True, exist_ok=True)
    names = ["a_cu.vasp", bad_name, "c_nacl.vasp", "d_si.vasp"]
    for name, atoms in zip([names[0], *names[2:]], _good_structures()):
        ase.io.write(folder / name, atoms, format="vasp")
    if bad_name not in names[:1] + names[2:]:
        write_bad(folder / bad_name)
    labels = ["0.5", label, "1.5", "2.5"]
    (folder / "labels.csv").write_text("file,gap\n" + "".join(f"{n},{v}\n" for n, v in zip(names, labels)))
    config = DataConfig(path=str(folder), label_file="labels.csv", id_column="file", cutoff=cutoff)
    return Case(config, 1, f"structure 1 ({bad_name!r})", bad_name, reason, 3)


def _poscar(path: Path, symbols: str, count: int, cell: list[list[float]], positions: list[list[float]]) -> None:
    lines = ["test", "1.0", *(" ".join(str(v) for v in row) for row in cell), symbols, str(count), "Cartesian"]
    lines += [" ".join(str(v) for v in p) for p in positions]
    path.write_text("\n".join(lines) + "\n")


def overlapping_atoms(folder: Path) -> Case:
    def write(path: Path) -> None:
        _poscar(path, "Cu", 2, [[4, 0, 0], [0, 4, 0], [0, 0, 4]], [[0, 0, 0], [0.1, 0, 0]])

    return _structure_folder(folder, "b_overlap.vasp", write, reason="atoms 0 and 1 overlap")


def zero_volume_cell(folder: Path) -> Case:
    def write(path: Path) -> None:  # the third lattice vector lies in the plane of the first two
        _poscar(path, "Cu", 1, [[4, 0, 0], [0, 4, 0], [4, 4, 0]], [[0, 0, 0]])

    return _structure_folder(folder, "b_flat.vasp", write, reason="degenerate cell")


def no_neighbour_within_cutoff(folder: Path) -> Case:
    def write(path: Path) -> None:  # one atom whose nearest periodic image is 20 A away
        _poscar(path, "Cu", 1, [[20, 0, 0], [0, 20, 0], [0, 0, 20]], [[0, 0, 0]])

    return _structure_folder(folder, "b_lonely.vasp", write, reason="no neighbour within the cutoff 5")


def unknown_element_structure(folder: Path) -> Case:
    def write(path: Path) -> None:
        _poscar(path, "Qq", 1, [[3, 0, 0], [0, 3, 0], [0, 0, 3]], [[0, 0, 0]])

    return _structure_folder(folder, "b_qq.vasp", write, reason="unknown element 'Qq'")


def non_finite_coordinates(folder: Path) -> Case:
    def write(path: Path) -> None:
        _poscar(path, "Cu", 2, [[4, 0, 0], [0, 4, 0], [0, 0, 4]], [[0, 0, 0], ["nan", 2, 2]])

    return _structure_folder(folder, "b_nan.vasp", write, reason="non-finite coordinates")


def empty_structure_file(folder: Path) -> Case:
    return _structure_folder(folder, "b_empty.vasp", lambda path: path.write_text(""),
                             reason="cannot read structures")


def truncated_structure_file(folder: Path) -> Case:
    def write(path: Path) -> None:  # a POSCAR cut after its cell
        path.write_text("test\n1.0\n4 0 0\n0 4 0\n0 0 4\n")

    return _structure_folder(folder, "b_cut.vasp", write, reason="cannot read structures")


def huge_structure(folder: Path) -> Case:
    limit = DataConfig().max_atoms
    side = 18  # 18^3 = 5832 atoms on a simple cubic grid, 2.6 A apart

    def write(path: Path) -> None:
        positions = [[2.6 * i, 2.6 * j, 2.6 * k] for i in range(side) for j in range(side) for k in range(side)]
        _poscar(path, "Cu", side**3, [[2.6 * side, 0, 0], [0, 2.6 * side, 0], [0, 0, 2.6 * side]], positions)

    assert side**3 > limit
    return _structure_folder(folder, "b_huge.vasp", write, reason=f"{side**3} atoms, more than data.max_atoms={limit}")


def infinite_structure_label(folder: Path) -> Case:
    return _structure_folder(folder, "b_cu.vasp", lambda path: shutil.copy(path.parent / "a_cu.vasp", path),
                             label="inf", reason="infinite value 'inf'")


def missing_structure_label(folder: Path) -> Case:
    return _structure_folder(folder, "b_cu.vasp", lambda path: shutil.copy(path.parent / "a_cu.vasp", path),
                             label="", reason="no label present")


def duplicate_structure(folder: Path) -> Case:
    # the label file names a_cu.vasp twice
    return _structure_folder(folder, "a_cu.vasp", lambda path: None, reason="duplicate of structure 0")


def _frames(folder: Path, bad_frame: str | Callable[[list[str]], str], reason: str) -> Case:
    """An extxyz of two good frames with ``bad_frame`` (text, or a function of the good frames'
    texts) between them as frame 1."""
    import ase.io
    import numpy as np
    from ase.calculators.singlepoint import SinglePointCalculator

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "frames.extxyz"
    texts = []
    for k, atoms in enumerate(_good_structures()[:2]):
        atoms.calc = SinglePointCalculator(atoms, energy=-1.0 - k, forces=np.zeros((len(atoms), 3)))
        ase.io.write(path, atoms, format="extxyz")
        texts.append(path.read_text())
    bad = bad_frame(texts) if callable(bad_frame) else bad_frame
    path.write_text(texts[0] + bad + texts[1])
    return Case(DataConfig(path=str(path)), 1, "structure 1 ('frames.extxyz[1]')", "frames.extxyz[1]", reason, 2)


_FRAME_HEADER = 'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3:forces:R:3 energy={energy} pbc="T T T"'


def _frame(rows: list[str], energy: str = "-3.0", count: int | None = None) -> str:
    header = _FRAME_HEADER.format(energy=energy)
    return f"{len(rows) if count is None else count}\n{header}\n" + "".join(row + "\n" for row in rows)


def unknown_element_frame(folder: Path) -> Case:
    return _frames(folder, _frame(["Qq 0 0 0 0 0 0", "Cu 2 2 2 0 0 0"]), "unknown element 'Qq'")


def corrupted_database_row(folder: Path) -> Case:
    """An ASE database of three structures with energies whose second row's positions blob is
    cut to one byte (what a crash mid-write or a bad copy leaves)."""
    import sqlite3

    import ase.db
    import numpy as np
    from ase.calculators.singlepoint import SinglePointCalculator

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "frames.db"
    database = ase.db.connect(str(path))
    for k, atoms in enumerate(_good_structures()[:3]):
        atoms.calc = SinglePointCalculator(atoms, energy=-1.0 - k, forces=np.zeros((len(atoms), 3)))
        database.write(atoms)
    with sqlite3.connect(path) as connection:
        connection.execute("update systems set positions = X'00' where id = 2")
    return Case(DataConfig(path=str(path)), 1, "structure 1 ('frames.db[id=2]')", "frames.db[id=2]",
                "database row 2 cannot be read", 2)


def garbage_frame(folder: Path) -> Case:
    return _frames(folder, _frame(["Cu 0 0 zero 0 0 0", "Cu 2 2 2 0 0 0"]), "frame starting at line")


def infinite_energy_frame(folder: Path) -> Case:
    return _frames(folder, _frame(["Cu 0 0 0 0 0 0", "Cu 2 2 2 0 0 0"], energy="inf"), "infinite label")


def non_finite_frame(folder: Path) -> Case:
    return _frames(folder, _frame(["Cu 0 0 0 0 0 0", "Cu nan 2 2 0 0 0"]), "non-finite coordinates")


def overlapping_frame(folder: Path) -> Case:
    return _frames(folder, _frame(["Cu 0 0 0 0 0 0", "Cu 0.1 0 0 0 0 0"]), "atoms 0 and 1 overlap")


def duplicate_frame(folder: Path) -> Case:
    return _frames(folder, lambda good: good[0], "duplicate of structure 0")


def truncated_frames(folder: Path) -> Case:
    # the last frame announces 5 atoms and the file ends after 1: it is the bad record (index 2)
    case = _frames(folder, "", "")
    path = Path(str(case.config.path))
    path.write_text(path.read_text() + _frame(["Cu 0 0 0 0 0 0"], count=5))
    return Case(case.config, 2, "structure 2 ('frames.extxyz[2]')", "frames.extxyz[2]", "truncated frame", 2)


def unframeable_frames(folder: Path) -> Case:
    # a count line that is no count: the rest of the file is one bad record (index 2)
    case = _frames(folder, "", "")
    path = Path(str(case.config.path))
    path.write_text(path.read_text() + "lots of atoms\nno header\nCu 0 0 0\n")
    return Case(case.config, 2, "structure 2 ('frames.extxyz[2]')", "frames.extxyz[2]",
                "should hold a frame's atom count", 2)


# ------------------------------------------------------------------------------ B-rep parts


def _step_folder(folder: Path, bad_name: str, write_bad: Callable[[Path], None], reason: str) -> Case:
    """Two labelled boxes (a_, c_) around the bad STEP file ``bad_name`` (part 1)."""
    from OCP.BRepPrimAPI import BRepPrimAPI_MakeBox

    from graphssl.brep.generate import write_step

    folder.mkdir(parents=True, exist_ok=True)
    for name, size in (("a_box.step", (40.0, 30.0, 20.0)), ("c_box.step", (10.0, 20.0, 30.0))):
        write_step(BRepPrimAPI_MakeBox(*size).Shape(), folder / name)
        (folder / name).with_suffix(".labels").write_text("0\n1\n0\n1\n0\n1\n")
    write_bad(folder / bad_name)
    return Case(DataConfig(path=str(folder)), 1, f"part 1 ({bad_name!r})", bad_name, reason, 2)


def empty_step(folder: Path) -> Case:
    return _step_folder(folder, "b_empty.step", lambda path: path.write_bytes(b""), "is empty")


def truncated_step(folder: Path) -> Case:
    def write(path: Path) -> None:
        text = (path.parent / "a_box.step").read_bytes()
        path.write_bytes(text[: len(text) // 2])

    return _step_folder(folder, "b_cut.step", write, "truncated")


def garbage_text_step(folder: Path) -> Case:
    return _step_folder(folder, "b_notes.step", lambda path: path.write_text("meeting notes, not CAD\n"),
                        "not a STEP file")


def garbage_binary_step(folder: Path) -> Case:
    return _step_folder(folder, "b_noise.stp", lambda path: path.write_bytes(bytes(range(256)) * 8),
                        "not a STEP file")


def header_only_step(folder: Path) -> Case:
    def write(path: Path) -> None:
        path.write_text("ISO-10303-21;\nHEADER;\nENDSEC;\nDATA;\nENDSEC;\nEND-ISO-10303-21;\n")

    return _step_folder(folder, "b_header.step", write, "no solid")


def duplicate_step(folder: Path) -> Case:
    def write(path: Path) -> None:
        shutil.copy(path.parent / "a_box.step", path)
        shutil.copy(path.parent / "a_box.labels", path.with_suffix(".labels"))

    return _step_folder(folder, "b_copy.step", write, "duplicate of part 0 ('a_box.step')")


def wrong_label_count(folder: Path) -> Case:
    def write(path: Path) -> None:
        shutil.copy(path.parent / "c_box.step", path)  # the same solid, but a different product name
        path.with_suffix(".labels").write_text("0\n1\n")

    return _step_folder(folder, "b_box.step", write, "has 2 labels but the part has 6 faces")


def garbage_labels(folder: Path) -> Case:
    def write(path: Path) -> None:
        from OCP.BRepPrimAPI import BRepPrimAPI_MakeBox

        from graphssl.brep.generate import write_step

        write_step(BRepPrimAPI_MakeBox(5.0, 5.0, 5.0).Shape(), path)
        path.with_suffix(".labels").write_text("0\nhole\n0\n0\n0\n0\n")

    return _step_folder(folder, "b_box.step", write, "holds 'hole', expected one integer class per line")


MOLECULE_CASES = [invalid_smiles, bad_valence_smiles, unkekulizable_smiles, empty_smiles, blank_smiles, too_many_fields,
                  whitespace_in_smiles, whitespace_in_smi_smiles, unknown_element_smiles, unknown_element_sdf,
                  broken_sdf_block, empty_sdf_record, huge_molecule, missing_label, infinite_label,
                  negative_infinite_label, overflowing_label, non_numeric_label, word_in_regression_label,
                  digit_separator_label, infinite_label_sdf, duplicate_smiles, duplicate_sdf_record]
STRUCTURE_CASES = [overlapping_atoms, zero_volume_cell, no_neighbour_within_cutoff, unknown_element_structure,
                   non_finite_coordinates, empty_structure_file, truncated_structure_file, huge_structure,
                   infinite_structure_label, missing_structure_label, duplicate_structure, unknown_element_frame,
                   garbage_frame, infinite_energy_frame, non_finite_frame, overlapping_frame, duplicate_frame,
                   truncated_frames, unframeable_frames, corrupted_database_row]
BREP_CASES = [empty_step, truncated_step, garbage_text_step, garbage_binary_step, header_only_step, duplicate_step,
              wrong_label_count, garbage_labels]
DATA_CASES: dict[str, Callable[[Path], Case]] = {f.__name__: f for f in MOLECULE_CASES + STRUCTURE_CASES + BREP_CASES}


# ------------------------------------------------------------------------------ configs

CONFIG_CASES: dict[str, ConfigCase] = {
    "bad_yaml": ConfigCase("data: [unclosed\n", where="bad_yaml.yaml", reason="not valid YAML"),
    "unsafe_yaml_tag": ConfigCase("seed: !!python/object/apply:os.system ['true']\n", where="unsafe_yaml_tag.yaml",
                                  reason="not valid YAML"),
    "top_level_list": ConfigCase("- pretrain\n- finetune\n", where="top_level_list.yaml",
                                 reason="must hold a mapping"),
    "missing_file": ConfigCase(None, where="missing_file.yaml", reason="does not exist"),
    "integer_as_word": ConfigCase("pretrain:\n  epochs: three\n", where="pretrain.epochs", reason="must be an integer"),
    "number_as_word": ConfigCase("pretrain:\n  lr: fast\n", where="pretrain.lr", reason="must be a number"),
    "bool_as_number": ConfigCase("progress: 3\n", where="progress", reason="must be true or false"),
    "section_as_number": ConfigCase("model: 5\n", where="model", reason="must be a mapping"),
    "list_as_number": ConfigCase("data:\n  label_columns: 5\n", where="data.label_columns", reason="must be a list"),
    "unknown_option": ConfigCase("data:\n  on_eror: skip\n", where="data.on_eror",
                                 reason="Did you mean 'on_error'?"),
    "unknown_section": ConfigCase("pretrian:\n  epochs: 1\n", where="pretrian", reason="Did you mean 'pretrain'?"),
    "unknown_nested_option": ConfigCase("finetune:\n  task:\n    smiles_colum: smi\n",
                                        where="finetune.task.smiles_colum", reason="Did you mean 'smiles_column'?"),
    "unknown_override": ConfigCase("", ["data.max_atom=100"], where="data.max_atom",
                                   reason="Did you mean 'max_atoms'?"),
    "override_without_value": ConfigCase("", ["pretrain.epochs"], where="pretrain.epochs", reason="key=value"),
    "misspelt_choice": ConfigCase("finetune:\n  task:\n    on_error: skp\n", where="finetune.task.on_error",
                                  reason="Did you mean 'skip'?"),
    "unknown_duplicates_rule": ConfigCase("data:\n  duplicates: drop\n", where="data.duplicates",
                                          reason="must be one of auto, reject, keep"),
    "zero_max_atoms": ConfigCase("data:\n  max_atoms: 0\n", where="data.max_atoms", reason="positive integer"),
    "text_max_atoms": ConfigCase("", ["data.max_atoms=many"], where="data.max_atoms", reason="must be an integer"),
}
