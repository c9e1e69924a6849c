"""Jets of one file (JetNet layout) as analyses see them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["JetSample"]


@dataclass
class JetSample:
    """Jets of one file (JetNet layout), as analyses see them.

    Attributes:
        path: the file (``path`` or ``path:type``).
        particle_features: (N, n, 4) eta_rel, phi_rel, pT_rel, mask.
        jet_features: (N, 4) pT (GeV), eta, mass (GeV), multiplicity.
        jet_type: (N,) index into ``JET_TYPES``.
    """

    path: str
    particle_features: np.ndarray
    jet_features: np.ndarray
    jet_type: np.ndarray
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def read(cls, spec: str | Path, max_events: int | None = None) -> JetSample:
        from showerforge.data.jetnet import read_jets

        data = read_jets(str(spec))
        sl = slice(None) if max_events is None else slice(0, int(max_events))
        return cls(
            path=str(spec),
            particle_features=data.particle_features[sl],
            jet_features=data.jet_features[sl],
            jet_type=data.jet_type[sl],
        )

    def __len__(self) -> int:
        return int(self.jet_features.shape[0])

    @property
    def mask(self) -> np.ndarray:
        return self.particle_features[..., 3] > 0.5
