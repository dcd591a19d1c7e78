"""Training curves of a run folder: ``pretrain_curves.png`` and ``finetune_curves.png``.

Drawn from the histories the loops already keep (``pretrain_history.json``; the ``history`` of
``result.json``) with matplotlib's Agg canvas and no pyplot state, so drawing never touches a
user's interactive backend. Files are written atomically. A curve is a by-product: when one
cannot be drawn (a broken history, a matplotlib failure) the run still succeeds and a
:class:`RuntimeWarning` says why.

:class:`TrainingScore` gives the fine-tuning history its ``train`` column: the task's metric over
the predictions the training forward passes already made during the epoch (no extra pass).
Those predictions come from the model in training mode (dropout on) while its weights move, so
the column is a running training score, not the score of the epoch's final weights.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from graphssl.core.io import atomic_write_bytes
from graphssl.tasks import Task
from graphssl.tasks import metrics as task_metrics
from graphssl.tasks.energy_forces import EnergyForcesTask
from graphssl.tasks.property import PropertyTask
from graphssl.tasks.segmentation import SegmentationTask

PRETRAIN_CURVES = "pretrain_curves.png"
FINETUNE_CURVES = "finetune_curves.png"

# keys of a pretraining history entry that are bookkeeping, not something the objective reports
_PRETRAIN_BOOKKEEPING = {"epoch", "loss", "graphs_per_s", "seconds", "steps", "skipped_steps"}
# keys of a fine-tuning history entry that are not training-loss terms
_FINETUNE_NOT_LOSS = {"epoch", "skipped_steps", "train"}


# ---------------------------------------------------------------------------------------- scores


class TrainingScore:
    """The task's selection metric over one epoch's training predictions.

    Construct it at the start of an epoch: it hooks the model's forward pass and keeps the
    output of the last training-mode call; :meth:`keep` (after the optimiser step) adds that
    batch to the epoch, so batches skipped for non-finite values do not count; :meth:`result`
    removes the hook and returns ``{"train": score}`` (``{}`` for a task it cannot score).
    """

    def __init__(self, task: Task, model: nn.Module) -> None:
        self.task = task
        self._pending: tuple[Any, Any] | None = None
        self._pred: list[np.ndarray] = []
        self._true: list[np.ndarray] = []
        supported = isinstance(task, (PropertyTask, SegmentationTask, EnergyForcesTask))
        self._handle = model.register_forward_hook(self._hook) if supported else None

    def _hook(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if module.training and args:  # evaluation passes run in eval mode and are not training scores
            self._pending = (args[0], output)

    def keep(self) -> None:
        """Count the batch of the last training forward pass towards the epoch's score."""
        if self._pending is None:
            return
        batch, output = self._pending
        self._pending = None
        if isinstance(self.task, EnergyForcesTask):
            pred, true = output["forces"], batch.forces
        elif isinstance(self.task, SegmentationTask):
            pred, true = output.argmax(-1), batch.y
        else:
            pred, true = output, batch.y.view(output.shape)
        self._pred.append(pred.detach().float().cpu().numpy())
        self._true.append(true.detach().float().cpu().numpy())

    def result(self) -> dict[str, float]:
        """``{"train": metric}`` of the kept batches (NaN without any), ``{}`` when unsupported."""
        if self._handle is None:
            return {}
        self._handle.remove()
        self._handle = None
        if not self._pred:
            return {"train": float("nan")}
        pred = np.concatenate(self._pred).astype(np.float64)
        true = np.concatenate(self._true).astype(np.float64)
        task = self.task
        if isinstance(task, EnergyForcesTask):
            return {"train": task_metrics.force_mae(true, pred)}
        if isinstance(task, SegmentationTask):
            return {"train": task_metrics.mean_iou(true.astype(np.int64), pred.astype(np.int64))}
        if not task.classification:
            pred = pred * task.std + task.mean  # the loss sees standardised targets; the metric, real units
        return {"train": task_metrics.compute_metric(task.metric, true, pred)}


# ---------------------------------------------------------------------------------------- figures


def _figure(panels: int) -> tuple[Any, list[Any]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2 * panels, 3.8))
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, panels, i + 1) for i in range(panels)]


