"""Networks and training loops of the three refinement methods (torch; zuko for the flows).

* :func:`train_fm`: conditional flow matching *from source to target* (Tong et al.,
  arXiv:2302.00482; the refinement use follows arXiv:2309.06472): each minibatch of source
  events is paired with a minibatch of target events by exact optimal transport (Hungarian
  assignment on ``|u0 - u1|^2 / d + lambda |c0 - c1|^2``, so pairs share their conditions),
  the straight path ``u_t = (1 - t) u0 + t u1`` is learned as a velocity field ``v(u_t, t, c)``
  and :func:`integrate_fm` moves source events along it from t = 0 to 1 (midpoint rule).
* :func:`train_flow`: a conditional neural spline flow per sample (zuko ``NSF``; coupling
  layers above 16 inputs so that both directions cost two passes); the morphing map is
  ``u -> z = f_source(u; c) -> f_target^-1(z; c)`` (the CMS recipe).
* :func:`train_classifier`: an MLP separating target (1) from source (0), trained with
  class-balanced BCE and early stopping, then Platt-calibrated on a held-out split, so that
  ``w = p / (1 - p)`` estimates the density ratio target / source.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "VelocityNet",
    "Classifier",
    "train_fm",
    "integrate_fm",
    "make_flow",
    "train_flow",
    "morph_flow",
    "train_classifier",
]

Say = Callable[[str], None]


def _mlp(d_in: int, d_out: int, hidden: int, layers: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    width = d_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    mods.append(nn.Linear(width, d_out))
    return nn.Sequential(*mods)


class VelocityNet(nn.Module):
    """v(u_t, t, c): an MLP on [u_t, Fourier features of t, c]."""

    def __init__(self, dim: int, cond: int, hidden: int = 256, layers: int = 3, n_freq: int = 4) -> None:
        super().__init__()
        self.dim, self.cond, self.n_freq = dim, cond, n_freq
        self.net = _mlp(dim + cond + 1 + 2 * n_freq, dim, hidden, layers)

    def forward(self, u: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        t = t.reshape(-1, 1)
        k = torch.arange(1, self.n_freq + 1, dtype=u.dtype, device=u.device) * math.pi
        emb = torch.cat([t, torch.sin(k * t), torch.cos(k * t)], dim=1)
        return self.net(torch.cat([u, emb, c], dim=1))


class Classifier(nn.Module):
    """An MLP logit on [inputs, conditions] with Platt calibration ``a * logit + b``."""

    platt: torch.Tensor

    def __init__(self, dim: int, hidden: int = 128, layers: int = 3) -> None:
        super().__init__()
        self.net = _mlp(dim, 1, hidden, layers)
        self.register_buffer("platt", torch.tensor([1.0, 0.0]))

    def raw_logit(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Calibrated logit = log w."""
        return self.platt[0] * self.raw_logit(x) + self.platt[1]


def _ot_pairs(u0: np.ndarray, c0: np.ndarray, u1: np.ndarray, c1: np.ndarray, cond_weight: float) -> np.ndarray:
    """Column of the target batch paired with each row of the source batch (exact OT)."""
    from scipy.optimize import linear_sum_assignment

    def sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = a.astype(np.float64), b.astype(np.float64)
        return np.clip((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T, 0.0, None)

    cost = sq_dist(u0, u1) / u0.shape[1]
    if c0.shape[1]:
        cost = cost + cond_weight * sq_dist(c0, c1)
    rows, cols = linear_sum_assignment(cost)
    out = np.empty(len(u0), dtype=np.int64)
    out[rows] = cols
    return out


def _lr_at(step: int, total: int, lr: float) -> float:
    warm = min(1.0, (step + 1) / max(1, total // 50))
    return lr * warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / max(1, total))))


