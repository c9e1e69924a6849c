"""Separation power and Wasserstein-1 against closed-form answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm, wasserstein_distance

from showerforge.evaluation.metrics import (
    Measurement,
    Resampler,
    _w1_replicas,
    bin_index,
    separation_power,
    separation_power_counts,
    separation_power_from_hist,
    unit_histogram,
    wasserstein1,
)


def test_identical_samples_give_zero() -> None:
    x = np.random.default_rng(0).normal(size=5000)
    s = separation_power(x, x.copy(), np.linspace(-4, 4, 41), seed=1)
    w = wasserstein1(x, x.copy(), seed=1)
    assert s.value == 0.0 and w.value == 0.0
    assert s.error is not None and s.error > 0  # the bootstrap resamples both samples independently


def test_disjoint_histograms_give_one() -> None:
    edges = np.linspace(0, 2, 21)
    s = separation_power(np.full(100, 0.5), np.full(50, 1.5), edges, n_bootstrap=5)
    assert s.value == pytest.approx(1.0)
    assert separation_power_from_hist([3, 0, 0], [0, 0, 7]) == pytest.approx(1.0)


def test_overlapping_histograms_exact() -> None:
    # h = (1/2, 1/2, 0), g = (0, 1/2, 1/2): S = 1/2 (1/4 / (1/2) + 0 + 1/4 / (1/2)) = 1/2
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    ref = np.array([0.5] * 10 + [1.5] * 10)
    cand = np.array([1.5] * 7 + [2.5] * 7)
    assert separation_power(ref, cand, edges, n_bootstrap=0).value == pytest.approx(0.5)
    # h = (1/4, 3/4), g = (3/4, 1/4): S = 1/2 (2 * (1/2)^2 / 1) = 1/4
    assert separation_power_from_hist([1, 3], [3, 1]) == pytest.approx(0.25)


def test_out_of_range_and_nan_are_not_counted() -> None:
    edges = np.array([0.0, 1.0, 2.0])
    values = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, np.nan, np.inf])
    np.testing.assert_array_equal(bin_index(values, edges), [-1, 0, 0, 1, 1, -1, -1, -1])
    np.testing.assert_allclose(unit_histogram(values, edges), [0.5, 0.5])
    assert separation_power(np.array([5.0]), np.array([0.5]), edges, n_bootstrap=0).value is None


@pytest.mark.parametrize("shift", [0.3, 1.0])
def test_shifted_normals_match_analytic(shift: float) -> None:
    rng = np.random.default_rng(7)
    n = 200_000
    ref, cand = rng.normal(0, 1, n), rng.normal(shift, 1, n)
    edges = np.linspace(-5, 6, 111)
    p = np.diff(norm.cdf(edges))
    q = np.diff(norm.cdf(edges - shift))
    p, q = p / p.sum(), q / q.sum()
    s_exact = 0.5 * np.sum((p - q) ** 2 / (p + q))
    s = separation_power(ref, cand, edges, n_bootstrap=20, seed=3)
    # the finite-sample bias of S is about (bins with entries) / (2 n) ~ 3e-4 here
    assert abs(s.value - s_exact) < 4 * s.error + 5e-4
    w = wasserstein1(ref, cand, n_bootstrap=20, seed=3)
    assert w.value == pytest.approx(wasserstein_distance(ref, cand))
    assert abs(w.value - shift) < 4 * w.error
    assert 0 < w.error < 0.01


def test_w1_two_point_distributions() -> None:
    # all mass at 0 vs all mass at 3: W1 = 3; half at 0/half at 1 vs all at 1: W1 = 1/2
    assert wasserstein1(np.zeros(10), np.full(4, 3.0), n_bootstrap=0).value == pytest.approx(3.0)
    assert wasserstein1(np.array([0.0, 1.0]), np.array([1.0, 1.0]), n_bootstrap=0).value == pytest.approx(0.5)
    assert wasserstein1(np.array([np.nan]), np.array([1.0])).value is None


def test_weighted_replicas_agree_with_scipy() -> None:
    rng = np.random.default_rng(2)
    u, v = rng.exponential(size=300), rng.normal(size=200)
    wu = rng.integers(0, 4, (3, 300))
    wv = rng.integers(0, 4, (3, 200))
    ours = _w1_replicas(u, v, wu, wv)
    for r in range(3):
        assert ours[r] == pytest.approx(wasserstein_distance(u, v, wu[r], wv[r]), rel=1e-10)
    ones = _w1_replicas(u, v, np.ones((1, 300)), np.ones((1, 200)))
    assert ones[0] == pytest.approx(wasserstein_distance(u, v), rel=1e-10)


def test_counts_version_equals_values_version() -> None:
    rng = np.random.default_rng(4)
    edges = np.logspace(-2, 1, 20)
    ref_vox, cand_vox = rng.exponential(1.0, (50, 30)), rng.exponential(1.3, (40, 30))
    rc = np.stack([np.histogram(r, edges)[0] for r in ref_vox])
    cc = np.stack([np.histogram(c, edges)[0] for c in cand_vox])
    a = separation_power_counts(rc, cc, n_bootstrap=0)
    b = separation_power(ref_vox.ravel(), cand_vox.ravel(), edges, n_bootstrap=0)
    assert a.value == pytest.approx(b.value)
    assert separation_power_counts(rc, cc, n_bootstrap=10, seed=1).error > 0


def test_seeded_bootstrap() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=1000), rng.normal(0.1, 1, 1000)
    edges = np.linspace(-3, 3, 31)
    e1 = separation_power(a, b, edges, seed=11).error
    assert separation_power(a, b, edges, seed=11).error == e1
    assert separation_power(a, b, edges, seed=12).error != e1
    rs = Resampler(1000, 1000, 5, seed=1)
    assert rs.ref.shape == (5, 1000) and (rs.ref.sum(axis=1) == 1000).all()


def test_measurement_form() -> None:
    assert Measurement(0.5, 0.1).to_dict() == {"value": 0.5, "error": 0.1}
    assert Measurement(float("nan"), None).to_dict() == {"value": None, "error": None}
    assert f"{Measurement(0.5, 0.01):.2f}" == "0.50 ± 0.01"
    assert f"{Measurement(None)}" == "n/a"
    assert math.isclose(Measurement(1.0).value, 1.0)


def test_judge_against_floor_by_combined_errors() -> None:
    from showerforge.evaluation.metrics import judge_against_floor

    floor = {"value": 1.0, "error": 0.3}
    assert judge_against_floor({"value": 1.5, "error": 0.4}, floor)[1] == "ok"  # 1 sigma
    assert judge_against_floor({"value": 3.0, "error": 0.4}, floor)[1] == "warn"  # 4 sigma
    assert judge_against_floor({"value": 4.0, "error": 0.4}, floor)[1] == "bad"  # 6 sigma
    assert judge_against_floor(None, floor) == ("n/a", "")
