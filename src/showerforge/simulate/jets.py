"""Reference jets as particle clouds: Pythia8 events clustered with FastJet.

Proton-proton collisions at :math:`\\sqrt{s}` = 13 TeV are generated with Pythia8
(``pythia8mc``) through its batched, awkward-array interface ``Pythia.nextBatch``. Visible
final-state particles (all stable particles except neutrinos) are clustered with the anti-kT
algorithm (R = 0.8 by default) through FastJet's awkward-array interface. A jet is kept when it
lies within :math:`\\Delta R < 0.4` of the object that defines its type and passes the jet
:math:`p_T` and :math:`|\\eta|` windows:

=====  =========================================================  =================================
type   Pythia processes                                            matched object
=====  =========================================================  =================================
g      ``HardQCD:gg2gg``, ``HardQCD:qqbar2gg``                     outgoing hard gluon
q      ``HardQCD:qg2qg``, ``qq2qq``, ``qqbar2qqbarNew``             outgoing hard light quark,
                                                                   :math:`|\\mathrm{id}| \\le 3`
t      ``Top:gg2ttbar``, ``Top:qqbar2ttbar``, W -> hadrons          top quark (last copy)
w      ``WeakBosonAndParton:qqbar2Wg``, ``qg2Wq``, W -> hadrons     W boson (last copy)
z      ``WeakBosonAndParton:qqbar2gmZg``, ``qg2gmZq``,              Z boson (last copy)
       ``WeakZ0:gmZmode = 2``, Z -> hadrons
=====  =========================================================  =================================

Jets are stored in the JetNet layout (Kansal et al., arXiv:2106.11535): per-particle relative
coordinates :math:`(\\eta - \\eta_J,\\ \\phi - \\phi_J,\\ p_T / p_{T,J},\\ \\text{mask})` of the
``n_particles`` highest-:math:`p_T` constituents, zero-padded, plus jet-level
:math:`(p_T, \\eta, m, \\text{multiplicity})`.

Everything inside one call is vectorised over events (no Python loop over particles), and every
call builds its own Pythia instance, so calls are independent and may run in fresh processes
(for example Dask workers). The same configuration and seed give identical arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from showerforge.data.jetnet import JET_TYPES
from showerforge.errors import UserError

__all__ = [
    "JET_TYPES",
    "JetBatch",
    "JetConfig",
    "jet_processes",
    "simulate_jets",
]

"""Jet types, in the order used by the integer ``jet_type`` labels.

