"""Transforms applied to graphs and batches: the transform type objectives hand to the
pretraining loop, coarsening, node masks and coordinate noise."""

from graphssl.transforms.base import GraphTransform
from graphssl.transforms.coarsen import Coarsen, HierarchicalData
from graphssl.transforms.masking import NodeMask, incident_edges, sample_node_mask
from graphssl.transforms.noise import coordinate_noise, displaced, remove_mean

__all__ = [
    "Coarsen",
    "GraphTransform",
    "HierarchicalData",
    "NodeMask",
    "coordinate_noise",
    "displaced",
    "incident_edges",
    "remove_mean",
    "sample_node_mask",
]
