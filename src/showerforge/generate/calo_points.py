"""Batched, seeded sampling of trained point-cloud models (``cfm-points``) into point files.

A generated shower is built in four steps:

1. its summaries from the shower flow given the incident energy: points and energy per layer,
   centre of gravity (:meth:`~showerforge.models.points.PointShowerFlow.sample_summaries`);
2. the points from the point flow given the energy and the summaries, for a mask of as many real
   slots as the drawn points (showers of similar size are solved together);
3. the inverse preprocessing to mm, depth and MeV;
4. the calibrations (:func:`showerforge.data.points_preprocess.calibrate`): points per layer,
   energy per layer and centre of gravity equal the drawn summaries exactly; with a fitted radial
   energy calibration, each point's energy is first weighted by its incident-energy bin, layer and
   distance from the axis; with a fitted centre-of-gravity calibration, the imposed centre of
   gravity is the drawn one times ``cog_scale`` plus ``cog_shift`` (the point flow is conditioned
   on the drawn one); with a fitted cell-energy calibration, last, the energy of each cell (all its
   points alike) is mapped to the training showers' cell spectrum, and the layer energies and the
   centre of gravity are imposed again.

Between steps 1 and 2 the occupancy calibration (fitted by :meth:`PointSurrogate.calibrate_sampler`
after training and distillation) changes the number of points of each layer so that, projected
onto cells, the model hits as many cells as Geant4 does at the drawn number of points; the point
flow is conditioned on the numbers it generates.

A model that draws its own number of points (``ar-tokens``: points one after the other, in
descending energy, until its stop decision or the length cap) is conditioned on the incident
energy alone: its points are decoded (step 3) and written as generated, without summaries or
calibrations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from showerforge.data.points import DEFAULT_THRESHOLD_MIP, PointClouds, PointsWriter, points_to_cells
from showerforge.data.points_preprocess import (
    CELL_TARGET_SHOWERS,
    PointsPreprocessor,
    Summaries,
    calibrate,
    cell_quantiles,
    fit_cell_energy,
    fit_occupancy,
    fit_radial,
    occupancy_table,
    refine_cell_energy,
    refine_occupancy,
    refine_radial,
)
from showerforge.errors import UserError
from showerforge.generate.common import CPU_SLICE, SampleOptions, start_generation
from showerforge.geometry import Geometry
from showerforge.runs.checkpoint import (
    CheckpointError,
    LoadedRun,
    build_weights,
    checkpoint_path,
    read_checkpoint,
    run_fields,
)
from showerforge.training.calo_points import DATA_KIND

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "PointSurrogate",
    "load_points_model",
    "sample_points",
    "generate_points",
    "point_batches",
    "CPU_POINT_BUDGET",
]


@dataclass(kw_only=True)
class PointSurrogate(LoadedRun):
    """A trained point-cloud model ready to sample: the :class:`LoadedRun` fields, and

    Attributes:
        preprocessing: the fitted :class:`PointsPreprocessor`.
        geometry: the detector of the training points.
    """

    preprocessing: PointsPreprocessor
    geometry: Geometry

    export_layouts: ClassVar[tuple[str, ...]] = ("points",)
    calibration_refinements: ClassVar[int] = 3

    def _summaries(
        self, energies_mev: np.ndarray, seed: int, occupancy: bool = True, cog: bool = True
    ) -> tuple[np.ndarray, Summaries]:
        pre = self.preprocessing
        c0 = torch.from_numpy(pre.condition(energies_mev)).to(self.device)
        gen = torch.Generator(device=self.device).manual_seed(int(seed))
        feats = self.model.sample_summaries(c0, generator=gen).float().cpu().numpy()  # type: ignore[operator]
        summaries = pre.decode_summaries(feats, energies_mev)
        if occupancy:
            cap = int(self.model.config["n_particles"])
            summaries = Summaries(
                pre.calibrated_counts(summaries.counts, cap), summaries.energies, summaries.cog, summaries.core
            )
        # the point flow is conditioned on the summaries as drawn *after* rounding
        cond = np.concatenate([c0.cpu().numpy(), pre.encode_summaries(summaries, energies_mev)], axis=1)
        if cog and pre.cog_scale is not None:  # the centre-of-gravity calibration: imposed, not conditioned on
            imposed = summaries.cog * pre.cog_scale + (0.0 if pre.cog_shift is None else pre.cog_shift)
            summaries = Summaries(summaries.counts, summaries.energies, imposed, summaries.core)
        return cond, summaries

    def draw_conditions(
        self, n: int, seed: int, energies_mev: np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` conditions as generation draws them (energies from the training range, log-uniform,
        or resampled from ``energies_mev``) and the mask (n, n_particles) of the drawn number of points."""
        rng = np.random.default_rng(seed)
        if energies_mev is None:
            lo, hi = self.energy_range_mev
            energies_mev = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
        else:  # resampled, as for voxel models
            energies_mev = rng.choice(np.asarray(energies_mev, np.float64).reshape(-1), n)
        cond, summaries = self._summaries(np.asarray(energies_mev, np.float64), seed)
        counts = summaries.n_points
        width = int(self.model.config["n_particles"])  # the model's noise shape; counts never exceed it
        return torch.from_numpy(cond), torch.from_numpy(np.arange(width)[None, :] < counts[:, None])

    @property
    def energy_range_mev(self) -> tuple[float, float]:
        """Incident energies of the training data (MeV), from the preprocessing."""
        pre = self.preprocessing
        lo = float(np.exp(pre.cond_mu - 1.8 * pre.cond_sd) * 1e3)
        hi = float(np.exp(pre.cond_mu + 1.8 * pre.cond_sd) * 1e3)
        return lo, hi

    def sample(
        self,
        energies: Any,
        *,
        seed: int = 0,
        steps: int | None = None,
        solver: str | None = None,
        batch_size: int = 1000,
        temperature: float | None = None,
        top_k: int | None = None,
    ) -> PointClouds:
        """One shower per incident energy (MeV), as :class:`PointClouds` (x, y mm; layer; energy MeV).

        ``steps``, ``solver`` set an ODE model's sampler, ``temperature``, ``top_k`` an autoregressive one's.
        """
        return sample_points(
            self,
            np.asarray(energies, np.float64).reshape(-1),
            seed=seed,
            steps=steps,
            solver=solver,
            batch_size=batch_size,
            temperature=temperature,
            top_k=top_k,
        )

    def calibrate_sampler(
        self,
        target: PointClouds | None = None,
        *,
        n: int = 1000,
        seed: int = 0,
        progress: Callable[[int], Any] | None = None,
        refinements: int | None = None,
    ) -> dict[str, Any] | None:
        """Fit the occupancy, radial energy, centre-of-gravity and cell-energy calibrations (module
        docstring) and return the checkpoint entries they change.

        Args:
            target: reference showers (the training file) whose cells-against-points table, radial
                energy profile, mean and spread of the cells' centre of gravity (first 5,000 showers)
                and cell-energy spectrum (first :data:`CELL_TARGET_SHOWERS`) are the targets;
                default: those stored with the model (a student inherits its teacher's).
            n: showers the model generates, uncalibrated, to measure its own table.
            seed: seed of those showers.
            progress: called with the number of showers generated after each batch.
            refinements: further rounds of ``n`` calibrated showers each
                (:func:`~showerforge.data.points_preprocess.refine_occupancy` and
                :func:`~showerforge.data.points_preprocess.refine_radial`; default
                :attr:`calibration_refinements`).

        Returns:
            ``{"preprocessing": state}`` with the fitted calibration, or ``None`` for a model without
            summaries (it draws its own number of points) or without a target.
        """
        pre = self.preprocessing
        if getattr(self.model, "own_length", False):
            return None
        n_layers = pre.n_layers
        if target is not None:
            pre.cells_target = pre.cells_target_of(target.select(np.arange(min(len(target), CELL_TARGET_SHOWERS))))
            if len(target) > 5000:
                target = target.select(np.arange(5000))
            t_counts = pre.summaries_of(target).counts
            pre.occupancy_target = {
                **occupancy_table(t_counts, _cells_per_layer(target, n_layers)),
                "threshold_mip": DEFAULT_THRESHOLD_MIP,
                "n_showers": len(target),
            }
            pre.radial_target = pre.radial_target_of(target, seed=seed)
            cells_cog = _cell_cog(target)
            seen = cells_cog[np.isfinite(cells_cog).all(axis=1)]  # showers with cells
            pre.cog_target = (
                {"mean_mm": seen.mean(axis=0).tolist(), "sd_mm": seen.std(axis=0).tolist()} if len(seen) > 1 else None
            )
        if pre.occupancy_target is None:
            return None
        if not any(pre.occupancy_target["log_n"]):  # too few reference showers in every layer
            pre.occupancy = pre.radial = pre.cog_scale = pre.cog_shift = pre.cells = None
            return {"preprocessing": pre.state()}
        rng = np.random.default_rng(seed)
        cells_target = pre.cells_target if isinstance(pre.cells_target, dict) else None
        if cells_target is not None and cells_target.get("incident_quantiles_mev"):  # the target's spectrum
            q = np.asarray(cells_target["incident_quantiles_mev"], np.float64)
            energies = np.interp(rng.uniform(0.0, 1.0, int(n)), (np.arange(len(q)) + 0.5) / len(q), q)
        else:
            lo, hi = self.energy_range_mev
            energies = np.exp(rng.uniform(np.log(lo), np.log(hi), int(n)))
        pre.cells = None
        own = sample_points(self, energies, seed=seed, progress=progress, occupancy=False, radial=False, cog=False)
        asked = self._summaries(energies, seed, occupancy=False)[1].counts  # as drawn (before any is dropped)
        generated = occupancy_table(asked, _cells_per_layer(own, n_layers))
        pre.occupancy = {**fit_occupancy(pre.occupancy_target, generated), "n_showers": int(n), "seed": int(seed)}
        if pre.radial_target is not None:
            pre.radial = {**fit_radial(pre.radial_target, pre.generated_profile(own)), "n_showers": int(n)}
        cog_target = pre.cog_target if isinstance(pre.cog_target, dict) else None
        pre.cog_scale = pre.cog_shift = None
        if cog_target is not None:
            pre.cog_scale, pre.cog_shift = _cog_step(np.ones(2), np.zeros(2), cog_target, own)
        refinements = self.calibration_refinements if refinements is None else int(refinements)
        for _ in range(refinements):
            own = sample_points(self, energies, seed=seed, progress=progress)
            calibrated = occupancy_table(asked, _cells_per_layer(own, n_layers))
            pre.occupancy = refine_occupancy(pre.occupancy, pre.occupancy_target, calibrated)
            if pre.radial is not None and pre.radial_target is not None:
                pre.radial = refine_radial(pre.radial, pre.radial_target, pre.generated_profile(own))
            if pre.cog_scale is not None and cog_target is not None:
                pre.cog_scale, pre.cog_shift = _cog_step(pre.cog_scale, pre.cog_shift, cog_target, own)
            if cells_target is not None:  # fitted on showers with the other calibrations, then refined
                edges = cells_target["energy_edges_mev"]
                if pre.cells is None:
                    pre.cells = {**fit_cell_energy(cells_target, cell_quantiles(own, edges)), "n_showers": int(n)}
                else:
                    pre.cells = refine_cell_energy(pre.cells, cells_target, cell_quantiles(own, edges))
        pre.occupancy["refinements"] = refinements
        if pre.radial is not None:
            pre.radial["refinements"] = refinements

        return {"preprocessing": pre.state()}


