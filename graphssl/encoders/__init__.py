"""Encoders: any PyG backbone behind input embeddings."""

from graphssl.encoders.backbones import BACKBONES, GINE, build_backbone, degree_histogram
from graphssl.encoders.embeddings import CategoricalEmbedding, DenseEmbedding
from graphssl.encoders.encoder import Encoder
from graphssl.encoders.factory import build_encoder

__all__ = [
    "BACKBONES",
    "GINE",
    "CategoricalEmbedding",
    "DenseEmbedding",
    "Encoder",
    "build_backbone",
    "build_encoder",
    "degree_histogram",
]
