"""Generative-model metrics for jets as particle clouds (JetNet conventions).

Implements, from their published definitions, the metrics recommended by Kansal et al.,
"Evaluating generative models in high energy physics", arXiv:2211.10295 (PRD 107, 076017),
with the conventions of the reference implementation documented by the ``jetnet`` package:

* :func:`w1m`: Wasserstein-1 distance between relative jet masses :math:`m_J / p_{T,J}`
  computed from the (massless) constituents;
* :func:`w1p`: W1 per particle feature (:math:`\\eta^{rel}, \\phi^{rel}, p_T^{rel}`) over real
  (unmasked) particles;
* :func:`w1efp`: W1 per energy-flow polynomial (EFP), averaged;
* :func:`fpd`: Fréchet physics distance, the Fréchet distance between Gaussian fits of EFP
  features, extrapolated to infinite sample size (value at :math:`1/N \\to 0` of a linear fit);
* :func:`kpd`: kernel physics distance, the unbiased quadratic-time estimator of MMD² with the
  polynomial kernel :math:`k(x, y) = (x \\cdot y / d + 1)^4`: degree 4 as in the reference
  implementation for arXiv:2211.10295 (``jetnet.evaluation.kpd``); ``degree=3`` gives the KID
  kernel of Bińkowski et al., arXiv:1801.01401.

Bootstrap uncertainties: the W1 metrics draw ``num_batches`` random subsamples of
``num_eval_samples`` jets *with replacement* from each sample and report the mean and the
(population, ddof = 0) standard deviation over subsamples; KPD reports the median over batches
and half the 16-84 % interpercentile range; FPD reports the intercept and its standard error
from the linear fit. Every function takes an explicit ``seed`` (an ``int`` or a
``numpy.random.Generator``); nothing uses global random state.

Energy-flow polynomials (Komiske, Metodiev, Thaler, arXiv:1712.07124), "hadronic" measure with
:math:`\\beta = 1`, :math:`\\kappa = 1`: for a multigraph :math:`G` with vertices :math:`1..n` and
edge multiset :math:`E`,

.. math:: \\mathrm{EFP}_G = \\sum_{i_1 \\ldots i_n} z_{i_1} \\cdots z_{i_n}
          \\prod_{(k, l) \\in E} \\theta_{i_k i_l},
          \\qquad \\theta_{ij} = \\sqrt{\\Delta\\eta_{ij}^2 + \\Delta\\phi_{ij}^2},

with unrestricted sums (so a single edge between two particles gives
:math:`2 z_1 z_2 \\theta_{12}`), massless constituents (rapidity = pseudorapidity) and
:math:`\\Delta\\phi` taken modulo :math:`2\\pi` into :math:`[0, \\pi]` (as energyflow does).

EFP convention. By default (``normed=False``) the energies are the stored :math:`p_T^{rel}` of
the real particles, **not** divided by their sum: :math:`z_i = p_{T,i}^{rel}`. This is what
jetnet (``jetnet.utils.efps``, used by ``jetnet.evaluation.w1efp`` and
``get_fpd_kpd_jet_features``) computes, with
``energyflow.EFPSet(*efpset_args, measure="hadr", beta=1, normed=None, coords="ptyphim")`` on
``[pT_rel, eta_rel, phi_rel]``, and what the published W1EFP / FPD / KPD numbers of
arXiv:2211.10295 were made with. An EFP with n vertices then scales as
:math:`(\\sum_i p_{T,i}^{rel})^n`, and that sum is not 1 (the scalar sum of constituent
:math:`p_T` exceeds the jet :math:`p_T`, and only the leading constituents are stored); the empty
graph is :math:`\\sum_i p_{T,i}^{rel}` rather than 1. ``normed=True`` gives
the textbook IRC-safe normalisation :math:`z_i = p_{T,i} / \\sum_j p_{T,j}` instead (numbers then
differ from jetnet's by factors of order 1; not comparable with published tables). Two
deliberate differences from jetnet, invisible on JetNet-format files (padding all zero,
:math:`p_T \\ge 0`): padded particles are excluded through the mask column, which jetnet ignores
for EFPs, and negative :math:`p_T^{rel}` count as 0, where energyflow would use them as signed
weights. ``docs/benchmarks.md`` ("Parity with jetnet (jets)") compares every metric with jetnet
0.2.5 on the same arrays and draws.

We enumerate every loopless multigraph without isolated vertices with :math:`d \\le 4` edges: the
empty graph, 1 + 2 + 5 + 12 connected graphs for d = 1..4, and every product of connected ones
(disconnected graphs are products of their components): 1 + 1 + 3 + 8 + 23 = 36 EFPs, the set
of ``energyflow.EFPSet(("d<=", 4))`` used by jetnet for FPD/KPD (our ordering differs; the
metrics do not depend on it). :func:`w1efp` uses by default jetnet's default subset
(``("n==", 4), ("d==", 4), ("p==", 1)``): the 5 connected graphs with n = 4 vertices and d = 4
edges. Connected graphs are evaluated by eliminating vertices with at most two distinct
neighbours (matrix-vector and batched matrix-matrix products), so the cost is :math:`O(N^3)` per
jet at worst.

FPD extrapolation: :func:`fpd` fits ``FPD(N) = c + k / N`` as jetnet does by default
(``extrapolation="jetnet"``: ``scipy.optimize.curve_fit`` with bounds ``c, k >= 0``);
``extrapolation="lsq"`` gives the exact least-squares line
(:func:`showerforge.evaluation.distances.fpd`).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from itertools import combinations, combinations_with_replacement, permutations
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from showerforge.data.jet_preprocess import relative_jet_mass as _relative_jet_mass
from showerforge.errors import UserError
from showerforge.evaluation import distances as _distances
from showerforge.evaluation.distances import MetricResult, as_rng, frechet_distance, mmd2_unbiased
from showerforge.evaluation.metrics import wasserstein1_batches
from showerforge.evaluation.plots import plot_ratio

__all__ = [
    "EFPGraph",
    "MetricResult",
    "MultiMetricResult",
    "RECOMMENDED_N_JETS",
    "efp_graphs",
    "efps",
    "evaluate_jets",
    "fpd",
    "fpd_kpd_features",
    "frechet_distance",
    "relative_jet_mass",
    "kpd",
    "mmd2_unbiased",
    "plot_jet_mass",
    "plot_particle_features",
    "w1efp",
    "w1m",
    "w1p",
]

RECOMMENDED_N_JETS = 50_000
"""Sample size recommended by arXiv:2211.10295 / jetnet for W1, FPD and KPD."""

PARTICLE_FEATURE_NAMES = ("eta_rel", "phi_rel", "pt_rel")


class MultiMetricResult(NamedTuple):
    """Per-component results (per feature or per EFP) and their average.

    ``mean.error`` is the spread over bootstrap batches of the batch-wise average, not the
    average of the per-component errors.
    """

    per_component: tuple[MetricResult, ...]
    mean: MetricResult


_rng = as_rng


def _warn_small(n: int, recommended: int, what: str) -> None:
    """UserWarning when a sample is smaller than recommended."""
    if n < recommended:
        warnings.warn(
            f"{what}: sample of {n} jets is smaller than the recommended {recommended}; "
            "values and uncertainties are less reliable",
            UserWarning,
            stacklevel=3,
        )


def _particles(jets: Any, name: str) -> np.ndarray:
    """``(N, n, F)`` float64 particle array (F >= 3) from an array, JetBatch or JetData."""
    arr = np.asarray(getattr(jets, "particle_features", jets), dtype=np.float64)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise UserError(f"{name}: expected particle features of shape (N, n, >=3), got {arr.shape}")
    if arr.shape[0] == 0:
        raise UserError(f"{name}: empty sample; expected at least one jet")
    return arr


def _particle_mask(p: np.ndarray) -> np.ndarray:
    """Real particles: mask column (if any) and not all-zero in (eta, phi, pT)."""
    real = np.linalg.norm(p[..., :3], axis=-1) > 0
    if p.shape[-1] >= 4:
        real &= p[..., 3] > 0.5
    return real


def relative_jet_mass(jets: Any) -> np.ndarray:
    """Relative jet mass :math:`m_J / p_{T,J}` (dimensionless) of particle features ``(N, n, >=3)``
    (or a JetBatch / JetData); padded particles are ignored
    (:func:`showerforge.data.jet_preprocess.relative_jet_mass`)."""
    p = _particles(jets, "jets")
    return _relative_jet_mass(p, _particle_mask(p))


def _w1_bootstrap(
    x: Any,
    y: Any,
    draw: Any,
    rng: np.random.Generator,
    num_eval_samples: int,
    num_batches: int,
) -> MultiMetricResult:
    """jetnet's W1 convention (:func:`~showerforge.evaluation.metrics.wasserstein1_batches`) as results."""
    w = wasserstein1_batches(x, y, draw, rng, num_eval_samples=num_eval_samples, num_batches=num_batches)
    per = tuple(MetricResult(float(m), float(s)) for m, s in zip(w.mean(0), w.std(0), strict=True))
    avg = w.mean(1)
    return MultiMetricResult(per, MetricResult(float(avg.mean()), float(avg.std())))


