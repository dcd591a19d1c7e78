"""Transforms applied to graphs and batches: masking (more to come: coarsening, noise)."""

from graphssl.transforms.masking import NodeMask, incident_edges, sample_node_mask

__all__ = ["NodeMask", "incident_edges", "sample_node_mask"]
