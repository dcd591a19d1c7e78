"""A labelled data set held in a graph store: a view on some of its graphs, with what the labels mean."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from graphssl.data.records import BuildReport


class StoredGraphs(Dataset):
    """``dataset[i]`` is graph ``indices[i]`` of ``store`` (anything with ``get(i)``, ``len`` and
    a label matrix ``t["y"]``); ``subset`` makes views without copying graphs."""

    def __init__(self, store: Any, name: str, task_names: list[str], task_type: str | None,
                 metric: str | None, report: BuildReport, indices: np.ndarray | None = None) -> None:
        self.store = store
        self.name = name
        self.task_names = task_names
        self.task_type = task_type
        self.metric = metric
        self.report = report
        self.indices = np.arange(len(store)) if indices is None else np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.store.get(int(self.indices[i]))

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    @property
    def labels(self) -> torch.Tensor:
        return self.store.t["y"][torch.as_tensor(self.indices)]

    def subset(self, indices: Sequence[int] | np.ndarray):
        """A view on the given positions of this data set (same class)."""
        return type(self)(self.store, self.name, self.task_names, self.task_type, self.metric,
                          self.report, self.indices[np.asarray(indices, dtype=np.int64)])