def w1m(
    jets1: Any,
    jets2: Any,
    seed: int | np.random.Generator,
    num_eval_samples: int = 50_000,
    num_batches: int = 5,
) -> MetricResult:
    """W1 distance between relative jet-mass distributions, bootstrapped.

    Args:
        jets1: Particle features ``(N1, n, >=3)`` (or JetBatch / JetData), or a 1-D array of
            precomputed jet masses.
        jets2: Same for the second sample.
        seed: Random seed or Generator for the subsampling.
        num_eval_samples: Jets drawn (with replacement) per sample and batch.
        num_batches: Number of bootstrap batches.

    Returns:
        Mean and standard deviation of W1 over the batches (units of the mass: relative mass
        :math:`m/p_T` when computed from particles).
    """
    m1, m2 = (_masses(j, n) for j, n in ((jets1, "jets1"), (jets2, "jets2")))
    _warn_small(min(len(m1), len(m2)), RECOMMENDED_N_JETS, "w1m")
    res = _w1_bootstrap(m1[:, None], m2[:, None], lambda a, i: a[i], _rng(seed), num_eval_samples, num_batches)
    return res.per_component[0]


def _masses(jets: Any, name: str) -> np.ndarray:
    """1-D masses: given directly or computed with :func:`relative_jet_mass`."""
    arr = getattr(jets, "particle_features", jets)
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 1:
        if arr.size == 0:
            raise UserError(f"{name}: empty sample; expected at least one jet mass")
        return arr
    return relative_jet_mass(arr)


