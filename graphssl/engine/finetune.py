"""Fine-tuning and linear probing: one loop for every task (:mod:`graphssl.tasks`).

Model selection rule, everywhere in graphssl (``SELECTION_RULE``): every epoch scores the
validation and the test split with that epoch's weights; the reported result is the epoch
with the best validation score (the first one on ties), and its test score. Only the
validation column ever chooses anything. Scoring both splits every epoch, for every task,
keeps the random stream of training independent of how validation goes (each scoring pass
draws once from the global generator), so a run's numbers depend only on its seed.

Splits (``finetune.split``): ``scaffold`` (deterministic Bemis-Murcko, pretrain-gnns), ``random``
(``split_fractions``, seeded by ``split_seed``) and ``matbench``: Matbench's 5-fold protocol,
where ``split_seed`` (0..4) picks the test fold and a seeded 10% of that fold's training part
is held out for model selection (``split_fractions`` is not used). Report the mean over the
five folds to compare with the Matbench leaderboard.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from graphssl.core.config import RunConfig, save_config
from graphssl.core.errors import CheckpointError, ConfigError, DataError, TrainingDiverged
from graphssl.data.dataset import load_dataset
from graphssl.data.splits import Split, make_split, subsample_fraction
from graphssl.engine.checkpoint import load_checkpoint, save_checkpoint
from graphssl.engine.pretrained import build_finetune_encoder, load_pretrained
from graphssl.engine.runtime import (
    epoch_generator,
    gradients_finite,
    nonfinite_tensors,
    prepare_cache,
    start_finetuning,
    validate,
)
from graphssl.nn.batch_norm import reestimate_batch_norm
from graphssl.tasks import Task, build_task, is_better

SELECTION_RULE = "test score at the epoch with the best validation score"
STATE_KIND = "finetune-state"  # last.pt of a fine-tuning run


@dataclass
class FinetuneResult:
    """Scores of the selected epoch. ``extra`` holds the task's secondary scores at that epoch
    (``valid_accuracy``, ``test_energy_mae``, ...) and facts (``units``, ``num_classes``); they
    read as attributes (``result.test_accuracy``) and sit at the top level of :meth:`to_dict`."""

    task: str
    metric: str
    best_epoch: int
    valid: float
    test: float
    train_size: int
    seconds: float
    selection: str = SELECTION_RULE
    history: list[dict[str, float]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        extra = self.__dict__.get("extra", {})  # not self.extra: that would recurse before __init__
        if name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__} has no attribute or score '{name}'")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {**{k: v for k, v in out.items() if k != "extra"}, **out["extra"]}


def _without_epochs(section: Any) -> Any:
    """A config section minus the epoch count (extending a finished run is a valid resume) and the
    options that do not change what is trained (the non-finite skip budget)."""
    if not isinstance(section, dict):
        return section
    return {k: v for k, v in section.items() if k not in ("epochs", "resume", "skip_nonfinite")}


def resume_finetuning(config: RunConfig, task: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                      device: torch.device, checkpoint: str | Path | None = None) -> dict[str, Any] | None:
    """Continue a fine-tuning run from ``output_dir/last.pt``, when it exists and resuming is on.

    Loads the model, optimiser and random state and returns the saved state (epoch, history,
    best epoch and weights); None when there is nothing to resume. A state that is not a
    fine-tuning state of ``task``, or was written with other model, fine-tuning or
    pretrained-checkpoint settings, is refused (more epochs is a valid resume).
    """
    ft = config.finetune
    last = Path(config.output_dir) / "last.pt"
    if not (ft.save_checkpoints and ft.resume and last.is_file()):
        return None
    state = load_checkpoint(last, map_location=device)
    if state.get("kind") != STATE_KIND:
        raise CheckpointError(f"'{last}' is a {state.get('kind')!r} checkpoint, not a {STATE_KIND!r} one to resume; "
                              "use another output_dir, or set finetune.resume=false")
    if state.get("task") != task:
        # states without a task were written by the three separate loops of earlier versions
        found = f"a {state['task']!r}" if state.get("task") else "an earlier graphssl version's"
        raise CheckpointError(f"'{last}' holds the state of {found} fine-tuning run, not of a {task!r} one; "
                              "use another output_dir, delete it, or set finetune.resume=false")
    saved, current = state.get("config", {}), config.to_dict()
    changed = [k for k in ("model", "finetune") if _without_epochs(saved.get(k)) != _without_epochs(current[k])]
    if changed or state.get("checkpoint") != (str(checkpoint) if checkpoint else None):
        raise CheckpointError(f"'{last}' belongs to a fine-tuning run with different settings "
                              f"({', '.join(changed) or 'pretrained checkpoint'}); use another output_dir, "
                              "delete it, or set finetune.resume=false")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    return state


def _parameter_groups(model: torch.nn.Module, encoder: torch.nn.Module, lr: float,
                      encoder_lr: float | None) -> list[dict[str, Any]]:
    """The trainable parameters: the encoder's at ``encoder_lr`` (when set), everything else at ``lr``."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if encoder_lr is None:
        return [{"params": trainable}]
    if encoder_lr <= 0:
        raise ConfigError(f"finetune.encoder_lr must be positive (or empty for finetune.lr), got {encoder_lr}")
    in_encoder = {id(p) for p in encoder.parameters()}
    groups = [{"params": [p for p in trainable if id(p) not in in_encoder], "lr": lr},
              {"params": [p for p in trainable if id(p) in in_encoder], "lr": encoder_lr}]
    return [g for g in groups if g["params"]]


