"""graphssl objectives and fine-tuning tasks as Lightning modules, for training in a Lightning ``Trainer``.

::

    import lightning.pytorch as pl
    from graphssl.lightning import build_objective_module, objective_dataloader

    module = build_objective_module(ModelConfig(backbone="gine"), "graphmae", corpus)
    loader = objective_dataloader(corpus, module.objective, batch_size=256)
    pl.Trainer(max_epochs=10).fit(module, loader)
    module.export_encoder("runs/mine/encoder.pt", clean=corpus)   # graphssl finetune --checkpoint reads it

:class:`ObjectiveModule` drives an :class:`~graphssl.objectives.Objective` the way ``graphssl
pretrain`` does: Adam, ``set_epoch`` at every epoch start, ``after_step`` after every optimiser
step (EMA targets), the objective's ``metrics()`` at every epoch end, optional skipping of steps
whose loss or gradients are not finite, and an ``encoder.pt`` whose batch-norm statistics are
re-estimated on clean graphs. :class:`TaskModule` trains a :class:`~graphssl.tasks.Task` with its
loss and scores validation and test splits with the task's own metric.

graphssl's own loops stay the default and do what these modules cannot: a killed pretraining run
resumes exactly (same batches, same random streams, mid-epoch), and its global batches are the same
whatever the number of processes (``StepSampler``), so a run on 1 or 8 devices sees the same data
in the same steps. Under Lightning the batches follow the ``DataLoader`` and the ``Trainer``'s
samplers, and resuming follows Lightning's checkpoints.

Lightning is optional: ``pip install 'graphssl-pretrain[lightning]'``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
import warnings
from pathlib import Path
from typing import Any

try:  # the extra is optional; say how to get it instead of a bare ModuleNotFoundError
    import lightning.pytorch as pl
except ImportError as exc:
    raise ImportError(f"{__name__} needs Lightning: pip install 'graphssl-pretrain[lightning]'") from exc
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset
from torch_geometric.loader import DataLoader

from graphssl.core.config import (
    DataConfig,
    FinetuneConfig,
    ModelConfig,
    ObjectiveConfig,
    PretrainConfig,
    RunConfig,
    check_number,
)
from graphssl.core.errors import ConfigError, DataError, TrainingDiverged
from graphssl.data.dataset import PrecomputedDataset
from graphssl.engine.checkpoint import save_checkpoint
from graphssl.engine.finetune import make_optimizer
from graphssl.engine.pretrained import ENCODER_FORMAT, build_finetune_encoder, load_pretrained
from graphssl.engine.runtime import gradients_finite, nonfinite_tensors
from graphssl.nn import build_encoder, degree_histogram, is_geometric
from graphssl.nn.batch_norm import batch_norms, reestimate_batch_norm
from graphssl.objectives import OBJECTIVES, build_objective
from graphssl.tasks import HIGHER_IS_BETTER, Task

__all__ = ["ObjectiveModule", "TaskModule", "build_objective_module", "finetune_encoder", "objective_dataloader"]


class _LazyTransform(Dataset):
    """Applies a per-graph transform on access, for data sets too large to hold transformed."""

    def __init__(self, dataset: Any, transform: Any) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        return self.transform(self.dataset[i])


def objective_dataloader(dataset: Any, objective: nn.Module, batch_size: int, *, shuffle: bool = True,
                         precompute: bool = True, **loader_options: Any) -> DataLoader:
    """A PyG ``DataLoader`` over ``dataset`` with ``objective.transform`` applied to every graph.

    The transform is deterministic per graph (Hi-GMAE's coarsening), so it runs once over the
    whole data set as ``graphssl pretrain`` does (``precompute=False``: on access instead, for
    data sets too large to hold twice in memory). Other keywords go to the ``DataLoader``.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if len(dataset) == 0:
        raise DataError("objective_dataloader got an empty data set; pretraining needs at least one graph")
    transform = getattr(objective, "transform", None)
    if transform is not None:
        dataset = PrecomputedDataset(transform.many(dataset), dataset) if precompute else \
            _LazyTransform(dataset, transform)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, **loader_options)


