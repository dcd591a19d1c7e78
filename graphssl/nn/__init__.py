"""Small shared layers: prediction heads."""

from graphssl.nn.heads import PredictionHead, PropertyModel

__all__ = ["PredictionHead", "PropertyModel"]
