"""High-level features: exact values on hand-built showers, streaming = all at once."""

from __future__ import annotations

import math

import numpy as np
import pytest

from showerforge.data.calo import CaloFile, write_showers
from showerforge.evaluation.showers.features import (
    PER_LAYER_FEATURES,
    challenge_dataset,
    compute_features,
    concat_features,
    default_threshold_mev,
    defined_layers,
    stream_features,
    voxel_histograms,
)
from showerforge.geometry import PRESETS, Geometry

MINI = PRESETS["mini"]  # 12 layers x 8 angles x 6 radial bins of 8 mm


def _voxel(layer: int, alpha: int, rbin: int, geo: Geometry = MINI) -> int:
    _, n_a, n_r = geo.shape
    return (layer * n_a + alpha) * n_r + rbin


def _random_showers(n: int, seed: int, geo: Geometry = MINI) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    inc = 10 ** rng.uniform(3, 5, n)
    x = rng.exponential(1.0, (n, geo.n_voxels)) * inc[:, None] / geo.n_voxels
    x[rng.random(x.shape) < 0.4] = 0.0
    return inc.astype(np.float32), x.astype(np.float32)


def test_single_voxel_exact() -> None:
    layer, alpha, rbin, energy, inc = 4, 3, 2, 250.0, 1000.0
    sh = np.zeros((1, MINI.n_voxels))
    sh[0, _voxel(layer, alpha, rbin)] = energy
    f = compute_features(np.array([inc]), sh, MINI)
    r = 0.5 * (8.0 * rbin + 8.0 * (rbin + 1))  # radial bin centre, mm
    a = -math.pi + (alpha + 0.5) * 2 * math.pi / 8  # angular bin centre, rad
    assert f["etot"][0] == energy
    assert f["etot_over_einc"][0] == pytest.approx(0.25)
    expected_energy = np.zeros(12)
    expected_energy[layer] = energy
    np.testing.assert_allclose(f["layer_energy"][0], expected_energy)
    assert f["center_x"][0, layer] == pytest.approx(r * math.cos(a), abs=1e-5)
    assert f["center_y"][0, layer] == pytest.approx(r * math.sin(a), abs=1e-5)
    assert f["center_r"][0, layer] == pytest.approx(r)
    for name in ("width_x", "width_y", "width_r"):
        assert f[name][0, layer] == pytest.approx(0.0, abs=1e-3)
    sparsity = np.ones(12)
    sparsity[layer] = 1 - 1 / 48
    np.testing.assert_allclose(f["sparsity"][0], sparsity, rtol=1e-6)
    # empty layers: centre 0 and width 0 (the challenge's 1e-16 regulator)
    others = [i for i in range(12) if i != layer]
    for name in ("center_x", "center_y", "width_x", "width_y", "center_r", "width_r"):
        np.testing.assert_array_equal(f[name][0, others], 0.0)


def test_two_voxels_give_exact_width() -> None:
    # equal energies at radial bins 0 and 3 of angle 0 (alpha = -7 pi / 8)
    sh = np.zeros((1, MINI.n_voxels))
    sh[0, _voxel(0, 0, 0)] = 10.0
    sh[0, _voxel(0, 0, 3)] = 10.0
    f = compute_features(np.array([100.0]), sh, MINI)
    r1, r2 = 4.0, 28.0
    a = -7 * math.pi / 8
    assert f["center_r"][0, 0] == pytest.approx(16.0)
    assert f["width_r"][0, 0] == pytest.approx(12.0)
    assert f["width_x"][0, 0] == pytest.approx(abs(math.cos(a)) * (r2 - r1) / 2, rel=1e-5)
    assert f["width_y"][0, 0] == pytest.approx(abs(math.sin(a)) * (r2 - r1) / 2, rel=1e-5)
    assert f["sparsity"][0, 0] == pytest.approx(1 - 2 / 48)


