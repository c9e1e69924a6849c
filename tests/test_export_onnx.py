"""ONNX export: the graph run in onnxruntime, with the calling convention of each layout, against the
PyTorch sampler on the same noise; the Par04 voxel order; the onnxruntime generation backend.

Parity measure (:func:`parity`): per voxel ``|E_onnx - E_torch| / max(E_torch, delta)`` with
``delta`` the model's threshold (the smallest non-zero voxel energy it generates). The threshold
cut is discontinuous: a voxel a float rounding away from ``delta`` may be kept by one side and
dropped by the other, which also rescales the rest of its layer. Such a *flip* is tolerated only
when the voxel that one side kept lies within 0.1 % of ``delta`` (it sat at the threshold); its
layer then leaves the voxel measure. Any other flip fails the test.
"""

from __future__ import annotations

import json
import sys

import h5py
import numpy as np
import pytest
import torch

from showerforge.deploy import OnnxShowerSampler, check_par04_geometry, export_onnx, make_session, par04_order
from showerforge.deploy.graph import PAR04_MAX_ENERGY_MEV, InversePreprocessing, ShowerGraph
from showerforge.errors import UserError
from showerforge.generate import generate_showers, sample_array
from showerforge.generate.calo_voxels import load_model
from showerforge.geometry import PRESETS, Geometry, ReadoutLayer
from showerforge.training import train_model

torch.set_num_threads(1)
CLI = [sys.executable, "-m", "showerforge.cli"]
TINY = {
    "d_model": 16,
    "n_blocks": 1,
    "n_heads": 2,
    "energy_width": 16,
    "energy_blocks": 1,
    "energy_steps": 3,
    "steps": 2,
    "shape_energy_bins": 3,
}
TOL = 1e-4


def parity(a: np.ndarray, b: np.ndarray, delta: float, layer_of: np.ndarray) -> dict[str, float]:
    """Differences between showers ``a`` (candidate) and ``b`` (reference), both (N, voxels) MeV."""
    flip = (a > 0) != (b > 0)
    kept = np.where(flip, np.maximum(a, b), 0.0)
    at_threshold = flip & (kept <= delta * 1.001)
    n_layers = int(layer_of.max()) + 1
    flipped_layer = np.zeros((a.shape[0], n_layers), bool)
    rows, cols = np.nonzero(flip)
    flipped_layer[rows, layer_of[cols]] = True
    clean = ~flipped_layer[:, layer_of]
    rel = np.abs(a - b) / np.maximum(b, delta)
    return {
        "max_rel": float(rel[clean].max(initial=0.0)),
        "l1_rel": float((np.abs(a - b).sum(1) / np.maximum(b.sum(1), delta)).max()),
        "flips": int(flip.sum()),
        "flips_off_threshold": int((flip & ~at_threshold).sum()),
    }


def assert_parity(a, b, surrogate, order=None):
    layer_of = surrogate.geometry.voxel_layer()
    if order is not None:
        layer_of = layer_of[order]
    p = parity(a, b, float(surrogate.preprocessing.threshold_mev), layer_of)
    assert p["flips_off_threshold"] == 0 and p["max_rel"] <= TOL and p["l1_rel"] <= TOL, p
    return p


@pytest.fixture(scope="module")
def g4_file(simulated):
    """160 Geant4 e- showers, 1-5 GeV, in the `mini` calorimeter (one worker, about 6 s; cached by conftest)."""
    args = ["simulate", "calo", "--geometry", "mini", "--energy", "1:5GeV", "--n", "160", "--seed", "4"]
    return simulated(*args, "--workers", "1", "--shard-size", "160")


@pytest.fixture(scope="module")
def run(tmp_path_factory, g4_file):
    out = tmp_path_factory.mktemp("run") / "fact"
    kw = dict(batch_size=64, lr=1e-3, seed=0, device="cpu", progress=False, num_threads=1, config_overrides=TINY)
    train_model(g4_file, "cfm-factorised", out, epochs=2, **kw)
    return out


