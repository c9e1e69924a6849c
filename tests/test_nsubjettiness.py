"""N-subjettiness with exclusive-kT axes (showerforge.evaluation.jets.nsubjettiness).

Known answers: hand-computed tau_1 of two particles, tau_N = 0 for jets with at most N
particles, prong counting, invariances, a pure-Python exclusive-kT reference, the k-means lower
bound for beta = 2, and FastJet contrib's Nsubjettiness (KT_Axes, NormalizedMeasure).
"""

from __future__ import annotations

import itertools
import math
import sys
import warnings

import numpy as np
import pytest

from showerforge.errors import UserError
from showerforge.evaluation.jets.nsubjettiness import nsubjettiness, tau_ratios

R0 = 0.8


def _jets(*jets: list[tuple[float, float, float]], n: int = 8, dtype: type = np.float32) -> np.ndarray:
    """JetNet-style ``(N, n, 4)`` array from per-jet lists of (eta_rel, phi_rel, pt_rel)."""
    out: np.ndarray = np.zeros((len(jets), n, 4), dtype=dtype)
    for i, parts in enumerate(jets):
        for k, (eta, phi, pt) in enumerate(parts):
            out[i, k] = (eta, phi, pt, 1.0)
    return out


def _random_jets(rng: np.random.Generator, n_jets: int, n: int, min_count: int = 0) -> np.ndarray:
    """Float64 jets near (0, 0) with random multiplicities in ``[min_count, n]``; padding after."""
    out = np.zeros((n_jets, n, 4))
    for i, c in enumerate(rng.integers(min_count, n + 1, n_jets)):
        pt = rng.exponential(1.0, c)
        out[i, :c] = np.column_stack([rng.normal(0, 0.2, c), rng.normal(0, 0.2, c), pt / pt.sum(), np.ones(c)])
    return out


def _prong_jet(rng: np.random.Generator, centres: list[tuple[float, float]], per: int, spread: float) -> np.ndarray:
    """``per`` equal-pT particles scattered by ``spread`` around each (eta, phi) centre."""
    parts = [(e + rng.normal(0, spread), p + rng.normal(0, spread), 1.0) for e, p in centres for _ in range(per)]
    return _jets(parts, n=30)[0]


def _wrap(phi: np.ndarray) -> np.ndarray:
    return np.pi - np.remainder(np.pi - phi, 2 * np.pi)  # into (-pi, pi]


# ---------------------------------------------------------------- pure-Python references


def _parts(jet: np.ndarray) -> list[tuple[float, float, float]]:
    """Real particles of one ``(n, 4)`` jet as (eta, phi, pt) tuples."""
    return [(float(r[0]), float(r[1]), float(r[2])) for r in jet if r[3] > 0]


def _four_vector(eta: float, phi: float, pt: float) -> list[float]:
    return [pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta), pt * math.cosh(eta)]


def _rap_phi(v: list[float]) -> tuple[float, float]:
    px, py, pz, e = v
    return 0.5 * math.log((e + pz) / (e - pz)), math.atan2(py, px)


def _delta_r2(a: tuple[float, float], b: tuple[float, float]) -> float:
    dphi = math.remainder(a[1] - b[1], 2 * math.pi)
    return (a[0] - b[0]) ** 2 + dphi**2


def _kt_distance(vi: list[float], vj: list[float]) -> float:
    """kT distance min(pT_i^2, pT_j^2) dR_ij^2 (R = 1 scale; only the ordering matters)."""
    pt2 = min(vi[0] ** 2 + vi[1] ** 2, vj[0] ** 2 + vj[1] ** 2)
    return pt2 * _delta_r2(_rap_phi(vi), _rap_phi(vj))


