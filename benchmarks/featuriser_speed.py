"""Featuriser speed: graphssl's ``smiles_to_data`` against OGB's ``smiles2graph``, PyG's
``from_smiles`` and RDKit's parse alone (``Chem.MolFromSmiles``), on the same MOSES SMILES, in one
process.

Rounds are interleaved: each round runs every method once over the same SMILES, the order
rotating from round to round so that none always runs first, with a garbage collection before
each. On a shared machine the load changes between rounds far more than within one, so the report
gives, besides each method's median rate, the ratios taken within each round (graphssl / OGB,
graphssl / RDKit parse) and their medians over rounds.

OGB is optional (``pip install --no-deps ogb``; only ``ogb.utils.smiles2graph`` is used): without
it the report says so and has no OGB column. Where OGB runs, the script also checks that
graphssl's graphs equal OGB's (same atom and bond features, same edge order) on every SMILES.

Last, it splits graphssl's time into its steps (parse, features, canonical SMILES, the PyG
``Data``, freeing the molecule), timed inside one pass over the SMILES, as ``smiles_to_data``
runs them, so that each step pays the cache misses the others cause.

    nice python benchmarks/featuriser_speed.py --n 10000 --rounds 7 --out benchmarks/results/featuriser_speed
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
from rdkit import Chem, RDLogger

from graphssl.core.config import DataConfig
from graphssl.data.dataset import resolve_source
from graphssl.engine.runtime import library_versions, machine_description
from graphssl.molecule.adapter import smiles_to_data


def moses_smiles(n: int) -> list[str]:
    """The first ``n`` SMILES of graphssl's ``moses`` registry source (the MOSES training set)."""
    source = resolve_source(DataConfig(name="moses", limit=n))
    return [record.smiles for record in source.records]


def methods() -> tuple[dict[str, Callable[[str], Any]], str | None]:
    """The featurisers to time, and why OGB is missing (None when it is there)."""
    from torch_geometric.utils import from_smiles

    found: dict[str, Callable[[str], Any]] = {"rdkit_parse": Chem.MolFromSmiles, "graphssl": smiles_to_data}
    missing = None
    try:
        from ogb.utils import smiles2graph

        found["ogb"] = smiles2graph
    except ImportError as exc:
        missing = f"OGB is not installed ({exc}); install it with `pip install --no-deps ogb` to compare"
    found["pyg"] = from_smiles
    return found, missing


def agreement_with_ogb(smiles: list[str]) -> dict[str, int]:
    """How many SMILES give the same graph in graphssl and OGB (x, edge_index, edge_attr)."""
    import numpy as np
    from ogb.utils import smiles2graph

    same = 0
    for text in smiles:
        ours, theirs = smiles_to_data(text), smiles2graph(text)
        same += bool(np.array_equal(ours.x.numpy(), theirs["node_feat"])
                     and np.array_equal(ours.edge_index.numpy(), theirs["edge_index"])
                     and np.array_equal(ours.edge_attr.numpy(), theirs["edge_feat"]))
    return {"same": same, "compared": len(smiles)}


