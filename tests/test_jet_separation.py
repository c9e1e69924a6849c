"""The type-separation AUC: 0.5 for one population split in two, near 1 for one-prong against
two-prong jets, padding ignored, the same numbers for the same seed."""

from __future__ import annotations

import numpy as np
import pytest

from showerforge.errors import UserError
from showerforge.evaluation import mass_window
from showerforge.evaluation.jets.separation import FEATURE_NAMES, separation_features, type_separation_auc


def _jets(n: int, prongs: int, seed: int, slots: int = 20) -> np.ndarray:
    """Generated fixture: ``prongs`` clusters of particles 0.4 apart in (eta, phi), pT-sorted, zero-padded."""
    rng = np.random.default_rng(seed)
    pf = np.zeros((n, slots, 4))
    for i in range(n):
        k = int(rng.integers(8, slots + 1))
        centre = rng.integers(0, prongs, k)
        axis = np.array([[0.0, 0.0], [0.4, 0.0]])[centre] if prongs == 2 else np.zeros((k, 2))
        xy = axis + rng.normal(0, 0.03, (k, 2))
        pt = np.sort(rng.dirichlet(np.ones(k)))[::-1]
        pf[i, :k] = np.c_[xy - (pt[:, None] * xy).sum(0), pt, np.ones(k)]
    return pf


def test_features_ignore_padding_and_count_particles():
    pf = _jets(60, 2, seed=0)
    base = separation_features(pf)
    assert base.shape == (60, len(FEATURE_NAMES)) and np.isfinite(base).all()
    assert np.array_equal(base[:, 1], (pf[..., 3] > 0.5).sum(1))
    garbage = pf.copy()
    pad = garbage[..., 3] < 0.5
    garbage[pad, :3] = np.random.default_rng(1).normal(0, 5, (pad.sum(), 3))  # padded slots hold junk
    np.testing.assert_array_equal(separation_features(garbage), base)


def test_one_population_is_not_separated_and_prongs_are():
    same = [type_separation_auc(_jets(400, 1, seed=s), _jets(400, 1, seed=100 + s), seed=s) for s in range(3)]
    for r in same:  # one population: consistent with 0.5 within 4 standard errors
        assert abs(r.value - 0.5) < 4 * r.error and 0.005 < r.error < 0.05
    apart = type_separation_auc(_jets(400, 1, seed=7), _jets(400, 2, seed=8), seed=0)
    assert apart.value > 0.97 and apart.error < 0.02  # a two-prong mass against one prong
    again = type_separation_auc(_jets(400, 1, seed=7), _jets(400, 2, seed=8), seed=0)
    assert again == apart


def test_refuses_too_few_jets_and_bad_settings():
    with pytest.raises(UserError, match="at least 10 jets"):
        type_separation_auc(_jets(5, 1, 0), _jets(50, 2, 1), seed=0)
    with pytest.raises(UserError, match="folds"):
        type_separation_auc(_jets(50, 1, 0), _jets(50, 2, 1), seed=0, folds=1)


def test_mass_window_known_answer_and_empty_sample():
    masses = np.r_[np.arange(150.0, 201.0), [10.0, 20.0, 300.0, 400.0, 142.5, 202.5]]  # 51 inside 172.5 +- 30
    got = mass_window(masses, 172.5, 30.0)
    assert got["fraction"] == 51 / 57 and got["median"] == 175.0
    assert got["fraction_error"] == pytest.approx(np.sqrt(51 / 57 * 6 / 57 / 57))
    assert got["median_error"] == pytest.approx(1.2533 * np.arange(150.0, 201.0).std() / np.sqrt(51))
    assert mass_window(np.array([10.0]), 172.5, 30.0)["fraction"] == 0.0  # no jet inside: share 0
    with pytest.raises(UserError, match="no jets"):
        mass_window(np.array([]), 80.4, 12.0)
