"""A pretraining corpus made of several data sets (``data.sources``).

The sets are read one after the other as one data set, each repeated as often as its item asks,
with their labels dropped: a corpus is for pretraining, and the sets' labels need not have the
same columns (QM9's twelve targets next to Matbench's one), which would make a batch fail.
"""

from __future__ import annotations

import bisect
import copy
from typing import Any, Sequence

from torch.utils.data import Dataset
from torch_geometric.data import Data

from graphssl.core.errors import DataError
from graphssl.data.records import BuildReport, SkippedRecord

# graph attributes that hold labels in any domain (y; energies, forces and stresses of structures)
LABEL_KEYS = frozenset({"y", "energy", "forces", "stress"})


class Corpus(Dataset):
    """Several data sets of one domain read as one, set ``i`` repeated ``repeats[i]`` times.

    Every graph keeps only the attributes all sets share, labels excluded, so any mix batches.
    The sets must give the encoder the same input features (their ``feature_spec``). With a set
    streamed from shards (``graphssl data prepare``), ``shard_sizes`` lists the blocks the step
    sampler keeps together and ``streamed`` is true; with every set in memory, the corpus is
    shuffled as one block.
    """

    def __init__(self, datasets: Sequence[Any], repeats: Sequence[int] | None = None) -> None:
        if not datasets:
            raise DataError("a corpus needs at least one data set")
        repeats = list(repeats) if repeats is not None else [1] * len(datasets)
        if len(repeats) != len(datasets) or any(int(r) < 1 for r in repeats):
            raise DataError(f"a corpus needs one positive repeat count per data set, got {repeats}")
        first = datasets[0]
        for other in datasets[1:]:
            if getattr(other, "feature_spec", None) != getattr(first, "feature_spec", None):
                raise DataError(
                    f"data sets '{_name(first)}' and '{_name(other)}' give graphs with different input features "
                    f"({getattr(first, 'feature_spec', None)} against {getattr(other, 'feature_spec', None)}), so "
                    "one encoder cannot read both; build them with the same featuriser options")
        empty = [_name(d) for d in datasets if len(d) == 0]
        if empty:
            raise DataError(f"data set '{empty[0]}' of the corpus holds no graphs")
        self.datasets = list(datasets)
        self.repeats = [int(r) for r in repeats]
        self._ends: list[int] = []
        total = 0
        for d, r in zip(self.datasets, self.repeats):
            total += len(d) * r
            self._ends.append(total)
        shared = set.intersection(*(set(d[0].keys()) for d in self.datasets))
        self.keys = frozenset(shared - LABEL_KEYS)
        self.streamed = any(hasattr(d, "shard_sizes") for d in self.datasets)
        if self.streamed:
            # the step sampler keeps each block together, so a set streamed from disk is read shard
            # by shard; a set in memory is then one block (its batches are not mixed with other sets')
            self.shard_sizes = [int(size) for d, r in zip(self.datasets, self.repeats) for _ in range(r)
                                for size in getattr(d, "shard_sizes", [len(d)])]

    def __len__(self) -> int:
        return self._ends[-1]

    def __getitem__(self, index: int) -> Data:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for a corpus of {len(self)} graphs")
        part = bisect.bisect_right(self._ends, index)
        start = self._ends[part - 1] if part else 0
        dataset = self.datasets[part]
        graph = copy.copy(dataset[(index - start) % len(dataset)])
        for key in set(graph.keys()) - self.keys:
            del graph[key]
        return graph

    def spread(self, count: int) -> list[int]:
        """``count`` indices spread evenly over the corpus, so a sample of it (e.g. for batch-norm
        statistics) holds every set in its share."""
        count = min(count, len(self))
        return [i * len(self) // count for i in range(count)]

    @property
    def feature_spec(self) -> Any:
        return getattr(self.datasets[0], "feature_spec", None)

    @property
    def name(self) -> str:
        return "+".join(_name(d) for d in self.datasets)

    @property
    def report(self) -> BuildReport:
        """The sets' build reports as one; a skipped record's input says which set it was in."""
        merged = BuildReport(self.name)
        for d in self.datasets:
            r = d.report
            merged.read += r.read
            merged.kept += r.kept
            merged.skipped += [SkippedRecord(s.index, f"{r.name}: {s.input}", s.reason) for s in r.skipped]
        return merged

    def summary(self) -> list[dict[str, Any]]:
        """One row per set: its name, its graphs and how often an epoch repeats them."""
        return [{"name": _name(d), "records": len(d), "repeat": r} for d, r in zip(self.datasets, self.repeats)]


def _name(dataset: Any) -> str:
    return str(getattr(dataset, "name", type(dataset).__name__))
