"""Atomistic structures (crystals and 3D molecules): one graph format, neighbour lists,
adapters, geometric backbones."""

from graphssl.atomistic.graph import AtomisticData, edge_vectors

__all__ = ["AtomisticData", "edge_vectors"]
