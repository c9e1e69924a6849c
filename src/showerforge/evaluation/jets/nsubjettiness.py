"""N-subjettiness of jets as particle clouds (JetNet conventions).

N-subjettiness (Thaler & Van Tilburg, "Identifying boosted objects with N-subjettiness",
arXiv:1011.2268, JHEP 03 (2011) 015) measures how well a jet is described by N subjet axes:

.. math:: \\tau_N = \\frac{1}{d_0} \\sum_k p_{T,k} \\min_{j = 1..N} (\\Delta R_{jk})^\\beta,
          \\qquad d_0 = \\sum_k p_{T,k} R_0^\\beta,

summed over the jet's constituents k, with :math:`\\Delta R_{jk}^2 = \\Delta y^2 + \\Delta\\phi^2`
between constituent k and axis j (:math:`\\Delta\\phi` wrapped into :math:`(-\\pi, \\pi]`).
Small :math:`\\tau_N` means at most N prongs; the ratios :math:`\\tau_{21} = \\tau_2 / \\tau_1`
(two-prong, e.g. W/Z/H) and :math:`\\tau_{32} = \\tau_3 / \\tau_2` (three-prong, top) are the usual
taggers (:func:`tau_ratios`).

Conventions. The constituents are the real particles of JetNet-format particle features
``(eta_rel, phi_rel, pt_rel[, mask])``, taken as massless four-vectors
:math:`p_T (\\cos\\phi, \\sin\\phi, \\sinh\\eta, \\cosh\\eta)`, so that their rapidity is
:math:`\\eta^{rel}`; ``pt_rel`` is used as the weight (:math:`\\tau_N` is invariant under a common
rescaling of the :math:`p_T`, so it equals the value for the absolute :math:`p_T`). The axes are
the exclusive-kT axes: the constituents are clustered exclusively into N subjets with the kT
algorithm (distance :math:`\\min(p_{T,i}^2, p_{T,j}^2) \\Delta R_{ij}^2`, FastJet's
``kt_algorithm`` with ``R = JetDefinition.max_allowable_R`` so that no constituent merges with
the beam, E-scheme recombination), and each axis is the direction (rapidity, azimuth) of a
subjet's summed four-vector. A massive axis has rapidity slightly different from its
pseudorapidity; the rapidity is used, as in FastJet contrib's ``Nsubjettiness`` with
``KT_Axes`` and ``NormalizedMeasure(beta, R0)`` (whose distances are ``PseudoJet`` rapidity-azimuth
distances). This default is not minimised further (no one-pass or multi-pass axis optimisation).

Special cases: a jet with at most N real particles has :math:`\\tau_N = 0` (every particle is its
own axis); a jet without real particles has all :math:`\\tau_N = 0`. Padding (mask 0 or all-zero
rows) and particles with ``pt_rel <= 0`` are not constituents.

Precision: distances are computed in float64 from the axes' four-vectors, so a particle that is
an axis by itself sits about 1e-16 from it; for :math:`\\beta < 1` this adds up to
:math:`p_T (10^{-16})^\\beta` per such particle (1e-8 for :math:`\\beta = 0.5`), for
:math:`\\beta \\ge 1` nothing measurable.

Clustering uses the ``fastjet`` Python package (``pip install 'showerforge[jets]'``); the
distances are vectorised with numpy.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from showerforge.errors import UserError
from showerforge.evaluation.jets.metrics import _particle_mask, _particles

__all__ = ["nsubjettiness", "tau_ratios"]

_CHUNK_ELEMENTS = 4_000_000
"""Jets are processed in chunks of about this many (jet, particle, axis) distances."""


class _Constituents:
    """Real particles of a batch of jets: padded ``(M, n)`` arrays and their counts."""

    def __init__(self, p: np.ndarray) -> None:
        real = _particle_mask(p) & (p[..., 2] > 0)
        self.real = real
        self.eta = np.where(real, p[..., 0], 0.0)
        self.phi = np.where(real, p[..., 1], 0.0)
        self.pt = np.where(real, p[..., 2], 0.0)
        self.counts = real.sum(axis=1)


def nsubjettiness(particles: Any, n_max: int = 3, *, beta: float = 1.0, radius: float = 0.8) -> np.ndarray:
    """N-subjettiness :math:`\\tau_1 .. \\tau_{n_{max}}` of each jet, with exclusive-kT axes.

    Reference: Thaler & Van Tilburg, arXiv:1011.2268; normalised measure
    :math:`\\tau_N = \\sum_k p_{T,k} \\min_j \\Delta R_{jk}^\\beta / \\sum_k p_{T,k} R_0^\\beta`
    (module docstring for the conventions).

    Args:
        particles: Particle features ``(N, n, >=3)`` (eta_rel, phi_rel, pt_rel[, mask]), e.g. a
            JetNet ``(N, n, 4)`` float32 array, or a JetBatch / JetData.
        n_max: Largest N; :math:`\\tau_1 .. \\tau_{n_{max}}` are returned.
        beta: Angular exponent :math:`\\beta > 0` (1 in the paper).
        radius: Characteristic jet radius :math:`R_0 > 0` of the normalisation :math:`d_0`.

    Returns:
        ``(N, n_max)`` float64 array, column ``j`` holding :math:`\\tau_{j+1}` (dimensionless);
        0 for jets with at most ``j + 1`` real particles.

    Raises:
        UserError: Bad shapes or parameters, non-finite values in real particles, or the
            ``fastjet`` package is missing.
    """
    p = _particles(particles, "nsubjettiness")
    _check_parameters(n_max, beta, radius)
    fastjet = _import_fastjet()
    out = np.zeros((len(p), n_max))
    chunk = max(1, _CHUNK_ELEMENTS // max(p.shape[1] * n_max, 1))
    for s in range(0, len(p), chunk):
        cons = _Constituents(p[s : s + chunk])
        if not np.all(np.isfinite(p[s : s + chunk, :, :3][cons.real])):
            raise UserError("nsubjettiness: real particles must have finite eta_rel, phi_rel and pt_rel")
        out[s : s + chunk] = _taus(fastjet, cons, n_max, beta, radius)
    return out


def _check_parameters(n_max: int, beta: float, radius: float) -> None:
    """UserError unless ``n_max`` is a positive int and ``beta``, ``radius`` positive and finite."""
    if isinstance(n_max, bool) or not isinstance(n_max, (int, np.integer)) or n_max < 1:
        raise UserError(f"nsubjettiness: n_max must be an integer >= 1, got {n_max!r}")
    for name, value in (("beta", beta), ("radius", radius)):
        if not (np.isfinite(value) and value > 0):
            raise UserError(f"nsubjettiness: {name} must be a positive finite number, got {value!r}")


def _import_fastjet() -> Any:
    """The ``fastjet`` module, or a UserError naming the extra that installs it."""
    try:
        import fastjet
    except ModuleNotFoundError as err:
        raise UserError(
            "nsubjettiness needs the optional package 'fastjet': install showerforge[jets] "
            "(pip install 'showerforge[jets]')"
        ) from err
    return fastjet


def _taus(fastjet: Any, cons: _Constituents, n_max: int, beta: float, radius: float) -> np.ndarray:
    """``(M, n_max)`` taus of one chunk of jets; 0 where a jet has at most N constituents."""
    out = np.zeros((len(cons.counts), n_max))
    multi = np.flatnonzero(cons.counts >= 2)
    if len(multi) == 0:
        return out
    sequence = _cluster(fastjet, cons, multi)
    d0 = cons.pt[multi].sum(axis=1) * radius**beta
    for n in range(1, n_max + 1):
        rap, phi = _exclusive_axes(fastjet, sequence, n, cons.counts[multi])
        numerator = _weighted_min_distance(cons, multi, rap, phi, beta)
        out[multi, n - 1] = np.where(cons.counts[multi] > n, numerator / d0, 0.0)
    return out


def _cluster(fastjet: Any, cons: _Constituents, rows: np.ndarray) -> Any:
    """FastJet kT cluster sequence (R = max_allowable_R, E-scheme) of the selected jets."""
    import awkward as ak

    real = cons.real[rows]
    pt, eta, phi = cons.pt[rows][real], cons.eta[rows][real], cons.phi[rows][real]
    vectors = ak.zip(
        {"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta), "E": pt * np.cosh(eta)},
        with_name="Momentum4D",
    )
    jet_def = fastjet.JetDefinition(fastjet.kt_algorithm, fastjet.JetDefinition.max_allowable_R, fastjet.E_scheme)
    return fastjet.ClusterSequence(ak.unflatten(vectors, cons.counts[rows]), jet_def)


def _exclusive_axes(fastjet: Any, sequence: Any, n: int, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rapidity and azimuth ``(M, n)`` of the exclusive-kT subjets; missing axes (jets with fewer
    than ``n`` constituents) are NaN and ignored by :func:`_weighted_min_distance`."""
    import awkward as ak

    # fastjet (3.5) warns about exclusive jets for every algorithm, kT included, and replaces
    # warnings.formatwarning on the way; both are harmless here and undone.
    formatwarning = warnings.formatwarning
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="dcut and exclusive jets", category=UserWarning)
            jets = ak.flatten(sequence.exclusive_jets_up_to(n))
    finally:
        warnings.formatwarning = formatwarning
    px, py, pz, e = (np.asarray(jets[c], dtype=np.float64) for c in ("px", "py", "pz", "E"))
    filled = np.arange(n) < np.minimum(counts, n)[:, None]
    rap, phi = np.full(filled.shape, np.nan), np.full(filled.shape, np.nan)
    rap[filled] = 0.5 * np.log((e + pz) / (e - pz))
    phi[filled] = np.arctan2(py, px)
    return rap, phi