Note: the ``jetnet`` package's loader numbers types as ``("g", "t", "q", "w", "z")``;
:mod:`showerforge.data.jetnet` converts when it reads such a type column.
"""

_HADRONIC = "1 2 3 4 5"  # decay to any quark pair (t excluded by kinematics)

_PROCESSES: dict[str, tuple[str, ...]] = {
    "g": ("HardQCD:gg2gg = on", "HardQCD:qqbar2gg = on"),
    "q": ("HardQCD:qg2qg = on", "HardQCD:qq2qq = on", "HardQCD:qqbar2qqbarNew = on"),
    "t": (
        "Top:gg2ttbar = on",
        "Top:qqbar2ttbar = on",
        "24:onMode = off",
        f"24:onIfAny = {_HADRONIC}",
    ),
    "w": (
        "WeakBosonAndParton:qqbar2Wg = on",
        "WeakBosonAndParton:qg2Wq = on",
        "24:onMode = off",
        f"24:onIfAny = {_HADRONIC}",
    ),
    "z": (
        "WeakBosonAndParton:qqbar2gmZg = on",
        "WeakBosonAndParton:qg2gmZq = on",
        "WeakZ0:gmZmode = 2",
        "23:onMode = off",
        f"23:onIfAny = {_HADRONIC}",
    ),
}

# PDG id of the resonance matched for t / w / z jets (its last copy has status -62).
_RESONANCE_ID = {"t": 6, "w": 24, "z": 23}
_NEUTRINOS = (12, 14, 16)
_MATCH_DR = 0.4
_MAX_EVENTS_PER_BATCH = 400  # bounds memory: a full MPI-on event record is ~1-2k entries


def jet_processes(jet_type: str) -> tuple[str, ...]:
    """Pythia setting strings that select the hard processes for one jet type.

    Args:
        jet_type: One of :data:`JET_TYPES`.

    Returns:
        The ``readString`` commands (processes and forced hadronic decays).

    Raises:
        UserError: If ``jet_type`` is unknown.
    """
    if jet_type not in _PROCESSES:
        raise UserError(f"unknown jet_type {jet_type!r}; expected one of {JET_TYPES}")
    return _PROCESSES[jet_type]


@dataclass
class JetConfig:
    """Configuration of a Pythia8 + FastJet jet sample.

    Attributes:
        jet_type: One of :data:`JET_TYPES` (``"g"``, ``"q"``, ``"t"``, ``"w"``, ``"z"``).
        n_particles: Number of highest-pT constituents kept per jet (JetNet: 30 or 150), > 0.
        pt_min_gev: Lower edge of the jet pT window, GeV.
        pt_max_gev: Upper edge of the jet pT window, GeV (> ``pt_min_gev``).
        eta_max: Jet pseudorapidity cut, ``|eta| < eta_max``.
        mpi: Multiparton interactions (underlying event) on or off.
        radius: Anti-kT distance parameter R.
        sqrt_s_gev: Proton-proton centre-of-mass energy, GeV.
        pthat_min_gev: ``PhaseSpace:pTHatMin`` in GeV; ``None`` -> ``0.75 * pt_min_gev``.
            Initial-state radiation lets jets above the window come from lower pT-hat events:
            at 800 GeV, a 0.85 factor lost ~10 % of the jets in the lowest 50 GeV (g and t),
            0.75 agrees with 0.5 within the 3 % statistical precision of a 3000-jet check,
            at about twice the events per jet of 0.85.
        pthat_max_gev: ``PhaseSpace:pTHatMax`` in GeV; ``None`` -> ``1.5 * pt_max_gev``
            (capped at sqrt_s / 2): jets lose pT out of the cone, and the steeply falling
            spectrum makes the extra high-pT-hat events cheap.
        pythia: Further Pythia ``readString`` commands (``"Tune:pp = 21"``,
            ``"PhaseSpace:pTHatMin = 700"``), read after the ones above, so they win; each must
            have the form ``Key = value``.
    """

    jet_type: str
    n_particles: int = 30
    pt_min_gev: float = 800.0
    pt_max_gev: float = 1600.0
    eta_max: float = 2.5
    mpi: bool = True
    radius: float = 0.8
    sqrt_s_gev: float = 13000.0
    pthat_min_gev: float | None = None
    pthat_max_gev: float | None = None
    pythia: tuple[str, ...] | list[str] = ()

    def __post_init__(self) -> None:
        """Validate the configuration (raises ``UserError`` naming the offending field)."""
        self.pythia = tuple(str(c).strip() for c in self.pythia)
        for cmd in self.pythia:
            key, eq, value = cmd.partition("=")
            if not eq or not key.strip() or not value.strip() or ":" not in key:
                raise UserError(f"Pythia setting {cmd!r}: expected 'Group:key = value', e.g. 'Tune:pp = 21'")
        if self.jet_type not in JET_TYPES:
            raise UserError(f"unknown jet_type {self.jet_type!r}; expected one of {JET_TYPES}")
        if int(self.n_particles) != self.n_particles or self.n_particles <= 0:
            raise UserError(f"n_particles must be a positive integer, got {self.n_particles!r}")
        self.n_particles = int(self.n_particles)
        if not (0.0 <= self.pt_min_gev < self.pt_max_gev):
            raise UserError(
                f"empty jet pT window: need 0 <= pt_min_gev < pt_max_gev, "
                f"got [{self.pt_min_gev}, {self.pt_max_gev}] GeV"
            )
        if self.eta_max <= 0:
            raise UserError(f"eta_max must be > 0, got {self.eta_max}")
        if self.radius <= 0:
            raise UserError(f"radius must be > 0, got {self.radius}")
        if self.sqrt_s_gev <= 0:
            raise UserError(f"sqrt_s_gev must be > 0, got {self.sqrt_s_gev}")
        lo, hi = self.pthat_window()
        if not (0.0 <= lo < hi):
            raise UserError(f"empty pTHat window [{lo}, {hi}] GeV: need 0 <= pthat_min_gev < pthat_max_gev")
        if hi > self.sqrt_s_gev / 2:
            raise UserError(f"pthat_max_gev {hi} exceeds sqrt_s/2 = {self.sqrt_s_gev / 2} GeV")

    def pthat_window(self) -> tuple[float, float]:
        """Resolved ``(pTHatMin, pTHatMax)`` in GeV."""
        lo = 0.75 * self.pt_min_gev if self.pthat_min_gev is None else self.pthat_min_gev
        if self.pthat_max_gev is None:
            hi = min(1.5 * self.pt_max_gev, self.sqrt_s_gev / 2)
        else:
            hi = self.pthat_max_gev
        return float(lo), float(hi)


@dataclass
class JetBatch:
    """A sample of jets in the JetNet layout.

    Attributes:
        particle_features: Shape ``(N, n, 4)`` float32: ``eta_rel``, ``phi_rel`` (wrapped to
            (-pi, pi]), ``pt_rel = pT / pT_jet``, ``mask`` (1 real, 0 padding); constituents
            sorted by pT descending, zero-padded.
        jet_features: Shape ``(N, 4)`` float32: jet pT (GeV), eta, mass (GeV), multiplicity
            (number of constituents before truncation to n).
        jet_type: Shape ``(N,)`` int8, index into :data:`JET_TYPES`.
        settings: Generator settings (Pythia version, process strings, seed, MPI, R, windows).
    """

    particle_features: np.ndarray
    jet_features: np.ndarray
    jet_type: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        """Number of jets N."""
        return int(self.jet_features.shape[0])


def _pythia_settings(config: JetConfig, seed: int) -> list[str]:
    """All ``readString`` commands for one run (order matters only for readability)."""
    lo, hi = config.pthat_window()
    return [
        "Print:quiet = on",
        "Next:numberCount = 0",
        f"Beams:eCM = {config.sqrt_s_gev:g}",
        *jet_processes(config.jet_type),
        f"PhaseSpace:pTHatMin = {lo:g}",
        f"PhaseSpace:pTHatMax = {hi:g}",
        f"PartonLevel:MPI = {'on' if config.mpi else 'off'}",
        "Random:setSeed = on",
        f"Random:seed = {seed}",
        *config.pythia,
    ]


def check_pythia_settings(commands: tuple[str, ...] | list[str]) -> None:
    """Raise ``UserError`` naming the first command Pythia does not accept (no initialisation)."""
    if not commands:
        return
    import pythia8mc

    from showerforge.simulate.calo_g4 import quiet_stdout

    pythia = pythia8mc.Pythia("", False)
    for cmd in commands:
        with quiet_stdout():
            accepted = pythia.readString(cmd)
        if not accepted:
            raise UserError(
                f"Pythia setting {cmd!r}: Pythia does not accept it (unknown key or bad value); "
                "see the Pythia 8 manual's settings index"
            )


def _make_pythia(commands: list[str]) -> Any:
    """Build and initialise a quiet Pythia instance; raise ``RuntimeError`` on failure."""
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for cmd in commands:
        if not pythia.readString(cmd):
            raise RuntimeError(f"Pythia rejected setting {cmd!r}")
    if not pythia.init():
        raise RuntimeError("Pythia initialisation failed; settings: " + "; ".join(commands))
    return pythia


def _kinematics(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, ...]:
    """Transverse momentum, pseudorapidity and azimuth of momenta (any shape)."""
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(np.where(pt > 0, pz / np.where(pt > 0, pt, 1.0), np.sign(pz) * 1e10))
    return pt, eta, np.arctan2(py, px)


def _wrap_phi(dphi: np.ndarray) -> np.ndarray:
    """Wrap angles to (-pi, pi]."""
    out = np.mod(dphi + np.pi, 2 * np.pi) - np.pi
    return np.where(out == -np.pi, np.pi, out)


def _targets(events: Any, config: JetConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Objects the jets must match: ``(event index, eta, phi)`` of each, flat numpy arrays."""
    import awkward as ak

    prt = events.prt
    if config.jet_type in _RESONANCE_ID:
        sel = (abs(prt.id) == _RESONANCE_ID[config.jet_type]) & (prt.status == -62)
        cand = prt[sel]
    else:  # outgoing partons of the hard 2 -> 2 process sit at record positions 5 and 6
        cand = prt[:, 5:7]
        aid = abs(cand.id)
        cand = cand[(aid == 21) if config.jet_type == "g" else ((aid >= 1) & (aid <= 3))]
    counts = ak.num(cand).to_numpy()
    ev = np.repeat(np.arange(len(counts)), counts)
    p = cand.p
    px, py, pz = (ak.flatten(getattr(p, c)).to_numpy() for c in ("px", "py", "pz"))
    _, eta, phi = _kinematics(px, py, pz)
    return ev, eta, phi