def _attached_trainer(module: pl.LightningModule) -> pl.Trainer | None:
    """The module's trainer, or None outside a ``Trainer`` (Lightning raises on ``module.trainer`` then)."""
    try:
        return module.trainer
    except RuntimeError:
        return None


class _NonFiniteGuard:
    """Skips up to ``allowed`` steps whose loss or gradients are NaN or infinite, leaving no trace
    of them (no update, batch-norm statistics restored), then stops with :class:`TrainingDiverged`,
    as graphssl's loops do with ``skip_nonfinite``."""

    def __init__(self, allowed: int, option: str, what: str) -> None:
        if not isinstance(allowed, int) or isinstance(allowed, bool) or allowed < 0:
            raise ConfigError(f"{option} must be a non-negative integer, got {allowed!r}")
        self.allowed, self.option, self.what = allowed, option, what
        self.skipped = 0
        self.kept: list[Tensor] | None = None

    def keep(self, module: nn.Module) -> None:
        # a copy per step only when skipping is allowed: otherwise a bad step stops the run anyway
        self.kept = [b.detach().clone() for b in module.buffers()] if self.allowed else None

    @torch.no_grad()
    def skip(self, module: nn.Module, cause: str, step: int, lr: float) -> None:
        if self.kept is not None:
            for buffer, value in zip(module.buffers(), self.kept):
                buffer.copy_(value)
        self.skipped += 1
        broken = bool(nonfinite_tensors(module))
        if self.skipped > self.allowed or broken:
            if broken:
                advice = " (the weights are no longer finite, so skipping steps cannot help)"
            elif self.allowed:
                advice = (f" ({self.allowed} such steps were skipped already, the most {self.option}={self.allowed} "
                          "allows)")
            else:
                advice = f", or set {self.option}=N to skip up to N isolated such steps"
            raise TrainingDiverged(f"{self.what} diverged at step {step + 1}: {cause}; the learning rate is likely too "
                                   f"high (lr={lr:g}): lower it{advice}")


