"""Sharded on-disk data sets: featurise in worker processes, stream back in bounded memory.

``prepare_shards`` turns a molecule source into a folder of shard files plus a manifest
and a build report; ``ShardedDataset`` reads it back one shard at a time. Shards store
categorical features as ``uint8`` and local edge indices as ``int32`` (about 0.5 kB per
drug-like molecule instead of 3.5 kB as ``int64``), and widen them on access.
"""

from __future__ import annotations

import bisect
import fnmatch
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import tempfile
import time
import warnings
from collections import OrderedDict, deque
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset
from torch_geometric.data import Data
from tqdm.auto import tqdm

from graphssl.core.config import DataConfig
from graphssl.core.errors import DataError
from graphssl.core.io import atomic_write_text
from graphssl.data.builder import REPORT_FILE as REPORT
from graphssl.data.builder import check_classes
from graphssl.data.records import BuildReport, FirstSeen, Source
from graphssl.data.store import TensorStore
from graphssl.molecule.dataset import MoleculeGraphsMixin
from graphssl.molecule.features import FEATURIZER_VERSION
from graphssl.molecule.featurise import MOLECULE_FIELDS, duplicate_reason, featurise_record, record_text
from graphssl.molecule.tables import MoleculeRecord

SHARDS_FORMAT = "graphssl-shards/1"
MANIFEST = "manifest.json"
_CHUNK = 500  # records per task sent to a worker: large enough to amortise pickling


@dataclass
class _Chunk:
    """The featurised graphs of one chunk of records, in compact form, and what was skipped."""

    tensors: dict[str, torch.Tensor]
    smiles: list[str]  # canonical, one per kept graph
    indices: list[int]  # record index of each kept graph
    texts: list[str]  # how each kept record is named in reports
    read: int
    skipped: list[tuple[int, str, str]]

    def drop(self, positions: set[int]) -> "_Chunk":
        """This chunk without the kept graphs at ``positions`` (duplicates found later)."""
        keep = [k for k in range(len(self.smiles)) if k not in positions]
        t = self.tensors
        nodes, edges = t["node_count"].long(), t["edge_count"].long()
        node_of = torch.repeat_interleave(torch.arange(len(nodes)), nodes)
        edge_of = torch.repeat_interleave(torch.arange(len(edges)), edges)
        chosen = torch.zeros(len(nodes), dtype=torch.bool)
        chosen[keep] = True
        tensors = {
            "node_count": t["node_count"][chosen], "edge_count": t["edge_count"][chosen],
            "x": t["x"][chosen[node_of]], "edge_index": t["edge_index"][:, chosen[edge_of]],
            "edge_attr": t["edge_attr"][chosen[edge_of]], "y": t["y"][chosen],
            **({"pos": t["pos"][chosen[node_of]]} if "pos" in t else {}),
            **({"descriptors": t["descriptors"][chosen]} if "descriptors" in t else {}),
        }
        pick = lambda items: [items[k] for k in keep]  # noqa: E731
        return _Chunk(tensors if keep else {}, pick(self.smiles), pick(self.indices), pick(self.texts),
                      self.read, self.skipped)


def _compact(graphs: list[Data]) -> dict[str, torch.Tensor]:
    t = TensorStore.from_graphs(graphs, MOLECULE_FIELDS).t
    # OGB categorical values are < 256; local node indices of one molecule fit int32
    return {
        "node_count": (t["node_ptr"][1:] - t["node_ptr"][:-1]).to(torch.int32),
        "edge_count": (t["edge_ptr"][1:] - t["edge_ptr"][:-1]).to(torch.int32),
        "x": t["x"].to(torch.uint8),
        "edge_index": t["edge_index"].to(torch.int32),
        "edge_attr": t["edge_attr"].to(torch.uint8),
        "y": t["y"],
        **({"pos": t["pos"]} if "pos" in t else {}),
        **({"descriptors": t["descriptors"]} if "descriptors" in t else {}),
    }


def _featurise_chunk(args: tuple[list[MoleculeRecord], DataConfig, bool]) -> _Chunk:
    records, config, labelled = args
    graphs, indices, texts, skipped = [], [], [], []
    for record in records:
        data, reason = featurise_record(record, config, labelled)
        if reason is not None:
            skipped.append((record.index, record_text(record), reason))
            continue
        graphs.append(data)
        indices.append(record.index)
        texts.append(record_text(record))
    tensors = _compact(graphs) if graphs else {}
    return _Chunk(tensors, [g.smiles for g in graphs], indices, texts, len(records), skipped)


