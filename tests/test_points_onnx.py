"""ONNX export of point-cloud models (``cfm-points``, layout ``points``): the graph in onnxruntime
against :func:`sample_points` on the same noise, the calibrations' known answers on the graph's
output, the torch port of ``decode_summaries``, a 1-step student, and the refusals.

The model is a run trained for one epoch on 80 synthetic showers of the ``mini`` readout, its
weights then perturbed (scale 0.1) so that both flows are far from the zero field of an untrained
network. Parity measure: ``|onnx - torch| / max(|torch|, floor)`` per point column, floors 1 mm
for x, y and 1e-6 MeV for energies; layers and ``num_points`` exactly.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import showerforge as sf
from showerforge.data.points import PointClouds, write_points
from showerforge.data.points_preprocess import PointsPreprocessor, face_half_widths, shower_summaries
from showerforge.deploy import export_onnx, make_session
from showerforge.deploy.points import PointGraph, SummaryDecoding, points_difference
from showerforge.errors import UserError
from showerforge.generate.calo_points import CPU_POINT_BUDGET, PointSurrogate, point_batches, sample_points
from showerforge.generate.common import CPU_SLICE
from showerforge.geometry import PRESETS
from showerforge.models import build_model
from showerforge.training.calo_points import train_points

torch.set_num_threads(1)
TOL = 1e-4
SMALL = {"d_model": 16, "d_global": 8, "n_blocks": 1, "summary_width": 16, "summary_blocks": 1}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A cfm-points run: one epoch on 80 synthetic showers (3-24 points, 1-10 GeV) of ``mini``."""
    geo = PRESETS["mini"]
    rng = np.random.default_rng(0)
    sizes = rng.integers(3, 25, 80)
    inc = np.exp(rng.uniform(np.log(1e3), np.log(1e4), 80))
    pts = [
        np.stack(
            [
                rng.normal(0, 8, k),
                rng.normal(0, 8, k),
                rng.integers(0, geo.n_layers, k),
                rng.exponential(e / k / 100, k),
            ],
            1,
        )
        for k, e in zip(sizes, inc)
    ]
    clouds = PointClouds(np.concatenate(pts), np.concatenate([[0], np.cumsum(sizes)]), inc, geo)
    tmp = tmp_path_factory.mktemp("points-onnx")
    data = write_points(tmp / "points.h5", clouds)
    config = {**SMALL, "summary_steps": 3, "steps": 2}
    train_points(data, tmp / "run", epochs=1, config_overrides=config, progress=False)
    return tmp / "run"


@pytest.fixture(scope="module")
def surrogate(run) -> PointSurrogate:
    sur = sf.load(run)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in sur.model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return sur


