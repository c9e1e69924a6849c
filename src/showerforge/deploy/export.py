"""ONNX export of a trained shower model: sampler and inverse preprocessing in one graph.

Layouts (``layout=``):

=================  ==========================================  ======================================
layout             input (float32)                             output (float32)
=================  ==========================================  ======================================
``calochallenge``  ``noise`` (N, n_noise) standard normal;     ``showers`` (N, n_voxels) MeV,
                   ``incident_energy`` (N, 1) MeV              CaloChallenge order (layer, angle, r)
``par04``          ``input`` (N, n_noise + 4): noise,          ``output`` (N, n_voxels): voxel energy
                   E / 1024000 MeV, theta[deg] / 90, 0, 1      / E, Par04 mesh order (r, phi, z)
                   (Par04 ``setModelType VAE``)
``par04-calodit``  ``input`` (N, 8): E in GeV, phi, theta,     ``output`` (N, n_voxels) GeV, Par04
                   5-slot geometry one-hot; noise drawn in     mesh order (r, phi, z)
                   the graph (Par04 ``setModelType CaloDiT-2``)
``jetnet``         ``noise`` (N, n, 3); ``jet_type`` (N, 5)    ``particle_features`` (N, n, 4):
                   one-hot; [``jet_pt`` (N, 1) GeV or          eta_rel, phi_rel, pt_rel, mask
                   ``rel_mass`` (N, 1) m / pT];                (JetNet), pT-descending
                   ``mask`` (N, n) 1 = real slot
``points``         ``summary_noise`` (N, n_summary) and        ``points`` (N, n_slots, 4): x, y mm,
                   ``noise`` (N, n_slots, 4) standard normal;  layer index, energy MeV, zero-padded;
                   ``incident_energy`` (N, 1) MeV              ``num_points`` (N,) int64
=================  ==========================================  ======================================

Shower models export in the first three layouts (default ``calochallenge``), jet set models
(``cfm-set``) in ``jetnet`` (their default), point-cloud models (``cfm-points``) in ``points``
(:mod:`showerforge.deploy.points`: both flows, the decoding of the summaries, the mask and the
calibrations inside the graph).

``n_noise`` is the width of the model's noise tensors (``model.noise_shapes``) concatenated in
draw order (``cfm-factorised``: the layer-energy noise, then the voxel-shape noise). The batch
dimension is dynamic; Par04 calls with N = 1, once per particle. The file's metadata
(``metadata_props``) records the layout, the model, its checkpoint hash, the sampler, the
geometry, the units and, for the Par04 layouts, the macro commands that configure the example.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from showerforge.data.io import atomic_output, check_writable
from showerforge.deploy.graph import (
    PAR04_MAX_ENERGY_MEV,
    JetGraph,
    Par04Graph,
    Par04NoiseInsideGraph,
    ShowerGraph,
    check_par04_geometry,
    exportable_ops,
)
from showerforge.deploy.points import PointGraph, points_difference
from showerforge.errors import UserError
from showerforge.models.base import require_noise_map

__all__ = [
    "LAYOUTS",
    "FORMATS",
    "DEFAULT_OPSET",
    "ExportResult",
    "export_onnx",
    "onnx_bytes",
    "build_graph",
    "loaded",
    "check_model_layout",
    "check_opset",
    "check_layout",
    "par04_macro",
]

LAYOUTS: dict[str, str] = {
    "calochallenge": "noise + incident energy (MeV) -> showers (MeV), CaloChallenge voxel order",
    "par04": "Geant4 Par04, VAE convention: [noise, E/1024 GeV, theta/90deg, 0, 1] -> fractions of E, mesh order",
    "par04-calodit": "Geant4 Par04, CaloDiT-2 convention: [E GeV, phi, theta, 5-slot one-hot] -> GeV, noise inside",
    "jetnet": "jets: noise + jet type one-hot [+ jet pT GeV] + mask -> JetNet particle_features",
    "points": "point clouds: summary noise + point noise + incident energy (MeV) -> calibrated points, num_points",
}
"""Graph layouts by name (``--layout``)."""
FORMATS = ("onnx",)
"""Export formats (``--format``)."""
DEFAULT_OPSET = 17
"""ONNX opset of exported graphs (onnxruntime >= 1.12 runs it)."""
_PROBE_ROWS = 4


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote.

    Attributes:
        path: the ONNX file.
        layout: its layout (:data:`LAYOUTS`).
        inputs, outputs: ``(name, shape, meaning)`` of each graph input and output.
        metadata: the file's ``metadata_props``.
        probe_max_rel_diff: onnxruntime against the PyTorch module on a probe batch of 4 rows
            (energies over the training range or jets of 1 to n real slots, seed-0 noise):
            ``max |ort - torch| / max(|torch|, floor)`` over the outputs, ``floor`` the threshold
            ``delta`` (showers) or 1e-6 (jets); for ``points`` over coordinates (floor 1 mm) and
            energies (floor 1e-6 MeV), ``inf`` if a shower's number of points differs; ``None`` for
            ``par04-calodit``, whose noise is drawn inside the graph.
        par04_macro: Par04 macro commands for this file (Par04 layouts), else empty.
    """

    path: Path
    layout: str
    inputs: list[tuple[str, str, str]]
    outputs: list[tuple[str, str, str]]
    metadata: dict[str, str]
    probe_max_rel_diff: float | None
    par04_macro: list[str] = field(default_factory=list)