def _cluster(events: Any, config: JetConfig) -> dict[str, np.ndarray]:
    """Anti-kT clustering of the visible final state of a batch of events.

    Returns:
        Flat numpy arrays: per constituent ``px, py, pz, e`` (GeV) and ``jet`` (jet index);
        per jet ``event`` (event index) and ``n`` (number of constituents).
    """
    import awkward as ak
    import fastjet

    prt = events.prt
    aid = abs(prt.id)
    visible = (prt.status > 0) & (aid != _NEUTRINOS[0]) & (aid != _NEUTRINOS[1])
    visible = visible & (aid != _NEUTRINOS[2])
    p = prt.p[visible]
    cols = {c: ak.values_astype(getattr(p, c), np.float64) for c in ("px", "py", "pz", "e")}
    particles = ak.zip(
        {"px": cols["px"], "py": cols["py"], "pz": cols["pz"], "E": cols["e"]},
        with_name="Momentum4D",
    )
    jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, config.radius)
    seq = fastjet.ClusterSequence(particles, jet_def)
    # Constituent indices (events x jets x constituents) of jets above a loose pT floor; jet
    # four-momenta are rebuilt below as sums of constituents (E-scheme), so they are exact.
    cidx = seq.constituent_index(0.5 * config.pt_min_gev)
    n_part = ak.num(particles).to_numpy()
    starts = np.concatenate([[0], np.cumsum(n_part)[:-1]])
    jets_per_event = ak.num(cidx, axis=1).to_numpy()
    n_const = ak.flatten(ak.num(cidx, axis=2)).to_numpy()
    event_of_jet = np.repeat(np.arange(len(n_part)), jets_per_event)
    local = ak.flatten(cidx, axis=None).to_numpy().astype(np.int64)
    jet_of_const = np.repeat(np.arange(len(n_const)), n_const)
    glob = local + starts[event_of_jet][jet_of_const]
    out = {c: ak.flatten(cols[c]).to_numpy()[glob] for c in cols}
    out.update(jet=jet_of_const, event=event_of_jet, n=n_const)
    return out


