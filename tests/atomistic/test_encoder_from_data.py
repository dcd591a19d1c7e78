"""A 2D encoder built in Python for crystal graphs takes its input layout from the data set, and
a layout that does not fit the data fails when the encoder is built, not at the first batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pymatgen.core import Lattice, Structure
from torch_geometric.loader import DataLoader

from graphssl.core.config import DataConfig, ModelConfig
from graphssl.core.errors import ConfigError, DataError
from graphssl.data.dataset import load_dataset
from graphssl.molecule.features import molecule_feature_spec
from graphssl.nn import Encoder, build_encoder
from graphssl.objectives import HiGMAE


@pytest.fixture(scope="module")
def crystals(tmp_path_factory):
    root = tmp_path_factory.mktemp("crystals")
    folder = root / "cifs"
    folder.mkdir()
    rock_salt = [[0, 0, 0], [0.5, 0, 0], [0.5, 0.5, 0], [0, 0.5, 0], [0.5, 0, 0.5], [0, 0, 0.5], [0, 0.5, 0.5],
                 [0.5, 0.5, 0.5]]
    Structure(Lattice.cubic(5.64), ["Na", "Cl"] * 4, rock_salt).to(filename=str(folder / "nacl.cif"))
    Structure(Lattice.cubic(5.43), ["Si", "Si"], [[0, 0, 0], [0.25, 0.25, 0.25]]).to(filename=str(folder / "si.cif"))
    return load_dataset(DataConfig(path=str(folder)), cache_dir=Path(root / "cache"), progress=False, verbose=False)


def _higmae_loss(encoder: Encoder, dataset) -> torch.Tensor:
    torch.manual_seed(0)
    objective = HiGMAE(encoder)
    batch = next(iter(DataLoader([objective.transform(data) for data in dataset], batch_size=2)))
    return objective(batch)


def test_the_data_set_supplies_the_feature_layout(crystals):
    config = ModelConfig(backbone="gin", hidden=32, num_layers=2)
    for encoder in (build_encoder(config, crystals), build_encoder(config, dataset=crystals)):
        assert isinstance(encoder, Encoder)
        loss = _higmae_loss(encoder, crystals)
        assert torch.isfinite(loss)
        loss.backward()


def test_a_molecule_layout_on_crystal_graphs_fails_at_build_time(crystals):
    config = ModelConfig(backbone="gin", hidden=32, num_layers=2)
    # what the spec alone cannot know: it fails only once a batch arrives
    with pytest.raises(DataError, match="expected 9 categorical feature columns"):
        _higmae_loss(build_encoder(config, molecule_feature_spec()), crystals)
    with pytest.raises(ConfigError, match=r"feature spec passed to build_encoder \(9 categorical node column\(s\).*"
                                          r"does not match the data set's \(1 categorical node column\(s\) \(120,\)\)"):
        build_encoder(config, molecule_feature_spec(), dataset=crystals)


def test_the_default_backbone_on_crystal_graphs_fails_at_build_time(crystals):
    # gine (the default) adds an edge vector to every message; crystal graphs carry none
    with pytest.raises(ConfigError, match="backbone 'gine' needs edge features, but the data has none"):
        build_encoder(ModelConfig(hidden=32, num_layers=2), crystals)


def test_no_layout_at_all_says_how_to_give_one():
    with pytest.raises(ConfigError, match=r"pass the data set \(build_encoder\(config, dataset\)\) "
                                          r"or its feature_spec"):
        build_encoder(ModelConfig(backbone="gin"))
    with pytest.raises(ConfigError, match="a list without one"):
        build_encoder(ModelConfig(backbone="gin"), [1, 2])