@pytest.fixture(scope="module")
def surrogate(run):
    return load_model(run)


def par04_session(path):
    """As Par04OnnxInference opens a model: one intra-op thread, graph optimisations off (setOptimizationFlag 0)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _noise(surrogate, n, seed):
    noise = surrogate.model.draw_noise(n, generator=torch.Generator().manual_seed(seed))
    return torch.cat([t.reshape(n, -1) for t in noise], dim=1)


def _torch_showers(surrogate, noise, inc, steps=None, solver=None):
    """The PyTorch sampler on given noise: sample_from_noise, then the numpy inverse preprocessing."""
    model, pre = surrogate.model, surrogate.preprocessing
    sizes = [int(np.prod(s[1:])) for s in model.noise_shapes(1)]
    parts = [p.contiguous() for p in torch.split(noise, sizes, dim=1)]
    cond = torch.from_numpy(pre.condition(inc))
    with torch.no_grad():
        x = model.sample_from_noise(parts, cond, steps=steps, solver=solver).numpy()
    return pre.inverse(inc, x)


def _energies(n):
    # float32-exact energies: the graph takes float32 inputs
    return np.geomspace(1.2e3, 4.8e3, n).astype(np.float32).astype(np.float64)


def test_calochallenge_layout_matches_pytorch(surrogate, tmp_path):
    res = export_onnx(surrogate, tmp_path / "m.onnx")
    assert [i[0] for i in res.inputs] == ["noise", "incident_energy"] and res.outputs[0][0] == "showers"
    sess = make_session(tmp_path / "m.onnx")
    n_noise = sum(int(np.prod(s[1:])) for s in surrogate.model.noise_shapes(1))
    assert n_noise == 12 + 576 and res.metadata["noise_width"] == str(n_noise)
    inc = _energies(9)
    noise = _noise(surrogate, 9, seed=1)
    got = sess.run(None, {"noise": noise.numpy(), "incident_energy": inc.astype(np.float32)[:, None]})[0]
    ref = _torch_showers(surrogate, noise, inc)
    assert got.shape == (9, 576) and got.dtype == np.float32 and (ref > 0).sum() > 500
    assert_parity(got, ref, surrogate)
    one = sess.run(None, {"noise": noise[:1].numpy(), "incident_energy": inc[:1].astype(np.float32)[:, None]})[0]
    assert_parity(one, ref[:1], surrogate)  # dynamic batch: one row alone gives the same shower
    assert res.probe_max_rel_diff is not None and res.probe_max_rel_diff <= TOL
    meta = res.metadata
    assert meta["layout"] == "calochallenge" and meta["model"] == "cfm-factorised"
    assert meta["checkpoint_sha256"] == surrogate.sha256 and meta["steps"] == "2" and meta["solver"] == "midpoint"
    assert Geometry.from_json(meta["geometry"]).same_readout(PRESETS["mini"])


def test_par04_layout_one_call_per_shower(surrogate, tmp_path):
    res = export_onnx(surrogate, tmp_path / "p.onnx", layout="par04", steps=3, solver="euler")
    sess = par04_session(tmp_path / "p.onnx")
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    n_noise = 12 + 576
    assert inp.type == "tensor(float)" and inp.shape[1] == n_noise + 4 and out.shape[1] == 576
    assert f"/Par04/inference/setSizeLatentVector {n_noise}" in res.par04_macro
    assert (
        "/Par04/inference/setNbOfRhoCells 6" in res.par04_macro
        and "/Par04/inference/setModelType VAE" in res.par04_macro
    )
    inc = _energies(6)
    e_norm = (inc / PAR04_MAX_ENERGY_MEV).astype(np.float32)  # Par04: aInitialEnergy / fMaxEnergy, as float
    e_seen = e_norm.astype(np.float64) * PAR04_MAX_ENERGY_MEV
    noise = _noise(surrogate, 6, seed=2)
    rows = []
    for i in range(6):  # Par04OnnxInference::RunInference: one [1, N] float32 tensor per particle
        gen = np.concatenate([noise[i].numpy(), [e_norm[i], 90.0 / 90.0, 0.0, 1.0]]).astype(np.float32)[None, :]
        rows.append(sess.run(None, {inp.name: gen})[0][0] * e_seen[i])  # Par04 multiplies by the energy
    got = np.stack(rows)
    order = par04_order(surrogate.geometry)
    ref = _torch_showers(surrogate, noise, e_seen, steps=3, solver="euler")[:, order]
    assert_parity(got, ref, surrogate, order)


def test_par04_order_known_answer():
    order = par04_order(PRESETS["mini"])  # (z, phi, r) = (12, 8, 6)
    calo = (2 * 8 + 3) * 6 + 4  # CaloChallenge: layer 2, angle 3, radius 4 (radius fastest)
    par04 = (4 * 8 + 3) * 12 + 2  # Par04 GetPositions: r outermost, then phi, z innermost
    assert order[par04] == calo and sorted(order.tolist()) == list(range(576))
    ds2 = par04_order(PRESETS["ds2"])
    assert ds2[1] == 16 * 9 and ds2[45] == 9 and ds2[45 * 16] == 1  # next z, next phi, next r


def test_par04_refuses_what_its_mesh_cannot_express():
    irregular = Geometry("odd", (ReadoutLayer((0, 5, 10), 4), ReadoutLayer((0, 5, 10, 15), 4)), n_physical_layers=2)
    with pytest.raises(UserError, match="same binning in every layer"):
        check_par04_geometry(irregular)
    uneven = Geometry("uneven", (ReadoutLayer((0, 2, 5, 10), 4),) * 3, n_physical_layers=3)
    with pytest.raises(UserError, match="equal radial bins"):
        check_par04_geometry(uneven)
    check_par04_geometry(PRESETS["ds3"])


def test_noise_inside_layout_statistics(surrogate, tmp_path):
    """par04-calodit draws its noise in the graph: compare moments with the PyTorch sampler."""
    import onnxruntime as ort

    export_onnx(surrogate, tmp_path / "c.onnx", layout="par04-calodit")
    ort.set_seed(11)  # RandomNormalLike without a seed attribute draws from onnxruntime's default seed
    sess = par04_session(tmp_path / "c.onnx")
    n, e_gev = 400, 3.0
    cond = np.zeros((n, 8), np.float32)
    cond[:, 0], cond[:, 1], cond[:, 2], cond[:, 3] = e_gev, 0.0, np.pi / 2, 1.0
    got = sess.run(None, {"input": cond})[0] * 1000.0  # Par04 multiplies the CaloDiT-2 output by 1000
    again = sess.run(None, {"input": cond[:5]})[0] * 1000.0
    assert not np.allclose(again, got[:5])  # fresh noise on every call
    ref = sample_array(surrogate, np.full(n, e_gev * 1e3), seed=5)[:, par04_order(surrogate.geometry)]
    for name, fa, fb in [("total", got.sum(1), ref.sum(1)), ("hits", (got > 0).sum(1), (ref > 0).sum(1))]:
        z = (fa.mean() - fb.mean()) / np.sqrt(fa.var() / n + fb.var() / n)
        assert abs(z) < 4.0, (name, fa.mean(), fb.mean(), z)
        assert 0.7 < fa.std() / fb.std() < 1.4, (name, fa.std(), fb.std())
    depth = np.arange(576) % 12  # Par04 order: z innermost
    la, lb = [np.stack([s[:, depth == k].sum(1) for k in range(12)], 1) for s in (got, ref)]
    z = (la.mean(0) - lb.mean(0)) / np.sqrt(la.var(0) / n + lb.var(0) / n + 1e-12)
    assert np.all(np.abs(z) < 4.5), z


def test_inverse_preprocessing_is_the_numpy_inverse(surrogate):
    """The torch port against ShowerPreprocessor.inverse on wild features (clipping, empty layers, ties)."""
    pre = surrogate.preprocessing
    rng = np.random.default_rng(0)
    inc = np.exp(rng.uniform(np.log(5e2), np.log(2e4), 64))
    x = rng.normal(0, 3, (64, pre.n_features)).astype(np.float32)
    x[:8] = 0.0  # all-equal voxels: the hardest voxel is the first
    ref = pre.inverse(inc, x)
    got = InversePreprocessing(pre)(torch.from_numpy(x), torch.from_numpy(inc)).float().numpy()
    assert (ref == 0).sum() > 1000 and (ref > 0).sum() > 1000
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=0)


def test_float32_inverse_preprocessing_is_the_numpy_float32_inverse(surrogate):
    """The shower graphs' float32 port against ShowerPreprocessor.inverse(dtype=float32), wild features."""
    pre = surrogate.preprocessing
    rng = np.random.default_rng(1)
    inc = np.exp(rng.uniform(np.log(5e2), np.log(2e4), 64))
    x = rng.normal(0, 3, (64, pre.n_features)).astype(np.float32)
    x[:8] = 0.0
    ref = pre.inverse(inc, x, dtype=np.float32)
    module = InversePreprocessing(pre, dtype=torch.float32)
    got = module(torch.from_numpy(x), torch.from_numpy(inc)).numpy()
    assert got.dtype == np.float32 and (ref == 0).sum() > 1000 and (ref > 0).sum() > 1000
    assert_parity(got, ref, surrogate)
    assert ShowerGraph(surrogate, steps=1, solver="euler").by_parts  # no interleaving inside the graph


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_inverse_preprocessing_of_an_irregular_readout(dtype):
    """Layers of 4, 0 and 8 voxels (padding gathered and scattered), both precisions, against numpy."""
    from showerforge.data.preprocess import ShowerPreprocessor

    rng = np.random.default_rng(2)
    inc = np.exp(rng.uniform(np.log(1e3), np.log(1e4), 300))
    sh = rng.exponential(1.0, (300, 12)) * (rng.random((300, 12)) < 0.6)
    sh *= (0.9 * inc / np.maximum(sh.sum(1), 1e-9))[:, None]
    pre = ShowerPreprocessor([4, 0, 8], shape_energy_bins=3).fit([(inc, sh)])
    x = rng.normal(0, 2, (300, pre.n_features)).astype(np.float32)
    module = InversePreprocessing(pre, dtype=getattr(torch, dtype))
    assert not module.regular
    ref = pre.inverse(inc, x, dtype=np.dtype(dtype))
    got = module(torch.from_numpy(x), torch.from_numpy(inc)).numpy()
    assert (ref > 0).sum() > 1000
    layer_of = np.repeat([0, 1], [4, 8])
    p = parity(got.astype(np.float64), ref.astype(np.float64), float(pre.threshold_mev), layer_of)
    assert p["flips_off_threshold"] == 0 and p["max_rel"] <= 1e-5 and p["l1_rel"] <= 1e-5, p