def _weighted_min_distance(
    cons: _Constituents, rows: np.ndarray, rap: np.ndarray, phi: np.ndarray, beta: float
) -> np.ndarray:
    """``sum_k pT_k min_j dR_jk^beta`` per jet, for axes ``(M, n)`` (NaN axes ignored)."""
    d_rap = cons.eta[rows][:, :, None] - rap[:, None, :]
    d_phi = np.remainder(cons.phi[rows][:, :, None] - phi[:, None, :] + np.pi, 2 * np.pi) - np.pi
    d2 = np.where(np.isnan(d_rap), np.inf, d_rap**2 + d_phi**2)
    min_dr = np.sqrt(d2.min(axis=2))
    return (cons.pt[rows] * min_dr**beta).sum(axis=1)


def tau_ratios(taus: np.ndarray) -> dict[str, np.ndarray]:
    """Ratios of consecutive N-subjettiness values: ``tau21 = tau2 / tau1``, ``tau32 = tau3 / tau2``.

    Where the denominator is 0 (a jet with at most N - 1 real particles, or an empty jet) the ratio
    is defined as 0, not NaN or inf, so every jet gets a finite value.

    Args:
        taus: ``(N, n_max)`` array from :func:`nsubjettiness`, ``n_max >= 2``.

    Returns:
        ``{"tau21": (N,), "tau32": (N,), ...}``: one float64 array ``tau{k+1}{k}`` per consecutive
        pair of columns (``tau32`` needs ``n_max >= 3``, ``tau43`` ``n_max >= 4``, and so on).

    Raises:
        UserError: ``taus`` is not 2-D with at least two columns.
    """
    t = np.asarray(taus, dtype=np.float64)
    if t.ndim != 2 or t.shape[1] < 2:
        raise UserError(f"tau_ratios: expected taus of shape (N, >=2) from nsubjettiness, got {t.shape}")
    ratios = {}
    for k in range(1, t.shape[1]):
        num, den = t[:, k], t[:, k - 1]
        ratios[f"tau{k + 1}{k}"] = np.divide(num, den, out=np.zeros_like(num), where=den != 0)
    return ratios
