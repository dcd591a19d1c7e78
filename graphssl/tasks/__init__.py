"""Fine-tuning tasks (property prediction, energies and forces, per-face segmentation) and metrics.

Importing the package registers every task in :data:`TASKS` under the task types it serves.
"""

from graphssl.tasks.base import MODES, TASKS, Output, Task, build_task
from graphssl.tasks.energy_forces import (
    EnergyForceModel,
    EnergyForcesTask,
    fit_reference_energies,
)
from graphssl.tasks.metrics import HIGHER_IS_BETTER, compute_metric, is_better
from graphssl.tasks.noisy_nodes import noisy_nodes_batch, noisy_nodes_loss
from graphssl.tasks.property import PropertyTask
from graphssl.tasks.segmentation import SegmentationModel, SegmentationTask

__all__ = [
    "HIGHER_IS_BETTER",
    "MODES",
    "TASKS",
    "EnergyForceModel",
    "EnergyForcesTask",
    "Output",
    "PropertyTask",
    "SegmentationModel",
    "SegmentationTask",
    "Task",
    "build_task",
    "compute_metric",
    "fit_reference_energies",
    "is_better",
    "noisy_nodes_batch",
    "noisy_nodes_loss",
]