def check_layout(layout: str, fmt: str = "onnx") -> None:
    """Refuse an unknown layout or format (one-line :class:`UserError`)."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: unknown export format; choose one of {', '.join(FORMATS)}")
    if layout not in LAYOUTS:
        raise UserError(f"--layout {layout!r}: unknown layout; choose one of {', '.join(LAYOUTS)}")


MIN_OPSET = 13
"""Oldest ONNX opset showerforge exports (the graphs need opset 13 operators)."""


def supported_opsets() -> tuple[int, int]:
    """(oldest, newest) ONNX opset the installed torch exporter and onnx package can write."""
    try:
        from torch.onnx._constants import ONNX_MAX_OPSET as newest
    except ImportError:  # a torch without the constant: the TorchScript exporter's long-standing limit
        newest = 20
    try:
        import onnx

        newest = min(int(newest), int(onnx.defs.onnx_opset_version()))
    except ImportError:
        pass
    return MIN_OPSET, int(newest)


def check_opset(opset: int) -> None:
    """Refuse an opset the installed exporter cannot write (one-line :class:`UserError`), before any work."""
    lo, hi = supported_opsets()
    if not lo <= int(opset) <= hi:
        raise UserError(
            f"--opset {opset}: the installed exporter (torch {torch.__version__}) writes ONNX opsets {lo} to {hi}; "
            f"choose one in that range (default {DEFAULT_OPSET}; 15 for onnxruntime 1.11)"
        )


def loaded(model: Any) -> Any:
    """The loaded model itself; a path or name is refused (load it with :func:`showerforge.load`)."""
    if hasattr(model, "preprocessing") and hasattr(model, "model") and hasattr(model, "export_layouts"):
        return model
    raise UserError(
        f"{model}: showerforge.deploy exports a loaded model; use sf.export_onnx({str(model)!r}, ...) "
        "or sf.load() first"
    )


def check_model_layout(surrogate: Any, layout: str, name: Any = None) -> None:
    """Refuse a layout the model's kind does not export (one line naming the model's layouts)."""
    layouts = tuple(surrogate.export_layouts)
    if layout not in layouts:
        raise UserError(
            f"--layout {layout}: {name or surrogate.name} exports in the layouts {', '.join(layouts)}; "
            f"{layout!r} is for other models"
        )


def _probe_energies(surrogate: Any, n: int) -> np.ndarray:
    rng = surrogate.energy_range_mev or (1e3, 1e5)
    return np.geomspace(rng[0], rng[1], n).astype(np.float32).astype(np.float64)


def build_graph(
    surrogate: Any, layout: str, *, steps: int, solver: str
) -> tuple[nn.Module, tuple[torch.Tensor, ...], list[str], list[str]]:
    """The module of a layout with example inputs and the input/output names.

    Returns:
        ``(module, example_inputs, input_names, output_names)``; the module is in eval mode.
    """
    check_layout(layout)
    if layout == "jetnet":
        return _jet_graph(surrogate, steps=steps, solver=solver)
    if layout == "points":
        return _point_graph(surrogate, steps=steps, solver=solver)
    core = ShowerGraph(surrogate, steps=steps, solver=solver)
    n = _PROBE_ROWS
    inc = torch.from_numpy(_probe_energies(surrogate, n)).float()[:, None]
    noise = torch.randn(n, core.n_noise, generator=torch.Generator().manual_seed(0))
    module: nn.Module
    if layout == "calochallenge":
        module, example, names = core, (noise, inc), ["noise", "incident_energy"]
        return module.eval(), example, names, ["showers"]
    if layout == "par04":
        module = Par04Graph(core, surrogate.geometry)
        cond = torch.cat([inc / PAR04_MAX_ENERGY_MEV, torch.ones(n, 1), torch.zeros(n, 1), torch.ones(n, 1)], dim=1)
        return module.eval(), (torch.cat([noise, cond], dim=1),), ["input"], ["output"]
    module = Par04NoiseInsideGraph(core, surrogate.geometry)
    cond = torch.zeros(n, 8)
    cond[:, 0], cond[:, 2], cond[:, 3] = inc[:, 0] / 1000.0, torch.pi / 2, 1.0
    return module.eval(), (cond,), ["input"], ["output"]


def _jet_graph(
    surrogate: Any, *, steps: int, solver: str
) -> tuple[nn.Module, tuple[torch.Tensor, ...], list[str], list[str]]:
    module = JetGraph(surrogate, steps=steps, solver=solver).eval()
    n, slots = _PROBE_ROWS, surrogate.preprocessing.n_particles
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(n, slots, 3, generator=gen)
    types = torch.eye(5)[torch.arange(n) % 5]
    real = torch.tensor([slots, max(1, slots // 2), min(3, slots), 1])[:n]
    mask = (torch.arange(slots)[None, :] < real[:, None]).float()
    if module.with_pt:
        pt = torch.full((n, 1), 1000.0)
        return module, (noise, types, pt, mask), ["noise", "jet_type", "jet_pt", "mask"], ["particle_features"]
    if module.with_mass:
        rel_mass = torch.full((n, 1), 0.1)
        return module, (noise, types, rel_mass, mask), ["noise", "jet_type", "rel_mass", "mask"], ["particle_features"]
    return module, (noise, types, mask), ["noise", "jet_type", "mask"], ["particle_features"]


def _point_graph(
    surrogate: Any, *, steps: int, solver: str
) -> tuple[nn.Module, tuple[torch.Tensor, ...], list[str], list[str]]:
    module = PointGraph(surrogate, steps=steps, solver=solver).eval()
    n = _PROBE_ROWS
    gen = torch.Generator().manual_seed(0)
    summary_noise = torch.randn(n, module.n_summary, generator=gen)
    noise = torch.randn(n, module.n_slots, 4, generator=gen)
    inc = torch.from_numpy(_probe_energies(surrogate, n)).float()[:, None]
    return module, (summary_noise, noise, inc), ["summary_noise", "noise", "incident_energy"], ["points", "num_points"]


def _torch_export(
    module: nn.Module, example: tuple[torch.Tensor, ...], names: list[str], outputs: list[str], opset: int
) -> bytes:
    axes = {name: {0: "batch"} for name in [*names, *outputs]}
    with tempfile.TemporaryDirectory(prefix="showerforge-onnx-") as tmp:
        path = Path(tmp) / "graph.onnx"
        with warnings.catch_warnings(), exportable_ops(), torch.no_grad():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            torch.onnx.export(
                module,
                example,
                path,
                dynamo=False,
                opset_version=int(opset),
                input_names=names,
                output_names=outputs,
                dynamic_axes=axes,
            )
        return path.read_bytes()


def onnx_bytes(
    surrogate: Any, *, layout: str = "calochallenge", steps: int, solver: str, opset: int = DEFAULT_OPSET
) -> bytes:
    """The ONNX graph of a loaded shower model as bytes (no metadata; see :func:`export_onnx`)."""
    module, example, names, outputs = build_graph(surrogate, layout, steps=steps, solver=solver)
    return _torch_export(module, example, names, outputs, opset)


def par04_macro(surrogate: Any, layout: str, n_noise: int, path: str | Path) -> list[str]:
    """Macro commands of Geant4's Par04 example that match an exported file (Par04 layouts)."""
    geo = surrogate.geometry
    n_z, n_phi, n_r = geo.shape
    dr = geo.readout[0].r_edges_mm[1] - geo.readout[0].r_edges_mm[0]
    lines = [f"/Par04/inference/setModelPathName {path}"]
    if layout == "par04":
        lines += [
            "/Par04/inference/setModelType VAE",
            f"/Par04/inference/setSizeLatentVector {n_noise}",
            "/Par04/inference/setSizeConditionVector 4",
        ]
    else:
        lines += ["/Par04/inference/setModelType CaloDiT-2"]
    lines += [
        "/Par04/inference/setInferenceLibrary ONNX",
        f"/Par04/inference/setSizeOfRhoCells {dr:g} mm",
        f"/Par04/inference/setNbOfRhoCells {n_r}",
        f"/Par04/inference/setNbOfPhiCells {n_phi}",
        f"/Par04/inference/setNbOfZCells {n_z}",
    ]
    if geo.has_stack:
        lines.insert(-3, f"/Par04/inference/setSizeOfZCells {geo.layer_thickness_mm:g} mm")
    return lines