def train_fm(
    u0: np.ndarray,
    c0: np.ndarray,
    u1: np.ndarray,
    c1: np.ndarray,
    *,
    hidden: int,
    layers: int,
    epochs: int,
    batch_size: int,
    lr: float,
    cond_weight: float,
    seed: int,
    say: Say | None = None,
) -> tuple[VelocityNet, list[dict[str, float]]]:
    """Train a source -> target velocity field (see module docstring); returns the EMA network and the loss history."""
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xF10]))
    net = VelocityNet(u0.shape[1], c0.shape[1], hidden, layers)
    ema = VelocityNet(u0.shape[1], c0.shape[1], hidden, layers)
    ema.load_state_dict(net.state_dict())
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-5)
    b = int(min(batch_size, len(u0), len(u1)))
    steps_per_epoch = max(1, max(len(u0), len(u1)) // b)
    total = epochs * steps_per_epoch
    history: list[dict[str, float]] = []
    step = 0
    for epoch in range(epochs):
        losses = []
        for _ in range(steps_per_epoch):
            i0 = rng.choice(len(u0), b, replace=False)
            i1 = rng.choice(len(u1), b, replace=False)
            i1 = i1[_ot_pairs(u0[i0], c0[i0], u1[i1], c1[i1], cond_weight)]
            x0, x1 = torch.from_numpy(u0[i0]), torch.from_numpy(u1[i1])
            c = torch.from_numpy(0.5 * (c0[i0] + c1[i1]).astype(np.float32))
            t = torch.rand(b, 1, generator=gen)
            xt = (1 - t) * x0 + t * x1
            loss = ((net(xt, t, c) - (x1 - x0)) ** 2).mean()
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, total, lr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            with torch.no_grad():
                decay = min(0.999, (1 + step) / (10 + step))
                for pe, pn in zip(ema.parameters(), net.parameters()):
                    pe.mul_(decay).add_(pn.detach(), alpha=1 - decay)
            losses.append(loss.item())
            step += 1
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses))})
        if say and (epoch + 1 == epochs or (epoch + 1) % max(1, epochs // 10) == 0):
            say(f"refine fm: epoch {epoch + 1}/{epochs}, loss {history[-1]['loss']:.4f}")
    ema.eval()
    return ema, history


@torch.no_grad()
def integrate_fm(net: VelocityNet, u: np.ndarray, c: np.ndarray, steps: int, batch: int = 4096) -> np.ndarray:
    """Move source events along the learned field from t = 0 to 1 (midpoint rule, ``steps`` steps)."""
    out = np.empty_like(u, dtype=np.float32)
    h = 1.0 / steps
    for lo in range(0, len(u), batch):
        x = torch.from_numpy(np.asarray(u[lo : lo + batch], dtype=np.float32))
        cc = torch.from_numpy(np.asarray(c[lo : lo + batch], dtype=np.float32))
        for k in range(steps):
            t = torch.full((len(x), 1), k * h)
            mid = x + 0.5 * h * net(x, t, cc)
            x = x + h * net(mid, t + 0.5 * h, cc)
        out[lo : lo + batch] = x.numpy()
    return out


def make_flow(dim: int, cond: int, *, transforms: int, hidden: int) -> Any:
    """A conditional zuko NSF (autoregressive up to 16 inputs, coupling above)."""
    import zuko

    return zuko.flows.NSF(
        features=dim,
        context=cond,
        transforms=transforms,
        hidden_features=(hidden, hidden),
        passes=2 if dim > 16 else None,
    )


def train_flow(
    u: np.ndarray,
    c: np.ndarray,
    *,
    transforms: int,
    hidden: int,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    label: str,
    say: Say | None = None,
) -> tuple[Any, list[dict[str, float]]]:
    """Fit a conditional flow to one sample by maximum likelihood; the epoch with the best
    held-out (10 %) log-likelihood is kept."""
    torch.manual_seed(int(seed))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xF70]))
    flow = make_flow(u.shape[1], c.shape[1], transforms=transforms, hidden=hidden)
    perm = rng.permutation(len(u))
    n_val = max(1, len(u) // 10)
    val, train = perm[:n_val], perm[n_val:]
    uv, cv = torch.from_numpy(u[val]), torch.from_numpy(c[val].astype(np.float32))
    opt = torch.optim.AdamW(flow.parameters(), lr=lr, weight_decay=1e-5)
    b = int(min(batch_size, len(train)))
    steps_per_epoch = max(1, len(train) // b)
    total = epochs * steps_per_epoch
    best, best_state, history, step = math.inf, None, [], 0
    for epoch in range(epochs):
        order = train[rng.permutation(len(train))]
        losses = []
        flow.train()
        for k in range(steps_per_epoch):
            idx = order[k * b : (k + 1) * b]
            loss = -flow(torch.from_numpy(c[idx].astype(np.float32))).log_prob(torch.from_numpy(u[idx])).mean()
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, total, lr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(flow.parameters(), 5.0)
            opt.step()
            losses.append(loss.item())
            step += 1
        flow.eval()
        with torch.no_grad():
            val_loss = float(-flow(cv).log_prob(uv).mean())
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_loss": val_loss})
        if np.isfinite(val_loss) and val_loss < best:
            best = val_loss
            best_state = {k: v.detach().clone() for k, v in flow.state_dict().items()}
        if say and (epoch + 1 == epochs or (epoch + 1) % max(1, epochs // 10) == 0):
            say(
                f"refine flow ({label}): epoch {epoch + 1}/{epochs}, -log L {history[-1]['loss']:.3f}, val {val_loss:.3f}"
            )
    if best_state is not None:
        flow.load_state_dict(best_state)
    flow.eval()
    return flow, history


@torch.no_grad()
def morph_flow(source_flow: Any, target_flow: Any, u: np.ndarray, c: np.ndarray, batch: int = 4096) -> np.ndarray:
    """u -> z = f_source(u; c) -> f_target^-1(z; c)."""
    out = np.empty_like(u, dtype=np.float32)
    for lo in range(0, len(u), batch):
        x = torch.from_numpy(np.asarray(u[lo : lo + batch], dtype=np.float32))
        cc = torch.from_numpy(np.asarray(c[lo : lo + batch], dtype=np.float32))
        z = source_flow(cc).transform(x)
        out[lo : lo + batch] = target_flow(cc).transform.inv(z).numpy()
    return out


def train_classifier(
    x0: np.ndarray,
    x1: np.ndarray,
    *,
    hidden: int,
    layers: int,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    patience: int = 10,
    say: Say | None = None,
) -> tuple[Classifier, dict[str, Any]]:
    """Source (label 0) vs target (1): 60 % train, 20 % early stopping, 20 % Platt calibration.

    Returns the calibrated classifier and a summary (held-out AUC before calibration, epochs).
    """
    from sklearn.metrics import roc_auc_score

    torch.manual_seed(int(seed))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xC1F]))
    x = np.concatenate([x0, x1]).astype(np.float32)
    y = np.concatenate([np.zeros(len(x0)), np.ones(len(x1))]).astype(np.float32)
    parts: list[list[np.ndarray]] = [[], [], []]
    for rows in (np.arange(len(x0)), len(x0) + np.arange(len(x1))):
        p = rows[rng.permutation(len(rows))]
        cut1, cut2 = int(0.6 * len(p)), int(0.8 * len(p))
        for k, chunk in enumerate((p[:cut1], p[cut1:cut2], p[cut2:])):
            parts[k].append(chunk)
    train, stop, calib = (np.concatenate(p) for p in parts)
    # class-balanced loss: both classes weigh the same, so p / (1 - p) is the density ratio
    wpos = float(len(x0)) / max(1, len(x1))
    net = Classifier(x.shape[1], hidden, layers)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-5)
    bce = nn.BCEWithLogitsLoss(reduction="none")

    def loss_on(rows: np.ndarray) -> float:
        with torch.no_grad():
            logit = net.raw_logit(torch.from_numpy(x[rows]))
            t = torch.from_numpy(y[rows])
            w = torch.where(t > 0.5, torch.tensor(wpos), torch.tensor(1.0))
            return float((bce(logit, t) * w).sum() / w.sum())

    best, best_state, since, epochs_run = math.inf, None, 0, 0
    b = int(min(batch_size, len(train)))
    for epoch in range(epochs):
        order = train[rng.permutation(len(train))]
        net.train()
        for k in range(max(1, len(order) // b)):
            idx = order[k * b : (k + 1) * b]
            t = torch.from_numpy(y[idx])
            w = torch.where(t > 0.5, torch.tensor(wpos), torch.tensor(1.0))
            loss = (bce(net.raw_logit(torch.from_numpy(x[idx])), t) * w).sum() / w.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        net.eval()
        epochs_run = epoch + 1
        val = loss_on(stop)
        if val < best - 1e-5:
            best, since = val, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            since += 1
            if patience and since >= patience:
                break
        if say and (epoch + 1) % max(1, epochs // 10) == 0:
            say(f"refine reweight: epoch {epoch + 1}/{epochs}, held-out loss {val:.4f}")
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    # Platt scaling on the calibration split (class-balanced), by Newton steps on (a, b)
    with torch.no_grad():
        s = net.raw_logit(torch.from_numpy(x[calib])).double().numpy()
    t_cal = y[calib].astype(np.float64)
    w_cal = np.where(t_cal > 0.5, wpos, 1.0)
    slope, offset = _platt(s, t_cal, w_cal)
    net.platt.copy_(torch.tensor([slope, offset], dtype=torch.float32))
    auc = float(roc_auc_score(t_cal, s, sample_weight=w_cal)) if len(np.unique(t_cal)) == 2 else float("nan")
    return net, {"epochs": epochs_run, "heldout_auc": auc, "platt": [slope, offset], "n_calibration": int(len(calib))}


def _platt(s: np.ndarray, t: np.ndarray, w: np.ndarray, iters: int = 50) -> tuple[float, float]:
    """Weighted logistic regression of t on s: the (a, b) of p = sigmoid(a s + b), small L2 towards (1, 0)."""
    a, b = 1.0, 0.0
    lam = 1e-3 * w.sum()
    for _ in range(iters):
        z = np.clip(a * s + b, -30, 30)
        p = 1.0 / (1.0 + np.exp(-z))
        r = w * (p - t)
        g = np.array([np.sum(r * s) + lam * (a - 1.0), np.sum(r) + lam * b])
        q = w * p * (1 - p)
        h = np.array([[np.sum(q * s * s) + lam, np.sum(q * s)], [np.sum(q * s), np.sum(q) + lam]])
        try:
            step = np.linalg.solve(h, g)
        except np.linalg.LinAlgError:
            break
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-8:
            break
    return float(a), float(b)
