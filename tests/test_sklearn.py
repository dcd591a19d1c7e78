"""A pretrained encoder as a scikit-learn transformer: pipelines, cross-validation, clone, pickle."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.ensemble import RandomForestRegressor
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, cross_val_score
from sklearn.pipeline import make_pipeline

import graphssl
from graphssl import zoo
from graphssl.core.config import ModelConfig
from graphssl.core.errors import DataError
from graphssl.molecule.features import molecule_feature_spec
from graphssl.nn import build_encoder
from graphssl.sklearn import PretrainedFeaturizer

SMILES = [
    "CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "c1ccncc1C", "CCN(CC)CC", "C1CCCCC1N",
    "c1ccc2ccccc2c1", "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "OC(=O)c1ccccc1O", "CCOC(=O)C",
    "c1ccc(cc1)C(=O)O", "N#Cc1ccccc1", "C1CCOC1", "CC1=CC(=O)C=CC1=O", "c1cc[nH]c1",
    "c1ccsc1", "CC(C)O", "C1CCNCC1", "c1ccc(Cl)cc1", "CCCCCCCC",
    "c1ccc2[nH]ccc2c1", "O=C1CCCCC1", "CC(N)C(=O)O", "c1cnc2ccccc2n1",
]
pytestmark = pytest.mark.usefixtures("one_thread")

MODEL = ModelConfig(backbone="gine", hidden=16, num_layers=2, norm="batch_norm", pooling="sum")


@pytest.fixture
def entry(tmp_path, monkeypatch) -> str:
    torch.manual_seed(0)
    encoder = build_encoder(MODEL, molecule_feature_spec())
    zoo.write_entry("tiny-mol", tmp_path / "zoo", encoder_state=encoder.state_dict(), model=MODEL,
                    objective={"name": "attrmask"}, objective_state={}, feature_spec={"domain": "molecule"})
    monkeypatch.setattr(zoo, "ENTRIES", tmp_path / "zoo")
    return "zoo:tiny-mol"


def _heavy_atoms(smiles: str) -> float:
    from rdkit import Chem

    return float(Chem.MolFromSmiles(smiles).GetNumAtoms())


def test_a_pipeline_cross_validates_next_to_ridge_and_a_forest(entry):
    y = np.array([_heavy_atoms(s) for s in SMILES])
    folds = KFold(3, shuffle=True, random_state=0)
    ridge = make_pipeline(PretrainedFeaturizer(entry, batch_size=5, device="cpu"), Ridge(alpha=1e-3))
    scores = cross_val_score(ridge, np.array(SMILES, dtype=object), y, cv=folds, scoring="r2")
    assert scores.shape == (3,) and np.isfinite(scores).all()
    # sum pooling: a linear model on the embeddings predicts the atom count well
    assert scores.mean() > 0.5
    forest = make_pipeline(PretrainedFeaturizer(entry, device="cpu"),
                           RandomForestRegressor(n_estimators=20, random_state=0))
    scores = cross_val_score(forest, pd.Series(SMILES), y, cv=folds, scoring="neg_mean_absolute_error")
    assert np.isfinite(scores).all()


def test_rows_are_the_encoders_embeddings_in_input_order(entry):
    featurizer = PretrainedFeaturizer(entry, batch_size=4, device="cpu").fit(None)
    X = featurizer.transform(SMILES[:6])
    assert X.shape == (6, 16) and X.dtype == np.float32
    expected = graphssl.embed(entry, SMILES[:6], device="cpu").vectors
    np.testing.assert_allclose(X, expected, rtol=1e-6, atol=1e-6)
    # the same from a one-column table and a one-column 2-D array
    np.testing.assert_allclose(featurizer.transform(pd.DataFrame({"smiles": SMILES[:6]})), X, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(featurizer.transform(np.array(SMILES[:6], dtype=object)[:, None]), X,
                               rtol=1e-6, atol=1e-6)
    names = featurizer.get_feature_names_out()
    assert len(names) == 16 and names[0] == "pretrainedfeaturizer0"


def test_bad_inputs_raise_with_their_reason_or_become_nan_rows(entry):
    items = ["CCO", "C1CC", "c1ccccc1O"]
    with pytest.raises(DataError, match=r"input 1 \('C1CC'\) cannot be embedded: .*unclosed ring"):
        PretrainedFeaturizer(entry, device="cpu").fit(items).transform(items)
    lenient = PretrainedFeaturizer(entry, device="cpu", on_error="nan").fit(items)
    with pytest.warns(UserWarning, match=r"1 of 3 inputs .*input 1 \('C1CC'\): .*unclosed ring"):
        X = lenient.transform(items)
    assert np.isnan(X[1]).all() and np.isfinite(X[[0, 2]]).all()


def test_params_clone_and_pickle(entry, tmp_path, monkeypatch):
    featurizer = PretrainedFeaturizer(entry, batch_size=7, device="cpu", on_error="nan")
    assert featurizer.get_params() == {"checkpoint": entry, "batch_size": 7, "device": "cpu", "on_error": "nan"}
    with pytest.raises(NotFittedError):
        featurizer.transform(["CCO"])
    featurizer.fit(SMILES)
    fresh = clone(featurizer)
    assert fresh.get_params() == featurizer.get_params() and not hasattr(fresh, "n_features_out_")
    assert fresh.set_params(batch_size=2).batch_size == 2
    X = featurizer.transform(SMILES)
    raw = pickle.dumps(featurizer)
    assert b"torch.nn.modules" not in raw and b"graphssl.nn.encoder" not in raw  # weights, no live module
    # the unpickled featuriser carries its weights: the zoo entry is no longer needed
    monkeypatch.setattr(zoo, "ENTRIES", tmp_path / "empty")
    restored = pickle.loads(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(restored.transform(SMILES), X, rtol=1e-6, atol=1e-6)


def test_the_featurizer_is_exported_lazily():
    assert graphssl.PretrainedFeaturizer is PretrainedFeaturizer