def _select(events: Any, config: JetConfig) -> tuple[np.ndarray, np.ndarray]:
    """Cluster, match and select jets of one batch of events.

    Returns:
        ``(particle_features (M, n, 4), jet_features (M, 4))`` float32 for the M selected jets.
    """
    c = _cluster(events, config)
    n_jets = len(c["n"])
    sums = [np.bincount(c["jet"], weights=c[k], minlength=n_jets) for k in ("px", "py", "pz", "e")]
    jpx, jpy, jpz, je = sums
    jpt, jeta, jphi = _kinematics(jpx, jpy, jpz)
    jmass = np.sqrt(np.clip(je**2 - jpx**2 - jpy**2 - jpz**2, 0.0, None))

    # Match: for each target the nearest jet in its event, kept if dR < 0.4.
    t_ev, t_eta, t_phi = _targets(events, config)
    chosen = np.full(len(t_ev), -1, dtype=np.int64)
    if n_jets and len(t_ev):
        order = np.argsort(c["event"], kind="stable")
        first = np.searchsorted(c["event"][order], t_ev, side="left")
        last = np.searchsorted(c["event"][order], t_ev, side="right")
        width = int((last - first).max(initial=0))
        if width:
            slots = first[:, None] + np.arange(width)[None, :]
            valid = slots < last[:, None]
            cand = order[np.where(valid, slots, 0)]
            dr2 = (jeta[cand] - t_eta[:, None]) ** 2 + _wrap_phi(jphi[cand] - t_phi[:, None]) ** 2
            dr2 = np.where(valid, dr2, np.inf)
            best = np.argmin(dr2, axis=1)
            ok = dr2[np.arange(len(t_ev)), best] < _MATCH_DR**2
            chosen = np.where(ok, cand[np.arange(len(t_ev)), best], -1)
    sel = np.unique(chosen[chosen >= 0])  # sorted by jet index -> event order, deterministic
    keep = (jpt[sel] >= config.pt_min_gev) & (jpt[sel] < config.pt_max_gev)
    sel = sel[keep & (np.abs(jeta[sel]) < config.eta_max)]

    jet_features = np.stack([jpt[sel], jeta[sel], jmass[sel], c["n"][sel].astype(np.float64)], axis=1).astype(
        np.float32
    )
    return _particle_features(c, sel, jpt, jeta, jphi, config.n_particles), jet_features


