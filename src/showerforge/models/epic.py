"""A permutation-equivariant velocity network for particle sets: EPiC layers with adaLN-Zero.

Each EPiC layer (Buhmann, Kasieczka & Thaler, "EPiC-GAN: Equivariant Point Cloud Generation for
Particle Jets", arXiv:2301.08128) exchanges information between particles only through a global
vector built from masked mean and sum pooling, so the cost is linear in the number of particles
and the network is equivariant under any permutation of the particles:

    g <- g + MLP([g, mean_i h_i, sum_i h_i / n_max, c])          (global update)
    h_i <- h_i + gate * MLP([modulate(LN(h_i); shift, scale), g])   (per-particle update)

(the first layer of the per-particle MLP is split into a particle part and a global part that is
added, which equals the concatenation but never materialises the broadcast global vector)

where ``c`` is the embedding of the flow time plus the embedding of the condition vector, and
``shift, scale, gate`` come from ``c`` (adaptive LayerNorm, zero-initialised as in DiT, Peebles &
Xie, arXiv:2212.09748, so the untrained network is the zero velocity field). Pooling sees real
particles only: padded slots never influence real ones, and the output is zero at padded slots.

:func:`build_cfm_set` wraps the network in :class:`~showerforge.models.flow_matching.FlowMatching`
(registered as ``"cfm-set"``, ``data_kind = "jet-set"``).

**Depth tokens** (``depth_tokens = K > 0``, point-cloud showers): after the middle EPiC layer a
:class:`DepthAttention` block pools the points into ``K`` tokens along one feature (the depth),
lets the tokens attend to each other and hands each point back the tokens near its depth, so that
what happens in one layer of the calorimeter can shape the points of another through more than the
one global vector. The assignment of a point to the tokens is a softmax of ``-(z - c_k)^2 / (2
w^2)`` over learnt centres ``c_k`` (initialised evenly over ``[-1.8, 1.8]``, the standardised depth
range) and a learnt width ``w``, on the point's current (noisy) depth; the output projection starts
at zero, so an untrained block changes nothing. The cost is linear in the number of points (``K``
tokens per point).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from showerforge.models.base import GenerativeModel
from showerforge.models.flow_matching import FlowMatching
from showerforge.models.layer_transformer import TimeEmbedding

__all__ = [
    "EPiCLayer",
    "EPiCVelocity",
    "DepthAttention",
    "DEPTH_HEADS",
    "masked_pool",
    "epic_velocity",
    "build_cfm_set",
]

DEPTH_HEADS = 4
"""Attention heads of :class:`DepthAttention` (``d_model`` must be a multiple)."""


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.SiLU(), nn.Linear(hidden, d_out))


def masked_pool(h: Tensor, mask: Tensor, n_max: int | None = None) -> tuple[Tensor, Tensor]:
    """Mean and scaled sum of particle features over real particles only.

    Args:
        h: (N, n, d) particle features.
        mask: (N, n) bool, True = real particle.
        n_max: divisor of the sum (the model's largest set); ``None``: the padded width ``n``.
            A fixed divisor makes a set's pooled vector independent of how wide the batch it
            was padded into is.

    Returns:
        ``(mean, sum / n_max)``, both (N, d); a jet without real particles pools to zeros.
    """
    m = mask.to(h.dtype).unsqueeze(-1)
    total = (h * m).sum(dim=1)
    count = m.sum(dim=1).clamp_min(1.0)
    return total / count, total / (n_max or h.shape[1])


class EPiCLayer(nn.Module):
    """One equivariant layer: global update from pooled particles, then adaLN-modulated particle MLP.

    Args:
        d_model: particle feature width.
        d_global: global vector width.
        d_cond: width of the time + condition embedding ``c``.
        mlp_ratio: hidden width / ``d_model`` of the MLPs.

    Shapes:
        ``h`` (N, n, d_model), ``g`` (N, d_global), ``c`` (N, d_cond), ``mask`` (N, n) ->
        ``(h, g)`` of the same shapes.
    """

    def __init__(
        self, d_model: int, d_global: int, d_cond: int, mlp_ratio: float = 2.0, n_max: int | None = None
    ) -> None:
        super().__init__()
        self.n_max = n_max
        hidden = int(round(mlp_ratio * d_model))
        self.glob = _mlp(d_global + 2 * d_model + d_cond, hidden, d_global)
        self.norm = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        # the particle MLP sees [u_i, g]; its first layer is split so g is added, not concatenated
        self.local_in = nn.Linear(d_model, hidden)
        self.local_glob = nn.Linear(d_global, hidden, bias=False)
        self.local_out = nn.Linear(hidden, d_model)
        self.ada = nn.Linear(d_cond, 3 * d_model)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, h: Tensor, g: Tensor, c: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Updated ``(h, g)``; ``mask`` (N, n) bool selects the particles that are pooled."""
        mean, total = masked_pool(h, mask, self.n_max)
        g = g + self.glob(torch.cat([g, mean, total, c], dim=-1))
        shift, scale, gate = self.ada(c).unsqueeze(1).chunk(3, dim=-1)
        u = self.norm(h) * (1 + scale) + shift
        a = self.local_in(u) + self.local_glob(g).unsqueeze(1)
        return h + gate * self.local_out(F.silu(a)), g


class DepthAttention(nn.Module):
    """Tokens along the depth: pool the points into ``n_tokens`` tokens, self-attention between the
    tokens, each point gets back the tokens near its depth (module docstring).

    Args:
        d_model: point feature width.
        d_cond: width of the time + condition embedding.
        n_tokens: tokens ``K``.
        n_heads: attention heads (``d_model`` must divide by it).

    Shapes:
        ``h`` (N, n, d_model), ``z`` (N, n) depth feature, ``c`` (N, d_cond), ``mask`` (N, n) -> ``h``.
    """

    def __init__(self, d_model: int, d_cond: int, n_tokens: int, n_heads: int = DEPTH_HEADS) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"depth tokens: d_model {d_model} must be a multiple of {n_heads} heads")
        self.n_heads = n_heads
        self.centres = nn.Parameter(torch.linspace(-1.8, 1.8, n_tokens))
        spacing = 3.6 / max(n_tokens - 1, 1)
        self.log_width = nn.Parameter(torch.tensor(float(torch.log(torch.tensor(spacing)))))
        self.pos = nn.Parameter(torch.zeros(n_tokens, d_model))
        self.cond = nn.Linear(d_cond, d_model)
        self.norm = nn.LayerNorm(d_model, eps=1e-6)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.mlp = _mlp(d_model, 2 * d_model, d_model)
        self.back = nn.Linear(d_model, d_model)
        nn.init.zeros_(self.back.weight)
        nn.init.zeros_(self.back.bias)

    def forward(self, h: Tensor, z: Tensor, c: Tensor, mask: Tensor) -> Tensor:
        width = torch.exp(self.log_width)
        logits = -0.5 * ((z.unsqueeze(-1) - self.centres) / width) ** 2  # (N, n, K)
        a = torch.softmax(logits, dim=-1) * mask.to(h.dtype).unsqueeze(-1)
        weight = a.sum(dim=1).clamp_min(1e-6)  # (N, K)
        tokens = torch.einsum("nik,nid->nkd", a, h) / weight.unsqueeze(-1)
        tokens = tokens + self.pos + self.cond(c).unsqueeze(1)
        n, k, d = tokens.shape
        q, kk, v = self.qkv(self.norm(tokens)).reshape(n, k, 3, self.n_heads, d // self.n_heads).unbind(dim=2)
        att = torch.softmax(torch.einsum("nqhd,nkhd->nhqk", q, kk) / (d // self.n_heads) ** 0.5, dim=-1)
        # tokens without points do not speak
        att = att * (weight > 1e-3).to(h.dtype)[:, None, None, :]
        att = att / att.sum(dim=-1, keepdim=True).clamp_min(1e-9)
        tokens = tokens + self.proj(torch.einsum("nhqk,nkhd->nqhd", att, v).reshape(n, k, d))
        tokens = tokens + self.mlp(tokens)
        return h + self.back(torch.einsum("nik,nkd->nid", a, tokens))


class EPiCVelocity(nn.Module):
    """Velocity network ``v(x, t, cond, mask)`` for particle sets.

    Args:
        n_features: features per particle (3 for preprocessed ``eta_rel, phi_rel, pt_rel``).
        n_cond: width of the condition vector (e.g. one-hot jet type, normalised jet pT).
        d_model: particle feature width.
        d_global: width of the global (pooled) vector.
        n_blocks: EPiC layers.
        mlp_ratio: MLP hidden width / ``d_model``.
        n_max: fixed divisor of the pooled sums (see :func:`masked_pool`); ``None``: the padded
            width (sets that are always padded to the same width, as jets).
        depth_tokens: ``K > 0`` adds a :class:`DepthAttention` block after the middle EPiC layer
            (the first of the two middle ones), on feature ``depth_feature`` (module docstring).

    Shapes:
        ``x`` (N, n, n_features), ``t`` (N,), ``cond`` (N, n_cond), ``mask`` (N, n) bool or
        ``None`` (all real) -> (N, n, n_features), zero at padded slots.
    """

    def __init__(
        self,
        n_features: int,
        n_cond: int,
        *,
        d_model: int = 64,
        d_global: int = 32,
        n_blocks: int = 3,
        mlp_ratio: float = 2.0,
        n_max: int | None = None,
        depth_tokens: int = 0,
        depth_feature: int = 2,
    ) -> None:
        super().__init__()
        self.n_max = n_max
        self.depth_feature = int(depth_feature)
        self.depth = nn.ModuleList(
            DepthAttention(d_model, d_model, int(depth_tokens)) for _ in range(1 if depth_tokens > 0 else 0)
        )
        self.embed = nn.Linear(n_features, d_model)
        self.time = TimeEmbedding(d_model)
        self.cond = _mlp(n_cond, d_model, d_model)
        self.glob_in = _mlp(2 * d_model + d_model, d_model, d_global)
        self.blocks = nn.ModuleList(EPiCLayer(d_model, d_global, d_model, mlp_ratio, n_max) for _ in range(n_blocks))
        self.norm_out = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, n_features)
        for lin in (self.ada_out, self.out):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor, mask: Tensor | None = None) -> Tensor:
        """Velocity (N, n, n_features), zero at padded slots (see the class docstring for shapes)."""
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        m = mask.to(x.dtype).unsqueeze(-1)
        c = F.silu(self.time(t) + self.cond(cond))
        h = self.embed(x * m)
        g = self.glob_in(torch.cat([*masked_pool(h, mask, self.n_max), c], dim=-1))
        z = x[..., self.depth_feature]
        for i, block in enumerate(self.blocks):
            h, g = block(h, g, c, mask)
            if len(self.depth) and i == len(self.blocks) // 2 - (len(self.blocks) % 2 == 0):
                h = self.depth[0](h, z, c, mask)
        shift, scale = self.ada_out(c).unsqueeze(1).chunk(2, dim=-1)
        return self.out(self.norm_out(h) * (1 + scale) + shift) * m


def build_cfm_set(cfg: dict[str, Any]) -> GenerativeModel:
    """``"cfm-set"``: flow matching with an :class:`EPiCVelocity` on (n_particles, n_features) sets.

    Args:
        cfg: complete config: data keys ``n_particles``, ``n_features``, ``n_cond`` and the
            hyperparameters ``d_model``, ``d_global``, ``n_blocks``, ``mlp_ratio`` (network),
            ``sigma``, ``time_sampling``, ``solver``, ``steps`` (flow matching).
    """
    return FlowMatching(epic_velocity(cfg), (cfg["n_particles"], cfg["n_features"]), cfg)


def epic_velocity(cfg: dict[str, Any], n_max: int | None = None) -> EPiCVelocity:
    """The :class:`EPiCVelocity` a config describes (``n_features``, ``n_cond``, ``d_model``,
    ``d_global``, ``n_blocks``, ``mlp_ratio``); ``n_max`` as in :func:`masked_pool`."""
    return EPiCVelocity(
        cfg["n_features"],
        cfg["n_cond"],
        d_model=cfg["d_model"],
        d_global=cfg["d_global"],
        n_blocks=cfg["n_blocks"],
        mlp_ratio=cfg["mlp_ratio"],
        n_max=n_max,
        depth_tokens=int(cfg.get("depth_tokens", 0)),
    )
