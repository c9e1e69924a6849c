"""Classifier two-sample test (quick setting) against known answers.

Null case: for two samples from one distribution, the validation AUC has the Mann-Whitney null
spread sqrt((n1 + n2 + 1) / (12 n1 n2)); with 2,000 validation showers per class that is 0.009,
so |AUC - 0.5| < 0.03 holds at more than 3 sigma. Shifted 1-D normals (shift d, unit width) have
the optimal AUC Phi(d / sqrt 2).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from showerforge.evaluation.showers.classifier import (
    ClassifierConfig,
    classifier_test,
    hanley_mcneil_error,
    high_level_inputs,
    low_level_inputs,
)
from showerforge.evaluation.showers.features import compute_features
from showerforge.geometry import PRESETS

N = 10_000  # per class -> 2,000 per class in the validation split


def test_same_distribution_gives_auc_one_half() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(N, 8)), rng.normal(size=(N, 8))
    res = classifier_test(a, b, quick=True, seed=1)
    assert abs(res.auc.value - 0.5) < 0.03
    assert abs(res.jsd.value) < 0.03
    assert res.auc.error == pytest.approx(math.sqrt((4001) / (12 * 2000 * 2000)), rel=0.05)
    assert res.n_per_class == N


def test_shifted_normals_reach_optimal_auc() -> None:
    rng = np.random.default_rng(1)
    shift = 1.0
    ref, cand = rng.normal(0, 1, (N, 1)), rng.normal(shift, 1, (N, 1))
    res = classifier_test(ref, cand, quick=True, seed=2)
    # the reference is label 1 and sits to the left: a trained classifier still gets AUC > 0.5
    assert res.auc.value == pytest.approx(norm.cdf(shift / math.sqrt(2)), abs=0.03)
    assert res.jsd.value > 0.05


def test_disjoint_samples_are_separated_and_seeded() -> None:
    rng = np.random.default_rng(2)
    ref, cand = rng.normal(0, 1, (1500, 4)), rng.normal(6, 1, (1000, 4))
    cfg = ClassifierConfig(hidden=32, n_layers=2, lr=1e-2, epochs=5, repeats=2, batch_size=200)
    res = classifier_test(ref, cand, config=cfg, seed=3)
    assert res.n_per_class == 1000
    assert res.auc.value > 0.99 and res.jsd.value > 0.9
    assert len(res.runs) == 2 and res.auc.error is not None
    again = classifier_test(ref, cand, config=cfg, seed=3)
    assert again.auc.value == res.auc.value and again.jsd.value == res.jsd.value


def test_bad_inputs_rejected() -> None:
    with pytest.raises(ValueError, match="at least 10"):
        classifier_test(np.zeros((5, 2)), np.zeros((5, 2)), quick=True)
    with pytest.raises(ValueError, match="same d"):
        classifier_test(np.zeros((50, 2)), np.zeros((50, 3)), quick=True)


def test_hanley_mcneil_at_one_half_is_mann_whitney_null() -> None:
    assert hanley_mcneil_error(0.5, 300, 200) == pytest.approx(math.sqrt(501 / (12 * 300 * 200)))
    assert hanley_mcneil_error(1.0, 300, 200) == pytest.approx(0.0, abs=1e-12)


def test_input_layouts() -> None:
    geo = PRESETS["mini"]
    rng = np.random.default_rng(3)
    inc = np.array([1000.0, 100.0])
    sh = rng.exponential(1.0, (2, geo.n_voxels))
    low = low_level_inputs(inc, sh, threshold_mev=0.5)
    assert low.shape == (2, geo.n_voxels + 1) and low.dtype == np.float32
    assert low[0, 0] == pytest.approx(3.0) and low[1, 0] == pytest.approx(2.0)
    np.testing.assert_allclose(low[1, 1:], np.where(sh[1] < 0.5, 0, sh[1]) / 100.0, rtol=1e-6)
    f = compute_features(inc, sh, geo)
    high = high_level_inputs(f, geo)
    # log10 E_inc, 12 layer energies, 4 x 12 x/y, log10 E_tot, 12 sparsities, 2 x 12 r
    assert high.shape == (2, 1 + 12 + 48 + 1 + 12 + 24)
    assert high[0, 1] == pytest.approx(math.log10(f["layer_energy"][0, 0] + 1e-8), rel=1e-6)
    assert high[0, 13] == pytest.approx(f["center_x"][0, 0] / 100, rel=1e-5)


def test_verdict_weights_recover_the_known_density_ratio() -> None:
    """Reference N(0, 1), candidate N(0.5, 1): log w(x) = log(p_ref / p_cand) = 0.125 - 0.5 x."""
    rng = np.random.default_rng(7)
    ref = np.concatenate([rng.normal(size=(6000, 1)), rng.normal(size=(6000, 2))], axis=1)
    cand = np.concatenate([rng.normal(0.5, 1.0, size=(6000, 1)), rng.normal(size=(6000, 2))], axis=1)
    res = classifier_test(ref, cand, config=ClassifierConfig.verdict(), seed=3)
    assert res.auc.value == pytest.approx(norm.cdf(0.5 / math.sqrt(2)), abs=4 * res.auc.error + 0.01)
    rows, labels, logit = res.scores
    x = np.concatenate([ref, cand])[rows, 0]
    core = np.abs(x) < 2  # where both samples have data
    slope, intercept = np.polyfit(x[core], logit[core], 1)
    assert slope == pytest.approx(-0.5, abs=0.1) and intercept == pytest.approx(0.125, abs=0.1)
    assert set(np.unique(labels)) == {0.0, 1.0} and len(rows) == 2 * 1200


def test_verdict_sees_a_small_scale_error_at_1500_showers() -> None:
    """A 15 % scale error of one of 20 columns, 1,500 vs 1,500 (optimal AUC 0.63): the verdict test sees it."""
    rng = np.random.default_rng(8)
    ref = rng.lognormal(3.0, 0.3, size=(1500, 20))
    cand = rng.lognormal(3.0, 0.3, size=(1500, 20))
    cand[:, 4] *= 1.15
    res = classifier_test(ref, cand, config=ClassifierConfig.verdict(), seed=1)
    assert res.auc.value > 0.5 + 3 * res.auc.error
    null = classifier_test(ref, rng.lognormal(3.0, 0.3, size=(1500, 20)), config=ClassifierConfig.verdict(), seed=1)
    assert abs(null.auc.value - 0.5) < 4 * null.auc.error + 0.01
