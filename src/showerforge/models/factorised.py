"""Two-stage flow matching for voxel showers: layer energies first, then shapes given them.

The factorisation of CaloDREAM (Favaro et al., arXiv:2405.09629): one flow-matching model learns
the distribution of the layer-energy features given the incident energy, a second one learns the
normalised per-layer shapes given the incident energy *and* the layer energies. At training time
the shape model sees the true layer energies (the two losses are independent); at sampling time
it sees the generated ones. The energy model is a small residual MLP and cheap to integrate, so it
gets more ODE steps (``energy_steps``) than the shape model.

The features are the interleaved layout of
:class:`showerforge.data.preprocess.ShowerPreprocessor`: for every readout layer one energy
feature followed by its voxel-shape features (``token_sizes[l] = 1 + voxels(l)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from showerforge.errors import UserError
from showerforge.models.base import GenerativeModel
from showerforge.models.flow_matching import FlowMatching
from showerforge.models.layer_transformer import LayerTransformer, TimeEmbedding

__all__ = ["EnergyMLP", "FactorisedFlow", "LayerEnergyDecode"]


class _ResBlock(nn.Module):
    """Pre-LN residual MLP block with adaLN-Zero modulation (shift, scale, gate)."""

    def __init__(self, width: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(round(mlp_ratio * width))
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.SiLU(), nn.Linear(hidden, width))
        self.ada = nn.Linear(width, 3 * width)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        shift, scale, gate = self.ada(c).chunk(3, dim=-1)
        return h + gate * self.mlp(self.norm(h) * (1 + scale) + shift)


class EnergyMLP(nn.Module):
    """Velocity network ``v(x, t, cond)`` for a short feature vector (the layer energies).

    Args:
        n_features: width of ``x``.
        n_cond: width of ``cond``.
        width: hidden width.
        n_blocks: residual blocks.
        mlp_ratio: hidden width of a block's MLP / ``width``.

    Shapes:
        ``x`` (N, n_features), ``t`` (N,), ``cond`` (N, n_cond) -> (N, n_features).
    """

    def __init__(
        self, n_features: int, n_cond: int, *, width: int = 256, n_blocks: int = 3, mlp_ratio: float = 2.0
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(n_features, width)
        self.time = TimeEmbedding(width)
        self.cond = nn.Sequential(nn.Linear(n_cond, width), nn.SiLU(), nn.Linear(width, width))
        self.blocks = nn.ModuleList(_ResBlock(width, mlp_ratio) for _ in range(n_blocks))
        self.norm_out = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.out = nn.Linear(width, n_features)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor, mask: Tensor | None = None) -> Tensor:
        """Velocity, shape like ``x`` (``mask`` is unused)."""
        c = F.silu(self.time(t) + self.cond(cond))
        h = self.embed(x)
        for block in self.blocks:
            h = block(h, c)
        return self.out(self.norm_out(h))


class LayerEnergyDecode(nn.Module):
    """Standardised energy features -> one feature per layer, ``(log(1 + E_l / MeV) - 4) / 3``.

    The energy features are stick-breaking fractions (see
    :class:`showerforge.data.preprocess.ShowerPreprocessor`): a layer's own feature says which share
    of the *remaining* energy it takes, not how much energy it holds. The shape of a layer depends
    on its energy, so the shape network gets the decoded layer energies, computed exactly as the
    preprocessing's inverse computes them (clip to the training range, undo the sticks, times the
    incident energy from the condition's first column).

    Args:
        constants: :meth:`ShowerPreprocessor.energy_decode` of the training data.

    Shapes:
        ``e`` (N, n_layers), ``cond`` (N, n_cond) -> (N, n_layers).
    """

    mean: Tensor
    std: Tensor
    y_min: Tensor
    y_max: Tensor

    def __init__(self, constants: dict[str, Any]) -> None:
        super().__init__()
        for key in ("mean", "std", "y_min", "y_max"):
            self.register_buffer(key, torch.tensor(constants[key], dtype=torch.float32), persistent=False)
        self.alpha, self.frac_eps = float(constants["alpha"]), float(constants["frac_eps"])
        self.cond_mean, self.cond_std = float(constants["cond_mean"]), float(constants["cond_std"])

    def layer_energies(self, e: Tensor, cond: Tensor) -> Tensor:
        """Layer energies in MeV, (N, n_layers)."""
        y = torch.minimum(torch.maximum(e * self.std + self.mean, self.y_min), self.y_max)
        total = (torch.exp(y[:, -1]) - self.frac_eps).clamp_min(0.0) * torch.exp(
            cond[:, 0] * self.cond_std + self.cond_mean
        )
        stick = ((torch.sigmoid(y[:, :-1]) - self.alpha) / (1.0 - 2.0 * self.alpha)).clamp(0.0, 1.0)
        ones = y.new_ones(y.shape[0], 1)
        left = torch.cumprod(torch.cat([ones, 1.0 - stick], dim=1), dim=1)
        return torch.cat([stick, ones], dim=1) * left * total[:, None]

    def forward(self, e: Tensor, cond: Tensor) -> Tensor:
        return (torch.log1p(self.layer_energies(e, cond)) - 4.0) / 3.0


class FactorisedFlow(GenerativeModel):
    """Layer energies by one flow-matching model, shapes by a second one conditioned on them.

    Args:
        energy: :class:`FlowMatching` over the (N, n_layers) energy features, condition ``cond``.
        shape: :class:`FlowMatching` over the (N, n_voxels) shape features, condition
            ``[cond, energy features]``.
        token_sizes: features per layer in ``x`` (1 energy feature + the layer's voxels).
        config: JSON-able config; ``energy_steps`` sets the energy model's ODE steps (its solver
            is the model's default solver).
        decode: with it, the shape model's condition is ``[cond, energy features, decode(energy
            features)]`` (the last ``n_layers`` columns are per-layer, see ``n_layer_cond`` of
            :class:`LayerTransformer`); without it ``[cond, energy features]``.

    Shapes:
        ``x`` (N, sum(token_sizes)) interleaved per layer, ``cond`` (N, n_cond).
    """

    e_index: Tensor
    v_index: Tensor

    def __init__(
        self,
        energy: FlowMatching,
        shape: FlowMatching,
        token_sizes: Sequence[int],
        config: dict[str, Any],
        decode: LayerEnergyDecode | None = None,
    ) -> None:
        super().__init__()
        self.energy, self.shape, self.decode = energy, shape, decode
        self.config = dict(config)
        sizes = [int(s) for s in token_sizes]
        starts = torch.tensor([0] + sizes[:-1]).cumsum(0)
        is_energy = torch.zeros(sum(sizes), dtype=torch.bool)
        is_energy[starts] = True
        self.register_buffer("e_index", starts, persistent=False)
        self.register_buffer("v_index", torch.nonzero(~is_energy).reshape(-1), persistent=False)
        self.event_shape = (sum(sizes),)

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(N, n_features) -> energy features (N, n_layers), shape features (N, n_voxels)."""
        return x[:, self.e_index], x[:, self.v_index]

    def join(self, e: Tensor, v: Tensor) -> Tensor:
        """Inverse of :meth:`split`."""
        x = e.new_empty((e.shape[0], *self.event_shape))
        x[:, self.e_index] = e
        x[:, self.v_index] = v
        return x

    def shape_condition(self, e: Tensor, cond: Tensor) -> Tensor:
        """The shape model's condition for energy features ``e``."""
        if self.decode is None:
            return torch.cat([cond, e], dim=1)
        return torch.cat([cond, e, self.decode(e, cond)], dim=1)

    def loss(
        self, x: Tensor, cond: Tensor, mask: Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Sum of the two CFM losses (each a mean over its features); the shape model sees true energies."""
        e, v = self.split(x)
        return self.energy.loss(e, cond, generator=generator) + self.shape.loss(
            v, self.shape_condition(e, cond), generator=generator
        )

    def noise_shapes(self, n: int) -> list[tuple[int, ...]]:
        """Energy noise (n, n_layers) first, then shape noise (n, n_voxels)."""
        return [(n, *self.energy.event_shape), (n, *self.shape.event_shape)]

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
        """Energies (``energy_steps`` steps), then shapes given them (``steps``, ``solver``)."""
        return self.join(*self.sample_parts(noise, cond, steps=steps, solver=solver))

    @torch.no_grad()
    def sample_parts(
        self, noise: list[Tensor], cond: Tensor, *, steps: int | None = None, solver: str | None = None
    ) -> tuple[Tensor, Tensor]:
        """:meth:`sample_from_noise` before :meth:`join`: energy features (N, n_layers), shapes (N, n_voxels)."""
        e = self.energy.sample_from_noise(
            noise[:1], cond, steps=int(self.config.get("energy_steps", 16)), solver=solver
        )
        v = self.shape.sample_from_noise(noise[1:], self.shape_condition(e, cond), steps=steps, solver=solver)
        return e, v


def build_factorised(cfg: dict[str, Any]) -> GenerativeModel:
    """Builder of ``cfm-factorised`` from a complete config (see the registry entry)."""
    sizes = [int(s) for s in cfg["token_sizes"]]
    n_layers, n_cond = len(sizes), int(cfg["n_cond"])
    sub = {k: cfg[k] for k in ("sigma", "time_sampling", "solver", "steps")}
    decode = None
    if cfg["layer_cond"] == "energy":
        if not cfg.get("energy_decode"):
            raise ValueError("layer_cond='energy' needs the energy_decode constants of the preprocessing")
        decode = LayerEnergyDecode(cfg["energy_decode"])
    elif cfg["layer_cond"] != "stick":
        raise UserError(f"layer_cond must be 'energy' or 'stick', got {cfg['layer_cond']!r}")
    n_shape_cond = n_cond + n_layers * (2 if decode is not None else 1)
    energy = FlowMatching(
        EnergyMLP(
            n_layers, n_cond, width=cfg["energy_width"], n_blocks=cfg["energy_blocks"], mlp_ratio=cfg["mlp_ratio"]
        ),
        (n_layers,),
        {"name": "energy", **sub},
    )
    shape = FlowMatching(
        LayerTransformer(
            [s - 1 for s in sizes],
            n_shape_cond,
            d_model=cfg["d_model"],
            n_blocks=cfg["n_blocks"],
            n_heads=cfg["n_heads"],
            mlp_ratio=cfg["mlp_ratio"],
            layers_per_token=cfg["layers_per_token"],
            n_layer_cond=n_layers,
            x_gain=bool(cfg["x_gain"]),
            x_units=int(cfg["x_units"]),
        ),
        (sum(sizes) - n_layers,),
        {"name": "shape", **sub},
    )
    return FactorisedFlow(energy, shape, sizes, cfg, decode)
