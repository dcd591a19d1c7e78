"""What pretrained encoders carry, frozen: linear probes on pooled embeddings against random encoders.

For every encoder (pretrained ``encoder.pt`` files, and randomly initialised encoders of the same
architecture as controls) and every task (B3DB classification, FreeSolv regression), the graph
embeddings of the scaffold split are computed with the encoder frozen, under each batch-norm
choice:

- ``stored``: the running statistics saved with the encoder (for a pretrained encoder, those of
  its pretraining inputs, e.g. with GraphMAE's mask tokens in a quarter of the nodes);
- ``task``: running statistics re-estimated on the task's training split (weights unchanged);
- ``corpus``: re-estimated on clean (unmasked) graphs of the pretraining corpus (the first
  ``--corpus-size`` MOSES molecules): tells masking's share of a mismatch from the corpus's;

and each pooling (mean, sum). A logistic regression (B3DB, ROC-AUC) or a ridge regression
(FreeSolv, RMSE) on standardised embeddings is fitted on the training split, its regularisation
chosen on the validation split only, and scored on the test split.

    python benchmarks/frozen_probes.py --encoders runs/bench-quick/pretrain --out benchmarks/results/frozen_probes
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import mean_squared_error, roc_auc_score
from sklearn.preprocessing import StandardScaler
from torch_geometric.loader import DataLoader

import graphssl as gs
from graphssl.engine.pretrained import build_finetune_encoder
from graphssl.nn.batch_norm import reestimate_batch_norm

TASKS = ("b3db", "freesolv")
POOLINGS = ("mean", "sum")
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
ALPHA_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)


@torch.no_grad()
def embeddings(encoder: gs.GraphEncoder, dataset, pooling: str) -> np.ndarray:
    encoder.eval()
    encoder.pooling = pooling
    out = [encoder.embed_graphs(batch) for batch in DataLoader(dataset, batch_size=512)]
    return torch.cat(out).double().numpy()


def probe(task_type: str, x: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> dict[str, float]:
    """Fit on train, choose the regularisation on valid, score test; returns both scores."""
    scaler = StandardScaler().fit(x["train"])
    xs = {k: np.nan_to_num(scaler.transform(v)) for k, v in x.items()}
    best = None
    for value in (C_GRID if task_type == "classification" else ALPHA_GRID):
        if task_type == "classification":
            model = LogisticRegression(C=value, max_iter=2000).fit(xs["train"], y["train"])
            score = {k: roc_auc_score(y[k], model.predict_proba(xs[k])[:, 1]) for k in ("valid", "test")}
            better = best is None or score["valid"] > best["valid"]
        else:
            model = Ridge(alpha=value).fit(xs["train"], y["train"])
            score = {k: float(np.sqrt(mean_squared_error(y[k], model.predict(xs[k])))) for k in ("valid", "test")}
            better = best is None or score["valid"] < best["valid"]
        if better:
            best = {**score, "reg": value}
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", required=True, help="folder of <method>/encoder.pt (e.g. a benchmark's pretrain/)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--random-seeds", type=int, default=2, help="random encoders as controls")
    parser.add_argument("--cache-dir", default=".graphssl_cache")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--norms", nargs="+", default=["stored", "task"], choices=["stored", "task", "corpus"])
    parser.add_argument("--corpus-size", type=int, default=10_000)
    args = parser.parse_args()
    torch.set_num_threads(2)
    t0 = time.time()
    paths = sorted(Path(args.encoders).glob("*/encoder.pt"))
    if not paths:
        raise SystemExit(f"no */encoder.pt under {args.encoders}")
    pretrained = {p.parent.name: gs.load_pretrained(p) for p in paths}
    model_cfg = next(iter(pretrained.values())).model
    rows = []
    corpus = None
    if "corpus" in args.norms:
        corpus = gs.load_dataset(gs.DataConfig(name="moses", limit=args.corpus_size), args.cache_dir, progress=False)
    for task in args.tasks:
        dataset = gs.load_dataset(gs.DataConfig(name=task, on_error="skip"), args.cache_dir, progress=False)
        split = gs.make_split(dataset, gs.FinetuneConfig(split="scaffold"))
        parts = {k: dataset.subset(getattr(split, k)) for k in ("train", "valid", "test")}
        y = {k: v.labels[:, 0].numpy() for k, v in parts.items()}
        encoders: dict[str, gs.GraphEncoder] = {}
        for seed in range(args.random_seeds):
            torch.manual_seed(seed)
            encoders[f"random-{seed}"] = build_finetune_encoder(model_cfg, dataset, None, 5.0)
        for name, state in pretrained.items():
            encoders[name] = build_finetune_encoder(state.model, dataset, state, 5.0)
        for name, encoder in encoders.items():
            for norm in args.norms:
                enc = copy.deepcopy(encoder)
                if norm == "task":
                    reestimate_batch_norm(enc, parts["train"])
                elif norm == "corpus":
                    reestimate_batch_norm(enc, corpus)
                for pooling in POOLINGS:
                    x = {k: embeddings(enc, v, pooling) for k, v in parts.items()}
                    score = probe(dataset.task_type, x, y)
                    rows.append({"task": task, "encoder": name, "batch_norm": norm, "pooling": pooling, **score})
                    print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"command": "python benchmarks/frozen_probes.py " + " ".join(f"--{k.replace('_', '-')} {v}"
                                                                       for k, v in vars(args).items()),
            "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
            "versions": {"torch": torch.__version__, "graphssl": gs.__version__}, "seconds": time.time() - t0,
            "model": model_cfg.__dict__}
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = ["| task | encoder | batch norm | " + " | ".join(POOLINGS) + " |", "|---|---|---|" + "---|" * len(POOLINGS)]
    for task in args.tasks:
        for name in [*[f"random-{s}" for s in range(args.random_seeds)], *pretrained]:
            for norm in args.norms:
                cells = [next(r for r in rows if (r["task"], r["encoder"], r["batch_norm"], r["pooling"]) ==
                              (task, name, norm, p))["test"] for p in POOLINGS]
                lines.append(f"| {task} | {name} | {norm} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