def sample_points(
    surrogate: PointSurrogate,
    energies_mev: np.ndarray,
    *,
    seed: int = 0,
    batch_size: int = 1000,
    steps: int | None = None,
    solver: str | None = None,
    progress: Callable[[int], Any] | None = None,
    backend: str = "torch",
    temperature: float | None = None,
    top_k: int | None = None,
    occupancy: bool = True,
    radial: bool = True,
    cog: bool = True,
    cells: bool = True,
) -> PointClouds:
    """Generate showers in memory (see the module docstring); same seed and settings, same showers.

    ``steps``, ``solver`` set an ODE model's sampler, ``temperature``, ``top_k`` an autoregressive
    one's; ``occupancy=False``, ``radial=False``, ``cog=False`` and ``cells=False`` leave out the
    occupancy, the radial energy, the centre-of-gravity and the cell-energy calibrations (to fit them).
    """
    if backend != "torch":
        raise UserError(f"--backend {backend}: point-cloud models are generated with the torch backend")
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    e = np.asarray(energies_mev, np.float64).reshape(-1)
    if e.size and (not np.all(np.isfinite(e)) or e.min() <= 0):
        raise UserError("incident energies must be finite and > 0 MeV")
    model, dev = surrogate.model, surrogate.device
    model.eval()
    settings = model.sampler_settings(steps=steps, solver=solver, temperature=temperature, top_k=top_k)
    if getattr(model, "own_length", False):
        return _sample_own_length(surrogate, e, seed, batch_size, settings, progress)
    cond_all, summaries = surrogate._summaries(e, seed, occupancy, cog)
    counts = summaries.n_points
    order = np.argsort(counts, kind="stable")  # showers of similar size share a padded call
    points: list[np.ndarray] = [np.zeros((0, 4))] * len(e)
    gen = torch.Generator(device=dev).manual_seed(int(seed) + 1)
    cpu = dev.type == "cpu"
    step = min(batch_size, CPU_SLICE) if cpu else batch_size
    done = 0
    for idx in point_batches(counts[order], step, CPU_POINT_BUDGET if cpu else None, order):
        width = max(1, int(counts[idx].max()))
        mask = np.arange(width)[None, :] < counts[idx, None]
        cond = torch.from_numpy(cond_all[idx]).to(dev)
        tmask = torch.from_numpy(mask).to(dev)
        noise = [torch.randn((len(idx), width, 4), generator=gen, device=dev)]
        x = model.sample_from_noise(noise, cond, steps=steps, solver=solver, mask=tmask)
        for j, pts in zip(idx, surrogate.preprocessing.decode_points(x.float().cpu().numpy(), mask)):
            points[j] = pts
        done += len(idx)
        if progress is not None:
            progress(len(idx))
    pre = surrogate.preprocessing
    return calibrate(
        points, summaries, e, surrogate.geometry, pre.radial if radial else None, pre.cells if cells else None
    )


