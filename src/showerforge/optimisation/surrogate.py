"""A design-conditioned surrogate of the per-event loss, differentiable in the design.

The per-event loss is ``l = r^2`` with ``r = (y_pred - y) / sqrt(|y| + 1)`` (:mod:`reco`). The
surrogate is a conditional flow-matching model (:class:`showerforge.models.FlowMatching` with the
residual-MLP velocity :class:`showerforge.models.factorised.EnergyMLP`) of the distribution of
``z = (log(l + eps) - m) / s`` (``eps`` 1e-3 of the mean loss, ``m`` and ``s`` the mean and spread
of ``log(l + eps)`` in the training data) given the condition ``[design vector, normalised log
energy]``: on the log scale a change of resolution is a shift, which a small network resolves
equally well for good and bad designs. Its expected loss at a design is the mean of
``exp(m + s z) - eps`` over samples ``z`` integrated with Euler steps from fixed noise (common
random numbers) at a grid of energies; the integration keeps the autograd graph, so the gradient
reaches the design vector. As AIDO's diffusion surrogate, it models the whole loss distribution,
not only its mean.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from showerforge.models.factorised import EnergyMLP
from showerforge.models.flow_matching import FlowMatching

__all__ = ["LossSurrogate", "train_surrogate", "one_thread"]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (bit-identical results from run to run)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class LossSurrogate:
    """A trained surrogate (module docstring); ``log_e`` (low, high) normalises the energy."""

    model: FlowMatching
    shift: float
    scale: float
    eps: float
    log_e: tuple[float, float]
    settings: dict[str, Any]

    def condition(self, design: Tensor, energies_mev: Tensor) -> Tensor:
        """Conditions (n, width + 1) of one design vector (width,) at ``energies_mev`` (n,)."""
        lo, hi = self.log_e
        z = (torch.log(energies_mev) - lo) / max(hi - lo, 1e-9)
        return torch.cat([design.expand(len(z), -1), z[:, None]], dim=1)

    def expected_loss(self, design: Tensor, energies_mev: Tensor, noise: Tensor) -> Tensor:
        """Mean per-event loss at ``design`` over ``energies_mev`` (n,) and ``noise`` (n, 1); differentiable."""
        cond = self.condition(design, energies_mev)
        x = noise
        steps = int(self.settings["ode_steps"])
        for i in range(steps):
            t = torch.full((len(x),), i / steps, dtype=x.dtype)
            x = x + self.model(x, t, cond) / steps
        return (torch.exp(self.shift + self.scale * x) - self.eps).mean()

    def grid(self, energies_mev: np.ndarray, seed: int) -> tuple[Tensor, Tensor]:
        """Energies repeated ``noise_draws`` times and fixed noise for :meth:`expected_loss`."""
        k = int(self.settings["noise_draws"])
        e = torch.as_tensor(np.asarray(energies_mev), dtype=torch.float32)
        g = torch.Generator().manual_seed(int(seed))
        return e.repeat_interleave(k), torch.randn(len(e) * k, 1, generator=g)


def train_surrogate(
    designs: np.ndarray, energies_mev: np.ndarray, resid: np.ndarray, settings: dict[str, Any], seed: int
) -> tuple[LossSurrogate, list[float]]:
    """Fit the surrogate on per-event rows: design vectors (N, width), energies (N,), residuals (N,).

    Returns:
        The surrogate and the mean training loss of each epoch.
    """
    log_e = (float(np.log(energies_mev.min())), float(np.log(energies_mev.max())))
    eps = 1e-3 * float(np.mean(resid**2)) + 1e-12
    target = np.log(resid**2 + eps)
    shift, scale = float(target.mean()), float(target.std()) or 1.0
    with one_thread():
        torch.manual_seed(int(seed))
        net = EnergyMLP(1, designs.shape[1] + 1, width=int(settings["width"]), n_blocks=int(settings["n_blocks"]))
        model = FlowMatching(net, (1,), {"name": "optimise-loss-surrogate", "solver": "euler"})
        sur = LossSurrogate(model, shift, scale, eps, log_e, dict(settings))
        cond = sur.condition(torch.zeros(designs.shape[1]), torch.as_tensor(energies_mev, dtype=torch.float32))
        cond[:, :-1] = torch.as_tensor(designs, dtype=torch.float32)
        x = torch.as_tensor((target - shift) / scale, dtype=torch.float32)[:, None]
        opt = torch.optim.Adam(model.parameters(), lr=float(settings["lr"]))
        g = torch.Generator().manual_seed(int(seed) + 1)
        bs, history = int(settings["batch_size"]), []
        for _ in range(int(settings["epochs"])):
            perm, total = torch.randperm(len(x), generator=g), 0.0
            for k in range(0, len(x), bs):
                rows = perm[k : k + bs]
                loss = model.loss(x[rows], cond[rows], generator=g)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(rows)
            history.append(total / len(x))
        model.eval()
    return sur, history
