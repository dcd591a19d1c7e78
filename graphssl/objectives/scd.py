"""Self-conditioned denoising (SCD, Perez and Gomez-Bombarelli 2026) around any geometric backbone.

The backbone stays plain: SCD installs its conditioning (one gated adaptive norm per
interaction block and a learned null token, :class:`~graphssl.atomistic.conditioning.LayerConditioning`)
as the backbone's layer hook. The conditioning is part of the encoder from then on, so its
weights go into ``encoder.pt`` with the backbone's, and fine-tuning rebuilds it
(:meth:`SCD.restore_encoder`) and runs with the null condition, as SCD fine-tunes.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Data

from graphssl.atomistic.conditioning import LayerConditioning
from graphssl.atomistic.heads import GraphEmbedding, VectorHead
from graphssl.core.errors import ConfigError
from graphssl.nn.encoder import GraphEncoder
from graphssl.nn.geometric import GeometricEncoder
from graphssl.objectives.base import GEOMETRIC, Objective, require_encoder
from graphssl.objectives.denoise import RunningStandardiser
from graphssl.objectives.registry import OBJECTIVES
from graphssl.transforms.noise import coordinate_noise, displaced, remove_mean


@OBJECTIVES.register("scd")
class SCD(Objective):
    """Self-conditioned denoising.

    Two passes of the same backbone per step, with gradients through both:

    1. the clean structure (plus tiny regularisation noise ``clean_sigma``) gives a
       per-structure embedding (mean pool + MLP), with the null condition. The paper sums
       over atoms, which is harmless on molecules of similar size but makes the condition
       grow with a crystal's cell: the loss of a 432-atom supercell diverged (1e24) where
       its 2-atom cell gave 0.1. The mean gives every supercell its unit cell's condition;
    2. the corrupted structure (centre-of-mass-free noise ``sigma``) goes through the
       backbone conditioned on that embedding in every layer (gated adaptive norm); the
       condition is replaced by the learned null token with probability ``drop_prob``.

    The noise is predicted by an equivariant vector head; targets are standardised by
    running statistics; mean squared error. Every parameter gets a gradient in every step
    (a dropped condition still passes a zero gradient to the embedding).

    Args:
        encoder: a geometric encoder (``build_encoder`` with schnet, painn or et).
        sigma: noise standard deviation of the denoising pass, Angstrom.
        clean_sigma: regularisation noise of the clean pass, Angstrom (0 turns it off).
        drop_prob: probability of replacing a structure's condition by the null token.
    """

    def __init__(self, encoder: GeometricEncoder, sigma: float = 0.04, clean_sigma: float = 0.005,
                 drop_prob: float = 0.2) -> None:
        require_encoder("SCD", encoder, GeometricEncoder, GEOMETRIC)
        super().__init__(encoder)
        if sigma <= 0 or clean_sigma < 0:
            raise ConfigError(f"sigma must be positive and clean_sigma non-negative, got {sigma}, {clean_sigma}")
        if not 0.0 <= drop_prob <= 1.0:
            raise ConfigError(f"drop_prob must lie in [0, 1], got {drop_prob}")
        backbone = encoder.backbone
        if not isinstance(backbone.layer_hook, LayerConditioning):  # an SCD-pretrained encoder keeps its own
            LayerConditioning.install(backbone)
        self.sigma, self.clean_sigma, self.drop_prob = sigma, clean_sigma, drop_prob
        self.embed = GraphEmbedding(backbone.hidden, reduce="mean")  # size-intensive, see above
        self.head = VectorHead.for_backbone(backbone)
        self.standardise = RunningStandardiser()

    @property
    def conditioning(self) -> LayerConditioning:
        """The conditioning installed in the backbone (a submodule of the encoder, not of SCD)."""
        return self.encoder.backbone.layer_hook

    def export_state(self) -> dict[str, Any]:
        return {"cond_dim": self.conditioning.null.hidden}

    @classmethod
    def restore_encoder(cls, encoder: GraphEncoder, state: dict[str, Any]) -> None:
        require_encoder("an SCD-pretrained encoder", encoder, GeometricEncoder, GEOMETRIC)
        LayerConditioning.install(encoder.backbone, cond_dim=int(state["cond_dim"]))

    def condition(self, data: Data) -> Tensor:
        """The clean-structure embedding ``[B, hidden]`` (pass 1, with the null condition)."""
        clean = displaced(data, coordinate_noise(data, self.clean_sigma)) if self.clean_sigma else data
        s, _ = self.encoder.features(clean)
        return self.embed(s, clean)

    def forward(self, data: Data) -> Tensor:
        condition = self.condition(data)
        if self.training:
            condition = self.conditioning.null.drop(condition, self.drop_prob)
        noise = coordinate_noise(data, self.sigma)
        noisy = displaced(data, noise)
        with self.conditioning.given(condition):
            s, v = self.encoder.features(noisy)
        target = self.standardise(noise / self.sigma)
        return F.mse_loss(remove_mean(self.head(s, v, noisy), noisy), target)
