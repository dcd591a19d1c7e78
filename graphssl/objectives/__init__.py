"""Self-supervised objectives. Each is an :class:`Objective` that wraps an encoder and maps a
batch to a scalar loss: ``loss = objective(batch)``."""

from graphssl.objectives.attrmask import AttrMask
from graphssl.objectives.base import Objective
from graphssl.objectives.brepmae import BRepMAE
from graphssl.objectives.denoise import CoordinateDenoising
from graphssl.objectives.descriptors import DescriptorPrediction
from graphssl.objectives.graphcl import GraphCL
from graphssl.objectives.graphmae import GraphMAE
from graphssl.objectives.higmae import HiGMAE
from graphssl.objectives.jepa import JEPA
from graphssl.objectives.registry import OBJECTIVES, build_objective, objective_options, register_objective
from graphssl.objectives.scd import SCD

__all__ = [
    "JEPA",
    "OBJECTIVES",
    "SCD",
    "AttrMask",
    "BRepMAE",
    "CoordinateDenoising",
    "DescriptorPrediction",
    "GraphCL",
    "GraphMAE",
    "HiGMAE",
    "Objective",
    "build_objective",
    "objective_options",
    "register_objective",
]
