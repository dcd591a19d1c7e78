"""How much RDKit descriptors cost on top of featurisation, and what the ``fast`` set gives up.

On ``--n`` MOSES training molecules (every k-th of the file, so they span it), one process:

(a) molecules/s of featurisation alone (SMILES -> graph, as ``data.descriptors: null`` builds),
    of featurisation plus the ``fast`` and the ``all`` descriptor sets (as ``data.descriptors``
    builds), and of each descriptor set alone (``descriptor_vector`` on a parsed molecule), the
    five taking turns on every 50 molecules so that a changing load hits them alike;
(b) the cost of every descriptor in milliseconds per molecule, two ways: in sequence (RDKit's
    order, on one molecule, so a descriptor that reuses a cached computation, such as the
    Crippen contributions behind MolLogP, MolMR and the SlogP/SMR VSA bins, is cheap after the
    first) and in isolation (each one alone on a freshly parsed molecule);
(c) how much of each descriptor left out of ``fast`` the kept ones explain: held-out R^2 of a
    ridge regression on robustly scaled values (first 75 % of the molecules to fit, the rest to
    score).

    nice -n 10 python benchmarks/descriptor_speed.py --n 2000 --out benchmarks/results/descriptor_speed
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from rdkit import Chem, RDLogger
from rdkit.Chem import Descriptors

from graphssl.data.packaged import packaged_file
from graphssl.engine.runtime import library_versions, machine_description
from graphssl.molecule.adapter import mol_from_smiles, mol_to_data
from graphssl.molecule.descriptors import SLOW_DESCRIPTORS, descriptor_names, descriptor_vector
from graphssl.objectives.descriptors import robust_scale, robust_statistics

MOSES_TRAIN = 1_584_663


def moses_sample(n: int) -> list[str]:
    """``n`` SMILES spread over the MOSES training file."""
    stride = max(1, MOSES_TRAIN // n)
    out = []
    with gzip.open(packaged_file("moses", "dataset/data/train.csv.gz"), "rt") as handle:
        next(handle)  # header
        for i, line in enumerate(handle):
            if i % stride == 0:
                out.append(line.split(",")[0].strip())
                if len(out) == n:
                    break
    return out


def interleaved_rates(variants: dict[str, Callable[[int], object]], n: int, repeats: int,
                      chunk: int = 50) -> tuple[dict[str, float], dict[str, list]]:
    """Molecules/s of each variant (a function of the molecule's position). The machine is shared
    and its load changes, so the variants take turns on every chunk of ``chunk`` molecules (each
    sees the same load) and each one's rate is the best of ``repeats`` passes. Also returns the
    last pass's results."""
    best = dict.fromkeys(variants, 0.0)
    results: dict[str, list] = {}
    for _ in range(repeats):
        spent = dict.fromkeys(variants, 0.0)
        results = {name: [] for name in variants}
        for start in range(0, n, chunk):
            for name, fn in variants.items():
                t0 = time.perf_counter()
                results[name] += [fn(k) for k in range(start, min(start + chunk, n))]
                spent[name] += time.perf_counter() - t0
        for name in variants:
            best[name] = max(best[name], n / spent[name])
    return best, results


def per_descriptor_cost(smiles: list[str], repeats: int) -> dict[str, dict[str, float]]:
    """Milliseconds per molecule of each descriptor, the least of ``repeats`` passes (each pass on
    freshly parsed molecules, so no cached value carries over)."""
    functions = list(Descriptors._descList)
    in_sequence = dict.fromkeys((n for n, _ in functions), float("inf"))
    isolated = dict(in_sequence)
    for _ in range(repeats):
        spent = dict.fromkeys(in_sequence, 0.0)
        for mol in [Chem.MolFromSmiles(s) for s in smiles]:
            for name, fn in functions:
                t0 = time.perf_counter()
                try:
                    fn(mol)
                except Exception:  # noqa: BLE001 - a failing descriptor still costs its time
                    pass
                spent[name] += time.perf_counter() - t0
        for name, fn in functions:
            in_sequence[name] = min(in_sequence[name], spent[name])
            fresh = [Chem.MolFromSmiles(s) for s in smiles]  # no cached charges or contributions
            t0 = time.perf_counter()
            for mol in fresh:
                try:
                    fn(mol)
                except Exception:  # noqa: BLE001
                    pass
            isolated[name] = min(isolated[name], time.perf_counter() - t0)
    scale = 1e3 / len(smiles)
    return {name: {"in_sequence_ms": in_sequence[name] * scale, "isolated_ms": isolated[name] * scale}
            for name, _ in functions}


def left_out_r2(values: np.ndarray, names: list[str], kept: list[str]) -> dict[str, float | None]:
    """Held-out R^2 of each left-out descriptor from the kept ones (ridge, robustly scaled)."""
    import torch

    center, scale, _ = robust_statistics(torch.from_numpy(values))
    z = robust_scale(torch.from_numpy(values), center, scale, 10.0).double().numpy()
    z = np.nan_to_num(z)  # a failed value counts as the median
    keep = [names.index(n) for n in kept]
    a = np.c_[z[:, keep], np.ones(len(z))]
    cut = int(0.75 * len(z))
    gram = a[:cut].T @ a[:cut] + np.eye(a.shape[1])
    out: dict[str, float | None] = {}
    for name in names:
        if name in kept:
            continue
        y = z[:, names.index(name)]
        if y[cut:].std() == 0:
            out[name] = None
            continue
        pred = a[cut:] @ np.linalg.solve(gram, a[:cut].T @ y[:cut])
        out[name] = float(1 - ((y[cut:] - pred) ** 2).sum() / ((y[cut:] - y[cut:].mean()) ** 2).sum())
    return out


def markdown(report: dict) -> str:
    r = report["rates_mol_per_s"]
    lines = [
        "# Descriptor speed",
        "",
        f"{report['molecules']} MOSES training molecules (one in every {report['stride']}), one process, the "
        f"best of {report['repeats']} passes, on a {report['machine'].get('cores', '?')}-core "
        f"{report['machine'].get('cpu', '?')} shared with other jobs (absolute rates depend on that load; "
        f"the ratios less). Command: `{report['command']}`.",
        "",
        "| what | molecules/s | ms/molecule | time / featurisation alone |",
        "|---|---:|---:|---:|",
    ]
    base = r["featurise"]
    for key, label in (("featurise", "featurisation alone (data.descriptors: null)"),
                       ("featurise+fast", f"featurisation + fast ({report['sizes']['fast']} descriptors)"),
                       ("featurise+all", f"featurisation + all ({report['sizes']['all']} descriptors)"),
                       ("fast", "fast descriptors alone"), ("all", "all descriptors alone")):
        lines.append(f"| {label} | {r[key]:.0f} | {1e3 / r[key]:.2f} | {base / r[key]:.2f} |")
    full = MOSES_TRAIN
    lines += [
        "",
        f"At these rates, the {full:,} MOSES training molecules take "
        f"{full / r['featurise+fast'] / 3600:.1f} h (fast) and {full / r['featurise+all'] / 3600:.1f} h (all) "
        f"in one process; featurising in N worker processes divides that by about N. Non-finite or failed "
        f"values: {100 * report['nan_share']['all']:.3f} % of all entries.",
        "",
        "## Slowest ten descriptors",
        "",
        "In sequence: RDKit's functions in RDKit's order on one molecule (later descriptors reuse cached "
        "charges and contributions, so this is about what leaving one out saves; graphssl computes the "
        "E-state indices once for all E-state descriptors). Isolated: alone on a fresh molecule. The least "
        "of the passes, in ms per molecule.",
        "",
        "| descriptor | in sequence, ms | isolated, ms | in fast |",
        "|---|---:|---:|---|",
    ]
    cost = report["per_descriptor_ms"]
    for name in sorted(cost, key=lambda n: -cost[n]["in_sequence_ms"])[:10]:
        lines.append(f"| {name} | {cost[name]['in_sequence_ms']:.3f} | {cost[name]['isolated_ms']:.3f} | "
                     f"{'no' if name in SLOW_DESCRIPTORS else 'yes'} |")
    lines += ["", "## Left out of fast: how much the kept descriptors explain", "",
              "Held-out R^2 of a ridge regression from the kept descriptors (robustly scaled).", "",
              "| descriptor | in sequence, ms | R^2 |", "|---|---:|---:|"]
    for name, value in report["left_out_r2"].items():
        shown = "constant" if value is None else f"{value:.3f}"
        lines.append(f"| {name} | {cost[name]['in_sequence_ms']:.3f} | {shown} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/descriptor_speed"))
    args = parser.parse_args()
    RDLogger.DisableLog("rdApp.*")
    smiles = moses_sample(args.n)
    names = {s: descriptor_names(s) for s in ("fast", "all")}

    def featurise(s: str):
        return mol_to_data(mol_from_smiles(s), smiles=s)

    def featurise_with(set_name: str):
        def run(s: str):
            mol = mol_from_smiles(s)
            data = mol_to_data(mol, smiles=s)
            return data, descriptor_vector(mol, names[set_name])
        return run

    parsed = [Chem.MolFromSmiles(s) for s in smiles]

    def alone(set_name: str):
        # on parsed molecules, copied so that no cached value carries over from another pass
        return lambda k: descriptor_vector(Chem.Mol(parsed[k]), names[set_name])

    with_fast, with_all = featurise_with("fast"), featurise_with("all")
    variants = {"featurise": lambda k: featurise(smiles[k]),
                "featurise+fast": lambda k: with_fast(smiles[k]),
                "featurise+all": lambda k: with_all(smiles[k]),
                "fast": alone("fast"), "all": alone("all")}
    rates, results = interleaved_rates(variants, len(smiles), args.repeats)
    values = np.stack(results["all"])
    print(json.dumps(rates, indent=1))
    cost = per_descriptor_cost(smiles, args.repeats)
    report = {
        "command": " ".join(["python", *sys.argv]),
        "machine": machine_description(),
        "versions": library_versions(),
        "molecules": len(smiles),
        "stride": max(1, MOSES_TRAIN // args.n),
        "repeats": args.repeats,
        "sizes": {k: len(v) for k, v in names.items()},
        "rates_mol_per_s": rates,
        "nan_share": {"all": float(np.isnan(values).mean()),
                      "per_descriptor": {n: float(v) for n, v in zip(names["all"], np.isnan(values).mean(0)) if v}},
        "per_descriptor_ms": cost,
        "left_out_r2": left_out_r2(values, names["all"], names["fast"]),
        "slow_descriptors": SLOW_DESCRIPTORS,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "descriptor_speed.json").write_text(json.dumps(report, indent=1))
    (args.out / "descriptor_speed.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
