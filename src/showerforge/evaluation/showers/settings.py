"""The options of a shower evaluation in one object: :class:`EvaluationSettings`.

:func:`~showerforge.evaluation.showers.report.evaluate_files` takes them as keyword arguments
(``quick=True``, ``seed=3``, ...) or as one :class:`EvaluationSettings`; the computation
(:mod:`.compute`) reads only this object. Defaults follow the CaloChallenge 2022 protocol.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from showerforge.errors import UserError
from showerforge.evaluation.nplm import NPLMConfig
from showerforge.evaluation.showers.classifier import ClassifierConfig
from showerforge.geometry import Geometry

__all__ = ["CLASSIFIERS", "EvaluationSettings", "Progress"]

CLASSIFIERS = ("high_level", "low_level", "verdict")
"""The classifier tests, in the order of the report."""

Progress = Callable[[str, int, int], None]
"""Called as ``progress(step, done, total)`` while a step runs (reading, classifier epochs, ...)."""


@dataclass(frozen=True)
class EvaluationSettings:
    """Every option of a shower evaluation.

    Attributes:
        floor_reference: a second reference file, independent of the reference (e.g. Geant4
            showers with another seed): the floor is then this file against the whole reference,
            and the candidate is compared with the whole reference. Default: the reference is
            split in two seeded halves A and B; the candidate is compared with A and the floor is
            B against A.
        geometry: readout for files without a ``geometry`` attribute (preset name, JSON or
            CaloChallenge XML file, or a :class:`~showerforge.geometry.Geometry`); default: from
            the files.
        quick: small classifier (:meth:`ClassifierConfig.quick`), 10 bootstrap replicas, small
            FPD / KPD subsamples and PRDC on at most 1000 showers.
        seed: seeds the bootstrap, the reference halves, the subsamples and the classifiers.
        max_showers: use only the first ``max_showers`` showers of each file.
        chunk: showers per read; default: about 8 million voxels per chunk.
        threshold_mev: voxel threshold in MeV; default: the challenge's
            (:func:`showerforge.evaluation.showers.features.default_threshold_mev`).
        n_bootstrap: bootstrap replicas (default 20, quick 10).
        classifiers: which classifier tests to run (some of :data:`CLASSIFIERS`).
        classifier_config: classifier hyper-parameters (overrides ``quick`` for the classifier).
        distances: compute FPD, KPD and PRDC.
        nplm_toys: toys of the NPLM test on the verdict inputs (0: no NPLM test; default 50,
            quick 20; see :mod:`showerforge.evaluation.nplm`).
        fpd_extrapolation: ``"jetnet"`` (the challenge's, through jetnet) or ``"lsq"`` (exact
            line), see :func:`showerforge.evaluation.distances.fpd`.
        low_level_memory_mb: memory (MB) for the voxel rows of the low-level classifier and PRDC.
        plots: write PNG plots (needs matplotlib).
    """

    floor_reference: str | Path | None = None
    geometry: Geometry | str | None = None
    quick: bool = False
    seed: int = 0
    max_showers: int | None = None
    chunk: int | None = None
    threshold_mev: float | None = None
    n_bootstrap: int | None = None
    classifiers: Sequence[str] = CLASSIFIERS
    classifier_config: ClassifierConfig | None = None
    distances: bool = True
    nplm_toys: int | None = None
    fpd_extrapolation: str = "jetnet"
    low_level_memory_mb: float = 1024.0
    plots: bool = True

    def with_options(self, **options: Any) -> EvaluationSettings:
        """A copy with some fields replaced (keyword names as the fields).

        Raises:
            TypeError: an unknown option name.
        """
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise TypeError(f"unknown evaluation option(s) {unknown}; expected some of {sorted(names)}")
        return dataclasses.replace(self, **options) if options else self

    def check(self) -> None:
        """Refuse unknown classifiers and FPD extrapolations (before any file is read).

        Raises:
            UserError: naming the option and what was expected.
        """
        unknown = set(self.classifiers) - set(CLASSIFIERS)
        if unknown:
            raise UserError(f"unknown classifiers {sorted(unknown)}; expected some of {list(CLASSIFIERS)}")
        from showerforge.evaluation.distances import FPD_EXTRAPOLATIONS

        if self.fpd_extrapolation not in FPD_EXTRAPOLATIONS:
            raise UserError(
                f"unknown FPD extrapolation {self.fpd_extrapolation!r}; expected one of {FPD_EXTRAPOLATIONS}"
            )

    @property
    def bootstrap_replicas(self) -> int:
        """``n_bootstrap``, or its default (10 quick, 20 full)."""
        return int(self.n_bootstrap if self.n_bootstrap is not None else (10 if self.quick else 20))

    @property
    def classifier(self) -> ClassifierConfig:
        """The classifier hyper-parameters: ``classifier_config``, or quick / full by ``quick``."""
        return self.classifier_config or (ClassifierConfig.quick() if self.quick else ClassifierConfig())

    @property
    def nplm(self) -> NPLMConfig:
        """The NPLM settings: quick / full by ``quick``, with ``nplm_toys`` toys when given."""
        cfg = NPLMConfig.quick() if self.quick else NPLMConfig()
        return cfg if self.nplm_toys is None else dataclasses.replace(cfg, n_toys=int(self.nplm_toys))

    def showers_used(self, n_in_file: int) -> int:
        """Showers of a file of ``n_in_file`` showers that enter the evaluation (``max_showers`` cap)."""
        return n_in_file if self.max_showers is None else min(n_in_file, int(self.max_showers))
