"""Fixed-step ODE solvers for sampling flow-matching models.

Each solver integrates ``dx/dt = f(t, x)`` from ``t0`` to ``t1`` in ``steps`` equal steps. It is a
small callable ``solver(f, x0, steps, t0=0.0, t1=1.0) -> x1`` with ``nfe_per_step`` velocity
evaluations per step (Euler 1, midpoint 2, classical Runge-Kutta 4), so a sampler's cost is
``steps * nfe_per_step`` network evaluations.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from showerforge.errors import UserError

__all__ = ["VelocityField", "FixedStepSolver", "Euler", "Midpoint", "RK4", "SOLVERS", "get_solver"]

VelocityField = Callable[[Tensor, Tensor], Tensor]
"""``f(t, x) -> dx/dt`` with ``t`` a 0-d tensor and ``x`` of any shape."""


class FixedStepSolver:
    """Base class: equal steps from ``t0`` to ``t1``; subclasses define :meth:`step`."""

    name = "base"
    nfe_per_step = 0

    def step(self, f: VelocityField, t: Tensor, x: Tensor, dt: float) -> Tensor:
        """One step from ``(t, x)`` to ``t + dt``."""
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, f: VelocityField, x0: Tensor, steps: int, t0: float = 0.0, t1: float = 1.0) -> Tensor:
        """Integrate ``dx/dt = f(t, x)`` from ``x(t0) = x0``; returns ``x(t1)`` (same shape as x0)."""
        if steps < 1:
            raise UserError(f"steps must be >= 1, got {steps}")
        dt = (t1 - t0) / steps
        x = x0
        for i in range(steps):
            t = torch.tensor(t0 + i * dt, dtype=x0.dtype, device=x0.device)
            x = self.step(f, t, x, dt)
        return x

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Euler(FixedStepSolver):
    """Explicit Euler: ``x + dt f(t, x)`` (first order, 1 evaluation per step)."""

    name, nfe_per_step = "euler", 1

    def step(self, f: VelocityField, t: Tensor, x: Tensor, dt: float) -> Tensor:
        return x + dt * f(t, x)


class Midpoint(FixedStepSolver):
    """Explicit midpoint: ``x + dt f(t + dt/2, x + dt/2 f(t, x))`` (second order, 2 evaluations)."""

    name, nfe_per_step = "midpoint", 2

    def step(self, f: VelocityField, t: Tensor, x: Tensor, dt: float) -> Tensor:
        return x + dt * f(t + dt / 2, x + (dt / 2) * f(t, x))


class RK4(FixedStepSolver):
    """Classical fourth-order Runge-Kutta (4 evaluations per step)."""

    name, nfe_per_step = "rk4", 4

    def step(self, f: VelocityField, t: Tensor, x: Tensor, dt: float) -> Tensor:
        k1 = f(t, x)
        k2 = f(t + dt / 2, x + (dt / 2) * k1)
        k3 = f(t + dt / 2, x + (dt / 2) * k2)
        k4 = f(t + dt, x + dt * k3)
        return x + (dt / 6) * (k1 + 2 * k2 + 2 * k3 + k4)


SOLVERS: dict[str, FixedStepSolver] = {"euler": Euler(), "midpoint": Midpoint(), "rk4": RK4()}
"""Solvers by name (the ``solver`` argument of ``sample`` and ``generate_showers``)."""


def get_solver(name: str | FixedStepSolver) -> FixedStepSolver:
    """A solver by name (or the solver itself)."""
    if isinstance(name, FixedStepSolver):
        return name
    try:
        return SOLVERS[name]
    except KeyError:
        raise UserError(f"unknown solver {name!r}; choose one of {sorted(SOLVERS)}") from None
