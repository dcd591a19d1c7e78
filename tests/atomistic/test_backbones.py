"""Geometric backbones, SCD conditioning and atomistic heads: symmetry, derivatives, batching."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from graphssl.atomistic.backbones import GEOMETRIC_BACKBONES, build_geometric_backbone
from graphssl.atomistic.conditioning import (
    AdaptiveNorm,
    LayerConditioning,
    NullCondition,
)
from graphssl.atomistic.graph import AtomisticData
from graphssl.atomistic.heads import (
    EnergyHead,
    GraphEmbedding,
    VectorHead,
    forces_and_stress,
    with_strain,
)
from graphssl.core.errors import ConfigError

CUTOFF = 3.5
SKIN = 0.4  # the test neighbour lists reach further than the model: backbones must drop the extra edges
HIDDEN = 16
NAMES = sorted(GEOMETRIC_BACKBONES)


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- structures


def brute_force_neighbors(pos: Tensor, cell: Tensor | None, cutoff: float) -> tuple[Tensor, Tensor]:
    """All (i, j, shift) with ``|pos[j] + shift @ cell - pos[i]| < cutoff``, self excluded."""
    n = pos.size(0)
    if cell is None or torch.linalg.det(cell).abs() < 1e-12:
        shifts = torch.zeros(1, 3, dtype=torch.long)
        cell = torch.zeros(3, 3, dtype=pos.dtype)
    else:
        # Images along lattice vector a are needed up to cutoff / (plane spacing), plus one
        # because the atoms are not wrapped into the cell.
        reach = [math.ceil(cutoff * float(torch.linalg.inv(cell)[:, a].norm())) + 1 for a in range(3)]
        shifts = torch.tensor(list(itertools.product(*(range(-r, r + 1) for r in reach))), dtype=torch.long)
    offsets = shifts.to(pos.dtype) @ cell  # [M, 3]
    vec = pos[None, :, None, :] + offsets[None, None] - pos[:, None, None, :]  # [i, j, m, 3]
    dist = vec.norm(dim=-1)
    is_self = (torch.arange(n)[:, None] == torch.arange(n)[None, :])[:, :, None] & (shifts.abs().sum(-1) == 0)
    i, j, m = torch.nonzero((dist < cutoff) & ~is_self, as_tuple=True)
    return torch.stack([i, j]), shifts[m]


def make_data(z: Tensor, pos: Tensor, cell: Tensor | None, skin: float = SKIN) -> AtomisticData:
    edge_index, cell_shift = brute_force_neighbors(pos, cell, CUTOFF + skin)
    cell_ = torch.zeros(3, 3, dtype=pos.dtype) if cell is None else cell
    return AtomisticData(
        z=z, pos=pos, cell=cell_.view(1, 3, 3), pbc=torch.full((1, 3), cell is not None),
        edge_index=edge_index, cell_shift=cell_shift,
    )


def periodic_structure(seed: int = 0) -> AtomisticData:
    """4 atoms in a skewed ~3.3 A cell (smaller than the cutoff: many images)."""
    g = torch.Generator().manual_seed(seed)
    cell = 3.3 * torch.eye(3, dtype=torch.float64) + 0.3 * torch.rand(3, 3, generator=g, dtype=torch.float64)
    frac = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]], dtype=torch.float64)
    frac = frac + 0.05 * torch.randn(4, 3, generator=g, dtype=torch.float64)
    return make_data(torch.tensor([14, 8, 8, 6]), frac @ cell, cell)


def molecule(num_atoms: int = 4, seed: int = 1) -> AtomisticData:
    g = torch.Generator().manual_seed(seed)
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.4, 0.1, 0.0], [-0.3, 1.3, 0.2], [0.2, -0.4, 1.3], [1.5, 1.2, -0.6]])
    pos = pos[:num_atoms].double() + 0.1 * torch.randn(num_atoms, 3, generator=g, dtype=torch.float64)
    return make_data(torch.tensor([6, 1, 8, 7, 1])[:num_atoms], pos, None)


def moved(data: AtomisticData, pos: Tensor, cell: Tensor) -> AtomisticData:
    """The same structure and neighbour list with new positions and cell."""
    out = data.clone()
    out.pos, out.cell = pos, cell
    return out


def random_orthogonal(reflect: bool, seed: int = 3) -> Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    if (torch.linalg.det(q) < 0) != reflect:
        q[:, 0] = -q[:, 0]
    return q


# ---------------------------------------------------------------- model


class Model(nn.Module):
    """A backbone with SCD's conditioning installed and all the heads, in float64."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.backbone = build_geometric_backbone(name, hidden=HIDDEN, num_layers=2, cutoff=CUTOFF)
        LayerConditioning.install(self.backbone)
        self.energy = EnergyHead(HIDDEN, reference_energies=torch.linspace(-1.0, 1.0, 120))
        self.vector = VectorHead.for_backbone(self.backbone)
        self.embed = GraphEmbedding(HIDDEN)

    @property
    def conditioning(self) -> LayerConditioning:
        return self.backbone.layer_hook

    def run(self, data: AtomisticData, condition: Tensor | None = None) -> dict[str, Tensor]:
        """Every output; ``condition`` None runs with the null token (closed gates: the plain network)."""
        strained, displacement = with_strain(data)
        if condition is None:
            s, v = self.backbone(strained)
        else:
            with self.conditioning.given(condition):
                s, v = self.backbone(strained)
        energy = self.energy(s, strained)
        forces, stress = forces_and_stress(energy, strained, displacement)
        out = {"s": s, "energy": energy, "forces": forces, "stress": stress, "noise": self.vector(s, v, strained)}
        if v is not None:
            out["v"] = v
        return {k: t.detach() for k, t in out.items()}


