"""The benchmark harness: pretrain once per method, fine-tune per task, seed and label fraction."""

from graphssl.bench.harness import run_benchmark

__all__ = ["run_benchmark"]
