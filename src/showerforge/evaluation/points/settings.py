"""The options of a point-cloud evaluation in one object: :class:`PointSettings`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from showerforge.data.points import DEFAULT_THRESHOLD_MIP
from showerforge.errors import UserError
from showerforge.evaluation.showers.classifier import ClassifierConfig

__all__ = ["PointSettings", "Progress"]

Progress = Callable[[str, int, int], None]
"""Called as ``progress(step, done, total)`` while a step runs (reading, bootstrap, classifier epochs)."""


@dataclass(frozen=True)
class PointSettings:
    """Every option of a point-cloud evaluation.

    Attributes:
        floor_reference: a second reference file, independent of the reference (Geant4 with
            another seed): the candidate then meets the whole reference and the floor is this
            file against it. Default: the reference is split in two seeded halves A and B; the
            candidate meets A and the floor is B against A (the rule of the voxel report).
        quick: 10 bootstrap replicas instead of 20 (the classifier is small either way).
        seed: seeds the halves, the subsamples, the bootstrap and the classifier.
        max_samples: use only the first ``max_samples`` showers of each file.
        threshold_mip: readout threshold of the cells, in MIPs of each layer (default 0.5).
        n_bootstrap: bootstrap replicas of the W1 errors (default 20, quick 10).
        classifier: run the classifier test on the high-level observables.
        classifier_config: its hyper-parameters (default
            :meth:`~showerforge.evaluation.showers.classifier.ClassifierConfig.verdict`).
        repeats: classifier runs averaged (overrides the config's).
        plots: write the PNG plots (needs matplotlib).
    """

    floor_reference: str | Path | None = None
    quick: bool = False
    seed: int = 0
    max_samples: int | None = None
    threshold_mip: float = DEFAULT_THRESHOLD_MIP
    n_bootstrap: int | None = None
    classifier: bool = True
    classifier_config: ClassifierConfig | None = None
    repeats: int | None = None
    plots: bool = True

    def with_options(self, **options: Any) -> PointSettings:
        """A copy with some fields replaced.

        Raises:
            TypeError: an unknown option name.
        """
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise TypeError(f"unknown point-cloud evaluation option(s) {unknown}; expected some of {sorted(names)}")
        return dataclasses.replace(self, **options) if options else self

    def check(self) -> None:
        """Refuse options out of range (before any file is read).

        Raises:
            UserError: naming the option and what was expected.
        """
        if not float(self.threshold_mip) >= 0:
            raise UserError(f"threshold_mip must be >= 0 (MIP), got {self.threshold_mip}")
        if self.max_samples is not None and int(self.max_samples) < 4:
            raise UserError(f"max_samples must be >= 4 (the reference may be split in halves), got {self.max_samples}")
        if self.n_bootstrap is not None and int(self.n_bootstrap) < 0:
            raise UserError(f"n_bootstrap must be >= 0, got {self.n_bootstrap}")
        if self.repeats is not None and int(self.repeats) < 1:
            raise UserError(f"repeats must be >= 1, got {self.repeats}")

    @property
    def bootstrap_replicas(self) -> int:
        """``n_bootstrap``, or its default (10 quick, 20 full)."""
        return int(self.n_bootstrap if self.n_bootstrap is not None else (10 if self.quick else 20))

    @property
    def classifier_settings(self) -> ClassifierConfig:
        """The classifier hyper-parameters: ``classifier_config`` or the verdict settings, with ``repeats``."""
        cfg = self.classifier_config or ClassifierConfig.verdict()
        return cfg if self.repeats is None else dataclasses.replace(cfg, repeats=int(self.repeats))
