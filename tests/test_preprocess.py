"""Invertible preprocessing: exact round trip, state round trip, streaming fit, physical inverse."""

from __future__ import annotations

import json

import numpy as np
import pytest

from showerforge.data.preprocess import ShowerPreprocessor, Standardize, preprocessor_from_state
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
    inc, sh = _showers(400)
    pre = ShowerPreprocessor(LAYERS).fit([(inc, sh)])
    cond, x = pre.forward(inc, sh)
    assert cond.shape == (400, 1) and x.shape == (400, 27) and x.dtype == np.float32
    assert np.isfinite(x).all()
    assert abs(float(x.mean())) < 0.1 and abs(float(cond.std()) - 1) < 1e-3
    back = pre.inverse(inc, x)
    np.testing.assert_allclose(back, sh, rtol=1e-5, atol=1e-6 * float(sh.max()))
    np.testing.assert_array_equal(back > 0, sh > 0)


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


def test_threshold_is_min_nonzero_training_voxel():
    inc, sh = _showers(100)
    pre = ShowerPreprocessor(LAYERS).fit([(inc, sh)])
    assert pre.threshold_mev == pytest.approx(float(sh[sh > 0].min()) * (1 - 1e-4))
    assert ShowerPreprocessor(LAYERS, threshold_mev=0.5).fit([(inc, sh)]).threshold_mev == 0.5


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
    thr = ShowerPreprocessor(LAYERS, threshold_mev=5.0).fit([(inc, sh)]).inverse(inc[:50], x)
    assert ((thr == 0) | (thr >= 5.0)).all()


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
