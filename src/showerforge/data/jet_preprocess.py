"""Invertible preprocessing of jets as particle clouds, fitted on training data and saved with a model.

Set models see neither GeV nor raw JetNet columns. :class:`JetPreprocessor` holds two parts:

* :class:`ParticleTransform` maps the particles of a JetNet ``particle_features`` array
  (N, n, 4: ``eta_rel, phi_rel, pt_rel, mask``) to model features (N, n, 3) plus a bool mask
  (N, n): ``eta_rel`` and ``phi_rel`` standardised, ``log(pt_rel)`` standardised (statistics over
  real particles only); padded slots are 0. Its inverse clips each feature to the range seen in
  training, rescales a jet whose ``sum(pt_rel)`` exceeds the largest training sum down to that
  sum (so generated jets never carry more relative pT than any training jet), wraps ``phi_rel``
  to (-pi, pi], sorts real particles by pT descending and zero-pads the rest (mask column 0).
* :class:`JetConditioning` turns jet-level information into the model's condition vector and the
  discrete labels of the multiplicity model: ``condition = "type"`` gives a one-hot jet type
  (width 5, :data:`~showerforge.data.jetnet.JET_TYPES` order); ``"type+pt"`` appends the
  standardised ``log(pT / GeV)`` of the jet and refines the multiplicity labels by jet-pT bin
  (``n_pt_bins`` global training quantiles); ``"type+mass"`` appends the standardised relative
  mass ``m / pT`` of the kept constituents (the jet-level conditioning of EPiC-FM, Buhmann et al.,
  arXiv:2310.00049) and refines the multiplicity labels by relative-mass bin (``n_pt_bins``
  global quantiles of ``m / pT``). It also stores, per jet type, 256 quantiles of the
  training jet pT (GeV) and eta to draw the kinematics of generated jets (inverse-CDF sampling
  with linear interpolation, seeded numpy generator), and for ``"type+mass"`` 128 quantiles of
  ``m / pT`` per type and jet-pT octile, so that the drawn mass follows the drawn pT (a top
  jet's ``m / pT`` falls as ``1 / pT``).

The multiplicity target of a jet is ``k = max(jet_features[:, 3], number of real slots)`` (our
simulator records the constituent count before truncation to n; public JetNet files the count
of kept particles), so a generated jet has ``min(k, n)`` real slots and reports ``k``.

:func:`jet_mass` computes the invariant mass (GeV) of the kept constituents, treated as massless,
from ``pt_rel``, relative coordinates and the jet pT; the jet mass does not depend on the jet's
eta or phi (longitudinal boosts and rotations about the beam leave it unchanged).

Every object has ``fit`` / ``forward`` / ``inverse`` (where meaningful) / ``state_dict`` /
``load_state_dict``; states are JSON-serialisable. Numpy only (no torch).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from showerforge.data.jetnet import JET_TYPES
from showerforge.data.preprocess import Standardize
from showerforge.errors import UserError

__all__ = [
    "JET_CONDITIONS",
    "ParticleTransform",
    "JetConditioning",
    "JetPreprocessor",
    "relative_jet_mass",
    "jet_mass_gev",
    "wrap_phi",
    "multiplicity_target",
]

JET_CONDITIONS: tuple[str, ...] = ("type", "type+pt", "type+mass")
"""Supported condition kinds of :class:`JetConditioning`."""

_PT_FLOOR = 1e-12
_N_QUANTILES = 256
_N_MASS_QUANTILES = 128
_N_MASS_PT_BINS = 8


def wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Angles mapped to (-pi, pi] (radians)."""
    return np.pi - np.mod(np.pi - phi, 2 * np.pi)


def multiplicity_target(particle_features: np.ndarray, jet_features: np.ndarray) -> np.ndarray:
    """Multiplicity ``k`` (N,) int64, ``max(jet_features[:, 3], real slots)``, at least 1."""
    slots = (particle_features[..., 3] > 0).sum(axis=1)
    return np.maximum(np.maximum(np.rint(jet_features[:, 3]).astype(np.int64), slots), 1)