class _Diverged(Exception):
    """A non-finite batch past the skip budget: ``finetune`` turns it into :class:`TrainingDiverged`."""

    def __init__(self, batch: int, batches: int, cause: str, broken: bool) -> None:
        super().__init__(cause)
        self.batch, self.batches, self.cause, self.broken = batch, batches, cause, broken


def _train_epoch(task: Task, model: torch.nn.Module, train: Any, optimizer: torch.optim.Optimizer,
                 config: RunConfig, epoch: int, device: torch.device, skips_left: int = 0) -> dict[str, float]:
    """One pass over the labelled training items; the mean of each loss term per item, and
    ``skipped_steps``: batches whose loss or gradients were NaN or infinite, skipped without an
    update (at most ``skips_left``; one more raises :class:`_Diverged`)."""
    ft = config.finetune
    model.train()
    if ft.mode == "linear":
        model.encoder.eval()  # frozen: batch-norm statistics and dropout stay as pretrained
    loader = DataLoader(train, batch_size=ft.batch_size, shuffle=True, generator=epoch_generator(ft.seed, epoch),
                        drop_last=task.drop_last and len(train) > ft.batch_size)
    sums: dict[str, float] = {}
    count, skipped = 0, 0
    for index, batch in enumerate(loader):
        batch = batch.to(device)
        # a skipped batch must leave no trace: its forward pass moves batch-norm statistics too
        kept_buffers = [b.detach().clone() for b in model.buffers()] if skips_left > 0 else None
        terms = task.loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        values = {key: float(value.detach()) for key, value in terms.items()}
        loss_ok = math.isfinite(values["loss"])
        if not (loss_ok and gradients_finite(model)):
            optimizer.zero_grad(set_to_none=True)  # no update from this batch; Adam's moments untouched
            if kept_buffers is not None:
                with torch.no_grad():
                    for buffer, value in zip(model.buffers(), kept_buffers):
                        buffer.copy_(value)
            skipped += 1
            broken = bool(nonfinite_tensors(model))
            if skipped > skips_left or broken:
                cause = f"the loss was {values['loss']}" if not loss_ok else "the gradients held NaN or infinite values"
                raise _Diverged(index + 1, len(loader), cause, broken)
            continue
        optimizer.step()
        n = task.count(batch)
        for key, value in values.items():
            sums[key] = sums.get(key, 0.0) + value * n
        count += n
    return {**{key: value / max(count, 1) for key, value in sums.items()}, "skipped_steps": skipped}


def _diverged_message(exc: _Diverged, config: RunConfig, epoch: int, last: Path) -> str:
    """One line: where fine-tuning diverged, the likely cause, and what was kept."""
    ft = config.finetune
    where = f"epoch {epoch + 1}, batch {exc.batch} of {exc.batches}" if exc.batch else f"the end of epoch {epoch + 1}"
    lr = f"finetune.lr={ft.lr:g}" + (f", finetune.encoder_lr={ft.encoder_lr:g}" if ft.encoder_lr else "")
    if exc.broken:
        advice = " (the weights are no longer finite, so skipping batches cannot help)"
    elif ft.skip_nonfinite:
        advice = f" ({ft.skip_nonfinite} such batches were skipped already, the most finetune.skip_nonfinite allows)"
    else:
        advice = ", or set finetune.skip_nonfinite=N to skip up to N isolated such batches"
    kept = (f"{last} keeps the state after epoch {epoch}" if ft.save_checkpoints and epoch and last.is_file()
            else "No checkpoint was written")
    return (f"fine-tuning diverged at {where}: {exc.cause}; the learning rate is likely too high ({lr}): lower "
            f"it{advice}. {kept}; no best.pt or result.json was written")


def _scores(task: Task, model: torch.nn.Module, split: str, data: Any, device: torch.device) -> dict[str, float]:
    """``{split: metric, f"{split}_{name}": secondary score}`` of one split."""
    scores = task.evaluate(model, data, device)
    return {split: scores[task.metric], **{f"{split}_{k}": scores[k] for k in task.secondary}}


