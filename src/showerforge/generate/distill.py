"""Distil a trained flow-matching run into a few-step student (``showerforge distill``).

Two phases, both resumable:

1. **Teacher trajectories**: draw conditions (showers: incident energies; jets: type, pT and
   multiplicity, as generation does) and noise, integrate the teacher's ODE and store its states at
   ``t = k / G`` (``G`` grid steps) in ``teacher_trajectories.h5`` in the output run directory,
   written in blocks so an interrupted run continues where it stopped. A grid of ``G`` steps
   serves every student whose ``K`` divides ``G`` (``--trajectories`` reuses a file).
2. **Student training** with the shared training loop (:func:`showerforge.training.fit.fit`:
   AdamW, EMA, one atomic checkpoint per epoch, resume) on the trajectory-matching loss of
   :mod:`showerforge.models.distill`, starting from the teacher's weights.

The result is a run directory like any other: the same registered model as the teacher, with a
``K``-step Euler sampler as its default and a ``distillation`` record in its config, loadable by
``generate``, ``evaluate``, ``load`` and ``export``.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import torch
from torch import Tensor

from showerforge.data.io import check_not_input, check_writable_dir
from showerforge.errors import UserError
from showerforge.generate.calo_points import CPU_POINT_BUDGET, point_batches
from showerforge.generate.common import calibrate_run
from showerforge.models.base import require_noise_map
from showerforge.models.distill import flow_stages, pack, student_config, teacher_states, trajectory_loss, unpack
from showerforge.models.registry import get_spec
from showerforge.runs.checkpoint import CHECKPOINT_NAME, LoadedRun, file_sha256, read_checkpoint
from showerforge.training.fit import PreparedData, TrainConfig, TrainOptions, TrainResult, fit, split_train_options

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["DEFAULT_DISTILL", "TRAJECTORIES_NAME", "distill", "teacher_trajectories"]

DEFAULT_DISTILL = TrainConfig(epochs=10, lr=5e-4, val_fraction=0.05, warmup_steps=100)
"""Training settings of a student: a short fine-tuning of the teacher's weights (the settings of
``ds2-electron-1step``: 10 epochs on 30k trajectories, peak lr 5e-4)."""

TRAJECTORIES_NAME = "teacher_trajectories.h5"
_BLOCK = 256  # rows per teacher call (cache-sized on CPU) and per written block

# checkpoint entries that belong to a training run, not to the model it produced
_RUN_ENTRIES = {
    "model",
    "ema",
    "ema_n_averaged",
    "optimizer",
    "history",
    "epoch",
    "step",
    "model_config",
    "model_name",
    "train_config",
    "format",
    "format_version",
    "showerforge_version",
    "torch_version",
}


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def teacher_trajectories(
    teacher: LoadedRun,
    path: str | Path,
    *,
    n: int,
    grid_steps: int,
    seed: int = 0,
    energies_mev: np.ndarray | None = None,
    progress: bool = True,
) -> Path:
    """Write (or complete) the teacher's ODE states at ``t = k / grid_steps`` for ``n`` rows.

    The file holds ``cond`` (n, n_cond), ``mask`` (jets), and per stage ``stage{i}``
    (n, grid_steps + 1, *shape), float32; ``rows_done`` says how many rows are complete. A file
    written for another teacher, grid, size or seed is refused.
    """
    path = Path(path)
    ident = {"teacher_sha256": teacher.sha256, "grid_steps": int(grid_steps), "n": int(n), "seed": int(seed)}
    model = teacher.model
    stages = flow_stages(model)
    if not path.exists():
        cond, mask = teacher.draw_conditions(n, seed, energies_mev)
        if cond.shape[0] != n:
            raise ValueError(f"{teacher.name}: draw_conditions gave {cond.shape[0]} rows for {n}")
        if mask is not None:  # rows by set size: a teacher block and a training batch pad to their own largest set
            order = torch.argsort(mask.sum(dim=1), stable=True)
            cond, mask = cond[order], mask[order]
        tmp = path.with_name(path.name + ".part")
        with h5py.File(tmp, "w") as f:
            f.create_dataset("cond", data=cond.numpy().astype(np.float32))
            if mask is not None:
                f.create_dataset("mask", data=mask.numpy())
            for i, (flow, _) in enumerate(stages):
                shape = (n, grid_steps + 1, *flow.event_shape)
                packing = {"compression": "lzf"} if mask is not None else {}  # padded slots are zeros
                f.create_dataset(f"stage{i}", shape=shape, dtype="f4", chunks=(min(n, 64), *shape[1:]), **packing)
            f.attrs.update({**ident, "rows_done": 0, "teacher": str(teacher.checkpoint)})
        tmp.replace(path)
    with h5py.File(path, "r+") as f:
        found = {k: (str(f.attrs[k]) if k == "teacher_sha256" else int(f.attrs[k])) for k in ident if k in f.attrs}
        if found != ident:
            raise UserError(
                f"{path}: teacher trajectories of another run or setting ({found}); expected {ident}; "
                "choose a new output directory or pass the matching --trajectories"
            )
        done = int(f.attrs["rows_done"])
        if done >= n:
            return path
        dev = teacher.device
        cond_all = torch.from_numpy(f["cond"][:]).to(dev)
        mask_all = torch.from_numpy(f["mask"][:]).to(dev) if "mask" in f else None
        t0, start = time.perf_counter(), done
        said = t0
        _say(progress, f"teacher trajectories: {done}/{n} rows done, {grid_steps} grid steps -> {path}")
        for lo in range(done, n, _BLOCK):
            hi = min(lo + _BLOCK, n)
            gen = torch.Generator(device=dev).manual_seed(seed * 1_000_003 + lo)  # per block: resumable
            cond = cond_all[lo:hi]
            mask = None if mask_all is None else mask_all[lo:hi]
            noise = model.draw_noise(hi - lo, generator=gen, like=cond)
            parts = [np.arange(hi - lo)]
            if mask is not None and dev.type == "cpu":  # rows sorted by size: calls within the point budget
                parts = point_batches(mask.sum(dim=1).cpu().numpy(), hi - lo, CPU_POINT_BUDGET, parts[0])
            for rows in parts:
                a, b = int(rows[0]), int(rows[-1]) + 1
                m, z = (None, [t[a:b] for t in noise]) if mask is None else (mask[a:b], [t[a:b] for t in noise])
                if m is not None:  # solve at the part's largest set; padded slots stay zero
                    m = m[:, : max(1, int(m.sum(dim=1).max()))]
                    z = [t[:, : m.shape[1]] if t.dim() == 3 else t for t in z]
                states = teacher_states(model, z, cond[a:b], grid_steps, m)
                for i, s in enumerate(states):
                    full = f[f"stage{i}"].shape
                    if s.dim() == 4 and s.shape[2] < full[2]:
                        s = torch.nn.functional.pad(s, (0, 0, 0, full[2] - s.shape[2]))
                    f[f"stage{i}"][lo + a : lo + b] = s.float().cpu().numpy()
            f.attrs["rows_done"] = hi
            f.flush()
            now = time.perf_counter()
            if now - said >= 30.0 or hi == n:  # after a block, at most one line per 30 s (also in a log file)
                said, rate = now, (hi - start) / max(1e-9, now - t0)
                _say(progress, f"teacher trajectories: {hi}/{n} rows, {rate:.1f} rows/s, ETA {(n - hi) / rate:.0f} s")
    return path


class TrajectoryData:
    """Teacher trajectories as training rows (:class:`~showerforge.training.fit.PreparedData`)."""

    rate_key = "samples_per_s"

    def __init__(
        self,
        path: Path,
        teacher: LoadedRun,
        ckpt: dict[str, Any],
        steps: int,
        cfg: TrainConfig,
        device: torch.device,
    ) -> None:
        with h5py.File(path, "r") as f:
            grid = int(f.attrs["grid_steps"])
            if grid % steps:
                raise UserError(f"{path}: trajectories on a {grid}-step grid cannot train a {steps}-step student")
            every = grid // steps
            cols = list(range(0, grid + 1, every))
            n = int(f.attrs["rows_done"])
            parts = [torch.from_numpy(f[f"stage{i}"][:n, cols]) for i in range(len(flow_stages(teacher.model)))]
            cond = torch.from_numpy(f["cond"][:n])
            mask = torch.from_numpy(f["mask"][:n]) if "mask" in f else None
        x = pack(parts)
        del parts
        self.model, self.steps = teacher.model, steps
        g = torch.Generator().manual_seed(cfg.seed)
        order = torch.randperm(n, generator=g)
        # sets: fewer validation rows (each is as wide as the largest set), training rows by set size
        n_val = min(int(round(cfg.val_fraction * n)), 2000 if mask is None else 256)
        val, train = order[:n_val], order[n_val:]
        if mask is not None:
            train = train.sort().values
        self.x, self.cond, self.mask = (
            x[train].to(device),
            cond[train].to(device),
            None if mask is None else mask[train].to(device),
        )
        self.val = (
            self._rows(x[val].to(device), cond[val].to(device), None if mask is None else mask[val].to(device))
            if n_val
            else None
        )
        self.seed, self.device = cfg.seed, device
        self.provenance = dict(teacher.provenance)
        self.teacher_ckpt = ckpt
        self.teacher_path = teacher.checkpoint
        self.n_rows = n

    def model_data_keys(self) -> dict[str, Any]:
        return dict(self.teacher_ckpt["model_config"])

    def batches_per_epoch(self, batch_size: int) -> int:
        return math.ceil(self.x.shape[0] / batch_size)

    def _rows(self, x: Tensor, cond: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
        """Rows with their sets cut to the widest real set among them (padded slots are zeros)."""
        if mask is None:
            return x, cond, None
        width = max(1, int(mask.sum(dim=1).max()))
        states = unpack(self.model, x, self.steps)
        return pack([s[:, :, :width] if s.dim() == 4 else s for s in states]), cond, mask[:, :width]

    def batches(self, epoch: int, batch_size: int) -> Any:
        g = torch.Generator().manual_seed(self.seed * 7_919 + epoch)
        n = self.x.shape[0]
        if self.mask is None:
            order = torch.randperm(n, generator=g).to(self.device)
            for lo in range(0, order.numel(), batch_size):
                idx = order[lo : lo + batch_size]
                yield self.x[idx], self.cond[idx], None
            return
        # sets of similar size share a batch (random ties), batches in random order
        sizes = self.mask.sum(dim=1).cpu().double()
        order = torch.argsort(sizes + torch.rand(n, generator=g, dtype=torch.float64)).to(self.device)
        groups = [order[lo : lo + batch_size] for lo in range(0, n, batch_size)]
        for k in torch.randperm(len(groups), generator=g).tolist():
            idx = groups[k]
            yield self._rows(self.x[idx], self.cond[idx], self.mask[idx])

    def validation(self) -> tuple[Tensor, Tensor, Tensor | None] | None:
        return self.val

    def restore(self, ckpt: dict[str, Any]) -> None:
        """Nothing beyond the weights: the teacher's entries are copied unchanged."""

    def checkpoint_entries(self) -> dict[str, Any]:
        return {k: v for k, v in self.teacher_ckpt.items() if k not in _RUN_ENTRIES and k != "provenance"}

    def config_entries(self) -> dict[str, Any]:
        return {"teacher": str(self.teacher_path)}