def w1p(
    jets1: Any,
    jets2: Any,
    seed: int | np.random.Generator,
    num_eval_samples: int = 50_000,
    num_batches: int = 5,
) -> MultiMetricResult:
    """W1 per particle feature (eta_rel, phi_rel, pt_rel) over real particles, bootstrapped.

    Jets (not particles) are subsampled; all real particles of the drawn jets enter. Padding is
    excluded through the mask column (feature 3, if present) and all-zero particles.

    Args:
        jets1: Particle features ``(N1, n, >=3)`` or a JetBatch / JetData.
        jets2: Same for the second sample.
        seed: Random seed or Generator.
        num_eval_samples: Jets drawn (with replacement) per sample and batch.
        num_batches: Number of bootstrap batches.

    Returns:
        Per-feature results (eta_rel, phi_rel, pt_rel) and their average.
    """
    p1, p2 = _particles(jets1, "jets1"), _particles(jets2, "jets2")
    _warn_small(min(len(p1), len(p2)), RECOMMENDED_N_JETS, "w1p")
    m1, m2 = _particle_mask(p1), _particle_mask(p2)
    x = (p1[..., :3], m1)
    y = (p2[..., :3], m2)

    class _Jets:  # indexable pair (features, mask) with len() = number of jets
        def __init__(self, pair: tuple[np.ndarray, np.ndarray]) -> None:
            self.f, self.m = pair

        def __len__(self) -> int:
            return len(self.f)

    return _w1_bootstrap(_Jets(x), _Jets(y), lambda j, i: j.f[i][j.m[i]], _rng(seed), num_eval_samples, num_batches)


def w1efp(
    jets1: Any,
    jets2: Any,
    seed: int | np.random.Generator,
    efp_set: str = "n=4,d=4,connected",
    num_eval_samples: int = 50_000,
    num_batches: int = 5,
    normed: bool = False,
) -> MultiMetricResult:
    """W1 per energy-flow polynomial, bootstrapped, and the average over EFPs.

    Same bootstrap as ``jetnet.evaluation.w1efp`` (and, by default, the same EFPs: see the
    module docstring): with a ``numpy.random.default_rng(s)`` in place of jetnet's module-level
    generator, both draw the same subsamples.

    Args:
        jets1: Particle features ``(N1, n, >=3)`` or JetBatch / JetData, or a precomputed
            ``(N1, k)`` EFP array.
        jets2: Same for the second sample.
        seed: Random seed or Generator.
        efp_set: ``"n=4,d=4,connected"`` (jetnet's default: the 5 connected graphs with 4
            vertices and 4 edges) or ``"d<=4"`` (all 35 non-trivial graphs with d <= 4).
        num_eval_samples: Jets drawn (with replacement) per sample and batch.
        num_batches: Number of bootstrap batches.
        normed: EFP energies ``z = pT / sum pT`` instead of jetnet's stored ``pT_rel``
            (:func:`efps`); ignored for precomputed EFPs.

    Returns:
        Per-EFP results (in :func:`efp_graphs` order of the selection) and their average, in
        EFP units (:math:`(p_T^{rel})^n` rad^d for a graph with n vertices and d edges).
    """
    graphs = _efp_selection(efp_set)
    e1, e2 = (_efp_array(j, graphs, n, normed) for j, n in ((jets1, "jets1"), (jets2, "jets2")))
    _warn_small(min(len(e1), len(e2)), RECOMMENDED_N_JETS, "w1efp")
    return _w1_bootstrap(e1, e2, lambda a, i: a[i], _rng(seed), num_eval_samples, num_batches)


