"""Probability paths of conditional flow matching.

Time runs from ``t = 0`` (noise ``x0 ~ N(0, I)``) to ``t = 1`` (data ``x1``), as in Lipman et al.,
"Flow Matching for Generative Modeling" (ICLR 2023, arXiv:2210.02747) and Tong et al., "Improving
and generalizing flow-based generative models with minibatch optimal transport" (TMLR 2024,
arXiv:2302.00482, I-CFM):

    x_t = (1 - t) x0 + t x1 + sigma * eps,      u_t(x_t | x0, x1) = x1 - x0.

With ``sigma = 0`` this is the straight (rectified / conditional-OT) path.
"""

from __future__ import annotations

import torch
from torch import Tensor

from showerforge.errors import UserError

__all__ = ["straight_path", "sample_time"]


def _bcast(t: Tensor, like: Tensor) -> Tensor:
    return t.reshape(t.shape[0], *([1] * (like.dim() - 1)))


def straight_path(
    x0: Tensor, x1: Tensor, t: Tensor, sigma: float = 0.0, eps: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Point on the straight path and its target velocity.

    Args:
        x0: noise, shape (N, *event).
        x1: data, shape (N, *event).
        t: times in [0, 1], shape (N,).
        sigma: I-CFM noise level around the path (0: deterministic straight path).
        eps: standard-normal noise like ``x0``; needed when ``sigma > 0``.

    Returns:
        ``(x_t, u_t)``, both shape (N, *event): ``x_t = (1 - t) x0 + t x1 + sigma eps`` and
        ``u_t = x1 - x0``.
    """
    tb = _bcast(t, x0)
    xt = (1 - tb) * x0 + tb * x1
    if sigma > 0:
        if eps is None:
            raise ValueError("straight_path: sigma > 0 needs eps")
        xt = xt + sigma * eps
    return xt, x1 - x0


def sample_time(
    n: int, *, kind: str = "uniform", generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> Tensor:
    """Training times, shape (n,).

    Args:
        n: how many.
        kind: ``"uniform"`` (U[0, 1], Lipman et al.) or ``"logit-normal"`` (sigmoid of N(0, 1),
            Esser et al. 2024, arXiv:2403.03206, which weights the middle of the path).
        generator: torch random generator (seeded for reproducible training).
        device: device of the result.
    """
    if kind == "uniform":
        return torch.rand(n, generator=generator, device=device)
    if kind == "logit-normal":
        return torch.sigmoid(torch.randn(n, generator=generator, device=device))
    raise UserError(f"unknown time sampling {kind!r}; use 'uniform' or 'logit-normal'")
