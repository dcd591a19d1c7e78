"""Output heads on geometric backbones: energy (and forces, stress by autograd), per-atom
vectors (coordinate noise), and a per-graph embedding (SCD's condition, a mean over atoms).

Forces and stress follow the usual conventions (ASE, MACE): ``forces = -dE/dpos`` and
``stress = (1/V) dE/d(strain)`` in eV/A^3, where the strain ``eps`` acts on rows as
``pos -> pos (I + eps)`` and ``cell -> cell (I + eps)``. Positive stress is tensile.

Typical use::

    data, displacement = with_strain(data)        # pos and cell now depend on a zero strain
    s, v = backbone(data)
    energy = energy_head(s, data)                 # [B]
    forces, stress = forces_and_stress(energy, data, displacement, training=True)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn.models.schnet import GaussianSmearing
from torch_geometric.utils import scatter

from graphssl.atomistic.backbones.base import GeometricBackbone, cosine_cutoff, edge_geometry
from graphssl.core.errors import ConfigError


def _atom_graph_index(data: Data) -> tuple[Tensor, int]:
    """Atom -> structure index (zeros for a single structure) and the number of structures."""
    batch = getattr(data, "batch", None)
    if batch is None:
        return torch.zeros(data.pos.size(0), dtype=torch.long, device=data.pos.device), 1
    num_graphs = getattr(data, "num_graphs", None)
    return batch, int(num_graphs) if num_graphs is not None else int(batch.max()) + 1


class EnergyHead(nn.Module):
    """Per-atom energies from invariant features, summed per structure: ``[B]``.

    ``reference_energies`` (indexed by atomic number, eV) are added per atom, so the network
    learns only the interaction energy on top of isolated-atom (or fitted) references.
    """

    def __init__(self, hidden: int, reference_energies: Tensor | Sequence[float] | None = None) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden // 2), nn.SiLU(), nn.Linear(hidden // 2, 1))
        ref = None if reference_energies is None else torch.as_tensor(reference_energies, dtype=torch.float)
        self.register_buffer("reference_energies", ref)

    def forward(self, s: Tensor, data: Data) -> Tensor:
        atom_energy = self.mlp(s).squeeze(-1)
        if self.reference_energies is not None:
            atom_energy = atom_energy + self.reference_energies.to(atom_energy.dtype)[data.z]
        index, num_graphs = _atom_graph_index(data)
        return scatter(atom_energy, index, dim=0, dim_size=num_graphs, reduce="sum")


def with_strain(data: Data) -> tuple[Data, Tensor]:
    """A shallow copy of ``data`` whose ``pos`` and ``cell`` depend on a zero strain.

    Returns ``(strained, displacement)`` with ``displacement`` ``[B, 3, 3]`` zeros that
    require grad; its symmetric part ``eps`` maps ``pos -> pos (I + eps)`` and
    ``cell -> cell (I + eps)`` per structure. Run the backbone on ``strained`` (edge vectors
    are recomputed from ``pos`` and ``cell``) and pass ``displacement`` to
    :func:`forces_and_stress`. ``strained.pos`` requires grad too, so forces come for free.
    """
    cell = getattr(data, "cell", None)
    if cell is None:
        raise ConfigError("with_strain needs data.cell ([B, 3, 3] lattice vectors as rows); this structure has none")
    cell = cell.view(-1, 3, 3)
    index, _ = _atom_graph_index(data)
    displacement = torch.zeros_like(cell, requires_grad=True)
    eps = 0.5 * (displacement + displacement.transpose(-1, -2))
    strained = copy.copy(data)  # new attribute store: the caller's tensors are untouched
    strained.pos = data.pos + torch.bmm(data.pos.unsqueeze(1), eps[index]).squeeze(1)
    strained.cell = (cell + torch.bmm(cell, eps)).view_as(data.cell)
    return strained, displacement


def forces_and_stress(
    energy: Tensor, data: Data, displacement: Tensor | None = None, *, training: bool = False
) -> tuple[Tensor, Tensor | None]:
    """Forces ``-dE/dpos`` ``[N, 3]`` and, given ``displacement`` from :func:`with_strain`,
    stress ``(1/V) dE/d(eps)`` ``[B, 3, 3]`` (zeros for structures without a cell volume).

    ``training=True`` keeps the graph (``create_graph``) so a loss on forces or stress can
    be back-propagated into the parameters.
    """
    if not data.pos.requires_grad:
        raise ConfigError(
            "data.pos does not require grad, so forces cannot be computed; call "
            "`data, displacement = with_strain(data)` or `data.pos.requires_grad_(True)` before the backbone"
        )
    inputs = [data.pos] if displacement is None else [data.pos, displacement]
    grads = torch.autograd.grad(energy.sum(), inputs, create_graph=training, allow_unused=True)
    forces = -grads[0] if grads[0] is not None else torch.zeros_like(data.pos)
    if displacement is None:
        return forces, None
    virial = grads[1] if grads[1] is not None else torch.zeros_like(displacement)
    volume = torch.linalg.det(data.cell.view(-1, 3, 3)).abs()
    # Molecules in a mixed batch have a zero cell: their stress is undefined, report zeros.
    safe = torch.where(volume > 1e-12, volume, torch.ones_like(volume))
    stress = torch.where((volume > 1e-12).view(-1, 1, 1), virial / safe.view(-1, 1, 1), torch.zeros_like(virial))
    return forces, stress


class GatedEquivariantBlock(nn.Module):
    """Gated equivariant block (PaiNN, Schütt et al. 2021): invariants gate vector channels.

    ``(s [N, F_in], v [N, 3, F_in]) -> (s [N, F_out], v [N, 3, F_out])``.
    """

    def __init__(self, in_channels: int, out_channels: int, scalar_activation: bool = True) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.lin_v1 = nn.Linear(in_channels, out_channels, bias=False)
        self.lin_v2 = nn.Linear(in_channels, out_channels, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(in_channels + out_channels, in_channels), nn.SiLU(), nn.Linear(in_channels, 2 * out_channels)
        )
        self.act = nn.SiLU() if scalar_activation else nn.Identity()

    def forward(self, s: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        v1 = self.lin_v1(v)
        v2_norm = torch.sqrt((self.lin_v2(v) ** 2).sum(dim=1) + 1e-8)
        s_out, gate = self.mlp(torch.cat([s, v2_norm], dim=-1)).split(self.out_channels, dim=-1)
        return self.act(s_out), gate.unsqueeze(1) * v1


class VectorHead(nn.Module):
    """Equivariant per-atom vectors ``[N, 3]`` (e.g. predicted coordinate noise).

    ``equivariant=True``: two gated equivariant blocks on the backbone's vector features.
    ``equivariant=False`` (invariant backbones such as SchNet): a sum over edges,
    ``out_i = sum_j w(s_i, s_j, d_ij) r_ij / d_ij``, with ``w`` an MLP times the cosine
    cutoff; it rotates with the structure because only the unit vectors carry direction.
    :meth:`for_backbone` picks the right kind.
    """

    def __init__(self, hidden: int, equivariant: bool = True, cutoff: float = 5.0, num_rbf: int = 16) -> None:
        super().__init__()
        self.hidden, self.equivariant, self.cutoff = hidden, equivariant, cutoff
        if equivariant:
            self.blocks = nn.ModuleList(
                [GatedEquivariantBlock(hidden, hidden // 2), GatedEquivariantBlock(hidden // 2, 1, False)]
            )
        else:
            self.rbf = GaussianSmearing(0.0, cutoff, num_rbf)
            self.edge_mlp = nn.Sequential(nn.Linear(2 * hidden + num_rbf, hidden), nn.SiLU(), nn.Linear(hidden, 1))

    @classmethod
    def for_backbone(cls, backbone: GeometricBackbone, num_rbf: int = 16) -> VectorHead:
        """A head matching ``backbone``: gated blocks if it returns vectors, else edge vectors."""
        return cls(backbone.hidden, equivariant=backbone.equivariant, cutoff=backbone.cutoff, num_rbf=num_rbf)

    def forward(self, s: Tensor, v: Tensor | None, data: Data) -> Tensor:
        if self.equivariant:
            if v is None:
                raise ConfigError(
                    "VectorHead(equivariant=True) needs vector features but the backbone returned v=None; "
                    "use VectorHead.for_backbone(backbone) or VectorHead(hidden, equivariant=False)"
                )
            for block in self.blocks:
                s, v = block(s, v)
            return v.squeeze(-1)
        geo = edge_geometry(data, self.cutoff)
        features = torch.cat([s[geo.i], s[geo.j], self.rbf(geo.dist)], dim=-1)
        w = self.edge_mlp(features) * cosine_cutoff(geo.dist, self.cutoff).unsqueeze(-1)  # [E, 1]
        return torch.zeros(s.size(0), 3, dtype=s.dtype, device=s.device).index_add_(0, geo.i, w * geo.unit)

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}, equivariant={self.equivariant}"


class GraphEmbedding(nn.Module):
    """Pooled atom features through an MLP: one vector per structure ``[B, out]``.

    SCD embeds the clean structure with it and feeds the result to every layer of the
    denoising pass as the condition (``out`` defaults to ``hidden`` to match AdaptiveNorm).
    ``reduce="mean"`` (the default) makes the embedding size-intensive: a supercell of a
    crystal gets exactly the condition of its unit cell. A sum grows with the number of
    atoms, so the modulation it sets grows with the cell until the loss of a crystal of a few
    hundred atoms diverges; use ``"sum"`` only for inputs of one size.
    """

    def __init__(self, hidden: int, out_channels: int | None = None, reduce: str = "mean") -> None:
        super().__init__()
        if reduce not in ("mean", "sum"):
            raise ConfigError(f"GraphEmbedding reduce must be 'mean' or 'sum', got {reduce!r}")
        out = out_channels or hidden
        self.reduce = reduce
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, out))

    def forward(self, s: Tensor, data: Data) -> Tensor:
        index, num_graphs = _atom_graph_index(data)
        return self.mlp(scatter(s, index, dim=0, dim_size=num_graphs, reduce=self.reduce))

    def extra_repr(self) -> str:
        return f"reduce={self.reduce}"
