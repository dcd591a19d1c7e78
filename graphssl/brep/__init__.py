"""B-rep CAD parts: STEP files to face-adjacency graphs, UV-grid embeddings, the machining-feature
part generator and the B-rep data sources.

Importing this package registers the B-rep data sets and input kind; it does not import the
OpenCascade bindings (the ``cad`` extra), which the modules that build or generate parts import.
"""

from graphssl.brep import sources  # noqa: F401  (registration)