def _particle_features(
    c: dict[str, np.ndarray],
    sel: np.ndarray,
    jpt: np.ndarray,
    jeta: np.ndarray,
    jphi: np.ndarray,
    n: int,
) -> np.ndarray:
    """Relative constituent coordinates of the selected jets, shape ``(len(sel), n, 4)``."""
    row = np.full(len(c["n"]), -1, dtype=np.int64)
    row[sel] = np.arange(len(sel))
    r = row[c["jet"]]
    m = r >= 0
    r = r[m]
    pt, eta, phi = _kinematics(c["px"][m], c["py"][m], c["pz"][m])
    order = np.lexsort((-pt, r))  # by jet, then pT descending
    r, pt, eta, phi = r[order], pt[order], eta[order], phi[order]
    starts = np.searchsorted(r, np.arange(len(sel)))
    rank = np.arange(len(r)) - starts[r]
    k = rank < n
    r, rank, pt, eta, phi = r[k], rank[k], pt[k], eta[k], phi[k]
    out = np.zeros((len(sel), n, 4), dtype=np.float32)
    jets = sel[r]
    out[r, rank, 0] = eta - jeta[jets]
    out[r, rank, 1] = _wrap_phi(phi - jphi[jets])
    out[r, rank, 2] = pt / jpt[jets]
    out[r, rank, 3] = 1.0
    return out