def _kt_axes(parts: list[tuple[float, float, float]], n_axes: int) -> list[tuple[float, float]]:
    """Exclusive kT: merge the pair with the smallest min(pT_i^2, pT_j^2) dR_ij^2 (E-scheme)."""
    vecs = [_four_vector(*p) for p in parts]
    while len(vecs) > n_axes:
        pairs = itertools.combinations(range(len(vecs)), 2)
        i, j = min(pairs, key=lambda ij: _kt_distance(vecs[ij[0]], vecs[ij[1]]))  # noqa: B023 (used at once)
        merged = [a + b for a, b in zip(vecs[i], vecs[j])]
        vecs = [v for k, v in enumerate(vecs) if k not in (i, j)] + [merged]
    return [_rap_phi(v) for v in vecs]


def _tau_reference(parts: list[tuple[float, float, float]], n_axes: int, beta: float) -> float:
    if len(parts) <= n_axes:
        return 0.0
    axes = _kt_axes(parts, n_axes)
    num = sum(pt * min(_delta_r2((eta, phi), a) for a in axes) ** (beta / 2) for eta, phi, pt in parts)
    return num / (sum(pt for _, _, pt in parts) * R0**beta)


def _kmeans_minimum(parts: list[tuple[float, float, float]], n_groups: int) -> float:
    """min over partitions into n_groups of sum_k pT_k |x_k - pT-weighted group centroid|^2."""
    x = np.array([(e, p) for e, p, _ in parts])
    w = np.array([pt for _, _, pt in parts])
    best = math.inf
    for labels in itertools.product(range(n_groups), repeat=len(parts)):
        lab = np.array(labels)
        if len(set(labels)) < n_groups:
            continue
        total = 0.0
        for g in range(n_groups):
            xs, ws = x[lab == g], w[lab == g]
            centre = (ws[:, None] * xs).sum(0) / ws.sum()
            total += float((ws * ((xs - centre) ** 2).sum(1)).sum())
        best = min(best, total)
    return best


# ---------------------------------------------------------------- known answers


def test_one_and_two_particles_closed_form() -> None:
    one = [(0.125, -0.25, 1.0)]
    two = [(0.25, -0.125, 0.75), (-0.5, 0.375, 0.25)]
    taus = nsubjettiness(_jets(one, two), n_max=3)
    assert taus.shape == (2, 3) and taus.dtype == np.float64
    np.testing.assert_array_equal(taus[0], 0.0)
    np.testing.assert_array_equal(taus[1, 1:], 0.0)
    # tau_1 by hand: the axis is the E-scheme sum of the two massless four-vectors.
    (e1, f1, pt1), (e2, f2, pt2) = two
    px = pt1 * math.cos(f1) + pt2 * math.cos(f2)
    py = pt1 * math.sin(f1) + pt2 * math.sin(f2)
    pz = pt1 * math.sinh(e1) + pt2 * math.sinh(e2)
    energy = pt1 * math.cosh(e1) + pt2 * math.cosh(e2)
    y_axis, phi_axis = 0.5 * math.log((energy + pz) / (energy - pz)), math.atan2(py, px)
    dr1 = math.hypot(e1 - y_axis, f1 - phi_axis)
    dr2 = math.hypot(e2 - y_axis, f2 - phi_axis)
    for beta in (1.0, 2.0):
        expected = (pt1 * dr1**beta + pt2 * dr2**beta) / ((pt1 + pt2) * R0**beta)
        got = nsubjettiness(_jets(two), n_max=1, beta=beta, radius=R0)
        assert got.shape == (1, 1)
        assert got[0, 0] == pytest.approx(expected, rel=1e-12)
    assert taus[1, 0] == pytest.approx((pt1 * dr1 + pt2 * dr2) / R0, rel=1e-12)


def test_empty_jet_and_radius_scaling() -> None:
    jets = _jets([], [(0.1, 0.0, 0.5), (-0.1, 0.2, 0.3), (0.0, -0.2, 0.2)])
    taus = nsubjettiness(jets, n_max=4)
    np.testing.assert_array_equal(taus[0], 0.0)
    assert taus[1, 0] > taus[1, 1] > 0 and taus[1, 2] == taus[1, 3] == 0
    # d0 = sum pT R0^beta: halving R0 doubles tau for beta = 1 and quadruples it for beta = 2.
    for beta in (1.0, 2.0):
        a = nsubjettiness(jets, n_max=2, beta=beta, radius=0.8)
        b = nsubjettiness(jets, n_max=2, beta=beta, radius=0.4)
        np.testing.assert_allclose(b, a * 2**beta, rtol=1e-12)