CPU_POINT_BUDGET = 4096
"""Padded points per point-flow call on CPU, so that a call's activations stay in the processor's
cache (ILD photons, ~2,400 points, one thread: 160 ms per shower with this budget, 190 ms with 8,192,
330 ms with 65,536 and 480 ms with calls of up to 512 showers)."""


def point_batches(sorted_counts: np.ndarray, step: int, budget: int | None, order: np.ndarray) -> list[np.ndarray]:
    """Showers (indices from ``order``, sorted by size ``sorted_counts``) cut into calls of at most
    ``step`` showers and, with a ``budget``, at most ``budget`` padded points (at least one shower)."""
    out, lo, n = [], 0, len(order)
    while lo < n:
        hi = min(n, lo + step)
        if budget is not None:  # sizes increase along the order: the last row is the widest
            fit = np.arange(1, hi - lo + 1) * np.maximum(sorted_counts[lo:hi], 1) <= budget
            hi = lo + max(1, int(fit.sum()))
        out.append(order[lo:hi])
        lo = hi
    return out


def _cell_cog(clouds: PointClouds) -> np.ndarray:
    """(N, 2) energy-weighted x, y (mm) of each shower's cells above the readout threshold, at the
    cells' centres (what a detector sees, as the evaluation's ``cog_x``, ``cog_y``); NaN for a
    shower without cells."""
    return points_to_cells(clouds, threshold_mip=DEFAULT_THRESHOLD_MIP).centre_of_gravity()


