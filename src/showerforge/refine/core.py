"""Fit a refiner on a source and a target sample; apply it to a file of source-like events.

A *refiner* corrects mis-modelled events (a simulation against data, a fast surrogate against
Geant4) with one of three methods:

* ``fm``: conditional flow matching from source to target with minibatch optimal-transport
  pairing (:mod:`showerforge.refine.nets`), on one input block (shower shapes, layer energies,
  voxels, jet kinematics);
* ``flow``: normalizing-flow morphing, a conditional flow per sample, ``source -> latent ->
  target`` (the CMS recipe), on one block;
* ``reweight``: calibrated classifier weights ``w = p / (1 - p)``, clipped, on any blocks.

Refined showers: with ``voxels`` the refined voxels are written (MeV, non-negative); with
``layers`` every voxel of a layer is scaled by the layer's refined / original energy, so the
file keeps its showers in MeV and non-negative; with ``shapes`` (and jets' ``jet``) the refined
inputs are written as the dataset ``refined_inputs`` (attribute ``columns``), the showers left
as they are. ``reweight`` writes the dataset ``weights`` and the effective sample size.

A refiner folder holds ``refiner.pt`` (tensors and JSON text only, read with
``torch.load(weights_only=True)``), ``refiner.json`` (the same settings, readable) and
``fit.png`` (inputs of source, target and refined source; the weight distribution for
``reweight``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from showerforge.errors import UserError
from showerforge.geometry import Geometry
from showerforge.refine import inputs as ri
from showerforge.refine.transform import BlockTransform, fit_transform

__all__ = ["METHODS", "Refiner", "RefineError", "fit_refiner", "apply_refiner", "load_refiner", "DEFAULT_INPUTS"]

METHODS = ("fm", "flow", "reweight")
DEFAULT_INPUTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("showers", "fm"): ("voxels",),
    ("showers", "flow"): ("shapes",),
    ("showers", "reweight"): ("shapes", "layers"),
    ("jets", "fm"): ("jet",),
    ("jets", "flow"): ("jet",),
    ("jets", "reweight"): ("jet", "particles"),
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "fm": {"epochs": 0, "hidden": 256, "layers": 3, "lr": 1e-3, "batch_size": 256, "steps": 20, "cond_weight": 10.0},
    "flow": {"epochs": 0, "hidden": 128, "transforms": 4, "lr": 1e-3, "batch_size": 256},
    "reweight": {"epochs": 200, "hidden": 128, "layers": 3, "lr": 1e-3, "batch_size": 256, "clip": 20.0},
}
_FORMAT = "showerforge-refiner"


class RefineError(UserError):
    """A refiner that cannot be fitted, read or applied as asked; the message names the file."""


Say = Callable[[str], None]


@dataclass
class Refiner:
    """A fitted refiner (see module docstring). Build with :func:`fit_refiner` or :func:`load_refiner`."""

    method: str
    kind: str
    blocks: list[str]
    columns: list[str]
    transforms: list[BlockTransform]
    settings: dict[str, Any]
    geometry: Geometry | None = None
    n_particles: int = 0
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    _nets: dict[str, Any] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ inputs
    def encode(self, events: ri.Events) -> tuple[np.ndarray, np.ndarray]:
        """(standardised inputs (N, d) float32, conditions (N, k) float32) of ``events``."""
        parts = [t.forward(ri.block_values(events, t.block), events.incident_mev) for t in self.transforms]
        return np.concatenate(parts, axis=1), ri.conditions(events).astype(np.float32)

    def check_events(self, events: ri.Events) -> None:
        """The events must be of this refiner's kind and readout."""
        where = f"refiner {self.path}" if self.path else "the refiner"
        ri.check_compatible(events, self.kind, self.geometry, self.n_particles, where, RefineError)

    # ------------------------------------------------------------------- nets
    def _net(self, key: str) -> Any:
        if key in self._nets:
            return self._nets[key]
        import torch

        from showerforge.refine import nets

        d, k = len(self.columns), int(self.settings["n_conditions"])
        s = self.settings
        net: Any
        if self.method == "fm":
            net = nets.VelocityNet(d, k, s["hidden"], s["layers"])
        elif self.method == "flow":
            net = nets.make_flow(d, k, transforms=s["transforms"], hidden=s["hidden"])
        else:
            net = nets.Classifier(d + k, s["hidden"], s["layers"])
        net.load_state_dict({n: torch.as_tensor(v) for n, v in self.states[key].items()})
        net.eval()
        self._nets[key] = net
        return net

    # ------------------------------------------------------------------ apply
    def refine_arrays(self, u: np.ndarray, c: np.ndarray, *, steps: int | None = None) -> np.ndarray:
        """Standardised source inputs -> standardised refined inputs (``fm``, ``flow``)."""
        from showerforge.refine import nets

        if self.method == "fm":
            return nets.integrate_fm(self._net("velocity"), u, c, int(steps or self.settings["steps"]))
        if self.method == "flow":
            return nets.morph_flow(self._net("source_flow"), self._net("target_flow"), u, c)
        raise RefineError(f"method {self.method!r} gives weights, not refined inputs")

    def weights(self, u: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(clipped weights, unclipped weights) of standardised inputs (``reweight``)."""
        import torch

        net = self._net("classifier")
        x = np.concatenate([u, c], axis=1).astype(np.float32)
        out = []
        with torch.no_grad():
            for lo in range(0, len(x), 8192):
                out.append(net(torch.from_numpy(x[lo : lo + 8192])).double().numpy())
        log_w = np.concatenate(out) if out else np.zeros(0)
        raw = np.exp(np.clip(log_w, -50.0, 50.0))
        return np.minimum(raw, float(self.settings["clip"])), raw

    def decode(self, events: ri.Events, refined_u: np.ndarray) -> dict[str, np.ndarray]:
        """Refined physical values: ``showers`` (MeV) for voxels/layers, ``refined_inputs`` otherwise."""
        t = self.transforms[0]
        values = t.inverse(refined_u, events.incident_mev)
        return ri.adapter(self.kind).refined(events, t.block, values)

    # ------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> Path:
        """Write ``refiner.pt`` and ``refiner.json`` into ``folder`` (atomically each)."""
        import torch

        from showerforge._version import __version__
        from showerforge.data.io import atomic_output

        folder = Path(folder)
        meta = self._meta()
        payload = {
            "format": _FORMAT,
            "format_version": 1,
            "meta": json.dumps(meta),
            "states": {k: {n: torch.as_tensor(v) for n, v in s.items()} for k, s in self.states.items()},
            "showerforge_version": __version__,
        }
        with atomic_output(folder / "refiner.pt") as tmp:
            torch.save(payload, tmp)
        with atomic_output(folder / "refiner.json") as tmp:
            tmp.write_text(json.dumps(meta, indent=2) + "\n")
        return folder

    def _meta(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "kind": self.kind,
            "inputs": self.blocks,
            "columns": self.columns,
            "transforms": [t.to_dict() for t in self.transforms],
            "settings": self.settings,
            "geometry": json.loads(self.geometry.to_json()) if self.geometry is not None else None,
            "n_particles": self.n_particles,
            "summary": self.summary,
        }


def load_refiner(folder: str | Path) -> Refiner:
    """Read a refiner folder (``torch.load(weights_only=True)``: nothing in it is executed).

    Raises:
        RefineError: not a refiner folder, or a damaged file.
    """
    import torch

    folder = Path(folder)
    if not folder.exists():
        raise RefineError(f"{folder}: refiner folder not found; make one with `showerforge refine fit`")
    path = folder / "refiner.pt" if folder.is_dir() else folder
    if not path.is_file() or (folder.is_file() and folder.name != "refiner.pt"):
        raise RefineError(f"{folder}: not a refiner folder (no refiner.pt); make one with `showerforge refine fit`")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic[:2] != b"PK":  # torch.save writes a zip archive
        raise RefineError(
            f"{path}: not a showerforge refiner (not a torch archive); make one with `showerforge refine fit`"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to read means a damaged or foreign file
        kind = type(err).__name__
        raise RefineError(f"{path}: damaged or not a showerforge refiner ({kind}); fit it again") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT or "meta" not in payload:
        raise RefineError(f"{path}: not a showerforge refiner; make one with `showerforge refine fit`")
    meta = json.loads(payload["meta"])
    geo = Geometry.from_dict(meta["geometry"]) if meta.get("geometry") else None
    return Refiner(
        method=meta["method"],
        kind=meta["kind"],
        blocks=list(meta["inputs"]),
        columns=list(meta["columns"]),
        transforms=[BlockTransform.from_dict(t) for t in meta["transforms"]],
        settings=dict(meta["settings"]),
        geometry=geo,
        n_particles=int(meta.get("n_particles", 0)),
        states={k: dict(v) for k, v in payload["states"].items()},
        summary=dict(meta.get("summary", {})),
        path=str(path.parent),
    )


# ----------------------------------------------------------------------------- fit
def _resolve_settings(method: str, overrides: dict[str, Any]) -> dict[str, Any]:
    s = dict(_DEFAULTS[method])
    for k, v in overrides.items():
        if v is None:
            continue
        if k not in s:
            raise RefineError(f"setting {k!r} does not apply to method {method!r}; it takes {', '.join(sorted(s))}")
        s[k] = type(s[k])(v)
    if s["epochs"] < 0 or (method == "reweight" and s["epochs"] < 1):
        raise RefineError(f"epochs must be >= 1, got {s['epochs']}")
    for k in ("hidden", "batch_size"):
        if k in s and s[k] < 1:
            raise RefineError(f"{k} must be >= 1, got {s[k]}")
    if not s["lr"] > 0:
        raise RefineError(f"lr must be > 0, got {s['lr']}")
    if "clip" in s and not s["clip"] > 1:
        raise RefineError(f"clip must be > 1 (the largest weight kept), got {s['clip']}")
    if "steps" in s and s["steps"] < 1:
        raise RefineError(f"steps must be >= 1, got {s['steps']}")
    return s


def _as_events(x: ri.Events | str | Path, role: str) -> ri.Events:
    return x if isinstance(x, ri.Events) else ri.load_events(x, role)


def fit_refiner(
    source: ri.Events | str | Path,
    target: ri.Events | str | Path,
    output: str | Path | None = None,
    *,
    method: str = "fm",
    inputs: Sequence[str] | str | None = None,
    seed: int = 0,
    threads: int | None = None,
    say: Say | None = None,
    **settings: Any,
) -> Refiner:
    """Fit a refiner that makes ``source`` events look like ``target`` events.

    Args:
        source, target: shower or jet files (or :class:`~showerforge.refine.inputs.Events`) of
            the same kind and readout.
        output: refiner folder to write (``None``: keep in memory).
        method: ``fm``, ``flow`` or ``reweight``.
        inputs: input blocks (``shapes``, ``layers``, ``voxels``; ``jet``, ``particles``) as a
            list or a comma-separated string; ``fm`` and ``flow`` take one. Default: voxels (fm),
            shapes (flow), shapes + layers (reweight); jets: jet (+ particles for reweight).
        seed: seeds pairing, initialisation and batches: the same seed gives the same refiner.
        threads: torch CPU threads (default: torch's).
        say: called with progress lines.
        **settings: ``epochs``, ``hidden``, ``layers``, ``lr``, ``batch_size``, ``steps`` (fm
            integration steps), ``cond_weight`` (fm), ``transforms`` (flow), ``clip`` (reweight).

    Raises:
        RefineError / RefineInputError: bad settings, files of different kinds or geometries
            (checked before any training).
    """
    if method not in METHODS:
        raise RefineError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    s = _resolve_settings(method, settings)
    if output is not None:
        from showerforge.data.io import check_not_input, check_writable_dir

        if Path(output).exists() and Path(output).is_dir() and any(Path(output).iterdir()):
            if not (Path(output) / "refiner.pt").is_file():
                raise RefineError(f"{output}: output folder holds other files; give a new or empty folder")
        for spec in (source, target):
            if not isinstance(spec, ri.Events):
                check_not_input(Path(output) / "refiner.pt", str(spec).split(":")[0])
    src, tgt = _as_events(source, "source"), _as_events(target, "target")
    ri.check_pair(src, tgt)
    if isinstance(inputs, str):
        inputs = [b for b in inputs.split(",") if b.strip()]
    blocks = ri.check_blocks(src.kind, list(inputs) if inputs else list(DEFAULT_INPUTS[(src.kind, method)]))
    if method in ("fm", "flow") and len(blocks) != 1:
        raise RefineError(f"--inputs: method {method!r} refines one input block at a time, got {', '.join(blocks)}")
    if method in ("fm", "flow") and blocks[0] == "particles":
        raise RefineError(f"--inputs: method {method!r} does not refine constituents; use 'jet' or method 'reweight'")
    for ev, role in ((src, "source"), (tgt, "target")):
        if len(ev) < 20:
            raise RefineError(f"{ev.path}: {role} holds {len(ev)} events; a refiner needs at least 20")
    if output is not None:
        from showerforge.data.io import check_writable_dir

        check_writable_dir(output)
    import torch

    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        return _fit(src, tgt, output, method, blocks, s, int(seed), say)
    finally:
        torch.set_num_threads(old_threads)


def _fit(
    src: ri.Events,
    tgt: ri.Events,
    output: str | Path | None,
    method: str,
    blocks: list[str],
    s: dict[str, Any],
    seed: int,
    say: Say | None,
) -> Refiner:
    from showerforge.refine import nets

    geo = src.geometry
    n_part = src.n_particles
    columns: list[str] = []
    transforms = []
    for b in blocks:
        columns += ri.block_columns(src.kind, b, geo, n_part)
        transforms.append(
            fit_transform(b, [ri.block_values(src, b), ri.block_values(tgt, b)], [src.incident_mev, tgt.incident_mev])
        )
    ref = Refiner(method, src.kind, blocks, columns, transforms, s, geo, n_part)
    u0, c0 = ref.encode(src)
    u1, c1 = ref.encode(tgt)
    cmean = np.concatenate([c0, c1]).mean(axis=0)
    cstd = np.concatenate([c0, c1]).std(axis=0)
    cstd = np.where(cstd > 1e-3, cstd, 1.0)  # a single energy (test beam) or jet type: no scale
    # conditions standardised inside the refiner (stored with the settings)
    s["n_conditions"] = int(c0.shape[1])
    s["condition_mean"], s["condition_std"] = cmean.tolist(), cstd.tolist()
    s["condition_min"] = np.concatenate([c0, c1]).min(axis=0).tolist()
    s["condition_max"] = np.concatenate([c0, c1]).max(axis=0).tolist()
    ri.adapter(src.kind).check_conditions_covered(c0, c1, tgt)
    c0s, c1s = (((c - cmean) / cstd).astype(np.float32) for c in (c0, c1))
    if method in ("fm", "flow") and not s["epochs"]:
        # automatic length: 100 epochs, at least 4000 optimizer steps for small samples
        per_epoch = max(1, max(len(u0), len(u1)) // int(min(s["batch_size"], len(u0), len(u1))))
        s["epochs"] = max(100, -(-4000 // per_epoch))
    t0 = time.perf_counter()
    summary: dict[str, Any] = {
        "source": {"path": src.path, "n": len(src)},
        "target": {"path": tgt.path, "n": len(tgt)},
        "seed": seed,
    }
    if method == "fm":
        net, hist = nets.train_fm(
            u0, c0s, u1, c1s, hidden=s["hidden"], layers=s["layers"], epochs=s["epochs"],
            batch_size=s["batch_size"], lr=s["lr"], cond_weight=s["cond_weight"], seed=seed, say=say,
        )  # fmt: skip
        ref.states = {"velocity": {k: v.detach().clone() for k, v in net.state_dict().items()}}
        summary["history"] = hist
    elif method == "flow":
        states, hists = {}, {}
        for key, (u, c) in (("source_flow", (u0, c0s)), ("target_flow", (u1, c1s))):
            flow, hist = nets.train_flow(
                u, c, transforms=s["transforms"], hidden=s["hidden"], epochs=s["epochs"],
                batch_size=s["batch_size"], lr=s["lr"], seed=seed + (key == "target_flow"),
                label=key.split("_")[0], say=say,
            )  # fmt: skip
            states[key] = {k: v.detach().clone() for k, v in flow.state_dict().items()}
            hists[key] = hist
        ref.states = states
        summary["history"] = hists
    else:
        x0 = np.concatenate([u0, c0s], axis=1)
        x1 = np.concatenate([u1, c1s], axis=1)
        clf, info = nets.train_classifier(
            x0, x1, hidden=s["hidden"], layers=s["layers"], epochs=s["epochs"],
            batch_size=s["batch_size"], lr=s["lr"], seed=seed, say=say,
        )  # fmt: skip
        ref.states = {"classifier": {k: v.detach().clone() for k, v in clf.state_dict().items()}}
        summary["classifier"] = info
    summary["fit_seconds"] = round(time.perf_counter() - t0, 2)
    ref.summary = summary
    # what the refiner does to its own source sample
    refined_u: np.ndarray | None = None
    if method == "reweight":
        w, raw = ref.weights(u0, c0s)
        summary["source_weights"] = weight_summary(w, raw, float(s["clip"]))
        _warn_weights(summary["source_weights"], src.path)
    else:
        refined_u = ref.refine_arrays(u0, c0s)
    if output is not None:
        ref.path = str(output)
        ref.save(output)
        try:
            _plot_fit(Path(output) / "fit.png", ref, src, tgt, u0, u1, refined_u, c0s)
        except Exception as err:  # a plot must not lose a fitted refiner
            if say:
                say(f"refine: fit.png not drawn ({type(err).__name__}: {err})")
    return ref


def _warn_weights(summary: dict[str, Any], where: str) -> None:
    """Warn when the weights cannot be trusted: little overlap between source and target."""
    import warnings

    if summary["n"] and (
        summary["ess_fraction"] < 0.1 or summary["clipped_fraction"] > 0.2 or not 0.5 < summary["mean"] < 2.0
    ):
        warnings.warn(
            f"{where}: weights of little use (mean {summary['mean']:.3g}, effective sample size "
            f"{100 * summary['ess_fraction']:.0f} %, {100 * summary['clipped_fraction']:.0f} % clipped): source and "
            "target barely overlap, reweighting cannot correct this; use fm or flow",
            stacklevel=3,
        )


def weight_summary(w: np.ndarray, raw: np.ndarray, clip: float) -> dict[str, Any]:
    """Mean, effective sample size (sum w)^2 / sum w^2, fraction clipped, quantiles and a log10 histogram."""
    n = len(w)
    ess = float(w.sum() ** 2 / max(np.sum(w * w), 1e-300)) if n else 0.0
    edges = np.linspace(-2.0, 2.0, 41)
    lw = np.log10(np.clip(w, 1e-2, 1e2))
    return {
        "n": n,
        "mean": float(w.mean()) if n else float("nan"),
        "ess": ess,
        "ess_fraction": ess / n if n else float("nan"),
        "clipped_fraction": float(np.mean(raw > clip)) if n else 0.0,
        "clip": clip,
        "quantiles": {str(q): float(np.quantile(w, q)) for q in (0.01, 0.16, 0.5, 0.84, 0.99)} if n else {},
        "log10_edges": edges.tolist(),
        "log10_counts": np.histogram(lw, edges)[0].tolist(),
    }


def _warn_outside(ref: Refiner, ev: ri.Events, c: np.ndarray) -> None:
    """Warn when events lie outside the conditions the refiner was fitted on (it extrapolates there)."""
    import warnings

    lo, hi = ref.settings.get("condition_min"), ref.settings.get("condition_max")
    if lo is None or hi is None or not len(c):
        return
    lo, hi = np.asarray(lo), np.asarray(hi)
    message = ri.adapter(ref.kind).outside(c, lo, hi, ev)
    if message:
        warnings.warn(message, stacklevel=3)


def _standardised_conditions(ref: Refiner, c: np.ndarray) -> np.ndarray:
    mean = np.asarray(ref.settings["condition_mean"], dtype=np.float64)
    std = np.asarray(ref.settings["condition_std"], dtype=np.float64)
    return ((c - mean) / std).astype(np.float32)


# ----------------------------------------------------------------------------- apply
def apply_refiner(
    refiner: Refiner | str | Path,
    input: ri.Events | str | Path,  # noqa: A002 (the CLI's name)
    output: str | Path | None = None,
    *,
    steps: int | None = None,
    threads: int | None = None,
    say: Say | None = None,
) -> dict[str, Any]:
    """Apply a refiner to a file of source-like events and write the refined file.

    Args:
        refiner: a :class:`Refiner` or its folder.
        input: shower or jet file (same kind and readout as the refiner's source).
        output: file to write (the input's events with refined showers, ``refined_inputs`` or
            ``weights``); ``None``: return the arrays only.
        steps: integration steps of ``fm`` (default: the refiner's).
        threads: torch CPU threads.
        say: called with progress lines.

    Returns:
        dict with ``n``, the arrays (``showers``, ``refined_inputs``, ``weights``) and, for
        ``reweight``, the weight summary (``ess``, ``clipped_fraction``, ...).

    Raises:
        RefineError: wrong kind or geometry (checked before any work), output = input.
    """
    ref = refiner if isinstance(refiner, Refiner) else load_refiner(refiner)
    if steps is not None and steps < 1:
        raise RefineError(f"steps must be >= 1, got {steps}")
    if output is not None:
        from showerforge.data.io import check_not_input, check_writable

        check_not_input(output, None if isinstance(input, ri.Events) else str(input), ref.path or None)
        check_writable(output)
    ev = _as_events(input, "input")
    ref.check_events(ev)
    import torch

    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        u, c = ref.encode(ev)
        _warn_outside(ref, ev, c)
        cs = _standardised_conditions(ref, c)
        t0 = time.perf_counter()
        result: dict[str, Any] = {"n": len(ev), "method": ref.method}
        if ref.method == "reweight":
            w, raw = ref.weights(u, cs)
            result["weights"] = w
            result.update(weight_summary(w, raw, float(ref.settings["clip"])))
            _warn_weights(result, ev.path)
        else:
            if say:
                say(
                    f"refine apply: {ref.method} on {len(ev)} events ({', '.join(ref.blocks)}, {len(ref.columns)} inputs)"
                )
            result.update(ref.decode(ev, ref.refine_arrays(u, cs, steps=steps)))
        result["seconds"] = round(time.perf_counter() - t0, 3)
    finally:
        torch.set_num_threads(old_threads)
    if output is not None:
        _write(Path(output), ref, ev, result)
        result["output"] = str(output)
    return result


def _write(path: Path, ref: Refiner, ev: ri.Events, result: dict[str, Any]) -> None:
    from showerforge.data.io import atomic_output

    info = {
        "method": ref.method,
        "inputs": ref.blocks,
        "refiner": ref.path,
        "source": ref.summary.get("source", {}).get("path"),
        "target": ref.summary.get("target", {}).get("path"),
        "input": ev.path,
    }
    if ref.method == "reweight":
        info.update({k: result[k] for k in ("ess", "ess_fraction", "clipped_fraction", "clip", "mean")})
    with atomic_output(path) as tmp:
        attrs = {k: v for k, v in (ev.attrs or {}).items() if k not in ("format", "geometry", "showerforge_version")}
        attrs["refined_by"] = json.dumps(info)
        ri.adapter(ev.kind).write(tmp, ev, result, attrs)
        with h5py.File(tmp, "a") as h5:
            if "weights" in result:
                ds = h5.create_dataset("weights", data=np.asarray(result["weights"], dtype=np.float64))
                ds.attrs["description"] = "classifier weights w = p/(1-p) (target/source density ratio), clipped"
                ds.attrs["ess"] = float(result["ess"])
            if "refined_inputs" in result:
                ds = h5.create_dataset("refined_inputs", data=np.asarray(result["refined_inputs"], dtype=np.float64))
                ds.attrs["columns"] = json.dumps(ref.columns)


# ----------------------------------------------------------------------------- plot
def _plot_fit(
    path: Path,
    ref: Refiner,
    src: ri.Events,
    tgt: ri.Events,
    u0: np.ndarray,
    u1: np.ndarray,
    refined_u: np.ndarray | None,
    c0s: np.ndarray,
) -> None:
    """Histograms of up to 12 inputs (source, target, refined source), or the weight distribution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from showerforge.data.io import atomic_output

    if ref.method == "reweight":
        w, _ = ref.weights(u0, c0s)
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        axes[0].hist(np.log10(np.clip(w, 1e-3, None)), bins=60, color="tab:blue")
        axes[0].axvline(math.log10(float(ref.settings["clip"])), color="k", ls="--", label="clip")
        axes[0].set_xlabel("log10 w (source events)")
        axes[0].set_ylabel("events")
        axes[0].legend()
        col = 0
        x0 = ri.block_values(src, ref.blocks[0])[:, col]
        x1 = ri.block_values(tgt, ref.blocks[0])[:, col]
        edges = np.histogram_bin_edges(np.concatenate([x0, x1]), bins=50)
        axes[1].hist(x1, edges, histtype="step", density=True, label="target", color="k")
        axes[1].hist(x0, edges, histtype="step", density=True, label="source", color="tab:red")
        axes[1].hist(x0, edges, weights=w, histtype="step", density=True, label="source, weighted", color="tab:blue")
        axes[1].set_xlabel(ref.columns[col])
        axes[1].legend(fontsize=8)
    else:
        assert refined_u is not None
        t = ref.transforms[0]
        x0, x1, xr = (
            t.inverse(u0, src.incident_mev),
            t.inverse(u1, tgt.incident_mev),
            t.inverse(refined_u, src.incident_mev),
        )
        if t.block == "voxels":  # voxels: show the layer energies
            assert src.geometry is not None
            x0, x1, xr = (ri.layer_energies(v, src.geometry) for v in (x0, x1, xr))
            names = [f"layer_energy_{i} [MeV]" for i in range(x0.shape[1])]
        else:
            names = list(ref.columns)
        cols = np.unique(np.linspace(0, x0.shape[1] - 1, min(12, x0.shape[1])).round().astype(int))
        ncol = min(4, len(cols))
        nrow = int(math.ceil(len(cols) / ncol))
        fig, axes_arr = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.6 * nrow), squeeze=False)
        for ax, j in zip(axes_arr.ravel(), cols):
            lo, hi = np.quantile(np.concatenate([x0[:, j], x1[:, j]]), [0.005, 0.995])
            edges = np.linspace(lo, hi if hi > lo else lo + 1, 41)
            ax.hist(x1[:, j], edges, histtype="step", density=True, color="k", label="target")
            ax.hist(x0[:, j], edges, histtype="step", density=True, color="tab:red", label="source")
            ax.hist(xr[:, j], edges, histtype="step", density=True, color="tab:blue", ls="--", label="refined")
            ax.set_xlabel(names[j], fontsize=8)
            ax.tick_params(labelsize=7)
        for ax in axes_arr.ravel()[len(cols) :]:
            ax.axis("off")
        axes_arr.ravel()[0].legend(fontsize=7)
    fig.suptitle(
        f"refine {ref.method} on {', '.join(ref.blocks)}: source {len(src)}, target {len(tgt)} events", fontsize=9
    )
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