class ObjectiveModule(pl.LightningModule):
    """A graphssl objective as a ``LightningModule``: ``training_step`` is ``objective(batch)``.

    Args:
        objective: an :class:`~graphssl.objectives.Objective` (or any module mapping a batch to a
            scalar loss; its hooks ``set_epoch``, ``after_step``, ``metrics``, ``export_state`` are
            called when it has them).
        model: the model config the encoder was built from; :meth:`export_encoder` stores it so
            that ``graphssl finetune`` can rebuild the encoder (only needed for exporting).
        lr, weight_decay: Adam's, as in ``graphssl pretrain``.
        total_epochs: the length of the objective's schedules (EMA rates, recovery rates);
            default: the ``Trainer``'s ``max_epochs``, or the epochs ``max_steps`` takes.
        skip_nonfinite: steps with a NaN or infinite loss or gradient that are skipped (no update)
            before the run stops with :class:`TrainingDiverged`; 0 stops at the first. Skipping
            needs one process and ``accumulate_grad_batches=1`` (Lightning cannot skip a step on
            one process of several).
        objective_name, objective_options: what ``encoder.pt`` records as the objective (default:
            the name the objective's class is registered under, and no options).
        data: the data config of the corpus, recorded in ``encoder.pt`` (``graphssl embed`` reads
            the input domain from it; without it the domain is read from the weights).
        deg: PNA's degree histogram, stored with the encoder.

    Logged: ``train_loss`` (per step and per epoch, weighted by graphs) and ``train_<name>`` for
    each of the objective's ``metrics()`` at the end of every epoch. :attr:`history` holds the
    per-epoch entries in the layout of ``graphssl pretrain``'s ``pretrain_history.json``.
    """

    def __init__(self, objective: nn.Module, *, model: ModelConfig | None = None, lr: float = 1e-3,
                 weight_decay: float = 0.0, total_epochs: int | None = None, skip_nonfinite: int = 0,
                 objective_name: str | None = None, objective_options: dict[str, Any] | None = None,
                 data: DataConfig | None = None, deg: Tensor | None = None) -> None:
        super().__init__()
        if not isinstance(objective, nn.Module) or not isinstance(getattr(objective, "encoder", None), nn.Module):
            raise ConfigError(f"ObjectiveModule needs an objective module with an 'encoder' submodule (a "
                              f"graphssl.Objective), got {type(objective).__name__}")
        check_number(lr, "lr", 0.0, low_open=True)
        check_number(weight_decay, "weight_decay", 0.0)
        if total_epochs is not None and (not isinstance(total_epochs, int) or total_epochs < 1):
            raise ConfigError(f"total_epochs must be a positive integer or None, got {total_epochs!r}")
        if model is not None and not isinstance(model, ModelConfig):
            raise ConfigError(f"model must be the ModelConfig the encoder was built from, got {type(model).__name__}")
        self.objective = objective
        self.model_config = model
        self.lr, self.weight_decay, self.total_epochs = lr, weight_decay, total_epochs
        self.objective_name = objective_name
        self.objective_options = dict(objective_options or {})
        self.data_config = data
        self.deg = deg
        self.guard = _NonFiniteGuard(skip_nonfinite, "skip_nonfinite", "pretraining")
        self.history: list[dict[str, float]] = []
        self._stepped = False  # whether the current step's loss was finite (after_step runs only then)
        self._epoch = torch.zeros(3, dtype=torch.float64)  # loss x graphs, graphs, seconds
        self._epoch_skipped = 0
        self._started = 0.0

    @property
    def encoder(self) -> nn.Module:
        """The encoder being pretrained."""
        return self.objective.encoder

    def forward(self, batch: Any) -> Tensor:
        return self.objective(batch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam over every parameter of the objective, as ``graphssl pretrain``."""
        return torch.optim.Adam(self.objective.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def _schedule_length(self) -> int:
        if self.total_epochs is not None:
            return self.total_epochs
        trainer = self.trainer
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            return int(trainer.max_epochs)
        batches = trainer.num_training_batches
        if trainer.max_steps and trainer.max_steps > 0 and math.isfinite(batches) and batches > 0:
            per_epoch = max(int(batches) // max(trainer.accumulate_grad_batches, 1), 1)
            return max(math.ceil(trainer.max_steps / per_epoch), 1)
        raise ConfigError("the objective's schedules need the number of epochs: give the Trainer max_epochs or "
                          "max_steps, or ObjectiveModule(total_epochs=N)")

    def on_fit_start(self) -> None:
        if self.guard.allowed and (self.trainer.world_size > 1 or self.trainer.accumulate_grad_batches > 1):
            raise ConfigError("skip_nonfinite needs one process and accumulate_grad_batches=1 (a skipped step "
                              "cannot be skipped on every process or micro-batch alike); set skip_nonfinite=0")

    def on_train_epoch_start(self) -> None:
        set_epoch = getattr(self.objective, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(self.current_epoch, self._schedule_length())
        self._epoch.zero_()
        self._epoch_skipped = 0

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._epoch[2] += time.perf_counter() - self._started  # forward, backward and the optimiser step

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        """The objective's loss on ``batch``; None (no update) for a skipped non-finite loss."""
        self.guard.keep(self.objective)
        loss = self.objective(batch)
        graphs = int(getattr(batch, "num_graphs", 1))
        value = float(loss.detach())
        if not math.isfinite(value):
            self._stepped = False
            self._epoch_skipped += 1
            self.guard.skip(self.objective, f"the loss was {value}", self.global_step, self.lr)
            return None
        self._stepped = True
        self._epoch[0] += value * graphs
        self._epoch[1] += graphs
        self.log("train_loss", loss.detach(), on_step=True, on_epoch=True, prog_bar=True, batch_size=graphs)
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self._stepped and not gradients_finite(self.objective):
            optimizer.zero_grad(set_to_none=True)  # Adam skips parameters without a gradient: no update
            self._stepped = False
            self._epoch_skipped += 1
            self.guard.skip(self.objective, "the gradients held NaN or infinite values", self.global_step, self.lr)

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        # Lightning calls this once per optimiser step, after the last accumulated micro-batch,
        # which is when an EMA target must move (not after every batch)
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        after_step = getattr(self.objective, "after_step", None)
        if self._stepped and callable(after_step):
            after_step()

    def on_train_epoch_end(self) -> None:
        totals = self.trainer.strategy.reduce(self._epoch.clone().to(self.device), reduce_op="sum")
        loss_sum, graphs, seconds = (float(v) for v in totals.cpu())
        metrics_of = getattr(self.objective, "metrics", None)
        metrics = dict(metrics_of()) if callable(metrics_of) else {}
        for name, value in metrics.items():
            self.log(f"train_{name}", float(value), on_epoch=True, sync_dist=True)
        self.history.append({"epoch": self.current_epoch + 1, "loss": loss_sum / max(graphs, 1.0),
                             "graphs_per_s": graphs / max(seconds, 1e-9), "seconds": seconds,
                             "steps": self.global_step, "skipped_steps": self._epoch_skipped, **metrics})

    def _name(self) -> str:
        if self.objective_name:
            return self.objective_name
        for name, cls in OBJECTIVES.items():
            if type(self.objective) is cls:
                return name
        raise ConfigError(f"{type(self.objective).__name__} is not a registered objective, so encoder.pt cannot "
                          "name it: register it (graphssl.register_objective) or pass objective_name=")

    def export_encoder(self, path: str | Path, clean: Any = None, clean_graphs: int = 10_000) -> Path:
        """Write the encoder as the ``encoder.pt`` of ``graphssl pretrain`` (read by ``graphssl finetune
        --checkpoint``, :func:`graphssl.load_pretrained` and ``graphssl embed``), atomically.

        With ``clean`` (the unmasked, untransformed graphs), the batch-norm running statistics are
        re-estimated on up to ``clean_graphs`` of them first, on a copy (the training inputs were
        masked or augmented and misdescribe real graphs); without it they are kept, with a
        warning when the encoder has batch norms. Under several processes only the first writes.
        """
        if self.model_config is None:
            raise ConfigError("export_encoder needs the encoder's model config: pass ObjectiveModule(model=...) "
                              "the ModelConfig the encoder was built from (build_objective_module does)")
        name = self._name()
        trainer = _attached_trainer(self)
        path = Path(path).expanduser()
        if trainer is not None and not trainer.is_global_zero:
            trainer.strategy.barrier()  # the first process writes the file
            return path
        encoder = self.encoder
        exported, cleaned = encoder, 0
        if batch_norms(encoder):
            if clean is not None and clean_graphs:
                if len(clean) == 0:
                    raise DataError("export_encoder got an empty clean data set to re-estimate batch norm on")
                exported = copy.deepcopy(encoder)
                cleaned = min(int(clean_graphs), len(clean))
                reestimate_batch_norm(exported, Subset(clean, range(cleaned)), self.device)
            else:
                warnings.warn("the encoder's batch-norm statistics come from the training inputs (masked or augmented "
                              "graphs); pass export_encoder(clean=<the unmasked data set>) to re-estimate them",
                              UserWarning, stacklevel=2)
        bad = nonfinite_tensors(exported)
        if bad:
            raise TrainingDiverged(f"the encoder holds NaN or infinite values ({', '.join(bad[:3])}); no encoder.pt "
                                   f"was written: the learning rate is likely too high (lr={self.lr:g})")
        export_state = getattr(self.objective, "export_state", None)
        batch_size = getattr(getattr(trainer, "train_dataloader", None), "batch_size", None) if trainer else None
        config = RunConfig(data=self.data_config or DataConfig(), model=self.model_config,
                           objective=ObjectiveConfig(name=name, options=dict(self.objective_options)),
                           pretrain=PretrainConfig(epochs=max(len(self.history), 1), lr=self.lr,
                                                   weight_decay=self.weight_decay,
                                                   batch_size=batch_size or PretrainConfig().batch_size))
        payload: dict[str, Any] = {
            "kind": "pretrained-encoder",
            "encoder_format": ENCODER_FORMAT,
            "encoder": {k: v.detach().cpu() for k, v in exported.state_dict().items()},
            "batch_norm_graphs": cleaned,
            "objective_state": dict(export_state()) if callable(export_state) else {},
            "model": dataclasses.asdict(self.model_config),
            "objective_name": name,
            "config": config.to_dict(),
            "history": list(self.history),
            "processes": trainer.world_size if trainer is not None else 1,
            "trainer": "lightning",
        }
        if self.deg is not None:
            payload["deg"] = self.deg.cpu()
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(path, payload)
        if trainer is not None and trainer.world_size > 1:
            trainer.strategy.barrier()
        return path


def build_objective_module(model: ModelConfig, objective: str | ObjectiveConfig, dataset: Any,
                           options: dict[str, Any] | None = None, *, cutoff: float = 5.0,
                           **module_options: Any) -> ObjectiveModule:
    """The encoder ``model`` describes, sized for ``dataset`` (its ``feature_spec``), inside the named
    objective, as an :class:`ObjectiveModule` that can export it; ``module_options`` (``lr``,
    ``weight_decay``, ``data``, ...) go to the module. ``cutoff``: geometric backbones' radius."""
    if isinstance(objective, ObjectiveConfig):
        name, options = objective.name, {**objective.options, **(options or {})}
    else:
        name, options = str(objective), dict(options or {})
    if is_geometric(model.backbone):
        encoder, deg = build_encoder(model, cutoff=cutoff), None
    else:
        deg = degree_histogram(dataset) if model.backbone.lower() == "pna" else None
        encoder = build_encoder(model, dataset.feature_spec, deg=deg)
    built = build_objective(name, encoder, options)
    return ObjectiveModule(built, model=model, objective_name=name, objective_options=options, deg=deg,
                           **module_options)


def finetune_encoder(checkpoint: str | Path | None, train: Any, config: FinetuneConfig,
                     model: ModelConfig | None = None) -> nn.Module:
    """The encoder to fine-tune, built as ``graphssl finetune`` builds it: the pretrained
    ``encoder.pt`` or ``zoo:NAME`` (``checkpoint``) with its stored model config, or a fresh
    encoder of ``model`` when ``checkpoint`` is None (training from scratch); dropout and pooling
    come from ``config`` (``finetune.dropout``, ``finetune.pooling``)."""
    pretrained = load_pretrained(checkpoint) if checkpoint is not None else None
    if pretrained is None and model is None:
        raise ConfigError("finetune_encoder needs a pretrained checkpoint or, to train from scratch, model=ModelConfig")
    model_cfg = pretrained.model if pretrained is not None else model
    model_cfg = dataclasses.replace(model_cfg, dropout=config.dropout, pooling=config.pooling or model_cfg.pooling)
    return build_finetune_encoder(model_cfg, train, pretrained, config.task.cutoff)


class TaskModule(pl.LightningModule):
    """A graphssl fine-tuning task as a ``LightningModule``: the task's loss, metric and optimiser.

    Args:
        task: a :class:`~graphssl.tasks.Task` (e.g. ``graphssl.build_task(dataset, FinetuneConfig(...))``);
            its config gives the optimiser (``lr``, ``encoder_lr``, ``layer_decay``, ``weight_decay``:
            the same Adam groups as ``graphssl finetune``) and ``mode`` (``full`` or ``linear``).
        encoder: the encoder to fine-tune (:func:`finetune_encoder` builds it from an ``encoder.pt``).
        train: the training split; the task learns its statistics from it (``task.prepare``),
            and batch norm is re-estimated on it when the task's config asks for it.
        backbone: the backbone's name, for the task's encoder check (default: the class name).

    Validation and test dataloaders must iterate graphssl data sets (``dataset.subset(...)``):
    the metric is the task's own ``evaluate`` over the whole split at the end of the epoch
    (ROC-AUC or mIoU are not means over batches). Logged: ``train_loss`` (and the task's other
    terms), ``val_loss``, ``val_metric`` and ``val_<metric>`` (e.g. ``val_rmse``), and the same
    for ``test``. Monitor :attr:`monitor` in :attr:`monitor_mode` for graphssl's selection rule
    (the test score of the best validation epoch)::

        best = ModelCheckpoint(monitor=module.monitor, mode=module.monitor_mode)
        trainer = pl.Trainer(max_epochs=100, callbacks=[best])
        trainer.fit(module, train_loader, valid_loader)
        trainer.test(module, test_loader, ckpt_path="best")
    """

    monitor = "val_metric"

    def __init__(self, task: Task, encoder: nn.Module, train: Any, *, backbone: str | None = None) -> None:
        super().__init__()
        if not isinstance(task, Task):
            raise ConfigError(f"TaskModule needs a graphssl Task (graphssl.build_task), got {type(task).__name__}")
        ft = task.config
        if ft.mode not in ("full", "linear"):
            raise ConfigError(f"TaskModule trains finetune.mode 'full' or 'linear', got {ft.mode!r}; lp-ft runs in "
                              "graphssl's own loop (graphssl.finetune)")
        if ft.freeze_layers or ft.unfreeze_every:
            raise ConfigError("finetune.freeze_layers and unfreeze_every (staged unfreezing) run in graphssl's own "
                              "loop (graphssl.finetune); leave them unset for TaskModule")
        if train is None or len(train) == 0:
            raise DataError("TaskModule needs the training split (at least one labelled item) to prepare the task")
        self.task = task
        self.train_split = train
        task.prepare(train)
        name = backbone or type(getattr(encoder, "backbone", encoder)).__name__.lower()
        self.model = task.setup(encoder, name)
        if ft.mode == "linear":
            for p in self.model.encoder.parameters():
                p.requires_grad_(False)

    @property
    def metric(self) -> str:
        """The task's selection metric (``rmse``, ``mae``, ``roc_auc``, ``miou``, ...)."""
        return self.task.metric

    @property
    def monitor_mode(self) -> str:
        """``max`` when a higher metric is better, else ``min`` (for ModelCheckpoint and EarlyStopping)."""
        return "max" if HIGHER_IS_BETTER[self.task.metric] else "min"

    def forward(self, batch: Any) -> Any:
        return self.model(batch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam in ``graphssl finetune``'s parameter groups (``encoder_lr``, ``layer_decay``)."""
        return make_optimizer(self.model, self.model.encoder, self.task.config)

    def on_fit_start(self) -> None:
        if self.task.config.reestimate_batch_norm:
            reestimate_batch_norm(self.model.encoder, self.train_split, self.device)

    def on_train_epoch_start(self) -> None:
        if self.task.config.mode == "linear":
            self.model.encoder.eval()  # frozen: batch-norm statistics and dropout stay as they are

    def _terms(self, batch: Any, stage: str) -> Tensor:
        terms = self.task.loss(self.model, batch)
        n = self.task.count(batch)
        for key, value in terms.items():
            name = f"{stage}_loss" if key == "loss" else f"{stage}_{key}"
            self.log(name, value.detach(), on_step=stage == "train", on_epoch=True, prog_bar=key == "loss",
                     batch_size=n, sync_dist=stage != "train")
        return terms["loss"]

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        """The task's weighted loss on ``batch``; a NaN or infinite loss stops with :class:`TrainingDiverged`."""
        loss = self._terms(batch, "train")
        if not torch.isfinite(loss.detach()):
            raise TrainingDiverged(f"fine-tuning diverged at step {self.global_step + 1}: the loss was "
                                   f"{float(loss)}; the learning rate is likely too high "
                                   f"(finetune.lr={self.task.config.lr:g}): lower it")
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._terms(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._terms(batch, "test")

    def _score(self, loaders: Any, stage: str) -> None:
        loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
        if len(loaders) != 1:
            raise ConfigError(f"TaskModule scores one {stage} split, got {len(loaders)} {stage} dataloaders")
        dataset = getattr(loaders[0], "dataset", None)
        try:
            scores = self.task.evaluate(self.model, dataset, self.device)
        except (AttributeError, TypeError) as exc:
            raise DataError(f"the {stage} dataloader must iterate a graphssl data set (dataset.subset(...)) so that "
                            f"the task can score the whole split; it iterates a {type(dataset).__name__} ({exc})") \
                from None
        self.log(f"{stage}_metric", float(scores[self.task.metric]))
        for key, value in scores.items():
            self.log(f"{stage}_{key}", float(value))

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._score(self.trainer.val_dataloaders, "val")

    def on_test_epoch_end(self) -> None:
        self._score(self.trainer.test_dataloaders, "test")
