"""Plug your own message-passing network into graphssl and pretrain it with AttrMask.

Any nn.Module with forward(x, edge_index, edge_attr=None, batch=None) -> node embeddings
works. graphssl puts atom and bond embeddings in front and composes the objective around
it; the objective maps a batch to a loss, so the training loop is plain PyTorch.

    python examples/own_backbone.py
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.loader import DataLoader
from torch_geometric.nn import GATv2Conv

from graphssl import AttrMask, DataConfig, Encoder, load_dataset, molecule_feature_spec


class ResidualGATv2(nn.Module):
    """Your own backbone: GATv2 layers with bond features, residual connections and LayerNorm."""

    supports_edge_attr = True  # the encoder passes the embedded bond features as edge_attr

    def __init__(self, hidden: int, layers: int = 3) -> None:
        super().__init__()
        self.convs = nn.ModuleList(GATv2Conv(hidden, hidden, heads=4, concat=False, edge_dim=hidden)
                                   for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))

    def forward(self, x, edge_index, edge_attr=None, batch=None):
        for conv, norm in zip(self.convs, self.norms):
            x = x + torch.relu(norm(conv(x, edge_index, edge_attr)))
        return x


def main() -> None:
    hidden = 64
    features = molecule_feature_spec()  # OGB categorical atom (9) and bond (3) features
    encoder = Encoder(ResidualGATv2(hidden), features.node_embedding(hidden), out_channels=hidden,
                      edge_embedding=features.edge_embedding(hidden), pooling="mean")
    objective = AttrMask(encoder, mask_rate=0.15)  # or: GraphMAE(encoder, mask_rate=0.25)
    optimiser = torch.optim.Adam(objective.parameters(), lr=1e-3)

    dataset = load_dataset(DataConfig(name="moses", limit=2000))
    for epoch in range(2):
        total = 0.0
        for batch in DataLoader(dataset, batch_size=128, shuffle=True):
            loss = objective(batch)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item()
        print(f"epoch {epoch + 1}: AttrMask loss {total:.3f}")
    encoder.eval()
    with torch.no_grad():
        print("graph embeddings:", encoder.embed_graphs(next(iter(DataLoader(dataset, batch_size=4)))).shape)


if __name__ == "__main__":
    main()