def open_gates(model: nn.Module, seed: int = 7) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, AdaptiveNorm):
            with torch.no_grad():
                m.gate.weight.copy_(torch.randn(m.gate.weight.shape, generator=g))
                m.gate.bias.copy_(torch.randn(m.gate.bias.shape, generator=g))


def make_model(name: str, gates_open: bool = False) -> Model:
    torch.manual_seed(0)
    model = Model(name).double()
    if gates_open:
        open_gates(model)
    return model


def assert_same(a: dict[str, Tensor], b: dict[str, Tensor], atol: float = 1e-10) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=atol, rtol=1e-8), f"{key} differs: {(a[key] - b[key]).abs().max()}"


# ---------------------------------------------------------------- symmetry


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("reflect", [False, True])
def test_rotation_equivariance(name: str, reflect: bool) -> None:
    model = make_model(name, gates_open=True)  # a live condition must not break equivariance
    condition = torch.randn(1, HIDDEN, dtype=torch.float64)
    rot = random_orthogonal(reflect)
    for data in (periodic_structure(), molecule()):
        ref = model.run(data, condition)
        out = model.run(moved(data, data.pos @ rot.T, data.cell @ rot.T), condition)
        expected = {
            "s": ref["s"],
            "energy": ref["energy"],
            "forces": ref["forces"] @ rot.T,
            "stress": rot @ ref["stress"] @ rot.T,
            "noise": ref["noise"] @ rot.T,
        }
        if "v" in ref:
            expected["v"] = torch.einsum("ab,nbf->naf", rot, ref["v"])
        assert_same(out, expected)
        assert ref["noise"].abs().max() > 1e-6 and ref["forces"].abs().max() > 1e-6  # not trivially zero


@pytest.mark.parametrize("name", NAMES)
def test_translation_invariance(name: str) -> None:
    model = make_model(name)
    shift = torch.tensor([0.7, -1.9, 3.1], dtype=torch.float64)
    for data in (periodic_structure(), molecule()):
        assert_same(model.run(moved(data, data.pos + shift, data.cell)), model.run(data))


@pytest.mark.parametrize("name", NAMES)
def test_supercell_doubles_energy(name: str) -> None:
    model = make_model(name)
    unit = periodic_structure()
    cell = unit.cell[0]
    super_cell = cell.clone()
    super_cell[0] = 2 * cell[0]
    sup = make_data(torch.cat([unit.z, unit.z]), torch.cat([unit.pos, unit.pos + cell[0]]), super_cell)
    a, b = model.run(unit), model.run(sup)
    assert torch.allclose(b["energy"], 2 * a["energy"], atol=1e-9, rtol=1e-10)
    for key in ("s", "forces", "noise"):
        assert torch.allclose(b[key], torch.cat([a[key], a[key]]), atol=1e-9), key
    assert torch.allclose(b["stress"], a["stress"], atol=1e-9)  # stress is intensive


@pytest.mark.parametrize("name", NAMES)
def test_edges_beyond_cutoff_are_ignored(name: str) -> None:
    model = make_model(name)
    unit = periodic_structure()
    tight = make_data(unit.z, unit.pos, unit.cell[0], skin=0.0)
    assert tight.edge_index.size(1) < unit.edge_index.size(1)
    assert_same(model.run(unit), model.run(tight))


