"""The benchmark harness: pretrain once per method, fine-tune per task, split, label setting and
seed, fit the classical baselines on the same splits, and report paired differences."""

from graphssl.bench.harness import run_benchmark

__all__ = ["run_benchmark"]
