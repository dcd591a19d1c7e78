"""Molecules: the RDKit featuriser, molecule data sources and the scaffold split.

Importing this package does not import RDKit; the modules that need it import it themselves.
"""

from graphssl.molecule import scaffold  # noqa: F401  (registers the scaffold split)
