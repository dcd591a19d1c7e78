"""Fine-tuning a geometric encoder on energies and forces, and the noisy-nodes auxiliary loss.

The energy model is ``GeometricEncoder`` + :class:`~graphssl.atomistic.heads.EnergyHead`: per-atom
energies summed per structure, on top of per-element reference energies fitted by least squares
on the training labels (the network learns only the residual). Forces are ``-dE/dpos`` by
autograd, with ``create_graph=True`` while training so the force loss reaches the weights::

    loss = energy_weight * MSE(E / n_atoms) + force_weight * MSE(F) [+ noisy_nodes_weight * noisy nodes]

Model selection follows graphssl's rule (``SELECTION_RULE``): the epoch with the lowest
validation force MAE (eV/A, mean over force components) is kept, and the test set is scored once,
with that epoch's weights. Energy MAE per atom (eV/atom) is recorded alongside.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from graphssl.atomistic.encoder import GeometricEncoder
from graphssl.atomistic.heads import EnergyHead, VectorHead, forces_and_stress
from graphssl.core.config import FinetuneConfig, RunConfig, save_config
from graphssl.data.splits import subsample_fraction
from graphssl.core.errors import ConfigError, DataError
from graphssl.tasks.metrics import is_better
from graphssl.objectives.denoise import coordinate_noise, displaced, remove_mean
from graphssl.engine.checkpoint import save_checkpoint
from graphssl.engine.runtime import start_finetuning

METRIC = "force_mae"
MAX_Z = 120


# --------------------------------------------------------------------------- reference energies

def fit_reference_energies(structures: Iterable[Data], max_z: int = MAX_Z) -> Tensor:
    """Per-element energies ``[max_z]`` (eV) that best explain the structures' total energies.

    Solves ``min_r sum_s (E_s - sum_{a in s} r_{z_a})^2`` by least squares over the elements that
    occur; elements that never occur get 0. With compositions that do not pin every element
    (e.g. always the same ratio) the minimum-norm solution is returned, which still removes the
    composition trend the network would otherwise have to learn.
    """
    rows, energies = [], []
    for data in structures:
        energy = getattr(data, "energy", None)
        if energy is None:
            raise DataError(f"structure {getattr(data, 'name', None)!r} has no energy; reference energies "
                            "need labelled structures")
        rows.append(torch.bincount(data.z.long().cpu(), minlength=max_z).numpy())
        energies.append(float(energy.reshape(-1)[0]))
    if not rows:
        raise DataError("cannot fit reference energies on an empty training set")
    counts = np.stack(rows).astype(np.float64)  # [S, max_z]
    present = counts.any(axis=0)
    solution, *_ = np.linalg.lstsq(counts[:, present], np.asarray(energies), rcond=None)
    refs = np.zeros(max_z)
    refs[present] = solution
    return torch.tensor(refs, dtype=torch.get_default_dtype())


# --------------------------------------------------------------------------- noisy nodes

def noisy_nodes_batch(batch: Data, sigma: float) -> tuple[Data, Tensor]:
    """The batch with Gaussian coordinate noise and the target ``noise / sigma`` ``[N, 3]``.

    The noise of each molecule (non-periodic structure) is centre-of-mass free, so the target
    has zero mean per molecule and unit variance per component.
    """
    if sigma <= 0:
        raise ConfigError(f"finetune.noisy_nodes_sigma must be positive (Angstrom), got {sigma}")
    noise = coordinate_noise(batch, sigma)
    return displaced(batch, noise.detach()), noise / sigma


def noisy_nodes_loss(encoder: GeometricEncoder, head: VectorHead, batch: Data, sigma: float) -> Tensor:
    """Noisy nodes (Godwin et al. 2022; SCD fine-tunes with sigma 0.005 A, weight 0.1): corrupt the
    positions, predict the noise per atom with ``head`` on the encoder's features, MSE.

    A separate pass from the property pass, so properties (and forces) are read from the clean
    structure. The prediction is made translation free like the target.
    """
    noisy, target = noisy_nodes_batch(batch, sigma)
    s, v = encoder.features(noisy)
    return F.mse_loss(remove_mean(head(s, v, noisy), noisy), target)


def noisy_nodes_head(encoder: nn.Module, ft: FinetuneConfig) -> VectorHead | None:
    """The vector head of the noisy-nodes loss, or None when ``finetune.noisy_nodes_weight`` is 0."""
    if ft.noisy_nodes_weight < 0:
        raise ConfigError(f"finetune.noisy_nodes_weight must be >= 0, got {ft.noisy_nodes_weight}")
    if ft.noisy_nodes_weight == 0:
        return None
    if not isinstance(encoder, GeometricEncoder):
        raise ConfigError("finetune.noisy_nodes_weight > 0 needs a geometric backbone (schnet, painn, et): it "
                          f"denoises 3D coordinates; got a {type(encoder).__name__}. Set it to 0")
    if ft.mode != "full":
        raise ConfigError("noisy nodes regularises the encoder, which linear probing freezes; set "
                          "finetune.noisy_nodes_weight=0 or finetune.mode=full")
    if ft.noisy_nodes_sigma <= 0:
        raise ConfigError(f"finetune.noisy_nodes_sigma must be positive (Angstrom), got {ft.noisy_nodes_sigma}")
    return VectorHead.for_backbone(encoder.backbone)


# --------------------------------------------------------------------------- the energy model

class EnergyForceModel(nn.Module):
    """``batch -> (energy [B] eV, forces [N, 3] eV/A)``; forces by autograd through positions."""

    def __init__(self, encoder: GeometricEncoder, head: EnergyHead) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, batch: Data, training: bool = False) -> tuple[Tensor, Tensor]:
        batch.pos.requires_grad_(True)
        s, _ = self.encoder.features(batch)
        energy = self.head(s, batch)
        forces, _ = forces_and_stress(energy, batch, training=training)
        return energy, forces


def _atoms_per_structure(batch: Data) -> Tensor:
    return torch.bincount(batch.batch, minlength=int(batch.num_graphs)).to(batch.pos.dtype)


def energy_force_loss(energy: Tensor, forces: Tensor, batch: Data, ft: FinetuneConfig) -> tuple[Tensor, Tensor, Tensor]:
    """``(loss, energy MSE per atom, force MSE)``; per-atom energies keep large cells from dominating."""
    n = _atoms_per_structure(batch)
    e_loss = F.mse_loss(energy / n, batch.energy.view(-1).to(energy.dtype) / n)
    f_loss = F.mse_loss(forces, batch.forces.to(forces.dtype))
    return ft.energy_weight * e_loss + ft.force_weight * f_loss, e_loss, f_loss


def evaluate(model: EnergyForceModel, dataset, device: torch.device, batch_size: int = 64) -> dict[str, float]:
    """Force MAE (eV/A, over components) and energy MAE per atom (eV/atom) of ``dataset``.

    Not under ``torch.no_grad``: forces are gradients. The graph is not kept (no ``create_graph``).
    """
    model.eval()
    force_err, force_count, energy_err, structures = 0.0, 0, 0.0, 0
    with torch.enable_grad():
        for batch in DataLoader(dataset, batch_size=batch_size):
            batch = batch.to(device)
            energy, forces = model(batch)
            force_err += float((forces.detach() - batch.forces).abs().sum())
            force_count += forces.numel()
            per_atom = (energy.detach() - batch.energy.view(-1)) / _atoms_per_structure(batch)
            energy_err += float(per_atom.abs().sum())
            structures += int(batch.num_graphs)
    if not structures:
        return {"force_mae": float("nan"), "energy_mae": float("nan")}
    return {"force_mae": force_err / max(force_count, 1), "energy_mae": energy_err / structures}


# --------------------------------------------------------------------------- the loop

def finetune_energy_forces(config: RunConfig, checkpoint: str | Path | None = None, dataset=None, split=None):
    """Fine-tune (or train from scratch) on energies and forces; returns a ``FinetuneResult``.

    ``dataset`` holds structures with ``energy`` and ``forces`` (an extxyz or ASE database with
    task type ``energy_forces``); ``split`` defaults to :func:`~graphssl.engine.finetune.make_split`
    (``finetune.split=random`` with ``split_seed``). ``finetune.label_fraction`` of the training
    structures carry labels. Writes ``result.json`` (and ``last.pt``/``best.pt`` when
    ``finetune.save_checkpoints``) into ``output_dir``.
    """
    from graphssl.data.dataset import load_dataset
    from graphssl.engine.finetune import (FinetuneResult, build_finetune_encoder, load_pretrained, make_split,
                                         resume_finetuning)

    ft = config.finetune
    device, out = start_finetuning(config)
    if dataset is None:
        dataset = load_dataset(ft.task, config.cache_dir, progress=config.progress)
    if ft.mode != "full":
        raise ConfigError(f"energy and force fine-tuning trains the whole model; finetune.mode={ft.mode!r} "
                          "is not supported here, use full")
    split = split or make_split(dataset, ft)
    train_idx = subsample_fraction(split.train, ft.label_fraction, seed=ft.seed)
    train, valid, test = dataset.subset(train_idx), dataset.subset(split.valid), dataset.subset(split.test)
    if len(valid) == 0 or len(test) == 0:
        raise DataError(f"the split leaves {len(valid)} validation and {len(test)} test structures; "
                        "both need at least one (more structures or other finetune.split_fractions)")

    pretrained = load_pretrained(checkpoint) if checkpoint is not None else None
    model_cfg = dataclasses.replace(pretrained.model if pretrained else config.model, dropout=ft.dropout)
    encoder = build_finetune_encoder(model_cfg, train, pretrained, ft.task.cutoff)
    if not isinstance(encoder, GeometricEncoder):
        raise ConfigError(f"energies and forces need a geometric backbone (schnet, painn, et); "
                          f"model.backbone is {model_cfg.backbone!r}")
    refs = fit_reference_energies(train)
    model = EnergyForceModel(encoder, EnergyHead(encoder.out_channels, reference_energies=refs))
    aux_head = noisy_nodes_head(encoder, ft)
    if aux_head is not None:
        model.noisy_nodes_head = aux_head  # a submodule: optimised, saved and resumed with the model
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=ft.lr, weight_decay=ft.weight_decay)

    start_epoch, history, best_state = 0, [], None
    best_epoch, best_valid = 0, float("nan")
    last = out / "last.pt"
    state = resume_finetuning(config, "finetune-state", model, optimizer, device, checkpoint)
    if state is not None:
        start_epoch, history = state["epoch"], list(state["history"])
        best_epoch, best_valid, best_state = state["best_epoch"], state["best_valid"], state["best_model"]

    t0 = time.perf_counter()
    epochs = tqdm(range(start_epoch, ft.epochs), desc=f"finetune {dataset.name} (energy+forces)",
                  disable=not config.progress, unit="epoch", leave=False)
    for epoch in epochs:
        model.train()
        generator = torch.Generator().manual_seed(ft.seed * 100_003 + epoch)
        sums = {"loss": 0.0, "energy_mse": 0.0, "force_mse": 0.0, "noisy_nodes": 0.0}
        count = 0
        loader = DataLoader(train, batch_size=ft.batch_size, shuffle=True, generator=generator,
                            drop_last=len(train) > ft.batch_size)
        for batch in loader:
            batch = batch.to(device)
            energy, forces = model(batch, training=True)
            loss, e_loss, f_loss = energy_force_loss(energy, forces, batch, ft)
            if aux_head is not None:
                aux = noisy_nodes_loss(encoder, aux_head, batch, ft.noisy_nodes_sigma)
                loss = loss + ft.noisy_nodes_weight * aux
                sums["noisy_nodes"] += float(aux.detach()) * batch.num_graphs
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for key, value in (("loss", loss), ("energy_mse", e_loss), ("force_mse", f_loss)):
                sums[key] += float(value.detach()) * batch.num_graphs
            count += batch.num_graphs
        scores = evaluate(model, valid, device)
        if aux_head is None:
            del sums["noisy_nodes"]
        row = {"epoch": epoch + 1, **{k: v / max(count, 1) for k, v in sums.items()},
               "valid": scores["force_mae"], "valid_energy_mae": scores["energy_mae"]}
        history.append(row)
        if is_better(METRIC, row["valid"], best_valid if best_epoch else None):
            best_epoch, best_valid = epoch + 1, row["valid"]
            best_state = copy.deepcopy(model.state_dict())
        epochs.set_postfix(valid=f"{row['valid']:.4f}", best=f"{best_valid:.4f}@{best_epoch}")
        if ft.save_checkpoints:
            save_checkpoint(last, {
                "kind": "finetune-state", "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "epoch": epoch + 1, "history": history, "best_epoch": best_epoch, "best_valid": best_valid,
                "best_model": best_state if best_state is not None else model.state_dict(),
                "rng": torch.get_rng_state(), "config": config.to_dict(),
                "checkpoint": str(checkpoint) if checkpoint else None,
            })

    # The test set is scored once, with the weights of the best validation epoch.
    test_scores = {"force_mae": float("nan"), "energy_mae": float("nan")}
    if best_state is not None:
        model.load_state_dict(best_state)
        test_scores = evaluate(model, test, device)
    result = FinetuneResult(task=dataset.name, metric=METRIC, best_epoch=best_epoch, valid=best_valid,
                            test=test_scores["force_mae"], train_size=len(train),
                            seconds=time.perf_counter() - t0, history=history)
    summary = {**result.to_dict(), "test_energy_mae": test_scores["energy_mae"],
               "valid_energy_mae": history[best_epoch - 1]["valid_energy_mae"] if best_epoch else float("nan"),
               "units": {"force_mae": "eV/A", "energy_mae": "eV/atom"}}
    if ft.save_checkpoints and best_state is not None:
        save_config(config, out / "config.yaml")
        save_checkpoint(out / "best.pt", {
            "kind": "finetuned-model", "model": best_state, "model_config": dataclasses.asdict(model_cfg),
            "task_names": ["energy", "forces"], "task_type": "energy_forces",
            "reference_energies": refs, "result": summary, "config": config.to_dict(),
        })
    (out / "result.json").write_text(json.dumps(summary, indent=1))
    return result