@pytest.mark.parametrize("name", NAMES)
def test_energy_is_continuous_at_the_cutoff(name: str) -> None:
    """An atom stepping across the cutoff must not make the energy or forces jump."""
    model = make_model(name)
    energies, forces = [], []
    for delta in (-1e-6, 1e-6):
        pos = torch.tensor([[0.0, 0.0, 0.0], [1.1, 0.0, 0.0], [0.0, CUTOFF + delta, 0.0]], dtype=torch.float64)
        out = model.run(make_data(torch.tensor([6, 8, 1]), pos, None, skin=0.1))
        energies.append(out["energy"])
        forces.append(out["forces"])
    assert torch.allclose(energies[0], energies[1], atol=1e-9)
    assert torch.allclose(forces[0], forces[1], atol=1e-6)


# ---------------------------------------------------------------- derivatives


@torch.no_grad()
def energy_of(model: Model, data: AtomisticData) -> float:
    s, _ = model.backbone(data)
    return float(model.energy(s, data).sum())


@pytest.mark.parametrize("name", NAMES)
def test_forces_match_finite_differences(name: str) -> None:
    model = make_model(name)
    h = 1e-5
    for data in (molecule(4), periodic_structure()):
        forces = model.run(data)["forces"]
        numeric = torch.zeros_like(forces)
        for atom, axis in itertools.product(range(data.pos.size(0)), range(3)):
            step = torch.zeros_like(data.pos)
            step[atom, axis] = h
            plus = energy_of(model, moved(data, data.pos + step, data.cell))
            minus = energy_of(model, moved(data, data.pos - step, data.cell))
            numeric[atom, axis] = -(plus - minus) / (2 * h)
        assert torch.allclose(forces, numeric, atol=1e-7, rtol=1e-5), (forces - numeric).abs().max()


@pytest.mark.parametrize("name", NAMES)
def test_stress_matches_finite_differences(name: str) -> None:
    model = make_model(name)
    data = periodic_structure(seed=5)
    stress = model.run(data)["stress"][0]
    volume = float(torch.linalg.det(data.cell[0]).abs())
    h = 1e-5
    numeric = torch.zeros(3, 3, dtype=torch.float64)
    for a, b in itertools.product(range(3), range(3)):
        energies = []
        for sign in (1.0, -1.0):
            d = torch.zeros(3, 3, dtype=torch.float64)
            d[a, b] = sign * h
            deform = torch.eye(3, dtype=torch.float64) + 0.5 * (d + d.T)  # symmetric strain
            energies.append(energy_of(model, moved(data, data.pos @ deform, data.cell @ deform)))
        numeric[a, b] = (energies[0] - energies[1]) / (2 * h) / volume
    assert torch.allclose(stress, numeric, atol=1e-8, rtol=1e-5), (stress - numeric).abs().max()
    assert torch.allclose(stress, stress.T, atol=1e-12)


def test_forces_need_grad_on_positions() -> None:
    model = make_model("schnet")
    data = molecule()
    s, _ = model.backbone(data)
    with pytest.raises(ConfigError, match="with_strain"):
        forces_and_stress(model.energy(s, data), data)


def test_training_mode_keeps_the_graph_for_force_losses() -> None:
    model = make_model("painn")
    data, displacement = with_strain(periodic_structure())
    s, _ = model.backbone(data)
    forces, stress = forces_and_stress(model.energy(s, data), data, displacement, training=True)
    (forces.pow(2).sum() + stress.pow(2).sum()).backward()
    assert model.backbone.embedding.weight.grad is not None


# ---------------------------------------------------------------- batching


@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_each_alone(name: str) -> None:
    model = make_model(name, gates_open=True)
    structures = [periodic_structure(), molecule(5)]
    condition = torch.randn(2, HIDDEN, dtype=torch.float64)
    alone = [model.run(d, condition[k : k + 1]) for k, d in enumerate(structures)]
    together = model.run(Batch.from_data_list(structures), condition)
    expected = {key: torch.cat([a[key] for a in alone]) for key in alone[0]}
    assert_same(together, expected)
    assert torch.equal(together["stress"][1], torch.zeros(3, 3, dtype=torch.float64))  # the molecule has no cell
    embedding = model.embed(model.backbone(Batch.from_data_list(structures))[0], Batch.from_data_list(structures))
    assert embedding.shape == (2, HIDDEN)


# ---------------------------------------------------------------- conditioning


def test_adaptive_norm_identity_and_gate() -> None:
    torch.manual_seed(0)
    norm = AdaptiveNorm(8, 4)
    s, cond = torch.randn(5, 8), torch.randn(2, 4)
    batch = torch.tensor([0, 0, 1, 1, 1])
    assert norm(s, None, batch) is s
    assert torch.equal(norm(s, cond, batch), s)  # fresh: closed gate
    open_gates(norm)
    out = norm(s, cond, batch)
    assert not torch.allclose(out, s)
    # Each atom is modulated by its own graph's condition only.
    assert torch.allclose(out[:2], norm(s[:2], cond[:1]), atol=1e-6)
    with pytest.raises(ConfigError, match="cond_dim"):
        norm(s, torch.randn(2, 5), batch)


