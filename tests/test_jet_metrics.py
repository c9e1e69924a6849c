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


@pytest.mark.parametrize(("normed", "z1", "z2"), [(False, 3.0, 1.0), (True, 0.75, 0.25)])
def test_efp_two_particles_closed_form(normed: bool, z1: float, z2: float) -> None:
    pf = np.zeros((1, 5, 4))
    pf[0, 0] = [0.1, 0.2, 3.0, 1]  # jetnet's default: z = pT_rel as stored; normed: pT / sum pT
    pf[0, 1] = [-0.2, 0.1, 1.0, 1]
    theta = np.hypot(0.3, 0.1)
    names = {g.name: i for i, g in enumerate(jm.efp_graphs(4))}
    e = jm.efps(pf, normed=normed)[0]
    assert e[names["d0n1:empty"]] == pytest.approx(z1 + z2)
    assert e[names["d1n2:0-1"]] == pytest.approx(2 * z1 * z2 * theta)  # unrestricted sum
    assert e[names["d2n2:0-1,0-1"]] == pytest.approx(2 * z1 * z2 * theta**2)
    assert e[names["d2n3:0-1,0-2"]] == pytest.approx(z1 * z2 * (z1 + z2) * theta**2)
    assert e[names["d2n4:0-1*0-1"]] == pytest.approx((2 * z1 * z2 * theta) ** 2)


def test_efp_delta_phi_wraps_around_pi() -> None:
    """Delta phi is periodic (as energyflow's hadronic measure): 3.1 and -3.1 are 2 pi - 6.2 apart."""
    pf = np.zeros((1, 2, 4))
    pf[0, :, 2:] = [[0.5, 1], [0.5, 1]]
    pf[0, :, 1] = [3.1, -3.1]
    names = [g.name for g in jm.efp_graphs(4)]
    e = jm.efps(pf)[0, names.index("d1n2:0-1")]
    assert e == pytest.approx(2 * 0.25 * (2 * np.pi - 6.2), rel=1e-12)


def _brute_force(jet: np.ndarray, graph: jm.EFPGraph, normed: bool = False) -> float:
    real = jet[:, 3] > 0
    z = jet[real, 2] / (jet[real, 2].sum() if normed else 1.0)
    th = np.hypot(*(jet[real, None, k] - jet[None, real, k] for k in (0, 1)))
    value = 1.0 if graph.components else z.sum()
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


@pytest.mark.parametrize("normed", [False, True])
def test_efps_match_definition_by_brute_force(normed: bool) -> None:
    jets = _jets(3, seed=4, n_particles=5)
    jets[..., 2] *= 0.9  # sum pT_rel != 1, so the two conventions differ
    values = jm.efps(jets, normed=normed)
    for j, (k, g) in itertools.product(range(3), enumerate(jm.efp_graphs(4))):
        assert values[j, k] == pytest.approx(_brute_force(jets[j], g, normed), rel=1e-10, abs=1e-15)


