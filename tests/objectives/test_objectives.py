import pytest
import torch
from torch_geometric.data import Batch

from graphssl.core.config import ModelConfig
from graphssl.core.errors import ConfigError
from graphssl.molecule.adapter import smiles_to_data
from graphssl.molecule.features import molecule_feature_spec
from graphssl.nn import Encoder, build_encoder
from graphssl.nn.backbones import build_backbone
from graphssl.objectives import (
    OBJECTIVES,
    AttrMask,
    GraphMAE,
    Objective,
    build_objective,
    objective_options,
    register_objective,
)

MOLS = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "C1CCCCC1N", "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "[Na+]"]


def _batch():
    return Batch.from_data_list([smiles_to_data(s) for s in MOLS])


def _encoder(backbone: str, hidden: int = 16, num_layers: int = 2, **kwargs):
    return build_encoder(ModelConfig(backbone=backbone, hidden=hidden, num_layers=num_layers, **kwargs),
                         molecule_feature_spec())


@pytest.mark.parametrize("backbone", ["gine", "gcn"])
@pytest.mark.parametrize("name", ["graphmae", "attrmask"])
def test_loss_is_finite_and_reaches_every_encoder_parameter(name, backbone):
    torch.manual_seed(0)
    encoder = _encoder(backbone)
    objective = build_objective(name, encoder)
    loss = objective(_batch())
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    # Every encoder parameter that takes part in the forward pass gets a gradient.
    missing = [n for n, p in encoder.named_parameters() if p.grad is None]
    assert missing == []