def _describe(layout: str, core: ShowerGraph, n_voxels: int) -> tuple[list[Any], list[Any]]:
    n = core.n_noise
    if layout == "calochallenge":
        return (
            [
                ("noise", f"[N, {n}]", "standard normal; the model's noise tensors concatenated in draw order"),
                ("incident_energy", "[N, 1]", "incident energy in MeV"),
            ],
            [("showers", f"[N, {n_voxels}]", "voxel energies in MeV, CaloChallenge order (layer, angle, radius)")],
        )
    if layout == "par04":
        return (
            [("input", f"[N, {n + 4}]", f"{n} standard normal values, E/1024000 MeV, theta[deg]/90, 0, 1")],
            [("output", f"[N, {n_voxels}]", "voxel energy / incident energy, Par04 mesh order (r, phi, z)")],
        )
    return (
        [("input", "[N, 8]", "E in GeV, phi, theta (rad), 5-slot geometry one-hot; noise drawn in the graph")],
        [("output", f"[N, {n_voxels}]", "voxel energies in GeV, Par04 mesh order (r, phi, z)")],
    )


def _describe_jets(module: JetGraph, slots: int) -> tuple[list[Any], list[Any]]:
    inputs = [
        ("noise", f"[N, {slots}, 3]", "standard normal"),
        ("jet_type", "[N, 5]", "one-hot jet type in JetNet order g, q, t, w, z"),
    ]
    if module.with_pt:
        inputs.append(("jet_pt", "[N, 1]", "jet pT in GeV"))
    if module.with_mass:
        inputs.append(("rel_mass", "[N, 1]", "relative jet mass m / pT of the particles to generate"))
    inputs.append(("mask", f"[N, {slots}]", "1 for the real particle slots (the first min(k, n)), 0 for padding"))
    return inputs, [("particle_features", f"[N, {slots}, 4]", "eta_rel, phi_rel, pt_rel, mask; pT-descending")]


