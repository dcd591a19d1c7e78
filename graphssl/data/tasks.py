"""Choosing some of a data set's tasks (e.g. only QM9's HOMO-LUMO gap)."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from graphssl.core.errors import DataError


class TaskSelection(Dataset):
    """A view of a labelled data set that keeps only the named tasks in ``y``.

    Everything else (name, metric, report, smiles, feature_spec, ...) is the base data set's.
    """

    def __init__(self, base: Any, tasks: Sequence[str]) -> None:
        missing = [t for t in tasks if t not in base.task_names]
        if missing:
            raise DataError(f"data set '{base.name}' has no task(s) {missing}; its tasks are {base.task_names}")
        self.base = base
        self.task_names = list(tasks)
        self.columns = torch.tensor([base.task_names.index(t) for t in tasks], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> Any:
        data = self.base[i]
        data.y = data.y[:, self.columns]
        return data

    def __getattr__(self, name: str) -> Any:
        if name in ("base", "columns", "task_names"):
            raise AttributeError(name)
        return getattr(self.base, name)

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    @property
    def labels(self) -> torch.Tensor:
        return self.base.labels[:, self.columns]

    def subset(self, indices: Any) -> "TaskSelection":
        return TaskSelection(self.base.subset(indices), self.task_names)


def select_tasks(dataset: Any, config: Any) -> Any:
    """``dataset``, or a view keeping only ``config.label_columns`` of a registered data set's
    tasks (for user files the label columns already are the tasks)."""
    if config.name and config.label_columns:
        return TaskSelection(dataset, config.label_columns)
    return dataset