def relative_jet_mass(particle_features: np.ndarray, real: np.ndarray | None = None) -> np.ndarray:
    """Relative jet mass :math:`m_J / p_{T,J}` of massless constituents (dimensionless).

    Momenta :math:`p_T^{rel}(\\cos\\phi, \\sin\\phi, \\sinh\\eta)` and energies
    :math:`p_T^{rel}\\cosh\\eta` are summed over the real constituents.

    Args:
        particle_features: (N, n, >=3) ``eta_rel, phi_rel, pt_rel[, mask]``.
        real: (N, n) bool, the real constituents (default: mask column > 0 when present, else all).

    Returns:
        (N,) float64 (0 for a single constituent).
    """
    pf = np.asarray(particle_features, dtype=np.float64)
    if real is None:
        real = pf[..., 3] > 0 if pf.shape[-1] >= 4 else np.ones(pf.shape[:2], dtype=bool)
    pt = np.where(real, pf[..., 2], 0.0)
    eta, phi = pf[..., 0], pf[..., 1]
    px, py = (pt * np.cos(phi)).sum(1), (pt * np.sin(phi)).sum(1)
    pz, e = (pt * np.sinh(eta)).sum(1), (pt * np.cosh(eta)).sum(1)
    return np.sqrt(np.clip(e * e - px * px - py * py - pz * pz, 0.0, None))


def jet_mass_gev(particle_features: np.ndarray, jet_pt_gev: np.ndarray) -> np.ndarray:
    """Jet mass in GeV: :func:`relative_jet_mass` times the jet pT (GeV), shape (N,)."""
    return np.asarray(jet_pt_gev, dtype=np.float64) * relative_jet_mass(particle_features)


class ParticleTransform:
    """``(eta_rel, phi_rel, pt_rel, mask)`` <-> standardised ``(eta_rel, phi_rel, log pt_rel)`` + mask.

    Args:
        n_particles: particle slots per jet (30 or 150 for JetNet).
    """

    n_features = 3

    def __init__(self, n_particles: int) -> None:
        self.n_particles = int(n_particles)
        self.scale = Standardize(self.n_features)
        self.low = np.full(self.n_features, -np.inf)
        self.high = np.full(self.n_features, np.inf)
        self.sum_max = np.inf

    def _check(self, pf: np.ndarray) -> np.ndarray:
        pf = np.asarray(pf, dtype=np.float64)
        if pf.ndim != 3 or pf.shape[1:] != (self.n_particles, 4):
            raise UserError(
                f"particle_features: expected shape (N, {self.n_particles}, 4) (the particle count of this "
                f"preprocessing), got {pf.shape}"
            )
        return pf

    @staticmethod
    def _raw(pf: np.ndarray) -> np.ndarray:
        """(N, n, 3) ``eta_rel, phi_rel, log pt_rel`` (padded slots hold garbage)."""
        return np.stack([pf[..., 0], pf[..., 1], np.log(np.maximum(pf[..., 2], _PT_FLOOR))], axis=-1)

    def fit(self, particle_features: np.ndarray) -> ParticleTransform:
        """Statistics and ranges over the real particles of (N, n, 4) training jets."""
        pf = self._check(particle_features)
        mask = pf[..., 3] > 0
        if not mask.any():
            raise UserError(
                "particle_features: the training jets hold no real particles (mask column all 0); expected at least one"
            )
        real = self._raw(pf)[mask]
        self.scale = Standardize(self.n_features).fit(real)
        self.low, self.high = real.min(axis=0), real.max(axis=0)
        self.sum_max = float((pf[..., 2] * mask).sum(axis=1).max())
        return self

    def forward(self, particle_features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, n, 4) JetNet particles -> ``(x (N, n, 3) float32, mask (N, n) bool)``, x = 0 where padded."""
        pf = self._check(particle_features)
        mask = pf[..., 3] > 0
        x = self.scale.forward(self._raw(pf).reshape(-1, 3)).reshape(pf.shape[:2] + (3,))
        return (x * mask[..., None]).astype(np.float32), mask

    def inverse(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Model features (N, n, 3) + mask (N, n) -> JetNet particles (N, n, 4) float32.

        Clips to training ranges, caps ``sum(pt_rel)`` at the training maximum, wraps phi,
        sorts real particles by pT descending (real slots first) and zero-pads.
        """
        x, mask = np.asarray(x, dtype=np.float64), np.asarray(mask, dtype=bool)
        raw = self.scale.inverse(x.reshape(-1, 3)).reshape(x.shape)
        raw = np.clip(raw, self.low, self.high)
        pt = np.exp(raw[..., 2]) * mask
        total = pt.sum(axis=1, keepdims=True)
        pt = pt * np.minimum(1.0, self.sum_max / np.maximum(total, _PT_FLOOR))
        pf = np.stack([raw[..., 0], wrap_phi(raw[..., 1]), pt, mask.astype(np.float64)], axis=-1)
        order = np.argsort(np.where(mask, -pt, np.inf), axis=1, kind="stable")
        pf = np.take_along_axis(pf, order[..., None], axis=1)
        return (pf * pf[..., 3:4]).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "n_particles": self.n_particles,
            "scale": self.scale.state_dict(),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "sum_max": self.sum_max,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        self.n_particles = int(state["n_particles"])
        self.scale.load_state_dict(state["scale"])
        self.low, self.high = np.asarray(state["low"], float), np.asarray(state["high"], float)
        self.sum_max = float(state["sum_max"])


