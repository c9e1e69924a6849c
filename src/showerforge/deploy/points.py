"""The ``points`` layout: a point-cloud model (``cfm-points``) from noise to calibrated points, one graph.

:class:`PointGraph` is :func:`showerforge.generate.calo_points.sample_points` as one exportable
:class:`torch.nn.Module`, for one shower per row padded to the model's ``n_particles`` slots:

1. the energy feature ``(log(E_inc / 1 GeV) - mean) / std``;
2. the shower flow's ODE from ``summary_noise`` (its own solver and ``summary_steps``, unrolled);
3. :class:`SummaryDecoding`: :meth:`PointsPreprocessor.decode_summaries` in torch (visible energy,
   points capped at ``n_max``, per-layer fractions, counts by largest remainders, centre of
   gravity), the occupancy calibration of the counts (:class:`OccupancyCounts`, when the model
   has one) and the re-encoding of the counts that conditions the point flow;
4. the mask ``arange(n_slots) < count`` and the point flow's ODE on the masked ``noise``; then the
   drawn centre of gravity goes through the centre-of-gravity calibration (factors and shifts,
   when the model has them);
5. :class:`PointCalibration`: :meth:`PointsPreprocessor.decode_points` and
   :func:`~showerforge.data.points_preprocess.calibrate` in torch (points sorted by depth fill
   the layers with the drawn counts, each point's energy weighted by its incident-energy bin, layer
   and radial bin (the radial energy calibration, when the model has one), each layer rescaled to
   its drawn energy, the centre of
   gravity shifted to the drawn one, points beyond a square-cell face and points left without
   energy dropped, shifted points held inside the face; with a cell-energy calibration, last, the
   points' cells (``ScatterElements`` with a sum: opset 16 or newer), each cell's energy mapped,
   the layers rescaled and the centre of gravity imposed again), zero-padded.

Decoding and calibration run in float64, as the numpy originals; the sort by depth is ONNX
``TopK`` (equal depths keep their slot order, as numpy's stable sort). ``sinh`` (no ONNX
operator) is written with ``exp``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from showerforge.data.points_preprocess import (
    CORE_MIN_FRACTION,
    E_SCALE_MEV,
    FACE_MARGIN,
    FRACTION_FLOOR,
    PointsPreprocessor,
    face_half_widths,
    radial_log_weights,
)
from showerforge.geometry import Geometry

__all__ = [
    "SummaryDecoding",
    "OccupancyCounts",
    "PointCalibration",
    "PointGraph",
    "stable_argsort",
    "points_difference",
]

POINT_FLOORS = (1.0, 1.0, 1.0, 1e-6)
"""Floors of :func:`points_difference` per column: x, y in mm, layer index, energy in MeV."""


def stable_argsort(key: Tensor) -> Tensor:
    """Indices that sort ``key`` (N, n) ascending along dim 1, equal values in slot order.

    Exported as ONNX ``TopK`` (whose ties go to the lower index); eagerly a stable ``torch.sort``.
    """
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return torch.topk(key, k=key.shape[1], dim=1, largest=False, sorted=True).indices
    return torch.sort(key, dim=1, stable=True).indices


def slot_index(t: Tensor) -> Tensor:
    """``arange(n)`` along dim 1 of ``t`` (N, n, ...), broadcast to (N, n) int64, from tensor ops only, so
    that an exported graph keeps ``n`` dynamic."""
    return torch.cumsum(torch.ones_like(t[:, :, 0], dtype=torch.long), dim=1) - 1


def _f64(values: Any) -> Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float64))


def _fractions(log_frac: Tensor) -> Tensor:
    """``points_preprocess._fractions``: clipped, normalised; an all-zero row keeps its largest entry."""
    f = torch.clamp(torch.exp(torch.clamp(log_frac, -30.0, 1.0)) - FRACTION_FLOOR, min=0.0)
    top = torch.argmax(log_frac, dim=1, keepdim=True)  # the first maximum, as numpy's
    onehot = (torch.arange(log_frac.shape[1])[None, :] == top).to(f.dtype)
    f = torch.where(f.sum(dim=1, keepdim=True) <= 0, onehot, f)
    return f / f.sum(dim=1, keepdim=True)


def _renormalise(f: Tensor, fallback: Tensor) -> Tensor:
    total = f.sum(dim=1, keepdim=True)
    fb = fallback / torch.clamp(fallback.sum(dim=1, keepdim=True), min=1e-300)
    return torch.where(total > 0, f / torch.where(total > 0, total, torch.ones_like(total)), fb)


def _largest_remainders(frac: Tensor, total: Tensor) -> Tensor:
    """Hamilton's method on float64 integers: the ``short`` largest remainders get one more point.

    A layer's rank is the number of layers with a larger remainder plus those before it with an
    equal one (numpy's stable ``argsort`` of the negated remainders).
    """
    ideal = frac * total[:, None]
    counts = torch.floor(ideal)
    short = total - counts.sum(dim=1)
    rem = ideal - counts
    n = rem.shape[1]
    before = torch.arange(n)[None, :, None] < torch.arange(n)[None, None, :]  # [j, i]: j < i
    r_j, r_i = rem[:, :, None], rem[:, None, :]
    rank = ((r_j > r_i) | ((r_j == r_i) & before)).to(rem.dtype).sum(dim=1)
    return counts + (rank < short[:, None]).to(rem.dtype)


class OccupancyCounts(nn.Module):
    """:func:`~showerforge.data.points_preprocess.apply_occupancy` in torch (float64 integers).

    Each layer's ``log(n' / n)`` against ``log n`` is written as a sum of clamped linear pieces
    between its knots (constant beyond the end knots, as ``numpy.interp``); layers with fewer knots
    are padded with flat pieces.

    Shapes:
        ``counts`` (N, L) float64 -> (N, L) float64, each row's total at most ``cap``.
    """

    x: Tensor
    r: Tensor

    def __init__(self, occupancy: dict[str, Any], cap: int) -> None:
        super().__init__()
        knots = [list(map(float, k)) for k in occupancy["log_n"]]
        ratios = [list(map(float, r)) for r in occupancy["log_ratio"]]
        width = max(2, *(len(k) for k in knots))
        xs = np.zeros((len(knots), width))
        rs = np.zeros((len(knots), width))
        for layer, (k, r) in enumerate(zip(knots, ratios)):
            pad = np.arange(1, width - len(k) + 1, dtype=np.float64)
            xs[layer] = np.concatenate([k, k[-1] + pad])
            rs[layer] = np.concatenate([r, np.full(width - len(k), r[-1])])
        self.register_buffer("x", _f64(xs), persistent=False)
        self.register_buffer("r", _f64(rs), persistent=False)
        self.cap = float(cap)

    def forward(self, counts: Tensor) -> Tensor:
        v = torch.log(torch.clamp(counts, min=1.0))[..., None]  # (N, L, 1)
        lo, hi = self.x[None, :, :-1], self.x[None, :, 1:]
        slope = (self.r[:, 1:] - self.r[:, :-1]) / (self.x[:, 1:] - self.x[:, :-1])
        piece = torch.minimum(torch.maximum(v, lo), hi) - lo
        r = self.r[None, :, 0] + (slope[None] * piece).sum(dim=2)
        scaled = torch.clamp(torch.round(counts * torch.exp(r)), min=1.0)
        out = torch.where(counts > 0, scaled, torch.zeros_like(counts))
        total = out.sum(dim=1)
        over = total > self.cap
        safe = torch.where(total > 0, total, torch.ones_like(total))
        capped = _largest_remainders(out / safe[:, None], torch.full_like(total, self.cap))
        return torch.where(over[:, None], capped, out)


class SummaryDecoding(nn.Module):
    """:meth:`PointsPreprocessor.decode_summaries` and ``encode_summaries`` in torch (float64 inside).

    Shapes:
        ``feats`` (N, n_summary) float32 drawn summaries, ``inc`` (N,) float64 MeV ->
        ``(counts, energies, cog, core, cond)``: counts (N, L) float64 integers, energies (N, L) MeV,
        cog (N, 2) mm, core (N, L) MeV of each layer's core point (zeros without the core split),
        ``cond`` (N, n_summary) float32 the re-encoded rounded summaries.
    """

    mu: Tensor
    sd: Tensor

    def __init__(self, pre: PointsPreprocessor, cap: int | None = None) -> None:
        super().__init__()
        self.n_layers, self.n_max = pre.n_layers, int(pre.n_max)
        self.core = bool(pre.core)
        self.register_buffer("mu", _f64(pre.sum_mu), persistent=False)
        self.register_buffer("sd", _f64(pre.sum_sd), persistent=False)
        self.occupancy = None if pre.occupancy is None else OccupancyCounts(pre.occupancy, int(cap or pre.n_max))

    def decode(self, feats: Tensor, inc: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        raw = feats.to(torch.float64) * self.sd + self.mu
        n_l = self.n_layers
        total_e = inc * torch.exp(torch.clamp(raw[:, 0], -30.0, 5.0))
        total_n = torch.clamp(torch.round(torch.exp(torch.clamp(raw[:, 1], 0.0, 20.0))), 1.0, float(self.n_max))
        e_frac = _fractions(raw[:, 2 : 2 + n_l])
        n_frac = _fractions(raw[:, 2 + n_l : 2 + 2 * n_l])
        n_frac = _renormalise(torch.where(e_frac > 0, n_frac, torch.zeros_like(n_frac)), e_frac)
        counts = _largest_remainders(n_frac, total_n)
        cog = raw[:, 2 + 2 * n_l : 4 + 2 * n_l]
        zero = torch.zeros_like(e_frac)
        if not self.core:
            e_frac = _renormalise(torch.where(counts > 0, e_frac, zero), counts)
            return counts, e_frac * total_e[:, None], cog, zero
        core_frac = torch.clamp(torch.exp(torch.clamp(raw[:, 4 + 2 * n_l :], -30.0, 1.0)) - FRACTION_FLOOR, 0.0, 1.0)
        core_frac = torch.where(core_frac < CORE_MIN_FRACTION, zero, core_frac)
        e_frac = _renormalise(torch.where((counts > 0) | (core_frac > 0), e_frac, zero), counts)
        core_frac = torch.where(counts > 0, core_frac, torch.ones_like(core_frac))
        energies = e_frac * total_e[:, None]
        return counts, energies, cog, core_frac * energies

    def encode(self, counts: Tensor, energies: Tensor, cog: Tensor, core: Tensor, inc: Tensor) -> Tensor:
        total_e = energies.sum(dim=1)
        total_n = counts.sum(dim=1)
        ones = torch.ones_like(total_e)
        e_frac = energies / torch.where(total_e > 0, total_e, ones)[:, None]
        n_frac = counts / torch.where(total_n > 0, total_n, ones)[:, None]
        cols = [
            torch.log(torch.clamp(total_e, min=1e-6) / inc)[:, None],
            torch.log(torch.clamp(total_n, min=1.0))[:, None],
            torch.log(e_frac + FRACTION_FLOOR),
            torch.log(n_frac + FRACTION_FLOOR),
            cog,
        ]
        if self.core:
            frac = core / torch.where(energies > 0, energies, torch.ones_like(energies))
            frac = torch.where(energies > 0, torch.clamp(frac, 0.0, 1.0), torch.zeros_like(frac))
            cols.append(torch.log(frac + FRACTION_FLOOR))
        raw = torch.cat(cols, dim=1)
        return ((raw - self.mu) / self.sd).to(torch.float32)

    def forward(self, feats: Tensor, inc: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        counts, energies, cog, core = self.decode(feats, inc)
        if self.occupancy is not None:
            counts = self.occupancy(counts)
        return counts, energies, cog, core, self.encode(counts, energies, cog, core, inc)


class PointCalibration(nn.Module):
    """:meth:`PointsPreprocessor.decode_points` then :func:`calibrate` in torch, on padded showers.

    Shapes:
        ``x`` (N, n, 4) float32 point-flow output, ``counts`` (N, L) float64 drawn points per
        layer, ``energies`` (N, L) MeV, ``cog`` (N, 2) mm, ``core`` (N, L) MeV (``None`` without
        the core split), ``inc`` (N,) float64 MeV (for the radial energy calibration) -> ``(points, num_points)``: (N, n, 4) float64 x, y mm, layer index, energy
        MeV, sorted by depth, zero beyond ``num_points`` (N,) int64; with the core split (N, n + L,
        4), each layer's core point after its other points, as :func:`calibrate`.
    """

    mu: Tensor
    sd: Tensor

    face_half: Tensor | None
    radial_edges: Tensor | None
    radial_weight: Tensor | None

    def __init__(
        self, pre: PointsPreprocessor, half_widths: np.ndarray | None = None, geometry: Geometry | None = None
    ) -> None:
        super().__init__()
        self.cell_shift: Tensor | None = None
        if pre.cells is not None and geometry is not None and geometry.is_crystal:  # cell-energy calibration
            lo, hi, nodes = pre.cells["grid_log10"]
            self.cell_grid = (float(lo), float(hi - lo) / (int(nodes) - 1), int(nodes))
            self.cell_shift = _f64(pre.cells["shift"]).reshape(-1)
            self.cell_energy_edges = _f64(pre.cells.get("energy_edges_mev", []))
            self.cell_side = _f64([lay.n_crystals for lay in geometry.readout])
            self.cell_mm = _f64([lay.crystal_mm for lay in geometry.readout])
            self.cell_offset = _f64(np.asarray(geometry.layer_offsets[: geometry.n_layers], np.float64))
            self.n_cells = int(geometry.n_voxels)
        self.radial_edges = self.radial_weight = None
        self.radial_energy_edges: Tensor | None = None
        if pre.radial is not None:  # inner edges, and the (K * L * B,) weights
            self.radial_edges = _f64(pre.radial["edges_mm"][1:])
            self.radial_energy_edges = _f64(pre.radial.get("energy_edges_mev", []))
            self.radial_weight = torch.exp(_f64(radial_log_weights(pre.radial, pre.n_layers))).reshape(-1)
            self.n_radial = len(pre.radial["edges_mm"])
        self.n_layers = pre.n_layers
        self.z_max = float(np.nextafter(float(pre.n_layers), 0.0))
        self.register_buffer("mu", _f64(pre.pt_mu), persistent=False)
        self.register_buffer("sd", _f64(pre.pt_sd), persistent=False)
        self.face_half = None if half_widths is None else _f64(half_widths)
        self.xy_scale_mm = float(pre.xy_scale_mm)

    def decode(self, x: Tensor) -> Tensor:
        raw = x.to(torch.float64) * self.sd + self.mu
        xy = torch.clamp(raw[..., :2], -20.0, 20.0)
        xy = self.xy_scale_mm * 0.5 * (torch.exp(xy) - torch.exp(-xy))  # sinh
        z = torch.clamp(raw[..., 2:3], 0.0, self.z_max)
        e = E_SCALE_MEV * torch.exp(torch.clamp(raw[..., 3:4], -40.0, 40.0))
        return torch.cat([xy, z, e], dim=-1)

    def fill_layers(self, pts: Tensor, counts: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Real points sorted by depth, their layer from the drawn counts, and the real-slot mask."""
        count = counts.sum(dim=1, keepdim=True)
        slot = slot_index(pts).to(pts.dtype)
        real = slot < count
        key = torch.where(real, pts[..., 2], torch.full_like(slot, float(self.n_layers)))
        order = stable_argsort(key)
        p = torch.gather(pts, 1, order[..., None].expand(-1, -1, 4))
        ends = torch.cumsum(counts, dim=1)  # the first sorted slot after each layer
        layer = (ends[:, None, :] <= slot[..., None]).to(pts.dtype).sum(dim=2)  # L for padded slots
        return p, torch.clamp(layer, max=float(self.n_layers - 1)), real

    def layer_sums(self, e: Tensor, counts: Tensor) -> Tensor:
        """(N, L) sums of the depth-sorted energies ``e`` (N, n) over the slots of each layer."""
        cum = torch.cat([torch.zeros_like(e[:, :1]), torch.cumsum(e, dim=1)], dim=1)
        ends = torch.cumsum(counts, dim=1)
        end = torch.gather(cum, 1, ends.to(torch.long))
        start = torch.gather(cum, 1, (ends - counts).to(torch.long))
        return end - start

    def forward(
        self,
        x: Tensor,
        counts: Tensor,
        energies: Tensor,
        cog: Tensor,
        core: Tensor | None = None,
        inc: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        p, layer, real = self.fill_layers(self.decode(x), counts)
        idx = layer.to(torch.long)
        if self.face_half is not None:  # beyond the face: no energy (dropped by compact)
            half = self.face_half[idx]
            real = real & (torch.abs(p[..., 0]) < half) & (torch.abs(p[..., 1]) < half)
        e = torch.where(real, p[..., 3], torch.zeros_like(p[..., 3]))
        if self.radial_weight is not None and self.radial_edges is not None:  # radial energy calibration
            if inc is None or self.radial_energy_edges is None:
                raise ValueError("the radial energy calibration needs the incident energies")
            r = torch.sqrt(p[..., 0] * p[..., 0] + p[..., 1] * p[..., 1])
            radial_bin = (r[..., None] >= self.radial_edges).to(torch.long).sum(dim=-1)
            energy_bin = (inc[:, None] >= self.radial_energy_edges[None, :]).to(torch.long).sum(dim=1)
            row = energy_bin[:, None] * self.n_layers + idx
            e = e * self.radial_weight[row * self.n_radial + radial_bin]
        sums = self.layer_sums(e, counts)
        target = energies if core is None else energies - core
        scale = torch.where(
            sums > 0, target / torch.where(sums > 0, sums, torch.ones_like(sums)), torch.zeros_like(sums)
        )
        e = e * torch.gather(scale, 1, idx)
        total = e.sum(dim=1, keepdim=True)
        whole = total if core is None else total + core.sum(dim=1, keepdim=True)
        safe = torch.where(total > 0, total, torch.ones_like(total))
        moment = (e[..., None] * p[..., :2]).sum(dim=1)
        shift = torch.where(total > 0, (cog * whole - moment) / safe, torch.zeros_like(cog))
        xy = p[..., :2] + shift[:, None, :]
        if self.face_half is not None:  # held just inside the edge, as calibrate does
            edge = (self.face_half * (1.0 - FACE_MARGIN))[idx][..., None]
            xy = torch.minimum(torch.maximum(xy, -edge), edge)
        p = torch.cat([xy, layer[..., None], e[..., None]], dim=-1)
        if core is None:
            if self.cell_shift is not None:
                p = self.cell_step(p, torch.ones_like(real), energies, cog, inc)
            return self.compact(p, p[..., 3] > 0)
        # one point per layer on the axis with the core energy, after the layer's other points
        layers = torch.cumsum(torch.ones_like(core), dim=1) - 1.0
        axis = torch.stack([torch.zeros_like(core), torch.zeros_like(core), layers, core], dim=-1)
        p = torch.cat([p, axis], dim=1)
        if self.cell_shift is not None:
            free = torch.cat([torch.ones_like(real), torch.zeros_like(core, dtype=torch.bool)], dim=1)
            p = self.cell_step(p, free, energies, cog, inc)
        keep = p[..., 3] > 0
        order = stable_argsort(torch.where(keep, p[..., 2], torch.full_like(p[..., 2], float(self.n_layers))))
        p = torch.gather(p, 1, order[..., None].expand(-1, -1, 4))
        keep = torch.gather(keep, 1, order)
        return self.compact(p, keep)

    def cell_step(self, p: Tensor, free: Tensor, energies: Tensor, cog: Tensor, inc: Tensor | None) -> Tensor:
        """The cell-energy calibration (:func:`~showerforge.data.points_preprocess.calibrate`, last
        step): each cell's energy mapped, layers rescaled, the ``free`` points shifted to ``cog``."""
        if inc is None or self.cell_shift is None:
            raise ValueError("the cell-energy calibration needs the incident energies")
        idx = torch.clamp(p[..., 2], 0.0, float(self.n_layers - 1)).to(torch.long)
        side, width = self.cell_side[idx], self.cell_mm[idx]
        col = torch.floor(p[..., 0] / width + 0.5 * side)
        row = torch.floor(p[..., 1] / width + 0.5 * side)
        inside = (col >= 0) & (col < side) & (row >= 0) & (row < side) & (p[..., 3] > 0)
        key = torch.where(inside, self.cell_offset[idx] + row * side + col, torch.full_like(col, float(self.n_cells)))
        key = key.to(torch.long)
        e = torch.where(inside, p[..., 3], torch.zeros_like(col))
        sums = torch.zeros(p.shape[0], self.n_cells + 1, dtype=p.dtype).scatter_add(1, key, e)
        mine = torch.gather(sums, 1, key)
        on = inside & (mine > 0)
        log_e = torch.log10(torch.where(on, mine, torch.ones_like(mine)))
        lo, step, nodes = self.cell_grid
        u = torch.clamp((log_e - lo) / step, 0.0, float(nodes - 1))
        i0 = torch.clamp(torch.floor(u), 0.0, float(nodes - 2))
        frac = u - i0
        k = (inc[:, None] >= self.cell_energy_edges[None, :]).to(torch.long).sum(dim=1)
        base = (k * nodes)[:, None] + i0.to(torch.long)
        shift = self.cell_shift[base] * (1.0 - frac) + self.cell_shift[base + 1] * frac
        e = e * torch.where(on, torch.pow(10.0, shift), torch.ones_like(shift))
        layer_sums = torch.zeros_like(energies).scatter_add(1, idx, e)
        scale = torch.where(
            layer_sums > 0,
            energies / torch.where(layer_sums > 0, layer_sums, torch.ones_like(layer_sums)),
            0.0 * energies,
        )
        e = e * torch.gather(scale, 1, idx)
        ef = torch.where(free, e, torch.zeros_like(e))
        total = ef.sum(dim=1, keepdim=True)
        whole = e.sum(dim=1, keepdim=True)
        moment = (e[..., None] * p[..., :2]).sum(dim=1)
        safe = torch.where(total > 0, total, torch.ones_like(total))
        move = torch.where(total > 0, (cog * whole - moment) / safe, torch.zeros_like(cog))
        xy = p[..., :2] + torch.where(free[..., None], move[:, None, :], torch.zeros_like(p[..., :2]))
        if self.face_half is not None:
            edge = (self.face_half * (1.0 - FACE_MARGIN))[idx][..., None]
            xy = torch.minimum(torch.maximum(xy, -edge), edge)
        return torch.cat([xy, p[..., 2:3], e[..., None]], dim=-1)

    @staticmethod
    def compact(p: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
        """Kept points first, in their order; the rest zero. Returns ``(points, num_points)``."""
        slot = slot_index(p)
        order = stable_argsort(torch.where(keep, slot, slot + slot.shape[1]))
        p = torch.gather(p, 1, order[..., None].expand(-1, -1, p.shape[2]))
        num = keep.to(torch.long).sum(dim=1)
        return torch.where((slot < num[:, None])[..., None], p, torch.zeros_like(p)), num


class PointGraph(nn.Module):
    """(summary noise, point noise, incident energy) -> calibrated points: the ``points`` layout.

    Args:
        surrogate: a loaded point-cloud model (:class:`showerforge.generate.calo_points.PointSurrogate`).
        steps, solver: the point flow's ODE sampler, unrolled into the graph (the shower flow
            keeps its own ``summary_steps`` and solver).

    Inputs (float32): ``summary_noise`` (N, n_summary) and ``noise`` (N, n_slots, 4) standard
    normal (``n_slots`` = the model's ``n_particles``; only the first ``num_points`` slots of a row
    are used), ``incident_energy`` (N, 1) MeV. Outputs: ``points`` (N, n_slots, 4) float32 x, y
    mm, layer index, energy MeV, sorted by depth, zero beyond ``num_points``; ``num_points`` (N,)
    int64. With the core split the output has ``n_slots + L`` slots (one core point per layer).
    """

    def __init__(self, surrogate: Any, *, steps: int, solver: str) -> None:
        super().__init__()
        pre: PointsPreprocessor = surrogate.preprocessing
        self.model = surrogate.model
        self.steps, self.solver = int(steps), str(solver)
        self.cond_mu, self.cond_sd = float(pre.cond_mu), float(pre.cond_sd)
        self.n_slots = int(self.model.config["n_particles"])
        self.n_core = pre.n_layers if pre.core else 0
        self.n_out = self.n_slots + self.n_core
        self.n_summary = int(pre.n_summary)
        self.summaries = SummaryDecoding(pre, cap=self.n_slots)
        self.calibration = PointCalibration(pre, face_half_widths(surrogate.geometry, pre.n_layers), surrogate.geometry)
        self.min_opset = 16 if self.calibration.cell_shift is not None else 13  # ScatterElements with a sum
        self.cog_scale: Tensor | None = None if pre.cog_scale is None else _f64(pre.cog_scale)
        self.cog_shift: Tensor | None = None if pre.cog_shift is None else _f64(pre.cog_shift)

    def condition(self, inc: Tensor) -> Tensor:
        """Incident energies (N,) float64 MeV -> the energy feature (N, 1) float32."""
        return ((torch.log(inc / 1e3) - self.cond_mu) / self.cond_sd)[:, None].to(torch.float32)

    def forward(self, summary_noise: Tensor, noise: Tensor, incident: Tensor) -> tuple[Tensor, Tensor]:
        inc = incident.reshape(-1).to(torch.float64)
        c0 = self.condition(inc)
        feats = self.model.summaries_from_noise(summary_noise, c0)
        counts, energies, cog, core, encoded = self.summaries(feats, inc)
        count = counts.sum(dim=1, keepdim=True)
        # the point flow runs on the batch's widest shower (the pooled sums are divided by the
        # model's n_particles, so a shower's points do not depend on the width it is padded to)
        slots = torch.arange(self.n_slots)
        width = count.max().to(torch.long)
        x0 = torch.index_select(noise, 1, slots[slots < width])
        mask = slot_index(x0).to(count.dtype) < count
        cond = torch.cat([c0, encoded], dim=1)
        x = self.model.sample_from_noise([x0], cond, steps=self.steps, solver=self.solver, mask=mask)
        if self.cog_scale is not None:  # the centre-of-gravity calibration: imposed, not conditioned on
            cog = cog * self.cog_scale
            if self.cog_shift is not None:
                cog = cog + self.cog_shift
        points, num = self.calibration(x, counts, energies, cog, core if self.n_core else None, inc)
        # back to n_out slots: slot w + n_core of the extended points is zero
        ext = torch.cat([points, torch.zeros_like(points[:, :1])], dim=1)
        out_slots = torch.arange(self.n_out)
        return torch.index_select(ext, 1, torch.minimum(out_slots, width + self.n_core)).to(torch.float32), num


def points_difference(a: np.ndarray, b: np.ndarray, *, reach: int = 2) -> tuple[float, int]:
    """Largest relative difference between padded point showers ``a`` and ``b`` (N, n, 4), and the swaps.

    Per point, ``max over columns |a - b| / max(|b|, floor)`` (:data:`POINT_FLOORS`) against the
    point of ``b`` in the same slot or, if closer, in a slot up to ``reach`` away in the same
    layer: two points whose depths agree to float rounding may swap places in the depth order
    without changing the shower (the layer's energy scale and the centre of gravity are sums).

    Returns:
        ``(max_rel, swapped)``: the largest difference over points and the number of points that
        matched a neighbouring slot better than their own.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    floor = np.asarray(POINT_FLOORS)
    n = a.shape[1]
    best = np.full(a.shape[:2], np.inf)
    own = best
    for shift in range(-reach, reach + 1):
        lo, hi = max(0, -shift), min(n, n - shift)
        d = np.full(a.shape[:2], np.inf)
        bs = b[:, lo + shift : hi + shift]
        rel = (np.abs(a[:, lo:hi] - bs) / np.maximum(np.abs(bs), floor)).max(axis=2)
        d[:, lo:hi] = np.where(a[:, lo:hi, 2] == bs[..., 2], rel, np.inf)
        if shift == 0:
            own = d
        best = np.minimum(best, d)
    return float(best.max(initial=0.0)), int((best < own).sum())
