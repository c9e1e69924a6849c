"""``cfm-points``: two-stage flow matching for calorimeter showers as point clouds.

The design shared by CaloClouds (Buhmann et al., arXiv:2305.04847) and CaloClouds II
(arXiv:2309.05704), written here with flow matching:

1. a *shower flow* learns the per-shower summaries ``s`` given the incident energy: the visible
   energy and the number of points, their shares among the layers and the transverse centre of
   gravity (``2 L + 4`` numbers, 64 for 30 layers), a small residual MLP (:class:`~showerforge.models.factorised.EnergyMLP`)
   that is cheap to integrate;
2. a *point flow* learns the points (x, y, z, energy; preprocessed) given the incident energy and
   ``s``, an EPiC set network (:class:`~showerforge.models.epic.EPiCVelocity`) on the real points
   of a mask, linear in the number of points and permutation-equivariant.

At training time the point flow sees the true summaries; at sampling time those the shower flow
draws. The calibrations that make the generated shower obey the drawn summaries exactly (points
per layer from the ordering in z, energy per layer, centre of gravity) are applied to physical
points, in :mod:`showerforge.data.points_preprocess`. As a :class:`GenerativeModel` the model is
the point flow: ``cond`` is ``[incident-energy feature, s]`` (``n_cond = 1 + n_summary``) and
``mask`` marks the real points; :meth:`sample_summaries` is the shower flow.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from showerforge.models.epic import epic_velocity
from showerforge.models.factorised import EnergyMLP
from showerforge.models.flow_matching import FlowMatching

__all__ = ["PointShowerFlow", "build_cfm_points"]


class PointShowerFlow(FlowMatching):
    """The point flow (this class) with the shower flow as the submodule ``summary``.

    Args:
        cfg: complete config (see :func:`build_cfm_points`).
    """

    def __init__(self, cfg: dict[str, Any]) -> None:
        n_summary = int(cfg["n_summary"])
        if int(cfg["n_cond"]) != 1 + n_summary:
            raise ValueError(f"cfm-points: n_cond must be 1 + n_summary = {1 + n_summary}, got {cfg['n_cond']}")
        # the pooled sums divided by the largest shower: a shower never depends on its batch
        net = epic_velocity(cfg, n_max=int(cfg["n_particles"]))
        super().__init__(net, (cfg["n_particles"], cfg["n_features"]), cfg)
        shower_cfg = {"sigma": 0.0, "time_sampling": cfg["time_sampling"], "solver": "midpoint", "steps": 16}
        self.summary = FlowMatching(
            EnergyMLP(n_summary, 1, width=cfg["summary_width"], n_blocks=cfg["summary_blocks"]),
            (n_summary,),
            shower_cfg,
        )
        self.summary_steps = int(cfg["summary_steps"])
        self.summary_solver = "midpoint"
        self.summary_repeat = int(cfg.get("summary_repeat", 1))

    def loss(
        self, x: Tensor, cond: Tensor, mask: Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Point-flow loss plus shower-flow loss (the summaries are ``cond[:, 1:]``).

        The shower flow is cheap next to the point flow: its loss is averaged over
        ``summary_repeat`` draws of time and noise per shower, which gives it as many effective
        training rows as the point flow's steps allow at no noticeable cost.
        """
        points = super().loss(x, cond, mask, generator=generator)
        r = self.summary_repeat
        return points + self.summary.loss(cond[:, 1:].repeat(r, 1), cond[:, :1].repeat(r, 1), generator=generator)

    @torch.no_grad()
    def sample_summaries(
        self, energy_cond: Tensor, *, generator: torch.Generator | None = None, steps: int | None = None
    ) -> Tensor:
        """Preprocessed summaries (N, n_summary) drawn by the shower flow for ``energy_cond`` (N, 1)."""
        noise = torch.randn(
            (energy_cond.shape[0], *self.summary.event_shape),
            generator=generator,
            device=energy_cond.device,
            dtype=energy_cond.dtype,
        )
        return self.summaries_from_noise(noise, energy_cond, steps=steps)

    def summaries_from_noise(self, noise: Tensor, energy_cond: Tensor, *, steps: int | None = None) -> Tensor:
        """The shower flow's deterministic map: noise (N, n_summary) -> preprocessed summaries (N, n_summary).

        Integrated with :attr:`summary_solver` over ``steps`` (default ``summary_steps``) steps;
        :meth:`sample_summaries` and the exported point graph both call it.
        """
        return self.summary.integrate(
            noise, energy_cond, steps=int(steps or self.summary_steps), solver=self.summary_solver
        )


def build_cfm_points(cfg: dict[str, Any]) -> PointShowerFlow:
    """``"cfm-points"`` from a complete config.

    Args:
        cfg: data keys ``n_particles`` (largest number of points), ``n_features`` (4),
            ``n_summary`` (``2 L + 2``), ``n_cond`` (``1 + n_summary``); point network
            ``d_model``, ``d_global``, ``n_blocks``, ``mlp_ratio``, ``depth_tokens`` (0: none;
            :class:`~showerforge.models.epic.DepthAttention` on the depth); shower flow ``summary_width``,
            ``summary_blocks``, ``summary_steps``, ``summary_repeat`` (draws of time and noise per
            shower in the shower-flow loss); flow matching ``sigma``, ``time_sampling``,
            ``solver``, ``steps``.
    """
    return PointShowerFlow(cfg)
