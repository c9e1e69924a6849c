"""The radial energy calibration of ``cfm-points``: known answers of its parts.

The profile of points at known radii; the dequantisation of points on fine squares (a point at the
centre of a 2 mm square lands within 0.5 mm of it with probability pi / 16); the fit and its
refinement (ratios, clipping, empty bins); and :func:`calibrate` with weights: the drawn energy per
layer and centre of gravity stay exact, positions stay, and the energies inside a layer change by
the ratio of their weights. End to end on a trained model: ``tests/test_points_occupancy.py``; the
ONNX graph: ``tests/test_points_onnx.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from showerforge.data.points import PointClouds
from showerforge.data.points_preprocess import (
    RADIAL_MAX_LOG_WEIGHT,
    Summaries,
    calibrate,
    energy_bin,
    energy_edges,
    fit_radial,
    radial_profile,
    radial_weights,
    refine_radial,
    shower_summaries,
)

EDGES = (0.0, 0.5, 2.0, 10.0)


def clouds(rows: list[list[float]], sizes: list[int]) -> PointClouds:
    return PointClouds(np.asarray(rows, np.float32), np.concatenate([[0], np.cumsum(sizes)]), np.full(len(sizes), 1e4))


def test_radial_profile_of_points_at_known_radii():
    """Two showers; layer 0: 1 MeV at r = 0, 3 MeV at r = 1 (x = 0.6, y = 0.8), 4 MeV at r = 5 and
    2 MeV at r = 50 (the open last bin); layer 1: 5 MeV on the edge r = 2 (goes up); layer 2 empty."""
    c = clouds(
        [[0, 0, 0, 1], [0.6, 0.8, 0, 3], [3, 4, 0, 4], [2, 0, 1, 5], [0, -50, 0, 2]],
        [3, 2],
    )
    share = radial_profile(c, 3, edges_mm=EDGES)[0]
    np.testing.assert_allclose(share[0], [0.1, 0.3, 0.4, 0.2], rtol=1e-6)
    np.testing.assert_allclose(share[1], [0, 0, 1, 0])
    assert (share[2] == 0).all()
    # incident-energy bins: the second shower (50 GeV) alone above a 20 GeV edge
    c = PointClouds(c.points, c.offsets, np.array([1e4, 5e4]))
    split = radial_profile(c, 3, edges_mm=EDGES, energy_edges_mev=[2e4])
    assert split.shape == (2, 3, 4)
    np.testing.assert_allclose(split[0, 0], [1 / 8, 3 / 8, 4 / 8, 0], rtol=1e-6)
    np.testing.assert_allclose(split[1, 0], [0, 0, 0, 1])
    np.testing.assert_allclose(split[1, 1], [0, 0, 1, 0])
    assert (split[0, 1] == 0).all()


def test_dequantised_profile_spreads_points_over_their_squares():
    """40,000 points of equal energy at the centre of 2 mm squares: within r < 0.5 mm a fraction
    pi 0.5^2 / 2^2 = 0.196 (binomial sd 0.002; bound 0.01); without jitter all of it."""
    n = 40_000
    c = clouds([[0.0, 0.0, 0.0, 1.0]] * n, [n])
    plain = radial_profile(c, 1, edges_mm=EDGES)[0]
    assert plain[0, 0] == pytest.approx(1.0)
    spread = radial_profile(c, 1, edges_mm=EDGES, jitter_mm=np.array([2.0]), seed=3)[0]
    assert spread[0, 0] == pytest.approx(np.pi / 16, abs=0.01)
    assert spread[0, 1] == pytest.approx(1 - np.pi / 16, abs=0.01) and spread[0, 2:].sum() == 0


def test_fit_and_refine_radial():
    target = {"edges_mm": list(EDGES), "share": [[[0.5, 0.3, 0.2, 0.0], [0.0, 0.0, 1.0, 0.0]]]}
    generated = np.array([[[0.25, 0.3, 0.4, 0.05], [0.0, 0.9, 0.1, 0.0]]])
    fit = fit_radial(target, generated)
    w = np.exp(np.asarray(fit["log_weight"]))[0]
    np.testing.assert_allclose(w[0], [2.0, 1.0, 0.5, 0.25])  # last: energy where the target has none
    np.testing.assert_allclose(w[1], [1.0, 0.25, 4.0, 1.0])  # clipped at 1/4 and 4; empty bins alone
    assert fit["edges_mm"] == list(EDGES)
    same = refine_radial(fit, target, np.asarray(target["share"]))
    np.testing.assert_allclose(same["log_weight"][0][0][:3], fit["log_weight"][0][0][:3], atol=1e-12)
    over = refine_radial(fit, target, np.array([[[0.4, 0.3, 0.3, 0.0], [0.0, 0.0, 1.0, 0.0]]]))
    np.testing.assert_allclose(np.exp(over["log_weight"][0][0][:3]), [2.0 * 1.25, 1.0, 0.5 * 2 / 3])
    assert np.max(over["log_weight"]) <= RADIAL_MAX_LOG_WEIGHT + 1e-12


def test_calibrate_with_weights_keeps_layer_energies_and_centre():
    """Weights 3 (below 20 GeV) or 1/2 (above) on the core bin (r < 0.5) and 1 elsewhere: per layer the energy is the drawn one,
    the centre of gravity the drawn one, the core point's share of its layer grows by the known
    factor, and the points' x, y move only by the centre-of-gravity shift."""
    rng = np.random.default_rng(0)
    n_layers, n = 3, 40
    counts = rng.integers(2, 9, (n, n_layers))
    pts, summaries_e, cog = [], rng.uniform(10, 100, (n, n_layers)), rng.normal(0, 0.3, (n, 2))
    for row in counts:
        k = row.sum()
        xy = rng.normal(0, 4, (k, 2))
        xy[0] = 0.0  # the first point of each shower on the axis (depth sort puts it in layer 0)
        depth = np.sort(rng.uniform(0, n_layers, k))
        depth[0] = 0.0
        pts.append(np.column_stack([xy, depth, rng.exponential(1.0, k)]))
    s = Summaries(counts, summaries_e, cog)
    inc = np.where(np.arange(n) % 2 == 0, 1e4, 5e4)  # odd showers in the second energy bin
    log_w = np.zeros((2, n_layers, len(EDGES)))
    log_w[0, :, 0] = np.log(3.0)
    log_w[1, :, 0] = np.log(0.5)
    radial = {"edges_mm": list(EDGES), "energy_edges_mev": [2e4], "log_weight": log_w.tolist()}
    plain = calibrate(pts, s, inc, None)
    weighted = calibrate(pts, s, inc, None, radial)
    got = shower_summaries(weighted, n_layers)
    np.testing.assert_allclose(got.energies, summaries_e, rtol=1e-5)
    np.testing.assert_allclose(got.cog, cog, atol=1e-4)
    assert np.array_equal(got.counts, counts)
    for i in range(n):
        a = pts[i][np.argsort(pts[i][:, 2], kind="stable")][: counts[i, 0]]  # layer 0, before calibration
        b = weighted.points[weighted.offsets[i] : weighted.offsets[i + 1]]
        b0 = b[b[:, 2] == 0]
        w = radial_weights(a, np.zeros(len(a)), radial, inc[i])  # from the positions before the shift
        assert w[0] == pytest.approx(3.0 if i % 2 == 0 else 0.5)
        assert b0[0, 3] / b0[:, 3].sum() == pytest.approx(w[0] * a[0, 3] / np.dot(w, a[:, 3]), rel=1e-5)
        c = plain.points[plain.offsets[i] : plain.offsets[i + 1]]
        shift = b[:, :2] - c[:, :2]
        np.testing.assert_allclose(shift - shift[:1], 0.0, atol=1e-3)  # positions: one rigid shift apart


