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

from graphssl.core.config import RunConfig, same_settings, save_config
from graphssl.core.errors import CheckpointError, ConfigError, DataError, TrainingDiverged
from graphssl.data.dataset import load_dataset
from graphssl.brep.draw import write_test_pictures
from graphssl.data.splits import Split, check_parts_scorable, make_split, subsample_fraction
from graphssl.engine.checkpoint import load_checkpoint, save_checkpoint
from graphssl.engine.curves import TrainingScore, write_finetune_curves
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
    saved, current, default = state.get("config", {}), config.to_dict(), RunConfig().to_dict()
    # options added since the state was written count as equal at their defaults; build-only ones not at all
    changed = [k for k in ("model", "finetune")
               if not same_settings(_without_epochs(saved.get(k)), _without_epochs(current[k]),
                                    _without_epochs(default[k]))]
    if changed or state.get("checkpoint") != (str(checkpoint) if checkpoint else None):
        raise CheckpointError(f"'{last}' belongs to a fine-tuning run with different settings "
                              f"({', '.join(changed) or 'pretrained checkpoint'}); use another output_dir, "
                              "delete it, or set finetune.resume=false")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    return state


# Encoder submodule lists that hold one message-passing layer per entry, numbered from 0: PyG's
# BasicGNN (convs.i, and norms.i after it), SchNet (interactions.i), PaiNN (messages.i and
# updates.i), the equivariant transformer (layers.i) and layer hooks (SCD's norms.i).
_LAYER_LISTS = frozenset({"convs", "norms", "interactions", "messages", "updates", "layers"})


def _layer_of(name: str) -> int | None:
    """The layer of the encoder parameter or module ``name``: 0 for the input embeddings, i + 1 for
    the i-th message-passing layer, None for what sits outside any numbered layer."""
    parts = name.split(".")
    for i, part in enumerate(parts):  # the outermost container decides (an embedding inside a layer is the layer's)
        if "embedding" in part:
            return 0
        if part in _LAYER_LISTS and i + 1 < len(parts) and parts[i + 1].isdigit():
            return int(parts[i + 1]) + 1
    return None


def encoder_layers(encoder: torch.nn.Module, option: str = "finetune.layer_decay") -> list[list[torch.nn.Parameter]]:
    """The encoder's parameters by layer, ``[input embeddings, layer 1, ..., layer L]``.

    Parameters outside any numbered layer (a jumping-knowledge projection, a final norm, a
    conditioning token) count as layer L, the last one. ``option`` names the setting that
    needs the layers, for the error raised when the encoder has no numbered layers.
    """
    named = [(_layer_of(name), p) for name, p in encoder.named_parameters()]
    numbered = [layer for layer, _ in named if layer]
    if not numbered:
        backbone = type(getattr(encoder, "backbone", encoder)).__name__
        raise ConfigError(f"option '{option}' needs the encoder's message-passing layers, and {backbone} has no "
                          f"numbered layer lists ({', '.join(sorted(_LAYER_LISTS))}.<i>); leave it empty")
    top = max(numbered)
    layers: list[list[torch.nn.Parameter]] = [[] for _ in range(top + 1)]
    for layer, p in named:
        layers[top if layer is None else layer].append(p)
    return layers