def finetune(
    config: RunConfig,
    checkpoint: str | Path | None = None,
    dataset: Any | None = None,
    split: Split | None = None,
) -> FinetuneResult:
    """Fine-tune (``mode: full``) or linearly probe (``mode: linear``) an encoder on a task.

    The task follows the data set's task type (:data:`graphssl.tasks.TASKS`). ``checkpoint`` is a
    pretrained ``encoder.pt`` or ``zoo:NAME`` (default: ``finetune.pretrained``); without one the same backbone is trained from scratch.
    ``dataset`` and ``split`` default to ``finetune.task`` and ``finetune.split``. Writes
    ``result.json`` (and ``last.pt`` every epoch, ``best.pt`` at the end when
    ``finetune.save_checkpoints``) into ``output_dir``.
    """
    ft = config.finetune
    if checkpoint is None:
        checkpoint = ft.pretrained
    # everything checkable is checked before any work: names, ranges, folders, the checkpoint
    validate(config, "finetune", checkpoint=checkpoint, has_data=dataset is not None)
    pretrained = load_pretrained(checkpoint) if checkpoint is not None else None
    device, out = start_finetuning(config)
    if dataset is None:
        dataset = load_dataset(ft.task, prepare_cache(config), progress=config.progress)
    task = build_task(dataset, ft)
    split = split or make_split(dataset, ft)
    train_idx = subsample_fraction(split.train, ft.label_fraction, seed=ft.seed)
    train, valid, test = dataset.subset(train_idx), dataset.subset(split.valid), dataset.subset(split.test)
    if not (len(train) and len(valid) and len(test)):
        raise DataError(f"data set '{dataset.name}' has {len(dataset)} items: the {ft.split} split leaves "
                        f"{len(train)}/{len(valid)}/{len(test)} of them for train/valid/test, and each needs "
                        "at least one; use more data or other finetune.split_fractions")

    model_cfg = pretrained.model if pretrained else config.model
    model_cfg = dataclasses.replace(model_cfg, dropout=ft.dropout, pooling=ft.pooling or model_cfg.pooling)
    encoder = build_finetune_encoder(model_cfg, train, pretrained, ft.task.cutoff)
    task.prepare(train)
    model = task.setup(encoder, model_cfg.backbone).to(device)
    if ft.reestimate_batch_norm:
        reestimate_batch_norm(encoder, train, device)
    if ft.mode == "linear":
        for p in encoder.parameters():
            p.requires_grad_(False)
    optimizer = torch.optim.Adam(_parameter_groups(model, encoder, ft.lr, ft.encoder_lr), lr=ft.lr,
                                 weight_decay=ft.weight_decay)

    start_epoch, history, best_epoch, best_state = 0, [], 0, None
    last = out / "last.pt"
    state = resume_finetuning(config, task.name, model, optimizer, device, checkpoint)
    if state is not None:
        start_epoch, history = state["epoch"], list(state["history"])
        best_epoch, best_state = state["best_epoch"], state["best_model"]

    t0 = time.perf_counter()
    epochs = tqdm(range(start_epoch, ft.epochs), desc=f"finetune {dataset.name} ({task.name})",
                  disable=not config.progress, unit="epoch", leave=False)
    for epoch in epochs:
        skipped = sum(int(row.get("skipped_steps", 0)) for row in history)
        try:
            losses = _train_epoch(task, model, train, optimizer, config, epoch, device,
                                  skips_left=ft.skip_nonfinite - skipped)
            if nonfinite_tensors(model):  # finite losses, yet the last update overflowed the weights
                raise _Diverged(0, 0, "the weights hold NaN or infinite values although every loss was finite", True)
        except _Diverged as exc:
            epochs.close()
            raise TrainingDiverged(_diverged_message(exc, config, epoch, last)) from None
        row = {"epoch": epoch + 1, **losses, **_scores(task, model, "valid", valid, device),
               **_scores(task, model, "test", test, device)}
        history.append(row)
        if is_better(task.metric, row["valid"], history[best_epoch - 1]["valid"] if best_epoch else None):
            best_epoch, best_state = epoch + 1, copy.deepcopy(model.state_dict())
        epochs.set_postfix(valid=f"{row['valid']:.4f}", best=f"{history[best_epoch - 1]['valid']:.4f}@{best_epoch}"
                           if best_epoch else "none")
        if ft.save_checkpoints:
            save_checkpoint(last, {
                "kind": STATE_KIND, "task": task.name, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "epoch": epoch + 1, "history": history,
                "best_epoch": best_epoch, "best_model": best_state if best_state is not None else model.state_dict(),
                "rng": torch.get_rng_state(), "config": config.to_dict(),
                "checkpoint": str(checkpoint) if checkpoint else None,
            })

    best = history[best_epoch - 1] if best_epoch else {}
    secondary = [f"{s}_{k}" for s in ("valid", "test") for k in task.secondary]
    result = FinetuneResult(
        task=dataset.name, metric=task.metric, best_epoch=best_epoch, valid=best.get("valid", float("nan")),
        test=best.get("test", float("nan")), train_size=len(train), seconds=time.perf_counter() - t0,
        history=history, extra={**{k: best.get(k, float("nan")) for k in secondary}, **task.info()})
    if ft.save_checkpoints and best_state is not None:
        save_config(config, out / "config.yaml")
        save_checkpoint(out / "best.pt", {
            "kind": "finetuned-model", "model": best_state, "model_config": dataclasses.asdict(model_cfg),
            "task_names": task.task_names, "task_type": dataset.task_type, **task.checkpoint_state(),
            "result": result.to_dict(), "config": config.to_dict(),
        })
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=1))
    return result