def _merge(chunks: list[_Chunk]) -> TensorStore:
    parts = [c.tensors for c in chunks if c.tensors]
    nodes = torch.cat([p["node_count"] for p in parts]).long()
    edges = torch.cat([p["edge_count"] for p in parts]).long()
    zero = torch.zeros(1, dtype=torch.long)
    t = {
        "node_ptr": torch.cat([zero, nodes.cumsum(0)]),
        "edge_ptr": torch.cat([zero, edges.cumsum(0)]),
        "x": torch.cat([p["x"] for p in parts]),
        "edge_index": torch.cat([p["edge_index"] for p in parts], 1),
        "edge_attr": torch.cat([p["edge_attr"] for p in parts]),
        "y": torch.cat([p["y"] for p in parts]),
    }
    for key in ("pos", "descriptors"):  # optional fields: in every chunk or in none
        if all(key in p for p in parts):
            t[key] = torch.cat([p[key] for p in parts])
    return TensorStore(t, {"smiles": [s for c in chunks for s in c.smiles]}, MOLECULE_FIELDS)


def _chunks(records: Iterator[MoleculeRecord], size: int) -> Iterator[list[MoleculeRecord]]:
    while batch := list(islice(records, size)):
        yield batch


def _worker_init() -> None:
    torch.set_num_threads(1)  # one process per core already: threads would oversubscribe