def test_onnxruntime_backend_gives_the_torch_showers(run, surrogate, tmp_path):
    inc = np.repeat(_energies(5), 20)  # 100 showers, batches of 40: noise drawn per batch as torch does
    a = generate_showers(run, inc, tmp_path / "t.h5", seed=7, batch_size=40)
    b = generate_showers(run, inc, tmp_path / "o.h5", seed=7, batch_size=40, backend="onnxruntime")
    with h5py.File(a) as fa, h5py.File(b) as fb:
        assert fa.attrs["backend"] == "torch" and fb.attrs["backend"] == "onnxruntime"
        assert fb.attrs["execution_provider"] == "CPUExecutionProvider"
        assert json.loads(fb.attrs["model_config"]) == json.loads(fa.attrs["model_config"])
        assert_parity(fb["showers"][...], fa["showers"][...], surrogate)
    other = OnnxShowerSampler(surrogate).sample(inc[:40], seed=8, batch_size=40)
    assert not np.allclose(other, h5py.File(b)["showers"][:40])  # another seed, other showers


def test_shipped_ds2_electron_matches_pytorch(tmp_path):
    """ds2-electron (8 energy bins of the shape standardisation) with a one-step sampler, one call per shower."""
    from showerforge.kinds import load

    sur = load("ds2-electron")
    res = export_onnx(sur, tmp_path / "ds2.onnx", layout="par04", steps=1, solver="euler")
    assert "/Par04/inference/setSizeOfZCells 3.4 mm" in res.par04_macro
    assert "/Par04/inference/setSizeOfRhoCells 4.65 mm" in res.par04_macro
    sess = par04_session(tmp_path / "ds2.onnx")
    inc = np.array([1.5e3, 2.0e4, 9.0e4])
    e_norm = (inc / PAR04_MAX_ENERGY_MEV).astype(np.float32)
    e_seen = e_norm.astype(np.float64) * PAR04_MAX_ENERGY_MEV
    noise = _noise(sur, 3, seed=0)
    got = np.stack(
        [
            sess.run(
                None, {"input": np.concatenate([noise[i].numpy(), [e_norm[i], 1, 0, 1]]).astype(np.float32)[None]}
            )[0][0]
            * e_seen[i]
            for i in range(3)
        ]
    )
    order = par04_order(sur.geometry)
    ref = _torch_showers(sur, noise, e_seen, steps=1, solver="euler")[:, order]
    assert_parity(got, ref, sur, order)


