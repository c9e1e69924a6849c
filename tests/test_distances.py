"""FPD, KPD, PRDC and chi2/ndf against closed-form answers and known distortions."""

from __future__ import annotations

import numpy as np
import pytest

from showerforge.evaluation.distances import fpd, frechet_distance, kpd, prdc
from showerforge.evaluation.metrics import chi2_ndf, chi2_ndf_from_hist


def test_frechet_distance_closed_form() -> None:
    """N(0, I) vs N(mu, diag(s^2)): |mu|^2 + sum (1 + s^2 - 2 s)."""
    mu, s = np.array([0.5, -1.0, 0.0]), np.array([1.0, 2.0, 0.5])
    expected = mu @ mu + np.sum(1 + s**2 - 2 * s)
    assert frechet_distance(np.zeros(3), np.eye(3), mu, np.diag(s**2)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("extrapolation", ["jetnet", "lsq"])
def test_fpd_recovers_shifted_gaussians(extrapolation: str) -> None:
    rng = np.random.default_rng(1)
    mu, s = np.array([0.3, -0.2, 0.0]), np.array([1.0, 1.5, 0.8])
    x = rng.normal(size=(40_000, 3))
    y = mu + s * rng.normal(size=(40_000, 3))
    expected = mu @ mu + np.sum(1 + s**2 - 2 * s)
    res = fpd(
        x, y, 3, 2000, 10_000, num_batches=10, num_points=5, normalise_features=False, extrapolation=extrapolation
    )
    assert res.value == pytest.approx(expected, abs=max(4 * res.error, 0.03 * expected))


def test_fpd_identical_and_extrapolations() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20_000, 4))
    bounded = fpd(x, x.copy(), 5, 2000, 10_000, num_batches=5, num_points=5)
    exact = fpd(x, x.copy(), 5, 2000, 10_000, num_batches=5, num_points=5, extrapolation="lsq")
    assert bounded.value >= 0.0 and bounded.value < 1e-3  # bounded fit: never negative
    assert abs(exact.value) < max(4 * exact.error, 1e-4)  # exact line: zero within its error
    with pytest.raises(ValueError, match="extrapolation"):
        fpd(x, x, 0, 100, 200, extrapolation="quadratic")


def test_kpd_null_and_shift() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(6000, 5)), rng.normal(size=(6000, 5))
    null = kpd(x, y, 0, num_batches=10, batch_size=2000)
    assert abs(null.value) < 3 * null.error + 1e-4
    shifted = kpd(x, y + 0.2, 0, num_batches=10, batch_size=2000)
    assert shifted.value > 10 * (abs(null.value) + null.error)


def test_prdc_known_answers() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(600, 8))
    same = prdc(x, x.copy(), k=5)
    assert same["precision"].value == same["recall"].value == same["coverage"].value == 1.0
    assert same["density"].value == pytest.approx(1.0, abs=0.25)
    far = prdc(x, x + 100.0, k=5)
    assert far["precision"].value == far["recall"].value == far["coverage"].value == far["density"].value == 0.0
    # mode dropping: the reference has two separated clusters, the candidate only one
    real = np.concatenate([rng.normal(size=(600, 8)), 20 + rng.normal(size=(600, 8))])
    fake = rng.normal(size=(1200, 8))
    drop = prdc(real, fake, k=5)
    assert drop["precision"].value > 0.9 and drop["coverage"].value == pytest.approx(0.5, abs=0.05)
    assert drop["recall"].value == pytest.approx(0.5, abs=0.05)
    with pytest.raises(ValueError, match="k"):
        prdc(x[:4], x[:4], k=5)


def test_chi2_ndf_closed_form_and_null() -> None:
    # N = M = 30: chi2 = (1/900) * 2 * (300^2 / 30) = 6.667 with ndf 1
    assert chi2_ndf_from_hist([10, 20], [20, 10]) == pytest.approx(20 / 3)
    assert chi2_ndf_from_hist([10, 20, 0], [10, 20, 0]) == 0.0
    rng = np.random.default_rng(5)
    edges = np.linspace(-3, 3, 31)
    toys = [chi2_ndf(rng.normal(size=4000), rng.normal(size=2500), edges, n_bootstrap=0).value for _ in range(150)]
    assert np.mean(toys) == pytest.approx(1.0, abs=0.1)  # chi2/ndf ~ 1 ± sqrt(2/29) per toy
    assert np.std(toys) == pytest.approx(np.sqrt(2 / 29), rel=0.25)
    shifted = chi2_ndf(rng.normal(size=4000), rng.normal(0.3, size=2500), edges, n_bootstrap=10, seed=1)
    assert shifted.value > 4  # a 0.3 sigma shift at these sizes: chi2/ndf ~ 5 and shifted.error is not None