def test_threshold_zeroes_small_and_negative_voxels() -> None:
    sh = np.zeros((1, MINI.n_voxels))
    sh[0, 0], sh[0, 1], sh[0, 2] = 0.5, 2.0, -3.0
    f = compute_features(np.array([10.0]), sh, MINI, threshold_mev=1.0)
    assert f["etot"][0] == 2.0
    assert f["sparsity"][0, 0] == pytest.approx(1 - 1 / 48)
    assert f["max_voxel"][0] == 2.0


def test_streaming_equals_all_at_once(tmp_path) -> None:
    inc, sh = _random_showers(101, seed=3)
    path = write_showers(tmp_path / "s.h5", inc, sh, MINI)
    whole = compute_features(inc, sh, MINI, threshold_mev=0.1)
    seen = []
    streamed = stream_features(path, chunk=7, threshold_mev=0.1, on_chunk=lambda lo, i, s: seen.append(lo))
    assert seen == list(range(0, 101, 7))
    assert set(streamed) == set(whole)
    for key in whole:
        np.testing.assert_array_equal(streamed[key], whole[key], err_msg=key)
    part = stream_features(path, chunk=10, threshold_mev=0.1, max_showers=25)
    assert len(part["etot"]) == 25
    with CaloFile.open(path) as f:
        again = stream_features(f, chunk=1000, threshold_mev=0.1)
    np.testing.assert_array_equal(again["width_r"], whole["width_r"])


def test_concat_and_shapes() -> None:
    inc, sh = _random_showers(10, seed=1)
    a = compute_features(inc[:4], sh[:4], MINI)
    b = compute_features(inc[4:], sh[4:], MINI)
    both = concat_features([a, b])
    assert both["layer_energy"].shape == (10, 12)
    assert both["etot"].shape == (10,)
    for name in PER_LAYER_FEATURES:
        assert both[name].dtype == np.float32


def test_irregular_dataset1_geometry() -> None:
    from pathlib import Path

    import showerforge.data

    xml = Path(showerforge.data.__file__).parent / "binning" / "binning_dataset_1_photons.xml"
    geo = Geometry.from_calochallenge_xml(xml)
    assert challenge_dataset(geo) == "1-photons"
    assert default_threshold_mev(geo) == 1.0
    assert not geo.is_regular
    rng = np.random.default_rng(0)
    sh = rng.exponential(10.0, (5, geo.n_voxels))
    inc = np.full(5, 1e4)
    f = compute_features(inc, sh, geo)
    for layer, ro in enumerate(geo.readout):
        if ro.n_voxels == 0:
            assert np.isnan(f["layer_energy"][:, layer]).all()
            continue
        np.testing.assert_allclose(f["layer_energy"][:, layer], sh[:, geo.layer_slice(layer)].sum(axis=1), rtol=1e-6)
        has_xy = not np.isnan(f["center_x"][:, layer]).any()
        assert has_xy == (ro.n_alpha > 1)
    assert set(defined_layers(geo, "center_x")) < set(defined_layers(geo, "center_r"))
    np.testing.assert_allclose(np.nansum(f["layer_energy"], axis=1), f["etot"], rtol=1e-5)


def test_challenge_datasets_and_thresholds() -> None:
    assert challenge_dataset(PRESETS["ds2"]) == "2"
    assert challenge_dataset(PRESETS["ds3"]) == "3"
    assert challenge_dataset(MINI) is None
    assert default_threshold_mev(PRESETS["ds2"]) == pytest.approx(0.5e-3 / 0.033)
    assert default_threshold_mev(MINI.with_sampling_fraction(0.02)) == pytest.approx(0.025)
    assert default_threshold_mev(MINI) == 0.0
    with pytest.raises(KeyError):
        defined_layers(MINI, "etot")


def test_voxel_histograms_match_numpy() -> None:
    _, sh = _random_showers(20, seed=5)
    edges = np.logspace(-2, 1, 50)
    counts = voxel_histograms(sh, edges, threshold_mev=0.05)
    kept = np.where(sh < 0.05, 0.0, sh)
    expected, _ = np.histogram(kept.ravel(), bins=edges)
    np.testing.assert_array_equal(counts.sum(axis=0), expected)
    np.testing.assert_array_equal(counts[3], np.histogram(kept[3], bins=edges)[0])
