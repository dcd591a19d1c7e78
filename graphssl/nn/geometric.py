"""Geometric backbones (read positions, return scalar and vector atom features) and their encoder.

A geometric backbone reads a whole structure (``z``, ``pos``, optionally a cell and a
neighbour list) and returns per-atom invariant features ``s`` ``[N, hidden]`` and equivariant
vector features ``v`` ``[N, 3, hidden]`` (None for invariant backbones). The concrete
backbones (SchNet, PaiNN, the equivariant transformer) live with the atomistic domain and
register into :data:`graphssl.nn.backbones.BACKBONES`.

Backbones stay plain: a method that needs more than the plain network (SCD conditions every
layer on a per-structure embedding) installs a *layer hook* from outside, which each
backbone calls on its scalars after every interaction block (:meth:`GeometricBackbone.after_layer`).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch_geometric.data import Data

from graphssl.core.errors import ConfigError
from graphssl.nn.encoder import GraphEncoder


class GeometricBackbone(nn.Module):
    """Base class: ``forward(data) -> (s [N, hidden], v [N, 3, hidden] | None)``.

    ``equivariant`` says whether ``v`` is returned; heads use it to choose how to build
    vector outputs. Subclasses pass their scalars through :meth:`after_layer` after each of
    their ``num_layers`` interaction blocks.

    Args:
        hidden: width of the atom features.
        num_layers: number of interaction blocks.
        cutoff: interaction radius in Angstrom; edges at or beyond it are ignored.
    """

    equivariant: bool = False

    def __init__(self, hidden: int, num_layers: int, cutoff: float) -> None:
        super().__init__()
        if hidden < 1 or num_layers < 1 or cutoff <= 0:
            raise ConfigError(f"a geometric backbone needs hidden >= 1, num_layers >= 1 and cutoff > 0; "
                              f"got hidden={hidden}, num_layers={num_layers}, cutoff={cutoff}")
        self.hidden = hidden
        self.num_layers = num_layers
        self.cutoff = cutoff
        self.register_module("layer_hook", None)

    def set_layer_hook(self, hook: nn.Module | None) -> None:
        """Install ``hook``, or remove it with None.

        The hook is a module called as ``hook(layer, s, data) -> s``: it transforms the
        atoms' scalars ``[N, hidden]`` after interaction block ``layer`` (0-based).

        The hook becomes a submodule: its parameters train, and are saved and loaded, with
        the backbone's. A backbone holds one hook at a time.
        """
        if hook is not None and self.layer_hook is not None and hook is not self.layer_hook:
            raise ConfigError(f"this {type(self).__name__} already has a layer hook "
                              f"({type(self.layer_hook).__name__}); remove it first with set_layer_hook(None)")
        self.layer_hook = hook

    def after_layer(self, layer: int, s: Tensor, data: Data) -> Tensor:
        """The scalars after interaction block ``layer``: through the layer hook, if one is installed."""
        return s if self.layer_hook is None else self.layer_hook(layer, s, data)

    def forward(self, data: Data) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(data) -> (s, v)")

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}, num_layers={self.num_layers}, cutoff={self.cutoff}"


class GeometricEncoder(GraphEncoder):
    """A geometric backbone behind the encoder interface: ``Data`` -> invariant atom features.

    Args:
        backbone: SchNet, PaiNN, the equivariant transformer or any :class:`GeometricBackbone`.
        pooling: ``sum`` (extensive properties such as energies), ``mean`` (intensive ones) or ``max``.
    """

    def __init__(self, backbone: GeometricBackbone, pooling: str = "mean") -> None:
        if not isinstance(backbone, GeometricBackbone):
            raise ConfigError(f"GeometricEncoder needs a GeometricBackbone, got {type(backbone).__name__}")
        super().__init__(backbone.hidden, pooling)
        self.backbone = backbone

    def features(self, data: Data) -> tuple[Tensor, Tensor | None]:
        """Scalar ``[N, hidden]`` and vector ``[N, 3, hidden]`` (or None) atom features."""
        return self.backbone(data)

    def forward(self, data: Data) -> Tensor:
        return self.features(data)[0]
