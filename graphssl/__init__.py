"""graphssl: self-supervised pretraining of graph neural networks on molecules, crystals and CAD parts."""

# The domains register their data sources, splits and backbones into the core registries.
from graphssl import atomistic, brep, molecule  # noqa: F401