def _check_trajectories(path: Path, teacher_sha256: str, steps: int) -> tuple[int, int]:
    """(rows, grid steps) of a trajectories file that can train a ``steps``-step student of this teacher."""
    if not path.is_file():
        raise UserError(f"{path}: trajectories file not found")
    try:
        with h5py.File(path, "r") as f:
            sha = str(f.attrs.get("teacher_sha256", ""))
            n_rows, grid = int(f.attrs.get("rows_done", 0)), int(f.attrs.get("grid_steps", 0))
    except OSError:
        raise UserError(f"{path}: not an HDF5 file; expected teacher_trajectories.h5 of a distill run") from None
    if sha != teacher_sha256:
        raise UserError(f"{path}: trajectories of another teacher (checkpoint SHA-256 differs); distil from that run")
    if grid < 1 or grid % steps:
        raise UserError(f"{path}: trajectories on a {grid}-step grid cannot train a {steps}-step student")
    if n_rows < 2:
        raise UserError(f"{path}: holds {n_rows} finished trajectories; complete it with the distill run that wrote it")
    return n_rows, grid


def _check_steps(teacher: str | Path, ckpt: dict[str, Any], steps: int, grid: int | None) -> None:
    """Refuse a student (or a trajectory grid) finer than the teacher's own sampler, before any work.

    A K-step student costs K network calls per sample; one with more steps than its teacher is
    no faster than the teacher, and its trajectories would cost ``n_pairs * K`` teacher solver
    steps and ``n_pairs * (K + 1)`` stored states (``--steps 100000`` never ends).
    """
    cfg = ckpt.get("model_config") or {}
    limit = max(int(cfg.get("steps", 8)), int(cfg.get("energy_steps", 0) or 0))
    sampler = f"{limit} {cfg.get('solver', 'midpoint')} steps"
    if steps > limit:
        raise UserError(
            f"--steps {steps}: the teacher {teacher} samples in {sampler}; a student with more steps is not faster "
            f"than its teacher (distillation makes 1-4 step students); use --steps 1 to {limit}"
        )
    if grid is not None and grid > limit:
        raise UserError(
            f"--trajectory-steps {grid}: finer than the teacher's own {sampler}; each trajectory would store "
            f"{grid + 1} states and serve no useful student; use at most {limit}"
        )


