"""NPLM goodness-of-fit: uniform p-values under the null, a shift detected."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kstest

from showerforge.evaluation.nplm import NPLMConfig, nplm_test

CFG = NPLMConfig(n_centres=60, n_toys=24, max_rows=300)


def test_null_p_values_are_uniform() -> None:
    """Reference vs reference: the p-values of independent experiments follow U(0, 1) (KS test)."""
    rng = np.random.default_rng(0)
    p = [
        nplm_test(
            rng.normal(size=(300, 3)), rng.normal(size=(200, 3)), rng.normal(size=(300, 3)), config=CFG, seed=s
        ).p_value
        for s in range(16)
    ]
    assert kstest(p, "uniform").pvalue > 0.01
    assert 0.2 < np.mean(p) < 0.8


def test_shift_is_detected() -> None:
    rng = np.random.default_rng(1)
    ref, other = rng.normal(size=(300, 3)), rng.normal(size=(300, 3))
    res = nplm_test(ref, rng.normal(0.6, 1.0, size=(200, 3)), other, config=CFG, seed=2)
    assert res.p_value == pytest.approx(1 / (1 + CFG.n_toys)) and res.z > 1.7
    assert res.t > max(res.null) and res.sizes == (300, 200)
    assert res.to_dict()["n_toys"] == CFG.n_toys
    data = rng.normal(size=(200, 3))
    assert nplm_test(ref, data, other, config=CFG, seed=5) == nplm_test(ref, data, other, config=CFG, seed=5)
