"""Exportable torch modules: the ODE sampler, the inverse preprocessing and the input/output layouts.

Everything a generated shower needs between Gaussian noise and MeV is one :class:`torch.nn.Module`
here, so that :func:`torch.onnx.export` writes it as one graph:

* :class:`InversePreprocessing` is :meth:`showerforge.data.preprocess.ShowerPreprocessor.inverse` in
  torch (layer energies in float64, voxels in float64 or float32 as the numpy original's ``dtype``;
  the shower graphs use float32): energy features clipped to their training range, the
  stick-breaking layer energies, the shape features (``EnergyBinnedStandardize`` interpolated in
  log incident energy and clipped, or a plain standardisation), layers below the threshold
  emptied, voxels below it zeroed except the hardest of each layer, and the two rescale passes;
* :class:`ShowerGraph` maps (noise, incident energy in MeV) to showers in MeV, CaloChallenge voxel
  order (layer, angle, radius), with the model's ODE solver unrolled (a factorised model hands its
  energy and shape features over as they are, without interleaving them first);
* :class:`Par04Graph` and :class:`Par04NoiseInsideGraph` wrap it in the calling conventions of
  Geant4's example Par04 (one float32 input of shape [1, n], the output read in Par04's mesh
  order: radius outermost, then phi, then z innermost).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from showerforge.data.preprocess import MEV_FLOOR, EnergyBinnedStandardize, ShowerPreprocessor
from showerforge.errors import UserError
from showerforge.geometry import Geometry
from showerforge.models.factorised import FactorisedFlow

__all__ = [
    "InversePreprocessing",
    "ShowerGraph",
    "Par04Graph",
    "Par04NoiseInsideGraph",
    "PAR04_MAX_ENERGY_MEV",
    "PAR04_MAX_ANGLE_DEG",
    "par04_order",
    "check_par04_geometry",
    "unrolled_cumprod",
    "exportable_ops",
    "JetInversePreprocessing",
    "JetGraph",
]

_PT_FLOOR = 1e-12  # as showerforge.data.jet_preprocess

PAR04_MAX_ENERGY_MEV = 1024000.0
"""``fMaxEnergy`` of Par04's ``Par04InferenceSetup``: the VAE convention feeds ``E / fMaxEnergy``."""
PAR04_MAX_ANGLE_DEG = 90.0
"""``fMaxAngle`` of Par04's ``Par04InferenceSetup``: the VAE convention feeds ``theta[deg] / fMaxAngle``."""


def unrolled_cumprod(x: Tensor, dim: int, dtype: torch.dtype | None = None) -> Tensor:
    """``torch.cumprod`` as a chain of products over a dimension of fixed size (exportable to ONNX).

    The products are taken in the same order as ``torch.cumprod``, so results agree bit for bit.
    The slices keep their dimension (one ``Split``, the products, one ``Concat``): no ``Squeeze`` /
    ``Unsqueeze`` per element, whose per-node cost dominates a graph run at batch 1.
    """
    if dtype is not None:
        x = x.to(dtype)
    parts = torch.split(x, 1, dim)
    out = [parts[0]]
    for p in parts[1:]:
        out.append(out[-1] * p)
    return torch.cat(out, dim)


def exp_sigmoid(x: Tensor) -> Tensor:
    """``1 / (1 + exp(-x))``: the logistic function, exported as Neg, Exp, Add, Reciprocal.

    onnxruntime's ``Sigmoid`` kernel is accurate to ~2e-7 in absolute terms, so a small output
    (a stick-breaking fraction of 1e-3, say) has a relative error of 1e-4; through ``Exp`` the
    relative error stays at float32 rounding, as in PyTorch.
    """
    return torch.reciprocal(1.0 + torch.exp(-x))


@contextmanager
def exportable_ops() -> Iterator[None]:
    """While exporting: ``torch.cumprod`` (no ONNX operator) becomes :func:`unrolled_cumprod` and
    ``torch.sigmoid`` becomes :func:`exp_sigmoid`."""
    cumprod, sigmoid = torch.cumprod, torch.sigmoid
    torch.cumprod = unrolled_cumprod  # type: ignore[assignment]
    torch.sigmoid = exp_sigmoid  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.cumprod, torch.sigmoid = cumprod, sigmoid