def test_prong_counting() -> None:
    rng = np.random.default_rng(7)
    one = _prong_jet(rng, [(0.0, 0.0)], per=18, spread=0.1)
    two = _prong_jet(rng, [(-0.2, 0.0), (0.2, 0.05)], per=9, spread=0.01)
    three = _prong_jet(rng, [(-0.2, -0.1), (0.2, -0.1), (0.0, 0.25)], per=6, spread=0.01)
    taus = nsubjettiness(np.stack([one, two, three]))
    ratios = tau_ratios(taus)
    assert taus[2, 2] < 0.1 * taus[2, 1]  # three narrow prongs: tau_3 << tau_2
    assert ratios["tau32"][2] < 0.15
    assert ratios["tau21"][1] < 0.15  # two prongs
    assert ratios["tau21"][0] > 0.5  # one diffuse prong
    assert ratios["tau21"][2] > 0.4  # tau21 does not mistake three prongs for two


# ---------------------------------------------------------------- invariances


def test_permutation_and_padding_invariance() -> None:
    rng = np.random.default_rng(3)
    jets = _random_jets(rng, 40, 12)
    base = nsubjettiness(jets, n_max=3)
    perm = np.argsort(rng.random(jets.shape[:2]), axis=1)  # shuffles padding in between too
    shuffled = np.take_along_axis(jets, perm[:, :, None], axis=1)
    padded = np.concatenate([np.zeros((40, 5, 4)), jets, np.zeros((40, 7, 4))], axis=1)
    np.testing.assert_allclose(nsubjettiness(shuffled, n_max=3), base, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(nsubjettiness(padded, n_max=3), base, rtol=1e-10, atol=1e-14)
    # mask 0 rows with non-zero features are padding as well
    junk = padded.copy()
    junk[:, :5, :3] = rng.normal(0, 0.3, (40, 5, 3))
    np.testing.assert_allclose(nsubjettiness(junk, n_max=3), base, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("shift", [np.pi - 0.05, -np.pi + 0.1, 2.0])
def test_phi_rotation_invariance(shift: float) -> None:
    jets = _random_jets(np.random.default_rng(4), 40, 12)
    real = jets[..., 3] > 0
    rotated = jets.copy()
    rotated[..., 1] = np.where(real, _wrap(jets[..., 1] + shift), 0.0)
    if shift > 3:  # the jets straddle phi = +-pi
        assert (rotated[..., 1] > 3).any() and (rotated[..., 1] < -3).any()
    for beta in (1.0, 2.0):
        np.testing.assert_allclose(
            nsubjettiness(rotated, beta=beta), nsubjettiness(jets, beta=beta), rtol=1e-9, atol=1e-14
        )


def test_float32_jetnet_input() -> None:
    jets = _random_jets(np.random.default_rng(5), 20, 10)
    f32 = nsubjettiness(jets.astype(np.float32))
    np.testing.assert_allclose(f32, nsubjettiness(jets.astype(np.float32).astype(np.float64)), rtol=0, atol=0)
    np.testing.assert_allclose(f32, nsubjettiness(jets), rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- independent checks


def test_pure_python_exclusive_kt() -> None:
    rng = np.random.default_rng(11)
    jets = _random_jets(rng, 30, 6, min_count=4)
    # beta < 1 magnifies rounding: a particle that is its own axis sits ~1e-16 rad from it and
    # contributes pT * (1e-16)^beta, 1e-8 for beta = 0.5, differently rounded in each code.
    for beta, rtol in ((1.0, 1e-10), (2.0, 1e-10), (0.5, 1e-6)):
        taus = nsubjettiness(jets, n_max=3, beta=beta)
        for jet, tau in zip(jets, taus):
            parts = _parts(jet)
            expected = [_tau_reference(parts, n, beta) for n in (1, 2, 3)]
            np.testing.assert_allclose(tau, expected, rtol=rtol, atol=1e-15)


def test_kmeans_lower_bound_beta2() -> None:
    # For beta = 2 the best axes of a partition are the pT-weighted centroids, so no choice of
    # N axes (kT ones included) beats the minimum over partitions into N groups.
    jets = _random_jets(np.random.default_rng(12), 12, 5, min_count=5)
    taus = nsubjettiness(jets, n_max=3, beta=2.0)
    for jet, tau in zip(jets, taus):
        parts = _parts(jet)
        d0 = sum(p[2] for p in parts) * R0**2
        for n in (1, 2, 3):
            bound = _kmeans_minimum(parts, n) / d0
            assert tau[n - 1] >= bound - 1e-12
            if n == 1:  # one group: the E-scheme axis is near, not at, the pT centroid
                assert tau[0] == pytest.approx(bound, rel=0.05)


def test_fastjet_contrib_nsubjettiness() -> None:
    fastjet = pytest.importorskip("fastjet")
    ak = pytest.importorskip("awkward")
    jets = _random_jets(np.random.default_rng(13), 60, 20, min_count=4)
    real = jets[..., 3] > 0
    eta, phi, pt = jets[..., 0][real], jets[..., 1][real], jets[..., 2][real]
    vectors = ak.zip(
        {"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta), "E": pt * np.cosh(eta)},
        with_name="Momentum4D",
    )
    jet_def = fastjet.JetDefinition(fastjet.kt_algorithm, fastjet.JetDefinition.max_allowable_R, fastjet.E_scheme)
    sequence = fastjet.ClusterSequence(ak.unflatten(vectors, real.sum(1)), jet_def)
    for beta in (1.0, 2.0):
        formatwarning = warnings.formatwarning
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            contrib = sequence.njettiness(
                measure_definition="NormalizedMeasure", axes_definition="KT_Axes", njets=[1, 2, 3], beta=beta, R0=R0
            )
        warnings.formatwarning = formatwarning
        expected = np.asarray(contrib, dtype=np.float64).reshape(-1, 3)
        np.testing.assert_allclose(nsubjettiness(jets, beta=beta, radius=R0), expected, rtol=1e-10, atol=1e-14)


# ---------------------------------------------------------------- ratios and errors


def test_tau_ratios_zero_denominator() -> None:
    taus = np.array([[0.5, 0.25, 0.05], [0.0, 0.0, 0.0], [0.2, 0.0, 0.0], [0.4, 0.1, 0.0]])
    ratios = tau_ratios(taus)
    assert set(ratios) == {"tau21", "tau32"}
    np.testing.assert_allclose(ratios["tau21"], [0.5, 0.0, 0.0, 0.25])
    np.testing.assert_allclose(ratios["tau32"], [0.2, 0.0, 0.0, 0.0])
    assert set(tau_ratios(np.ones((2, 4)))) == {"tau21", "tau32", "tau43"}
    assert set(tau_ratios(np.ones((2, 2)))) == {"tau21"}
    with pytest.raises(UserError, match="tau_ratios"):
        tau_ratios(np.ones((3, 1)))


def test_bad_arguments() -> None:
    jets = _jets([(0.0, 0.0, 1.0)])
    for kwargs in ({"n_max": 0}, {"n_max": True}, {"n_max": 2.0}, {"beta": 0.0}, {"radius": -1.0}, {"beta": np.nan}):
        with pytest.raises(UserError, match="nsubjettiness"):
            nsubjettiness(jets, **kwargs)
    with pytest.raises(UserError, match="shape"):
        nsubjettiness(np.zeros((3, 4)))
    bad = _jets([(0.0, 0.0, 1.0), (0.1, 0.1, 1.0)], dtype=np.float64)
    bad[0, 1, 0] = np.inf
    with pytest.raises(UserError, match="finite"):
        nsubjettiness(bad)


def test_missing_fastjet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastjet", None)
    with pytest.raises(UserError, match=r"showerforge\[jets\]"):
        nsubjettiness(_jets([(0.0, 0.0, 1.0)]))
