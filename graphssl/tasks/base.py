"""The fine-tuning task interface, and the registry that picks a task for a data set.

A task is what changes between fine-tuning problems; the loop
(:func:`graphssl.engine.finetune.finetune`) is the same for all of them. A task

- checks the options it cannot honour (:meth:`Task.check_options`, :meth:`Task.check_encoder`),
- learns what it needs once from the training split (:meth:`Task.prepare`: target
  standardisation, reference energies),
- builds the model around the encoder (:meth:`Task.build_model`: encoder plus head),
- turns a batch into weighted loss terms (:attr:`Task.outputs`, one :class:`Output` each; the
  loss is their weighted sum, schnetpack's "one task, several outputs"),
- scores a split (:meth:`Task.evaluate`: the selection metric first, then secondary scores).

Tasks register under the task types of the data sets they fit (``TASKS``), so a new task is one
module with a registered :class:`Task` subclass, plus its test.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from graphssl.core.config import FinetuneConfig
from graphssl.core.errors import ConfigError, DataError
from graphssl.core.registry import Registry
from graphssl.tasks.metrics import check_metric
from graphssl.tasks.noisy_nodes import noisy_nodes_head, noisy_nodes_loss

MODES = ("full", "linear", "lp-ft")  # fine-tune everything, probe a frozen encoder, or probe then fine-tune


@dataclass(frozen=True)
class Output:
    """One weighted term of a task's training loss.

    ``loss(model, batch, prediction)`` returns a scalar; ``prediction`` is what
    :meth:`Task.predict` returned for the batch. The per-epoch mean of a ``logged`` term is
    kept in the history under ``name`` (unweighted).
    """

    name: str
    weight: float
    loss: Callable[[nn.Module, Data, Any], Tensor]
    logged: bool = True


class Task(ABC):
    """A labelled fine-tuning problem on a data set; see the module docstring for the hooks.

    Args:
        dataset: the whole labelled data set (``task_type``, ``task_names``, ``metric``, ...).
        config: the fine-tuning options (weights of the loss terms, head size, dropout, ...).
    """

    name: ClassVar[str]  # stored in last.pt: the state of another task is never resumed
    modes: ClassVar[tuple[str, ...]] = MODES
    # May the loop drop the last, incomplete batch of an epoch? (Batch norm over one graph is
    # undefined; a per-node task normalises over nodes and can keep it.)
    drop_last: ClassVar[bool] = True
    secondary: tuple[str, ...] = ()  # scores evaluate() returns besides the metric

    def __init__(self, dataset: Any, config: FinetuneConfig) -> None:
        self.dataset = dataset
        self.config = config
        self.metric = check_metric(self.selection_metric(dataset))
        self.outputs: list[Output] = []
        if config.mode not in self.modes:
            raise ConfigError(f"finetune.mode={config.mode!r} is not supported by the {self.name} task; "
                              f"choose one of: {', '.join(self.modes)}")
        self.check_options()

    # ------------------------------------------------------------------ hooks

    def selection_metric(self, dataset: Any) -> str:
        """The metric that selects the epoch (a key of :data:`~graphssl.tasks.metrics.HIGHER_IS_BETTER`)."""
        return dataset.metric

    def check_options(self) -> None:
        """Raise :class:`ConfigError` for fine-tuning options this task cannot honour."""

    def check_encoder(self, encoder: nn.Module, backbone: str) -> None:
        """Raise :class:`ConfigError` when ``encoder`` (built from ``model.backbone``) does not fit."""

    def prepare(self, train: Any) -> None:
        """Learn what the task needs from the training split, once, before the model is built."""

    @abstractmethod
    def build_model(self, encoder: nn.Module) -> nn.Module:
        """The encoder plus this task's head, as a module with ``encoder`` and ``head`` attributes."""

    @abstractmethod
    def predict(self, model: nn.Module, batch: Data) -> Any:
        """The training forward pass; its result is handed to every output's loss."""

    @abstractmethod
    def evaluate(self, model: nn.Module, dataset: Any, device: torch.device) -> dict[str, float]:
        """Scores of ``dataset``: ``{metric: value, **secondary}``, in eval mode."""

    def count(self, batch: Data) -> int:
        """What per-epoch loss means average over: graphs here, faces for per-face tasks."""
        return int(batch.num_graphs)

    @property
    def task_names(self) -> list[str]:
        """Names of the predicted quantities, stored in best.pt."""
        return list(self.dataset.task_names)

    def checkpoint_state(self) -> dict[str, Any]:
        """What a user of best.pt needs besides the weights (target statistics, class names, ...)."""
        return {}

    def info(self) -> dict[str, Any]:
        """Facts about the task written into the result (units, number of classes, ...)."""
        return {}

    # ------------------------------------------------------------------ provided

    def setup(self, encoder: nn.Module, backbone: str) -> nn.Module:
        """Check the encoder, build the model and add the auxiliary outputs the options ask for (once).

        With ``finetune.noisy_nodes_weight > 0`` a noisy-nodes head becomes the model's
        ``noisy_nodes_head`` (optimised, saved and resumed with it) and its loss an output.
        """
        self.check_encoder(encoder, backbone)
        model = self.build_model(encoder)
        head = noisy_nodes_head(encoder, self.config)  # None unless noisy_nodes_weight > 0
        if head is not None:
            model.noisy_nodes_head = head
            sigma = self.config.noisy_nodes_sigma
            self.outputs.append(Output("noisy_nodes", self.config.noisy_nodes_weight,
                                       lambda m, batch, _: noisy_nodes_loss(m.encoder, m.noisy_nodes_head, batch, sigma)))
        return model

    def loss(self, model: nn.Module, batch: Data) -> dict[str, Tensor]:
        """``{"loss": weighted sum of the outputs, <name>: each logged output's term}``."""
        prediction = self.predict(model, batch)
        terms: dict[str, Tensor] = {}
        total: Tensor | None = None
        for output in self.outputs:  # in order: the main outputs, then auxiliary ones
            value = output.loss(model, batch, prediction)
            weighted = output.weight * value
            total = weighted if total is None else total + weighted
            if output.logged:
                terms[output.name] = value
        return {"loss": total, **terms}


# task type of a data set (classification, regression, energy_forces, segmentation) -> Task class
TASKS: Registry[type[Task]] = Registry("task", hint="Register a Task subclass under the data set's task type.")


def build_task(dataset: Any, config: FinetuneConfig) -> Task:
    """The task registered for ``dataset.task_type``, configured by ``config``."""
    if dataset.task_type is None:
        raise DataError(f"data set '{dataset.name}' has no labels; fine-tuning needs a labelled task")
    return TASKS.get(dataset.task_type)(dataset, config)