def _parameter_groups(model: torch.nn.Module, encoder: torch.nn.Module, lr: float,
                      encoder_lr: float | None, layer_decay: float | None = None) -> list[dict[str, Any]]:
    """The trainable parameters: the encoder's at ``encoder_lr`` (when set), everything else at ``lr``.

    With ``layer_decay`` each encoder layer is a group of its own: layer i of L (0: the input
    embeddings) at ``encoder_lr * layer_decay ** (L - i)``, so the last layer gets ``encoder_lr``
    (``lr`` when empty) and the embeddings the smallest rate. Groups carry a ``name``.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    if encoder_lr is None and layer_decay is None:
        return [{"params": trainable}]
    if encoder_lr is not None and encoder_lr <= 0:
        raise ConfigError(f"finetune.encoder_lr must be positive (or empty for finetune.lr), got {encoder_lr}")
    in_encoder = {id(p) for p in encoder.parameters()}
    head = {"params": [p for p in trainable if id(p) not in in_encoder], "lr": lr, "name": "head"}
    if layer_decay is None:
        groups = [head, {"params": [p for p in trainable if id(p) in in_encoder], "lr": encoder_lr, "name": "encoder"}]
    else:
        if not 0 < layer_decay <= 1:
            raise ConfigError(f"option 'finetune.layer_decay' must be a number in (0, 1], got {layer_decay!r}")
        layers = encoder_layers(encoder, "finetune.layer_decay")
        top, base = len(layers) - 1, encoder_lr if encoder_lr is not None else lr
        groups = [head] + [{"params": [p for p in params if p.requires_grad], "lr": base * layer_decay ** (top - i),
                            "name": f"layer {i}"} for i, params in enumerate(layers)]
    return [g for g in groups if g["params"]]


def make_optimizer(model: torch.nn.Module, encoder: torch.nn.Module, ft: Any) -> torch.optim.Adam:
    """Adam over the trainable parameters of ``model`` in the groups of :func:`_parameter_groups`.

    ``finetune.weight_decay`` is Adam's own, coupled L2 penalty (``weight_decay * w`` added to
    the gradient before the moment estimates, as in pretrain-gnns), not AdamW's decoupled decay.
    """
    return torch.optim.Adam(_parameter_groups(model, encoder, ft.lr, ft.encoder_lr, ft.layer_decay), lr=ft.lr,
                            weight_decay=ft.weight_decay)


def frozen_layer_count(ft: Any, epoch: int, num_layers: int) -> int:
    """How many encoder layers, counted from the input embeddings (layer 0) up, are frozen in the
    0-based ``epoch`` of ``ft`` (a :class:`~graphssl.core.config.FinetuneConfig`) for an encoder
    of ``num_layers`` layers including the embeddings.

    All of them in ``mode: linear`` and in the probe epochs of ``mode: lp-ft``; then
    ``freeze_layers``, one fewer every ``unfreeze_every`` epochs (the highest frozen layer
    thaws first), counted from the first fine-tuning epoch.
    """
    if ft.mode == "linear" or (ft.mode == "lp-ft" and epoch < ft.probe_epochs):
        return num_layers
    if ft.freeze_layers > num_layers:
        raise ConfigError(f"option 'finetune.freeze_layers' is {ft.freeze_layers}, but the encoder has "
                          f"{num_layers} layers (input embeddings and {num_layers - 1} message-passing layers)")
    frozen = ft.freeze_layers
    if ft.unfreeze_every:
        frozen -= (epoch - (ft.probe_epochs if ft.mode == "lp-ft" else 0)) // ft.unfreeze_every
    return max(frozen, 0)


def phase_of(ft: Any, epoch: int) -> str:
    """``probe`` for the head-only epochs of ``mode: lp-ft``, ``finetune`` after them (0-based ``epoch``)."""
    return "probe" if ft.mode == "lp-ft" and epoch < ft.probe_epochs else "finetune"


def _freeze(encoder: torch.nn.Module, layers: list[list[torch.nn.Parameter]] | None, trainable: set[int],
            frozen: int) -> list[torch.nn.Module]:
    """Freeze the first ``frozen`` layers (all of the encoder when ``layers`` is None and ``frozen``
    is positive) and thaw the rest of ``trainable``; return the modules that run in eval mode.

    A frozen layer's batch norms normalise with their running statistics and keep them (a frozen
    layer fed batch statistics would still change what follows it, and its statistics would
    drift); its dropout, which holds no state, stays as in training. A wholly frozen encoder runs
    in eval mode, as in linear probing.
    """
    if layers is None:
        for p in encoder.parameters():
            p.requires_grad_(id(p) in trainable and not frozen)
        return [encoder] if frozen else []
    for i, params in enumerate(layers):
        for p in params:
            p.requires_grad_(id(p) in trainable and i >= frozen)
    if frozen >= len(layers):
        return [encoder]
    top = len(layers) - 1
    return [m for name, m in encoder.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
            and (top if _layer_of(name) is None else _layer_of(name)) < frozen]


def early_stop_epoch(valid: list[float], metric: str, patience: int | None, probe_epochs: int = 0) -> int:
    """The number of epochs a run with these per-epoch validation scores trains before early
    stopping (``len(valid)`` when it never stops): the same rule as the loop, replayed."""
    best_epoch = 0
    for epoch, score in enumerate(valid, start=1):
        if is_better(metric, score, valid[best_epoch - 1] if best_epoch else None):
            best_epoch = epoch
        if _patience_exhausted(epoch, best_epoch, patience, probe_epochs):
            return epoch
    return len(valid)


def _patience_exhausted(epochs_done: int, best_epoch: int, patience: int | None, probe_epochs: int = 0) -> bool:
    """Whether ``patience`` epochs have passed without a better validation score. The count starts
    at the best epoch, and not before the end of lp-ft's probe phase: fine-tuning gets its
    ``patience`` epochs however the probe went."""
    return patience is not None and epochs_done - max(best_epoch, probe_epochs) >= patience


class _Diverged(Exception):
    """A non-finite batch past the skip budget: ``finetune`` turns it into :class:`TrainingDiverged`."""

    def __init__(self, batch: int, batches: int, cause: str, broken: bool) -> None:
        super().__init__(cause)
        self.batch, self.batches, self.cause, self.broken = batch, batches, cause, broken


def _train_epoch(task: Task, model: torch.nn.Module, train: Any, optimizer: torch.optim.Optimizer,
                 config: RunConfig, epoch: int, device: torch.device, skips_left: int = 0,
                 eval_modules: list[torch.nn.Module] | None = None) -> dict[str, float]:
    """One pass over the labelled training items; the mean of each loss term per item, and
    ``skipped_steps``: batches whose loss or gradients were NaN or infinite, skipped without an
    update (at most ``skips_left``; one more raises :class:`_Diverged`). ``eval_modules`` (frozen
    parts; default: the encoder in linear mode) run in eval mode."""
    ft = config.finetune
    model.train()
    if eval_modules is None:
        eval_modules = [model.encoder] if ft.mode == "linear" else []
    for module in eval_modules:
        module.eval()  # frozen: batch-norm statistics (and, for a whole encoder, dropout) stay as they are
    loader = DataLoader(train, batch_size=ft.batch_size, shuffle=True, generator=epoch_generator(ft.seed, epoch),
                        drop_last=task.drop_last and len(train) > ft.batch_size)
    sums: dict[str, float] = {}
    count, skipped = 0, 0
    train_score = TrainingScore(task, model)  # the metric of this epoch's own predictions, no extra pass
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
        train_score.keep()
        n = task.count(batch)
        for key, value in values.items():
            sums[key] = sums.get(key, 0.0) + value * n
        count += n
    return {**{key: value / max(count, 1) for key, value in sums.items()}, "skipped_steps": skipped,
            **train_score.result()}


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
    """Fine-tune (``mode: full``), linearly probe (``mode: linear``) or probe then fine-tune
    (``mode: lp-ft``) an encoder on a task, with the recipe options of ``finetune`` (layer-wise
    learning-rate decay, frozen layers and staged unfreezing, early stopping with ``patience``).

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
    check_parts_scorable({"train": train, "valid": valid, "test": test}, ft.split)

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
    # every parameter that ever trains is in the optimiser from the start; freezing (lp-ft's probe
    # epochs, freeze_layers) only withholds gradients, and Adam skips a parameter without one
    trainable = {id(p) for p in encoder.parameters() if p.requires_grad}
    layers = encoder_layers(encoder, "finetune.freeze_layers") if ft.freeze_layers else None
    if layers and ft.freeze_layers > len(layers):
        raise ConfigError(f"option 'finetune.freeze_layers' is {ft.freeze_layers}, but the encoder has "
                          f"{len(layers)} layers (input embeddings and {len(layers) - 1} message-passing layers)")
    optimizer = make_optimizer(model, encoder, ft)

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
        if _patience_exhausted(epoch, best_epoch, ft.patience, ft.probe_epochs):
            epochs.close()
            break  # early stopping (checked before the epoch, so a resumed run stops where it stopped)
        frozen = frozen_layer_count(ft, epoch, len(layers)) if layers else int(phase_of(ft, epoch) == "probe")
        eval_modules = None if ft.mode == "linear" else _freeze(encoder, layers, trainable, frozen)
        skipped = sum(int(row.get("skipped_steps", 0)) for row in history)
        try:
            losses = _train_epoch(task, model, train, optimizer, config, epoch, device,
                                  skips_left=ft.skip_nonfinite - skipped, eval_modules=eval_modules)
            if nonfinite_tensors(model):  # finite losses, yet the last update overflowed the weights
                raise _Diverged(0, 0, "the weights hold NaN or infinite values although every loss was finite", True)
        except _Diverged as exc:
            epochs.close()
            raise TrainingDiverged(_diverged_message(exc, config, epoch, last)) from None
        row = {"epoch": epoch + 1, **losses, **_scores(task, model, "valid", valid, device),
               **_scores(task, model, "test", test, device)}
        if ft.mode == "lp-ft":
            row["phase"] = phase_of(ft, epoch)
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
    if task.name == "segmentation":  # a few test parts, true vs predicted face classes (never fails a run)
        write_test_pictures(model, best_state, test, device, out, dataset.class_names)
    write_finetune_curves(history, best_epoch, task.metric, out)
    return result
