"""``cfm-points``: preprocessing round trips, the calibrations' known answers, masks, and the chain
train -> generate -> inspect on real Geant4 ild-ecal photons."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from showerforge.data.points import PointClouds, points_to_cells, read_points
from showerforge.data.points_preprocess import PointsPreprocessor, Summaries, calibrate, core_mask, shower_summaries
from showerforge.errors import UserError
from showerforge.geometry import PRESETS
from showerforge.models import MODELS

ILD = ["simulate", "calo", "--geometry", "ild-ecal", "--particle", "gamma", "--energy", "5:15GeV"]
ILD += ["--spectrum", "uniform", "--n", "40", "--seed", "11", "--workers", "1", "--shard-size", "20", "--points"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``showerforge ARGS`` in a fresh interpreter, output captured."""
    command = [sys.executable, "-m", "showerforge", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def clouds(simulated) -> PointClouds:
    return read_points(simulated(*ILD))


def test_encodings_invert(clouds: PointClouds) -> None:
    pre = PointsPreprocessor(30).fit(clouds, seed=3)
    # ild-ecal scores 5 x 5 fine squares per 5.09 mm cell: x and y are dequantised within them
    np.testing.assert_allclose(pre.grid_mm, 5.09 / 5)
    enc = pre.encode_points(clouds.points, seed=3)
    mask = np.ones((1, len(enc)), bool)
    back = pre.decode_points(enc[None], mask)[0]
    # energy to float32 precision, the depth within its layer, x and y within the point's fine square
    np.testing.assert_allclose(back[:, 3], clouds.points[:, 3], rtol=2e-4)
    assert np.array_equal(np.floor(back[:, 2]), clouds.points[:, 2])
    offset = back[:, :2] - clouds.points[:, :2]
    assert np.abs(offset).max() <= 0.5 * 1.018 * (1 + 1e-3)
    assert np.abs(offset).max() > 0.4 * 1.018 and abs(offset.mean()) < 0.02  # uniform, centred
    # ... so the dequantised points fall into the same cells, with the same energies (no threshold:
    # a cell at the threshold could go either way with the float32 energies)
    back[:, 2] = np.floor(back[:, 2])
    moved = PointClouds(back.astype(np.float32), clouds.offsets, clouds.incident_mev, clouds.geometry)
    a, b = points_to_cells(clouds, threshold_mip=0.0), points_to_cells(moved, threshold_mip=0.0)
    assert np.array_equal(a.event, b.event) and np.array_equal(a.cell, b.cell)
    np.testing.assert_allclose(b.energy_mev, a.energy_mev, rtol=1e-4)
    # a state without the grid (fitted before dequantisation) leaves x and y on their squares
    old = PointsPreprocessor(30, {k: v for k, v in pre.state().items() if k != "grid_mm"})
    back = old.decode_points(old.encode_points(clouds.points, seed=3)[None], mask)[0]
    np.testing.assert_allclose(back[:, :2], clouds.points[:, :2], rtol=2e-4, atol=2e-4)
    # summaries: counts exactly, energies and centres to float32 precision
    s = shower_summaries(clouds, 30)
    d = pre.decode_summaries(pre.encode_summaries(s, clouds.incident_mev), clouds.incident_mev)
    assert np.array_equal(d.counts, s.counts)
    np.testing.assert_allclose(d.energies, s.energies, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(d.cog, s.cog, atol=1e-3)
    # the state travels as JSON
    again = PointsPreprocessor(30, pre.state())
    assert np.array_equal(again.encode_points(clouds.points, seed=3), enc)


def test_calibrations_give_the_drawn_summaries_exactly() -> None:
    rng = np.random.default_rng(0)
    n_layers, n = 5, 7
    counts = rng.integers(0, 20, (n, n_layers))
    counts[0] = 0
    counts[0, 2] = 3
    energies = np.where(counts > 0, rng.uniform(0.5, 50.0, (n, n_layers)), 0.0)
    cog = rng.normal(0, 3.0, (n, 2))
    target = Summaries(counts, energies, cog)
    points = []
    for i in range(n):
        m = int(counts[i].sum())
        p = np.stack(
            [rng.normal(0, 10, m), rng.normal(0, 10, m), rng.uniform(0, n_layers, m), rng.exponential(1.0, m)], 1
        )
        points.append(p)
    out = calibrate(points, target, np.full(n, 1e4), None)
    got = shower_summaries(out, n_layers)
    assert np.array_equal(got.counts, counts)
    np.testing.assert_allclose(got.energies, energies, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.cog, cog, atol=1e-3)
    # the depth order survives: the deepest generated point lands in the deepest filled layer
    deepest = int(np.argmax(points[1][:, 2]))
    assert out.event(1)[:, 2].max() == np.nonzero(counts[1])[0].max()
    assert deepest >= 0


def test_core_split_rebuilds_the_shower_from_its_own_summaries(clouds: PointClouds) -> None:
    """Geant4's points less the axis squares, calibrated with the shower's own summaries (core split),
    give back the shower's cells exactly; the summaries survive the encoding."""
    pre = PointsPreprocessor(30, core=True).fit(clouds, seed=3)
    assert pre.n_summary == 3 * 30 + 4
    s = pre.summaries_of(clouds)
    on_axis = core_mask(clouds.points, pre.grid_mm)
    # Geant4 puts at most one point in a layer's axis square, at its centre
    key = clouds.event_index()[on_axis] * 30 + clouds.points[on_axis, 2].astype(int)
    assert len(np.unique(key)) == on_axis.sum() and (clouds.points[on_axis, :2] == 0).all()
    assert np.array_equal(
        s.counts.sum(axis=1), clouds.num_points - np.bincount(clouds.event_index()[on_axis], minlength=len(clouds))
    )
    assert 0.05 < s.core.sum() / s.energies.sum() < 0.5  # a photon shower's core: a fifth of its energy
    d = pre.decode_summaries(pre.encode_summaries(s, clouds.incident_mev), clouds.incident_mev)
    assert np.array_equal(d.counts, s.counts)
    np.testing.assert_allclose(d.core, s.core, rtol=1e-4, atol=1e-4 * s.energies.max())
    rest = pre.flow_points(clouds)
    pts = [rest.event(i).astype(np.float64) for i in range(len(rest))]
    out = calibrate(pts, s, clouds.incident_mev, clouds.geometry)
    a, b = points_to_cells(clouds, threshold_mip=0.0), points_to_cells(out, threshold_mip=0.0)
    assert np.array_equal(a.event, b.event) and np.array_equal(a.cell, b.cell)
    np.testing.assert_allclose(b.energy_mev, a.energy_mev, rtol=1e-9)
    with pytest.raises(ValueError, match="fine squares"):
        PointsPreprocessor(30, core=True).fit(PointClouds(clouds.points, clouds.offsets, clouds.incident_mev, None))


def test_core_calibration_gives_the_drawn_core_and_centre_exactly() -> None:
    rng = np.random.default_rng(1)
    n_layers, n = 5, 6
    counts = rng.integers(1, 15, (n, n_layers))
    counts[0, 3] = 0  # a layer whose energy is all in its core point
    energies = rng.uniform(0.5, 50.0, (n, n_layers))
    core = energies * rng.uniform(0.0, 0.6, (n, n_layers))
    core[0, 3] = energies[0, 3]
    core[1, 1] = 0.0  # no core point there
    cog = rng.normal(0, 0.5, (n, 2))
    points = []
    for i in range(n):
        m = int(counts[i].sum())
        points.append(
            np.stack(
                [rng.normal(0, 8, m), rng.normal(0, 8, m), rng.uniform(0, n_layers, m), rng.exponential(1.0, m)], 1
            )
        )
    out = calibrate(points, Summaries(counts, energies, cog, core), np.full(n, 1e4), None)
    got = shower_summaries(out, n_layers)  # the points are stored as float32
    np.testing.assert_allclose(got.energies, energies, rtol=1e-6)
    np.testing.assert_allclose(got.cog, cog, atol=1e-4)
    for i in range(n):
        p = out.event(i)
        axis = (p[:, 0] == 0) & (p[:, 1] == 0)
        assert np.array_equal(np.sort(p[axis, 2]).astype(int), np.nonzero(core[i] > 0)[0])
        np.testing.assert_allclose(p[axis, 3], core[i][core[i] > 0], rtol=1e-6)
        assert np.array_equal(np.bincount(p[~axis, 2].astype(int), minlength=n_layers), counts[i])
    assert (np.diff(out.points[out.offsets[0] : out.offsets[1], 2]) >= 0).all()  # sorted by layer


def test_decoded_summaries_are_physical() -> None:
    pre = PointsPreprocessor.example(4)
    pre.n_max = 50
    rng = np.random.default_rng(0)
    feats = rng.normal(0.0, 3.0, (200, pre.n_summary))
    inc = np.full(200, 1e4)
    s = pre.decode_summaries(feats, inc)
    assert (s.counts >= 0).all() and (s.energies >= 0).all()
    assert (s.counts.sum(axis=1) <= 50).all() and (s.counts.sum(axis=1) >= 1).all()  # capped at the largest shower
    assert ((s.counts > 0) == (s.energies > 0)).all()
    # the drawn totals are kept: the visible energy exactly, the points unless capped
    raw = feats * pre.sum_sd + pre.sum_mu
    np.testing.assert_allclose(s.energies.sum(axis=1), inc * np.exp(np.clip(raw[:, 0], -30, 5)), rtol=1e-12)
    n = np.clip(np.rint(np.exp(np.clip(raw[:, 1], 0, 20))), 1, 50)
    assert np.array_equal(s.counts.sum(axis=1), n)


@pytest.mark.parametrize("depth_tokens", [0, 4])
def test_masks_never_leak_padded_points(depth_tokens: int) -> None:
    from showerforge.models import MODELS, build_model

    spec = MODELS["cfm-points"]
    model = build_model(spec.resolve(**{**spec.example_config, "depth_tokens": depth_tokens}))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    cond = torch.randn(3, model.config["n_cond"])
    mask = torch.tensor([[True] * 9, [True] * 4 + [False] * 5, [True] + [False] * 8])
    x = model.sample(cond, generator=torch.Generator().manual_seed(0), mask=mask)
    assert (x[~mask] == 0).all()
    # the real points do not depend on what the padded slots hold
    noise = model.draw_noise(3, generator=torch.Generator().manual_seed(1))
    a = model.sample_from_noise(noise, cond, mask=mask)
    noise[0][~mask] = 100.0
    b = model.sample_from_noise(noise, cond, mask=mask)
    assert torch.allclose(a[mask], b[mask], atol=1e-5)
    pre = PointsPreprocessor.example(4)
    assert [len(p) for p in pre.decode_points(x.numpy(), mask.numpy())] == [9, 4, 1]


@pytest.mark.parametrize("depth_tokens", [0, 4])
def test_a_shower_does_not_depend_on_the_batch_it_is_padded_into(depth_tokens: int) -> None:
    """The pooled sums are divided by the model's largest set, not by the batch's padded width:
    a shower generated alone equals the same shower generated beside a larger one (with depth
    tokens too: their pooling is a weighted mean over real points)."""
    model = MODELS["cfm-points"].build(**{**MODELS["cfm-points"].example_config, "depth_tokens": depth_tokens})
    for p in model.parameters():  # an untrained network is the zero field: give it structure
        torch.nn.init.normal_(p, std=0.3, generator=torch.Generator().manual_seed(3))
    model.eval()
    cond = torch.randn(2, 9, generator=torch.Generator().manual_seed(4))
    noise = torch.randn(2, 9, 4, generator=torch.Generator().manual_seed(5))
    wide = torch.arange(9)[None, :] < torch.tensor([[3], [8]])
    both = model.sample_from_noise([noise], cond, mask=wide)
    alone = model.sample_from_noise([noise[:1, :3]], cond[:1], mask=wide[:1, :3])
    assert both[0, :3].abs().max() > 0.1  # the check below compares non-trivial points
    assert torch.allclose(both[0, :3], alone[0], atol=1e-5)


def test_train_generate_inspect_chain(simulated, tmp_path: Path) -> None:
    data = simulated(*ILD)
    run = tmp_path / "run"
    small = "d_model=16 d_global=8 n_blocks=1 summary_width=32 summary_blocks=1 summary_steps=4 steps=2".split()
    proc = cli("train", "--data", data, "-o", run, "--epochs", "1", *[a for k in small for a in ("--set", k)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "gen.h5"
    proc = cli("generate", "--model", str(run), "--energy", "5:15GeV", "--n", "6", "--seed", "2", "-o", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    gen = read_points(out)
    assert len(gen) == 6 and gen.geometry == read_points(data).geometry
    assert (gen.points[:, 3] > 0).all() and set(np.unique(gen.points[:, 2])) <= set(range(30))
    import showerforge as sf_api

    surrogate = sf_api.load(run)  # weights_only=True inside
    again = surrogate.sample(gen.incident_mev, seed=2)
    assert np.array_equal(again.points, gen.points)  # same seed, same showers
    # distillation's conditions: n rows resampled from the given energies, masks as wide as the noise
    cond, mask = surrogate.draw_conditions(5, 0, np.full(50, 10e3))
    assert cond.shape[0] == 5 and mask is not None and mask.shape == (5, surrogate.model.config["n_particles"])
    assert PRESETS["ild-ecal"].n_layers == 30
    # sf.generate_file reaches the point kind as the command line does
    api_out = sf_api.generate_file(run, output=tmp_path / "api.h5", energy="10GeV", n=3, seed=4)
    assert len(read_points(api_out)) == 3
    # --energies-from with --n: the file's first n energies; more than it holds is refused
    first = sf_api.generate_file(run, output=tmp_path / "first.h5", energies_from=data, n=4, seed=4)
    assert np.array_equal(read_points(first).incident_mev, read_points(data).incident_mev[:4])
    with pytest.raises(UserError, match="incident energies"):
        sf_api.generate_file(run, output=tmp_path / "many.h5", energies_from=data, n=10**6)
    assert not (tmp_path / "many.h5").exists()
    # a 1-step student through `showerforge distill`, generated like the teacher
    student = tmp_path / "student"
    proc = cli("distill", "--model", str(run), "--steps", "1", "--n-pairs", "24", "--epochs", "1", "-o", str(student))
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = sf_api.load(student)
    assert loaded.model.default_sampler == {"solver": "euler", "steps": 1}
    assert loaded.config["distillation"]["steps"] == 1
    fast = loaded.sample(gen.incident_mev, seed=2)
    assert len(fast) == 6 and (fast.points[:, 3] > 0).all()
    # the calibrations hold for the student's showers too: drawn points and energy per layer
    assert np.array_equal(fast.num_points, gen.num_points)  # same seed: the same drawn summaries
    # a smaller student starts from random weights but keeps the teacher's shower flow, which
    # distillation does not train
    small = tmp_path / "small"
    args = ["--steps", "1", "--n-pairs", "24", "--epochs", "1", "--set", "d_model=8", "-o", str(small)]
    proc = cli("distill", "--model", str(run), "--trajectories", str(student / "teacher_trajectories.h5"), *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    tiny = sf_api.load(small)
    assert tiny.model.config["d_model"] == 8 and tiny.config["distillation"]["init"] == "random"
    teacher_flow, small_flow = surrogate.model.summary.state_dict(), tiny.model.summary.state_dict()
    assert all(torch.equal(teacher_flow[k], small_flow[k]) for k in teacher_flow)
    assert np.array_equal(tiny.sample(gen.incident_mev, seed=2).num_points, gen.num_points)


def test_core_split_chain_draws_one_axis_point_per_layer(simulated, tmp_path: Path) -> None:
    """``--set core=true``: the shower flow draws each layer's core energy, the sampler puts it in one
    point on the axis; the drawn layer energies hold exactly."""
    import showerforge as sf_api
    from showerforge.generate.calo_points import sample_points

    data = simulated(*ILD)
    run = tmp_path / "core"
    small = "core=true d_model=16 d_global=8 n_blocks=1 summary_width=32 summary_blocks=1 steps=2".split()
    proc = cli("train", "--data", data, "-o", run, "--epochs", "1", *[a for k in small for a in ("--set", k)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    model = sf_api.load(run)
    pre = model.preprocessing
    assert pre.core and pre.n_summary == 94 and model.model.config["n_summary"] == 94
    energies = np.array([6e3, 9e3, 12e3, 14e3])
    gen = model.sample(energies, seed=3)
    drawn = model._summaries(energies, 3)[1]
    for i in range(len(gen)):
        p = gen.event(i)
        axis = (p[:, 0] == 0) & (p[:, 1] == 0)
        layers = p[axis, 2].astype(int)
        assert len(np.unique(layers)) == len(layers) == (drawn.core[i] > 0).sum()
        np.testing.assert_allclose(p[axis, 3], drawn.core[i][layers], rtol=1e-5)
    got = shower_summaries(gen, 30)
    np.testing.assert_allclose(got.energies, drawn.energies, rtol=1e-4, atol=1e-6)
    again = sample_points(model, energies, seed=3)
    assert np.array_equal(again.points, gen.points)


def test_core_split_on_a_geometry_without_fine_squares_is_refused(tmp_path: Path) -> None:
    """``core=true`` needs a geometry scored on fine squares: refused in one line naming the file,
    before a run directory is written (``sf.train`` and the command line)."""
    import showerforge as sf_api
    from showerforge.data.points import write_points
    from showerforge.training.fit import TrainError

    geo = PRESETS["mini"]
    rng = np.random.default_rng(0)
    sizes = np.full(30, 6)
    pts = np.column_stack(
        [rng.normal(0, 5, 180), rng.normal(0, 5, 180), rng.integers(0, geo.n_layers, 180), rng.exponential(1.0, 180)]
    )
    data = write_points(
        tmp_path / "mini_points.h5", PointClouds(pts, np.r_[0, np.cumsum(sizes)], np.full(30, 5e3), geo)
    )
    np.testing.assert_array_equal(read_points(data).points, pts.astype(np.float32))  # showers of equal length
    with pytest.raises((UserError, TrainError), match="mini_points.h5.*fine squares"):
        sf_api.train(data, output=tmp_path / "run", epochs=1, config={"core": True}, progress=False)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    proc = cli("train", "--data", str(data), "-o", str(tmp_path / "cli"), "--set", "core=true")
    assert proc.returncode == 2 and "fine squares" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "cli" / "checkpoint.pt").exists()


def test_point_batches_keep_each_call_within_the_point_budget():
    from showerforge.generate.calo_points import point_batches

    counts = np.array([100] * 10 + [5000] * 3 + [20000])
    order = np.arange(100, 100 + len(counts))  # the showers' indices, in increasing size
    batches = point_batches(counts, 512, 16384, order)
    assert [len(b) for b in batches] == [10, 3, 1]  # 11 x 5000 > 16384; a shower above it goes alone
    assert np.array_equal(np.concatenate(batches), order)
    assert all(len(b) * counts[b - 100].max() <= 16384 for b in batches[:2])
    assert [len(b) for b in point_batches(counts, 4, None, order)] == [4, 4, 4, 2]  # no budget: the step


def test_calibrate_drops_points_beyond_the_face_and_keeps_the_layer_energy():
    """pbwo4 (5 x 22 mm crystals: face +-55 mm): a point drawn at x = 80 mm is dropped and its layer's
    energy goes to the others; a point the centre-of-gravity shift carries over the edge stays inside."""
    from showerforge.geometry import PRESETS

    geo = PRESETS["pbwo4"]
    pts = np.array([[0.0, 0.0, 0.2, 1.0], [80.0, 0.0, 0.4, 1.0], [10.0, 5.0, 0.6, 2.0], [54.0, 0.0, 1.5, 1.0]])
    counts = np.zeros((1, geo.n_layers), np.int64)
    counts[0, :2] = [3, 1]
    energies = np.zeros((1, geo.n_layers))
    energies[0, :2] = [30.0, 10.0]
    drawn = Summaries(counts, energies, np.array([[30.0, 1.0]]))  # centre 18.5 mm -> shift +11.5 mm
    out = calibrate([pts], drawn, np.array([5e4]), geo)
    got = out.event(0)
    assert len(got) == 3 and not np.any(np.isclose(got[:, 0], 80.0))
    np.testing.assert_allclose(shower_summaries(out, geo.n_layers).energies, energies, rtol=1e-12)
    assert np.abs(got[:, :2]).max() < 55.0  # the 54 mm point, shifted to 65.5 mm, held at the edge
    assert got[got[:, 2] == 1, 0][0] == pytest.approx(55.0, abs=1e-3)
    # without a square-cell face nothing is dropped
    assert len(calibrate([pts], drawn, np.array([5e4]), None).event(0)) == 4


def test_depth_tokens_are_equivariant_and_start_as_the_identity() -> None:
    """DepthAttention: untrained (zero output projection) it returns the points unchanged; with
    random weights, permuting the points permutes its output, and a point far from every other
    point's depth is what moves the others when it changes (through the tokens)."""
    from showerforge.models.epic import DepthAttention

    gen = torch.Generator().manual_seed(0)
    block = DepthAttention(16, 8, 6)
    h, z, c = torch.randn(2, 7, 16, generator=gen), torch.randn(2, 7, generator=gen), torch.randn(2, 8, generator=gen)
    mask = torch.ones(2, 7, dtype=torch.bool)
    assert torch.equal(block(h, z, c, mask), h)
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
    out = block(h, z, c, mask)
    perm = torch.randperm(7, generator=gen)
    assert torch.allclose(block(h[:, perm], z[:, perm], c, mask), out[:, perm], atol=1e-5)
    z2 = z.clone()
    z2[:, 0] = 1.8
    z2[:, 1:] = -1.8  # point 0 alone at the far end: its features reach the others through the tokens
    h2 = h.clone()
    h2[:, 0] += 1.0
    moved = (block(h2, z2, c, mask) - block(h, z2, c, mask))[:, 1:].abs().max()
    assert moved > 1e-3


@pytest.mark.parametrize(
    "overrides,words",
    [
        ({"depth_tokens": -1}, ["--set depth_tokens=-1", "depth_tokens >= 0"]),
        ({"depth_tokens": 2.5}, ["depth_tokens must be int"]),
        ({"depth_tokens": 30, "d_model": 30}, ["--set d_model=30", "multiple of 4"]),
    ],
)
def test_bad_depth_tokens_are_refused_in_one_line(overrides, words) -> None:
    """Checked before any work (``train`` and ``distill`` call ``check_overrides`` first)."""
    with pytest.raises(UserError) as err:
        MODELS["cfm-points"].check_overrides(overrides)
    msg = str(err.value)
    assert "\n" not in msg and all(w in msg for w in words), msg
    MODELS["cfm-points"].check_overrides({"depth_tokens": 30, "d_model": 32})  # a valid pair passes