def _describe_points(module: PointGraph) -> tuple[list[Any], list[Any]]:
    slots = module.n_slots
    inputs = [
        ("summary_noise", f"[N, {module.n_summary}]", "standard normal; the shower flow's noise"),
        ("noise", f"[N, {slots}, 4]", "standard normal; the point flow's noise (slots beyond num_points unused)"),
        ("incident_energy", "[N, 1]", "incident energy in MeV"),
    ]
    core = " (one core point per layer on the axis, after the layer's other points)" if module.n_core else ""
    outputs = [
        (
            "points",
            f"[N, {module.n_out}, 4]",
            f"x, y in mm, layer index, energy in MeV; sorted by depth, zero beyond num_points{core}",
        ),
        ("num_points", "[N]", "int64: points of each shower"),
    ]
    return inputs, outputs


def _points_metadata(surrogate: Any, module: PointGraph) -> dict[str, str]:
    from showerforge.models import get_solver

    inputs, outputs = _describe_points(module)
    model = module.model
    pre = surrogate.preprocessing
    return {
        "inputs": json.dumps(inputs),
        "outputs": json.dumps(outputs),
        "n_slots": str(module.n_slots),
        "n_core": str(module.n_core),
        "n_summary": str(module.n_summary),
        "n_layers": str(pre.n_layers),
        "n_max": str(pre.n_max),
        "summary_solver": model.summary_solver,
        "summary_steps": str(model.summary_steps),
        "summary_nfe": str(model.summary_steps * get_solver(model.summary_solver).nfe_per_step),
        "energy_range_mev": json.dumps(surrogate.energy_range_mev),
        "geometry": surrogate.geometry.to_json(),
    }