def test_energy_edges_sit_between_training_energies():
    """Quartile edges of 1..8 GeV (two showers each): halfway between neighbours, never on a training
    energy; all energies equal: no edges; a request at a training energy gets the same bin in
    float32 and float64."""
    e = np.repeat(np.arange(1, 9) * 1e3, 2)
    edges = energy_edges(e, 4)
    np.testing.assert_allclose(edges, [2.5e3, 4.5e3, 6.5e3])
    assert energy_edges(np.full(10, 12345.6), 4).size == 0
    assert energy_edges(np.array([1e3, 1e3, 1e3, 2e3]), 4).tolist() == [1.5e3]  # repeated edges merged
    odd = np.array([12345.6, 12345.6, 23456.7, 23456.7])
    cut = energy_edges(odd, 2)
    assert energy_bin(odd, cut).tolist() == energy_bin(odd.astype(np.float32), cut).tolist() == [0, 0, 1, 1]


def test_radial_profile_of_no_points_is_zero():
    empty = PointClouds(np.zeros((0, 4), np.float32), np.zeros(3, np.int64), np.array([1e4, 2e4]))
    share = radial_profile(empty, 2, edges_mm=EDGES, energy_edges_mev=[1.5e4])
    assert share.shape == (2, 2, 4) and (share == 0).all()