def test_command_line_export_and_backend(run, tmp_path):
    from click.testing import CliRunner

    from showerforge.cli import cli

    res = CliRunner().invoke(cli, ["export", "--model", str(run), "--layout", "par04", "-o", str(tmp_path / "p.onnx")])
    assert res.exit_code == 0, res.output
    assert "/Par04/inference/setSizeLatentVector 588" in res.output and "input  input [N, 592]" in res.output
    assert (tmp_path / "p.onnx").is_file() and not list(tmp_path.glob("*.part"))
    args = ["generate", "--model", str(run), "--energy", "2GeV", "--n", "6", "--backend", "onnxruntime"]
    res = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "g.h5")])
    assert res.exit_code == 0, res.output
    with h5py.File(tmp_path / "g.h5") as f:
        assert f.attrs["backend"] == "onnxruntime" and f["showers"].shape == (6, 576)


_TINY_JETS = {"d_model": 16, "d_global": 8, "n_blocks": 1, "steps": 2}


@pytest.fixture(scope="module")
def jet_file(tmp_path_factory):
    """300 synthetic jets of 10 slots (types g and t)."""
    from showerforge.data.jetnet import write_jets

    rng = np.random.default_rng(0)
    n, slots = 300, 10
    k = rng.integers(2, slots + 3, n)  # some jets have more constituents than slots
    real = np.arange(slots)[None, :] < np.minimum(k, slots)[:, None]
    pf = np.zeros((n, slots, 4), np.float32)
    pf[..., 0], pf[..., 1] = rng.normal(0, 0.2, (n, slots)), rng.normal(0, 0.2, (n, slots))
    pt = -np.sort(-rng.exponential(1.0, (n, slots)), axis=1) * real
    pf[..., 2], pf[..., 3] = pt / pt.sum(1, keepdims=True), real
    pf *= real[..., None]
    jf = np.stack([rng.uniform(800, 1600, n), rng.normal(0, 1, n), rng.uniform(20, 200, n), k], 1).astype(np.float32)
    return write_jets(
        tmp_path_factory.mktemp("jets") / "jets.h5",
        {"particle_features": pf, "jet_features": jf, "jet_type": rng.choice([0, 2], n).astype(np.int8)},
    )