def _save(fig: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return atomic_write_bytes(buffer.getvalue(), path)


def _series(history: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([float(h[key]) if h.get(key) is not None else np.nan for h in history], dtype=float)


def _check_history(history: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(history, list) or not history or not all(isinstance(h, dict) for h in history):
        raise ValueError(f"{where} must be a non-empty list of per-epoch mappings, got {type(history).__name__} "
                         f"{str(history)[:80]}")
    missing = [i for i, h in enumerate(history) if "loss" not in h]
    if missing:
        raise ValueError(f"{where} entries {missing[:5]} have no 'loss'")
    return history


def pretrain_figure(history: list[dict[str, Any]]) -> Any:
    """The pretraining loss per epoch against optimiser steps (the epoch's last step), and the
    objective's extra numbers (``embedding_std``, ...) on a second panel when it reports any."""
    history = _check_history(history, "pretraining history")
    extras = [k for k in dict.fromkeys(k for h in history for k in h) if k not in _PRETRAIN_BOOKKEEPING
              and all(isinstance(h.get(k), (int, float)) or h.get(k) is None for h in history)]
    fig, axes = _figure(2 if extras else 1)
    has_steps = all(isinstance(h.get("steps"), (int, float)) for h in history)
    x = _series(history, "steps") if has_steps else _series(history, "epoch")
    xlabel = "optimiser steps (end of each epoch)" if has_steps else "epoch"
    axes[0].plot(x, _series(history, "loss"), marker="o", label="training loss (mean over the epoch)")
    axes[0].set_ylabel("pretraining loss")
    axes[0].set_title("pretraining loss per epoch", fontsize=10)
    if extras:
        for key in extras:
            axes[1].plot(x, _series(history, key), marker="o", label=key)
        axes[1].set_title("numbers the objective reports (mean over the epoch)", fontsize=10)
    for ax in axes:
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def finetune_figure(history: list[dict[str, Any]], best_epoch: int, metric: str) -> Any:
    """Training loss per epoch (with any logged loss terms), and the training and validation
    ``metric`` per epoch with the selected (best validation) epoch marked."""
    history = _check_history(history, "fine-tuning history")
    arrow = "higher is better" if task_metrics.HIGHER_IS_BETTER[task_metrics.check_metric(metric)] else "lower is better"
    epochs = _series(history, "epoch")
    fig, (loss_ax, metric_ax) = _figure(2)
    loss_ax.plot(epochs, _series(history, "loss"), marker="o", label="loss (weighted sum)")
    terms = [k for k in dict.fromkeys(k for h in history for k in h) if k not in _FINETUNE_NOT_LOSS | {"loss"}
             and not k.startswith(("valid", "test")) and isinstance(history[0].get(k), (int, float))]
    for key in terms:
        loss_ax.plot(epochs, _series(history, key), marker=".", linestyle="--", label=key)
    loss_ax.set_ylabel("training loss (mean per item)")
    loss_ax.set_title("fine-tuning loss per epoch", fontsize=10)
    if any("train" in h for h in history):
        metric_ax.plot(epochs, _series(history, "train"), marker="o",
                       label="training (running, dropout on)")
    valid = _series(history, "valid")
    metric_ax.plot(epochs, valid, marker="o", label="validation")
    if best_epoch and 1 <= best_epoch <= len(history):
        metric_ax.axvline(best_epoch, color="grey", linestyle=":", linewidth=1.2)
        metric_ax.scatter([best_epoch], [valid[best_epoch - 1]], s=90, facecolors="none", edgecolors="black",
                          zorder=3, label=f"selected: epoch {best_epoch} (best validation)")
    metric_ax.set_ylabel(f"{metric} ({arrow})")
    metric_ax.set_title(f"{metric} per epoch", fontsize=10)
    for ax in (loss_ax, metric_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        if len(epochs) and all(math.isfinite(e) for e in epochs) and len(epochs) <= 30:
            ax.set_xticks(epochs)
    fig.tight_layout()
    return fig


def _draw(make: Any, path: Path) -> Path | None:
    try:
        return _save(make(), path)
    except Exception as exc:  # a picture must never fail the run that produced the numbers
        warnings.warn(f"training curves not drawn to {path}: {type(exc).__name__}: {exc}", RuntimeWarning,
                      stacklevel=3)
        return None


def write_pretrain_curves(history: list[dict[str, Any]], folder: str | Path) -> Path | None:
    """Draw ``folder/pretrain_curves.png``; warn and return None when it cannot be drawn."""
    return _draw(lambda: pretrain_figure(history), Path(folder) / PRETRAIN_CURVES)


def write_finetune_curves(history: list[dict[str, Any]], best_epoch: int, metric: str,
                          folder: str | Path) -> Path | None:
    """Draw ``folder/finetune_curves.png``; warn and return None when it cannot be drawn."""
    return _draw(lambda: finetune_figure(history, best_epoch, metric), Path(folder) / FINETUNE_CURVES)

