"""Few-step students: teacher trajectories, the trajectory-matching loss and what distillation buys."""

from __future__ import annotations

import pytest
import torch

from showerforge.models import MODELS, build_model
from showerforge.models.distill import (
    flow_stages,
    pack,
    student_config,
    teacher_states,
    trajectory_loss,
    unpack,
)

torch.set_num_threads(1)


def _perturbed(name: str, seed: int = 1, **overrides):
    spec = MODELS[name]
    torch.manual_seed(0)
    model = spec.build(**{**spec.example_config, **overrides})
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model.eval()


ODE_MODELS = sorted(name for name, spec in MODELS.items() if spec.sampler_family == "ode")
"""Models with an ODE sampler: the ones distillation applies to."""


def _inputs(model, n=32, seed=5):
    g = torch.Generator().manual_seed(seed)
    cond = torch.randn(n, model.config["n_cond"], generator=g)
    mask = None
    if MODELS[model.config["name"]].data_kind == "jet-set":
        mask = torch.rand(n, model.event_shape[0], generator=g) < 0.7
        mask[:, 0] = True
    return cond, mask, model.draw_noise(n, generator=g, like=cond)


@pytest.mark.parametrize("name", ODE_MODELS)
@pytest.mark.parametrize("grid", [1, 2, 4])
def test_teacher_states_end_at_the_teachers_sample(name, grid):
    teacher = _perturbed(name, steps=4, energy_steps=4) if name == "cfm-factorised" else _perturbed(name, steps=4)
    cond, mask, noise = _inputs(teacher)
    states = teacher_states(teacher, noise, cond, grid, mask)
    assert len(states) == len(flow_stages(teacher)) == len(noise)
    for s, z in zip(states, noise):
        assert s.shape == (z.shape[0], grid + 1, *z.shape[1:])
    m = 1.0 if mask is None else mask[..., None].float()
    assert torch.equal(states[0][:, 0], noise[0] * m)
    sample = teacher.sample_from_noise(noise, cond, mask=mask)
    final = pack([s[:, -1:] for s in states])
    # the factorised model interleaves stages in its feature layout: compare per stage
    if name == "cfm-factorised":
        e, v = teacher.split(sample)
        torch.testing.assert_close(states[0][:, -1], e, atol=2e-5, rtol=2e-5)
        torch.testing.assert_close(states[1][:, -1], v, atol=2e-5, rtol=2e-5)
    else:
        torch.testing.assert_close(final.reshape(sample.shape), sample, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("name", ODE_MODELS)
def test_loss_is_zero_when_the_student_is_an_euler_teacher_on_its_own_grid(name):
    """With an Euler teacher of K steps, the K-step targets are the teacher's velocities: loss 0."""
    extra = {"energy_steps": 3} if name == "cfm-factorised" else {}
    teacher = _perturbed(name, solver="euler", steps=3, **extra)
    cond, mask, noise = _inputs(teacher)
    x = pack(teacher_states(teacher, noise, cond, 3, mask))
    loss = trajectory_loss(teacher, x, cond, mask, torch.Generator().manual_seed(0), steps=3)
    assert float(loss.detach()) < 1e-9
    # and a different network is penalised
    other = _perturbed(name, seed=2, solver="euler", steps=3, **extra)
    assert float(trajectory_loss(other, x, cond, mask, torch.Generator().manual_seed(0), steps=3).detach()) > 1e-3


def test_pack_unpack_round_trip():
    teacher = _perturbed("cfm-factorised")
    cond, mask, noise = _inputs(teacher)
    states = teacher_states(teacher, noise, cond, 2, mask)
    back = unpack(teacher, pack(states), 2)
    assert all(torch.equal(a, b) for a, b in zip(states, back))
    with pytest.raises(ValueError, match="columns"):
        unpack(teacher, pack(states)[:, :-1], 2)


def test_student_config_is_a_registered_few_step_model():
    spec = MODELS["cfm-factorised"]
    cfg = student_config(spec.resolve(**spec.example_config), 2, {"method": "trajectory matching", "steps": 2})
    student = build_model(cfg)
    assert student.default_sampler == {"solver": "euler", "steps": 2}
    assert student.config["energy_steps"] == 2 and student.config["distillation"]["steps"] == 2


@pytest.mark.parametrize("name", ["cfm-voxel", "cfm-set"])
def test_distilled_one_step_student_follows_the_teacher_better_than_one_euler_step(name):
    """The point of distillation: one network call reproduces the 8-step teacher map far better
    than the teacher's own single Euler step (same noise, held-out rows)."""
    teacher = _perturbed(name, steps=8)
    cond, mask, noise = _inputs(teacher, n=512, seed=1)
    x = pack(teacher_states(teacher, noise, cond, 1, mask))
    student = build_model(student_config(teacher.config, 1, {"steps": 1}))
    student.load_state_dict(teacher.state_dict())
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    student.train()
    for _ in range(300):
        idx = torch.randint(0, 512, (64,), generator=gen)
        loss = trajectory_loss(student, x[idx], cond[idx], None if mask is None else mask[idx], gen, steps=1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    student.eval()
    cond2, mask2, noise2 = _inputs(teacher, n=256, seed=9)
    target = teacher.sample_from_noise(noise2, cond2, mask=mask2)
    one_euler = teacher.sample_from_noise(noise2, cond2, steps=1, solver="euler", mask=mask2)
    distilled = student.sample_from_noise(noise2, cond2, mask=mask2)
    err_euler = float(((one_euler - target) ** 2).mean())
    err_student = float(((distilled - target) ** 2).mean())
    assert err_student < 0.2 * err_euler, (err_student, err_euler)
