"""Energies and forces (and stress) of atomistic structures: one task, weighted outputs.

The model is a geometric encoder + :class:`~graphssl.atomistic.heads.EnergyHead`: per-atom
energies summed per structure, on top of per-element reference energies fitted by least
squares on the training labels (the network learns only the residual). Forces are
``-dE/dpos`` and stress ``(1/V) dE/d(strain)`` by autograd, with ``create_graph=True`` while
training so their losses reach the weights::

    loss = energy_weight * MSE(E / n_atoms) + force_weight * MSE(F) [+ stress_weight * MSE(sigma)]
           [+ noisy_nodes_weight * noisy nodes]

Epochs are selected on the validation force MAE (eV/A, mean over force components); the
energy MAE per atom (eV/atom) is reported alongside.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from graphssl.atomistic.heads import EnergyHead, forces_and_stress, with_strain
from graphssl.core.config import FinetuneConfig
from graphssl.core.errors import ConfigError, DataError
from graphssl.nn.geometric import GeometricEncoder
from graphssl.tasks import metrics
from graphssl.tasks.base import TASKS, Output, Task

MAX_Z = 120
UNITS = {"force_mae": "eV/A", "energy_mae": "eV/atom", "stress_mae": "eV/A^3"}


def fit_reference_energies(structures: Iterable[Data], max_z: int = MAX_Z) -> Tensor:
    """Per-element energies ``[max_z]`` (eV) that best explain the structures' total energies.

    Solves ``min_r sum_s (E_s - sum_{a in s} r_{z_a})^2`` by least squares over the elements that
    occur; elements that never occur get 0. With compositions that do not pin every element
    (e.g. always the same ratio) the minimum-norm solution is returned, which still removes the
    composition trend the network would otherwise have to learn.
    """
    rows, energies = [], []
    for data in structures:
        energy = getattr(data, "energy", None)  # an optional label of atomistic data
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


class EnergyForceModel(nn.Module):
    """``batch -> {"energy": [B] eV, "forces": [N, 3] eV/A, ("stress": [B, 3, 3] eV/A^3)}``.

    With ``stress=True`` every structure needs a cell; positions and cell are strained
    (:func:`~graphssl.atomistic.heads.with_strain`) so one backward pass gives both.
    """

    def __init__(self, encoder: GeometricEncoder, head: EnergyHead, stress: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.stress = stress

    def forward(self, batch: Data, training: bool = False) -> dict[str, Tensor]:
        displacement = None
        if self.stress:
            batch, displacement = with_strain(batch)
        else:
            batch.pos.requires_grad_(True)
        s, _ = self.encoder.features(batch)
        energy = self.head(s, batch)
        forces, stress = forces_and_stress(energy, batch, displacement, training=training)
        out = {"energy": energy, "forces": forces}
        if stress is not None:
            out["stress"] = stress
        return out


def atoms_per_structure(batch: Data) -> Tensor:
    """Number of atoms of each structure of a batch ``[B]``, in the positions' dtype."""
    return torch.bincount(batch.batch, minlength=int(batch.num_graphs)).to(batch.pos.dtype)


def energy_mse(model: nn.Module, batch: Data, out: dict[str, Tensor]) -> Tensor:
    """MSE of the energy per atom: large cells do not dominate."""
    energy, n = out["energy"], atoms_per_structure(batch)
    return F.mse_loss(energy / n, batch.energy.view(-1).to(energy.dtype) / n)


def force_mse(model: nn.Module, batch: Data, out: dict[str, Tensor]) -> Tensor:
    return F.mse_loss(out["forces"], batch.forces.to(out["forces"].dtype))


def stress_mse(model: nn.Module, batch: Data, out: dict[str, Tensor]) -> Tensor:
    return F.mse_loss(out["stress"], batch.stress.view_as(out["stress"]).to(out["stress"].dtype))


