"""Conditional flow matching (Lipman et al. 2023; Tong et al. 2024, I-CFM) around any velocity network."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from showerforge.models.base import GenerativeModel
from showerforge.models.paths import sample_time, straight_path
from showerforge.models.solvers import get_solver

__all__ = ["FlowMatching"]


class FlowMatching(GenerativeModel):
    """Conditional flow matching on the straight path, sampled with a fixed-step ODE solver.

    Loss (CFM): ``E_{t, x0, x1} || v_theta(x_t, t, c) - (x1 - x0) ||^2`` with ``x0 ~ N(0, I)``,
    ``x_t`` from :func:`showerforge.models.paths.straight_path`. Sampling integrates
    ``dx/dt = v_theta(x, t, c)`` from noise at ``t = 0`` to data at ``t = 1``.

    Args:
        velocity: network ``velocity(x, t, cond, mask) -> v`` with ``x, v`` (N, *event_shape),
            ``t`` (N,), ``cond`` (N, n_cond).
        event_shape: shape of one sample.
        config: JSON-able config (``name`` + constructor arguments); may set ``sigma`` (I-CFM noise,
            default 0), ``time_sampling`` (``"uniform"`` or ``"logit-normal"``), ``solver`` and
            ``steps`` (default sampler).
    """

    def __init__(self, velocity: nn.Module, event_shape: tuple[int, ...], config: dict[str, Any]) -> None:
        super().__init__()
        self.velocity = velocity
        self.event_shape = tuple(int(n) for n in event_shape)
        self.config = dict(config)
        self.sigma = float(self.config.get("sigma", 0.0))
        self.time_sampling = str(self.config.get("time_sampling", "uniform"))

    def forward(self, x: Tensor, t: Tensor, cond: Tensor, mask: Tensor | None = None) -> Tensor:
        """Velocity ``v_theta(x, t, c)``, shape like ``x``; ``t`` is (N,) or a 0-d tensor."""
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        return self.velocity(x, t, cond, mask)

    @staticmethod
    def _mask_like(mask: Tensor | None, x: Tensor) -> Tensor | None:
        if mask is None:
            return None
        return mask.reshape(*mask.shape, *([1] * (x.dim() - mask.dim()))).to(x.dtype)

    def loss(
        self, x: Tensor, cond: Tensor, mask: Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Mean squared error between predicted and target velocity (over unmasked entries)."""
        x0 = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        t = sample_time(x.shape[0], kind=self.time_sampling, generator=generator, device=x.device).to(x.dtype)
        eps = None
        if self.sigma > 0:
            eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        m = self._mask_like(mask, x)
        if m is not None:
            x0, x = x0 * m, x * m
            eps = eps * m if eps is not None else None
        xt, ut = straight_path(x0, x, t, self.sigma, eps)
        err = (self(xt, t, cond, mask) - ut) ** 2
        if m is None:
            return err.mean()
        return (err * m).sum() / (m.expand_as(err).sum()).clamp_min(1.0)

    @torch.no_grad()
    def sample_from_noise(
        self,
        noise: list[Tensor],
        cond: Tensor,
        *,
        steps: int | None = None,
        solver: str | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """Integrate the learnt ODE from the given ``N(0, I)`` noise (see :class:`GenerativeModel`)."""
        default = self.default_sampler
        return self.integrate(
            noise[0], cond, steps=int(steps or default["steps"]), solver=solver or default["solver"], mask=mask
        )

    def integrate(
        self,
        x0: Tensor,
        cond: Tensor,
        *,
        steps: int,
        solver: str,
        mask: Tensor | None = None,
        t0: float = 0.0,
        t1: float = 1.0,
    ) -> Tensor:
        """``x(t1)`` of ``dx/dt = v_theta(x, t, c)`` from ``x(t0) = x0`` (masked entries stay 0)."""
        ode = get_solver(solver)
        m = self._mask_like(mask, x0)
        if m is not None:
            x0 = x0 * m

        def f(t: Tensor, x: Tensor) -> Tensor:
            v = self(x, t, cond, mask)
            return v * m if m is not None else v

        return ode(f, x0, steps, t0, t1)