def _teacher_name(teacher: str | Path, sha256: str, out: Path) -> str:
    """The teacher as recorded in the student's config: as given, or as an earlier run of this
    student recorded the same teacher (same SHA-256), so that resuming with another spelling of
    its path (absolute, relative, the checkpoint file) is not a change of settings."""
    ckpt_path = out / CHECKPOINT_NAME
    if ckpt_path.is_file():
        try:
            earlier = read_checkpoint(ckpt_path).get("model_config", {}).get("distillation", {})
        except UserError:
            return str(teacher)  # fit() reports the damaged checkpoint
        if earlier.get("teacher_sha256") == sha256 and "teacher" in earlier:
            return str(earlier["teacher"])
    return str(teacher)


def distill(
    teacher: str | Path,
    out_dir: str | Path,
    *,
    steps: int = 1,
    n_pairs: int = 20_000,
    trajectory_steps: int | None = None,
    trajectories: str | Path | None = None,
    energies_mev: np.ndarray | None = None,
    load: Callable[[Path], LoadedRun],
    **options: Unpack[TrainOptions],
) -> TrainResult:
    """Distil a trained run (or a shipped model) into a ``steps``-step student run.

    Args:
        teacher: run directory, checkpoint or shipped model name (``"ds2-electron"``).
        load: loads the teacher's checkpoint as the surrogate of its kind
            (:func:`showerforge.kinds.load`; ``sf.distill`` passes it).
        out_dir: the student's run directory (``checkpoint.pt``, ``config.json``,
            ``history.json``, ``teacher_trajectories.h5``); never the teacher's.
        steps: network evaluations of the student (Euler steps), 1, 2, 4, ...
        n_pairs: teacher trajectories to train on (noise + conditions drawn with ``seed``).
        trajectory_steps: grid of the stored trajectories (default ``steps``; a multiple of it
            serves students of several step counts).
        trajectories: reuse an existing ``teacher_trajectories.h5`` (same teacher) instead of
            writing one in ``out_dir``.
        energies_mev: showers: incident energies (MeV) to draw conditions from (default:
            log-uniform over the teacher's training range).
        options: the :class:`~showerforge.training.fit.TrainOptions` (defaults
            :data:`DEFAULT_DISTILL`: 10 epochs, lr 5e-4); ``config_overrides`` that change the
            architecture start the student from random weights instead of the teacher's, except
            for the teacher's tensors of equal name and shape (the shower flow of ``cfm-points``,
            which distillation does not train).

    Returns:
        The :class:`~showerforge.training.fit.TrainResult` of the student.
    """
    from showerforge.runs.shipped import resolve_model

    cfg, run_opts = split_train_options(DEFAULT_DISTILL, options, caller="distill")
    if steps < 1 or n_pairs < 2:
        raise UserError(f"need steps >= 1 and n_pairs >= 2, got steps={steps}, n_pairs={n_pairs}")
    grid = int(trajectory_steps or steps)
    if grid % steps:
        raise UserError(f"trajectory_steps ({grid}) must be a multiple of steps ({steps})")
    teacher_path = resolve_model(teacher)
    out = Path(out_dir)
    if out.resolve() == teacher_path.parent.resolve():
        raise UserError(f"{out}: the output run directory is the teacher's; choose a new directory")
    traj = Path(trajectories) if trajectories is not None else out / TRAJECTORIES_NAME
    if trajectories is not None:  # checked before anything is created or loaded
        _check_trajectories(traj, file_sha256(teacher_path), steps)
    if energies_mev is not None:
        energies_mev = np.asarray(energies_mev, dtype=np.float64).reshape(-1)
        if energies_mev.size == 0 or not np.all(np.isfinite(energies_mev)) or np.any(energies_mev <= 0):
            raise UserError("incident energies to distil on: expected finite energies > 0 MeV (at least one)")
    ckpt = read_checkpoint(teacher_path)
    spec = get_spec(str(ckpt.get("model_name")))
    if spec.sampler_family != "ode":
        raise UserError(
            f"{teacher}: distillation does not apply to {spec.name} ({spec.sampler_family} sampler: it draws "
            "token by token, there are no ODE steps to shorten)"
        )
    _check_steps(teacher, ckpt, steps, None if trajectories is not None else grid)
    spec.check_overrides(run_opts.get("config_overrides"))
    run = load(teacher_path)
    require_noise_map(run.model, "distill")
    run.draw_conditions(2, cfg.seed, energies_mev)  # refuses conditions the teacher cannot take
    flow_stages(run.model)  # refuses models that are not flow matching, before any work
    check_not_input(out / CHECKPOINT_NAME, teacher_path)  # before the folder is created
    check_writable_dir(out)
    if trajectories is None:
        teacher_trajectories(
            run,
            traj,
            n=n_pairs,
            grid_steps=grid,
            seed=cfg.seed,
            energies_mev=energies_mev,
            progress=run_opts.get("progress", True),
        )
    n_rows, grid = _check_trajectories(traj, run.sha256, steps)
    ident = hashlib.sha256(f"{run.sha256}:{grid}:{n_rows}".encode()).hexdigest()[:16]
    overrides = dict(run_opts.pop("config_overrides", None) or {})
    init = "teacher" if all(run.config.get(k) == v for k, v in overrides.items()) else "random"
    record = {
        "method": "trajectory matching",
        "steps": int(steps),
        "teacher": _teacher_name(teacher, run.sha256, out),
        "teacher_sha256": run.sha256,
        "teacher_sampler": run.model.default_sampler,
        "teacher_epoch": run.epoch,
        "trajectories": ident,
        "n_pairs": n_rows,
        "init": init,
    }
    spec = get_spec(run.name)
    student = student_config(run.config, steps, record)
    student.update(overrides)
    config_overrides = {k: v for k, v in student.items() if k in spec.defaults}
    teacher_state = dict(run.model.state_dict())

    def init_weights(model: Any) -> None:
        if init == "teacher":
            model.load_state_dict(teacher_state)
            return
        # a student of another architecture keeps the teacher's tensors of equal name and shape:
        # the parts that are not distilled (cfm-points' shower flow) come over whole
        own = model.state_dict()
        same = {k: v for k, v in teacher_state.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(same, strict=False)

    def prepare(_ckpt: dict[str, Any] | None, dev: torch.device) -> PreparedData:
        return TrajectoryData(traj, run, ckpt, steps, cfg, dev)

    result = fit(
        prepare,
        run.name,
        out,
        cfg,
        data_kind=str(ckpt["data_kind"]),
        data_name=str(teacher),
        extra_settings={"distill_steps": int(steps), "trajectories": ident},
        config_overrides=config_overrides,
        loss_fn=partial(trajectory_loss, steps=int(steps)),
        init_weights=init_weights,
        **run_opts,
    )
    # the student samples differently from its teacher: its sampler calibration (if its kind has
    # one) is fitted again against the target stored with the teacher
    if result.epochs_run:
        calibrate_run(result.checkpoint, load, None, seed=cfg.seed, progress=bool(run_opts.get("progress", True)))
    return result
