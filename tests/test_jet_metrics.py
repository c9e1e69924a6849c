"""Jet metrics against closed-form answers (arXiv:2211.10295 definitions)."""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import itertools  # noqa: E402
import json  # noqa: E402
import warnings  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from showerforge.evaluation.jets import metrics as jm  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread_quiet():
    """One BLAS thread; small-sample warnings are checked explicitly in their own test."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*smaller than the recommended.*")
        warnings.filterwarnings("ignore", message=".*are recommended.*")
        yield


def _jets(n: int, seed: int, n_particles: int = 30, eta_shift: float = 0.0) -> np.ndarray:
    """Synthetic particle clouds: Gaussian angles, falling pT fractions, random multiplicity."""
    rng = np.random.default_rng(seed)
    pf = np.zeros((n, n_particles, 4))
    mult = rng.integers(3, n_particles + 1, size=n)
    idx = np.arange(n_particles)[None, :] < mult[:, None]
    pf[..., 0] = rng.normal(eta_shift, 0.15, (n, n_particles))
    pf[..., 1] = rng.normal(0.0, 0.15, (n, n_particles))
    pt = -np.sort(-rng.exponential(1.0, (n, n_particles)), axis=1) * idx
    pf[..., 2] = pt / pt.sum(1, keepdims=True)
    pf[..., 3] = idx
    pf[~idx] = 0
    return pf


# --------------------------------------------------------------------------- EFPs


def test_efp_graph_counts() -> None:
    graphs = jm.efp_graphs(4)
    assert len(graphs) == 36  # = len(energyflow.EFPSet("d<=4")) used by jetnet for FPD/KPD
    assert Counter(g.degree for g in graphs) == {0: 1, 1: 1, 2: 3, 3: 8, 4: 23}
    connected = Counter(g.degree for g in graphs if g.connected)
    assert connected == {1: 1, 2: 2, 3: 5, 4: 12}  # OEIS A076864
    assert len({g.name for g in graphs}) == 36
    assert len(jm._efp_selection("n=4,d=4,connected")) == 5  # jetnet's W1-EFP default


def test_efp_two_particles_closed_form() -> None:
    z1 = z2 = 0.5
    pf = np.zeros((1, 5, 4))
    pf[0, 0] = [0.1, 0.2, 3.0, 1]  # pT_rel scale is irrelevant: z = pT / sum pT
    pf[0, 1] = [-0.2, 0.1, 3.0, 1]
    theta = np.hypot(0.3, 0.1)
    names = {g.name: i for i, g in enumerate(jm.efp_graphs(4))}
    e = jm.efps(pf)[0]
    assert e[names["d0n1:empty"]] == pytest.approx(1.0)
    assert e[names["d1n2:0-1"]] == pytest.approx(2 * z1 * z2 * theta)  # unrestricted sum
    assert e[names["d2n2:0-1,0-1"]] == pytest.approx(2 * z1 * z2 * theta**2)
    assert e[names["d2n3:0-1,0-2"]] == pytest.approx(z1 * z2 * (z1 + z2) * theta**2)
    assert e[names["d2n4:0-1*0-1"]] == pytest.approx((2 * z1 * z2 * theta) ** 2)


def _brute_force(jet: np.ndarray, graph: jm.EFPGraph) -> float:
    real = jet[:, 3] > 0
    z = jet[real, 2] / jet[real, 2].sum()
    th = np.hypot(*(jet[real, None, k] - jet[None, real, k] for k in (0, 1)))
    value = 1.0
    for comp in graph.components:
        verts = sorted({v for e in comp for v in e})
        total = 0.0
        for idx in itertools.product(range(len(z)), repeat=len(verts)):
            term = np.prod(z[list(idx)])
            for a, b in comp:
                term *= th[idx[a], idx[b]]
            total += term
        value *= total
    return value


def test_efps_match_definition_by_brute_force() -> None:
    jets = _jets(3, seed=4, n_particles=5)
    values = jm.efps(jets)
    for j, (k, g) in itertools.product(range(3), enumerate(jm.efp_graphs(4))):
        assert values[j, k] == pytest.approx(_brute_force(jets[j], g), rel=1e-10, abs=1e-15)


def test_efps_invariant_to_order_padding_and_scale() -> None:
    jets = _jets(20, seed=5, n_particles=10)
    base = jm.efps(jets)
    perm = jets[:, ::-1].copy()
    perm[..., 2] *= 7.0
    padded = np.concatenate([perm, np.zeros((20, 4, 4))], axis=1)
    np.testing.assert_allclose(jm.efps(padded), base, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(jm.efps(jets, chunk_elements=100), base, rtol=1e-12)


# --------------------------------------------------------------------------- W1


def test_w1_identical_samples_vanish_with_sample_size() -> None:
    """Bootstrap W1 of a sample with itself is the O(1/sqrt(n)) resampling floor, -> 0."""
    x = np.random.default_rng(0).normal(size=20_000)
    small = jm.w1m(x, x, seed=1, num_eval_samples=1_000)
    large = jm.w1m(x, x, seed=1, num_eval_samples=20_000)
    assert small.value < 4 / np.sqrt(1_000) and large.value < 4 / np.sqrt(20_000)
    assert large.value < small.value / 2
    assert small.error > 0


def test_w1_shifted_gaussian_equals_shift() -> None:
    x = np.random.default_rng(1).normal(size=20_000)
    for shift in (0.3, 1.0):
        r = jm.w1m(x, x + shift, seed=2, num_eval_samples=20_000)
        assert abs(r.value - shift) < 3 * r.error + 0.03


def test_w1p_features_and_average() -> None:
    a, b = _jets(3_000, seed=1), _jets(3_000, seed=2, eta_shift=0.2)
    same = jm.w1p(a, a, seed=3, num_eval_samples=3_000)
    shifted = jm.w1p(a, b, seed=3, num_eval_samples=3_000)
    assert len(shifted.per_component) == 3
    assert shifted.per_component[0].value == pytest.approx(0.2, abs=0.02)  # eta_rel shift
    assert shifted.per_component[1].value < 0.02 and same.mean.value < 0.01
    vals = [c.value for c in shifted.per_component]
    assert shifted.mean.value == pytest.approx(np.mean(vals))


def test_w1m_from_particles_and_w1efp() -> None:
    a, b = _jets(2_000, seed=1), _jets(2_000, seed=2)
    wide = a.copy()
    wide[..., :2] *= 1.5  # wider jets: larger mass and EFPs
    ab = jm.w1m(a, b, seed=0, num_eval_samples=2_000)
    aw = jm.w1m(a, wide, seed=0, num_eval_samples=2_000)
    assert aw.value > ab.value + 5 * (aw.error + ab.error)
    e_ab = jm.w1efp(a, b, seed=0, num_eval_samples=2_000)
    e_aw = jm.w1efp(a, wide, seed=0, num_eval_samples=2_000)
    assert len(e_ab.per_component) == 5
    assert e_aw.mean.value > e_ab.mean.value + 5 * (e_aw.mean.error + e_ab.mean.error)
    # relative mass of a 2-particle massless jet: m/pT = sqrt(2 z1 z2 (cosh deta - cos dphi))
    pf = np.zeros((1, 2, 4))
    pf[0, :, 3] = 1
    pf[0, :, 2] = 0.5
    pf[0, 0, :2] = [0.1, 0.05]
    pf[0, 1, :2] = [-0.1, -0.05]
    want = np.sqrt(2 * 0.25 * (np.cosh(0.2) - np.cos(0.1)))
    assert jm.relative_jet_mass(pf)[0] == pytest.approx(want, rel=1e-12)


# --------------------------------------------------------------------------- FPD / KPD


def test_frechet_distance_closed_form() -> None:
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    s1, s2 = rng.uniform(0.5, 2, 4), rng.uniform(0.5, 2, 4)
    want = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)  # diagonal covariances
    got = jm.frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2))
    assert got == pytest.approx(want, rel=1e-10)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))  # rotation invariance
    got_rot = jm.frechet_distance(q @ mu1, q @ np.diag(s1**2) @ q.T, q @ mu2, q @ np.diag(s2**2) @ q.T)
    assert got_rot == pytest.approx(want, rel=1e-8)
    assert jm.frechet_distance(mu1, np.zeros((4, 4)), mu1, np.zeros((4, 4))) == 0.0


def test_fpd_identical_is_zero_and_shift_is_analytic() -> None:
    x = np.random.default_rng(3).normal(size=(12_000, 4))
    kw = {"min_samples": 2_000, "max_samples": 10_000, "num_batches": 10, "normalise": False}
    same = jm.fpd(x, x, seed=1, **kw)
    assert same.value <= 3 * same.error + 1e-3
    shift = np.array([0.3, -0.2, 0.0, 0.1])
    r = jm.fpd(x, x + shift, seed=1, **kw)  # equal covariances: FPD = |dmu|^2
    assert abs(r.value - shift @ shift) < 3 * r.error + 5e-3


def test_mmd2_unbiased_brute_force() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(1.0, 1.0, size=(5, 3))

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return (a @ b / 3 + 1) ** 4

    want = (
        sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / 42
        + sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
        - 2 * sum(k(a, b) for a in x for b in y) / 35
    )
    assert jm.mmd2_unbiased(x, y, degree=4, block=3) == pytest.approx(want, rel=1e-12)


def test_kpd_identical_zero_shift_positive() -> None:
    x = np.random.default_rng(5).normal(size=(10_000, 4))
    same = jm.kpd(x, x, seed=2, batch_size=1_000)
    assert abs(same.value) <= 3 * same.error
    shifted = jm.kpd(x, x + 0.5, seed=2, batch_size=1_000)
    assert shifted.value > 10 * shifted.error > 0


def test_seeds_reproducible_and_validated() -> None:
    a, b = _jets(500, 1), _jets(500, 2)
    r1 = jm.w1p(a, b, seed=7, num_eval_samples=500)
    r2 = jm.w1p(a, b, seed=np.random.default_rng(7), num_eval_samples=500)
    assert r1 == r2
    assert jm.w1p(a, b, seed=8, num_eval_samples=500) != r1
    with pytest.raises(TypeError):
        jm.w1m(a, b, seed=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        jm.fpd(np.zeros((10, 3)), np.zeros((10, 4)), seed=0)


def test_small_samples_warn() -> None:
    x = np.random.default_rng(0).normal(size=(100, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # undo the fixture's filter
        with pytest.warns(UserWarning, match="recommended"):
            jm.kpd(x, x, seed=0, batch_size=50, num_batches=2)


# --------------------------------------------------------------------------- report


def test_evaluate_jets_json_and_truth_baseline(tmp_path: Path) -> None:
    ref, good, bad = _jets(4_000, 1), _jets(2_000, 2), _jets(2_000, 3, eta_shift=0.1)
    bad[..., :2] *= 1.3  # wider jets: EFPs (translation invariant) see this, not the eta shift
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.warns(UserWarning, match="recommended"):
            res = jm.evaluate_jets(ref, bad, seed=0, quick=True)
    json.dumps(res)
    assert set(res) == {"candidate", "truth", "settings"}
    for side in ("candidate", "truth"):
        assert set(res[side]) == {"w1m", "w1p", "w1efp", "fpd", "kpd"}
    c, t = res["candidate"], res["truth"]
    assert c["w1p"]["per_component"]["eta_rel"]["value"] > 10 * t["w1p"]["per_component"]["eta_rel"]["value"]
    for name in ("fpd", "kpd", "w1m"):
        assert c[name]["value"] > t[name]["value"] + 3 * (c[name]["error"] + t[name]["error"])
    ok = jm.evaluate_jets(ref, good, seed=0, quick=True)["candidate"]
    assert ok["w1p"]["mean"]["value"] < c["w1p"]["mean"]["value"]


def test_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    a, b = _jets(300, 1), _jets(300, 2, eta_shift=0.05)
    paths = jm.plot_particle_features(a, b, tmp_path / "plots")
    assert [p.name for p in paths] == [
        "particle_eta_rel.png",
        "particle_phi_rel.png",
        "particle_pt_rel.png",
    ]
    mass = jm.plot_jet_mass(a, b, tmp_path / "plots" / "mass.png")
    for p in [*paths, mass]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
