"""``ar-tokens``: a decoder-only transformer generating constituents as token sequences.

A jet or a shower is a sequence of constituents in a fixed order (descending in the feature
``order_by``: pT for jets, energy for shower points), each constituent a row of ``A`` token ids
from the model's :mod:`tokeniser <showerforge.models.tokens>` (per-axis bins or one VQ-VAE code).
The sequence is

    [condition token] c_1 c_2 ... c_k

The condition token is the condition vector projected to the model width plus a learned start
vector (jet-type one-hot -> an embedding of the type; standardised log E_inc -> a projection).
A constituent is embedded as the sum of its per-axis embeddings, a learned position and a second
projection of the condition (so that every position sees it without attending to the first). A causal
transformer (pre-norm blocks, :func:`torch.nn.functional.scaled_dot_product_attention`) turns the
hidden state at position ``j`` into:

* a **stop head**: the probability that the sequence ends with ``j`` constituents (a Bernoulli,
  asked for ``1 <= j < n_particles``: a sequence holds at least one constituent, and at the
  length cap ``n_particles`` it ends without asking);
* **axis heads**, autoregressive within the constituent: axis ``a`` is predicted from the hidden
  state plus embeddings of the axes ``< a`` already drawn for this constituent (a small MLP each).

The loss is the mean negative log-likelihood of every stop decision and every token. Generation
draws the stop decision, then the axes one after the other (temperature ``T`` on every logit,
top-``k`` on the axis heads), with an explicit key/value cache per block (``kv_cache=False``
recomputes the whole prefix each step, for comparison). The tokeniser is fitted on the training
constituents before training (:meth:`ARTokens.fit_to_data`); its state is buffers of this module.

References: OmniJet-alpha (arXiv:2403.05618), GPT (Radford et al. 2019), SPADE's per-axis
embeddings and stop head.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from showerforge.errors import UserError
from showerforge.models.base import GenerativeModel
from showerforge.models.tokens import MAX_FIT_ROWS, PAD_ID, Tokeniser, build_tokeniser

__all__ = ["ARTokens", "CausalBlock", "build_ar_tokens", "check_sampling"]

KVCache = list[tuple[Tensor, Tensor] | None]


def check_sampling(temperature: float | None, top_k: int | None) -> tuple[float, int | None]:
    """``(temperature, top_k)`` checked: temperature > 0 (default 1), top-k >= 1 or ``None`` (all tokens).

    Raises:
        UserError: one line naming ``--temperature`` or ``--top-k``.
    """
    t = 1.0 if temperature is None else float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise UserError(f"--temperature {temperature}: must be > 0 (1 samples the learnt distribution)")
    if top_k is not None and (isinstance(top_k, bool) or int(top_k) != top_k or int(top_k) < 1):
        raise UserError(f"--top-k {top_k}: must be an integer >= 1 (leave it out to keep every token)")
    return t, None if top_k is None else int(top_k)


class CausalBlock(nn.Module):
    """Pre-norm transformer block: causal multi-head self-attention and an MLP, with a KV cache.

    Args:
        d_model: width; n_heads: heads (``d_model % n_heads == 0``); mlp_ratio: MLP width factor.
    """

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        hidden = max(1, int(round(mlp_ratio * d_model)))
        self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model))

    def forward(self, h: Tensor, cache: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``h`` (N, L, d) new positions after the cached ones -> (output (N, L, d), new cache).

        Without a cache the attention is causal over ``h``; with one, each new position sees every
        cached position and the new ones up to itself (``L = 1`` during generation).
        """
        n, length, d = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(n, length, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        causal = length > 1
        if causal and cache is not None:  # a block of new positions after a cache: explicit mask
            past = k.shape[2] - length
            mask = torch.ones(length, k.shape[2], dtype=torch.bool, device=h.device).tril(past)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        h = h + self.proj(a.transpose(1, 2).reshape(n, length, d))
        return h + self.mlp(self.norm2(h)), (k, v)


class ARTokens(GenerativeModel):
    """The ``ar-tokens`` model (see the module docstring).

    Shapes:
        ``x`` (N, n_particles, n_features) preprocessed constituents, ``mask`` (N, n_particles)
        real ones (any order: they are sorted by ``order_by`` inside), ``cond`` (N, n_cond).

    Args:
        cfg: complete config (see :func:`build_ar_tokens`).
    """

    sampler_family: ClassVar[str] = "autoregressive"
    own_length: ClassVar[bool] = True

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(cfg)
        self.cap, self.n_features = int(cfg["n_particles"]), int(cfg["n_features"])
        self.order_by = int(cfg["order_by"])
        if not -1 <= self.order_by < self.n_features:
            raise ValueError(f"ar-tokens: order_by must name a feature (or -1: as given), got {self.order_by}")
        self.event_shape = (self.cap, self.n_features)
        d = int(cfg["d_model"])
        self.tokeniser: Tokeniser = build_tokeniser(cfg)
        vocab = self.tokeniser.vocab_sizes
        self.embed = nn.ModuleList(nn.Embedding(v, d) for v in vocab)
        self.inner = nn.ModuleList(nn.Embedding(v, d) for v in vocab[:-1])
        self.cond_proj = nn.Linear(int(cfg["n_cond"]), d)
        self.cond_add = nn.Linear(int(cfg["n_cond"]), d)
        self.start = nn.Parameter(0.02 * torch.randn(d))
        self.pos = nn.Embedding(self.cap + 1, d)
        self.blocks = nn.ModuleList(
            CausalBlock(d, int(cfg["n_heads"]), float(cfg["mlp_ratio"])) for _ in range(int(cfg["n_blocks"]))
        )
        self.norm = nn.LayerNorm(d)
        self.stop = nn.Linear(d, 1)
        self.heads = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(), nn.Linear(d, v)) for v in vocab
        )

    # ------------------------------------------------------------------ data -> tokens
    def order(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Real constituents first, descending in ``order_by``: ``(x sorted, lengths (N,))``."""
        if self.order_by < 0:
            key = -torch.arange(mask.shape[1], device=x.device, dtype=x.dtype).expand(mask.shape)
        else:
            key = x[..., self.order_by]
        key = torch.where(mask, key, torch.full_like(key, -math.inf))
        idx = torch.sort(key, dim=1, descending=True, stable=True).indices
        return torch.gather(x, 1, idx[..., None].expand_as(x)), mask.sum(dim=1)

    def tokens(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``(ids (N, n, A) int64 with PAD_ID after each sequence, lengths (N,))`` of constituents."""
        xs, lengths = self.order(x, mask)
        n = xs.shape[1]
        ids = self.tokeniser.encode(xs.reshape(-1, self.n_features)).view(len(xs), n, -1)
        real = torch.arange(n, device=x.device)[None, :] < lengths[:, None]
        return torch.where(real[..., None], ids, torch.full_like(ids, PAD_ID)), lengths

    @torch.no_grad()
    def fit_to_data(self, batches: Iterable[tuple[Tensor, Tensor, Tensor | None]], *, seed: int = 0) -> dict[str, Any]:
        """Fit the tokeniser on the real constituents of training batches ``(x, cond, mask)``.

        At most :data:`~showerforge.models.tokens.MAX_FIT_ROWS` constituents are used. Returns the
        tokeniser's report (vocabulary, resolution or codebook use and reconstruction error),
        with the ordering rule.
        """
        rows, total = [], 0
        for x, _, mask in batches:
            real = x[mask] if mask is not None else x.reshape(-1, x.shape[-1])
            rows.append(real.float().cpu())
            total += len(real)
            if total >= MAX_FIT_ROWS:
                break
        data = torch.cat(rows)[:MAX_FIT_ROWS]
        with torch.enable_grad():
            report = self.tokeniser.fit(data.to(self.start.device), seed=seed)
        return {**report, "order_by": self.order_by, "order": "descending", "length_cap": self.cap}

    def describe_tokens(self) -> str:
        """JSON text: the tokeniser's vocabulary and special ids, the ordering rule and the length cap."""
        info = {**self.tokeniser.describe(), "order_by": self.order_by, "order": "descending", "length_cap": self.cap}
        return json.dumps(info, sort_keys=True)

    # ------------------------------------------------------------------ network
    def _embed(self, ids: Tensor, start: int, cond: Tensor) -> Tensor:
        """Embeddings (N, L, d) of constituents ``ids`` (N, L, A) at positions ``start + 1 ...``,
        plus the condition's projection ``cond_add`` (every position sees the condition directly)."""
        safe = ids.clamp_min(0)
        e = sum(emb(safe[..., a]) for a, emb in enumerate(self.embed))
        pos = torch.arange(start + 1, start + 1 + ids.shape[1], device=ids.device)
        return e + self.pos(pos) + self.cond_add(cond)[:, None, :]

    def _cond_token(self, cond: Tensor) -> Tensor:
        return (self.cond_proj(cond) + self.start + self.pos.weight[0])[:, None, :]

    def _run(self, h: Tensor, cache: KVCache | None = None) -> tuple[Tensor, KVCache]:
        new: KVCache = []
        for i, block in enumerate(self.blocks):
            h, kv = block(h, None if cache is None else cache[i])
            new.append(kv)
        return self.norm(h), new

    def _axis_logits(self, hidden: Tensor, ids: Tensor, a: int) -> Tensor:
        """Logits of axis ``a`` given the hidden state (..., d) and the ids (..., A) of axes < a."""
        inner = hidden
        for b in range(a):
            inner = inner + self.inner[b](ids[..., b].clamp_min(0))
        return self.heads[a](inner)

    def features(self, x: Tensor, cond: Tensor, mask: Tensor) -> Tensor:
        """The backbone's summary of each set: the final hidden states of its condition token and
        constituents, averaged over the real positions (N, d_model). A head on it makes a
        classifier (a tagger) that starts from the generative pretraining (differentiable)."""
        ids, lengths = self.tokens(x, mask)
        h = torch.cat([self._cond_token(cond), self._embed(ids, 0, cond)], dim=1)
        hidden, _ = self._run(h)
        j = torch.arange(hidden.shape[1], device=x.device)[None, :]
        used = (j <= lengths[:, None]).to(hidden.dtype)[..., None]
        return (hidden * used).sum(dim=1) / used.sum(dim=1)

    def loss(
        self, x: Tensor, cond: Tensor, mask: Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Mean negative log-likelihood per decision (stop decisions and tokens)."""
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        ids, lengths = self.tokens(x, mask)
        h = torch.cat([self._cond_token(cond), self._embed(ids, 0, cond)], dim=1)
        hidden, _ = self._run(h)  # (N, n + 1, d): position j predicts constituent j + 1 / the stop
        n = ids.shape[1]
        j = torch.arange(n + 1, device=x.device)[None, :]
        stop_target = (j == lengths[:, None]).to(hidden.dtype)
        stop_used = (j <= lengths[:, None]) & (j < self.cap) & (j >= 1)
        stop_nll = F.binary_cross_entropy_with_logits(self.stop(hidden)[..., 0], stop_target, reduction="none")
        total = (stop_nll * stop_used).sum()
        real = ids[..., 0] != PAD_ID
        for a in range(ids.shape[-1]):
            logits = self._axis_logits(hidden[:, :n], ids, a)
            nll = F.cross_entropy(logits[real], ids[..., a][real], reduction="sum")
            total = total + nll
        count = stop_used.sum() + real.sum() * ids.shape[-1]
        return total / count.clamp_min(1)

    # ------------------------------------------------------------------ sampling
    @property
    def default_sampler(self) -> dict[str, Any]:
        """``{"temperature": 1.0, "top_k": None}`` (the learnt distribution, every token)."""
        return {"temperature": 1.0, "top_k": None}

    def sampler_settings(self, **given: Any) -> dict[str, Any]:
        """``{"temperature", "top_k"}`` checked; ODE settings (``steps``, ``solver``) are refused."""
        other = sorted(k for k, v in given.items() if v is not None and k not in ("temperature", "top_k"))
        if other:
            raise UserError(
                f"{', '.join('--' + k.replace('_', '-') for k in other)}: not a setting of {self.config['name']} "
                "(autoregressive sampler: --temperature, --top-k)"
            )
        t, k = check_sampling(given.get("temperature"), given.get("top_k"))
        return {"temperature": t, "top_k": k}

    def sampler_attrs(self, settings: dict[str, Any]) -> dict[str, Any]:
        """``sampler`` (JSON), ``temperature``, ``top_k`` (``"all"`` when not set), ``length_cap``, ``tokens``."""
        record = {"family": self.sampler_family, **settings, "length_cap": self.cap}
        top_k = settings.get("top_k")
        return {
            "sampler": json.dumps(record, sort_keys=True),
            "temperature": float(settings["temperature"]),
            "top_k": "all" if top_k is None else int(top_k),
            "length_cap": self.cap,
            "tokens": self.describe_tokens(),
        }

    def _draw(self, logits: Tensor, temperature: float, top_k: int | None, gen: torch.Generator | None) -> Tensor:
        logits = logits / temperature
        if top_k is not None and top_k < logits.shape[-1]:
            kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, -math.inf)
        return torch.multinomial(torch.softmax(logits.float(), dim=-1), 1, generator=gen)[:, 0]

    def _constituent(
        self, hidden: Tensor, temperature: float, top_k: int | None, gen: torch.Generator | None
    ) -> Tensor:
        """Ids (N, A) of one constituent drawn axis by axis from hidden states (N, d)."""
        n_axes = len(self.heads)
        ids = torch.zeros(hidden.shape[0], n_axes, dtype=torch.long, device=hidden.device)
        for a in range(n_axes):
            ids[:, a] = self._draw(self._axis_logits(hidden, ids, a), temperature, top_k, gen)
        return ids

    @torch.no_grad()
    def sample_tokens(
        self,
        cond: Tensor,
        *,
        generator: torch.Generator | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        lengths: Tensor | None = None,
        kv_cache: bool = True,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Token sequences for conditions ``cond`` (N, n_cond).

        Args:
            generator: seeds the stop decisions and tokens; same seed, same sequences.
            temperature, top_k: see :func:`check_sampling`.
            lengths: (N,) force these lengths (<= the cap) instead of drawing the stop decisions.
            kv_cache: reuse keys and values of earlier positions (else recompute the prefix).

        Returns:
            ``(ids (N, cap, A) int64, PAD_ID after each sequence; lengths (N,); stopped (N,) bool:
            the sequence ended with the stop decision, not at the cap)``.
        """
        t, k = check_sampling(temperature, top_k)
        n, dev = cond.shape[0], cond.device
        ids = torch.full((n, self.cap, len(self.heads)), PAD_ID, dtype=torch.long, device=dev)
        length = torch.full((n,), self.cap, dtype=torch.long, device=dev)
        alive = torch.ones(n, dtype=torch.bool, device=dev)
        step = _Prefix(self, self._cond_token(cond), kv_cache)
        for j in range(self.cap):
            last = step.hidden()
            if lengths is None:  # the stop decision, from one constituent on
                u = torch.rand(n, generator=generator, device=dev)
                stop = (u < torch.sigmoid(self.stop(last)[:, 0] / t)) & (j >= 1)
            else:
                stop = lengths == j
            length = torch.where(alive & stop, torch.full_like(length, j), length)
            alive = alive & ~stop
            if not bool(alive.any()):
                break
            new = self._constituent(last, t, k, generator)
            ids[:, j] = torch.where(alive[:, None], new, ids[:, j])
            step.append(self._embed(new[:, None], j, cond))
        return ids, length, length < self.cap

    @torch.no_grad()
    def sample_set(
        self,
        cond: Tensor,
        *,
        generator: torch.Generator | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        kv_cache: bool = True,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Constituents of a variable number: ``(x (N, cap, F), mask (N, cap))``, real ones first.

        Tokens are decoded by the tokeniser (per-axis: uniform within the bin; VQ: the decoder);
        padded slots are 0.
        """
        ids, length, _ = self.sample_tokens(
            cond, generator=generator, temperature=temperature, top_k=top_k, lengths=lengths, kv_cache=kv_cache
        )
        mask = torch.arange(self.cap, device=cond.device)[None, :] < length[:, None]
        flat = self.tokeniser.decode(ids[mask], generator=generator, mode=str(self.config["decode"]))
        x = torch.zeros((*mask.shape, self.n_features), dtype=cond.dtype, device=cond.device)
        x[mask] = flat.to(x.dtype)
        return x, mask

    @torch.no_grad()
    def sample(
        self,
        cond: Tensor,
        *,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        solver: str | None = None,
        mask: Tensor | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
    ) -> Tensor:
        """(N, cap, F) constituents; with ``mask``, exactly ``mask.sum(1)`` of them, in its real slots.

        Without a mask the model draws the length; :meth:`sample_set` also returns the mask.
        """
        self.sampler_settings(steps=steps, solver=solver, temperature=temperature, top_k=top_k)
        if mask is None:
            return self.sample_set(cond, generator=generator, temperature=temperature, top_k=top_k)[0]
        lengths = mask.sum(dim=1).clamp_max(self.cap)
        x, real = self.sample_set(cond, generator=generator, temperature=temperature, top_k=top_k, lengths=lengths)
        out = torch.zeros((*mask.shape, self.n_features), dtype=x.dtype, device=x.device)
        out[mask] = x[real]
        return out


class _Prefix:
    """The growing sequence of a generation: hidden states of its last position, with a KV cache
    (one new position per call) or by recomputing the whole prefix (``kv_cache=False``)."""

    def __init__(self, model: ARTokens, first: Tensor, kv_cache: bool) -> None:
        self.model, self.kv_cache = model, kv_cache
        self.new, self.prefix = first, first
        self.kv: KVCache | None = None

    def hidden(self) -> Tensor:
        """(N, d) hidden state of the last position."""
        if self.kv_cache:
            out, self.kv = self.model._run(self.new, self.kv)
        else:
            out, _ = self.model._run(self.prefix)
        return out[:, -1]

    def append(self, h: Tensor) -> None:
        """Add the embedding (N, 1, d) of the next position."""
        self.new = h
        if not self.kv_cache:
            self.prefix = torch.cat([self.prefix, h], dim=1)


def build_ar_tokens(cfg: dict[str, Any]) -> ARTokens:
    """``"ar-tokens"`` from a complete config.

    Args:
        cfg: data keys ``n_particles`` (length cap), ``n_features``, ``n_cond``, ``order_by``
            (feature sorted descending, -1: as given); tokeniser ``tokeniser`` (``"axis"`` or
            ``"vq"``), ``bins``, ``spacing``, ``decode`` (``"uniform"`` or ``"centre"``),
            ``codebook_size``, ``code_dim``, ``vq_hidden``, ``vq_steps``; transformer ``d_model``,
            ``n_blocks``, ``n_heads``, ``mlp_ratio``.
    """
    if cfg["decode"] not in ("uniform", "centre"):
        raise UserError(f"--set decode={cfg['decode']!r}: ar-tokens needs decode to be uniform or centre")
    if cfg["tokeniser"] not in ("axis", "vq"):
        raise UserError(f"--set tokeniser={cfg['tokeniser']!r}: ar-tokens needs tokeniser to be axis or vq")
    if cfg["spacing"] not in ("uniform", "quantile"):
        raise UserError(f"--set spacing={cfg['spacing']!r}: ar-tokens needs spacing to be uniform or quantile")
    return ARTokens(cfg)
