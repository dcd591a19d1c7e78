"""Few-shot face segmentation of CAD parts: STEP files -> graphs -> GraphMAE -> fine-tuning.

    python examples/brep_segmentation.py my_parts/        # *.step + <stem>.labels (+ classes.txt)
    python examples/brep_segmentation.py                  # generates 60 labelled parts first

Each part becomes a face-adjacency graph with a 10 x 10 UV grid per face and a 10-point
grid per edge. GraphMAE pretrains a GINE encoder by masking faces and reconstructing their
UV-grid points and normals (MSE); the pretrained encoder and a fresh one are then both
fine-tuned to classify faces with labels on only 10% of the training parts, and their
test mIoU and accuracy are printed side by side.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from graphssl import (
    DataConfig,
    FinetuneConfig,
    ModelConfig,
    ObjectiveConfig,
    PretrainConfig,
    RunConfig,
    finetune,
    generate_brep_parts,
    load_dataset,
    pretrain,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", help="folder of STEP files with .labels files next to them")
    parser.add_argument("--out", default="runs/brep-example")
    parser.add_argument("--label-fraction", type=float, default=0.1)
    parser.add_argument("--pretrain-epochs", type=int, default=20)
    parser.add_argument("--finetune-epochs", type=int, default=40)
    args = parser.parse_args()

    out = Path(args.out)
    folder = Path(args.folder) if args.folder else out / "parts"
    if args.folder is None and not (folder / "classes.txt").is_file():
        report = generate_brep_parts(60, folder, seed=0)
        print(f"generated {report.n_parts} parts in {report.seconds:.1f} s; faces per class: {report.class_counts}")

    data = DataConfig(path=str(folder), on_error="skip")
    dataset = load_dataset(data, cache_dir=out / "cache")  # prints read / kept / skipped
    first = dataset[0]
    print(f"{len(dataset)} parts, {dataset.num_classes} classes; first part '{first.name}': {first.num_nodes} faces, "
          f"face_grid {tuple(first.face_grid.shape)}, edge_grid {tuple(first.edge_grid.shape)}")

    config = RunConfig(
        output_dir=str(out / "pretrain"), cache_dir=str(out / "cache"), threads=1, progress=False,
        data=data,
        model=ModelConfig(backbone="gine", hidden=64, num_layers=3),
        objective=ObjectiveConfig("graphmae", {"loss": "mse", "mask_rate": 0.25}),
        pretrain=PretrainConfig(epochs=args.pretrain_epochs, batch_size=16),
        finetune=FinetuneConfig(task=data, split="random", label_fraction=args.label_fraction,
                                epochs=args.finetune_epochs, batch_size=4, lr=0.003, dropout=0.1),
    )
    encoder = pretrain(config, dataset=dataset)  # labels are never read here

    print(f"\nface segmentation with labels on {args.label_fraction:.0%} of the training parts")
    for label, checkpoint in (("scratch", None), ("graphmae", encoder)):
        config.output_dir = str(out / f"finetune-{label}")
        result = finetune(config, checkpoint=checkpoint, dataset=dataset)
        print(f"  {label:9s} test mIoU {result.test:.3f}, accuracy {result.test_accuracy:.3f} "
              f"(best validation epoch {result.best_epoch}, {result.train_size} labelled parts)")


if __name__ == "__main__":
    main()
