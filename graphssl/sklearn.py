"""A pretrained encoder as a scikit-learn transformer.

::

    from sklearn.ensemble import RandomForestRegressor
    from sklearn.pipeline import make_pipeline
    from graphssl.sklearn import PretrainedFeaturizer

    model = make_pipeline(PretrainedFeaturizer("zoo:gine-attrmask-moses"), RandomForestRegressor())
    model.fit(smiles_train, y_train)

``transform`` maps SMILES strings, RDKit molecules, ASE ``Atoms``, pymatgen structures or STEP
file paths (a list, a 1-D array, a pandas Series or a one-column 2-D array) to one graph-level
vector per input, ``[n, dim]`` float32. The constructor stores only its arguments (scikit-learn's
``get_params`` / ``set_params`` / ``clone``); ``fit`` loads the weights. A fitted featuriser
pickles its weights as CPU tensors and rebuilds the encoder after unpickling, so a saved
pipeline needs neither the checkpoint file nor the device it was fitted on.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from graphssl.core.config import check_choice
from graphssl.core.errors import ConfigError, DataError
from graphssl.engine.embed import PretrainedEncoder, embed, encoder_from, load_encoder
from graphssl.engine.runtime import resolve_device

__all__ = ["PretrainedFeaturizer"]

ON_ERROR = ("raise", "nan")


class PretrainedFeaturizer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Graph-level embeddings of a pretrained encoder as features.

    Args:
        checkpoint: ``zoo:NAME``, a ``graphssl pretrain`` encoder.pt or its run folder.
        batch_size: graphs per forward pass.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        on_error: ``raise`` (a :class:`~graphssl.DataError` naming the first unusable input and
            why) or ``nan`` (its row is NaN, and a warning lists every such input with its reason).

    Fitted attributes: ``encoder_info_`` (domain and input options of the encoder) and
    ``n_features_out_`` (the embedding width).
    """

    def __init__(self, checkpoint: str = "", *, batch_size: int = 64, device: str = "auto",
                 on_error: str = "raise") -> None:
        self.checkpoint = checkpoint
        self.batch_size = batch_size
        self.device = device
        self.on_error = on_error

    def fit(self, X: Any = None, y: Any = None) -> PretrainedFeaturizer:
        """Load the encoder; ``X`` and ``y`` are not used (the encoder is already trained)."""
        check_choice(self.on_error, ON_ERROR, "on_error")
        if not self.checkpoint:
            raise ConfigError("PretrainedFeaturizer needs checkpoint='zoo:NAME' or the path of an encoder.pt")
        loaded = load_encoder(str(self.checkpoint), self.device)
        self._loaded = loaded
        self._pretrained = loaded.pretrained
        self._spec = loaded.spec
        self.encoder_info_ = {"checkpoint": loaded.name, "domain": loaded.spec.domain,
                              "cutoff": loaded.spec.cutoff, "explicit_h": loaded.spec.explicit_h}
        self.n_features_out_ = loaded.dim
        self._n_features_out = loaded.dim  # what get_feature_names_out reads
        return self

    def _model(self) -> PretrainedEncoder:
        loaded = getattr(self, "_loaded", None)
        if loaded is None:  # unpickled: rebuild from the weights it carries
            encoder = encoder_from(self._pretrained, self._spec).to(resolve_device(self.device))
            loaded = PretrainedEncoder(encoder, self._spec, self.encoder_info_["checkpoint"], self._pretrained)
            self._loaded = loaded
        return loaded

    def transform(self, X: Any) -> np.ndarray:
        """One row per input: ``[len(X), n_features_out_]`` float32."""
        check_is_fitted(self, "n_features_out_")
        check_choice(self.on_error, ON_ERROR, "on_error")
        items = _items(X)
        result = embed(self._model(), items, batch_size=self.batch_size, device=self.device, on_error="skip")
        out = np.full((len(items), self.n_features_out_), np.nan, dtype=np.float32)
        problems = dict(zip(result.skipped["record"], zip(result.skipped["id"], result.skipped["reason"])))
        counts = result.index["record"].value_counts()
        for record in counts[counts > 1].index:  # a STEP file with several solids: no single vector
            problems[int(record)] = (str(result.index.loc[result.index["record"] == record, "id"].iloc[0]),
                                     f"the file holds {counts[record]} solids; give one solid per input")
        single = ~result.index["record"].isin(list(problems))
        out[result.index["record"][single].to_numpy()] = result.vectors[single.to_numpy()]
        if problems:
            first = min(problems)
            listed = "; ".join(f"input {k} ({text!r}): {reason}" for k, (text, reason) in sorted(problems.items())[:5])
            more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
            if self.on_error == "raise":
                text, reason = problems[first]
                raise DataError(f"input {first} ({text!r}) cannot be embedded: {reason}. Set on_error='nan' to "
                                "give such inputs NaN rows")
            warnings.warn(f"{len(problems)} of {len(items)} inputs could not be embedded and are NaN rows: "
                          f"{listed}{more}", UserWarning, stacklevel=2)
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_loaded", None)  # the live module (maybe on a GPU) is rebuilt from the CPU weights
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # inputs are molecules and structures, not numbers
        tags.input_tags.string = True
        tags.requires_fit = True
        return tags


def _items(X: Any) -> list[Any]:
    """The inputs as a flat list: a sequence, 1-D array, Series or a one-column table / 2-D array."""
    if hasattr(X, "iloc") and getattr(X, "ndim", 1) == 2:  # a DataFrame
        if X.shape[1] != 1:
            raise ConfigError(f"PretrainedFeaturizer takes one column of inputs, got a table of {X.shape[1]} "
                              "columns; select the SMILES/structure column (e.g. with a ColumnTransformer)")
        X = X.iloc[:, 0]
    if isinstance(X, np.ndarray) and X.ndim == 2:
        if X.shape[1] != 1:
            raise ConfigError(f"PretrainedFeaturizer takes one column of inputs, got an array of shape {X.shape}")
        X = X[:, 0]
    if isinstance(X, (str, bytes)):
        raise ConfigError("PretrainedFeaturizer.transform takes a sequence of inputs; wrap a single SMILES in a list")
    return list(X.tolist() if hasattr(X, "tolist") and not isinstance(X, list) else X)