def test_efps_invariant_to_order_and_padding_homogeneous_in_pt() -> None:
    jets = _jets(20, seed=5, n_particles=10)
    base, base_normed = jm.efps(jets), jm.efps(jets, normed=True)
    perm = jets[:, ::-1].copy()
    perm[..., 2] *= 7.0
    padded = np.concatenate([perm, np.zeros((20, 4, 4))], axis=1)
    n_vertices = np.array([g.n_vertices for g in jm.efp_graphs(4)])
    # jetnet's convention: an EFP with n vertices scales as pT^n; normed: scale invariant
    np.testing.assert_allclose(jm.efps(padded), base * 7.0**n_vertices, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(jm.efps(padded, normed=True), base_normed, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(jm.efps(jets, chunk_elements=100), base, rtol=1e-12)
    np.testing.assert_allclose(jm.fpd_kpd_features(jets), base, rtol=0)


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
    assert shifted.value > 5 * shifted.error > 0  # a 0.5 sigma shift: KPD far above its spread


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


# --------------------------------------------------------------------------- jetnet known answers
# Computed by jetnet 0.2.5 (energyflow 1.4.0, numpy 2.4.6) on fixed_jets below with
# `python benchmarks/parity/jets_vs_jetnet.py --known-answers` (W1 draws: jetnet's module-level
# generator replaced by default_rng(0); fpd and kpd with seed=0). A change of EFP convention,
# bootstrap draws or FPD fit fails these.


def fixed_jets(n: int, n_particles: int, phase: float, widen: float = 1.0) -> np.ndarray:
    """Copy of ``benchmarks/parity/jets_vs_jetnet.py:fixed_jets`` (no random numbers)."""
    i = np.arange(n, dtype=np.float64)[:, None]
    k = np.arange(n_particles, dtype=np.float64)[None, :]
    mult = 3 + (np.arange(n)[:, None] * 7 + round(10 * phase)) % (n_particles - 2)
    real = np.arange(n_particles)[None, :] < mult
    pf = np.zeros((n, n_particles, 4))
    pf[..., 0] = widen * 0.25 * np.sin(1.3 * i + 2.1 * k + phase) * (0.5 + 0.1 * k)
    pf[..., 1] = widen * 0.25 * np.cos(0.7 * i + 1.7 * k + 2 * phase) * (0.5 + 0.08 * k)
    w = np.exp(-0.35 * k) * (1.0 + 0.5 * np.sin(0.9 * i + k + phase) ** 2) * real
    pf[..., 2] = w / w.sum(1, keepdims=True) * (0.9 + 0.1 * np.cos(1.1 * i + phase))
    pf[..., 3] = real
    pf[~real] = 0.0
    return pf


JETNET_EFPS = {  # energyflow, normed=None: jets 0-2 of fixed_jets(200, 10, 0.0), by showerforge graph name
    "d0n1:empty": (1.0, 0.9453596121425578, 0.8411498882744655),
    "d1n2:0-1": (0.17640809213674669, 0.18490267866211074, 0.1325631882734755),
    "d2n2:0-1,0-1": (0.0497230683578997, 0.05607364764097046, 0.039616440138573454),
    "d2n3:0-1,0-2": (0.03234413107518186, 0.03837830164060381, 0.0236234632090494),
    "d2n4:0-1*0-1": (0.031119814971326907, 0.03418900057642378, 0.01757299888522891),
    "d3n2:0-1,0-1,0-1": (0.014598814653878507, 0.019131561591320137, 0.013101527541026826),
    "d3n3:0-1,0-1,0-2": (0.009299983647768295, 0.01212678276877664, 0.007374488298717901),
    "d3n3:0-1,0-2,1-2": (0.004220927045717152, 0.007447811653543962, 0.004396693877415942),
    "d3n4:0-1,0-2,0-3": (0.006183493696029758, 0.008602320962192801, 0.004696375302937001),
    "d3n4:0-1,0-2,1-3": (0.00579275149400678, 0.007906067243791304, 0.004022690028877565),
    "d3n4:0-1*0-1,0-1": (0.008771551624202123, 0.010368167651170785, 0.005251681612814584),
    "d3n5:0-1*0-1,0-2": (0.005705766454793693, 0.007096250775850124, 0.003131601601052737),
    "d3n6:0-1*0-1*0-1": (0.005489787186740346, 0.0063216377873612055, 0.002329532759752175),
    "d4n2:0-1,0-1,0-1,0-1": (0.004414348617818478, 0.007129722432276871, 0.004644160860854158),
    "d4n3:0-1,0-1,0-1,0-2": (0.0027706461029593657, 0.00432227533275234, 0.002529086224854323),
    "d4n3:0-1,0-1,0-2,0-2": (0.0027007313486189614, 0.003959605023072113, 0.0023445407010752803),
    "d4n3:0-1,0-1,0-2,1-2": (0.0011698483912761667, 0.0023291470332145155, 0.0013652393083065173),
    "d4n4:0-1,0-1,0-2,0-3": (0.0018144666361914726, 0.002862828295339855, 0.0015261604314770953),
    "d4n4:0-1,0-1,0-2,1-3": (0.0016897392720552483, 0.002596843254173897, 0.0013113631876429596),
    "d4n4:0-1,0-1,0-2,2-3": (0.0016458249616158951, 0.0024865879471899213, 0.0012383536158391286),
    "d4n4:0-1,0-2,0-3,1-2": (0.0007677836394952628, 0.0016746518913445866, 0.0008405148404385702),
    "d4n4:0-1,0-2,1-3,2-3": (0.0012361917634621832, 0.0019473968167470449, 0.0009492846918177989),
    "d4n5:0-1,0-2,0-3,0-4": (0.0012325536685585422, 0.0021173262456809965, 0.0010235211549920915),
    "d4n5:0-1,0-2,0-3,1-4": (0.0010800870579866122, 0.0017567384364946164, 0.000772133325358389),
    "d4n5:0-1,0-2,1-3,2-4": (0.0010523266159418536, 0.001630451758681904, 0.0006987427528957152),
    "d4n4:0-1*0-1,0-1,0-1": (0.0025753490405486875, 0.003537476985224247, 0.0017367802620912635),
    "d4n5:0-1*0-1,0-1,0-2": (0.0016405923722057469, 0.002242274617500329, 0.0009775856807634831),
    "d4n5:0-1*0-1,0-2,1-2": (0.0007446056871833573, 0.001377120324911163, 0.0005828397582527265),
    "d4n6:0-1*0-1,0-2,0-3": (0.0010908183256562098, 0.001590592188620675, 0.0006225664834861381),
    "d4n6:0-1*0-1,0-2,1-3": (0.0010218882392800251, 0.001461853011059783, 0.0005332606156639293),
    "d4n4:0-1,0-1*0-1,0-1": (0.002472383526924366, 0.003144253959763712, 0.001569462329253174),
    "d4n5:0-1,0-1*0-1,0-2": (0.0016082494404281353, 0.0021520113632540966, 0.0009358775160870979),
    "d4n6:0-1,0-2*0-1,0-2": (0.0010461428150085447, 0.001472894036817173, 0.0005580680139893106),
    "d4n6:0-1*0-1*0-1,0-1": (0.0015473726871044783, 0.0019171019715193232, 0.0006961796583918892),
    "d4n7:0-1*0-1*0-1,0-2": (0.0010065433744680043, 0.0013121157769127693, 0.0004151350926378713),
    "d4n8:0-1*0-1*0-1*0-1": (0.0009684428838496223, 0.0011688877604147058, 0.0003088102898202565),
}
JETNET_W1M = (0.028818877674585155, 0.00045234563893314586)  # w1m(a, b, 200, 3): mean, std
JETNET_W1P = (
    (0.026416565485915987, 0.024916875995481386, 0.005925201130738103),
    (0.0022420140938693755, 0.00015759185882565938, 0.002882307332872574),
)  # eta, phi, pt: means, stds
JETNET_W1EFP = {  # w1efp(a, b, num_eval_samples=200, num_batches=3): mean, std per EFP
    "d4n4:0-1,0-1,0-2,0-3": (0.001757965693193941, 5.4509675102688056e-05),
    "d4n4:0-1,0-1,0-2,2-3": (0.001539206789639311, 4.457950767535363e-05),
    "d4n4:0-1,0-1,0-2,1-3": (0.001603808021571898, 4.905989968216903e-05),
    "d4n4:0-1,0-2,0-3,1-2": (0.0009732657037595753, 4.7302015662535724e-05),
    "d4n4:0-1,0-2,1-3,2-3": (0.001195057325693228, 3.592550368352778e-05),
}
JETNET_FPD = (5.755042412213034, 0.9119387576717916)  # fpd(features, min 50, max 200, 5 batches, 4 points, seed 0)
JETNET_KPD = (8.765724893211619, 1.8853267059945567)  # kpd(features, 4 batches of 50, seed 0)


@pytest.fixture(scope="module")
def fixed_pair() -> tuple[np.ndarray, np.ndarray]:
    return fixed_jets(200, 10, 0.0), fixed_jets(200, 10, 0.5, widen=1.2)


def test_efps_equal_energyflow_as_used_by_jetnet(fixed_pair: tuple[np.ndarray, np.ndarray]) -> None:
    """jetnet's EFPSet(("d<=", 4), measure="hadr", beta=1, normed=None) on the stored pT_rel."""
    names = [g.name for g in jm.efp_graphs(4)]
    assert sorted(names) == sorted(JETNET_EFPS)
    ours = jm.fpd_kpd_features(fixed_pair[0][:3])
    theirs = np.array([JETNET_EFPS[name] for name in names]).T
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)
    normed = jm.efps(fixed_pair[0][:3], normed=True)
    np.testing.assert_allclose(normed[:, 0], 1.0)  # the normalised variant is not jetnet's
    assert np.max(np.abs(normed / theirs - 1)) > 0.1


def test_w1_metrics_equal_jetnet_on_same_draws(fixed_pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = fixed_pair
    kw = {"num_eval_samples": 200, "num_batches": 3}
    assert tuple(jm.w1m(a, b, 0, **kw)) == pytest.approx(JETNET_W1M, rel=1e-12)
    w1p = jm.w1p(a, b, 0, **kw).per_component
    assert [c.value for c in w1p] == pytest.approx(JETNET_W1P[0], rel=1e-12)
    assert [c.error for c in w1p] == pytest.approx(JETNET_W1P[1], rel=1e-12)
    w1efp = jm.w1efp(a, b, 0, **kw)
    names = [g.name for g in jm._efp_selection("n=4,d=4,connected")]
    for name, c in zip(names, w1efp.per_component, strict=True):
        assert tuple(c) == pytest.approx(JETNET_W1EFP[name], rel=1e-10)
    assert w1efp.mean.value == pytest.approx(np.mean([m for m, _ in JETNET_W1EFP.values()]), rel=1e-10)


def test_fpd_kpd_equal_jetnet_on_same_draws(fixed_pair: tuple[np.ndarray, np.ndarray]) -> None:
    fa, fb = (jm.fpd_kpd_features(x) for x in fixed_pair)
    fpd = jm.fpd(fa, fb, 0, min_samples=50, max_samples=200, num_batches=5, num_points=4)
    assert tuple(fpd) == pytest.approx(JETNET_FPD, rel=1e-7)  # Frechet distance: eigh vs sqrtm
    # jetnet's kpd reseeds batch i with default_rng(seed + 1000 i): one batch per call here
    vals = [jm.kpd(fa, fb, np.random.default_rng(1000 * i), num_batches=1, batch_size=50).value for i in range(4)]
    lo, hi = np.percentile(vals, [16.275, 83.725])
    assert (np.median(vals), (hi - lo) / 2) == pytest.approx(JETNET_KPD, rel=1e-10)


def test_fpd_lsq_recovers_the_exact_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fréchet distances exactly c + k / N: lsq returns c (even c < 0), jetnet's bounded fit clips at 0."""
    from showerforge.evaluation import distances

    sizes = (1.0 / np.linspace(1.0 / 50, 1.0 / 200, 4)).astype(int)
    x = np.random.default_rng(0).normal(size=(300, 3))
    kw = {"min_samples": 50, "max_samples": 200, "num_batches": 5, "num_points": 4}

    def exact_line(c: float, k: float) -> None:  # the next num_points x num_batches distances
        calls = iter([c + k / n for n in np.repeat(sizes, 5)])
        monkeypatch.setattr(distances, "frechet_distance", lambda *_: next(calls))

    for c, k in ((0.2, 3.0), (-0.05, 2.0)):
        exact_line(c, k)
        lsq = jm.fpd(x, x, 0, extrapolation="lsq", **kw)
        assert lsq.value == pytest.approx(c, abs=1e-12) and lsq.error == pytest.approx(0.0, abs=1e-12)
        exact_line(c, k)
        assert jm.fpd(x, x, 0, **kw).value == pytest.approx(max(c, 0.0), abs=1e-6)


def test_fpd_lsq_identical_samples_near_zero(fixed_pair: tuple[np.ndarray, np.ndarray]) -> None:
    fa = jm.fpd_kpd_features(fixed_pair[0])
    kw = {"min_samples": 50, "max_samples": 200, "num_batches": 10, "num_points": 5}
    lsq = jm.fpd(fa, fa, 3, extrapolation="lsq", **kw)
    assert abs(lsq.value) <= 3 * lsq.error + 1e-3
    fit = jm.fpd(fa, fa, 3, **kw)
    assert fit.value >= 0.0 and fit.value <= 3 * fit.error + 1e-3
    with pytest.raises(ValueError, match="extrapolation"):
        jm.fpd(fa, fa, 3, extrapolation="linear", **kw)


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