def sampler_noise(sur: PointSurrogate, e: np.ndarray, seed: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The noise :func:`sample_points` draws on CPU, as graph inputs: the shower flow's (N, n_summary)
    and the point flow's, drawn per batch of showers sorted by size and padded to (N, n_slots, 4)."""
    summary_noise = torch.randn((len(e), sur.preprocessing.n_summary), generator=torch.Generator().manual_seed(seed))
    counts = sur._summaries(e, seed)[1].n_points
    order = np.argsort(counts, kind="stable")
    noise = np.zeros((len(e), sur.model.config["n_particles"], 4), np.float32)
    gen = torch.Generator().manual_seed(seed + 1)
    for idx in point_batches(counts[order], min(batch_size, CPU_SLICE), CPU_POINT_BUDGET, order):
        width = max(1, int(counts[idx].max()))
        noise[idx, :width] = torch.randn((len(idx), width, 4), generator=gen).numpy()
    return summary_noise.numpy(), noise


def run_graph(path: Path, sur: PointSurrogate, e: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    summary_noise, noise = sampler_noise(sur, e, seed, batch_size=64)
    feeds = {"summary_noise": summary_noise, "noise": noise, "incident_energy": e.astype(np.float32)[:, None]}
    points, num = make_session(str(path), device="cpu").run(None, feeds)
    return points, num


def padded(clouds: PointClouds, n_slots: int) -> np.ndarray:
    out = np.zeros((len(clouds), n_slots, 4), np.float32)
    for i, n in enumerate(clouds.num_points):
        out[i, :n] = clouds.event(i)
    return out


def assert_parity(points: np.ndarray, num: np.ndarray, ref: PointClouds) -> tuple[float, int]:
    """The graph's output equals the sampler's showers: counts and layers exactly, values to TOL
    (:func:`points_difference`: a point may swap places with one of equal depth in its layer)."""
    assert num.dtype == np.int64 and np.array_equal(num, ref.num_points)
    assert all((points[i, n:] == 0).all() for i, n in enumerate(num))  # padded slots are zero
    want = padded(ref, points.shape[1])
    assert np.array_equal(points[..., 2], want[..., 2])
    rel, swapped = points_difference(points, want)
    assert rel <= TOL, (rel, swapped)
    return rel, swapped


def energies(sur: PointSurrogate, n: int) -> np.ndarray:
    lo, hi = sur.energy_range_mev
    return np.geomspace(lo, hi, n).astype(np.float32).astype(np.float64)  # float32 inputs, exactly


def test_points_graph_matches_the_torch_sampler(surrogate, tmp_path):
    res = export_onnx(surrogate, tmp_path / "p.onnx")  # the model's only layout: points
    assert res.layout == "points" and res.probe_max_rel_diff is not None and res.probe_max_rel_diff <= TOL
    assert [i[0] for i in res.inputs] == ["summary_noise", "noise", "incident_energy"]
    assert [o[0] for o in res.outputs] == ["points", "num_points"]
    meta = res.metadata
    assert meta["n_slots"] == str(surrogate.model.config["n_particles"]) and meta["summary_steps"] == "3"
    assert meta["n_core"] == "0" and res.outputs[0][1] == f"[N, {meta['n_slots']}, 4]"
    assert meta["checkpoint_sha256"] == surrogate.sha256 and meta["steps"] == "2" and "geometry" in meta
    e = energies(surrogate, 200)
    ref = sample_points(surrogate, e, seed=5, batch_size=64)
    assert len(np.unique(ref.num_points)) > 5  # showers of many sizes
    points, num = run_graph(res.path, surrogate, e, seed=5)
    assert_parity(points, num, ref)
    # the same module run eagerly in torch: the sampler's showers to float64 rounding
    summary_noise, noise = sampler_noise(surrogate, e, 5, 64)
    graph = PointGraph(surrogate, steps=2, solver="midpoint").eval()
    with torch.no_grad():
        tp, tn = graph(torch.from_numpy(summary_noise), torch.from_numpy(noise), torch.from_numpy(e[:, None]).float())
    flat = np.concatenate([tp[i, :n].numpy() for i, n in enumerate(tn.numpy())])
    np.testing.assert_allclose(flat, ref.points, rtol=1e-6, atol=0)


def test_graph_output_obeys_the_drawn_summaries(surrogate, tmp_path):
    """Calibration known answer on the graph's output: points and energy per layer and the centre of
    gravity are the summaries the shower flow drew (decoded by numpy's ``decode_summaries``)."""
    path = export_onnx(surrogate, tmp_path / "p.onnx").path
    e = energies(surrogate, 60)
    points, num = run_graph(path, surrogate, e, seed=8)
    drawn = surrogate._summaries(e, 8)[1]
    flat = np.concatenate([points[i, :n] for i, n in enumerate(num)])
    got = shower_summaries(PointClouds(flat, np.concatenate([[0], np.cumsum(num)]), e), surrogate.geometry.n_layers)
    assert np.array_equal(got.counts, drawn.counts)
    np.testing.assert_allclose(got.energies, drawn.energies, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.cog, drawn.cog, rtol=1e-4, atol=1e-3)
    depth_sorted = all(np.all(np.diff(points[i, :n, 2]) >= 0) for i, n in enumerate(num))
    assert depth_sorted


@pytest.mark.parametrize("core", [False, True])
def test_summary_decoding_is_the_numpy_decoding(core):
    """The torch port of decode_summaries / encode_summaries on a grid of wild features: counts
    exactly, energies, core energies and the re-encoded condition to rounding (rows with every
    fraction zero, capped and floored totals, layers without points included)."""
    pre = PointsPreprocessor.example(6)
    pre.core = core
    pre.sum_mu, pre.sum_sd = np.zeros(pre.n_summary), np.ones(pre.n_summary)
    pre.n_max = 40
    rng = np.random.default_rng(1)
    feats = rng.normal(0.0, 3.0, (400, pre.n_summary)).astype(np.float32)
    feats[:20, 2:8] = -40.0  # no layer gets energy: the largest entry takes it all
    feats[20:40, 1] = 30.0  # more points than n_max
    feats[40:60, 1] = 0.5  # one or two points: most layers have none
    inc = np.exp(rng.uniform(np.log(1e3), np.log(1e5), 400))
    want = pre.decode_summaries(feats, inc)
    dec = SummaryDecoding(pre)
    counts, e, cog, core_e, cond = dec(torch.from_numpy(feats), torch.from_numpy(inc))
    assert np.array_equal(counts.numpy(), want.counts)
    np.testing.assert_allclose(e.numpy(), want.energies, rtol=1e-12, atol=0)
    np.testing.assert_allclose(cog.numpy(), want.cog, rtol=0, atol=0)
    if core:
        np.testing.assert_allclose(core_e.numpy(), want.core, rtol=1e-12, atol=0)
        assert ((want.counts == 0) & (want.energies > 0)).any()  # layers that are all core
    else:
        assert (core_e.numpy() == 0).all() and want.core is None
    np.testing.assert_allclose(cond.numpy(), pre.encode_summaries(want, inc), rtol=1e-6, atol=1e-6)


def test_graph_applies_the_occupancy_calibration(surrogate, tmp_path):
    """With an occupancy calibration (ratios from 0.5 to 1.6, a layer left alone, knots of several
    lengths) the graph draws the corrected numbers of points, as the sampler does, and the counts
    port is the numpy one exactly on a grid of counts, the cap included."""
    import copy

    from showerforge.data.points_preprocess import apply_occupancy
    from showerforge.deploy.points import OccupancyCounts

    pre = copy.deepcopy(surrogate.preprocessing)
    n_l = pre.n_layers
    pre.occupancy = {
        "log_n": [[0.0, 1.0, 2.0, 3.5][: 2 + layer % 3] for layer in range(n_l - 1)] + [[0.0]],
        "log_ratio": [list(np.log(np.linspace(0.5, 1.6, 2 + layer % 3))) for layer in range(n_l - 1)] + [[0.0]],
    }
    sur = dataclasses.replace(surrogate, preprocessing=pre)
    e = energies(sur, 120)
    ref = sample_points(sur, e, seed=6, batch_size=64)
    plain = sample_points(surrogate, e, seed=6, batch_size=64)
    assert not np.array_equal(ref.num_points, plain.num_points)  # the correction changed the showers
    points, num = run_graph(export_onnx(sur, tmp_path / "o.onnx").path, sur, e, seed=6)
    assert_parity(points, num, ref)
    counts = np.random.default_rng(2).integers(0, 40, (500, n_l))
    counts[:50] = 0
    for cap in (10_000, 150):
        want = apply_occupancy(counts, pre.occupancy, cap)
        got = OccupancyCounts(pre.occupancy, cap)(torch.from_numpy(counts.astype(np.float64))).numpy()
        assert np.array_equal(got, want) and got.sum(axis=1).max() <= cap


def test_graph_applies_the_radial_and_centre_calibrations(surrogate, tmp_path):
    """With a radial energy calibration table and centre-of-gravity factors (1.4, 0.6) and shifts
    (0.3, -0.2) mm, the graph gives the sampler's showers on the same noise, within the parity
    tolerance, and the imposed centre of gravity is the drawn one through the factors and shifts."""
    import copy

    from showerforge.data.points_preprocess import RADIAL_EDGES_MM

    pre = copy.deepcopy(surrogate.preprocessing)
    rng = np.random.default_rng(4)
    # a table of the full shape, 1e-7 apart between radial bins: a point whose distance from the axis
    # differs by float rounding between torch and onnxruntime may change bin without changing the
    # comparison (weights that differ only between energy bins and layers cancel in each layer's
    # rescaling; the radial bins themselves: the next test, on equal inputs)
    strong = rng.uniform(-np.log(4), np.log(4), (4, pre.n_layers, 1))
    pre.radial = {
        "edges_mm": list(RADIAL_EDGES_MM),
        "energy_edges_mev": [2e3, 4e3, 6e3],
        "log_weight": (strong + 1e-7 * np.arange(len(RADIAL_EDGES_MM))).tolist(),
    }
    pre.cog_scale, pre.cog_shift = np.array([1.4, 0.6]), np.array([0.3, -0.2])
    sur = dataclasses.replace(surrogate, preprocessing=pre)
    e = energies(sur, 120)
    ref = sample_points(sur, e, seed=6, batch_size=64)
    plain = sample_points(surrogate, e, seed=6, batch_size=64)
    assert not np.allclose(ref.points[:, :2], plain.points[:, :2], atol=1e-3)  # the centre calibration moved them
    # the centre of gravity is the drawn one through the factors and shifts (the point flow's condition is not)
    drawn = surrogate._summaries(e, 6)[1]
    got = shower_summaries(ref, pre.n_layers)
    np.testing.assert_allclose(got.cog, drawn.cog * [1.4, 0.6] + [0.3, -0.2], atol=1e-3)
    np.testing.assert_array_equal(sur._summaries(e, 6)[0], surrogate._summaries(e, 6)[0])
    points, num = run_graph(export_onnx(sur, tmp_path / "r.onnx").path, sur, e, seed=6)
    assert_parity(points, num, ref)


def test_point_calibration_port_weights_each_radial_bin_as_numpy(surrogate):
    """PointCalibration (the graph's decoding and calibration, eager torch) against
    decode_points + calibrate on the same point-flow output, with weights 1/4 to 4 per incident-energy
    bin, layer and radial bin: the same points and energies to 1e-9 (equal float64 inputs, so every
    point falls in the same bins)."""
    import copy

    from showerforge.data.points_preprocess import RADIAL_EDGES_MM, Summaries, calibrate
    from showerforge.deploy.points import PointCalibration

    pre = copy.deepcopy(surrogate.preprocessing)
    rng = np.random.default_rng(7)
    n_l, n, width = pre.n_layers, 60, 40
    pre.radial = {
        "edges_mm": list(RADIAL_EDGES_MM),
        "energy_edges_mev": [2e3, 5e3],
        "log_weight": rng.uniform(-np.log(4), np.log(4), (3, n_l, len(RADIAL_EDGES_MM))).tolist(),
    }
    x = rng.normal(0.0, 1.5, (n, width, 4)).astype(np.float32)
    counts = rng.multinomial(width - 5, np.ones(n_l) / n_l, size=n).astype(np.int64)
    energies = rng.uniform(1.0, 50.0, (n, n_l)) * (counts > 0)
    cog = rng.normal(0.0, 0.5, (n, 2))
    inc = np.geomspace(1e3, 1e4, n)
    mask = np.arange(width)[None, :] < counts.sum(axis=1)[:, None]
    want = calibrate(pre.decode_points(x, mask), Summaries(counts, energies, cog), inc, surrogate.geometry, pre.radial)
    port = PointCalibration(pre, face_half_widths(surrogate.geometry, n_l))
    got, num = port(
        *(torch.from_numpy(a) for a in (x, counts.astype(np.float64), energies, cog)), None, torch.from_numpy(inc)
    )
    assert np.array_equal(num.numpy(), want.num_points)
    rel, _ = points_difference(got.numpy(), padded(want, width).astype(np.float64))
    assert rel < 1e-6
    plain = calibrate(pre.decode_points(x, mask), Summaries(counts, energies, cog), inc, surrogate.geometry)
    assert not np.allclose(plain.points[:, 3], want.points[:, 3], rtol=1e-2)  # the weights did act


def test_one_step_student_exports(surrogate, tmp_path):
    """A distilled 1-step model (config ``solver=euler, steps=1``) exports its one step."""
    config = {**surrogate.config, "solver": "euler", "steps": 1}
    model = build_model(config)
    model.load_state_dict(surrogate.model.state_dict())
    student = dataclasses.replace(surrogate, model=model.eval(), config=config)
    res = export_onnx(student, tmp_path / "s.onnx")
    assert res.metadata["solver"] == "euler" and res.metadata["steps"] == "1" and res.metadata["nfe"] == "1"
    e = energies(student, 100)
    points, num = run_graph(res.path, student, e, seed=2)
    assert_parity(points, num, sample_points(student, e, seed=2, batch_size=64))


def test_points_layout_from_the_command_line_and_refusals(run, surrogate, tmp_path):
    from click.testing import CliRunner

    from showerforge.cli import cli

    args = ["export", "--model", str(run)]
    res = CliRunner().invoke(cli, [*args, "--layout", "points", "-o", str(tmp_path / "m.onnx")])
    assert res.exit_code == 0, res.output
    assert "output num_points [N]" in res.output and (tmp_path / "m.onnx").is_file()
    res = CliRunner().invoke(cli, [*args, "--layout", "calochallenge", "-o", str(tmp_path / "c.onnx")])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
    assert "exports in the layouts points" in res.output and not (tmp_path / "c.onnx").exists()
    for layout in ("par04", "jetnet"):
        with pytest.raises(UserError, match="exports in the layouts points"):
            export_onnx(surrogate, tmp_path / "x.onnx", layout=layout)


def test_points_difference_forgives_swaps_within_a_layer_only():
    rng = np.random.default_rng(0)
    a = np.zeros((1, 6, 4))
    a[0, :5] = np.c_[rng.normal(0, 5, (5, 2)), [0, 0, 1, 1, 1], rng.uniform(1, 2, 5)]
    b = a.copy()
    b[0, [2, 3]] = b[0, [3, 2]]  # two points of layer 1 in the other order
    assert points_difference(a, b) == (0.0, 2)
    c = a.copy()
    c[0, [1, 2], :2] = c[0, [2, 1], :2]  # the same swap across a layer boundary is a difference
    assert points_difference(a, c)[0] > 0.1
    d = a.copy()
    d[0, 4, 3] *= 1 + 1e-5
    assert points_difference(d, a) == (pytest.approx(1e-5), 0)


@pytest.fixture(scope="module")
def core_surrogate(tmp_path_factory) -> PointSurrogate:
    """A cfm-points run with the core split: one epoch on 60 synthetic ild-ecal showers whose points
    sit on the fine squares (1.018 mm), with an axis point in most layers; weights perturbed."""
    geo = PRESETS["ild-ecal"]
    pitch = geo.readout[0].fine_mm
    rng = np.random.default_rng(1)
    inc = np.exp(rng.uniform(np.log(1e4), np.log(9e4), 60))
    showers = []
    for e in inc:
        rows = []
        for layer in range(geo.n_layers):
            k = int(rng.integers(0, 6))
            xy = pitch * rng.integers(-8, 9, (k, 2))
            xy = xy[np.any(xy != 0, axis=1)]
            rows.append(np.column_stack([xy, np.full(len(xy), layer), rng.exponential(e / 1e5, len(xy))]))
            if rng.random() < 0.8:
                rows.append(np.array([[0.0, 0.0, layer, rng.exponential(e / 3e4)]]))
        showers.append(np.concatenate(rows))
    sizes = [len(p) for p in showers]
    clouds = PointClouds(np.concatenate(showers), np.concatenate([[0], np.cumsum(sizes)]), inc, geo)
    tmp = tmp_path_factory.mktemp("points-onnx-core")
    data = write_points(tmp / "points.h5", clouds)
    config = {**SMALL, "summary_steps": 3, "steps": 2, "core": True}
    train_points(data, tmp / "run", epochs=1, config_overrides=config, progress=False)
    sur = sf.load(tmp / "run")
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in sur.model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return sur


def test_core_split_graph_matches_the_torch_sampler(core_surrogate, tmp_path):
    """With the core split the graph draws the core fractions, puts one point per layer on the axis
    after the layer's other points, and equals the sampler's showers."""
    sur = core_surrogate
    assert sur.preprocessing.core and sur.preprocessing.n_summary == 3 * 30 + 4
    res = export_onnx(sur, tmp_path / "core.onnx")
    assert res.probe_max_rel_diff is not None and res.probe_max_rel_diff <= TOL
    e = energies(sur, 40)
    ref = sample_points(sur, e, seed=6, batch_size=64)
    points, num = run_graph(res.path, sur, e, seed=6)
    assert points.shape[1] == sur.model.config["n_particles"] + 30
    assert res.metadata["n_core"] == "30" and res.outputs[0][1] == f"[N, {points.shape[1]}, 4]"
    assert_parity(points, num, ref)
    drawn = sur._summaries(e, 6)[1]
    for i, n in enumerate(num):
        p = points[i, :n]
        axis = (p[:, 0] == 0) & (p[:, 1] == 0)
        assert np.array_equal(p[axis, 2].astype(int), np.nonzero(drawn.core[i] > 0)[0])
    assert (drawn.core > 0).mean() > 0.3  # the check above sees core points


def cells_table(rng: np.random.Generator, strong: bool) -> dict:
    """A cell-energy calibration on the full grid, per incident-energy bin: random shifts within the
    clip at every node (``strong``), or a smooth one (``0.25 sin(2 log10 E)`` plus a constant per bin)."""
    from showerforge.data.points_preprocess import CELL_GRID_LOG10, CELL_MAX_LOG10_SHIFT

    nodes = int(CELL_GRID_LOG10[2])
    if strong:
        shift = rng.uniform(-CELL_MAX_LOG10_SHIFT, CELL_MAX_LOG10_SHIFT, (3, nodes))
    else:
        grid = np.linspace(CELL_GRID_LOG10[0], CELL_GRID_LOG10[1], nodes)
        shift = rng.uniform(-0.05, 0.05, (3, 1)) + 0.25 * np.sin(2.0 * grid)[None, :]
    return {"energy_edges_mev": [2e4, 5e4], "grid_log10": list(CELL_GRID_LOG10), "shift": shift.tolist()}


def near_cell_edge(points: np.ndarray, geo, reach_mm: float = 1e-3) -> bool:
    """Whether a point (x, y mm) lies within ``reach_mm`` of an edge of its layer's cells."""
    layer = np.clip(np.rint(points[:, 2]).astype(int), 0, geo.n_layers - 1)
    width = np.asarray([lay.crystal_mm for lay in geo.readout])[layer]
    side = np.asarray([lay.n_crystals for lay in geo.readout])[layer]
    u = points[:, :2] / width[:, None] + 0.5 * side[:, None]
    return bool((np.abs(u - np.rint(u)) * width[:, None] < reach_mm).any())


def test_point_calibration_port_maps_each_cell_as_numpy(core_surrogate):
    """PointCalibration with a cell-energy calibration (random shifts per energy bin and grid node)
    against decode_points + calibrate on the same point-flow output, with the core split: the same
    points and energies to 1e-6; the map did act."""
    import copy

    from showerforge.data.points_preprocess import Summaries, calibrate
    from showerforge.deploy.points import PointCalibration

    sur = core_surrogate
    pre = copy.deepcopy(sur.preprocessing)
    rng = np.random.default_rng(8)
    pre.cells = cells_table(rng, strong=True)
    n_l, n, width = pre.n_layers, 40, 60
    x = rng.normal(0.0, 1.0, (n, width, 4)).astype(np.float32)
    counts = rng.multinomial(width - 5, np.ones(n_l) / n_l, size=n).astype(np.int64)
    energies = rng.uniform(1.0, 50.0, (n, n_l)) * (counts > 0)
    core = energies * rng.uniform(0.0, 0.5, (n, n_l))
    cog = rng.normal(0.0, 0.5, (n, 2))
    inc = np.geomspace(1e4, 9e4, n)
    mask = np.arange(width)[None, :] < counts.sum(axis=1)[:, None]
    s = Summaries(counts, energies, cog, core)
    want = calibrate(pre.decode_points(x, mask), s, inc, sur.geometry, None, pre.cells)
    port = PointCalibration(pre, face_half_widths(sur.geometry, n_l), sur.geometry)
    got, num = port(*(torch.from_numpy(a) for a in (x, counts.astype(np.float64), energies, cog, core, inc)))
    assert np.array_equal(num.numpy(), want.num_points)
    rel, _ = points_difference(got.numpy(), padded(want, got.shape[1]).astype(np.float64))
    assert rel < 1e-6
    plain = calibrate(pre.decode_points(x, mask), s, inc, sur.geometry)
    assert not np.allclose(plain.points[:, 3], want.points[:, 3], rtol=1e-2)  # the map did act
    np.testing.assert_allclose(shower_summaries(want, n_l).energies, energies, rtol=1e-6)


def test_graph_applies_the_cell_calibration(core_surrogate, tmp_path):
    """With a smooth cell-energy calibration the graph equals the sampler's showers on the same noise
    (a shower may differ only where one of its points lies within 1e-3 mm of a cell edge, so that
    float rounding between torch and onnxruntime can move it to the next cell, whose energy then
    differs); it needs ONNX opset 16 (a sum over each cell's points) and refuses opset 15 in one line."""
    import copy

    sur = core_surrogate
    pre = copy.deepcopy(sur.preprocessing)
    pre.cells = cells_table(np.random.default_rng(9), strong=False)
    cal = dataclasses.replace(sur, preprocessing=pre)
    e = energies(cal, 40)
    ref = sample_points(cal, e, seed=6, batch_size=64)
    assert not np.allclose(ref.points[:, 3], sample_points(sur, e, seed=6, batch_size=64).points[:, 3], rtol=1e-3)
    res = export_onnx(cal, tmp_path / "cells.onnx")
    points, num = run_graph(res.path, cal, e, seed=6)
    assert np.array_equal(num, ref.num_points)
    want = padded(ref, points.shape[1])
    assert np.array_equal(points[..., 2], want[..., 2])
    differ = [i for i in range(len(e)) if points_difference(points[i : i + 1], want[i : i + 1])[0] > TOL]
    assert len(differ) <= 2 and all(near_cell_edge(ref.event(i), sur.geometry) for i in differ), differ
    with pytest.raises(UserError, match="opset 16"):
        export_onnx(cal, tmp_path / "old.onnx", opset=15)
    assert not (tmp_path / "old.onnx").exists()


def test_depth_tokens_graph_matches_the_torch_sampler(run, tmp_path):
    """A point flow with depth tokens (attention between tokens along the depth) exports and its
    graph equals the sampler's showers on the same noise."""
    config = {**SMALL, "summary_steps": 3, "steps": 2, "depth_tokens": 4}
    train_points(run.parent / "points.h5", tmp_path / "run", epochs=1, config_overrides=config, progress=False)
    sur = sf.load(tmp_path / "run")
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in sur.model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    assert len(sur.model.velocity.depth) == 1
    res = export_onnx(sur, tmp_path / "depth.onnx")
    assert res.probe_max_rel_diff is not None and res.probe_max_rel_diff <= TOL
    e = energies(sur, 60)
    points, num = run_graph(res.path, sur, e, seed=3)
    assert_parity(points, num, sample_points(sur, e, seed=3, batch_size=64))