def _ordered_results(tasks: Iterator[tuple], workers: int) -> Iterator[_Chunk]:
    """Featurise chunks in ``workers`` processes, in input order, with at most ``2 * workers``
    chunks in flight, so memory stays bounded however long the source is."""
    if workers <= 1:
        yield from map(_featurise_chunk, tasks)
        return
    # Not fork: a process whose OpenMP pool has run (any torch op) deadlocks its forked
    # children. A fork server starts clean, imports once, and forks the workers from there.
    methods = mp.get_all_start_methods()
    context = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:
        context.set_forkserver_preload(["graphssl.molecule.shards"])
    with context.Pool(workers, initializer=_worker_init) as pool:
        pending: deque = deque()
        for task in tasks:
            pending.append(pool.apply_async(_featurise_chunk, (task,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


@dataclass
class PrepareReport:
    """What a preparation wrote: where, how many shards and graphs, and how fast."""

    out_dir: str
    shards: int
    read: int
    kept: int
    skipped: int
    seconds: float
    workers: int

    @property
    def per_second(self) -> float:
        return self.read / max(self.seconds, 1e-9)


def prepare_shards(
    source: Source,
    config: DataConfig,
    out_dir: str | Path,
    workers: int = 1,
    shard_size: int = 100_000,
    progress: bool = True,
) -> PrepareReport:
    """Featurise ``source`` (a :class:`Source` of molecule records) into ``out_dir``.

    Writes ``shard-NNNNN.pt`` files of at most ``shard_size`` graphs, ``report.json`` (every skipped
    record with its reason) and, last, ``manifest.json``: a folder without a manifest is an
    unfinished preparation. ``config.on_error`` decides whether a bad record stops the run
    (``raise``) or is skipped and reported (``skip``).

    Everything is written into a hidden folder next to ``out_dir`` and swapped in only when the
    preparation succeeded, so a failed run leaves an earlier preparation in ``out_dir`` as it
    was. ``out_dir`` must be new, empty or an earlier preparation: other files in it are refused
    before any work, since the swap replaces the folder.
    """
    if workers < 1:
        raise DataError(f"workers must be >= 1, got {workers}")
    if shard_size < 1:
        raise DataError(f"shard_size must be >= 1, got {shard_size}")
    out = Path(out_dir)
    _check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.preparing-", dir=out.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        work.chmod(0o777 & ~umask)  # mkdtemp makes 0700 folders; give the one a plain mkdir would
        result = _prepare(source, config, work, workers, shard_size, progress)
        _swap_in(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # gone already after a swap
    result.out_dir = str(out)
    return result


def _is_preparation_file(name: str) -> bool:
    return name in (MANIFEST, REPORT) or fnmatch.fnmatchcase(name, "shard-*.pt")


def _check_target(out: Path) -> None:
    """Refuse an output folder that holds anything but an earlier preparation."""
    if out.exists() and not out.is_dir():
        raise DataError(f"output folder '{out}' is a file; give a folder for the prepared data set")
    if not out.is_dir():
        return
    foreign = sorted(p.name for p in out.iterdir() if not _is_preparation_file(p.name))
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise DataError(f"output folder '{out}' holds files that are not part of a prepared data set ({shown}); "
                        "preparing replaces the folder, so give a new or empty folder (or one written by "
                        "`graphssl data prepare`)")


def _swap_in(work: Path, out: Path) -> None:
    """Put the finished preparation ``work`` at ``out``, replacing an earlier one with two renames."""
    if not out.exists():
        os.replace(work, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.replaced-", dir=out.parent))
    old.rmdir()  # only its unique name is needed
    os.replace(out, old)
    os.replace(work, out)
    shutil.rmtree(old, ignore_errors=True)


def _prepare(source: Source, config: DataConfig, out: Path, workers: int, shard_size: int,
             progress: bool) -> PrepareReport:
    """Featurise ``source`` into the (new, empty) folder ``out``."""
    labelled = source.labelled
    report = BuildReport(source.name, labels=dict(source.label_reading), input=dict(source.input))
    labels: list[torch.Tensor] = []
    chunk_size = min(_CHUNK, shard_size)
    tasks = ((chunk, config, labelled) for chunk in _chunks(iter(source.records), chunk_size))
    shard_counts: list[int] = []
    buffer: list[_Chunk] = []
    buffered = 0
    t0 = time.perf_counter()

    def flush() -> None:
        nonlocal buffer, buffered
        if buffered:
            _merge(buffer).save(out / f"shard-{len(shard_counts):05d}.pt")
            shard_counts.append(buffered)
        buffer, buffered = [], 0

    bar = tqdm(desc=f"preparing {source.name} ({workers} worker{'s' * (workers > 1)})", total=config.limit,
               unit="mol", disable=not progress, mininterval=1.0, smoothing=0.1)
    # duplicates are found here, in record order, as in an in-memory build; keys are 8-byte
    # digests of the canonical SMILES, so deduplicating millions of molecules stays affordable
    seen = FirstSeen(config.rejects_duplicates(labelled))
    for chunk in _ordered_results(tasks, workers):
        report.read += chunk.read
        duplicates = {}
        for k, (smiles, index) in enumerate(zip(chunk.smiles, chunk.indices)):
            earlier = seen.claim(hashlib.blake2b(smiles.encode(), digest_size=8).digest(), index)
            if earlier is not None:
                duplicates[k] = (index, chunk.texts[k], duplicate_reason(earlier, smiles))
        if duplicates:
            chunk = chunk.drop(set(duplicates))
        for index, text, reason in sorted([*chunk.skipped, *duplicates.values()]):
            if config.on_error == "raise":
                raise DataError(f"{source.name}: record {index} ({text!r}): {reason}. Set data.on_error=skip "
                                "(`graphssl data prepare --on-error skip`) to skip bad records; they are then "
                                "reported.")
            report.skip(index, text, reason)
        kept = len(chunk.smiles)
        if kept and labelled:
            labels.append(chunk.tensors["y"])
        report.kept += kept
        bar.update(chunk.read)
        # shards hold whole chunks (chunks are at most shard_size records), so a shard is closed
        # before a chunk that would overflow it
        if buffered and buffered + kept > shard_size:
            flush()
        if kept:
            buffer.append(chunk)
            buffered += kept
    flush()
    bar.close()
    seconds = time.perf_counter() - t0
    if not report.kept:
        raise DataError(f"{source.name}: no usable record among {report.read} read\n{report.summary()}")
    if source.task_type == "classification":
        check_classes(source.name, source.task_names, torch.cat(labels), report)
    report.to_json(out / REPORT)
    manifest = {
        "format": SHARDS_FORMAT,
        "name": source.name,
        "task_names": source.task_names,
        "task_type": source.task_type,
        "metric": source.metric,
        "shards": [{"file": f"shard-{i:05d}.pt", "graphs": n} for i, n in enumerate(shard_counts)],
        "options": {"explicit_h": config.explicit_h, "conformer": config.conformer, "descriptors": config.descriptors,
                    "source": source.identity,
                    "duplicates": config.duplicates, "max_atoms": config.max_atoms, "on_error": config.on_error,
                    **({"conformer_max_atoms": config.conformer_max_atoms,
                        "conformer_timeout": config.conformer_timeout} if config.conformer else {})},
        "featurizer": str(FEATURIZER_VERSION),
        "read": report.read,
        "kept": report.kept,
        "skipped": len(report.skipped),
        "seconds": seconds,
        "workers": workers,
    }
    atomic_write_text(json.dumps(manifest, indent=1), out / MANIFEST)
    return PrepareReport(str(out), len(shard_counts), report.read, report.kept, len(report.skipped), seconds, workers)


def is_sharded(path: str | Path | None) -> bool:
    """Whether ``path`` is a folder written by :func:`prepare_shards`."""
    return path is not None and (Path(path) / MANIFEST).is_file()


class ShardedDataset(MoleculeGraphsMixin, Dataset):
    """A prepared folder read lazily: ``dataset[i]`` loads the shard holding graph ``i`` and keeps
    the ``cache_shards`` most recently used shards in memory. Pair it with
    :class:`graphssl.data.sampler.StepSampler`, which visits shard by shard, so each shard
    is read once per epoch."""

    def __init__(self, path: str | Path, cache_shards: int = 2) -> None:
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise DataError(f"'{self.path}' is not a prepared data set (no {MANIFEST}); run `graphssl data prepare`")
        try:
            self.manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"'{manifest_path}' is not valid JSON ({exc}); prepare the data set again") from None
        if self.manifest.get("format") != SHARDS_FORMAT:
            raise DataError(f"'{manifest_path}' has format {self.manifest.get('format')!r}, "
                            f"expected {SHARDS_FORMAT!r}; prepare the data set again")
        if self.manifest["featurizer"] != str(FEATURIZER_VERSION):
            raise DataError(f"'{self.path}' was prepared with featuriser {self.manifest['featurizer']}, this is "
                            f"{FEATURIZER_VERSION}; prepare the data set again")
        self.shard_sizes = [int(s["graphs"]) for s in self.manifest["shards"]]
        self._starts = np.concatenate([[0], np.cumsum(self.shard_sizes)]).tolist()
        self._cache: OrderedDict[int, TensorStore] = OrderedDict()
        self.cache_shards = cache_shards
        self.name = self.manifest["name"]
        self.task_names = list(self.manifest["task_names"])
        self.task_type = self.manifest["task_type"]
        self.metric = self.manifest["metric"]
        self.report = self._report()
        self.report.from_cache = True

    def _report(self) -> BuildReport:
        """The preparation's report; without a readable one (deleted, or damaged after the
        preparation), the counts of the manifest, whose shards are what is read."""
        path = self.path / REPORT
        if path.is_file():
            try:
                return BuildReport.from_json(path)
            except DataError as exc:
                warnings.warn(f"{exc}; the counts of {MANIFEST} are used, without the reasons for skipped records",
                              stacklevel=3)
        m = self.manifest
        return BuildReport(self.name, read=int(m.get("read", 0)), kept=int(m.get("kept", 0)))

    def __len__(self) -> int:
        return self._starts[-1]

    def _shard(self, k: int) -> TensorStore:
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        store = TensorStore.load(self.path / self.manifest["shards"][k]["file"], MOLECULE_FIELDS)
        self._cache[k] = store
        while len(self._cache) > self.cache_shards:
            self._cache.popitem(last=False)
        return store

    def __getitem__(self, i: int) -> Data:
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} graphs")
        k = bisect.bisect_right(self._starts, i) - 1
        data = self._shard(k).get(i - self._starts[k])
        data.x, data.edge_index, data.edge_attr = data.x.long(), data.edge_index.long(), data.edge_attr.long()
        return data

    def prepare_report(self) -> PrepareReport:
        m = self.manifest
        return PrepareReport(str(self.path), len(self.shard_sizes), m["read"], m["kept"], m["skipped"],
                             m["seconds"], m["workers"])


__all__ = ["prepare_shards", "PrepareReport", "ShardedDataset", "is_sharded", "SHARDS_FORMAT"]
