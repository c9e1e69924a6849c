"""Generation: batched, seeded sampling of trained surrogates.

Modules: shared by showers and jets, :mod:`.common` (sampler choice, file attributes) and
:mod:`.pretrained` (shipped models); per kind, :mod:`.showers` and :mod:`.jets`.

Public API:
    * :func:`generate_showers` - run directory + incident energies -> CaloChallenge-format file;
    * :func:`sample_array` - in-memory sampling of a loaded :class:`~showerforge.training.Surrogate`;
    * :func:`energies_from` - incident energies of a reference file;
    * :func:`generate_jets` / :func:`sample_jets` - the same for jet (set) surrogates, JetNet format.
"""

from __future__ import annotations

from showerforge.generate.jets import generate_jets, sample_jets
from showerforge.generate.showers import energies_from, generate_showers, sample_array

__all__ = ["generate_showers", "sample_array", "energies_from", "generate_jets", "sample_jets"]
