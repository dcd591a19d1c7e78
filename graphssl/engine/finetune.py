"""Fine-tuning and linear probing on a labelled task.

Model selection rule, everywhere in graphssl: the reported test score is the one at the
epoch with the best validation score. The test split is never used to choose anything.

Splits (``finetune.split``): ``scaffold`` (deterministic Bemis-Murcko, pretrain-gnns), ``random``
(``split_fractions``, seeded by ``split_seed``) and ``matbench``: Matbench's 5-fold protocol,
where ``split_seed`` (0..4) picks the test fold of :func:`~graphssl.atomistic.datasets.matbench_folds`
and a seeded 10% of that fold's training part is held out for model selection (``split_fractions``
is not used). Report the mean over the five folds to compare with the Matbench leaderboard.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from graphssl.core.config import RunConfig, save_config
from graphssl.data.dataset import MoleculeDataset, load_dataset
from graphssl.data.splits import Split, make_split, subsample_fraction
from graphssl.core.errors import CheckpointError, ConfigError, DataError
from graphssl.nn.losses import masked_bce_with_logits, masked_mse
from graphssl.tasks.metrics import compute_metric, is_better
from graphssl.nn.heads import PredictionHead, PropertyModel
from graphssl.engine.checkpoint import load_checkpoint, save_checkpoint
from graphssl.engine.pretrained import build_finetune_encoder, load_pretrained
from graphssl.engine.runtime import start_finetuning

SELECTION_RULE = "test score at the epoch with the best validation score"


@dataclass
class FinetuneResult:
    task: str
    metric: str
    best_epoch: int
    valid: float
    test: float
    train_size: int
    seconds: float
    selection: str = SELECTION_RULE
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _targets(dataset: MoleculeDataset) -> np.ndarray:
    return dataset.labels.numpy().astype(np.float64)


def _without_epochs(section: Any) -> Any:
    """A config section minus the epoch count: extending a finished run is a valid resume."""
    if not isinstance(section, dict):
        return section
    return {k: v for k, v in section.items() if k not in ("epochs", "resume")}


def resume_finetuning(config: RunConfig, kind: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                      device: torch.device, checkpoint: str | Path | None = None) -> dict[str, Any] | None:
    """Continue a fine-tuning run from ``output_dir/last.pt``, when it exists and resuming is on.

    Loads the model, optimiser and random state and returns the saved state for the loop's own
    fields (epoch, history, best scores); None when there is nothing to resume. A state of
    another ``kind`` or written with other model, fine-tuning or pretrained-checkpoint settings
    is refused (more epochs is a valid resume).
    """
    ft = config.finetune
    last = Path(config.output_dir) / "last.pt"
    if not (ft.save_checkpoints and ft.resume and last.is_file()):
        return None
    state = load_checkpoint(last, map_location=device)
    if state.get("kind") != kind:
        raise CheckpointError(f"'{last}' is a {state.get('kind')!r} checkpoint, not a {kind!r} one to resume; "
                              "use another output_dir, or set finetune.resume=false")
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


@torch.no_grad()
def predict(model: PropertyModel, dataset: MoleculeDataset, device: torch.device, batch_size: int = 256) -> np.ndarray:
    """Raw model outputs (logits or standardised values) for every graph, in order."""
    model.eval()
    outs = [model(batch.to(device)).float().cpu() for batch in DataLoader(dataset, batch_size=batch_size)]
    return torch.cat(outs).numpy().astype(np.float64)


def finetune(
    config: RunConfig,
    checkpoint: str | Path | None = None,
    dataset: MoleculeDataset | None = None,
    split: Split | None = None,
) -> FinetuneResult:
    """Fine-tune (``mode: full``) or linearly probe (``mode: linear``) an encoder on a task.

    ``checkpoint`` is a pretrained ``encoder.pt``; without one the same backbone is trained
    from scratch. Returns the validation-selected result and writes it to
    ``output_dir/result.json``.
    """
    ft = config.finetune
    device, out = start_finetuning(config)
    if dataset is None:
        dataset = load_dataset(ft.task, config.cache_dir, progress=config.progress)
    if dataset.task_type is None:
        raise DataError(f"data set '{dataset.name}' has no labels; fine-tuning needs a labelled task")
    if dataset.task_type == "segmentation":  # per-node classes (B-rep faces)
        from graphssl.engine.segmentation import finetune_segmentation

        return finetune_segmentation(config, checkpoint=checkpoint, dataset=dataset, split=split)
    if dataset.task_type == "energy_forces":
        from graphssl.engine.atomistic import finetune_energy_forces

        return finetune_energy_forces(config, checkpoint=checkpoint, dataset=dataset, split=split)
    metric = dataset.metric
    split = split or make_split(dataset, ft)
    train_idx = subsample_fraction(split.train, ft.label_fraction, seed=ft.seed)
    train, valid, test = dataset.subset(train_idx), dataset.subset(split.valid), dataset.subset(split.test)

    pretrained = load_pretrained(checkpoint) if checkpoint is not None else None
    model_cfg = dataclasses.replace(pretrained.model if pretrained else config.model, dropout=ft.dropout)
    encoder = build_finetune_encoder(model_cfg, train, pretrained, ft.task.cutoff)
    head = PredictionHead(encoder.out_channels, dataset.num_tasks, ft.head_hidden, ft.dropout)
    model = PropertyModel(encoder, head)

    if ft.mode not in ("full", "linear"):
        raise ConfigError(f"finetune.mode must be 'full' or 'linear', got {ft.mode!r}")
    from graphssl.engine.atomistic import noisy_nodes_head, noisy_nodes_loss

    aux_head = noisy_nodes_head(encoder, ft)  # None unless finetune.noisy_nodes_weight > 0
    if aux_head is not None:
        model.noisy_nodes_head = aux_head  # a submodule: optimised, saved and resumed with the model
    model = model.to(device)
    if ft.mode == "linear":
        for p in encoder.parameters():
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=ft.lr, weight_decay=ft.weight_decay)

    classification = dataset.task_type == "classification"
    y_train = _targets(train)
    mean = np.zeros(dataset.num_tasks) if classification else np.nan_to_num(np.nanmean(y_train, axis=0))
    std = np.ones(dataset.num_tasks) if classification else np.nan_to_num(np.nanstd(y_train, axis=0), nan=1.0)
    std[std < 1e-8] = 1.0
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device)
    std_t = torch.tensor(std, dtype=torch.float32, device=device)

    def score(subset: MoleculeDataset) -> float:
        raw = predict(model, subset, device)
        return compute_metric(metric, _targets(subset), raw if classification else raw * std + mean)

    start_epoch, best, best_state, history = 0, None, None, []
    best_epoch, best_valid, best_test = 0, float("nan"), float("nan")
    last = out / "last.pt"
    state = resume_finetuning(config, "finetune-state", model, optimizer, device, checkpoint)
    if state is not None:
        start_epoch, history = state["epoch"], list(state["history"])
        best_epoch, best_valid, best_test = state["best_epoch"], state["best_valid"], state["best_test"]
        best, best_state = (best_valid if best_epoch else None), state["best_model"]

    t0 = time.perf_counter()
    epochs = tqdm(range(start_epoch, ft.epochs), desc=f"finetune {dataset.name}", disable=not config.progress,
                  unit="epoch", leave=False)
    for epoch in epochs:
        model.train()
        if ft.mode == "linear":
            encoder.eval()  # frozen: batch-norm statistics and dropout stay as pretrained
        generator = torch.Generator().manual_seed(ft.seed * 100_003 + epoch)
        total, count, aux_total = 0.0, 0, 0.0
        for batch in DataLoader(train, batch_size=ft.batch_size, shuffle=True, generator=generator, drop_last=len(train) > ft.batch_size):
            batch = batch.to(device)
            out_ = model(batch)
            y = batch.y.view(out_.shape)
            loss = masked_bce_with_logits(out_, y) if classification else masked_mse(out_, (y - mean_t) / std_t)
            if aux_head is not None:
                aux = noisy_nodes_loss(encoder, aux_head, batch, ft.noisy_nodes_sigma)
                loss = loss + ft.noisy_nodes_weight * aux
                aux_total += float(aux.detach()) * batch.num_graphs
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * batch.num_graphs
            count += batch.num_graphs
        valid_score, test_score = score(valid), score(test)
        history.append({"epoch": epoch + 1, "loss": total / max(count, 1), "valid": valid_score, "test": test_score})
        if aux_head is not None:
            history[-1]["noisy_nodes"] = aux_total / max(count, 1)
        if is_better(metric, valid_score, best):
            best, best_epoch, best_valid, best_test = valid_score, epoch + 1, valid_score, test_score
            best_state = copy.deepcopy(model.state_dict())
        epochs.set_postfix(valid=f"{valid_score:.4f}", best=f"{best_valid:.4f}@{best_epoch}")
        if ft.save_checkpoints:
            save_checkpoint(last, {
                "kind": "finetune-state", "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "epoch": epoch + 1, "history": history, "best_epoch": best_epoch, "best_valid": best_valid,
                "best_test": best_test, "best_model": best_state if best_state is not None else model.state_dict(),
                "rng": torch.get_rng_state(), "config": config.to_dict(),
                "checkpoint": str(checkpoint) if checkpoint else None,
            })

    result = FinetuneResult(task=dataset.name, metric=metric, best_epoch=best_epoch, valid=best_valid,
                            test=best_test, train_size=len(train), seconds=time.perf_counter() - t0, history=history)
    if ft.save_checkpoints and best_state is not None:
        save_config(config, out / "config.yaml")
        save_checkpoint(out / "best.pt", {
            "kind": "finetuned-model", "model": best_state, "model_config": dataclasses.asdict(model_cfg),
            "task_names": dataset.task_names, "task_type": dataset.task_type, "target_mean": mean.tolist(),
            "target_std": std.tolist(), "result": result.to_dict(), "config": config.to_dict(),
        })
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=1))
    return result