def _quantiles(values: np.ndarray, n: int = _N_QUANTILES) -> list[float]:
    return np.quantile(np.asarray(values, np.float64), np.linspace(0, 1, n)).tolist()


def _draw(quantiles: list[float], rng: np.random.Generator, n: int) -> np.ndarray:
    q = np.asarray(quantiles)
    return np.interp(rng.random(n), np.linspace(0, 1, q.size), q)


class JetConditioning:
    """Condition vectors, multiplicity labels and jet kinematics of generated jets.

    Args:
        kind: ``"type"`` (one-hot jet type), ``"type+pt"`` (one-hot type + standardised
            ``log(pT / GeV)``; multiplicity labels per type and pT bin) or ``"type+mass"``
            (one-hot type + standardised ``m / pT``; multiplicity labels per type and mass bin).
        n_pt_bins: bins of the multiplicity labels in jet pT (``"type+pt"``) or in ``m / pT``
            (``"type+mass"``).
    """

    def __init__(self, kind: str = "type", n_pt_bins: int = 4) -> None:
        if kind not in JET_CONDITIONS:
            raise UserError(f"unknown condition {kind!r}; choose one of {JET_CONDITIONS}")
        self.kind, self.n_pt_bins = kind, int(n_pt_bins) if kind != "type" else 1
        self.log_pt = Standardize(1)
        self.pt_edges: list[float] = []
        self.pt_quantiles: dict[str, list[float]] = {}
        self.eta_quantiles: dict[str, list[float]] = {}
        self.rel_mass = Standardize(1)
        self.mass_edges: list[float] = []
        self.mass_pt_edges: dict[str, list[float]] = {}
        self.mass_quantiles: dict[str, list[list[float]]] = {}

    @property
    def uses_mass(self) -> bool:
        """Whether the condition holds the relative jet mass (``"type+mass"``)."""
        return self.kind == "type+mass"

    @property
    def n_cond(self) -> int:
        """Width of the condition vector."""
        return len(JET_TYPES) + (self.kind != "type")

    @property
    def n_labels(self) -> int:
        """Number of discrete multiplicity labels."""
        return len(JET_TYPES) * self.n_pt_bins

    @property
    def types(self) -> list[str]:
        """Jet types seen in training (the ones that can be generated)."""
        return [t for t in JET_TYPES if t in self.pt_quantiles]

    def fit(
        self, jet_features: np.ndarray, jet_type: np.ndarray, rel_mass: np.ndarray | None = None
    ) -> JetConditioning:
        """Fit on training jets: ``jet_features`` (N, 4: pT GeV, eta, mass GeV, n), ``jet_type`` (N,)
        and, for ``"type+mass"``, ``rel_mass`` (N,): :func:`relative_jet_mass` of the kept particles."""
        jf, jt = np.asarray(jet_features, np.float64), np.asarray(jet_type, np.int64)
        if np.any(jf[:, 0] <= 0):
            raise UserError("jet_features: jet pT must be > 0 GeV")
        self.log_pt = Standardize(1).fit(np.log(jf[:, :1]))
        inner = np.quantile(jf[:, 0], np.linspace(0, 1, self.n_pt_bins + 1)[1:-1])
        self.pt_edges = inner.tolist()
        self.pt_quantiles = {t: _quantiles(jf[jt == i, 0]) for i, t in enumerate(JET_TYPES) if (jt == i).any()}
        self.eta_quantiles = {t: _quantiles(jf[jt == i, 1]) for i, t in enumerate(JET_TYPES) if (jt == i).any()}
        if self.uses_mass:
            m = self.check_mass(rel_mass, jf.shape[0])
            self.rel_mass = Standardize(1).fit(m[:, None])
            self.mass_edges = np.quantile(m, np.linspace(0, 1, self.n_pt_bins + 1)[1:-1]).tolist()
            self.mass_pt_edges, self.mass_quantiles = {}, {}
            for i, t in enumerate(JET_TYPES):
                sel = jt == i
                if not sel.any():
                    continue
                edges = np.quantile(jf[sel, 0], np.linspace(0, 1, _N_MASS_PT_BINS + 1)[1:-1])
                b = np.searchsorted(edges, jf[sel, 0], side="right")
                ms = m[sel]
                self.mass_pt_edges[t] = edges.tolist()
                self.mass_quantiles[t] = [
                    _quantiles(ms[b == j] if (b == j).any() else ms, _N_MASS_QUANTILES) for j in range(_N_MASS_PT_BINS)
                ]
        return self

    def type_index(self, jet_type: str | list[str] | np.ndarray) -> np.ndarray:
        """Jet types as (N,) indices into ``JET_TYPES`` (names or integer labels accepted)."""
        arr = np.atleast_1d(np.asarray(jet_type))
        if arr.dtype.kind in "iu":
            idx = arr.astype(np.int64)
        else:
            unknown = sorted({str(t) for t in arr} - set(JET_TYPES))
            if unknown:
                raise UserError(f"unknown jet types {unknown}; expected one of {JET_TYPES}")
            idx = np.array([JET_TYPES.index(str(t)) for t in arr], np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(JET_TYPES)):
            raise UserError(f"jet type labels must lie in [0, {len(JET_TYPES)})")
        return idx

    def condition(
        self, jet_type: Any, jet_pt: np.ndarray | None = None, rel_mass: np.ndarray | None = None
    ) -> np.ndarray:
        """Condition vectors (N, n_cond) float32 from types (N,) and, for ``"type+pt"``, jet pT (N,)
        GeV, for ``"type+mass"`` the relative mass ``m / pT`` (N,)."""
        idx = self.type_index(jet_type)
        cond = np.eye(len(JET_TYPES))[idx]
        if self.kind == "type+pt":
            pt = self.check_pt(jet_pt, idx.size)
            cond = np.concatenate([cond, self.log_pt.forward(np.log(pt)[:, None])], axis=1)
        elif self.uses_mass:
            m = self.check_mass(rel_mass, idx.size)
            cond = np.concatenate([cond, self.rel_mass.forward(m[:, None])], axis=1)
        return cond.astype(np.float32)

    def labels(self, jet_type: Any, jet_pt: np.ndarray | None = None, rel_mass: np.ndarray | None = None) -> np.ndarray:
        """Multiplicity labels (N,) int64 in ``[0, n_labels)``: type, or type x pT bin, or type x mass bin."""
        idx = self.type_index(jet_type)
        if self.kind == "type":
            return idx
        if self.uses_mass:
            m = self.check_mass(rel_mass, idx.size)
            return idx * self.n_pt_bins + np.searchsorted(self.mass_edges, m, side="right")
        return idx * self.n_pt_bins + np.searchsorted(self.pt_edges, self.check_pt(jet_pt, idx.size), side="right")

    def draw_mass(self, jet_type: Any, jet_pt: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
        """Relative masses ``m / pT`` (N,) drawn per type and jet-pT octile (``"type+mass"``), else ``None``.

        Draws nothing from ``rng`` for the other condition kinds, so their samples do not change.
        """
        if not self.uses_mass:
            return None
        idx = self.type_index(jet_type)
        pt = np.asarray(jet_pt, np.float64).reshape(-1)
        m = np.empty(idx.size)
        for i in np.unique(idx):
            name = JET_TYPES[i]
            if name not in self.mass_quantiles:
                raise UserError(f"jet type {name!r} was not in the training data (trained on {self.types})")
            sel = np.flatnonzero(idx == i)
            b = np.searchsorted(self.mass_pt_edges[name], pt[sel], side="right")
            u = rng.random(sel.size)
            for j in np.unique(b):
                q = np.asarray(self.mass_quantiles[name][j])
                m[sel[b == j]] = np.interp(u[b == j], np.linspace(0, 1, q.size), q)
        return m

    def draw(self, jet_type: Any, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Jet ``(pT GeV, eta)`` (N,) each, drawn independently from the training spectra of each type."""
        idx = self.type_index(jet_type)
        pt, eta = np.empty(idx.size), np.empty(idx.size)
        for i in np.unique(idx):
            name, sel = JET_TYPES[i], idx == i
            if name not in self.pt_quantiles:
                raise UserError(f"jet type {name!r} was not in the training data (trained on {self.types})")
            pt[sel] = _draw(self.pt_quantiles[name], rng, int(sel.sum()))
            eta[sel] = _draw(self.eta_quantiles[name], rng, int(sel.sum()))
        return pt, eta

    @staticmethod
    def check_mass(rel_mass: np.ndarray | None, n: int) -> np.ndarray:
        if rel_mass is None:
            raise UserError("condition 'type+mass' needs the relative jet mass m / pT")
        m = np.asarray(rel_mass, np.float64).reshape(-1)
        if m.size != n or not np.all(np.isfinite(m)) or np.any(m < 0):
            raise UserError(f"rel_mass: expected {n} finite values m / pT >= 0, got {m.size}")
        return m

    @staticmethod
    def check_pt(jet_pt: np.ndarray | None, n: int) -> np.ndarray:
        if jet_pt is None:
            raise UserError("condition 'type+pt' needs the jet pT (GeV)")
        pt = np.asarray(jet_pt, np.float64).reshape(-1)
        if pt.size != n or np.any(pt <= 0):
            raise UserError(f"jet_pt: expected {n} values > 0 GeV, got {pt.size}")
        return pt

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "kind": self.kind,
            "n_pt_bins": self.n_pt_bins,
            "log_pt": self.log_pt.state_dict(),
            "pt_edges": list(self.pt_edges),
            "pt_quantiles": dict(self.pt_quantiles),
            "eta_quantiles": dict(self.eta_quantiles),
            **(
                {
                    "rel_mass": self.rel_mass.state_dict(),
                    "mass_edges": list(self.mass_edges),
                    "mass_pt_edges": dict(self.mass_pt_edges),
                    "mass_quantiles": dict(self.mass_quantiles),
                }
                if self.uses_mass
                else {}
            ),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        if state["kind"] not in JET_CONDITIONS:
            raise ValueError(f"unknown condition {state['kind']!r}; choose one of {JET_CONDITIONS}")
        self.kind, self.n_pt_bins = str(state["kind"]), int(state["n_pt_bins"])
        self.log_pt = Standardize(1)
        self.log_pt.load_state_dict(state["log_pt"])
        self.pt_edges = [float(v) for v in state["pt_edges"]]
        self.pt_quantiles = {k: list(v) for k, v in state["pt_quantiles"].items()}
        self.eta_quantiles = {k: list(v) for k, v in state["eta_quantiles"].items()}
        if self.uses_mass:
            self.rel_mass = Standardize(1)
            self.rel_mass.load_state_dict(state["rel_mass"])
            self.mass_edges = [float(v) for v in state["mass_edges"]]
            self.mass_pt_edges = {k: [float(x) for x in v] for k, v in state["mass_pt_edges"].items()}
            self.mass_quantiles = {k: [list(q) for q in v] for k, v in state["mass_quantiles"].items()}


class JetPreprocessor:
    """Everything a jet set model needs from the data, fitted once and saved in the checkpoint.

    Args:
        n_particles: particle slots per jet.
        condition: ``"type"``, ``"type+pt"`` or ``"type+mass"`` (see :class:`JetConditioning`).
        n_pt_bins: bins of the multiplicity labels for ``"type+pt"`` / ``"type+mass"``.

    Attributes:
        particles: the :class:`ParticleTransform`.
        conditioning: the :class:`JetConditioning`.
        k_max: largest training multiplicity (set by :meth:`fit`).
    """

    kind = "jet-set"

    def __init__(self, n_particles: int, condition: str = "type", n_pt_bins: int = 4) -> None:
        self.particles = ParticleTransform(n_particles)
        self.conditioning = JetConditioning(condition, n_pt_bins)
        self.k_max = 0

    @property
    def n_particles(self) -> int:
        """Particle slots per jet."""
        return self.particles.n_particles

    @property
    def n_features(self) -> int:
        """Model features per particle."""
        return self.particles.n_features

    @property
    def n_cond(self) -> int:
        """Width of the condition vector."""
        return self.conditioning.n_cond

    def fit(self, particle_features: np.ndarray, jet_features: np.ndarray, jet_type: np.ndarray) -> JetPreprocessor:
        """Fit particles, conditioning and ``k_max`` on training jets (JetNet arrays)."""
        self.particles.fit(particle_features)
        rel_mass = relative_jet_mass(particle_features) if self.conditioning.uses_mass else None
        self.conditioning.fit(jet_features, jet_type, rel_mass)
        self.k_max = int(multiplicity_target(np.asarray(particle_features), np.asarray(jet_features)).max())
        return self

    def forward(self, particle_features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`ParticleTransform.forward`."""
        return self.particles.forward(particle_features)

    def inverse(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """See :meth:`ParticleTransform.inverse`."""
        return self.particles.inverse(x, mask)

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "kind": self.kind,
            "particles": self.particles.state_dict(),
            "conditioning": self.conditioning.state_dict(),
            "k_max": self.k_max,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        if state.get("kind") != self.kind:
            raise ValueError(f"not a jet preprocessing state (kind={state.get('kind')!r})")
        self.particles.load_state_dict(state["particles"])
        self.conditioning.load_state_dict(state["conditioning"])
        self.k_max = int(state["k_max"])

    def to_json(self) -> str:
        """The state as JSON text."""
        return json.dumps(self.state_dict(), sort_keys=True)

    @classmethod
    def from_state(cls, state: dict[str, Any] | str) -> JetPreprocessor:
        """Rebuild from :meth:`state_dict` (a dict or its JSON text)."""
        state = json.loads(state) if isinstance(state, str) else state
        pre = cls(
            int(state["particles"]["n_particles"]),
            state["conditioning"]["kind"],
            int(state["conditioning"]["n_pt_bins"]),
        )
        pre.load_state_dict(state)
        return pre
