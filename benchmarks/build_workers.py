"""Building a data set in one process and in two (``data.workers``): the same B-rep parts
featurised both ways, with the throughput of each and a check that the graphs are identical.

    python benchmarks/build_workers.py --parts 400

The parts are the first N of ``brep-mfcad-pretrain``, generated into the cache on first use.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import graphssl.brep.sources  # noqa: F401  registers the B-rep data sets
from graphssl.brep.dataset import BREP_RECIPE
from graphssl.core.config import DataConfig
from graphssl.data.builder import build
from graphssl.data.sources import SOURCES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", type=int, default=400)
    parser.add_argument("--cache-dir", default=".graphssl_cache")
    args = parser.parse_args()
    stores = []
    for workers in (1, 2):
        config = DataConfig(name="brep-mfcad-pretrain", limit=args.parts, workers=workers)
        source = SOURCES["brep-mfcad-pretrain"].open(config, Path(args.cache_dir), False)
        start = time.perf_counter()
        store, report = build(source, BREP_RECIPE, config, progress=False)
        seconds = time.perf_counter() - start
        print(f"workers={workers}: {report.kept} of {report.read} parts in {seconds:.1f} s, "
              f"{report.kept / seconds:.2f} parts/s")
        stores.append(store)
    one, two = stores
    same = one.t.keys() == two.t.keys() and all(torch.equal(v, two.t[k]) for k, v in one.t.items())
    print("identical graphs:", same and one.strings == two.strings)


if __name__ == "__main__":
    main()
