"""Generation: batched, seeded sampling of trained surrogates, and few-step students.

Modules: shared by every kind, :mod:`.common` (options, sampler choice, file attributes) and
:mod:`.distill` (a few-step student from a flow-matching teacher); per kind, :mod:`.calo_voxels`
(:class:`Surrogate`) and :mod:`.jet_set` (:class:`JetSurrogate`). The loaded model of a
checkpoint, whatever its kind, comes from :func:`showerforge.kinds.load` (``sf.load``).

Public API:
    * :func:`generate_showers` - run directory + incident energies -> CaloChallenge-format file;
    * :func:`sample_array` - in-memory sampling of a loaded :class:`Surrogate`;
    * :func:`energies_from` - incident energies of a reference file;
    * :func:`generate_jets` / :func:`sample_jets` - the same for jet (set) surrogates, JetNet format.
"""

from __future__ import annotations

from showerforge.generate.calo_voxels import Surrogate, energies_from, generate_showers, load_model, sample_array
from showerforge.generate.jet_set import JetSurrogate, generate_jets, load_jet_model, sample_jets

__all__ = [
    "Surrogate",
    "load_model",
    "generate_showers",
    "sample_array",
    "energies_from",
    "JetSurrogate",
    "load_jet_model",
    "generate_jets",
    "sample_jets",
]