def _metadata(
    surrogate: Any, layout: str, module: nn.Module, steps: int, solver: str, macro: list[str]
) -> dict[str, str]:
    from showerforge._version import __version__
    from showerforge.models import get_solver

    common = {
        "producer": "showerforge",
        "showerforge_version": __version__,
        "torch_version": torch.__version__,
        "layout": layout,
        "layout_description": LAYOUTS[layout],
        "model": surrogate.name,
        "checkpoint_sha256": surrogate.sha256,
        "solver": solver,
        "steps": str(steps),
        "nfe": str(steps * get_solver(solver).nfe_per_step),
    }
    if isinstance(module, PointGraph):
        return common | _points_metadata(surrogate, module)
    if isinstance(module, JetGraph):
        slots = surrogate.preprocessing.n_particles
        inputs, outputs = _describe_jets(module, slots)
        cond = surrogate.preprocessing.conditioning
        return common | {
            "inputs": json.dumps(inputs),
            "outputs": json.dumps(outputs),
            "n_particles": str(slots),
            "condition": cond.kind,
        }
    core = module if isinstance(module, ShowerGraph) else module.core
    assert isinstance(core, ShowerGraph)
    inputs, outputs = _describe(layout, core, surrogate.preprocessing.n_voxels)
    meta = common | {
        "noise_width": str(core.n_noise),
        "noise_split": json.dumps(core.noise_sizes),
        "inputs": json.dumps(inputs),
        "outputs": json.dumps(outputs),
        "threshold_mev": repr(float(surrogate.preprocessing.threshold_mev or 0.0)),
        "energy_range_mev": json.dumps(surrogate.energy_range_mev),
        "geometry": surrogate.geometry.to_json(),
    }
    if macro:
        meta["par04_macro"] = "\n".join(macro)
    return meta


def _write(data: bytes, metadata: dict[str, str], out: Path) -> None:
    import onnx

    proto = onnx.load_from_string(data)
    del proto.metadata_props[:]
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = f"showerforge {metadata['model']} ({metadata['layout']}): {metadata['layout_description']}"
    onnx.checker.check_model(proto)
    with atomic_output(out) as tmp:
        onnx.save_model(proto, str(tmp))


def _probe(data: bytes, module: nn.Module, example: tuple[torch.Tensor, ...], floor: np.ndarray) -> float:
    """Max relative difference between onnxruntime and the torch module on the example inputs.

    ``floor`` (rows, 1): the threshold ``delta`` in the output's unit, the smallest non-zero voxel.
    """
    from showerforge.deploy.session import make_session

    sess = make_session(data, device="cpu")
    feeds = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), example)}
    got = sess.run(None, feeds)[0]
    with torch.no_grad():
        ref = module(*example).numpy()
    return float(np.max(np.abs(got - ref) / np.maximum(np.abs(ref), np.maximum(floor, 1e-30))))