def simulate_jets(
    config: JetConfig,
    n_jets: int,
    seed: int,
    progress: Callable[[int], None] | None = None,
) -> JetBatch:
    """Generate ``n_jets`` jets of one type with Pythia8 and anti-kT (FastJet).

    Events are generated in batches (``Pythia.nextBatch``); the batch size adapts to the
    measured number of selected jets per event and depends only on the configuration and the
    seed, so the output is reproducible. Both jets of an event may be kept (e.g. two gluons in
    gg -> gg, two hadronic tops in tt~), in event order.

    Args:
        config: Jet sample configuration.
        n_jets: Number of jets to return, >= 0.
        seed: Pythia random seed, 0 <= seed <= 900_000_000 (Pythia's range). Use distinct
            seeds for independent shards.
        progress: Optional callback, called after each batch with the cumulative number of
            jets collected so far (capped at ``n_jets``).

    Returns:
        A :class:`JetBatch` with exactly ``n_jets`` jets.

    Raises:
        UserError: On an invalid configuration, ``n_jets < 0`` or a seed out of range.
        RuntimeError: If Pythia fails to initialise or produces no jets after many events.
    """
    if not isinstance(config, JetConfig):
        raise UserError(f"config must be a JetConfig, got {type(config).__name__}")
    config.__post_init__()  # re-validate: fields may have been changed after construction
    if int(n_jets) != n_jets or n_jets < 0:
        raise UserError(f"n_jets must be a non-negative integer, got {n_jets!r}")
    if int(seed) != seed or not (0 <= seed <= 900_000_000):
        raise UserError(f"seed must be an integer in [0, 900000000], got {seed!r}")
    n_jets, seed = int(n_jets), int(seed)
    commands = _pythia_settings(config, seed)
    pythia = _make_pythia(commands)

    parts: list[np.ndarray] = []
    jets: list[np.ndarray] = []
    have, n_events, rate = 0, 0, 0.5  # rate: selected jets per event (initial guess)
    while have < n_jets:
        want = math.ceil(1.1 * (n_jets - have) / max(rate, 0.02)) + 5
        batch_size = int(min(max(want, 10), _MAX_EVENTS_PER_BATCH))
        events = pythia.nextBatch(batch_size)
        pf, jf = _select(events, config)
        n_events += len(events)
        parts.append(pf)
        jets.append(jf)
        have += len(jf)
        rate = have / max(n_events, 1)
        if progress is not None:
            progress(min(have, n_jets))
        if have == 0 and n_events >= 20_000:
            raise RuntimeError(f"no jets passed the selection in {n_events} events: {config}")

    if parts:
        particle_features = np.concatenate(parts)[:n_jets]
        jet_features = np.concatenate(jets)[:n_jets]
    else:  # n_jets == 0
        particle_features = np.zeros((0, config.n_particles, 4), np.float32)
        jet_features = np.zeros((0, 4), np.float32)
    settings = {
        "generator": "pythia8mc",
        "pythia_version": _pythia_version(pythia),
        "fastjet_version": _fastjet_version(),
        "config": asdict(config),
        "pthat_window_gev": list(config.pthat_window()),
        "pythia_commands": commands,
        "processes": list(jet_processes(config.jet_type)),
        "seed": seed,
        "mpi": config.mpi,
        "algorithm": "anti-kt",
        "radius": config.radius,
        "recombination": "E-scheme",
        "visible": "final-state particles except neutrinos",
        "match_dr": _MATCH_DR,
        "n_events": n_events,
        "n_jets": n_jets,
    }
    return JetBatch(
        particle_features=np.ascontiguousarray(particle_features, dtype=np.float32),
        jet_features=np.ascontiguousarray(jet_features, dtype=np.float32),
        jet_type=np.full(n_jets, JET_TYPES.index(config.jet_type), dtype=np.int8),
        settings=settings,
    )


def _pythia_version(pythia: Any) -> str:
    """Pythia version string, e.g. ``"8.317"``."""
    from importlib.metadata import version

    try:
        number = f"{pythia.settings.parm('Pythia:versionNumber'):.3f}"
    except AttributeError:  # pragma: no cover - depends on binding details
        number = "unknown"
    return f"{number} (pythia8mc {version('pythia8mc')})"


def _fastjet_version() -> str:
    """Installed fastjet (Python package) version."""
    from importlib.metadata import version

    return version("fastjet")