def _efp_selection(efp_set: str) -> list[EFPGraph]:
    """Named EFP subsets."""
    if efp_set == "n=4,d=4,connected":
        return [g for g in efp_graphs(4) if g.connected and g.degree == 4 and g.n_vertices == 4]
    if efp_set == "d<=4":
        return [g for g in efp_graphs(4) if g.degree > 0]
    raise UserError(f"unknown efp_set {efp_set!r}; expected 'n=4,d=4,connected' or 'd<=4'")


def _efp_array(jets: Any, graphs: list[EFPGraph], name: str, normed: bool) -> np.ndarray:
    """EFPs of particle clouds, or a precomputed 2-D array passed through."""
    arr = np.asarray(getattr(jets, "particle_features", jets), dtype=np.float64)
    if arr.ndim == 2:
        if arr.shape[1] != len(graphs):
            raise UserError(f"{name}: expected {len(graphs)} precomputed EFPs, got {arr.shape[1]}")
        return arr
    return efps(_particles(arr, name), graphs, normed=normed)


# --------------------------------------------------------------------------- EFP graphs


@dataclass(frozen=True)
class EFPGraph:
    """A loopless multigraph defining one energy-flow polynomial.

    Attributes:
        components: Connected components, each a sorted tuple of edges ``(a, b)``, ``a < b``,
            with repeated edges for multiplicities (vertices numbered per component).
        degree: Total number of edges d.
        n_vertices: Total number of vertices n.
        connected: True for one component (the empty graph has none and is not connected).
    """

    components: tuple[tuple[tuple[int, int], ...], ...]

    @property
    def degree(self) -> int:
        """Number of edges d."""
        return sum(len(c) for c in self.components)

    @property
    def n_vertices(self) -> int:
        """Number of vertices n (1 for the empty graph, whose EFP is sum_i z_i = 1)."""
        return max(1, sum(len({v for e in c for v in e}) for c in self.components))

    @property
    def connected(self) -> bool:
        """Exactly one connected component."""
        return len(self.components) == 1

    @property
    def name(self) -> str:
        """Readable label, e.g. ``"d4n4:0-1,1-2,2-3,0-3"``; products joined with ``*``."""
        if not self.components:
            return "d0n1:empty"
        parts = [",".join(f"{a}-{b}" for a, b in c) for c in self.components]
        return f"d{self.degree}n{self.n_vertices}:" + "*".join(parts)


def _is_connected(edges: Sequence[tuple[int, int]], n: int) -> bool:
    """Whether the graph on vertices 0..n-1 is connected."""
    adj: dict[int, set[int]] = {v: set() for v in range(n)}
    for a, b in edges:
        adj[a].add(b)
        adj[b].add(a)
    seen, stack = {0}, [0]
    while stack:
        for w in adj[stack.pop()] - seen:
            seen.add(w)
            stack.append(w)
    return len(seen) == n


def _canonical(edges: Sequence[tuple[int, int]], n: int) -> tuple[tuple[int, int], ...]:
    """Canonical (lexicographically smallest) relabelling of a small multigraph."""
    best = None
    for perm in permutations(range(n)):
        form = tuple(sorted(tuple(sorted((perm[a], perm[b]))) for a, b in edges))
        if best is None or form < best:
            best = form
    assert best is not None
    return best  # type: ignore[return-value]