def export_onnx(
    model: Any,
    output: str | Path,
    *,
    layout: str | None = None,
    steps: int | None = None,
    solver: str | None = None,
    opset: int = DEFAULT_OPSET,
    fmt: str = "onnx",
) -> ExportResult:
    """Export a loaded model (sampler + inverse preprocessing) as an ONNX file, atomically.

    ``sf.export_onnx`` takes a run directory, checkpoint or shipped name, checks the output
    against it and loads it through its kind before calling this.

    Args:
        model: a loaded surrogate (``sf.load(...)``); its ``export_layouts`` are the layouts it
            exports in, the first being the default.
        output: the ``.onnx`` file to write (checked writable and not an input before any work).
        layout: showers: ``"calochallenge"`` (default), ``"par04"`` or ``"par04-calodit"``; jets:
            ``"jetnet"`` (default); point clouds: ``"points"`` (default). See the module docstring.
        steps, solver: the ODE sampler unrolled into the graph (default: the model's).
        opset: ONNX opset (17 by default; 15 for onnxruntime 1.11).
        fmt: export format; ``"onnx"`` only.

    Returns:
        An :class:`ExportResult`, with the onnxruntime-vs-PyTorch difference on a probe batch.

    Raises:
        UserError: a bad model path, an unknown layout or format, a layout of the other data
            kind, a geometry that the Par04 mesh cannot express, an output that is an input or
            cannot be written.
    """
    out = Path(output)
    surrogate = loaded(model)
    require_noise_map(surrogate.model, "ONNX export")
    layout = layout or surrogate.export_layouts[0]
    check_layout(layout, fmt)
    check_model_layout(surrogate, layout)
    check_opset(opset)
    check_writable(out)
    if layout.startswith("par04"):
        check_par04_geometry(surrogate.geometry)
    from showerforge.generate.common import resolve_sampler

    solver_name, n_steps = resolve_sampler(surrogate, solver, steps)
    if n_steps < 1:
        raise UserError(f"--steps must be >= 1, got {n_steps}")
    module, example, names, outputs = build_graph(surrogate, layout, steps=n_steps, solver=solver_name)
    need = int(getattr(module, "min_opset", MIN_OPSET))
    if int(opset) < need:
        raise UserError(
            f"--opset {opset}: this model's graph needs ONNX opset {need} or newer (default {DEFAULT_OPSET})"
        )
    data = _torch_export(module, example, names, outputs, opset)
    macro = []
    if isinstance(module, (Par04Graph, Par04NoiseInsideGraph)):
        macro = par04_macro(surrogate, layout, module.core.n_noise, out.name)
    meta = _metadata(surrogate, layout, module, n_steps, solver_name, macro)
    probe = None
    if layout == "points":
        probe = _probe_points(data, module, example)
    elif layout != "par04-calodit":
        probe = _probe(data, module, example, _probe_floor(surrogate, layout))
        meta["probe_max_rel_diff"] = f"{probe:.3g}"
    _write(data, meta, out)
    inputs, outs = json.loads(meta["inputs"]), json.loads(meta["outputs"])
    return ExportResult(out, layout, [tuple(i) for i in inputs], [tuple(o) for o in outs], meta, probe, macro)


def _probe_points(data: bytes, module: nn.Module, example: tuple[torch.Tensor, ...]) -> float:
    """:func:`~showerforge.deploy.points.points_difference` between onnxruntime and the torch module
    (coordinates against 1 mm, energies against 1e-6 MeV); ``inf`` when a number of points differs."""
    from showerforge.deploy.session import make_session

    sess = make_session(data, device="cpu")
    feeds = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), example)}
    got, got_n = sess.run(None, feeds)
    with torch.no_grad():
        ref, ref_n = (t.numpy() for t in module(*example))
    if not np.array_equal(got_n, ref_n):
        return float("inf")
    return points_difference(got, ref)[0]


def _probe_floor(surrogate: Any, layout: str) -> np.ndarray:
    """The smallest output value the probe's relative difference is taken against, per probe row."""
    if layout == "jetnet":
        return np.full((_PROBE_ROWS, 1, 1), 1e-6)
    delta = float(surrogate.preprocessing.threshold_mev or 0.0)
    inc = _probe_energies(surrogate, _PROBE_ROWS)[:, None]
    return delta / inc if layout == "par04" else np.full_like(inc, delta)
