"""Self-supervised objectives. Each wraps an :class:`~graphssl.nn.Encoder` and maps a
batch to a scalar loss: ``loss = objective(batch)``."""

from graphssl.objectives.attrmask import AttrMask
from graphssl.objectives.denoise import SCD, CoordinateDenoising
from graphssl.objectives.graphmae import GraphMAE
from graphssl.objectives.higmae import HiGMAE
from graphssl.objectives.registry import OBJECTIVES, build_objective, objective_options, register_objective

__all__ = ["AttrMask", "CoordinateDenoising", "SCD", "GraphMAE", "HiGMAE", "OBJECTIVES", "build_objective", "objective_options", "register_objective"]
