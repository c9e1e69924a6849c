"""Tokenisers: constituents (jet particles, shower points) <-> discrete tokens.

A tokeniser maps one constituent, a row of ``F`` preprocessed features (jets: standardised
``eta_rel, phi_rel, log pT_rel``; showers: standardised ``x, y`` (arcsinh of mm), dequantised
layer, ``log E``), to ``A`` integer ids, one per *axis*, and back. Two are provided:

* :class:`AxisTokeniser` (SPADE-style per-axis discretisation): each feature is binned on its
  own (``A = F``), with edges fitted on the training constituents (uniform between the smallest
  and largest value, or equal-population quantiles). Decoding gives the bin centre (resolution:
  half a bin width) or a uniform draw within the bin.
* :class:`VQTokeniser` (a small VQ-VAE, as OmniJet-alpha's tokeniser but with MLPs per
  constituent): an encoder MLP to a ``code_dim`` latent, the nearest of ``codebook_size`` codes
  (``A = 1``), a decoder MLP back. Trained by :meth:`VQTokeniser.fit` with the straight-through
  estimator, a commitment loss and exponential-moving-average codebook updates (unused codes are
  restarted at encoder outputs); codebook use and reconstruction error are reported.

Both are :class:`torch.nn.Module` objects whose fitted state is *buffers*, so it travels in a
model's ``state_dict`` (checkpoints hold tensors and JSON, never pickled code) and receives no
gradients from the model that owns it.

Special ids, shared by both: a sequence of ``k`` constituents is written as ``k`` rows of ids
followed by :data:`PAD_ID` rows up to the length cap; the generating model marks the start of a
sequence with its condition token and its end with a stop decision (see
:mod:`showerforge.models.autoregressive`). :meth:`Tokeniser.describe` records the vocabulary, and
flat token ids where a single id per constituent is wanted: ``START = V``, ``STOP = V + 1``,
``PAD = V + 2`` with ``V`` the product of the axis vocabularies (OmniJet-alpha's convention).

References: OmniJet-alpha (arXiv:2403.05618), SPADE per-axis tokens; VQ-VAE (arXiv:1711.00937).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PAD_ID", "TOKENISERS", "Tokeniser", "AxisTokeniser", "VQTokeniser", "build_tokeniser"]

PAD_ID = -1
"""The id of padded rows in token arrays (after the stop)."""

TOKENISERS = ("axis", "vq")
"""Names of the tokenisers (the ``tokeniser`` setting of ``ar-tokens``)."""

MAX_FIT_ROWS = 1_000_000
"""At most this many constituents are used to fit a tokeniser."""


class Tokeniser(nn.Module):
    """Base class: ``encode`` (M, F) features -> (M, A) ids; ``decode`` back; ``fit`` on data.

    Attributes:
        n_features: ``F``, features per constituent.
        vocab_sizes: ids per axis (``A`` entries).
    """

    name: str = ""
    n_features: int
    vocab_sizes: list[int]

    def encode(self, x: Tensor) -> Tensor:
        """Ids (M, A) int64 of constituents ``x`` (M, F)."""
        raise NotImplementedError

    def decode(self, ids: Tensor, *, generator: torch.Generator | None = None, mode: str = "centre") -> Tensor:
        """Features (M, F) of ids (M, A); ``mode`` ``"centre"`` or ``"uniform"`` (axis tokeniser)."""
        raise NotImplementedError

    def fit(self, x: Tensor, *, seed: int = 0) -> dict[str, Any]:
        """Fit on constituents ``x`` (M, F); returns a JSON-able report."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """JSON-able description: name, vocabulary, special ids."""
        flat = math.prod(self.vocab_sizes)
        return {
            "tokeniser": self.name,
            "n_features": self.n_features,
            "vocab_sizes": list(self.vocab_sizes),
            "flat_vocab": flat,
            "start_id": flat,
            "stop_id": flat + 1,
            "pad_id": flat + 2,
            "pad_row_id": PAD_ID,
        }


class AxisTokeniser(Tokeniser):
    """Per-axis discretisation: ``bins`` bins per feature.

    Args:
        n_features: ``F`` (= ``A``).
        bins: bins per feature (>= 2).
        spacing: ``"uniform"`` (equal widths between the smallest and largest fitted value) or
            ``"quantile"`` (equal numbers of fitted constituents per bin).

    Before :meth:`fit`, the edges are uniform on [-4, 4] (standardised features).
    """

    name = "axis"
    edges: Tensor

    def __init__(self, n_features: int, bins: int, spacing: str = "uniform") -> None:
        super().__init__()
        if bins < 2 or spacing not in ("uniform", "quantile"):
            raise ValueError(f"axis tokeniser: need bins >= 2 and spacing uniform|quantile, got {bins}, {spacing!r}")
        self.n_features, self.bins, self.spacing = int(n_features), int(bins), spacing
        self.vocab_sizes = [self.bins] * self.n_features
        self.register_buffer("edges", torch.linspace(-4.0, 4.0, self.bins + 1).repeat(self.n_features, 1))

    @property
    def widths(self) -> Tensor:
        """(F, bins) bin widths in feature units; the resolution of a decoded centre is half of it."""
        return self.edges[:, 1:] - self.edges[:, :-1]

    def encode(self, x: Tensor) -> Tensor:
        inner = self.edges[:, 1:-1].to(x.dtype)
        ids = [torch.bucketize(x[:, a].contiguous(), inner[a].contiguous()) for a in range(self.n_features)]
        return torch.stack(ids, dim=1).long()

    def decode(self, ids: Tensor, *, generator: torch.Generator | None = None, mode: str = "centre") -> Tensor:
        ids = ids.long().clamp(0, self.bins - 1)
        lo = torch.stack([self.edges[a, ids[:, a]] for a in range(self.n_features)], dim=1)
        hi = torch.stack([self.edges[a, ids[:, a] + 1] for a in range(self.n_features)], dim=1)
        if mode == "centre":
            u = torch.full_like(lo, 0.5)
        elif mode == "uniform":
            u = torch.rand(lo.shape, generator=generator, device=lo.device, dtype=lo.dtype)
        else:
            raise ValueError(f"decode mode must be 'centre' or 'uniform', got {mode!r}")
        return lo + u * (hi - lo)

    @torch.no_grad()
    def fit(self, x: Tensor, *, seed: int = 0) -> dict[str, Any]:
        x = x.double()
        if self.spacing == "uniform":
            lo, hi = x.min(dim=0).values, x.max(dim=0).values
            hi = torch.maximum(hi, lo + 1e-6)
            grid = torch.linspace(0.0, 1.0, self.bins + 1, dtype=torch.float64)
            edges = lo[:, None] + grid[None, :] * (hi - lo)[:, None]
        else:
            q = torch.linspace(0.0, 1.0, self.bins + 1, dtype=torch.float64)
            edges = torch.quantile(x[: min(len(x), 2**24)], q, dim=0).T.contiguous()
            # strictly increasing edges: a value repeated in many constituents gets narrow bins
            step = 1e-6 * (edges[:, -1:] - edges[:, :1]).clamp_min(1.0)
            edges = torch.cummax(edges + step * torch.arange(self.bins + 1, dtype=torch.float64), dim=1).values
        self.edges.copy_(edges.to(self.edges))
        decoded = self.decode(self.encode(x.to(self.edges)))
        err = (decoded.double() - x).abs().max(dim=0).values
        return {
            **self.describe(),
            "spacing": self.spacing,
            "bin_width_max": self.widths.max(dim=1).values.tolist(),
            "bin_width_min": self.widths.min(dim=1).values.tolist(),
            "max_abs_error": err.tolist(),
            "n_fit": int(len(x)),
        }

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "bins": self.bins, "spacing": self.spacing}


class _VQNet(nn.Module):
    """The trainable VQ-VAE behind :class:`VQTokeniser` (copied into its buffers after training)."""

    codebook: Tensor
    ema_count: Tensor
    ema_sum: Tensor

    def __init__(self, n_features: int, codebook_size: int, code_dim: int, hidden: int) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(n_features, hidden), nn.GELU(), nn.Linear(hidden, code_dim))
        self.dec = nn.Sequential(nn.Linear(code_dim, hidden), nn.GELU(), nn.Linear(hidden, n_features))
        self.register_buffer("codebook", torch.randn(codebook_size, code_dim))
        self.register_buffer("ema_count", torch.ones(codebook_size))
        self.register_buffer("ema_sum", self.codebook.clone())


class VQTokeniser(Tokeniser):
    """A VQ-VAE tokeniser: one id per constituent from a codebook of ``codebook_size`` codes.

    Args:
        n_features: ``F``.
        codebook_size: ``K`` codes (the vocabulary).
        code_dim: latent dimension of a code.
        hidden: width of the encoder and decoder MLPs (one hidden layer each).
        steps: optimizer steps of :meth:`fit`.
    """

    name = "vq"
    codebook: Tensor

    def __init__(self, n_features: int, codebook_size: int, code_dim: int = 8, hidden: int = 64, steps: int = 1500):
        super().__init__()
        if codebook_size < 2 or code_dim < 1 or hidden < 1 or steps < 1:
            raise ValueError("vq tokeniser: need codebook_size >= 2, code_dim, hidden and steps >= 1")
        self.n_features, self.codebook_size = int(n_features), int(codebook_size)
        self.code_dim, self.hidden, self.steps = int(code_dim), int(hidden), int(steps)
        self.vocab_sizes = [self.codebook_size]
        net = _VQNet(self.n_features, self.codebook_size, self.code_dim, self.hidden)
        self._shapes = [name for name, _ in self._net_tensors(net)]
        for name, t in self._net_tensors(net):
            self.register_buffer(name, t.detach().clone())

    @staticmethod
    def _net_tensors(net: _VQNet) -> list[tuple[str, Tensor]]:
        params = [(n.replace(".", "_"), p) for n, p in net.named_parameters()]
        return [*params, ("codebook", net.codebook)]

    def _mlp(self, x: Tensor, part: str) -> Tensor:
        b = dict(self.named_buffers())
        h = F.gelu(F.linear(x, b[f"{part}_0_weight"], b[f"{part}_0_bias"]))
        return F.linear(h, b[f"{part}_2_weight"], b[f"{part}_2_bias"])

    def latent(self, x: Tensor) -> Tensor:
        """Encoder output (M, code_dim)."""
        return self._mlp(x.to(self.codebook.dtype), "enc")

    def encode(self, x: Tensor) -> Tensor:
        return torch.cdist(self.latent(x), self.codebook).argmin(dim=1, keepdim=True)

    def decode(self, ids: Tensor, *, generator: torch.Generator | None = None, mode: str = "centre") -> Tensor:
        return self._mlp(self.codebook[ids[:, 0].long().clamp(0, self.codebook_size - 1)], "dec")

    def fit(self, x: Tensor, *, seed: int = 0) -> dict[str, Any]:
        """Train the VQ-VAE on ``x`` (M, F): Adam on reconstruction + 0.25 x commitment, EMA codebook."""
        gen = torch.Generator().manual_seed(int(seed))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            net = _VQNet(self.n_features, self.codebook_size, self.code_dim, self.hidden).to(x.device)
        x = x.float()
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        with torch.no_grad():  # codes start at encoder outputs of random constituents
            start = net.enc(x[torch.randint(len(x), (self.codebook_size,), generator=gen)])
            net.codebook.copy_(start)
            net.ema_sum.copy_(start)
        for step in range(self.steps):
            batch = x[torch.randint(len(x), (min(1024, len(x)),), generator=gen)]
            z = net.enc(batch)
            idx = torch.cdist(z, net.codebook).argmin(dim=1)
            q = net.codebook[idx]
            recon = net.dec(z + (q - z).detach())  # straight-through
            loss = F.mse_loss(recon, batch) + 0.25 * F.mse_loss(z, q)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            _ema_update(net, z.detach(), idx, gen, restart=step % 100 == 99 and step < self.steps // 2)
        for name, t in self._net_tensors(net):
            getattr(self, name).copy_(t.detach())
        return self._report(x[:200_000])

    @torch.no_grad()
    def _report(self, x: Tensor) -> dict[str, Any]:
        ids = self.encode(x)[:, 0]
        counts = torch.bincount(ids, minlength=self.codebook_size).double()
        p = counts / counts.sum()
        entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
        err = self.decode(ids[:, None]) - x
        return {
            **self.describe(),
            "codes_used": int((counts > 0).sum()),
            "usage": float((counts > 0).double().mean()),
            "perplexity": math.exp(entropy),
            "recon_mse": float(err.pow(2).mean()),
            "recon_rms": err.pow(2).mean(dim=0).sqrt().tolist(),
            "n_fit": int(len(x)),
        }

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "codebook_size": self.codebook_size, "code_dim": self.code_dim}


@torch.no_grad()
def _ema_update(
    net: _VQNet, z: Tensor, idx: Tensor, gen: torch.Generator, *, restart: bool, decay: float = 0.95
) -> None:
    """EMA codebook update (van den Oord et al., appendix); restart unused codes at random latents."""
    one_hot = F.one_hot(idx, net.codebook.shape[0]).to(z.dtype)
    net.ema_count.mul_(decay).add_(one_hot.sum(0), alpha=1 - decay)
    net.ema_sum.mul_(decay).add_(one_hot.T @ z, alpha=1 - decay)
    n = net.ema_count.sum()
    count = (net.ema_count + 1e-5) / (n + net.codebook.shape[0] * 1e-5) * n
    net.codebook.copy_(net.ema_sum / count[:, None])
    if restart:
        dead = net.ema_count < 1e-3
        if dead.any():
            pick = z[torch.randint(len(z), (int(dead.sum()),), generator=gen)]
            net.codebook[dead] = pick
            net.ema_sum[dead] = pick
            net.ema_count[dead] = 1.0


def build_tokeniser(cfg: dict[str, Any]) -> Tokeniser:
    """The tokeniser of an ``ar-tokens`` config (``tokeniser``, ``bins``, ``spacing``, ``codebook_size``, ...)."""
    n = int(cfg["n_features"])
    if cfg["tokeniser"] == "axis":
        return AxisTokeniser(n, int(cfg["bins"]), str(cfg["spacing"]))
    if cfg["tokeniser"] == "vq":
        return VQTokeniser(
            n, int(cfg["codebook_size"]), int(cfg["code_dim"]), int(cfg["vq_hidden"]), int(cfg["vq_steps"])
        )
    raise ValueError(f"unknown tokeniser {cfg['tokeniser']!r}; use one of {', '.join(TOKENISERS)}")
