"""Pretrain an encoder with GraphMAE on your own SMILES file, in a few lines.

    python examples/pretrain_own_smiles.py my_molecules.smi --epochs 5

Without an argument it uses 2,000 molecules from RDKit's bundled NCI sample. The pretrained
encoder lands in runs/own-pretrain/encoder.pt, ready for fine_tune_own_labels.py.
"""

from __future__ import annotations

import argparse
import os

from graphssl import (
    DataConfig,
    ModelConfig,
    ObjectiveConfig,
    PretrainConfig,
    RunConfig,
    pretrain,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("smiles_file", nargs="?", help=".smi, .csv (with a SMILES column) or .sdf")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default="runs/own-pretrain")
    args = parser.parse_args()

    path = args.smiles_file
    if path is None:
        from rdkit import RDConfig

        path = os.path.join(RDConfig.RDDataDir, "NCI", "first_5K.smi")
    config = RunConfig(
        output_dir=args.out,
        data=DataConfig(path=path, limit=2000, on_error="skip"),  # bad SMILES are skipped and reported
        model=ModelConfig(backbone="gine", hidden=128, num_layers=3),
        objective=ObjectiveConfig("graphmae", {"mask_rate": 0.25}),
        pretrain=PretrainConfig(epochs=args.epochs, batch_size=128),
    )
    print("pretrained encoder:", pretrain(config))


if __name__ == "__main__":
    main()