@TASKS.register("energy_forces")
class EnergyForcesTask(Task):
    """Energies and forces (``finetune.energy_weight``, ``finetune.force_weight``), and stress when
    ``finetune.stress_weight > 0`` (every structure then needs a ``stress`` label and a cell);
    ``stress_weight`` given here overrides the config's."""

    name = "energy_forces"
    modes = ("full",)  # the force field is trained as a whole

    def __init__(self, dataset: Any, config: FinetuneConfig, stress_weight: float | None = None) -> None:
        super().__init__(dataset, config)
        stress_weight = config.stress_weight if stress_weight is None else stress_weight
        for option, weight in (("energy_weight", config.energy_weight), ("force_weight", config.force_weight),
                               ("stress_weight", stress_weight)):
            if weight < 0:
                raise ConfigError(f"finetune.{option} must be >= 0, got {weight}")
        self.stress_weight = float(stress_weight)
        self.reference_energies: Tensor | None = None
        self.outputs = [Output("energy_mse", config.energy_weight, energy_mse),
                        Output("force_mse", config.force_weight, force_mse)]
        self.secondary = ("energy_mae",)
        if self.stress_weight > 0:
            self.outputs.append(Output("stress_mse", self.stress_weight, stress_mse))
            self.secondary = ("energy_mae", "stress_mae")

    def selection_metric(self, dataset: Any) -> str:
        return "force_mae"

    def check_encoder(self, encoder: nn.Module, backbone: str) -> None:
        if not isinstance(encoder, GeometricEncoder):
            raise ConfigError(f"energies and forces need a geometric backbone (schnet, painn, et); "
                              f"model.backbone is {backbone!r}")

    def prepare(self, train: Any) -> None:
        """Fit the per-element reference energies on the training structures."""
        self.reference_energies = fit_reference_energies(train)

    def build_model(self, encoder: nn.Module) -> nn.Module:
        head = EnergyHead(encoder.out_channels, reference_energies=self.reference_energies)
        return EnergyForceModel(encoder, head, stress=self.stress_weight > 0)

    def predict(self, model: nn.Module, batch: Data) -> dict[str, Tensor]:
        return model(batch, training=True)

    def evaluate(self, model: nn.Module, dataset: Any, device: torch.device, batch_size: int = 64) -> dict[str, float]:
        """Force MAE, energy MAE per atom (and stress MAE) of ``dataset``.

        Not under ``torch.no_grad``: forces are gradients. The graph is not kept (no ``create_graph``).
        """
        model.eval()
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("forces", "true_forces", "energy", "true_energy",
                                                              "atoms", "stress", "true_stress")}
        with torch.enable_grad():
            for batch in DataLoader(dataset, batch_size=batch_size):
                batch = batch.to(device)
                out = model(batch)
                parts["forces"].append(out["forces"].detach().cpu().numpy())
                parts["true_forces"].append(batch.forces.cpu().numpy())
                parts["energy"].append(out["energy"].detach().cpu().numpy())
                parts["true_energy"].append(batch.energy.view(-1).cpu().numpy())
                parts["atoms"].append(atoms_per_structure(batch).cpu().numpy())
                if "stress" in out:
                    parts["stress"].append(out["stress"].detach().cpu().numpy())
                    parts["true_stress"].append(batch.stress.view_as(out["stress"]).cpu().numpy())
        if not parts["energy"]:
            return {"force_mae": float("nan"), **{k: float("nan") for k in self.secondary}}
        cat = {k: np.concatenate(v) for k, v in parts.items() if v}
        scores = {"force_mae": metrics.force_mae(cat["true_forces"], cat["forces"]),
                  "energy_mae": metrics.energy_mae(cat["true_energy"], cat["energy"], cat["atoms"])}
        if "stress" in cat:
            scores["stress_mae"] = metrics.stress_mae(cat["true_stress"], cat["stress"])
        return scores

    @property
    def task_names(self) -> list[str]:
        return ["energy", "forces"] + (["stress"] if self.stress_weight > 0 else [])

    def checkpoint_state(self) -> dict[str, Any]:
        return {"reference_energies": self.reference_energies}

    def info(self) -> dict[str, Any]:
        return {"units": {k: UNITS[k] for k in ("force_mae", *self.secondary)}}
