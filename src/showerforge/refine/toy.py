"""A readout model for studies of mis-modelling: calibration, electronic noise, zero suppression.

:func:`detector_response` turns Geant4 voxel energies into what a crystal calorimeter's readout
would record: a global energy scale, a per-channel (inter)calibration spread, Gaussian
electronic noise per channel and a zero-suppression threshold in units of the noise (channels
below it read 0, so the result stays non-negative and in MeV). With different settings applied
to two simulations it makes a realistic "MC" / "data" pair (docs/refinement.md).
"""

from __future__ import annotations

import numpy as np

from showerforge.errors import UserError

__all__ = ["detector_response"]


def detector_response(
    showers_mev: np.ndarray,
    *,
    scale: float = 1.0,
    intercalibration: float = 0.0,
    noise_mev: float = 0.0,
    zero_suppression_sigma: float = 2.0,
    seed: int = 0,
    calibration_seed: int | None = None,
) -> np.ndarray:
    """Apply a readout model to showers.

    Args:
        showers_mev: (N, n_voxels) deposited energies, MeV.
        scale: global energy scale (1.02: 2 % too much light).
        intercalibration: relative spread of the per-channel calibration constants (0.01: 1 %),
            one fixed map drawn from ``calibration_seed``.
        noise_mev: Gaussian electronic noise per channel, MeV (sigma).
        zero_suppression_sigma: channels below this many noise sigmas read 0 (with noise only).
        seed: seeds the noise.
        calibration_seed: seeds the calibration map (default: ``seed``).

    Returns:
        (N, n_voxels) float32 recorded energies, MeV, non-negative.
    """
    x = np.asarray(showers_mev, dtype=np.float64)
    if x.ndim != 2:
        raise UserError(f"detector_response: showers must be (N, n_voxels), got shape {x.shape}")
    if not (scale > 0 and intercalibration >= 0 and noise_mev >= 0 and zero_suppression_sigma >= 0):
        raise UserError(
            "detector_response: expected scale > 0 and intercalibration, noise_mev, zero_suppression_sigma >= 0"
        )
    cal_rng = np.random.default_rng(
        np.random.SeedSequence([int(seed if calibration_seed is None else calibration_seed), 0xCA1])
    )
    constants = scale * (1.0 + intercalibration * cal_rng.standard_normal(x.shape[1]))
    out = x * constants
    if noise_mev > 0:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x401]))
        out = out + noise_mev * rng.standard_normal(out.shape)
        out[out < zero_suppression_sigma * noise_mev] = 0.0
    return np.clip(out, 0.0, None).astype(np.float32)
