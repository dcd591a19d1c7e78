"""Which fine-tuning choices decide whether a pretrained encoder beats scratch.

Fine-tunes scratch and every pretrained ``encoder.pt`` under ``--encoders`` on the quick tier's
tasks, setup and scaffold split (``benchmarks/quick.yaml``), once per fine-tuning variant and
seed. Every variant applies to scratch and pretrained arms alike, and the paired difference
(pretrained - scratch, same variant and seed) is reported with its 95% confidence interval.

    python benchmarks/transfer_diagnosis.py --encoders runs/bench-quick/pretrain --tasks freesolv \
        --seeds 10 --out benchmarks/results/transfer_diagnosis/freesolv
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

import graphssl as gs
from graphssl.bench.stats import paired_difference
from graphssl.engine.runtime import library_versions, machine_description
from graphssl.tasks.metrics import HIGHER_IS_BETTER

# variant -> fine-tuning overrides on top of the quick tier's
VARIANTS: dict[str, dict] = {
    "baseline": {"reestimate_batch_norm": False},
    "encoder-lr-0.1x": {"encoder_lr": 1e-4, "reestimate_batch_norm": False},
    "reestimate-bn": {"reestimate_batch_norm": True},
    "sum-pool": {"pooling": "sum", "reestimate_batch_norm": False},
    "mlp-head": {"head_hidden": 128, "reestimate_batch_norm": False},
    "linear-probe": {"mode": "linear", "lr": 1e-2, "reestimate_batch_norm": False},
    "linear-probe-reestimate-bn": {"mode": "linear", "lr": 1e-2, "reestimate_batch_norm": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", required=True, help="folder of <method>/encoder.pt")
    parser.add_argument("--config", default="benchmarks/quick.yaml", help="fine-tuning setup (its finetune: section)")
    parser.add_argument("--tasks", nargs="+", default=["freesolv", "b3db"])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    t0 = time.time()
    base = gs.load_config(args.config, ["progress=false", "finetune.save_checkpoints=false"])
    encoders = {p.parent.name: p for p in sorted(Path(args.encoders).glob("*/encoder.pt"))}
    arms = {"scratch": None, **encoders}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for task in args.tasks:
        dataset = gs.load_dataset(gs.DataConfig(name=task, on_error="skip"), base.cache_dir, progress=False)
        for variant in args.variants:
            for seed in range(args.seeds):
                for arm, checkpoint in arms.items():
                    ft = dataclasses.replace(base.finetune, task=gs.DataConfig(name=task, on_error="skip"),
                                             seed=seed, **VARIANTS[variant])
                    config = dataclasses.replace(base, finetune=ft,
                                                 output_dir=str(out / "runs" / task / variant / arm / str(seed)))
                    result = gs.finetune(config, checkpoint=checkpoint, dataset=dataset)
                    rows.append({"task": task, "variant": variant, "arm": arm, "seed": seed, "metric": result.metric,
                                 "valid": result.valid, "test": result.test, "best_epoch": result.best_epoch,
                                 "seconds": result.seconds})
                    print(json.dumps(rows[-1]), flush=True)
                (out / "results.json").write_text(json.dumps({"rows": rows}, indent=1))
    lines = ["| task | variant | arm | test mean ± std | paired difference vs scratch [95% CI] (wins/ties/losses) |",
             "|---|---|---|---|---|"]
    for task in args.tasks:
        for variant in args.variants:
            cell = [r for r in rows if r["task"] == task and r["variant"] == variant]
            scratch = [r["test"] for r in cell if r["arm"] == "scratch"]
            for arm in arms:
                scores = [r["test"] for r in cell if r["arm"] == arm]
                diff = "" if arm == "scratch" else str(paired_difference(
                    scores, scratch, HIGHER_IS_BETTER[cell[0]["metric"]]))
                lines.append(f"| {task} | {variant} | {arm} | {np.mean(scores):.3f} ± {np.std(scores):.3f} | {diff} |")
    meta = {"command": "python " + " ".join(shlex.quote(a) for a in sys.argv), "machine": machine_description(),
            "versions": library_versions(), "wall_seconds": time.time() - t0}
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (out / "results.md").write_text("\n".join(lines) + f"\n\n- Command: `{meta['command']}`\n"
                                    f"- Wall time: {meta['wall_seconds'] / 60:.1f} min\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