COG_SCALE_RANGE = (0.5, 2.0)
"""Limits of the centre-of-gravity calibration's factors."""
COG_MAX_SHIFT_MM = 1.0
"""Limit of the centre-of-gravity calibration's shifts (mm)."""


def _cog_step(
    scale: np.ndarray, shift: np.ndarray | None, target: dict[str, Any], own: PointClouds
) -> tuple[np.ndarray, np.ndarray]:
    """The centre-of-gravity calibration ``cog * scale + shift`` after one more step, from ``own``
    showers made with it: per axis, the scale times the ratio of the target's spread of the cells'
    centre of gravity to that of ``own``, the shift plus the difference of their means."""
    cells_cog = _cell_cog(own)
    seen = cells_cog[np.isfinite(cells_cog).all(axis=1)]  # showers with cells
    sd = seen.std(axis=0) if len(seen) > 1 else np.zeros(2)
    mean = seen.mean(axis=0) if len(seen) else np.asarray(target["mean_mm"], np.float64)
    ratio = np.divide(np.asarray(target["sd_mm"], np.float64), sd, out=np.ones(2), where=sd > 0)
    base = np.zeros(2) if shift is None else np.asarray(shift, np.float64)
    new_shift = base + np.asarray(target["mean_mm"], np.float64) - mean
    return (
        np.clip(np.asarray(scale, np.float64) * ratio, *COG_SCALE_RANGE),
        np.clip(new_shift, -COG_MAX_SHIFT_MM, COG_MAX_SHIFT_MM),
    )


