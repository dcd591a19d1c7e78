"""Pretrain SCD (self-conditioned denoising) on a folder of CIF files, in a few lines.

    python examples/scd_cif_folder.py my_cifs/ --epochs 5

Without a folder it first writes 50 crystals of matbench_dielectric (shipped with
crystal-toolkit) as CIF files into a temporary folder, to show the expected input: one
structure per *.cif (or *.vasp, POSCAR*) file; no labels are needed. The pretrained encoder
lands in runs/scd-cif/encoder.pt, with SCD's null token, ready for `graphssl finetune
--checkpoint`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from graphssl import (
    DataConfig,
    ModelConfig,
    ObjectiveConfig,
    PretrainConfig,
    RunConfig,
    packaged_file,
    pretrain,
)


def write_example_cifs(folder: Path, count: int = 50) -> Path:
    """Write the first ``count`` matbench_dielectric crystals as CIF files into ``folder``."""
    import pandas as pd
    from pymatgen.core import Structure

    frame = pd.read_json(packaged_file("crystal_toolkit", "apps/examples/matbench_dielectric.json.gz")).sort_index()
    for k, payload in enumerate(frame["structure"].iloc[:count]):
        Structure.from_dict(payload).to(filename=str(folder / f"crystal_{k:03d}.cif"))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", help="folder of CIF/POSCAR files (default: 50 example crystals)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default="runs/scd-cif")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="graphssl-cifs-") as tmp:
        folder = Path(args.folder) if args.folder else write_example_cifs(Path(tmp))
        config = RunConfig(
            output_dir=args.out,
            cache_dir=str(Path(args.out) / "cache"),  # the temporary folder changes every run
            # 12 nearest neighbours within 5 A keep large cells cheap and every atom connected
            data=DataConfig(path=str(folder), cutoff=5.0, max_neighbors=12, on_error="skip"),
            model=ModelConfig(backbone="painn", hidden=64, num_layers=3),
            objective=ObjectiveConfig("scd", {"sigma": 0.04, "clean_sigma": 0.005, "drop_prob": 0.2}),
            pretrain=PretrainConfig(epochs=args.epochs, batch_size=16, lr=5e-4),
        )
        print("pretrained encoder:", pretrain(config))


if __name__ == "__main__":
    main()
