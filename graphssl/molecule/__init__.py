"""Molecules: the OGB feature schema, the RDKit featuriser, molecule data sources, shards and the
scaffold split.

Importing this package does not import RDKit; the modules that need it import it themselves.
Importing it registers the molecule data sets and input kinds (:mod:`graphssl.molecule.sources`)
and the scaffold split.
"""

from graphssl.molecule import scaffold, sources  # noqa: F401  (registration)
from graphssl.molecule.features import molecule_feature_spec

__all__ = ["molecule_feature_spec"]
