"""Invertible preprocessing: exact round trip, state round trip, streaming fit, physical inverse."""

from __future__ import annotations

import json

import numpy as np
import pytest

from showerforge.data.preprocess import ShowerPreprocessor, Standardize, hash_uniform, preprocessor_from_state
from showerforge.geometry import PRESETS

LAYERS = [6, 0, 4, 4, 9]  # irregular, with an empty layer as in CaloChallenge dataset 1


def _showers(n, layer_sizes=LAYERS, seed=0):
    """Sparse random showers (MeV); some layers entirely empty in some showers."""
    rng = np.random.default_rng(seed)
    inc = np.exp(rng.uniform(np.log(1e3), np.log(1e4), n))
    nv = sum(layer_sizes)
    sh = rng.exponential(1.0, (n, nv)) * (rng.random((n, nv)) < 0.4)
    sh[: n // 5, :6] = 0.0  # first layer empty in 20% of showers
    sh *= (0.9 * inc / np.maximum(sh.sum(1), 1e-9))[:, None]
    return inc.astype(np.float32), sh.astype(np.float32)


def test_sizes():
    pre = ShowerPreprocessor(LAYERS)
    assert pre.n_voxels == 23 and pre.n_features == 27 and pre.token_sizes == [7, 5, 5, 10]
    geo = PRESETS["mini"]
    assert ShowerPreprocessor.from_geometry(geo).n_features == geo.n_voxels + geo.n_layers


def test_round_trip_exact():
    """Training showers come back exactly, except voxels below the threshold, which become 0."""
    inc, sh = _showers(400)
    pre = ShowerPreprocessor(LAYERS).fit([(inc, sh)])
    cond, x = pre.forward(inc, sh)
    assert cond.shape == (400, 1) and x.shape == (400, 27) and x.dtype == np.float32
    assert np.isfinite(x).all()
    assert abs(float(x.mean())) < 0.1 and abs(float(cond.std()) - 1) < 1e-3
    delta = pre.threshold_mev
    assert delta > 0 and 0 < (sh[sh > 0] < delta).mean() < 0.05
    kept = np.where(sh >= delta, sh, 0.0)
    back = pre.inverse(inc, x)
    np.testing.assert_allclose(back, kept, rtol=1e-5, atol=1e-6 * float(sh.max()))
    np.testing.assert_array_equal(back > 0, kept > 0)


def test_round_trip_exact_without_dequantisation():
    inc, sh = _showers(200)
    for pre in (ShowerPreprocessor(LAYERS, threshold_mev=0.0), ShowerPreprocessor(LAYERS, dequantize=False)):
        pre.fit([(inc, sh)])
        kept = np.where(sh >= pre.threshold_mev, sh, 0.0)
        back = pre.inverse(inc, pre.forward(inc, sh)[1])
        np.testing.assert_allclose(back, kept, rtol=1e-5, atol=1e-6 * float(sh.max()))
    np.testing.assert_array_equal(back > 0, kept > 0)


def test_mev_scale_round_trip_and_fixed_empty_gap():
    """shape_scale="mev": voxels as log(e / delta + 1e-4); training showers come back exactly, and
    the empty voxels sit below log(noise_scale) whatever the layer energy (their gap to real
    deposits does not move with the layer energy, as it does for fractions of the layer)."""
    inc, sh = _showers(400)
    pre = ShowerPreprocessor(LAYERS, shape_scale="mev").fit([(inc, sh)])
    delta = pre.threshold_mev
    kept = np.where(sh >= delta, sh, 0.0)
    cond, x = pre.forward(inc, sh)
    back = pre.inverse(inc, x)
    np.testing.assert_allclose(back, kept, rtol=1e-5, atol=1e-6 * float(sh.max()))
    np.testing.assert_array_equal(back > 0, kept > 0)
    z = pre.shape_std.inverse(x[:, pre._v_pos].astype(np.float64))
    np.testing.assert_allclose(z[kept > 0], np.log(kept[kept > 0] / delta + 1e-4), rtol=1e-5, atol=1e-5)
    assert z[kept == 0].max() < np.log(0.1 + 1e-4) and z[kept > 0].min() >= np.log(1.0)
    clone = preprocessor_from_state(json.dumps(pre.state_dict()))
    assert clone.shape_scale == "mev"
    np.testing.assert_array_equal(clone.forward(inc, sh)[1], x)
    # states saved before the option existed read as fractions of the layer
    old = {k: v for k, v in ShowerPreprocessor(LAYERS).fit([(inc, sh)]).state_dict().items() if k != "shape_scale"}
    assert preprocessor_from_state(old).shape_scale == "layer"
    with pytest.raises(ValueError, match="shape_scale"):
        ShowerPreprocessor(LAYERS, shape_scale="gev")


def test_energy_binned_standardize_follows_the_energy():
    """A feature whose mean moves with log E (x = 2 L + N(0, 0.5)): binned standardisation removes
    the motion (conditional std 0.5 -> ~0.95: a bin's std also holds the trend across its width),
    one global standardisation does not (std ~ 2 std(L))."""
    from showerforge.data.preprocess import EnergyBinnedStandardize

    rng = np.random.default_rng(3)
    log_e = rng.uniform(np.log(1e3), np.log(1e5), 40_000)
    x = (2.0 * log_e + rng.normal(0.0, 0.5, log_e.size))[:, None]
    binned = EnergyBinnedStandardize(1, 16)
    for lo in range(0, log_e.size, 7000):  # streaming
        binned.partial_fit(x[lo : lo + 7000], log_e[lo : lo + 7000])
    binned.finalize()
    assert len(binned.centres) == 16 and np.all(np.diff(binned.centres) > 0)
    z = binned.forward(x, log_e)
    for band in np.array_split(np.argsort(log_e), 8):
        assert abs(z[band].mean()) < 0.15 and 0.85 < z[band].std() < 1.1  # ends: constant beyond the centres
    z_global = Standardize(1).fit(x).forward(x)
    assert z_global[np.argsort(log_e)[:5000]].mean() < -1.2  # the global one keeps the motion
    np.testing.assert_allclose(binned.inverse(z, log_e), x, rtol=1e-12, atol=1e-12)
    # generated values are held to the range seen in training near that energy
    far = binned.inverse(z + 50.0, log_e)
    assert far.max() <= x.max() and np.all(far[log_e < 8.0] <= x[log_e < 8.5].max())


def test_shape_energy_bins_round_trip():
    inc, sh = _showers(400)
    pre = ShowerPreprocessor(LAYERS, shape_energy_bins=4).fit([(inc[:150], sh[:150]), (inc[150:], sh[150:])])
    kept = np.where(sh >= pre.threshold_mev, sh, 0.0)
    cond, x = pre.forward(inc, sh)
    np.testing.assert_allclose(pre.inverse(inc, x), kept, rtol=1e-5, atol=1e-6 * float(sh.max()))
    clone = preprocessor_from_state(json.dumps(pre.state_dict()))
    assert clone.shape_energy_bins == 4
    np.testing.assert_array_equal(clone.forward(inc, sh)[1], x)
    wild = x.copy()
    wild[:, pre._v_pos] += 30.0  # far outside training: clipped, still physical
    out = pre.inverse(inc, wild)
    assert np.isfinite(out).all() and out.min() >= 0.0


def test_energy_decode_matches_the_inverse():
    """The torch decoder of the shape model's layer condition gives the inverse's layer energies."""
    torch = pytest.importorskip("torch")
    from showerforge.models.factorised import LayerEnergyDecode

    inc, sh = _showers(300)
    pre = ShowerPreprocessor(LAYERS).fit([(inc, sh)])
    cond, x = pre.forward(inc, sh)
    e = x[:, pre._e_pos]
    dec = LayerEnergyDecode(json.loads(json.dumps(pre.energy_decode())))
    got = dec.layer_energies(torch.from_numpy(e).double(), torch.from_numpy(cond).double()).numpy()
    y = np.clip(pre.energy_std.inverse(e.astype(np.float64)), pre.y_min, pre.y_max)
    want = pre._stick_inverse(y, inc.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-3)
    # and the layer energies of the showers themselves (above the threshold)
    kept = np.where(sh >= pre.threshold_mev, sh, 0.0)
    true = np.add.reduceat(kept, pre.offsets[:-1][pre.active], axis=1)
    np.testing.assert_allclose(got, true, rtol=2e-3, atol=0.1 * pre.threshold_mev)


def test_dequantisation_noise():
    """Empty voxels get distinct values below the softest kept voxel; the same ones on every call."""
    inc, sh = _showers(300)
    pre = ShowerPreprocessor(LAYERS).fit([(inc, sh)])
    x = pre.forward(inc, sh)[1]
    np.testing.assert_array_equal(x, pre.forward(inc, sh)[1])
    np.testing.assert_array_equal(x[:100], pre.forward(inc[:100], sh[:100])[1])  # row-wise
    shapes = x[:, pre._v_pos]
    empty = (sh < pre.threshold_mev) & (np.repeat(pre._layer_energies(sh), LAYERS[:1] + LAYERS[2:], axis=1) > 0)
    for v in range(sh.shape[1]):
        lo, hi = shapes[empty[:, v], v], shapes[~empty[:, v] & (sh[:, v] > 0), v]
        assert np.unique(lo).size == lo.size  # no spike at logit(alpha)
        if lo.size and hi.size:
            assert np.median(lo) < np.median(hi)
    # the noise stays below noise_scale * delta: generated features of empty voxels come back as 0
    assert (pre.inverse(inc, x)[empty] == 0).all()
    raw = np.exp(pre.shape_std.inverse(shapes.astype(np.float64))) * pre._scale(pre._layer_energies(sh))
    assert (raw[empty] < 1.01 * pre.noise_scale * pre.threshold_mev).all()
    plain = ShowerPreprocessor(LAYERS, dequantize=False).fit([(inc, sh)]).forward(inc, sh)[1]
    assert not np.array_equal(plain, x)


def test_hash_uniform():
    inc, sh = _showers(500)
    u = hash_uniform(0, inc, sh, 30)
    assert u.shape == (500, 30) and (u > 0).all() and (u < 1).all()
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005
    np.testing.assert_array_equal(u[100:200], hash_uniform(0, inc[100:200], sh[100:200], 30))
    assert not np.array_equal(u, hash_uniform(1, inc, sh, 30))
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.15


def test_state_dict_json_round_trip():
    inc, sh = _showers(200)
    pre = ShowerPreprocessor(LAYERS).fit([(inc, sh)])
    text = json.dumps(pre.state_dict())
    clone = preprocessor_from_state(text)
    for a, b in zip(pre.forward(inc, sh), clone.forward(inc, sh)):
        np.testing.assert_array_equal(a, b)
    assert clone.threshold_mev == pre.threshold_mev
    other = ShowerPreprocessor([6, 0, 4, 4, 8])
    with pytest.raises(ValueError, match="layer layout"):
        other.load_state_dict(pre.state_dict())


def test_streaming_fit_matches_one_shot():
    inc, sh = _showers(300)
    one = ShowerPreprocessor(LAYERS).fit([(inc, sh)])
    chunks = ShowerPreprocessor(LAYERS).fit([(inc[i : i + 64], sh[i : i + 64]) for i in range(0, 300, 64)])
    for key in ("cond", "energy", "shape"):
        for stat in ("mean", "std"):
            a, b = one.state_dict()[key][stat], chunks.state_dict()[key][stat]
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert one.threshold_mev == chunks.threshold_mev


def test_threshold_is_quantile_of_first_rows():
    inc, sh = _showers(300)
    pre = ShowerPreprocessor(LAYERS, threshold_quantile=0.02, threshold_rows=100).fit([(inc, sh)])
    first = sh[:100]
    assert pre.threshold_mev == pytest.approx(float(np.quantile(first[first > 0].astype(np.float64), 0.02)))
    chunked = ShowerPreprocessor(LAYERS, threshold_quantile=0.02, threshold_rows=100)
    chunked.fit([(inc[i : i + 7], sh[i : i + 7]) for i in range(0, 300, 7)])
    assert chunked.threshold_mev == pre.threshold_mev
    few = ShowerPreprocessor(LAYERS, threshold_quantile=0.02).fit([(inc[:50], sh[:50])])  # fewer than rows
    assert few.threshold_mev == pytest.approx(float(np.quantile(sh[:50][sh[:50] > 0].astype(np.float64), 0.02)))
    assert ShowerPreprocessor(LAYERS, threshold_mev=0.5).fit([(inc, sh)]).threshold_mev == 0.5
    with pytest.raises(ValueError, match="threshold_quantile"):
        ShowerPreprocessor(LAYERS, threshold_quantile=1.0)


def test_inverse_of_arbitrary_features_is_physical():
    """Generated features: finite, non-negative showers; each layer keeps its generated energy."""
    inc, sh = _showers(200)
    pre = ShowerPreprocessor(LAYERS, threshold_mev=0.0).fit([(inc, sh)])
    rng = np.random.default_rng(1)
    x = rng.normal(0, 2, (50, pre.n_features)).astype(np.float32)
    out = pre.inverse(inc[:50], x)
    assert out.shape == (50, 23) and np.isfinite(out).all() and (out >= 0).all()
    y = np.clip(pre.energy_std.inverse(x[:, pre._e_pos].astype(np.float64)), pre.y_min, pre.y_max)
    e_tot = np.clip(np.exp(y[:, -1]) - pre.frac_eps, 0, None) * inc[:50]
    got = np.add.reduceat(out, [0, 6, 10, 14], axis=1)  # the 4 layers with voxels
    hit = (out.reshape(50, -1) > 0).any(axis=1)
    full = np.array([np.all(got[i] > 0) for i in range(50)])
    # every layer with voxels keeps its share: the sum is the generated total energy
    np.testing.assert_allclose(got.sum(1)[full], e_tot[full], rtol=1e-5)
    assert hit.all() and full.mean() > 0.5
    # the total stays in the training range
    assert (got.sum(1) / inc[:50] <= (sh.sum(1) / inc).max() * (1 + 1e-5)).all()
    pre5 = ShowerPreprocessor(LAYERS, threshold_mev=5.0).fit([(inc, sh)])
    thr = pre5.inverse(inc[:50], x)
    assert ((thr == 0) | (thr >= 5.0)).all()
    # thresholding happens before the rescale: every layer keeps its generated energy, or is empty
    y5 = np.clip(pre5.energy_std.inverse(x[:, pre5._e_pos].astype(np.float64)), pre5.y_min, pre5.y_max)
    want = pre5._stick_inverse(y5, inc[:50].astype(np.float64))
    got5 = np.add.reduceat(thr.astype(np.float64), [0, 6, 10, 14], axis=1)
    full5 = (want >= 5.0) & (got5 > 0)  # (a layer whose shape clips to all zeros stays empty)
    np.testing.assert_allclose(got5[full5], want[full5], rtol=1e-5)
    assert (got5[want < 5.0] == 0).all() and full5.mean() > 0.5


def test_bad_input_is_refused():
    pre = ShowerPreprocessor(LAYERS)
    inc, sh = _showers(10)
    with pytest.raises(ValueError, match="showers: expected shape"):
        pre.partial_fit(inc, sh[:, :5])
    with pytest.raises(ValueError, match="> 0 MeV"):
        pre.partial_fit(-inc, sh)
    with pytest.raises(ValueError, match="layer_sizes"):
        ShowerPreprocessor([0, 0])
    with pytest.raises(ValueError, match="unknown preprocessing kind"):
        preprocessor_from_state({"kind": "nope"})


def test_standardize_constant_feature():
    x = np.stack([np.arange(10.0), np.full(10, 3.0)], axis=1)
    st = Standardize(2).fit(x)
    z = st.forward(x)
    assert st.std[1] == 1.0 and np.allclose(z[:, 1], 0.0) and abs(z[:, 0].std() - 1) < 1e-12
    np.testing.assert_allclose(st.inverse(z), x)
    with pytest.raises(ValueError):
        Standardize(2).finalize()