def _f64(values: Any) -> Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float64))


class InversePreprocessing(nn.Module):
    """:meth:`ShowerPreprocessor.inverse` in torch: features -> showers in MeV.

    Args:
        pre: the fitted preprocessing of a trained model.
        dtype: precision of the per-voxel work (the layer energies are float64), as the ``dtype``
            of :meth:`ShowerPreprocessor.inverse`: float32 moves half the bytes.

    Shapes:
        ``x`` (N, n_features) float32 features, ``incident`` (N,) float64 MeV -> (N, n_voxels)
        MeV in ``dtype``, CaloChallenge voxel order.
    """

    e_pos: Tensor
    v_pos: Tensor
    e_mean: Tensor
    e_std: Tensor
    y_min: Tensor
    y_max: Tensor
    centres: Tensor
    s_mean: Tensor
    s_std: Tensor
    s_low: Tensor
    s_high: Tensor
    gather: Tensor
    scatter: Tensor
    floor: Tensor

    def __init__(self, pre: ShowerPreprocessor, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.dtype = dtype
        self.alpha, self.frac_eps = float(pre.alpha), float(pre.frac_eps)
        self.delta = float(pre.threshold_mev or 0.0)
        self.shape_scale = pre.shape_scale
        self.mev_unit = self.delta if self.delta > 0 else 1.0
        self.n_voxels = pre.n_voxels
        self._buffer("e_pos", torch.as_tensor(pre._e_pos, dtype=torch.long))
        self._buffer("v_pos", torch.as_tensor(pre._v_pos, dtype=torch.long))
        self._buffer("e_mean", _f64(pre.energy_std.mean))
        self._buffer("e_std", _f64(pre.energy_std.std))
        self._buffer("y_min", _f64(pre.y_min))
        self._buffer("y_max", _f64(pre.y_max))
        self._init_shape(pre)
        self._init_layers(pre)

    def _buffer(self, name: str, value: Tensor) -> None:
        self.register_buffer(name, value, persistent=False)

    def _init_shape(self, pre: ShowerPreprocessor) -> None:
        std = pre.shape_std
        self.binned = isinstance(std, EnergyBinnedStandardize) and len(std.centres) > 1
        if isinstance(std, EnergyBinnedStandardize):
            low, high = std.low, std.high
            if self.binned:  # the union of each pair of neighbouring bins, one row per interval
                low, high = np.minimum(low[:-1], low[1:]), np.maximum(high[:-1], high[1:])
            self._buffer("centres", _f64(std.centres))
            self._buffer("s_mean", _f64(std.mean).to(self.dtype))
            self._buffer("s_std", _f64(std.std).to(self.dtype))
            self._buffer("s_low", _f64(low).to(self.dtype))
            self._buffer("s_high", _f64(high).to(self.dtype))
            self.clipped = True
        else:
            self._buffer("s_mean", _f64(std.mean)[None, :].to(self.dtype))
            self._buffer("s_std", _f64(std.std)[None, :].to(self.dtype))
            self.clipped = False

    def _init_layers(self, pre: ShowerPreprocessor) -> None:
        """Index arrays that pad the voxels of each active layer to (n_active, width)."""
        sizes = [pre.layer_sizes[i] for i in pre.active]
        self.width = max(sizes)
        gather = np.full((len(sizes), self.width), pre.n_voxels, dtype=np.int64)  # pad: the appended 0 column
        for k, i in enumerate(pre.active):
            gather[k, : sizes[k]] = np.arange(pre.offsets[i], pre.offsets[i + 1])
        flat = gather.reshape(-1)
        scatter = np.empty(pre.n_voxels, dtype=np.int64)
        real = flat < pre.n_voxels
        scatter[flat[real]] = np.nonzero(real)[0]
        self._buffer("gather", torch.as_tensor(gather))
        self._buffer("scatter", torch.as_tensor(scatter))
        self.regular = bool(np.array_equal(flat, np.arange(pre.n_voxels)))  # the padding is the voxel order
        self._buffer("floor", _f64(np.asarray(sizes, dtype=np.float64) * self.delta))

    def _sigmoid(self, z: Tensor) -> Tensor:
        if z.dtype == torch.float64:
            return 0.5 * (1.0 + torch.tanh(0.5 * z))
        return exp_sigmoid(z)  # float32: accurate relative to small outputs (1 + tanh is not)

    def layer_energies(self, x_e: Tensor, inc: Tensor) -> Tensor:
        """Energy features (N, n_active) -> layer energies (N, n_active) MeV; below ``delta`` -> 0."""
        y = torch.minimum(torch.maximum(x_e * self.e_std + self.e_mean, self.y_min), self.y_max)
        e_tot = torch.clamp(torch.exp(y[:, -1]) - self.frac_eps, min=0.0) * inc
        stick = torch.clamp((self._sigmoid(y[:, :-1]) - self.alpha) / (1.0 - 2.0 * self.alpha), 0.0, 1.0)
        ones = torch.ones_like(y[:, :1])
        # the share left after the earlier layers, a product of factors in [0, 1], as exp(cumsum(log)):
        # three nodes instead of one per layer; float64 keeps it to ~1e-14 relative; log 0 = -inf gives 0
        left = torch.exp(torch.cumsum(torch.log(torch.cat([ones, 1.0 - stick], dim=1)), dim=1))
        e_layer = torch.cat([stick, ones], dim=1) * left * e_tot[:, None]
        return torch.where(e_layer < self.delta, torch.zeros_like(e_layer), e_layer)

    def _shape_stats(self, log_e: Tensor) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """(mean, std, low, high) of the shape standardisation at ``log_e``, each (N or 1, n_voxels)."""
        if not self.binned:
            low = self.s_low[:1] if self.clipped else None
            high = self.s_high[:1] if self.clipped else None
            return self.s_mean[:1], self.s_std[:1], low, high
        c = self.centres
        n_bins = c.shape[0]
        # np.searchsorted(c, v) (side="left") = number of centres below v
        hi = torch.clamp((log_e[:, None] > c[None, :]).to(torch.long).sum(dim=1), 1, n_bins - 1)
        lo = hi - 1
        c_lo, c_hi = c[lo], c[hi]
        w = torch.clamp((log_e - c_lo) / (c_hi - c_lo), 0.0, 1.0)[:, None]
        w_lo, w_hi = (1 - w).to(self.dtype), w.to(self.dtype)
        mean = w_lo * self.s_mean[lo] + w_hi * self.s_mean[hi]
        std = w_lo * self.s_std[lo] + w_hi * self.s_std[hi]
        return mean, std, self.s_low[lo], self.s_high[lo]

    def voxel_energies(self, x_v: Tensor, log_e: Tensor, e_layer: Tensor) -> Tensor:
        """Shape features (N, n_voxels) -> voxel energies (N, n_voxels) MeV before the threshold."""
        mean, std, low, high = self._shape_stats(log_e)
        z = x_v.to(self.dtype) * std + mean
        if low is not None and high is not None:
            z = torch.minimum(torch.maximum(z, low), high)
        if self.shape_scale == "mev":
            return torch.clamp(self.mev_unit * (torch.exp(torch.clamp(z, max=50.0)) - MEV_FLOOR), min=0.0)
        shape = torch.clamp((self._sigmoid(z) - self.alpha) / (1.0 - 2.0 * self.alpha), 0.0, 1.0)
        scale = torch.maximum(e_layer, self.floor).to(self.dtype)  # (N, n_active)
        return shape * self._per_voxel(scale)

    def _per_voxel(self, per_layer: Tensor) -> Tensor:
        """(N, n_active) -> (N, n_voxels), each voxel getting its layer's value."""
        padded = per_layer[:, :, None].expand(-1, -1, self.width).reshape(per_layer.shape[0], -1)
        return padded if self.regular else padded[:, self.scatter]

    def threshold(self, showers: Tensor, e_layer: Tensor) -> Tensor:
        """Zero voxels below ``delta`` (keeping each layer's hardest) and rescale to the layer energies."""
        n = showers.shape[0]
        if self.regular:  # every layer has `width` voxels: no padding to gather
            v = showers.reshape(n, self.gather.shape[0], self.width)
        else:
            padded = torch.cat([showers, torch.zeros_like(showers[:, :1])], dim=1)
            v = padded[:, self.gather.reshape(-1)].reshape(n, self.gather.shape[0], self.width)
        top = torch.argmax(v, dim=2)  # the first maximum, as numpy's argmax (padding sits after real voxels)
        hardest = torch.arange(self.width, device=v.device)[None, None, :] == top[:, :, None]
        e = e_layer.to(self.dtype)[:, :, None]
        for _ in range(2):  # the first rescale may push voxels below delta; the second only raises
            keep = ((v >= self.delta) | hardest) & (e > 0)
            v = torch.where(keep, v, torch.zeros_like(v))
            total = v.sum(dim=2, keepdim=True)
            ratio = torch.where(
                total > 0, e / torch.where(total > 0, total, torch.ones_like(total)), torch.zeros_like(total)
            )
            v = v * ratio
        return v.reshape(n, -1) if self.regular else v.reshape(n, -1)[:, self.scatter]

    def forward(self, x: Tensor, incident: Tensor) -> Tensor:
        return self.from_parts(x[:, self.e_pos], x[:, self.v_pos], incident)

    def from_parts(self, x_e: Tensor, x_v: Tensor, incident: Tensor) -> Tensor:
        """:meth:`forward` on the energy features (N, n_active) and shape features (N, n_voxels)."""
        inc = incident.reshape(-1).to(torch.float64)
        e_layer = self.layer_energies(x_e.to(torch.float64), inc)
        showers = self.voxel_energies(x_v, torch.log(inc), e_layer)
        return self.threshold(showers, e_layer)


class ShowerGraph(nn.Module):
    """(noise, incident energy) -> showers in MeV: condition, unrolled ODE sampler, inverse preprocessing.

    Args:
        surrogate: a loaded shower model (:class:`showerforge.training.Surrogate`).
        steps, solver: the ODE sampler, unrolled into the graph.

    Shapes:
        ``noise`` (N, n_noise) float32: the model's noise tensors (``model.noise_shapes``)
        concatenated along dim 1 in draw order; ``incident`` (N, 1) float32 MeV -> (N, n_voxels)
        float32 MeV in CaloChallenge voxel order (layer, angle, radius; radius fastest).
    """

    def __init__(self, surrogate: Any, *, steps: int, solver: str) -> None:
        super().__init__()
        self.model = surrogate.model
        self.steps, self.solver = int(steps), str(solver)
        pre = surrogate.preprocessing
        self.cond_mean = float(pre.cond_std.mean[0])
        self.cond_std = float(pre.cond_std.std[0])
        self.noise_sizes = [int(np.prod(s[1:])) for s in self.model.noise_shapes(1)]
        self.noise_shapes = [tuple(int(d) for d in s[1:]) for s in self.model.noise_shapes(1)]
        self.inverse = InversePreprocessing(pre, dtype=torch.float32)
        m = self.model
        self.by_parts = (  # the model's energy / shape features are the preprocessing's
            isinstance(m, FactorisedFlow)
            and torch.equal(m.e_index.cpu(), self.inverse.e_pos)
            and torch.equal(m.v_index.cpu(), self.inverse.v_pos)
        )

    @property
    def n_noise(self) -> int:
        """Width of the concatenated noise input."""
        return sum(self.noise_sizes)

    def condition(self, inc: Tensor) -> Tensor:
        """Incident energies (N,) float64 MeV -> the model's condition (N, 1) float32."""
        return ((torch.log(inc) - self.cond_mean) / self.cond_std)[:, None].to(torch.float32)

    def forward(self, noise: Tensor, incident: Tensor) -> Tensor:
        inc = incident.reshape(-1).to(torch.float64)
        parts = torch.split(noise, self.noise_sizes, dim=1)
        noise_list = [p.contiguous().reshape(p.shape[0], *shape) for p, shape in zip(parts, self.noise_shapes)]
        if self.by_parts:
            e, v = self.model.sample_parts(noise_list, self.condition(inc), steps=self.steps, solver=self.solver)
            return self.inverse.from_parts(e, v, inc).to(torch.float32)
        x = self.model.sample_from_noise(noise_list, self.condition(inc), steps=self.steps, solver=self.solver)
        return self.inverse(x, inc).to(torch.float32)


def check_par04_geometry(geometry: Geometry) -> None:
    """Refuse a readout that Par04's cylindrical mesh cannot express (one-line :class:`UserError`).

    Par04 places ``n_r x n_phi x n_z`` cells: equal radial cells from the axis, equal phi cells
    over (-pi, pi], one z cell per layer, the same in every layer.
    """
    name = geometry.name
    if not geometry.is_regular:
        sizes = sorted({layer.n_voxels for layer in geometry.readout})
        raise UserError(
            f"geometry {name!r}: the par04 layout needs the same binning in every layer (Par04's mesh is "
            f"n_r x n_phi x n_z), this readout has layers of {', '.join(map(str, sizes))} voxels; "
            "export it with --layout calochallenge"
        )
    edges = np.asarray(geometry.readout[0].r_edges_mm)
    widths = np.diff(edges)
    if edges[0] != 0.0 or not np.allclose(widths, widths[0], rtol=1e-6, atol=0.0):
        raise UserError(
            f"geometry {name!r}: the par04 layout needs equal radial bins starting at r = 0 (Par04's "
            f"setSizeOfRhoCells), got edges {edges.tolist()} mm; export it with --layout calochallenge"
        )


def par04_order(geometry: Geometry) -> np.ndarray:
    """Column permutation: ``showers[:, par04_order(g)]`` puts CaloChallenge voxels in Par04's mesh order.

    CaloChallenge (ds2/ds3) orders voxels (layer z, angle alpha, radius r) with r fastest; Par04's
    ``Par04InferenceSetup::GetPositions`` loops r outermost, then phi, then z innermost.
    """
    n_z, n_phi, n_r = geometry.shape
    return np.arange(n_z * n_phi * n_r).reshape(n_z, n_phi, n_r).transpose(2, 1, 0).reshape(-1)


class _Par04Base(nn.Module):
    """A shower graph (``core``) read out in Par04 mesh order (``order``); the geometry is checked."""

    order: Tensor

    def __init__(self, core: ShowerGraph, geometry: Geometry) -> None:
        super().__init__()
        check_par04_geometry(geometry)
        self.core = core
        self.register_buffer("order", torch.as_tensor(par04_order(geometry)), persistent=False)


class Par04Graph(_Par04Base):
    """Par04's VAE calling convention around a :class:`ShowerGraph` (noise given by Geant4).

    Input ``(N, n_noise + 4)`` float32: the Gaussian noise (Par04 ``setSizeLatentVector n_noise``,
    drawn by ``CLHEP::RandGauss``), then ``E / 1024000 MeV``, ``theta[deg] / 90`` and the two-slot
    geometry one-hot (``setSizeConditionVector 4``). The angle and the one-hot are read but unused
    (the model is conditioned on the energy only). Output ``(N, n_voxels)`` float32: voxel
    energies divided by the incident energy (Par04 multiplies by it), in Par04 mesh order.
    """

    def forward(self, inputs: Tensor) -> Tensor:
        n = self.core.n_noise
        noise = inputs[:, :n]
        incident = inputs[:, n : n + 1].to(torch.float64) * PAR04_MAX_ENERGY_MEV
        showers = self.core(noise, incident).to(torch.float64)
        return (showers / incident)[:, self.order].to(torch.float32)


class Par04NoiseInsideGraph(_Par04Base):
    """Par04's CaloDiT-2 calling convention: ``[E (GeV), phi, theta, 5-slot one-hot]``, noise drawn inside.

    Input ``(N, 8)`` float32; only the energy is used. The noise comes from ONNX
    ``RandomNormalLike``, drawn from onnxruntime's own generator (``onnxruntime.set_seed``), not
    Geant4's random engine: a Par04 run is not reproducible from Geant4's seeds. Output ``(N, n_voxels)`` float32 in GeV (Par04
    multiplies by 1000), Par04 mesh order.
    """

    def forward(self, inputs: Tensor) -> Tensor:
        shape_like = inputs[:, :1].expand(-1, self.core.n_noise)
        noise = torch.randn_like(shape_like)
        incident = inputs[:, :1].to(torch.float64) * 1000.0
        showers = self.core(noise, incident).to(torch.float64)
        return (showers / 1000.0)[:, self.order].to(torch.float32)


class JetInversePreprocessing(nn.Module):
    """:meth:`showerforge.data.jet_preprocess.ParticleTransform.inverse` in torch (float64 inside).

    Standardised ``(eta_rel, phi_rel, log pt_rel)`` are mapped back and clipped to the training
    range; a jet whose ``sum(pt_rel)`` exceeds the training maximum is scaled down to it; phi is
    wrapped to (-pi, pi]; real particles are sorted by pT descending (ONNX ``TopK``; equal values
    keep their slot order, as numpy's stable sort) and padded slots are zero.

    Shapes:
        ``x`` (N, n, 3) float32, ``mask`` (N, n) bool -> (N, n, 4) float64 JetNet particles.
    """

    mean: Tensor
    std: Tensor
    low: Tensor
    high: Tensor

    def __init__(self, transform: Any) -> None:
        super().__init__()
        self.register_buffer("mean", _f64(transform.scale.mean), persistent=False)
        self.register_buffer("std", _f64(transform.scale.std), persistent=False)
        self.register_buffer("low", _f64(transform.low), persistent=False)
        self.register_buffer("high", _f64(transform.high), persistent=False)
        self.sum_max = float(transform.sum_max)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        raw = torch.minimum(torch.maximum(x.to(torch.float64) * self.std + self.mean, self.low), self.high)
        m = mask.to(torch.float64)
        pt = torch.exp(raw[..., 2]) * m
        total = pt.sum(dim=1, keepdim=True)
        pt = pt * torch.clamp(self.sum_max / torch.clamp(total, min=_PT_FLOOR), max=1.0)
        two_pi = 2.0 * torch.pi
        wrapped = torch.pi - raw[..., 1]
        phi = torch.pi - (wrapped - torch.floor(wrapped / two_pi) * two_pi)
        pf = torch.stack([raw[..., 0], phi, pt, m], dim=-1)
        key = torch.where(mask, pt, torch.full_like(pt, -torch.inf))
        order = torch.topk(key, k=key.shape[1], dim=1, largest=True, sorted=True).indices
        pf = torch.gather(pf, 1, order[..., None].expand(-1, -1, 4))
        return pf * pf[..., 3:4]


class JetGraph(nn.Module):
    """(noise, jet type, [jet pT], mask) -> JetNet particles: the set model's unrolled ODE and inverse.

    Inputs (float32): ``noise`` (N, n, 3) standard normal; ``jet_type`` (N, 5) one-hot in JetNet
    order (g, q, t, w, z); for models conditioned on ``"type+pt"`` also ``jet_pt`` (N, 1) GeV, on
    ``"type+mass"`` also ``rel_mass`` (N, 1), the relative jet mass m / pT;
    ``mask`` (N, n), 1 for the real slots (the first ``min(k, n)`` of a jet with multiplicity
    ``k``), 0 for padding. Output ``particle_features`` (N, n, 4): ``eta_rel, phi_rel, pt_rel, mask``,
    pT-descending, zero-padded. Jet kinematics and multiplicity are drawn outside the graph.
    """

    def __init__(self, surrogate: Any, *, steps: int, solver: str) -> None:
        super().__init__()
        self.model = surrogate.model
        self.steps, self.solver = int(steps), str(solver)
        cond = surrogate.preprocessing.conditioning
        self.with_pt = cond.kind == "type+pt"
        self.with_mass = bool(cond.uses_mass)
        if self.with_pt:
            self.pt_mean, self.pt_std = float(cond.log_pt.mean[0]), float(cond.log_pt.std[0])
        if self.with_mass:
            self.m_mean, self.m_std = float(cond.rel_mass.mean[0]), float(cond.rel_mass.std[0])
        self.inverse = JetInversePreprocessing(surrogate.preprocessing.particles)

    def forward(self, noise: Tensor, jet_type: Tensor, *rest: Tensor) -> Tensor:
        mask = rest[-1] > 0.5
        cond = jet_type
        if self.with_pt:
            log_pt = (torch.log(rest[0].to(torch.float64)) - self.pt_mean) / self.pt_std
            cond = torch.cat([jet_type, log_pt.to(torch.float32)], dim=1)
        elif self.with_mass:
            m = (rest[0].to(torch.float64) - self.m_mean) / self.m_std
            cond = torch.cat([jet_type, m.to(torch.float32)], dim=1)
        x = self.model.sample_from_noise([noise], cond, steps=self.steps, solver=self.solver, mask=mask)
        return self.inverse(x, mask).to(torch.float32)
