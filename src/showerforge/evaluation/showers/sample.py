"""Showers of one file as analyses see them: high-level features and the radial energy, streamed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ShowerSample"]


@dataclass
class ShowerSample:
    """Showers of one file, as analyses see them.

    Attributes:
        path: the file.
        geometry: its readout (:class:`showerforge.geometry.Geometry`).
        features: the high-level features of
            :func:`showerforge.evaluation.showers.features.compute_features` (MeV, mm).
        radial_energy: (N, n_r) energy per radial bin summed over layers and angles, MeV.
    """

    path: Path
    geometry: Any
    features: dict[str, np.ndarray]
    radial_energy: np.ndarray

    @classmethod
    def read(cls, path: str | Path, max_events: int | None = None) -> ShowerSample:
        """Read a CaloChallenge-format file in chunks (memory: one chunk of voxels)."""
        from showerforge.data.calo import CaloFile
        from showerforge.evaluation.showers.features import stream_features

        radial: list[np.ndarray] = []
        with CaloFile.open(Path(path)) as f:
            geo = f.geometry

            def on_chunk(_lo: int, _inc: np.ndarray, sh: np.ndarray) -> None:
                radial.append(_radial_energy(geo, sh))

            feats = stream_features(f, max_showers=max_events, on_chunk=on_chunk)
        n_r = geo.shape[2] if geo.is_regular else 1
        rad = np.concatenate(radial) if radial else np.zeros((0, n_r))
        return cls(path=Path(path), geometry=geo, features=feats, radial_energy=rad)

    def __len__(self) -> int:
        return int(self.features["etot"].shape[0])


def _radial_energy(geo: Any, showers: np.ndarray) -> np.ndarray:
    if not geo.is_regular:
        return np.asarray(showers, np.float64).sum(axis=1, keepdims=True)
    n_l, n_a, n_r = geo.shape
    return np.asarray(showers, np.float64).reshape(-1, n_l * n_a, n_r).sum(axis=1)
