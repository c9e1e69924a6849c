"""A small transformer over calorimeter layers with adaptive-LayerNorm conditioning.

Tokens are groups of ``layers_per_token`` consecutive readout layers; a token's features are the
preprocessed layer-energy feature(s) and voxel features of its layers (padded with zeros to the
widest token for irregular readouts). Each token gets a linear embedding plus a learnt position
(layer) embedding. Blocks are pre-LN transformer blocks with adaLN-Zero conditioning (Peebles &
Xie, "Scalable Diffusion Models with Transformers", arXiv:2212.09748): the embedding of the
flow time ``t`` plus the embedding of the condition vector produces per-block shift, scale and gate
of each sub-layer; gates and the output projection start at zero, so the network starts as the
zero velocity field.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from showerforge.errors import UserError

__all__ = ["LayerTransformer", "TimeEmbedding"]


class TimeEmbedding(nn.Module):
    """Sinusoidal features of ``t`` in [0, 1] followed by a 2-layer MLP: (N,) -> (N, dim)."""

    freqs: Tensor

    def __init__(self, dim: int, n_freqs: int = 16) -> None:
        super().__init__()
        freqs = torch.exp(torch.linspace(0.0, math.log(1000.0), n_freqs))
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * n_freqs, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        arg = t[:, None] * self.freqs[None, :]
        return self.mlp(torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1))


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


def _attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(q k^T / sqrt(d)) v over (N, heads, tokens, d); fused kernel on GPU, plain math on
    CPU (2-3x faster there for a few dozen tokens)."""
    if q.is_cuda:
        return F.scaled_dot_product_attention(q, k, v)
    return torch.softmax((q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5, dim=-1) @ v


class _Block(nn.Module):
    """Pre-LN self-attention + MLP, each modulated (shift, scale, gate) by the condition."""

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        hidden = int(round(mlp_ratio * d_model))
        self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model))
        self.ada = nn.Linear(d_model, 6 * d_model)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=-1)
        n, s, d = h.shape
        qkv = self.qkv(_modulate(self.norm1(h), shift1, scale1))
        q, k, v = qkv.reshape(n, s, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        a = _attention(q, k, v).transpose(1, 2).reshape(n, s, d)
        h = h + gate1[:, None, :] * self.proj(a)
        return h + gate2[:, None, :] * self.mlp(_modulate(self.norm2(h), shift2, scale2))


class LayerTransformer(nn.Module):
    """Velocity network ``v(x, t, cond)`` for factorised voxel features.

    Args:
        token_sizes: features of each readout layer in ``x`` (interleaved as
            :class:`showerforge.data.preprocess.ShowerPreprocessor` writes them).
        n_cond: width of the condition vector.
        d_model: token width.
        n_blocks: transformer blocks.
        n_heads: attention heads (divides ``d_model``).
        mlp_ratio: MLP hidden width / ``d_model``.
        layers_per_token: consecutive layers merged into one token (1 = one token per layer;
            0 = automatic, ``ceil(L / 16)``: 1 for ``mini``, 3 for ds2/ds3 like the 3-layer
            patches of the universal ViT, arXiv:2601.05289, which keeps CPU sampling fast).
        n_layer_cond: the last ``n_layer_cond`` columns of ``cond`` are one value per readout
            layer (``len(token_sizes)`` of them, e.g. the layer energies a shape model is
            conditioned on); besides entering the global condition, each is embedded into the
            token of its layer. 0 = none.
        x_gain: add a per-feature term ``g(h) * x`` to the output, with the gain ``g`` read from
            the token's final state like the main output. A token embeds several hundred voxel
            features into ``d_model`` numbers, so the network cannot see each voxel's current value
            exactly; the gain restores that elementwise path (the optimal velocity of a straight
            path is affine in ``x`` for a Gaussian posterior) at the cost of one output layer.
        x_units: add ``sum_k c_k(h) tanh(d_k(h) x + e_k(h))`` per feature, ``x_units`` terms (0 =
            none): the velocity of a feature whose distribution has two modes (an empty voxel or a
            hit) switches sign between them, which an affine function of ``x`` cannot do; ``c``,
            ``d``, ``e`` are read from the token's final state (one output layer of width
            ``3 x_units`` per feature; ``c`` starts at 0, ``d`` at 1 and ``e`` spread over [-2, 2]).

    Shapes:
        ``x`` (N, sum(token_sizes)), ``t`` (N,), ``cond`` (N, n_cond) -> (N, sum(token_sizes)).
    """

    gather_index: Tensor
    scatter_index: Tensor

    def __init__(
        self,
        token_sizes: Sequence[int],
        n_cond: int,
        *,
        d_model: int = 64,
        n_blocks: int = 3,
        n_heads: int = 4,
        mlp_ratio: float = 2.0,
        layers_per_token: int = 0,
        n_layer_cond: int = 0,
        x_gain: bool = False,
        x_units: int = 0,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise UserError(f"d_model={d_model} must be a multiple of n_heads={n_heads}")
        sizes = [int(s) for s in token_sizes]
        g = int(layers_per_token) if int(layers_per_token) > 0 else -(-len(sizes) // 16)
        groups = [sizes[i : i + g] for i in range(0, len(sizes), g)]
        widths = [sum(gr) for gr in groups]
        self.n_features, self.n_tokens, self.width = sum(sizes), len(groups), max(widths)
        # regular readouts reshape directly; others gather with zero padding
        self.regular = len(set(widths)) == 1
        idx, pos = [], 0
        for w in widths:
            idx.append(list(range(pos, pos + w)) + [self.n_features] * (self.width - w))
            pos += w
        gather = torch.tensor(idx, dtype=torch.long).reshape(-1)
        scatter = torch.nonzero(gather < self.n_features).reshape(-1)
        self.register_buffer("gather_index", gather, persistent=False)
        self.register_buffer("scatter_index", scatter, persistent=False)

        self.n_layer_cond = int(n_layer_cond)
        if self.n_layer_cond not in (0, len(sizes)) or self.n_layer_cond > n_cond:
            raise ValueError(f"n_layer_cond must be 0 or the number of layers ({len(sizes)}) and <= n_cond={n_cond}")
        if self.n_layer_cond:
            # layer l sits at position l % g of token l // g (zero-padded at the end)
            self.group = g
            self.layer_embed = nn.Linear(g, d_model)
        self.embed = nn.Linear(self.width, d_model)
        self.pos = nn.Parameter(torch.randn(self.n_tokens, d_model) * 0.02)
        self.time = TimeEmbedding(d_model)
        self.cond = nn.Sequential(nn.Linear(n_cond, d_model), nn.SiLU(), nn.Linear(d_model, d_model))
        self.blocks = nn.ModuleList(_Block(d_model, n_heads, mlp_ratio) for _ in range(n_blocks))
        self.norm_out = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, self.width)
        self.gain = nn.Linear(d_model, self.width) if x_gain else None
        if int(x_units) < 0:
            raise UserError(f"x_units must be >= 0, got {x_units}")
        self.x_units = int(x_units)
        self.units = nn.Linear(d_model, 3 * self.x_units * self.width) if self.x_units else None
        for lin in (self.ada_out, self.out, self.gain, self.units):
            if lin is not None:
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)
        if self.units is not None:
            with torch.no_grad():
                bias = self.units.bias.view(self.x_units, 3, self.width)
                bias[:, 1] = 1.0
                bias[:, 2] = torch.linspace(-2.0, 2.0, self.x_units)[:, None] if self.x_units > 1 else 0.0

    def _tokens(self, x: Tensor) -> Tensor:
        if not self.regular:
            x = torch.cat([x, x.new_zeros(x.shape[0], 1)], dim=1)[:, self.gather_index]
        return x.reshape(x.shape[0], self.n_tokens, self.width)

    def _untokens(self, h: Tensor) -> Tensor:
        h = h.reshape(h.shape[0], -1)
        return h if self.regular else h[:, self.scatter_index]

    def forward(self, x: Tensor, t: Tensor, cond: Tensor, mask: Tensor | None = None) -> Tensor:
        """Velocity, shape like ``x`` (``mask`` is unused: voxel showers have a fixed size)."""
        c = F.silu(self.time(t) + self.cond(cond))
        tokens = self._tokens(x)
        h = self.embed(tokens) + self.pos
        if self.n_layer_cond:
            lc = cond[:, cond.shape[1] - self.n_layer_cond :]
            pad = self.n_tokens * self.group - self.n_layer_cond
            lc = torch.cat([lc, lc.new_zeros(lc.shape[0], pad)], dim=1) if pad else lc
            h = h + self.layer_embed(lc.reshape(lc.shape[0], self.n_tokens, self.group))
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.ada_out(c).chunk(2, dim=-1)
        h = _modulate(self.norm_out(h), shift, scale)
        out = self.out(h)
        if self.gain is not None:
            out = out + self.gain(h) * tokens
        if self.units is not None:
            c, d, e = self.units(h).reshape(*h.shape[:2], self.x_units, 3, self.width).unbind(dim=3)
            out = out + (c * torch.tanh(d * tokens[:, :, None, :] + e)).sum(dim=2)
        return self._untokens(out)
