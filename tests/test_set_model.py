"""Set model (EPiC velocity), multiplicity model and jet preprocessing: symmetries and known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from showerforge.data.jet_preprocess import (
    JetConditioning,
    JetPreprocessor,
    ParticleTransform,
    jet_mass_gev,
    multiplicity_target,
    wrap_phi,
)
from showerforge.models import MODELS
from showerforge.models.epic import masked_pool
from showerforge.models.multiplicity import CategoricalMultiplicity

torch.set_num_threads(1)


@pytest.fixture
def model():
    spec = MODELS["cfm-set"]
    torch.manual_seed(0)
    m = spec.build(**spec.example_config)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # leave the zero-initialised state, so every path carries signal
        for p in m.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return m.double()


def _inputs(model, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    n_part, n_feat = model.event_shape
    x = torch.randn(n, n_part, n_feat, generator=g, dtype=torch.float64)
    mask = torch.rand(n, n_part, generator=g) < 0.6
    mask[:, 0] = True
    cond = torch.randn(n, model.config["n_cond"], generator=g, dtype=torch.float64)
    t = torch.rand(n, generator=g, dtype=torch.float64)
    return x, t, cond, mask


def test_permutation_equivariance(model):
    x, t, cond, mask = _inputs(model)
    v = model(x, t, cond, mask)
    for seed in range(3):
        perm = torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(seed))
        v_perm = model(x[:, perm], t, cond, mask[:, perm])
        assert torch.allclose(v_perm, v[:, perm], atol=1e-12)


def test_padding_never_influences_real_particles(model):
    x, t, cond, mask = _inputs(model)
    v = model(x, t, cond, mask)
    junk = x + 1e3 * torch.randn(x.shape, dtype=x.dtype) * (~mask)[..., None]
    v_junk = model(junk, t, cond, mask)
    assert torch.equal(v_junk[mask], v[mask])
    assert (v[~mask] == 0).all()
    # jets are independent: changing one jet leaves the others unchanged
    x2 = x.clone()
    x2[0] += 1.0
    assert torch.allclose(model(x2, t, cond, mask)[1:], v[1:], atol=1e-12)


def test_set_loss_ignores_padding(model):
    x, _, cond, mask = _inputs(model)
    a = model.loss(x, cond, mask, generator=torch.Generator().manual_seed(0))
    b = model.loss(x + 50.0 * (~mask)[..., None], cond, mask, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(a, b)


def test_masked_pool_closed_form():
    h = torch.arange(12.0).reshape(1, 4, 3)
    mask = torch.tensor([[True, False, True, False]])
    mean, total = masked_pool(h, mask)
    assert torch.equal(mean, (h[0, 0] + h[0, 2])[None] / 2)
    assert torch.equal(total, (h[0, 0] + h[0, 2])[None] / 4)


# ----------------------------------------------------------------- multiplicity
def test_multiplicity_learns_known_categorical():
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.0], [0.0, 0.0, 0.5, 0.25, 0.25]], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (40_000,), generator=g)
    k = torch.multinomial(probs[labels], 1, generator=g).reshape(-1) + 1
    mult = CategoricalMultiplicity(n_labels=3, k_max=5).fit(labels, k)
    assert torch.allclose(mult.probs[:2], probs, atol=0.012)
    assert mult.fitted_labels.tolist() == [True, True, False]
    # sampling reproduces the fitted probabilities and is seeded
    draw = mult.sample(torch.ones(20_000, dtype=torch.long), generator=torch.Generator().manual_seed(1))
    freq = torch.bincount(draw - 1, minlength=5).double() / draw.numel()
    assert torch.allclose(freq, mult.probs[1], atol=0.012)
    again = mult.sample(torch.ones(20_000, dtype=torch.long), generator=torch.Generator().manual_seed(1))
    assert torch.equal(draw, again) and draw.min() >= 3
    lp = mult.log_prob(torch.tensor([1, 3]), torch.tensor([0, 1]))
    assert torch.allclose(lp, mult.probs[[0, 1], [0, 2]].log())
    assert torch.allclose(mult(torch.tensor([0])).probs, mult.probs[:1])
    with pytest.raises(ValueError, match="no training data"):
        mult.sample(torch.tensor([2]))
    with pytest.raises(ValueError, match="multiplicities"):
        mult.fit(torch.tensor([0]), torch.tensor([6]))


def test_multiplicity_state_round_trip():
    mult = CategoricalMultiplicity(2, 4, alpha=0.5).fit(torch.tensor([0, 0, 1]), torch.tensor([1, 2, 4]))
    clone = CategoricalMultiplicity(**json.loads(json.dumps(mult.config)))
    clone.load_state_dict(mult.state_dict())
    assert torch.equal(clone.probs, mult.probs)
    assert float(mult.probs[0, 3]) == pytest.approx(0.5 / 4.0)  # add-alpha: (0 + 0.5) / (2 + 4 * 0.5)


# ----------------------------------------------------------------- preprocessing
def _fake_jets(n_jets=300, n=20, seed=0):
    """JetNet-like arrays: pT-sorted, zero-padded, multiplicity in column 3 (sometimes above n)."""
    rng = np.random.default_rng(seed)
    k = rng.integers(1, 2 * n, n_jets)
    pf = np.zeros((n_jets, n, 4), np.float32)
    for i, ki in enumerate(np.minimum(k, n)):
        pt = np.sort(rng.dirichlet(np.ones(k[i])))[::-1][:ki]
        pf[i, :ki] = np.c_[rng.normal(0, 0.2, ki), rng.uniform(-0.8, 0.8, ki), pt, np.ones(ki)]
    jt = rng.integers(0, 2, n_jets) * 2  # types g and t
    jf = np.c_[rng.uniform(800, 1600, n_jets), rng.normal(0, 1, n_jets), rng.uniform(10, 200, n_jets), k]
    return pf, jf.astype(np.float32), jt.astype(np.int8)


def test_preprocessing_round_trip_and_json_state():
    pf, jf, jt = _fake_jets()
    pre = JetPreprocessor(20).fit(pf, jf, jt)
    x, mask = pre.forward(pf)
    assert x.shape == (300, 20, 3) and x.dtype == np.float32 and (x[~mask] == 0).all()
    real = x[mask]
    assert np.allclose(real.mean(0), 0, atol=1e-5) and np.allclose(real.std(0), 1, atol=1e-4)
    clone = JetPreprocessor.from_state(json.loads(json.dumps(pre.state_dict())))
    back = clone.inverse(x, mask)
    assert back.shape == pf.shape and back.dtype == np.float32
    assert np.allclose(back, pf, rtol=1e-5, atol=1e-6)
    assert pre.k_max == int(jf[:, 3].max())


def test_inverse_of_arbitrary_values_is_a_valid_jet():
    pf, jf, jt = _fake_jets()
    tr = ParticleTransform(20).fit(pf)
    rng = np.random.default_rng(1)
    mask = np.arange(20)[None] < rng.integers(1, 21, 100)[:, None]
    out = tr.inverse(3.0 * rng.normal(size=(100, 20, 3)), mask)
    assert np.array_equal(out[..., 3] > 0, mask) and (out[~mask] == 0).all()
    pt = out[..., 2]
    assert (np.diff(pt, axis=1)[mask[:, 1:]] <= 0).all()  # pT-descending within the real slots
    assert (pt.sum(1) <= tr.sum_max * (1 + 1e-6)).all() and (pt[mask] > 0).all()
    assert (np.abs(out[..., 1]) <= math.pi).all()


def test_wrap_phi_range():
    phi = np.array([-math.pi, math.pi, 3 * math.pi, 0.5, -7.0])
    w = wrap_phi(phi)
    assert np.allclose(w, [math.pi, math.pi, math.pi, 0.5, -7.0 + 2 * math.pi])
    assert ((w > -math.pi) & (w <= math.pi)).all()


def test_jet_mass_closed_form():
    """Two massless particles: m^2 = 2 pT1 pT2 (cosh(d eta) - cos(d phi))."""
    pf = np.zeros((1, 3, 4))
    pf[0, 0] = [0.1, 0.2, 0.6, 1]
    pf[0, 1] = [-0.2, -0.1, 0.3, 1]
    pf[0, 2] = [5.0, 5.0, 9.0, 0]  # padding is ignored
    m = jet_mass_gev(pf, np.array([1000.0]))
    expected = 1000.0 * math.sqrt(2 * 0.6 * 0.3 * (math.cosh(0.3) - math.cos(0.3)))
    assert m[0] == pytest.approx(expected, rel=1e-10)
    assert multiplicity_target(pf, np.array([[1000.0, 0, 0, 1]]))[0] == 2


def test_conditioning_type_and_pt():
    _, jf, jt = _fake_jets()
    c = JetConditioning("type").fit(jf, jt)
    assert c.types == ["g", "t"] and c.n_cond == 5 and c.n_labels == 5
    assert np.array_equal(c.condition(["g", "t"]), np.eye(5, dtype=np.float32)[[0, 2]])
    pt, eta = c.draw(["t"] * 500, np.random.default_rng(0))
    pt2, _ = c.draw(["t"] * 500, np.random.default_rng(0))
    sel = jf[jt == 2]
    assert np.array_equal(pt, pt2) and pt.min() >= sel[:, 0].min() and pt.max() <= sel[:, 0].max()
    with pytest.raises(ValueError, match="not in the training data"):
        c.draw(["q"], np.random.default_rng(0))
    cp = JetConditioning("type+pt", n_pt_bins=3).fit(jf, jt)
    assert cp.n_cond == 6 and cp.n_labels == 15
    labels = cp.labels(jt, jf[:, 0])
    assert set(np.unique(labels)) <= {0, 1, 2, 6, 7, 8}
    assert np.isclose(cp.condition(jt, jf[:, 0])[:, 5].std(), 1.0, atol=1e-3)
    with pytest.raises(ValueError, match="needs the jet pT"):
        cp.condition(["g"])


def test_conditioning_type_and_mass_follows_the_training_mass_per_type_and_pt():
    """type+mass: the relative mass drawn at generation has the training distribution of its type, and its
    dependence on pT (a resonance's m/pT falls as 1/pT); the labels split by mass; the state round-trips."""
    pf, jf, jt = _fake_jets(n_jets=4000)
    m = 60.0 / jf[:, 0].astype(np.float64) * (jt == 2) + 0.02 * (jt == 0)  # t: m = 60 GeV; g: m/pT = 0.02
    m = m * np.random.default_rng(1).uniform(0.95, 1.05, m.size)
    c = JetConditioning("type+mass", n_pt_bins=4).fit(jf, jt, m)
    assert c.uses_mass and c.n_cond == 6 and c.n_labels == 20
    rng = np.random.default_rng(0)
    pt, _ = c.draw(["t"] * 4000, rng)
    drawn = c.draw_mass(["t"] * 4000, pt, rng)
    absolute = drawn * pt  # the pT-octile tables keep the mass in GeV at 60 (5 % smearing, octile width)
    assert np.all(np.abs(absolute / 60.0 - 1) < 0.2) and abs(np.median(absolute) / 60.0 - 1) < 0.02
    g = c.draw_mass(["g"] * 2000, c.draw(["g"] * 2000, rng)[0], rng)
    assert np.all((g > 0.0189) & (g < 0.0211))
    labels = c.labels(jt, jf[:, 0], m)
    assert labels.min() >= 0 and labels.max() < c.n_labels and len(np.unique(labels)) >= 4
    cond = c.condition(jt, None, m)
    assert cond.shape == (4000, 6) and np.isclose(cond[:, 5].std(), 1.0, atol=1e-3)
    clone = JetConditioning()
    clone.load_state_dict(json.loads(json.dumps(c.state_dict())))
    assert np.array_equal(clone.condition(jt, None, m), cond)
    again = clone.draw_mass(["t"] * 4000, pt, np.random.default_rng(5))
    assert np.array_equal(again, c.draw_mass(["t"] * 4000, pt, np.random.default_rng(5)))
    with pytest.raises(ValueError, match="needs the relative jet mass"):
        c.condition(["g"])
    with pytest.raises(ValueError, match="rel_mass"):
        c.labels(["g"], None, [-0.1])
    assert JetConditioning("type").fit(jf, jt).draw_mass(["t"], pt[:1], rng) is None  # other kinds draw nothing
    pre = JetPreprocessor(20, "type+mass").fit(pf, jf, jt)  # the preprocessor takes m/pT from the particles
    assert pre.conditioning.mass_edges == sorted(pre.conditioning.mass_edges) and pre.n_cond == 6
