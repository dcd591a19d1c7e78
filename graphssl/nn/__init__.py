"""Neural-network parts: the encoder interface and its two kinds (message-passing backbones behind
input embeddings; geometric backbones), the backbone registry, embeddings, heads and losses."""

from graphssl.nn.backbones import BACKBONES, GINE, build_backbone, degree_histogram
from graphssl.nn.embeddings import CategoricalEmbedding, DenseEmbedding
from graphssl.nn.encoder import Encoder, GraphEncoder
from graphssl.nn.factory import build_encoder, is_geometric
from graphssl.nn.features import FeatureSpec
from graphssl.nn.geometric import GeometricBackbone, GeometricEncoder
from graphssl.nn.heads import PredictionHead, PropertyModel

__all__ = [
    "BACKBONES",
    "GINE",
    "CategoricalEmbedding",
    "DenseEmbedding",
    "Encoder",
    "FeatureSpec",
    "GeometricBackbone",
    "GeometricEncoder",
    "GraphEncoder",
    "PredictionHead",
    "PropertyModel",
    "build_backbone",
    "build_encoder",
    "degree_histogram",
    "is_geometric",
]
