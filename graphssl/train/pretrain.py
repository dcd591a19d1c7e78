"""Pretraining: a data set, an encoder, an objective and a plain torch loop."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from graphssl.config import RunConfig, save_config
from graphssl.data.dataset import MoleculeDataset, PrecomputedDataset, load_dataset
from graphssl.encoders import build_encoder, degree_histogram
from graphssl.encoders.encoder import Encoder
from graphssl.objectives import build_objective
from graphssl.errors import CheckpointError
from graphssl.train.checkpoint import load_checkpoint, save_checkpoint
from graphssl.train.runtime import resolve_device, seed_everything, set_threads


def encoder_from_config(config: RunConfig, dataset: MoleculeDataset, deg: torch.Tensor | None = None) -> Encoder:
    if config.model.backbone.lower() == "pna" and deg is None:
        deg = degree_histogram(dataset)
    return build_encoder(config.model, getattr(dataset, "feature_spec", None), deg=deg, cutoff=config.data.cutoff)


def _epoch_loader(dataset: MoleculeDataset, batch_size: int, seed: int, epoch: int, num_workers: int) -> DataLoader:
    # One generator per epoch: the shuffle order depends only on (seed, epoch), so a
    # resumed run sees the same batches as an uninterrupted one.
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator, num_workers=num_workers)


def _check_same_run(saved: dict[str, Any], config: RunConfig, path: Path) -> None:
    """Refuse to resume a run whose data, model or objective differ from the saved one."""
    current = config.to_dict()
    changed = [key for key in ("data", "model", "objective") if saved.get(key) != current[key]]
    if changed:
        raise CheckpointError(
            f"'{path}' was written by a run with different {', '.join(changed)} settings; use another "
            "output_dir, delete the file, or set pretrain.resume=false to start over"
        )


def pretrain(config: RunConfig, dataset: MoleculeDataset | None = None) -> Path:
    """Pretrain ``config.model`` with ``config.objective`` on ``config.data``.

    Writes ``last.pt`` (resumable state) after every epoch and ``encoder.pt`` (the
    pretrained encoder with its config and library versions) at the end, both
    atomically, into ``config.output_dir``. Returns the path of ``encoder.pt``.
    """
    set_threads(config.threads)
    seed_everything(config.seed)
    device = resolve_device(config.device)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    if dataset is None:
        dataset = load_dataset(config.data, config.cache_dir, progress=config.progress)

    deg = degree_histogram(dataset) if config.model.backbone.lower() == "pna" else None
    encoder = encoder_from_config(config, dataset, deg)
    objective = build_objective(config.objective.name, encoder, config.objective.options).to(device)
    optimizer = torch.optim.Adam(objective.parameters(), lr=config.pretrain.lr, weight_decay=config.pretrain.weight_decay)
    run = config.pretrain
    transform = getattr(objective, "transform", None)
    if transform is not None:
        # Deterministic per-graph preprocessing (e.g. coarsening): done once, not every epoch.
        t0 = time.perf_counter()
        dataset = PrecomputedDataset(transform.many(dataset, progress=config.progress), dataset)
        if config.progress:
            print(f"{transform} applied to {len(dataset)} graphs in {time.perf_counter() - t0:.1f} s")
    start_epoch, step, history = 0, 0, []
    last = out / "last.pt"
    if run.resume and last.is_file():
        state = load_checkpoint(last, map_location=device)
        _check_same_run(state.get("config", {}), config, last)
        objective.load_state_dict(state["objective"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, step, history = state["epoch"], state["step"], list(state["history"])
        torch.set_rng_state(state["rng"])
        print(f"resuming pretraining from {last} at epoch {start_epoch}")

    stopped = False
    for epoch in range(start_epoch, run.epochs):
        objective.train()
        if hasattr(objective, "set_epoch"):
            objective.set_epoch(epoch, run.epochs)
        loader = _epoch_loader(dataset, run.batch_size, config.seed, epoch, run.num_workers)
        total, graphs, t0 = 0.0, 0, time.perf_counter()
        bar = tqdm(loader, desc=f"pretrain {config.objective.name} epoch {epoch + 1}/{run.epochs}",
                   disable=not config.progress, unit="batch", leave=False)
        for batch in bar:
            batch = batch.to(device)
            loss = objective(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            total += float(loss.detach()) * batch.num_graphs
            graphs += batch.num_graphs
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if run.max_steps is not None and step >= run.max_steps:
                stopped = True
                break
        seconds = time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "loss": total / max(graphs, 1), "graphs_per_s": graphs / max(seconds, 1e-9),
                        "seconds": seconds, "steps": step})
        if config.progress:
            print(f"epoch {epoch + 1}: loss {history[-1]['loss']:.4f}, {history[-1]['graphs_per_s']:.0f} graphs/s")
        save_checkpoint(last, {
            "kind": "pretrain-state",
            "objective": objective.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": epoch + 1,
            "step": step,
            "history": history,
            "rng": torch.get_rng_state(),
            "config": config.to_dict(),
        })
        if stopped:
            break

    payload: dict[str, Any] = {
        "kind": "pretrained-encoder",
        "encoder": encoder.state_dict(),
        "model": dataclasses.asdict(config.model),
        "objective_name": config.objective.name,
        "config": config.to_dict(),
        "history": history,
    }
    if deg is not None:
        payload["deg"] = deg
    if hasattr(objective, "null"):
        # SCD: fine-tuning runs the backbone with the learned null condition, not without one
        payload["null_condition"] = objective.null.token.detach().cpu()
    path = save_checkpoint(out / "encoder.pt", payload)
    (out / "pretrain_history.json").write_text(json.dumps(history, indent=1))
    return path
