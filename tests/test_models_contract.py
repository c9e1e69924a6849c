"""One contract for every registered model, plus closed-form checks of paths, loss and solvers."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch

from showerforge.data.preprocess import ShowerPreprocessor
from showerforge.errors import UserError
from showerforge.models import (
    MODELS,
    SOLVERS,
    FlowMatching,
    LayerTransformer,
    build_model,
    get_solver,
    sample_time,
    straight_path,
)
from showerforge.models.distill import student_config

torch.set_num_threads(1)

N = 6


def _batch(spec, model, seed=100):
    """(x, cond, mask) of the right shapes for a model of this data kind."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((N, *model.event_shape), generator=g)
    cond = torch.randn((N, model.config["n_cond"]), generator=g)
    if spec.data_kind == "calo-voxels":
        return x, cond, None
    if spec.data_kind in ("jet-set", "calo-points"):
        mask = torch.rand(x.shape[:2], generator=g) < 0.7
        mask[:, 0] = True
        return x * mask[..., None], cond, mask
    raise AssertionError(f"contract test: add a branch for data kind {spec.data_kind!r}")


def _perturb(model, seed=1):
    """Random weights everywhere (zero-initialised layers make an untrained model ignore its input)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return model


def _sample(model, cond, mask, seed=0):
    return model.sample(cond, generator=torch.Generator().manual_seed(seed), mask=mask)


# every registered model, and the few-step student (``showerforge distill``) of every ODE model:
# same class, 2-step Euler sampler, a distillation record in the config
VARIANTS = sorted(MODELS) + [f"{name}/distilled" for name in sorted(MODELS) if MODELS[name].sampler_family == "ode"]


def _config(name):
    base, _, variant = name.partition("/")
    spec = MODELS[base]
    cfg = spec.resolve(**spec.example_config)
    if variant:
        cfg = student_config(cfg, 2, {"method": "trajectory matching", "steps": 2})
    return spec, cfg


@pytest.fixture(params=VARIANTS, ids=VARIANTS)
def spec_model(request):
    spec, cfg = _config(request.param)
    torch.manual_seed(0)
    return spec, _perturb(build_model(cfg))


def test_config_is_complete_json(spec_model):
    spec, model = spec_model
    cfg = json.loads(json.dumps(model.config))
    assert cfg["name"] == spec.name
    assert build_model(cfg).config == model.config
    assert set(spec.defaults) <= set(cfg)
    with pytest.raises(ValueError, match="unknown config keys"):
        spec.build(**spec.example_config, not_a_key=1)


def test_sample_shapes_and_masks(spec_model):
    spec, model = spec_model
    x, cond, mask = _batch(spec, model)
    if spec.sampler_family != "ode":  # an autoregressive model: its own settings, the mask's lengths
        for settings in ({}, {"temperature": 0.5, "top_k": 2}):
            out = model.sample(cond, generator=torch.Generator().manual_seed(0), mask=mask, **settings)
            assert out.shape == x.shape and torch.isfinite(out).all() and (out[~mask] == 0).all()
        with pytest.raises(UserError, match="--steps"):
            model.sample(cond, steps=2, mask=mask)
        return
    for solver in SOLVERS:
        out = model.sample(cond, generator=torch.Generator().manual_seed(0), steps=2, solver=solver, mask=mask)
        assert out.shape == x.shape and torch.isfinite(out).all()
        if mask is not None:
            assert (out[~mask] == 0).all()
    assert model.default_sampler["solver"] in SOLVERS and model.default_sampler["steps"] >= 1


def test_physical_units_non_negative(spec_model):
    spec, model = spec_model
    if spec.data_kind == "jet-set":
        _check_jet_units(spec, model)
        return
    if spec.data_kind == "calo-points":
        _check_point_units(spec, model)
        return
    layer_sizes = [n - 1 for n in model.config["token_sizes"]]
    rng = np.random.default_rng(0)
    inc = rng.uniform(1e3, 1e4, 50)
    showers = rng.exponential(1.0, (50, sum(layer_sizes))) * (rng.random((50, sum(layer_sizes))) < 0.5)
    pre = ShowerPreprocessor(layer_sizes).fit([(inc, showers)])
    _, x, mask = _batch(spec, model)
    cond = torch.from_numpy(pre.condition(inc[:N]))
    gen = _sample(model, cond, mask).numpy()
    out = pre.inverse(inc[:N], gen)
    assert out.shape == (N, sum(layer_sizes)) and np.isfinite(out).all() and (out >= 0).all()


def _check_point_units(spec, model):
    """Generated points come back in mm, layers and MeV: energies > 0, layers in range, padding dropped."""
    from showerforge.data.points_preprocess import PointsPreprocessor

    n_layers = (model.config["n_summary"] - 4) // 2
    pre = PointsPreprocessor.example(n_layers)
    _, cond, mask = _batch(spec, model)
    out = pre.decode_points(_sample(model, cond, mask).numpy(), mask.numpy())
    assert [len(p) for p in out] == mask.sum(dim=1).tolist()
    for pts in out:
        assert np.isfinite(pts).all() and (pts[:, 3] > 0).all()
        assert ((pts[:, 2] >= 0) & (pts[:, 2] < n_layers)).all()


def _check_jet_units(spec, model):
    """Generated particles come back as JetNet features: pT_rel >= 0, phi in (-pi, pi], zero padding."""
    from showerforge.data.jet_preprocess import ParticleTransform

    n = model.event_shape[0]
    rng = np.random.default_rng(0)
    mult = rng.integers(1, n + 1, 40)
    mask = np.arange(n)[None, :] < mult[:, None]
    pt = rng.exponential(1.0, (40, n)) * mask
    pt /= pt.sum(axis=1, keepdims=True)
    pf = np.stack([rng.normal(0, 0.2, (40, n)) * mask, rng.normal(0, 0.2, (40, n)) * mask, pt, mask], -1)
    tr = ParticleTransform(n).fit(pf.astype(np.float32))
    _, cond, tmask = _batch(spec, model)
    out = tr.inverse(_sample(model, cond, tmask).numpy(), tmask.numpy())
    real = out[..., 3] > 0
    assert out.shape == (N, n, 4) and np.isfinite(out).all()
    # the inverse sorts particles by pT: same number of real particles per jet, padding at the end
    assert np.array_equal(real.sum(axis=1), tmask.numpy().sum(axis=1)) and (out[~real] == 0).all()
    assert np.all(np.diff(out[..., 2], axis=1) <= 0)
    assert (out[..., 2] >= 0).all() and (np.abs(out[..., 1]) <= math.pi).all()


def test_conditioning_changes_output(spec_model):
    spec, model = spec_model
    _, cond, mask = _batch(spec, model)
    a = _sample(model, cond, mask)
    b = _sample(model, cond + 1.0, mask)
    assert not torch.allclose(a, b)
    assert torch.equal(a, _sample(model, cond, mask))


def test_save_load_identical_samples(spec_model):
    spec, model = spec_model
    _, cond, mask = _batch(spec, model)
    buf = io.BytesIO()
    torch.save({"config": json.dumps(model.config), "state": model.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    clone = build_model(json.loads(ckpt["config"]))
    clone.load_state_dict(ckpt["state"])
    assert torch.equal(_sample(model, cond, mask, seed=3), _sample(clone, cond, mask, seed=3))


def test_gradients_reach_every_parameter(spec_model):
    spec, perturbed = spec_model
    torch.manual_seed(0)
    model = build_model(perturbed.config)  # fresh: zero-initialised adaLN/output layers
    x, cond, mask = _batch(spec, model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(3):
        opt.zero_grad()
        loss = model.loss(x, cond, mask, generator=torch.Generator().manual_seed(step))
        assert loss.dim() == 0 and torch.isfinite(loss)
        loss.backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        opt.step()
    # after the zero-initialised layers moved, the gradient flows to every parameter
    dead = [name for name, p in model.named_parameters() if float(p.grad.abs().max()) == 0.0]
    assert not dead


# ----------------------------------------------------------------- closed forms
@pytest.mark.parametrize("shape", [(5, 3), (4, 7, 2), (1, 1)])
@pytest.mark.parametrize("sigma", [0.0, 0.3])
def test_straight_path_closed_form(shape, sigma):
    g = torch.Generator().manual_seed(0)
    x0, x1, eps = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3))
    for tv in (0.0, 0.25, 1.0):
        t = torch.full((shape[0],), tv, dtype=torch.float64)
        xt, ut = straight_path(x0, x1, t, sigma, eps)
        assert torch.allclose(xt, (1 - tv) * x0 + tv * x1 + sigma * eps)
        assert torch.allclose(ut, x1 - x0)
    with pytest.raises(ValueError):
        straight_path(x0, x1, t, 0.1)


def test_sample_time_ranges():
    g = torch.Generator().manual_seed(0)
    for kind in ("uniform", "logit-normal"):
        t = sample_time(2000, kind=kind, generator=g)
        assert t.shape == (2000,) and (t >= 0).all() and (t <= 1).all() and abs(float(t.mean()) - 0.5) < 0.03
    with pytest.raises(ValueError):
        sample_time(3, kind="beta")


class _Zero(torch.nn.Module):
    def forward(self, x, t, cond, mask=None):
        return torch.zeros_like(x)


def test_cfm_loss_closed_form():
    """With v = 0 the CFM loss is mean ||x1 - x0||^2 over the same noise draws."""
    model = FlowMatching(_Zero(), (4,), {"name": "test"})
    x1 = torch.randn(8, 4, dtype=torch.float64)
    loss = model.loss(x1, torch.zeros(8, 1, dtype=torch.float64), generator=torch.Generator().manual_seed(5))
    x0 = torch.randn(x1.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert torch.allclose(loss, ((x1 - x0) ** 2).mean())


def test_masked_loss_ignores_padding():
    model = FlowMatching(_Zero(), (3, 2), {"name": "test"})
    x = torch.randn(4, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    a = model.loss(x, torch.zeros(4, 1), mask, generator=torch.Generator().manual_seed(0))
    b = model.loss(x + 100.0 * ~mask[..., None], torch.zeros(4, 1), mask, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(a, b)


def test_euler_exact_for_constant_velocity():
    x0 = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    v = torch.tensor([[0.5, 3.0]], dtype=torch.float64)
    for name, solver in SOLVERS.items():
        out = solver(lambda t, x: v.expand_as(x), x0, steps=3)
        assert torch.allclose(out, x0 + v), name


@pytest.mark.parametrize("name,order", [("euler", 1), ("midpoint", 2), ("rk4", 4)])
def test_solver_order_on_exponential(name, order):
    """dx/dt = a x, x(1) = x0 e^a; the error falls as steps^-order."""
    a, x0 = -1.3, torch.ones(1, 1, dtype=torch.float64)
    exact = math.exp(a)
    solver = get_solver(name)
    errs = [abs(float(solver(lambda t, x: a * x, x0, steps=n)) - exact) for n in (8, 16)]
    assert errs[1] < 2e-2
    assert math.log2(errs[0] / errs[1]) == pytest.approx(order, abs=0.25)


def test_solver_time_dependent_field():
    """dx/dt = 2 t: x(1) = x0 + 1 exactly for midpoint and RK4."""
    x0 = torch.zeros(2, 1, dtype=torch.float64)
    for name in ("midpoint", "rk4"):
        out = get_solver(name)(lambda t, x: (2 * t).expand_as(x), x0, steps=4)
        assert torch.allclose(out, x0 + 1.0), name


def test_unknown_solver():
    with pytest.raises(ValueError, match="unknown solver"):
        get_solver("dopri5")


@pytest.mark.parametrize("group", [1, 2, 3])
def test_layer_tokens_round_trip(group):
    net = LayerTransformer([3, 5, 5, 2, 4], 1, d_model=8, n_blocks=1, n_heads=2, layers_per_token=group)
    x = torch.randn(4, 19)
    assert torch.equal(net._untokens(net._tokens(x)), x)
    assert net.n_tokens == math.ceil(5 / group)


@pytest.mark.parametrize("group", [1, 2])
def test_x_gain_is_an_elementwise_path(group):
    """With the main output off and a unit gain, the velocity is exactly the input, feature by feature."""
    net = LayerTransformer([3, 5, 5, 2, 4], 1, d_model=8, n_blocks=1, n_heads=2, layers_per_token=group, x_gain=True)
    _perturb(net)
    with torch.no_grad():
        net.out.weight.zero_()
        net.out.bias.zero_()
        net.gain.weight.zero_()
        net.gain.bias.fill_(1.0)
    x = torch.randn(4, 19)
    v = net(x, torch.rand(4), torch.randn(4, 1))
    assert torch.allclose(v, x)
    assert LayerTransformer([3, 5], 1, d_model=8, n_blocks=1, n_heads=2).gain is None


@pytest.mark.parametrize("group", [1, 2])
def test_x_units_are_elementwise_tanh_units(group):
    """With the main output off and units c = 2, d = 3, e = -1, the velocity is 2 tanh(3 x - 1) per
    feature (two units: c = 1 each), and a fresh network starts at zero velocity."""
    kw = dict(d_model=8, n_blocks=1, n_heads=2, layers_per_token=group, x_units=2)
    fresh = LayerTransformer([3, 5, 5, 2, 4], 1, **kw)
    x = torch.randn(4, 19)
    assert torch.equal(fresh(x, torch.rand(4), torch.randn(4, 1)), torch.zeros_like(x))
    net = LayerTransformer([3, 5, 5, 2, 4], 1, **kw)
    _perturb(net)
    with torch.no_grad():
        net.out.weight.zero_()
        net.out.bias.zero_()
        net.units.weight.zero_()
        bias = net.units.bias.view(2, 3, net.width)
        bias[:, 0], bias[:, 1], bias[:, 2] = 1.0, 3.0, -1.0
    v = net(x, torch.rand(4), torch.randn(4, 1))
    assert torch.allclose(v, 2 * torch.tanh(3 * x - 1), atol=1e-6)


def test_bad_factorised_settings_are_user_errors():
    spec = MODELS["cfm-factorised"]
    for key, value in (("x_units", -1), ("layer_cond", "bogus")):
        with pytest.raises(UserError, match=key):
            spec.build(**{**spec.example_config, key: value})


def test_configs_saved_before_layer_cond_keep_their_architecture():
    """Configs without ``layer_cond`` (the first shipped models) condition shapes on the stick features."""
    spec = MODELS["cfm-factorised"]
    new = spec.build(**spec.example_config)
    assert new.config["layer_cond"] == "energy" and new.decode is not None
    old = build_model({k: v for k, v in new.config.items() if k not in ("layer_cond", "energy_decode")})
    assert old.decode is None and old.config["layer_cond"] == "stick"
    n_layers = len(spec.example_config["token_sizes"])
    assert new.shape.velocity.cond[0].in_features == old.shape.velocity.cond[0].in_features + n_layers
    with pytest.raises(ValueError, match="energy_decode"):
        spec.build(**{**spec.example_config, "energy_decode": None})


def test_configs_saved_before_x_gain_keep_their_architecture():
    spec = MODELS["cfm-factorised"]
    new = spec.build(**spec.example_config)
    assert new.config["x_gain"] is True and new.shape.velocity.gain is not None
    old_config = {k: v for k, v in new.config.items() if k != "x_gain"}
    old = build_model(old_config)
    assert old.shape.velocity.gain is None
    assert set(new.state_dict()) - set(old.state_dict()) == {
        "shape.velocity.gain.weight",
        "shape.velocity.gain.bias",
    }