@pytest.mark.parametrize("name", NAMES)
def test_conditioning_in_every_layer(name: str) -> None:
    """The backbones are plain; installed from outside, the conditioning modulates every layer."""
    torch.manual_seed(0)
    backbone = build_geometric_backbone(name, hidden=HIDDEN, num_layers=2, cutoff=CUTOFF).double()
    assert not any(isinstance(m, AdaptiveNorm) for m in backbone.modules())
    data = periodic_structure()
    s0, v0 = backbone(data)
    conditioning = LayerConditioning.install(backbone).double()
    norms = list(conditioning.norms)
    assert len(norms) == backbone.num_layers
    seen: list[Tensor] = []
    for m in norms:
        m.register_forward_hook(lambda mod, args, out: seen.append(args[1]))
    condition = torch.randn(1, HIDDEN, dtype=torch.float64)
    # Fresh gates are closed: the null condition and a real one both leave the plain network's numbers.
    s1, v1 = backbone(data)
    with conditioning.given(condition):
        s2, v2 = backbone(data)
    for s, v in ((s1, v1), (s2, v2)):
        assert torch.equal(s, s0) and (v0 is None or torch.equal(v, v0))
    assert len(seen) == 2 * len(norms)
    assert all(torch.equal(c, conditioning.null(1)) for c in seen[: len(norms)])
    assert all(c is condition for c in seen[len(norms):])
    # Once the gates open, the condition matters and gradients reach it.
    open_gates(conditioning)
    condition.requires_grad_(True)
    with conditioning.given(condition):
        s3, _ = backbone(data)
    assert not torch.allclose(s3, s0)
    s3.pow(2).sum().backward()
    assert condition.grad is not None and condition.grad.abs().sum() > 0
    # Removed again, the backbone is the plain network.
    backbone.set_layer_hook(None)
    assert torch.equal(backbone(data)[0], s0)


def test_a_backbone_holds_one_layer_hook() -> None:
    backbone = build_geometric_backbone("schnet", hidden=HIDDEN, num_layers=2, cutoff=CUTOFF)
    LayerConditioning.install(backbone)
    with pytest.raises(ConfigError, match="already has a layer hook"):
        LayerConditioning.install(backbone)


def test_null_condition_drop() -> None:
    null = NullCondition(4)
    condition = torch.randn(20000, 4) + 5.0  # far from the token: a row is one or the other
    out = null.drop(condition, 0.2, generator=torch.Generator().manual_seed(0))
    dropped = (out == null.token).all(dim=-1)
    kept = (out == condition).all(dim=-1)
    assert bool((dropped ^ kept).all())
    assert 0.19 < dropped.float().mean() < 0.21
    again = null.drop(condition, 0.2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert torch.equal(null.drop(condition, 0.0), condition)
    assert bool((null.drop(condition, 1.0) == null.token).all())
    assert null(3).shape == (3, 4)
    null.drop(condition[:100], 0.5).sum().backward()
    assert null.token.grad is not None and null.token.grad.abs().sum() > 0
    with pytest.raises(ConfigError):
        null.drop(condition, 1.5)


# ---------------------------------------------------------------- registry and heads


def test_registry() -> None:
    from graphssl.nn import BACKBONES, GeometricBackbone

    assert set(GEOMETRIC_BACKBONES) == {"schnet", "painn", "et"}
    # one registry for every backbone: the geometric ones are registered next to the 2D ones
    assert {n for n, cls in BACKBONES.items() if issubclass(cls, GeometricBackbone)} == set(GEOMETRIC_BACKBONES)
    with pytest.raises(ConfigError, match="unknown backbone 'dimenet'.*painn.*schnet"):
        build_geometric_backbone("dimenet")
    with pytest.raises(ConfigError, match="not geometric.*schnet"):
        build_geometric_backbone("gin")
    with pytest.raises(ConfigError, match="divisible"):
        build_geometric_backbone("et", hidden=20, heads=8)


def test_heads_contracts() -> None:
    model = make_model("schnet")
    data = molecule()
    s, v = model.backbone(data)
    assert v is None and not model.vector.equivariant
    with pytest.raises(ConfigError, match="equivariant=False"):
        VectorHead(HIDDEN).double()(s, v, data)
    plain = EnergyHead(HIDDEN).double()
    plain.mlp.load_state_dict(model.energy.mlp.state_dict())
    reference = model.energy.reference_energies.double()[data.z].sum()
    assert torch.allclose(model.energy(s, data), plain(s, data) + reference)
