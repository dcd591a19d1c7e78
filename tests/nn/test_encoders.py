import pytest
import torch
from torch import nn
from torch_geometric.data import Batch

from graphssl.core.config import ModelConfig
from graphssl.core.errors import ConfigError, DataError
from graphssl.molecule.adapter import smiles_to_data
from graphssl.molecule.features import molecule_feature_spec
from graphssl.nn import (
    BACKBONES,
    Encoder,
    GeometricEncoder,
    GraphEncoder,
    build_encoder,
    degree_histogram,
    is_geometric,
)

MOLS = ["CCO", "c1ccccc1O", "CC(=O)[O-].[Na+]", "C", "CC(C)Cc1ccc(C(C)C(=O)O)cc1"]


def _graphs():
    return [smiles_to_data(s) for s in MOLS]


@pytest.mark.parametrize("backbone", ["gin", "gine", "gcn", "gat", "sage", "pna"])
def test_batched_embeddings_equal_single_graph_embeddings(backbone):
    torch.manual_seed(0)
    graphs = _graphs()
    deg = degree_histogram(graphs) if backbone == "pna" else None
    encoder = build_encoder(ModelConfig(backbone=backbone, hidden=32, num_layers=2), molecule_feature_spec(), deg=deg)
    encoder.eval()  # batch norm uses running statistics: graphs are then independent
    batch = Batch.from_data_list(graphs)
    with torch.no_grad():
        together = encoder.embed_graphs(batch)
        alone = torch.cat([encoder.embed_graphs(Batch.from_data_list([g])) for g in graphs])
    assert together.shape == (len(MOLS), 32)
    assert torch.allclose(together, alone, atol=1e-5)


def test_bond_features_matter_only_for_edge_aware_backbones():
    torch.manual_seed(0)
    a, b = smiles_to_data("CC"), smiles_to_data("C=C")
    assert torch.equal(a.x[:, 0], b.x[:, 0])
    for backbone, differs in [("gine", True), ("gin", False)]:
        encoder = build_encoder(ModelConfig(backbone=backbone, hidden=16, num_layers=2, norm=None),
                                molecule_feature_spec())
        # hybridisation also differs between ethane and ethylene: equalise all atom features
        b2 = b.clone()
        b2.x = a.x.clone()
        with torch.no_grad():
            ha, hb = encoder(a), encoder(b2)
        assert (not torch.allclose(ha, hb)) == differs


class MyBackbone(nn.Module):
    """A user's own model written to the PyG signature, declaring what it reads."""

    supports_edge_attr = True
    supports_batch = True

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.lin = nn.Linear(hidden, hidden)
        self.seen_edge_attr = self.seen_batch = None

    def forward(self, x, edge_index, edge_attr=None, batch=None):
        self.seen_edge_attr, self.seen_batch = edge_attr, batch
        out = torch.zeros_like(x).index_add_(0, edge_index[1], x[edge_index[0]])
        return torch.relu(self.lin(x + out))


def test_user_backbone_plugs_in():
    spec = molecule_feature_spec()
    backbone = MyBackbone(16)
    encoder = Encoder(backbone, spec.node_embedding(16), out_channels=16, edge_embedding=spec.edge_embedding(16))
    batch = Batch.from_data_list(_graphs())
    h = encoder(batch)
    assert h.shape == (batch.num_nodes, 16)
    assert backbone.seen_edge_attr is not None and backbone.seen_edge_attr.shape == (batch.num_edges, 16)
    assert torch.equal(backbone.seen_batch, batch.batch)
    assert encoder.embed_graphs(batch).shape == (len(MOLS), 16)


class Undeclared(MyBackbone):
    """The same module without the capability flags: it is passed neither (the documented default)."""

    supports_edge_attr = False
    supports_batch = False


def test_capabilities_come_from_declared_flags_not_signatures():
    spec = molecule_feature_spec()
    backbone = Undeclared(16)
    encoder = Encoder(backbone, spec.node_embedding(16), out_channels=16, edge_embedding=spec.edge_embedding(16))
    encoder(Batch.from_data_list(_graphs()))
    assert backbone.seen_edge_attr is None and backbone.seen_batch is None
    assert not encoder.reads_edge_features
    # PyG's own flag decides for the registered backbones
    for name in BACKBONES:
        if not is_geometric(name):
            reads = build_encoder(ModelConfig(backbone=name, hidden=8, num_layers=1), spec,
                                  deg=degree_histogram(_graphs())).reads_edge_features
            assert reads == (name in ("gine", "gat", "pna")), name


def test_build_encoder_returns_one_interface_for_both_kinds():
    from graphssl.atomistic.adapters import from_positions

    molecules = Batch.from_data_list(_graphs())
    structure = from_positions([8, 1, 1], torch.tensor([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]]),
                               cutoff=3.0)
    for name, data, features in [("gin", molecules, molecule_feature_spec()), ("painn", structure, None)]:
        encoder = build_encoder(ModelConfig(backbone=name, hidden=16, num_layers=2, pooling="sum"), features,
                                cutoff=3.0)
        assert isinstance(encoder, GraphEncoder) and encoder.out_channels == 16
        h = encoder(data)
        assert h.shape == (data.num_nodes, 16)
        graphs = encoder.embed_graphs(data)
        assert torch.allclose(graphs, encoder.pool(h, data))
        assert graphs.shape[-1] == 16
    assert isinstance(encoder, GeometricEncoder) and is_geometric("painn") and not is_geometric("gin")
    assert not is_geometric("no-such-backbone")


def test_errors_name_the_problem():
    with pytest.raises(ConfigError, match="unknown backbone 'gni'. Did you mean 'gin'"):
        build_encoder(ModelConfig(backbone="gni"), molecule_feature_spec())
    with pytest.raises(ConfigError, match="pooling"):
        Encoder(MyBackbone(4), nn.Linear(1, 4), 4, pooling="median")
    with pytest.raises(ConfigError, match="feature_spec"):
        build_encoder(ModelConfig(backbone="gin"))  # a 2D backbone needs the data's feature layout
    encoder = build_encoder(ModelConfig(backbone="gin", hidden=8, num_layers=1), molecule_feature_spec())
    data = smiles_to_data("CCO")
    data.x[0, 0] = 500
    with pytest.raises(DataError, match="column 0 has value 500"):
        encoder(data)
