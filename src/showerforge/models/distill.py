"""Few-step students of flow-matching models: teacher trajectories and the trajectory-matching loss.

A flow-matching teacher maps noise ``x_0`` to a sample ``x_1`` by integrating its ODE with many
network evaluations (16 for midpoint x 8). A *K-step student* has the same architecture and is
sampled with ``K`` Euler steps, ``x_{k+1} = x_k + v_s(x_k, t_k) / K`` with ``t_k = k / K``. It is
trained to reproduce the teacher's trajectory at those grid points: with the teacher states
``x_{t_0}, ..., x_{t_K}`` from the same noise, the loss is

    E_{x_0, k} || v_s(x_{t_k}, t_k, c) - K (x_{t_{k+1}} - x_{t_k}) ||^2,

the secant of the teacher's ODE over one student step (Luhman & Luhman 2021 for K = 1,
arXiv:2101.02388; the same targets per step as progressive distillation, Salimans & Ho 2022,
arXiv:2202.00512, reached in one round from the teacher's own trajectory). The student starts from
the teacher's weights (``v_s = v_teacher`` is already a good first-order guess), so training is a
short fine-tuning.

Models made of several flows sampled one after the other (:class:`FactorisedFlow`: layer energies,
then shapes conditioned on them) are distilled stage by stage: every stage gets its own K-step
student and the later stages are trained on the teacher's earlier-stage samples.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from showerforge.errors import UserError
from showerforge.models.base import GenerativeModel
from showerforge.models.factorised import FactorisedFlow
from showerforge.models.flow_matching import FlowMatching

__all__ = [
    "flow_stages",
    "stage_condition",
    "stage_shapes",
    "teacher_states",
    "trajectory_loss",
    "student_config",
    "pack",
    "unpack",
]


def flow_stages(model: GenerativeModel) -> list[tuple[FlowMatching, int]]:
    """The flows a model samples, in order, with the ODE steps its default sampler gives each."""
    steps = int(model.default_sampler["steps"])
    if isinstance(model, FactorisedFlow):
        return [(model.energy, int(model.config.get("energy_steps", 16))), (model.shape, steps)]
    if isinstance(model, FlowMatching):
        return [(model, steps)]
    raise UserError(f"model {model.config.get('name')!r} is not a flow-matching model; it cannot be distilled")


def stage_condition(model: GenerativeModel, stage: int, cond: Tensor, finals: list[Tensor]) -> Tensor:
    """Condition of ``stage`` given the samples ``finals`` of the stages before it."""
    if isinstance(model, FactorisedFlow) and stage == 1:
        return model.shape_condition(finals[0], cond)
    return cond


@torch.no_grad()
def teacher_states(
    teacher: GenerativeModel, noise: list[Tensor], cond: Tensor, steps: int, mask: Tensor | None = None
) -> list[Tensor]:
    """The teacher's ODE states at ``t = k / steps``, ``k = 0..steps``, from the given noise.

    Each stage is integrated with its own default solver and step count, split evenly over the
    ``steps`` segments (at least one solver step per segment).

    Returns:
        One tensor per stage, (N, steps + 1, *stage_shape); index ``[:, 0]`` is the (masked) noise
        and ``[:, -1]`` the teacher's sample.
    """
    solver = str(teacher.default_sampler["solver"])
    out: list[Tensor] = []
    finals: list[Tensor] = []
    for i, (flow, n_steps) in enumerate(flow_stages(teacher)):
        c = stage_condition(teacher, i, cond, finals)
        per = max(1, -(-n_steps // steps))
        m = FlowMatching._mask_like(mask, noise[i])
        x = noise[i] * m if m is not None else noise[i]
        states = [x]
        for k in range(steps):
            x = flow.integrate(x, c, steps=per, solver=solver, mask=mask, t0=k / steps, t1=(k + 1) / steps)
            states.append(x)
        out.append(torch.stack(states, dim=1))
        finals.append(x)
    return out


def pack(states: list[Tensor]) -> Tensor:
    """Stage states -> one (N, total) float tensor (the rows a training batch holds)."""
    return torch.cat([s.reshape(s.shape[0], -1) for s in states], dim=1)


def stage_shapes(model: GenerativeModel, width: int | None = None) -> list[tuple[int, ...]]:
    """Event shape of each stage; with ``width``, sets (2-D stages, ``(n_slots, features)``)
    padded to ``width`` slots instead of the model's largest set."""
    shapes = [tuple(flow.event_shape) for flow, _ in flow_stages(model)]
    if width is None:
        return shapes
    return [(int(width), *shape[1:]) if len(shape) == 2 else shape for shape in shapes]


def unpack(model: GenerativeModel, x: Tensor, steps: int, width: int | None = None) -> list[Tensor]:
    """Inverse of :func:`pack` for a model's stages: (N, total) -> [(N, steps + 1, *shape), ...]
    (sets padded to ``width`` slots when given, see :func:`stage_shapes`)."""
    shapes = stage_shapes(model, width)
    sizes = [(steps + 1) * math.prod(shape) for shape in shapes]
    if sum(sizes) != x.shape[1]:
        raise ValueError(f"packed trajectories have {x.shape[1]} columns, the model's stages {sum(sizes)}")
    out, lo = [], 0
    for shape, size in zip(shapes, sizes):
        out.append(x[:, lo : lo + size].reshape(x.shape[0], steps + 1, *shape))
        lo += size
    return out


def trajectory_loss(
    student: GenerativeModel,
    x: Tensor,
    cond: Tensor,
    mask: Tensor | None,
    generator: torch.Generator,
    *,
    steps: int,
) -> Tensor:
    """Mean over stages of ``|| v_s(x_{t_k}, t_k) - K (x_{t_{k+1}} - x_{t_k}) ||^2`` (random ``k`` per row).

    Args:
        student: the K-step student (its stages as :func:`flow_stages`).
        x: packed teacher states (:func:`pack`), (N, total); sets padded to ``mask``'s width.
        cond: (N, n_cond); mask: (N, n_slots) or ``None``.
        generator: draws the grid index ``k`` of each row.
        steps: ``K``.
    """
    states = unpack(student, x, steps, None if mask is None else mask.shape[1])
    n = x.shape[0]
    k = torch.randint(0, steps, (n,), generator=generator, device=x.device)
    rows = torch.arange(n, device=x.device)
    t = k.to(x.dtype) / steps
    finals = [s[:, -1] for s in states]
    total = x.new_zeros(())
    for i, (flow, _) in enumerate(flow_stages(student)):
        s = states[i]
        xk, target = s[rows, k], steps * (s[rows, k + 1] - s[rows, k])
        err = (flow(xk, t, stage_condition(student, i, cond, finals), mask) - target) ** 2
        m = FlowMatching._mask_like(mask, err)
        if m is None:
            total = total + err.mean()
        else:
            total = total + (err * m).sum() / m.expand_as(err).sum().clamp_min(1.0)
    return total


def student_config(teacher_config: dict[str, Any], steps: int, record: dict[str, Any]) -> dict[str, Any]:
    """The teacher's config with a ``steps``-step Euler sampler and the ``distillation`` record."""
    if steps < 1:
        raise UserError(f"steps must be >= 1, got {steps}")
    cfg = {**teacher_config, "solver": "euler", "steps": int(steps), "distillation": dict(record)}
    if "energy_steps" in cfg:
        cfg["energy_steps"] = int(steps)
    return cfg