def _cells_per_layer(clouds: PointClouds, n_layers: int) -> np.ndarray:
    """(N, L) cells above the default readout threshold per layer."""
    hits = points_to_cells(clouds, threshold_mip=DEFAULT_THRESHOLD_MIP)
    return np.bincount(hits.event * n_layers + hits.layer, minlength=len(clouds) * n_layers).reshape(-1, n_layers)


def _sample_own_length(
    surrogate: PointSurrogate,
    e: np.ndarray,
    seed: int,
    batch_size: int,
    settings: dict[str, Any],
    progress: Callable[[int], Any] | None,
) -> PointClouds:
    """Showers of a model that draws its own number of points (conditioned on the energy alone)."""
    model, dev, pre = surrogate.model, surrogate.device, surrogate.preprocessing
    cond_all = pre.condition(e)
    gen = torch.Generator(device=dev).manual_seed(int(seed) + 1)
    points: list[np.ndarray] = []
    for lo in range(0, len(e), batch_size):
        cond = torch.from_numpy(cond_all[lo : lo + batch_size]).to(dev)
        x, mask = model.sample_set(cond, generator=gen, **settings)  # type: ignore[operator]
        points += pre.decode_points(x.float().cpu().numpy(), mask.cpu().numpy())
        if progress is not None:
            progress(len(cond))
    flat = np.concatenate(points) if points else np.zeros((0, 4))
    flat[:, 2] = np.floor(flat[:, 2])  # continuous depth -> layer index
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in points])])
    return PointClouds(flat.astype(np.float32), offsets, e, surrogate.geometry)


def generate_points(
    run_dir: str | Path, energies_mev: np.ndarray, out_path: str | Path, **options: Unpack[SampleOptions]
) -> Path:
    """Sample a trained point-cloud run at the given energies and write a point file (atomically)."""
    run = start_generation(run_dir, out_path, options, load_points_model, caller="generate_points")
    surrogate = run.surrogate
    assert isinstance(surrogate, PointSurrogate)
    if run.sample_kwargs["progress"] is not None:
        run.sample_kwargs["progress"](0)
    clouds = sample_points(surrogate, np.asarray(energies_mev, np.float64), **run.sample_kwargs)
    with PointsWriter(out_path, len(clouds), surrogate.geometry, run.attrs) as w:
        w.add(clouds)
    return Path(out_path)


def load_points_model(
    run_dir_or_checkpoint: str | Path, device: str | torch.device = "cpu", *, ema: bool = True
) -> PointSurrogate:
    """Load a point-cloud surrogate written by :func:`showerforge.training.calo_points.train_points`
    (``torch.load(weights_only=True)``).

    Raises:
        CheckpointError: missing, unsafe, not a point-cloud checkpoint, or inconsistent.
    """
    path = checkpoint_path(run_dir_or_checkpoint)
    ckpt = read_checkpoint(path, map_location="cpu")
    if ckpt["data_kind"] != DATA_KIND:
        raise CheckpointError(
            f"{path}: holds a {ckpt['data_kind']} model ({ckpt.get('model_name')}), not a {DATA_KIND} one; "
            "load it with showerforge.load, which picks the loader of its kind"
        )
    try:
        model = build_weights(ckpt, ema=ema)
        geo = ckpt["geometry"]
        geometry = Geometry.from_dict(geo) if isinstance(geo, dict) else Geometry.from_json(str(geo))
        pre = PointsPreprocessor(geometry.n_layers, ckpt["preprocessing"])
    except (KeyError, ValueError, RuntimeError, TypeError) as err:
        raise CheckpointError(f"{path}: inconsistent checkpoint ({err})") from None
    summaries = not getattr(model, "own_length", False)
    if summaries and (len(pre.sum_mu) != pre.n_summary or int(model.config.get("n_summary", -1)) != pre.n_summary):
        raise CheckpointError(
            f"{path} [preprocessing]: {len(pre.sum_mu)} shower summaries, this version of cfm-points uses "
            f"{pre.n_summary} ({geometry.n_layers} layers); the run was trained with an earlier layout: train it again"
        )
    model.to(device).eval()
    return PointSurrogate(preprocessing=pre, geometry=geometry, **run_fields(ckpt, path, model))
