"""The EMT generator's relaxed structures: local minima of EMT, the same structures as the
rattled ones before relaxation, and a clear error when FIRE does not converge."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ase")

from ase.calculators.emt import EMT  # noqa: E402

from graphssl.atomistic.emt import RELAX_FMAX, emt_structure, random_alloy, relax_positions  # noqa: E402
from graphssl.core.errors import DataError  # noqa: E402


def test_relaxed_structures_are_emt_minima_of_the_same_alloys():
    for index in range(3):
        rattled, relaxed = emt_structure(7, index), emt_structure(7, index, relax=True)
        assert rattled.get_chemical_symbols() == relaxed.get_chemical_symbols()
        assert np.allclose(rattled.cell.array, relaxed.cell.array)  # the cell is kept
        forces = relaxed.get_forces()  # the stored single-point forces
        assert np.linalg.norm(forces, axis=1).max() < RELAX_FMAX
        assert np.linalg.norm(rattled.get_forces(), axis=1).max() > RELAX_FMAX
        moved = np.sqrt(((relaxed.positions - rattled.positions) ** 2).sum(1).mean())
        assert moved == pytest.approx(relaxed.info["relax_rms_displacement"])
        assert moved > 0.01 and relaxed.info["relax_steps"] > 0


def test_a_relaxation_that_does_not_converge_names_the_structure():
    atoms = random_alloy(np.random.default_rng([7, 0]))
    atoms.info["index"] = 0
    atoms.calc = EMT()
    with pytest.raises(DataError, match=r"EMT structure 0 \(.+\) did not relax below 0.01 eV/A in 1 FIRE steps"):
        relax_positions(atoms, steps=1)
