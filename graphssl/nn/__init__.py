"""Neural-network parts: the encoder around any PyG backbone, embeddings, backbones, heads, losses."""

from graphssl.nn.backbones import BACKBONES, GINE, build_backbone, degree_histogram
from graphssl.nn.embeddings import CategoricalEmbedding, DenseEmbedding
from graphssl.nn.encoder import Encoder
from graphssl.nn.factory import build_encoder
from graphssl.nn.heads import PredictionHead, PropertyModel

__all__ = [
    "BACKBONES",
    "GINE",
    "CategoricalEmbedding",
    "DenseEmbedding",
    "Encoder",
    "PredictionHead",
    "PropertyModel",
    "build_backbone",
    "build_encoder",
    "degree_histogram",
]