def _train_tiny_jets(path, out, condition, epochs):
    from showerforge.training.jet_set import train_jets

    kw = dict(batch_size=50, seed=0, device="cpu", progress=False, num_threads=1, config_overrides=_TINY_JETS)
    train_jets(path, out, condition=condition, epochs=epochs, **kw)
    return out


@pytest.fixture(scope="module")
def jet_run(jet_file, tmp_path_factory):
    """A tiny cfm-set conditioned on jet type and pT."""
    return _train_tiny_jets(jet_file, tmp_path_factory.mktemp("jetrun") / "run", "type+pt", 2)


def _jets_torch_and_onnx(sur, onnx_path, real, seed, extra_name, extra):
    """The same noise through the PyTorch model (and inverse) and the exported graph, for g/t jets
    alternating; ``extra`` (N,) is the condition's jet pT (GeV) or relative mass, fed as ``extra_name``."""
    n, slots = real.shape
    noise = torch.randn(n, slots, 3, generator=torch.Generator().manual_seed(seed))
    types = np.array(["g", "t"] * (n // 2))
    conditioning = sur.preprocessing.conditioning
    cond = (
        conditioning.condition(types, extra, None)
        if extra_name == "jet_pt"
        else conditioning.condition(types, None, extra)
    )
    with torch.no_grad():
        x = sur.model.sample_from_noise([noise], torch.from_numpy(cond), mask=torch.from_numpy(real)).numpy()
    feeds = {
        "noise": noise.numpy(),
        "jet_type": np.eye(5, dtype=np.float32)[conditioning.type_index(types)],
        extra_name: np.asarray(extra, np.float32)[:, None],
        "mask": real.astype(np.float32),
    }
    return sur.preprocessing.inverse(x, real), make_session(onnx_path).run(None, feeds)[0]


def test_jet_export_matches_pytorch(jet_run, tmp_path):
    from showerforge.generate.jet_set import load_jet_model

    sur = load_jet_model(jet_run)
    import showerforge as sf

    res = sf.export_onnx(jet_run, tmp_path / "j.onnx")  # a jet model: the jetnet layout by default
    assert res.layout == "jetnet" and [i[0] for i in res.inputs] == ["noise", "jet_type", "jet_pt", "mask"]
    n, slots = 12, 10
    real = np.arange(slots)[None, :] < np.array([10, 1, 5, 7, 3, 10, 2, 9, 4, 6, 8, 10])[:, None]
    ref, got = _jets_torch_and_onnx(sur, tmp_path / "j.onnx", real, 4, "jet_pt", np.linspace(850.0, 1550.0, n))
    assert got.shape == (n, slots, 4) and np.array_equal(got[..., 3], real.astype(np.float32))
    assert np.array_equal(got[..., 2] > 0, real) and np.all(np.diff(got[..., 2], axis=1) <= 0)  # pT-descending
    np.testing.assert_allclose(got, ref, rtol=TOL, atol=1e-6)
    with pytest.raises(UserError, match="exports in the layouts jetnet"):
        sf.export_onnx(jet_run, tmp_path / "p.onnx", layout="par04")
    with pytest.raises(UserError, match="exports a loaded model"):
        export_onnx(jet_run, tmp_path / "p.onnx")
    assert not (tmp_path / "p.onnx").exists()


def test_mass_conditioned_jet_export_matches_pytorch(jet_file, tmp_path):
    """A model conditioned on type and m/pT exports with a rel_mass input that gives the same jets."""
    import showerforge as sf
    from showerforge.generate.jet_set import load_jet_model

    out = _train_tiny_jets(jet_file, tmp_path / "mrun", "type+mass", 1)
    sur = load_jet_model(out)
    res = sf.export_onnx(out, tmp_path / "m.onnx")
    assert [i[0] for i in res.inputs] == ["noise", "jet_type", "rel_mass", "mask"]
    real = np.arange(10)[None, :] < np.array([10, 1, 5, 7, 3, 10, 2, 9])[:, None]
    ref, got = _jets_torch_and_onnx(sur, tmp_path / "m.onnx", real, 2, "rel_mass", np.linspace(0.02, 0.2, 8))
    np.testing.assert_allclose(got, ref, rtol=TOL, atol=1e-6)