def test_graphmae_learns_atom_types():
    torch.manual_seed(0)
    encoder = _encoder("gine", hidden=32)
    objective = GraphMAE(encoder, mask_rate=0.3)
    optimiser = torch.optim.Adam(objective.parameters(), lr=1e-2)
    batch = _batch()
    first = objective(batch).item()
    for _ in range(60):
        loss = objective(batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.5 * first


def test_graphmae_decoder_does_not_see_masked_inputs():
    """With re-masking, the reconstruction of a masked node cannot depend on its own
    encoder output (only on its neighbours')."""
    torch.manual_seed(0)
    encoder = _encoder("gin", hidden=8, num_layers=1, norm=None)
    objective = GraphMAE(encoder, mask_rate=0.5, replace_rate=0.0, keep_rate=0.0)
    batch = _batch()
    captured = {}

    def hook(module, args):
        captured["z"] = args[0].detach().clone()

    objective.decoder.register_forward_pre_hook(hook)
    torch.manual_seed(1)
    objective(batch)
    z = captured["z"]
    zero_rows = (z.abs().sum(-1) == 0).sum().item()
    assert zero_rows == round(0.5 * batch.num_nodes)


def test_target_and_option_validation():
    encoder = _encoder("gin", hidden=8, num_layers=1)
    with pytest.raises(ConfigError, match="has no option 'mask_ratio'.*mask_rate"):
        build_objective("graphmae", encoder, {"mask_ratio": 0.3})
    with pytest.raises(ConfigError, match="unknown objective 'byol'"):
        build_objective("byol", encoder)
    with pytest.raises(ConfigError, match="Did you mean 'graphmae'"):
        build_objective("graph-mea", encoder)
    with pytest.raises(ConfigError, match="alpha"):
        build_objective("graphmae", encoder, {"alpha": 0.5})
    with pytest.raises(ValueError, match="mask_rate"):
        AttrMask(encoder, mask_rate=1.5)


# ---------------------------------------------------------------- the base class and its hooks


def _structures():
    from graphssl.atomistic.adapters import from_positions

    pos = torch.tensor([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    return [from_positions([8, 1, 1], pos + 0.05 * k, cutoff=5.0) for k in range(4)]


def _gin_reading_no_edges():
    """A gin encoder with an edge embedding it does not read (as B-rep graphs under gin have)."""
    spec = molecule_feature_spec()
    backbone = build_backbone("gin", in_channels=16, hidden=16, num_layers=2)
    return Encoder(backbone, spec.node_embedding(16), out_channels=16, edge_embedding=spec.edge_embedding(16))


@pytest.mark.parametrize("name, backbone", [
    ("graphmae", "gin"), ("graphmae", "gine"), ("graphmae", "unread-edges"), ("attrmask", "gine"),
    ("attrmask", "unread-edges"), ("higmae", "gine"), ("higmae", "unread-edges"), ("denoise", "painn"),
    ("denoise", "schnet"), ("denoise", "et"), ("scd", "painn"), ("scd", "schnet"), ("scd", "et"),
    ("graphcl", "gine"), ("graphcl", "unread-edges"), ("jepa", "gine"), ("jepa", "unread-edges"),
])
def test_parameters_without_gradient_are_exactly_the_declared_ones(name, backbone):
    """The distributed wrapper fails (or hangs) on a parameter that gets no gradient unless told to look
    for such parameters: ``unused_parameters()`` must name every one of them, and no more, so that
    objectives that always train everything (plain denoising too) never pay for the search."""
    torch.manual_seed(0)
    if backbone == "unread-edges":
        encoder = _gin_reading_no_edges()
    elif backbone in ("painn", "schnet", "et"):
        encoder = build_encoder(ModelConfig(backbone=backbone, hidden=16, num_layers=2), cutoff=5.0)
    else:
        encoder = _encoder(backbone)
    objective = build_objective(name, encoder, {})
    graphs = _structures() if backbone in ("painn", "schnet", "et") else [smiles_to_data(s) for s in MOLS]
    if objective.transform is not None:
        graphs = objective.transform.many(graphs)
    objective(Batch.from_data_list(graphs)).backward()
    unused = sorted(n for n, p in objective.named_parameters() if p.requires_grad and p.grad is None)
    assert unused == sorted(objective.unused_parameters())
    if name in ("attrmask", "graphcl", "jepa") and backbone == "unread-edges":  # only the MAE decoders read edges
        assert unused and all(n.startswith("encoder.edge_embedding.") for n in unused)
    else:
        assert unused == []


def test_hooks_default_to_doing_nothing():
    class Constant(Objective):
        def forward(self, data):
            return self.encoder(data).sum() * 0.0

    objective = Constant(_encoder("gin"))
    assert objective.transform is None
    objective.set_epoch(3, 10)
    assert objective.unused_parameters() == [] and objective.export_state() == {}
    encoder = _encoder("gin")
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    Constant.restore_encoder(encoder, {})
    assert encoder.state_dict().keys() == before.keys()


def test_every_objective_subclasses_the_base_class_and_users_register_their_own():
    assert set(OBJECTIVES) == {"attrmask", "brepmae", "denoise", "descriptors", "graphcl", "graphmae", "higmae", "jepa",
                               "scd"}
    assert all(issubclass(cls, Objective) for _, cls in OBJECTIVES.items())

    class Mine(Objective):
        def __init__(self, encoder, weight: float = 2.0) -> None:
            super().__init__(encoder)
            self.weight = weight

        def forward(self, data):
            return self.weight * self.encoder(data).pow(2).mean()

    register_objective("mine", Mine)
    try:
        assert objective_options("mine") == {"weight": 2.0}
        objective = build_objective("mine", _encoder("gin"), {"weight": 3.0})
        assert isinstance(objective, Mine) and objective.weight == 3.0
        assert torch.isfinite(objective(_batch()))
        with pytest.raises(ConfigError, match="already registered"):
            register_objective("mine", GraphMAE)
        with pytest.raises(ConfigError, match="subclass of graphssl.objectives.Objective"):
            register_objective("plain", torch.nn.Linear)
    finally:
        OBJECTIVES._entries.pop("mine")
        OBJECTIVES._names.pop("mine")


def test_masked_objectives_need_a_message_passing_encoder():
    geometric = build_encoder(ModelConfig(backbone="schnet", hidden=8, num_layers=1))
    for name in ("graphmae", "attrmask", "higmae"):
        with pytest.raises(ConfigError, match="message-passing backbone"):
            build_objective(name, geometric)


_WITHOUT_EXTRAS = """
import sys
BLOCKED = {blocked!r}

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is blocked in this test")

sys.meta_path.insert(0, Block())
import torch
from torch_geometric.data import Batch, Data
from graphssl.core.config import ModelConfig
from graphssl.nn import build_encoder
from graphssl.objectives import build_objective

torch.manual_seed(0)
{body}
print(sorted(m for m in BLOCKED if m in sys.modules))
"""

# the package, the molecule schema and the data-set catalogue need no optional extra either
_SCHEMA = """
from graphssl.data.sources import catalogue
from graphssl.molecule.features import FEATURIZER_VERSION, molecule_feature_spec

spec = molecule_feature_spec()
assert spec.node_dims[0] == 119 and len(spec.edge_dims) == 3 and FEATURIZER_VERSION
assert len(catalogue()) > 10
"""

_MOLECULES = """
from graphssl.molecule.features import molecule_feature_spec

def graph(n):
    ring = torch.arange(n)
    edges = torch.stack([ring, (ring + 1) % n])
    x = torch.tensor([[6, 0, 4, 5, 3, 0, 2, 0, 0]] * n)
    return Data(x=x, edge_attr=torch.zeros(2 * n, 3, dtype=torch.long), edge_index=torch.cat([edges, edges.flip(0)], 1))

for name in ("graphmae", "attrmask", "higmae"):
    encoder = build_encoder(ModelConfig(backbone="gine", hidden=16, num_layers=2), molecule_feature_spec())
    objective = build_objective(name, encoder, {"levels": 1} if name == "higmae" else {})
    graphs = [graph(n) for n in (5, 6, 7, 8)]
    if objective.transform is not None:
        graphs = objective.transform.many(graphs)
    objective(Batch.from_data_list(graphs)).backward()
"""

_STRUCTURES = """
from graphssl.atomistic.graph import AtomisticData

def structure(n):
    pos = torch.randn(n, 3)
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    keep = i != j
    return AtomisticData(z=torch.full((n,), 6), pos=pos, cell=torch.zeros(1, 3, 3),
                         pbc=torch.zeros(1, 3, dtype=torch.bool), edge_index=torch.stack([i[keep], j[keep]]),
                         cell_shift=torch.zeros(int(keep.sum()), 3, dtype=torch.long))

for name in ("denoise", "scd"):
    encoder = build_encoder(ModelConfig(backbone="painn", hidden=16, num_layers=2), cutoff=5.0)
    build_objective(name, encoder)(Batch.from_data_list([structure(n) for n in (3, 4, 5)])).backward()
"""


def test_objectives_import_and_run_without_the_optional_extras():
    """With RDKit, vesin, ASE, pymatgen and OCP unimportable, the package, the molecule schema and the
    catalogue load, the objectives import, and each trains on graphs given to it (one process for all: starting Python with torch is the slow part)."""
    import subprocess
    import sys

    blocked = ("vesin", "ase", "pymatgen", "rdkit", "OCP")
    code = _WITHOUT_EXTRAS.format(blocked=blocked, body=_SCHEMA + _MOLECULES + _STRUCTURES)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