@cache
def _connected_graphs(d: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """All connected loopless multigraphs with exactly d >= 1 edges, up to isomorphism."""
    found: set[tuple[tuple[int, int], ...]] = set()
    for n in range(2, d + 2):
        pairs = list(combinations(range(n), 2))
        for edges in combinations_with_replacement(pairs, d):
            if len({v for e in edges for v in e}) == n and _is_connected(edges, n):
                found.add(_canonical(edges, n))
    return tuple(sorted(found, key=lambda g: (len({v for e in g for v in e}), g)))


@cache
def efp_graphs(max_degree: int = 4) -> tuple[EFPGraph, ...]:
    """All multigraph EFPs with ``d <= max_degree`` edges (disconnected ones as products).

    Ordered by degree; within a degree, connected graphs first (by vertex count), then products.
    For ``max_degree = 4`` this gives 36 graphs (counts 1, 1, 3, 8, 23 for d = 0..4).

    Args:
        max_degree: Maximum number of edges d (0..6 is practical).

    Returns:
        Tuple of :class:`EFPGraph`, the empty graph first.
    """
    out = [EFPGraph(())]
    for d in range(1, max_degree + 1):
        out += [EFPGraph((g,)) for g in _connected_graphs(d)]
        out += [EFPGraph(p) for p in _products(d)]
    return tuple(out)


def _products(d: int) -> list[tuple[tuple[tuple[int, int], ...], ...]]:
    """Multisets of >= 2 connected graphs whose degrees add up to d (canonical order)."""
    pool = [g for k in range(1, d) for g in _connected_graphs(k)]
    out = []
    for r in range(2, d + 1):
        for combo in combinations_with_replacement(range(len(pool)), r):
            if sum(len(pool[i]) for i in combo) == d:
                out.append(tuple(pool[i] for i in combo))
    return out


def efps(
    jets: Any,
    graphs: Sequence[EFPGraph] | str = "d<=4",
    chunk_elements: int = 4_000_000,
    normed: bool = False,
) -> np.ndarray:
    """Energy-flow polynomials (hadronic measure, beta = 1, kappa = 1) of particle clouds.

    By default jetnet's convention, ``energyflow.EFPSet(..., measure="hadr", beta=1,
    normed=None, coords="ptyphim")`` on the stored ``pT_rel``: ``z_i = pT_rel_i``, not divided
    by the jet's sum (module docstring).

    Args:
        jets: Particle features ``(N, n, >=3)`` (eta_rel, phi_rel, pt_rel[, mask]) or a
            JetBatch / JetData. Padding (mask 0 or all-zero rows) gets z = 0; negative pt_rel
            count as 0.
        graphs: EFP graphs, or ``"d<=4"`` for all 36 from :func:`efp_graphs` (incl. the
            constant empty graph), or a named set accepted by :func:`w1efp`.
        chunk_elements: Jets are processed in chunks of about ``chunk_elements / n**2`` to
            bound memory (each chunk holds a few ``(chunk, n, n)`` float64 arrays).
        normed: ``z_i = pT_i / sum_j pT_j`` (IRC-safe textbook normalisation; each EFP is then
            invariant under a common rescaling of pT) instead of the stored ``pT_rel``.

    Returns:
        ``(N, len(graphs))`` float64 EFP values: :math:`(p_T^{rel})^n` rad^d for a graph with n
        vertices and d edges (dimensionless when ``normed``).
    """
    if isinstance(graphs, str):
        graphs = list(efp_graphs(4)) if graphs == "d<=4" else _efp_selection(graphs)
    p = _particles(jets, "jets")
    n = p.shape[1]
    z = np.where(_particle_mask(p), np.clip(p[..., 2], 0.0, None), 0.0)
    if normed:
        total = z.sum(1, keepdims=True)
        z = np.divide(z, total, out=np.zeros_like(z), where=total > 0)
    chunk = max(1, chunk_elements // max(n * n, 1))
    out = np.empty((len(p), len(graphs)))
    max_mult = max((max(Counter(c).values()) for g in graphs for c in g.components), default=1)
    for s in range(0, len(p), chunk):
        out[s : s + chunk] = _efps_chunk(p[s : s + chunk], z[s : s + chunk], graphs, max_mult)
    return out


def _efps_chunk(p: np.ndarray, z: np.ndarray, graphs: Sequence[EFPGraph], max_mult: int) -> np.ndarray:
    """EFPs of one chunk: connected components evaluated once, products multiplied."""
    deta = p[:, :, None, 0] - p[:, None, :, 0]
    dphi = np.abs(np.remainder(p[:, :, None, 1] - p[:, None, :, 1] + np.pi, 2 * np.pi) - np.pi)
    theta = np.sqrt(deta**2 + dphi**2)
    powers = {1: theta}
    for m in range(2, max_mult + 1):
        powers[m] = powers[m - 1] * theta
    cache: dict[tuple[tuple[int, int], ...], np.ndarray] = {}
    cols = []
    for g in graphs:
        val = np.ones(len(p))
        for comp in g.components:
            if comp not in cache:
                cache[comp] = _eval_connected(comp, z, powers)
            val = val * cache[comp]
        if not g.components:
            val = z.sum(1)  # empty graph: sum_i z_i (1 when normed, 0 for an empty jet)
        cols.append(val)
    return np.stack(cols, axis=1)


def _eval_connected(edges: tuple[tuple[int, int], ...], z: np.ndarray, powers: dict[int, np.ndarray]) -> np.ndarray:
    """Sum over particle assignments of one connected multigraph, by vertex elimination.

    A vertex with one neighbour u is summed into u's vertex factor (matrix-vector product); a
    vertex with two neighbours u, w becomes a matrix factor between u and w
    (``A_uv diag(f_v) A_vw``, a batched matrix product). Graphs with <= 4 edges always have such
    a vertex.
    """
    vertices = sorted({v for e in edges for v in e})
    f = {v: z for v in vertices}
    mats: dict[tuple[int, int], np.ndarray] = {
        e: powers[m] for e, m in Counter(edges).items()
    }  # key (a, b) with a < b: rows index a, columns index b

    def get(u: int, v: int) -> np.ndarray:
        return mats[(u, v)] if u < v else np.swapaxes(mats[(v, u)], 1, 2)

    def put(u: int, w: int, m: np.ndarray) -> None:
        key, m = ((u, w), m) if u < w else ((w, u), np.swapaxes(m, 1, 2))
        mats[key] = mats[key] * m if key in mats else m

    alive = set(vertices)
    while len(alive) > 1:
        nbrs = {v: sorted({w for e in mats for w in e if v in e and w != v}) for v in alive}
        v = min(alive, key=lambda x: (len(nbrs[x]), x))
        nb = nbrs[v]
        if len(nb) == 1:
            (u,) = nb
            f[u] = f[u] * np.einsum("jab,jb->ja", get(u, v), f[v])
        elif len(nb) == 2:
            u, w = nb
            put(u, w, np.matmul(get(u, v) * f[v][:, None, :], get(v, w)))
        else:  # pragma: no cover - impossible for d <= 4 (K4 needs 6 edges)
            raise NotImplementedError(f"no vertex with <= 2 neighbours in {edges}")
        for u in nb:
            mats.pop((min(u, v), max(u, v)))
        alive.remove(v)
    (last,) = alive
    return f[last].sum(1)


def fpd_kpd_features(jets: Any, normed: bool = False) -> np.ndarray:
    """The 36 EFPs with d <= 4 recommended as FPD/KPD features (arXiv:2211.10295).

    The features of ``jetnet.evaluation.get_fpd_kpd_jet_features`` (``EFPSet(("d<=", 4))``, the
    empty graph, :math:`\\sum_i p_{T,i}^{rel}`, included), in :func:`efp_graphs`
    order.

    Args:
        jets: Particle features ``(N, n, >=3)`` or a JetBatch / JetData.
        normed: ``z = pT / sum pT`` instead of jetnet's stored ``pT_rel`` (:func:`efps`).

    Returns:
        ``(N, 36)`` float64.
    """
    return efps(jets, "d<=4", normed=normed)


# --------------------------------------------------------------------------- FPD / KPD


def fpd(real_features: Any, gen_features: Any, seed: int | np.random.Generator, **options: Any) -> MetricResult:
    """Fréchet physics distance of jet features (e.g. :func:`fpd_kpd_features`).

    :func:`showerforge.evaluation.distances.fpd` (same keywords; ``normalise`` stands for its
    ``normalise_features``) with a warning below the recommended 50,000 jets.
    """
    _warn_small(min(len(real_features), len(gen_features)), RECOMMENDED_N_JETS, "fpd")
    if "normalise" in options:
        options["normalise_features"] = options.pop("normalise")
    return _distances.fpd(real_features, gen_features, seed, **options)


def kpd(real_features: Any, gen_features: Any, seed: int | np.random.Generator, **options: Any) -> MetricResult:
    """Kernel physics distance of jet features (e.g. :func:`fpd_kpd_features`).

    :func:`showerforge.evaluation.distances.kpd` (same keywords; ``normalise`` stands for its
    ``normalise_features``) with a warning below the recommended 50,000 jets.
    """
    _warn_small(min(len(real_features), len(gen_features)), RECOMMENDED_N_JETS, "kpd")
    if "normalise" in options:
        options["normalise_features"] = options.pop("normalise")
    return _distances.kpd(real_features, gen_features, seed, **options)


# --------------------------------------------------------------------------- evaluation


def _result_dict(r: MetricResult) -> dict[str, float]:
    return {"value": float(r.value), "error": float(r.error)}


def _multi_dict(r: MultiMetricResult, names: Sequence[str]) -> dict[str, Any]:
    return {
        "mean": _result_dict(r.mean),
        "per_component": {n: _result_dict(c) for n, c in zip(names, r.per_component, strict=True)},
    }


def _all_metrics(
    real: np.ndarray,
    gen: np.ndarray,
    real_efp: np.ndarray,
    gen_efp: np.ndarray,
    rng: np.random.Generator,
    cfg: dict[str, int],
    extrapolation: str,
) -> dict[str, Any]:
    """W1M, W1P, W1EFP, FPD, KPD of ``gen`` against ``real`` (EFPs precomputed)."""
    w1_kw: dict[str, Any] = {"num_eval_samples": cfg["w1_samples"], "num_batches": cfg["w1_batches"]}
    sub = [i for i, g in enumerate(efp_graphs(4)) if g in _efp_selection("n=4,d=4,connected")]
    efp_names = [efp_graphs(4)[i].name for i in sub]
    return {
        "w1m": _result_dict(w1m(relative_jet_mass(real), relative_jet_mass(gen), rng, **w1_kw)),
        "w1p": _multi_dict(w1p(real, gen, rng, **w1_kw), PARTICLE_FEATURE_NAMES),
        "w1efp": _multi_dict(w1efp(real_efp[:, sub], gen_efp[:, sub], rng, **w1_kw), efp_names),
        "fpd": _result_dict(
            fpd(
                real_efp,
                gen_efp,
                rng,
                min_samples=cfg["fpd_min"],
                max_samples=cfg["fpd_max"],
                num_batches=cfg["fpd_batches"],
                extrapolation=extrapolation,
            )
        ),
        "kpd": _result_dict(kpd(real_efp, gen_efp, rng, num_batches=cfg["kpd_batches"], batch_size=cfg["kpd_size"])),
    }


def evaluate_jets(
    reference: Any,
    candidate: Any,
    seed: int | np.random.Generator,
    quick: bool = False,
    efp_normed: bool = False,
    fpd_extrapolation: str = "jetnet",
) -> dict[str, Any]:
    """All jet metrics for a candidate against the reference, next to truth-vs-truth.

    The reference is split at random into two halves A and B. ``"candidate"`` holds the metrics
    of the candidate against A, ``"truth"`` those of B against A: the floor a perfect surrogate
    reaches at this sample size (all settings identical for both).

    Args:
        reference: Reference particle features ``(N, n, >=3)`` or JetBatch / JetData (N >= 4).
        candidate: Candidate particle features ``(M, n', >=3)`` or JetBatch / JetData.
        seed: Random seed or Generator.
        quick: Smaller bootstrap sizes (5k jets for W1, FPD over 2k-5k, KPD batches of 1k)
            instead of the recommended ones (50k, 20k-50k, 5k).
        efp_normed: EFPs with ``z = pT / sum pT`` (:func:`efps`) instead of jetnet's stored
            ``pT_rel`` (the default, as the published numbers).
        fpd_extrapolation: ``"jetnet"`` (bounded ``curve_fit``, as jetnet) or ``"lsq"`` (exact
            least-squares line), see :func:`showerforge.evaluation.distances.fpd`.

    Returns:
        JSON-ready dict: ``{"candidate": {...}, "truth": {...}, "settings": {...}}`` where each
        metric entry is ``{"value", "error"}`` (W1P/W1EFP: ``"mean"`` and ``"per_component"``).
        W1M is in units of relative mass m/pT, W1P in the feature units, W1EFP in EFP units,
        FPD/KPD on EFPs divided by the reference's max |value| per EFP. ``"settings"`` records
        the sample sizes and conventions (``efp_normed``, ``efp_features``,
        ``fpd_extrapolation``, ...).
    """
    if fpd_extrapolation not in _distances.FPD_EXTRAPOLATIONS:
        raise UserError(
            f"unknown FPD extrapolation {fpd_extrapolation!r}; expected one of {_distances.FPD_EXTRAPOLATIONS}"
        )
    rng = _rng(seed)
    real = _particles(reference, "reference")
    gen = _particles(candidate, "candidate")
    if len(real) < 4:
        raise UserError(f"reference: need at least 4 jets to split in halves, got {len(real)}")
    cfg = (
        {
            "w1_samples": 5_000,
            "w1_batches": 5,
            "fpd_min": 2_000,
            "fpd_max": 5_000,
            "fpd_batches": 10,
            "kpd_batches": 10,
            "kpd_size": 1_000,
        }
        if quick
        else {
            "w1_samples": 50_000,
            "w1_batches": 5,
            "fpd_min": 20_000,
            "fpd_max": 50_000,
            "fpd_batches": 20,
            "kpd_batches": 10,
            "kpd_size": 5_000,
        }
    )
    half = len(real) // 2
    order = rng.permutation(len(real))
    a, b = real[order[:half]], real[order[half : 2 * half]]
    efp_a, efp_b, efp_gen = (fpd_kpd_features(x, normed=efp_normed) for x in (a, b, gen))
    with warnings.catch_warnings():  # warn once below, not once per metric
        warnings.simplefilter("ignore", UserWarning)
        cand = _all_metrics(a, gen, efp_a, efp_gen, rng, cfg, fpd_extrapolation)
        truth = _all_metrics(a, b, efp_a, efp_b, rng, cfg, fpd_extrapolation)
    smallest = min(half, len(gen))
    if smallest < RECOMMENDED_N_JETS:
        warnings.warn(
            f"evaluate_jets: {smallest} jets per compared sample (reference halves of {half}, "
            f"candidate {len(gen)}); {RECOMMENDED_N_JETS} are recommended",
            UserWarning,
            stacklevel=2,
        )
    return {
        "candidate": cand,
        "truth": truth,
        "settings": {
            **cfg,
            "quick": quick,
            "n_reference_half": half,
            "n_candidate": len(gen),
            "kpd_degree": 4,
            "kpd_error": "half 16-84% interpercentile range",
            "w1_error": "std over bootstrap batches",
            "fpd_error": "standard error of the 1/N fit intercept",
            "fpd_extrapolation": fpd_extrapolation,
            "w1m_units": "m/pT",
            "efp_normed": efp_normed,
            "efp_features": _efp_description(efp_normed),
            "w1efp_set": "n=4,d=4,connected",
        },
    }


def _efp_description(normed: bool) -> str:
    """The EFP convention in words, for the recorded settings."""
    energies = "z = pT/sum(pT) (normed)" if normed else "z = pT_rel as stored (jetnet: EFPSet normed=None)"
    return f"36 EFPs d<=4, hadr, beta=1, kappa=1, {energies}"


# --------------------------------------------------------------------------- plots


def _edges(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """Common bin edges from the 0.1-99.9 percentiles of both samples."""
    both = np.concatenate([a, b])
    lo, hi = np.percentile(both, [0.1, 99.9]) if both.size else (0.0, 1.0)
    return np.linspace(lo, hi if hi > lo else lo + 1.0, n + 1)


def plot_particle_features(
    reference: Any,
    candidate: Any,
    out_dir: str | Path,
    labels: tuple[str, str] = ("reference", "candidate"),
    bins: int = 50,
) -> list[Path]:
    """Histograms of eta_rel, phi_rel, pt_rel (real particles) with ratio panels, as PNGs.

    Args:
        reference: Particle features ``(N, n, >=3)`` or JetBatch / JetData.
        candidate: Same for the candidate.
        out_dir: Directory for ``particle_eta_rel.png``, ``particle_phi_rel.png``,
            ``particle_pt_rel.png`` (created if needed).
        labels: Legend labels.
        bins: Number of bins.

    Returns:
        Paths of the written PNG files.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    p1, p2 = _particles(reference, "reference"), _particles(candidate, "candidate")
    r1, r2 = p1[_particle_mask(p1)], p2[_particle_mask(p2)]
    paths = []
    for k, name in enumerate(PARTICLE_FEATURE_NAMES):
        edges = _edges(r1[:, k], r2[:, k], bins)
        paths.append(plot_ratio(out / f"particle_{name}.png", r1[:, k], r2[:, k], edges, xlabel=name, labels=labels))
    return paths


def plot_jet_mass(
    reference: Any,
    candidate: Any,
    path: str | Path,
    labels: tuple[str, str] = ("reference", "candidate"),
    bins: int = 50,
) -> Path:
    """Relative jet-mass histogram with a ratio panel, saved as PNG.

    Args:
        reference: Particle features ``(N, n, >=3)``, JetBatch / JetData, or 1-D masses.
        candidate: Same for the candidate.
        path: Output PNG file (parent created if needed).
        labels: Legend labels.
        bins: Number of bins.

    Returns:
        The written path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    m1, m2 = _masses(reference, "reference"), _masses(candidate, "candidate")
    return plot_ratio(path, m1, m2, _edges(m1, m2, bins), xlabel="jet mass / jet pT", labels=labels)
