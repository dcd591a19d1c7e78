"""The transform type objectives hand to the pretraining loop for work done once per graph."""

from __future__ import annotations

from typing import Sequence

from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform
from tqdm.auto import tqdm


class GraphTransform(BaseTransform):
    """A PyG transform that can also run over a whole data set at once.

    ``transform(data)`` handles one graph; :meth:`many` handles a sequence, which the
    pretraining loop uses to preprocess a data set once. Override :meth:`many` when a batched
    implementation is faster (coarsening works a chunk of graphs at a time).
    """

    def many(self, graphs: Sequence[Data], progress: bool = False) -> list[Data]:
        """The transform of every graph, in order."""
        return [self(graphs[i]) for i in tqdm(range(len(graphs)), desc=repr(self), disable=not progress)]
