"""Where data comes from: named data sets (``data.name``) and kinds of user input (``data.path``).

Each domain registers its entries here from its own ``sources`` module (imported by the
domain package), so this layer knows no domain. ``graphssl data list`` prints :func:`catalogue`.

How ``data.path`` is read: the input-kind rules
-----------------------------------------------
Every domain declares, for each kind of input it reads, the file names it claims (``files``),
the folder contents it claims (``members``: files directly inside the folder, not in
sub-folders) and a marker file that claims a folder by itself (``marker``). Names are
compared in lower case, with shell patterns (``*.csv``, ``POSCAR*``). Then:

1. A **file** is of the kind whose ``files`` patterns match its name. No match, or matches of
   more than one kind, is an error that names the file and lists what each kind claims.
2. A **folder** is of the kind whose ``marker`` it holds, or whose ``members`` patterns match
   at least one of its files. Other files (a label CSV, ``classes.txt``, notes) do not count.
   A folder that matches no kind, or more than one, is an error naming the folder and what
   was found in it; the order in which kinds were registered never decides.

A relative ``data.path`` is read from the working directory of the process, and a leading ``~``
(in ``path`` and ``label_file``) is the user's home folder. A path that does not exist is an error
that names the absolute path that was looked for.

The kinds registered by the three domains:

- molecules, a file: ``*.csv``, ``*.tsv``, ``*.tab`` (also ``*.csv.gz``, ``*.tsv.gz``),
  ``*.smi``, ``*.smiles``, ``*.txt``, ``*.sdf``, ``*.sd``, ``*.sdf.gz``
- prepared molecules, a folder holding ``manifest.json`` (written by ``graphssl data prepare``)
- atomistic structures, a file: ``*.extxyz``, ``*.xyz``, ``*.db`` (frames with energies and
  forces), ``*.cif``, ``*.vasp``, ``*.poscar``, ``POSCAR*``, ``CONTCAR*`` (one structure); or a
  folder holding ``*.cif``, ``*.vasp``, ``*.poscar``, ``POSCAR*`` or ``CONTCAR*`` files
- B-rep parts, a file ``*.step`` / ``*.stp``, or a folder holding such files
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from graphssl.core.config import DataConfig
from graphssl.core.errors import DataError
from graphssl.core.registry import Registry
from graphssl.data.records import Source

if TYPE_CHECKING:
    from graphssl.data.builder import Recipe

# (config, cache_dir, progress) -> the source's records
Opener = Callable[[DataConfig, Path, bool], Source]
# (config, cache_dir, progress, verbose) -> a data set, for entries not built by a Recipe
Loader = Callable[[DataConfig, Path, bool, bool], Any]
# (path, column, limit) -> that column's value for every record read from the file, in record order
ColumnReader = Callable[[str, str, "int | None"], list[str]]

PATH_HINT = ("Or give data.path: a molecule file (.csv/.tsv/.smi/.sdf), a folder of CIF/POSCAR files, an "
             "extxyz/ASE db file, a STEP file or folder of STEP files, or a folder written by `graphssl data prepare`.")


@dataclass(frozen=True)
class DataSource:
    """A named data set: how to open its records and how to build them (or load it directly)."""

    name: str
    domain: str
    task_type: str | None
    metric: str | None
    description: str
    open: Opener | None = None
    recipe: "Recipe | None" = None
    load: Loader | None = None  # replaces open + recipe (e.g. a prepared folder)
    reads_path: bool = False  # a named data set read from the user's local copy at data.path (a download)


@dataclass(frozen=True)
class InputKind:
    """A kind of user input and the file names and folder contents it claims."""

    name: str
    domain: str
    files: tuple[str, ...] = ()  # patterns of file names of this kind
    members: tuple[str, ...] = ()  # a folder holding a file matching one of these is of this kind
    marker: str | None = None  # a folder holding this file is of this kind
    open: Opener | None = None
    recipe: "Recipe | None" = None
    load: Loader | None = None
    column: ColumnReader | None = None  # reads a column of the input (e.g. for finetune.split=column)

    def claims_file(self, path: Path) -> bool:
        return _matches(path.name, self.files)

    def claims_folder(self, folder: Path, files: list[Path]) -> bool:
        if self.marker is not None and (folder / self.marker).is_file():
            return True
        return any(_matches(p.name, self.members) for p in files)

    def rules(self) -> str:
        parts = []
        if self.files:
            parts.append(f"a file {' '.join(self.files)}")
        if self.members:
            parts.append(f"a folder with {' '.join(self.members)} files")
        if self.marker:
            parts.append(f"a folder holding {self.marker}")
        return f"{self.name}: {'; '.join(parts)}"


SOURCES: Registry[DataSource] = Registry("data set", hint=PATH_HINT)
INPUT_KINDS: Registry[InputKind] = Registry("input kind")


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    low = name.lower()
    return any(fnmatch.fnmatchcase(low, pattern.lower()) for pattern in patterns)


def register_source(source: DataSource) -> DataSource:
    """Add a named data set (``data.name``); a taken name is refused."""
    if source.load is None and (source.open is None or source.recipe is None):
        raise DataError(f"data set '{source.name}' needs open and recipe, or load")
    return SOURCES.register(source.name, source)


def register_input(kind: InputKind) -> InputKind:
    """Add a kind of user input (``data.path``) with the names and folder contents it claims."""
    if not (kind.files or kind.members or kind.marker):
        raise DataError(f"input kind '{kind.name}' claims nothing: give files, members or a marker")
    return INPUT_KINDS.register(kind.name, kind)


def _found(files: list[Path], limit: int = 6) -> str:
    if not files:
        return "no files"
    names = ", ".join(p.name for p in files[:limit])
    return f"{len(files)} file{'s' * (len(files) > 1)} ({names}{', ...' if len(files) > limit else ''})"


def expand_paths(config: DataConfig) -> DataConfig:
    """``config`` with a leading ``~`` of ``path`` and ``label_file`` expanded (the same object
    when there is none)."""
    changes = {key: os.path.expanduser(value) for key in ("path", "label_file")
               if isinstance(value := getattr(config, key), str) and value.startswith("~")}
    return dataclasses.replace(config, **changes) if changes else config


def _looked_for(path: Path) -> str:
    if path.is_absolute():
        return ""
    return f" (looked for '{path.absolute()}'; a relative path is read from the working directory)"


def input_kind(path: str | Path) -> InputKind:
    """The kind of ``data.path`` by the rules of this module; a :class:`DataError` naming the
    path and what was found when no kind, or more than one, claims it."""
    path = Path(os.path.expanduser(path))
    kinds = [kind for _, kind in INPUT_KINDS.items()]
    rules = "; ".join(k.rules() for k in kinds)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        matched = [k for k in kinds if k.claims_folder(path, files)]
        if len(matched) == 1:
            return matched[0]
        if not matched:
            raise DataError(f"data.path '{path}': the folder holds {_found(files)}, which no input kind claims. "
                            f"Input kinds: {rules}")
        claims = "; ".join(
            f"{k.name} ({_found([p for p in files if _matches(p.name, k.members)] or [path / str(k.marker)])})"
            for k in matched)
        raise DataError(f"data.path '{path}': the folder matches several input kinds: {claims}. Put each kind of "
                        "input in a folder of its own")
    if not path.exists():
        raise DataError(f"data.path '{path}' does not exist{_looked_for(path)}")
    matched = [k for k in kinds if k.claims_file(path)]
    if len(matched) == 1:
        return matched[0]
    if not matched:
        raise DataError(f"data.path '{path}': no input kind reads a file named like this. Input kinds: {rules}")
    raise DataError(f"data.path '{path}': the file name matches several input kinds "
                    f"({', '.join(k.name for k in matched)}); rename it")


def entry_for(config: DataConfig) -> DataSource | InputKind:
    """The registered data set (``data.name``) or the input kind (``data.path``) of ``config``."""
    if config.name:
        source = SOURCES.get(config.name)
        if config.path and not source.reads_path:
            raise DataError(f"give either data.name ('{config.name}') or data.path ('{config.path}'), not both")
        return source
    if config.path:
        return input_kind(config.path)
    raise DataError("no data set given: set data.name to a registry name (`graphssl data list`) or data.path "
                    "to a file or folder")


def catalogue() -> list[tuple[str, str | None, str | None, str]]:
    """Every registered data set: (name, task type, metric, description), all domains, by name."""
    return [(s.name, s.task_type, s.metric, s.description) for _, s in SOURCES.items()]
