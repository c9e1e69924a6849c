"""The cell-energy calibration of ``cfm-points``: known answers of its parts.

The fit of the map between two sets of quantiles of ``log10 E_cell`` (a constant offset, a change of
scale clipped at a factor of 4) and its refinement; the quantiles themselves per incident-energy
bin; and :func:`calibrate` with a map on known cells: all points of a cell are scaled alike, the
ratio of two cells' energies in a layer changes by the ratio of their factors, and the drawn energy
per layer and centre of gravity stay exact. End to end on a trained model:
``tests/test_points_occupancy.py``; the ONNX graph: ``tests/test_points_onnx.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from showerforge.data.points import PointClouds, cell_keys, threshold_per_layer
from showerforge.data.points_preprocess import (
    CELL_GRID_LOG10,
    CELL_MAX_LOG10_SHIFT,
    Summaries,
    calibrate,
    cell_energy_factors,
    cell_levels,
    cell_log_energies,
    cell_quantiles,
    fit_cell_energy,
    refine_cell_energy,
    shower_summaries,
)
from showerforge.geometry import PRESETS

GRID = np.linspace(CELL_GRID_LOG10[0], CELL_GRID_LOG10[1], int(CELL_GRID_LOG10[2]))
LEVELS = np.linspace(-2.0, 1.0, 64)  # quantiles of a target: log10 E from 0.01 to 10 MeV


def test_fit_of_an_offset_and_of_a_scale():
    """Generated quantiles 0.1 below the target's: a shift of +0.1 everywhere (constant beyond the
    quantiles); generated ``g = t / 2`` (a spectrum squeezed in log E): shift ``t - g = g`` at each
    generated quantile, clipped at log10 4."""
    target = {"energy_edges_mev": [5e4], "log10_mev": [LEVELS, LEVELS]}
    fit = fit_cell_energy(target, np.stack([LEVELS - 0.1, LEVELS / 2]))
    shift = np.asarray(fit["shift"])
    assert shift.shape == (2, len(GRID)) and fit["energy_edges_mev"] == [5e4]
    np.testing.assert_allclose(shift[0], 0.1, atol=1e-12)
    inside = (GRID >= -1.0) & (GRID <= 0.5)
    np.testing.assert_allclose(
        shift[1][inside], np.clip(GRID[inside], -CELL_MAX_LOG10_SHIFT, CELL_MAX_LOG10_SHIFT), atol=1e-12
    )
    assert np.abs(shift).max() <= CELL_MAX_LOG10_SHIFT + 1e-12
    # a bin without cells on either side gets no shift
    empty = fit_cell_energy(target, np.stack([LEVELS - 0.1, np.full(64, np.nan)]))
    assert np.all(np.asarray(empty["shift"])[1] == 0)
    # factors at known energies: 10 ** 0.1 in bin 0 (below 50 GeV), 10 ** g in bin 1
    assert cell_energy_factors(np.array([-1.5, 0.0]), fit, 1e4) == pytest.approx([10**0.1, 10**0.1])
    assert cell_energy_factors(np.array([-0.25]), fit, 6e4) == pytest.approx([10**-0.25])


def test_refine_composes_the_remaining_correction():
    """Calibrated showers on the target: the map stays; calibrated showers 0.05 above the target:
    every shift (away from the clip) goes down by 0.05."""
    target = {"energy_edges_mev": [], "log10_mev": [LEVELS]}
    fit = fit_cell_energy(target, LEVELS[None] - 0.1)
    same = refine_cell_energy(fit, target, LEVELS[None])
    np.testing.assert_allclose(same["shift"], fit["shift"], atol=1e-12)
    down = refine_cell_energy(fit, target, LEVELS[None] + 0.05)
    np.testing.assert_allclose(np.asarray(down["shift"]), 0.05, atol=1e-12)


def test_cell_quantiles_per_energy_bin():
    """pbwo4 (22 mm crystals): two showers; below the 20 GeV edge one cell of 1 + 3 MeV (two points
    in the central crystal) and one of 10 MeV; above it one cell of 0.1 MeV; a point beyond the face
    belongs to no cell."""
    geo = PRESETS["pbwo4"]
    pts = np.array([[1, 1, 0, 1], [-5, 3, 0, 3], [30, 0, 0, 10], [0, 0, 1, 0.1], [80, 0, 1, 5]], np.float32)
    c = PointClouds(pts, np.array([0, 3, 5]), np.array([1e4, 5e4]), geo)
    keys = cell_keys(pts, geo)
    assert keys[0] == keys[1] == 12 and keys[2] == 13 and keys[3] == 25 + 12 and keys[4] == -1
    log_e, ev = cell_log_energies(c)
    np.testing.assert_allclose(np.sort(log_e), np.log10([0.1, 4.0, 10.0]), rtol=1e-6)
    q = cell_quantiles(c, [2e4], n_levels=4)
    np.testing.assert_allclose(q[1], -1.0, rtol=1e-6)
    lo = np.log10(4.0)  # two cells: each quantile interpolates between them at its level
    np.testing.assert_allclose(q[0], lo + cell_levels(4) * (1.0 - lo), rtol=1e-6)
    # a threshold drops the cells below it: ild-ecal, 0.5 MIP of silicon (between 0.01 and 1 MeV)
    ild = PRESETS["ild-ecal"]
    thr = threshold_per_layer(ild, 0.5)[0]
    assert 0.01 < thr < 1.0
    two = PointClouds(np.array([[0, 0, 0, 1.0], [20, 0, 0, 0.01]], np.float32), np.array([0, 2]), np.array([1e4]), ild)
    assert len(cell_log_energies(two)[0]) == 2
    np.testing.assert_allclose(cell_log_energies(two, threshold_mip=0.5)[0], [0.0], atol=1e-6)


def test_levels_are_dense_among_the_highest_cells():
    levels = cell_levels(512)
    assert len(levels) == 512 and np.all(np.diff(levels) > 0) and 0 < levels[0] and levels[-1] < 1
    assert (levels > 0.99).sum() == 128 and 1 - levels[-1] == pytest.approx(10**-5.5)


def test_calibrate_maps_each_cell_and_keeps_layer_energies_and_centre():
    """A map of x2 for cells of 1 MeV and more, x1 at 0.1 MeV and less (linear in log E between): in
    layer 0 the central cell (two points of 1 MeV) against its 0.05 MeV neighbour goes from 40 to
    80, in layer 1 a 1 MeV cell against a 0.01 MeV one from 100 to 200; both points of the central
    cell keep equal energies; layer energies and the centre of gravity are the drawn ones."""
    geo = PRESETS["pbwo4"]
    pts = np.array([[2, 2, 0.1, 1], [-2, -2, 0.2, 1], [25, 0, 0.3, 0.05], [0, 5, 1.1, 1], [0, -27, 1.2, 0.01]])
    counts = np.zeros((1, geo.n_layers), np.int64)
    counts[0, :2] = [3, 2]
    energies = np.zeros((1, geo.n_layers))
    energies[0, :2] = [2.05, 1.01]
    w = pts[:, 3]
    cog = np.array([[np.dot(w, pts[:, 0]) / w.sum(), np.dot(w, pts[:, 1]) / w.sum()]])
    s = Summaries(counts, energies, cog)
    shift = np.interp(GRID, [-1.0, 0.0], [0.0, np.log10(2.0)])
    cells = {"energy_edges_mev": [], "grid_log10": list(CELL_GRID_LOG10), "shift": [shift.tolist()]}
    inc = np.array([2e4])
    plain = calibrate([pts], s, inc, geo)
    mapped = calibrate([pts], s, inc, geo, cells=cells)
    for out, factor in ((plain, 1.0), (mapped, 2.0)):
        p = out.points.astype(np.float64)
        assert (p[0, 3] + p[1, 3]) / p[2, 3] == pytest.approx(40 * factor, rel=1e-5)
        assert p[3, 3] / p[4, 3] == pytest.approx(100 * factor, rel=1e-5)
        assert p[0, 3] == pytest.approx(p[1, 3], rel=1e-6)
        got = shower_summaries(out, geo.n_layers)
        np.testing.assert_allclose(got.energies, energies, rtol=1e-6)
        np.testing.assert_allclose(got.cog, cog, atol=1e-5)
    assert np.array_equal(cell_keys(mapped.points, geo), cell_keys(plain.points, geo))  # no point changed cell