def stage_breakdown(smiles: list[str], rounds: int) -> dict[str, float]:
    """CPU microseconds per molecule of each step of ``smiles_to_data`` (median over ``rounds``
    passes over ``smiles``), the steps called as ``mol_to_data`` calls them."""
    from torch_geometric.data import Data

    from graphssl.molecule.adapter import mol_from_smiles
    from graphssl.molecule.rdkit_features import graph_tensors

    clock = time.process_time
    passes: list[dict[str, float]] = []
    for _ in range(rounds):
        gc.collect()
        spent = dict.fromkeys(_STAGES, 0.0)
        kept = []
        start = clock()
        for text in smiles:
            t0 = clock()
            mol = mol_from_smiles(text)
            t1 = clock()
            x, edge_index, edge_attr = graph_tensors(mol)
            t2 = clock()
            canonical = Chem.MolToSmiles(mol)
            t3 = clock()
            kept.append(Data(x=x, edge_index=edge_index, edge_attr=edge_attr, smiles=canonical))
            t4 = clock()
            del mol
            t5 = clock()
            for stage, seconds in zip(_STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                spent[stage] += seconds
        total = clock() - start
        del kept
        spent["total"] = total
        passes.append({stage: 1e6 * seconds / len(smiles) for stage, seconds in spent.items()})
    return {stage: statistics.median(p[stage] for p in passes) for stage in passes[0]}


_STAGES = ("parse", "features", "canonical_smiles", "data", "free")
_STAGE_LABELS = {
    "parse": "parse and sanitise (`mol_from_smiles`: `Chem.MolFromSmiles` with its checks)",
    "features": "atom and bond features, edge index, tensors (`graph_tensors`)",
    "canonical_smiles": "canonical SMILES (`Chem.MolToSmiles`)",
    "data": "PyG `Data(...)`",
    "free": "freeing the RDKit `Mol`",
}


def time_round(found: dict[str, Callable[[str], Any]], smiles: list[str],
               order: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """Molecules per second of each method over all ``smiles``, run in ``order``: by the wall
    clock, and by this process's CPU time (what other jobs on a shared machine disturb least)."""
    wall, cpu = {}, {}
    for name in order:
        featurise = found[name]
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        out = [featurise(text) for text in smiles]  # kept until timed, as a caller would keep them
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
        del out
        wall[name], cpu[name] = len(smiles) / seconds, len(smiles) / cpu_seconds
    return wall, cpu


def summarise(rounds: list[dict[str, float]]) -> dict[str, Any]:
    """Per method: median, min and max rate over rounds; per other method: the per-round ratios
    graphssl / that method, and their median, min and max."""
    names = list(rounds[0])
    summary: dict[str, Any] = {name: {"median_per_s": statistics.median(r[name] for r in rounds),
                                      "min_per_s": min(r[name] for r in rounds),
                                      "max_per_s": max(r[name] for r in rounds)} for name in names}
    ratios: dict[str, list[float]] = {}
    for other in names:
        if other != "graphssl":
            ratios[f"graphssl_over_{other}"] = [r["graphssl"] / r[other] for r in rounds]
    summary["ratios"] = {key: {"median": statistics.median(v), "min": min(v), "max": max(v), "per_round": v}
                         for key, v in ratios.items()}
    return summary


_LABELS = {"rdkit_parse": "RDKit parse only (`Chem.MolFromSmiles`)", "graphssl": "graphssl `smiles_to_data`",
           "ogb": "OGB `smiles2graph`", "pyg": "PyG `from_smiles`"}


def _table(summary: dict[str, Any], clock: str) -> list[str]:
    ratios = summary["ratios"]
    lines = [f"| featuriser ({clock}) | median mol/s | min - max mol/s | graphssl / this (median of per-round "
             "ratios, min - max) |", "|---|---|---|---|"]
    for name, label in _LABELS.items():
        if name not in summary:
            continue
        row = summary[name]
        ratio = ratios.get(f"graphssl_over_{name}")
        shown = "-" if ratio is None else f"{ratio['median']:.2f}x ({ratio['min']:.2f} - {ratio['max']:.2f})"
        lines.append(f"| {label} | {row['median_per_s']:,.0f} | {row['min_per_s']:,.0f} - {row['max_per_s']:,.0f} "
                     f"| {shown} |")
    return lines


def markdown(wall: dict[str, Any], cpu: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        "# Featuriser speed",
        "",
        f"{meta['n']:,} MOSES SMILES (graphssl's `moses` source), one process, {meta['rounds']} interleaved rounds "
        f"(order rotated every round). Machine: {meta['machine'].get('cpu', '?')}, "
        f"{meta['machine'].get('cores', '?')} cores, {meta['machine'].get('memory', '?')}, no GPU, shared with other "
        f"jobs at the time; `{meta['command']}`, {meta['wall_seconds'] / 60:.1f} min wall time in all. Versions: "
        + ", ".join(f"{name} {v}" for name, v in meta["versions"].items() if name != "graphssl-pretrain") + ".",
        "",
        *_table(wall, "wall clock"),
        "",
        *_table(cpu, "CPU time of this process"),
        "",
    ]
    for clock, summary in (("wall clock", wall), ("CPU time", cpu)):
        ratios = summary["ratios"]
        text = (f"By {clock}: graphssl featurises at {100 * ratios['graphssl_over_rdkit_parse']['median']:.0f} % of "
                "the rate at which RDKit only parses the same SMILES")
        if "graphssl_over_ogb" in ratios:
            text += f", and is {ratios['graphssl_over_ogb']['median']:.2f}x OGB's `smiles2graph`"
        lines.append(text + " (medians of per-round ratios).")
    if meta.get("ogb_missing"):
        lines.append(f"**{meta['ogb_missing']}.**")
    if meta.get("agreement"):
        a = meta["agreement"]
        lines.append(f"Same graphs as OGB (atom and bond features, edge order): {a['same']:,} of {a['compared']:,} "
                     "SMILES.")
    lines.append("")
    lines.append("graphssl's graphs also carry the canonical SMILES (`data.smiles`, used for duplicates and the "
                 "scaffold split), which OGB and PyG do not compute; PyG's `from_smiles` stores the input text.")
    stages = meta.get("stages")
    if stages:
        lines += [
            "",
            (f"Where graphssl's time goes (CPU time of this process, microseconds per molecule, median of "
             f"{meta['rounds']} passes, each step timed inside the one pass as `smiles_to_data` runs it; the "
             "clock calls themselves add about 1 us per molecule):"),
            "",
            "| step | us / molecule | share |",
            "|---|---|---|",
        ]
        for stage in _STAGES:
            lines.append(f"| {_STAGE_LABELS[stage]} | {stages[stage]:.0f} | {100 * stages[stage] / stages['total']:.0f} % |")
        rest = stages["total"] - sum(stages[stage] for stage in _STAGES)
        lines.append(f"| the loop, the clock | {rest:.0f} | {100 * rest / stages['total']:.0f} % |")
        lines.append(f"| total | {stages['total']:.0f} | 100 % |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="MOSES SMILES to featurise (default 10000)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--out", default="benchmarks/results/featuriser_speed", help="folder for results")
    args = parser.parse_args()
    started = time.perf_counter()
    torch.set_num_threads(1)  # one process, one thread: the featurisers are single-threaded Python
    RDLogger.DisableLog("rdApp.*")  # PyG's from_smiles leaves RDKit's logging on
    smiles = moses_smiles(args.n)
    found, ogb_missing = methods()
    if ogb_missing:
        print(ogb_missing)
    for name, featurise in found.items():  # warm up: imports, first-call caches
        for text in smiles[:200]:
            featurise(text)
    names = list(found)
    rounds, cpu_rounds = [], []
    for k in range(args.rounds):
        order = names[k % len(names):] + names[: k % len(names)]
        wall, cpu = time_round(found, smiles, order)
        rounds.append({name: wall[name] for name in names})
        cpu_rounds.append({name: cpu[name] for name in names})
        print(f"round {k + 1}/{args.rounds}: " + ", ".join(f"{n} {wall[n]:,.0f}/s ({cpu[n]:,.0f}/s CPU)"
                                                          for n in names), flush=True)
    summary, cpu_summary = summarise(rounds), summarise(cpu_rounds)
    meta = {"n": len(smiles), "rounds": args.rounds, "machine": machine_description(),
            "versions": library_versions(), "ogb_missing": ogb_missing,
            "command": f"python benchmarks/featuriser_speed.py --n {args.n} --rounds {args.rounds}",
            "agreement": None if ogb_missing else agreement_with_ogb(smiles),
            "stages": stage_breakdown(smiles, args.rounds)}
    if not ogb_missing:
        from importlib.metadata import version

        meta["versions"]["ogb"] = version("ogb")
    meta["wall_seconds"] = time.perf_counter() - started
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": meta, "rounds": rounds, "cpu_rounds": cpu_rounds,
                                                  "summary": summary, "cpu_summary": cpu_summary}, indent=1))
    text = markdown(summary, cpu_summary, meta)
    (out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
