"""Labelled alloy structures generated offline with ASE's EMT calculator.

Each structure is a random fcc, bcc or hcp supercell (8 to 32 atoms) of Al, Cu, Ag, Au, Ni, Pd
and Pt, a random element on every site, sized by Vegard's law from the elements' EMT fcc lattice
constants, then strained (symmetric strain up to +-3 %) and rattled (Gaussian, sigma 0.05 to
0.1 A). Energy (eV), forces (eV/A) and stress (eV/A^3) come from EMT, which is analytic, so the
forces are exact derivatives of the energy.

With ``relax`` the rattled positions are relaxed (fixed cell, FIRE under EMT, to a largest
force of ``RELAX_FMAX``): local minima of the energy, the structures denoising pretraining
assumes (a denoiser learns the score of the data's distribution, which near equilibrium is
proportional to the forces; on rattled structures the "clean" positions are themselves
displaced by more than the added noise).

Structure ``i`` depends only on ``(seed, i)``: the first ``k`` structures of a large run equal a
run of ``k`` structures with the same seed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from graphssl.core.errors import DataError

EMT_ELEMENTS = ("Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt")
# (cell as ase.build.bulk makes it, atoms in that cell) -> supercell repeats giving 8, 16, 32 atoms
_REPEATS = {
    "fcc": [(2, 1, 1), (2, 2, 1), (2, 2, 2)],  # cubic cell, 4 atoms
    "bcc": [(2, 2, 1), (2, 2, 2), (4, 2, 2)],  # cubic cell, 2 atoms
    "hcp": [(2, 2, 1), (2, 2, 2), (2, 2, 4)],  # primitive cell, 2 atoms
}
MAX_STRAIN = 0.03
SIGMA_RANGE = (0.05, 0.1)
RELAX_FMAX = 0.01  # eV/A
# FIRE, not BFGS: BFGS stalled on some unstable bcc cells (largest force 0.09 eV/A after 2,000 steps)
RELAX_STEPS = 3000
OUTPUT_NAME = "emt.extxyz"


def emt_fcc_lattice_constant(symbol: str) -> float:
    """The fcc lattice constant (A) implied by EMT's Wigner-Seitz radius s0 of ``symbol``.

    An fcc atom occupies a^3/4 = (4 pi / 3) s0^3, so a = s0 (16 pi / 3)^(1/3); for Cu this gives
    3.61 A, close to EMT's own minimum, so unstrained cells start near equilibrium.
    """
    from ase.calculators.emt import parameters
    from ase.units import Bohr

    if symbol not in parameters:
        raise DataError(f"EMT has no parameters for {symbol!r}; it supports {', '.join(EMT_ELEMENTS)}")
    return parameters[symbol][1] * Bohr * (16.0 * math.pi / 3.0) ** (1.0 / 3.0)


def random_alloy(rng: np.random.Generator, elements: Sequence[str] = EMT_ELEMENTS) -> Any:
    """One random, strained and rattled alloy as ``ase.Atoms`` (no calculator attached)."""
    from ase.build import bulk

    lattice = str(rng.choice(list(_REPEATS)))
    repeat = _REPEATS[lattice][int(rng.integers(len(_REPEATS[lattice])))]
    # 1 to 4 species with Dirichlet fractions, then a species drawn independently for each site
    species = rng.choice(list(elements), size=int(rng.integers(1, min(4, len(elements)) + 1)), replace=False)
    fractions = rng.dirichlet(np.ones(len(species)))
    sites = 4 if lattice == "fcc" else 2
    count = sites * int(np.prod(repeat))
    symbols = [str(s) for s in rng.choice(species, size=count, p=fractions)]
    a_fcc = float(np.mean([emt_fcc_lattice_constant(s) for s in symbols]))  # Vegard's law
    # Same atomic volume (and for hcp the same nearest-neighbour distance) as the fcc average.
    if lattice == "fcc":
        atoms = bulk("Cu", "fcc", a=a_fcc, cubic=True)
    elif lattice == "bcc":
        atoms = bulk("Cu", "bcc", a=(a_fcc**3 / 2.0) ** (1.0 / 3.0), cubic=True)
    else:
        a = a_fcc / math.sqrt(2.0)
        atoms = bulk("Cu", "hcp", a=a, c=a * math.sqrt(8.0 / 3.0))
    atoms = atoms.repeat(repeat)
    atoms.set_chemical_symbols(symbols)
    upper = rng.uniform(-MAX_STRAIN, MAX_STRAIN, size=(3, 3))
    strain = np.triu(upper) + np.triu(upper, 1).T  # symmetric, every entry within +-MAX_STRAIN
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
    sigma = float(rng.uniform(*SIGMA_RANGE))
    atoms.positions = atoms.positions + rng.normal(0.0, sigma, size=atoms.positions.shape)
    atoms.info.update({"lattice": lattice, "sigma": sigma, "max_abs_strain": float(np.abs(strain).max())})
    return atoms


def relax_positions(atoms: Any, fmax: float = RELAX_FMAX, steps: int = RELAX_STEPS) -> int:
    """Relax the positions of ``atoms`` (EMT calculator attached; the cell is kept) with FIRE
    until the largest force is below ``fmax`` eV/A; the number of steps taken. A structure that
    does not converge within ``steps`` is an error naming it, never kept half relaxed."""
    from ase.optimize import FIRE

    optimiser = FIRE(atoms, logfile=None)
    if not optimiser.run(fmax=fmax, steps=steps):
        largest = float(np.linalg.norm(atoms.get_forces(), axis=1).max())
        raise DataError(f"EMT structure {atoms.info.get('index', '?')} ({atoms.get_chemical_formula()}) did not "
                        f"relax below {fmax} eV/A in {steps} FIRE steps (largest force {largest:.3g} eV/A)")
    return int(optimiser.nsteps)


def emt_structure(seed: int, index: int, relax: bool = False) -> Any:
    """Structure ``index`` of the run with ``seed``, labelled by EMT (a single-point calculator);
    with ``relax``, its positions relaxed first (:func:`relax_positions`)."""
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = random_alloy(np.random.default_rng([seed, index]))
    atoms.info["index"] = index
    atoms.calc = EMT()
    if relax:
        start = atoms.positions.copy()
        atoms.info["relax_steps"] = relax_positions(atoms)
        atoms.info["relax_rms_displacement"] = float(np.sqrt(((atoms.positions - start) ** 2).sum(1).mean()))
    energy = float(atoms.get_potential_energy())
    forces = atoms.get_forces().copy()
    stress = atoms.get_stress().copy()  # Voigt order, eV/A^3
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces, stress=stress)
    return atoms


def generate_emt(n: int, out_dir: str | Path, seed: int = 0, progress: bool = True, relax: bool = False) -> Path:
    """Write ``n`` EMT-labelled alloys to ``<out_dir>/emt.extxyz`` plus ``report.json``; return the file.
    ``relax``: relaxed positions (:func:`relax_positions`), e.g. for a denoising corpus.

    The file is written under a temporary name and renamed at the end, so an interrupted run
    leaves no partial data set behind.
    """
    import ase.io
    from ase.calculators.emt import EMT  # noqa: F401  (imported before the clock starts)

    if n < 1:
        raise DataError(f"the number of structures must be at least 1, got {n}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / OUTPUT_NAME
    lattices: Counter[str] = Counter()
    atom_counts: list[int] = []
    moved: list[float] = []
    start = time.perf_counter()
    fd, tmp = tempfile.mkstemp(dir=out, prefix=OUTPUT_NAME, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            for i in tqdm(range(n), desc="EMT structures", unit="structure", disable=not progress):
                atoms = emt_structure(seed, i, relax=relax)
                moved.append(atoms.info.get("relax_rms_displacement", float("nan")))
                ase.io.write(handle, atoms, format="extxyz")
                lattices[atoms.info["lattice"]] += 1
                atom_counts.append(len(atoms))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    seconds = time.perf_counter() - start
    report = {
        "file": path.name, "n_structures": n, "seed": seed, "seconds": round(seconds, 3),
        "structures_per_second": round(n / seconds, 2) if seconds > 0 else None,
        "elements": list(EMT_ELEMENTS), "lattices": dict(sorted(lattices.items())),
        "atoms_min": min(atom_counts), "atoms_max": max(atom_counts), "atoms_total": sum(atom_counts),
        "max_strain": MAX_STRAIN, "rattle_sigma": list(SIGMA_RANGE),
        "relaxed": relax, "relax_fmax": RELAX_FMAX if relax else None,
        "relax_rms_displacement_mean": round(float(np.mean(moved)), 4) if relax else None,
        "units": {"energy": "eV", "forces": "eV/A", "stress": "eV/A^3 (ASE sign, Voigt xx yy zz yz xz xy)"},
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``graphssl data generate emt``."""
    parser.add_argument("--n", type=int, required=True, help="number of structures")
    parser.add_argument("--out", required=True, help="output folder (gets emt.extxyz and report.json)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (structure i depends only on seed and i)")
    parser.add_argument("--relax", action="store_true",
                        help=f"relax the positions (fixed cell, FIRE under EMT, largest force < {RELAX_FMAX} eV/A)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Run the generator from parsed arguments (see :func:`add_arguments`); prints a summary."""
    path = generate_emt(args.n, args.out, seed=args.seed, progress=not getattr(args, "no_progress", False),
                        relax=getattr(args, "relax", False))
    report = json.loads((path.parent / "report.json").read_text())
    print(f"wrote {report['n_structures']} EMT structures to {path} "
          f"({report['structures_per_second']} structures/s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``graphssl data generate emt --n N --out DIR [--seed S]`` without the CLI wrapper."""
    parser = argparse.ArgumentParser(prog="graphssl data generate emt", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
