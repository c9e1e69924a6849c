"""The training function shared by every data kind: AdamW, warmup + cosine (or constant) learning
rate, EMA, validation, one atomic checkpoint per epoch, resume after interruption.

A data kind plugs in through :class:`PreparedData` (rows, batches, validation rows, provenance and
its checkpoint entries) and calls :func:`fit` with its settings: showers in
:mod:`showerforge.training.calo_voxels`, jets in :mod:`showerforge.training.jet_set`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol, TypedDict, cast

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from showerforge.errors import UserError
from showerforge.models import MODELS, GenerativeModel, get_spec
from showerforge.runs.checkpoint import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    file_sha256,
    read_checkpoint,
    save_checkpoint,
    write_json_atomic,
)
from showerforge.runs.device import resolve_device, torch_threads
from showerforge.training.distributed import DistContext, LossModule, init_distributed

__all__ = [
    "TrainConfig",
    "TrainOptions",
    "split_train_options",
    "PreparedData",
    "fit",
    "TrainError",
    "TrainResult",
    "lr_at",
    "resolve_device",
    "ema_model",
    "EpochLoop",
    "RunFiles",
    "torch_threads",
    "validation_loss",
    "check_resume",
    "LossFn",
]


# settings that may change between a run and its resumption
_RESUMABLE = {"epochs"}


class TrainError(RuntimeError):
    """Training cannot start or resume (the message says why and what to do)."""


@dataclass
class TrainResult:
    """What a training run (:func:`fit`) did.

    Attributes:
        run_dir: the run directory.
        checkpoint: path of ``checkpoint.pt``.
        epochs_completed: epochs in the checkpoint (including earlier, resumed ones).
        epochs_run: epochs run by this call.
        stopped_early: True when ``max_minutes`` ended the run before ``epochs``.
        history: one record per completed epoch (``epoch``, ``loss``, ``val_loss``, ``lr``,
            ``seconds`` and the samples per second of the data kind, e.g. ``showers_per_s``).
        seconds: wall time of this call.

    It is a path-like object: ``os.fspath(result)`` is the run directory.
    """

    run_dir: Path
    checkpoint: Path
    epochs_completed: int
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def __fspath__(self) -> str:
        """The run directory, so that a result is used where a path is (``sf.load(result)``)."""
        return str(self.run_dir)


def lr_at(step: int, total_steps: int, lr: float, schedule: str, warmup_steps: int) -> float:
    """Learning rate at optimizer step ``step``: linear warmup, then constant or cosine to 0."""
    warm = min(1.0, (step + 1) / max(1, warmup_steps))
    if schedule == "constant":
        return lr * warm
    if schedule == "cosine":
        progress = min(1.0, step / max(1, total_steps))
        return lr * warm * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise UserError(f"unknown schedule {schedule!r}; use 'cosine' or 'constant'")


def ema_model(model: nn.Module, decay: float) -> AveragedModel:
    """EMA of the weights with warmup ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates."""

    @torch.no_grad()
    def update(avg: Sequence[torch.Tensor], cur: Sequence[torch.Tensor], n: torch.Tensor | int) -> None:
        d = min(decay, (1.0 + float(n)) / (10.0 + float(n)))
        for a, c in zip(avg, cur):
            if a.is_floating_point():
                a.lerp_(c, 1.0 - d)
            else:
                a.copy_(c)

    return AveragedModel(model, multi_avg_fn=update, use_buffers=True)


LossFn = Callable[[GenerativeModel, Tensor, Tensor, "Tensor | None", torch.Generator], Tensor]
"""``loss_fn(model, x, cond, mask, generator) -> scalar``: a training objective other than ``model.loss``."""


@torch.no_grad()
def validation_loss(
    model: GenerativeModel,
    val: tuple[Tensor, Tensor, Tensor | None] | None,
    batch_size: int,
    seed: int,
    loss_fn: LossFn | None = None,
) -> float | None:
    """Mean loss over validation rows ``(x, cond, mask)`` with a fixed noise seed, so epochs are comparable.

    Shared by every data kind (``mask`` is ``None`` for fixed-size data); ``None`` without validation rows.
    """
    if val is None:
        return None
    was_training = model.training
    model.eval()
    x, c, mask = val
    gen = torch.Generator(device=x.device).manual_seed(seed + 12345)
    total = 0.0
    for lo in range(0, x.shape[0], batch_size):
        sl = slice(lo, lo + batch_size)
        m = None if mask is None else mask[sl]
        value = loss_fn(model, x[sl], c[sl], m, gen) if loss_fn else model.loss(x[sl], c[sl], m, generator=gen)
        total += float(value) * x[sl].shape[0]
    model.train(was_training)
    return total / x.shape[0]


def _progress(enabled: bool, unit: str = "showers") -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  val {task.fields[val]}  {task.fields[rate]} " + unit + "/s"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


def check_resume(
    ckpt: dict[str, Any], model_cfg: dict[str, Any], train_cfg: dict[str, Any], sha: str, path: Path
) -> None:
    diffs = []
    if ckpt["model_config"] != model_cfg:
        keys = set(ckpt["model_config"]) | set(model_cfg)
        diffs += [
            f"model.{k}: {ckpt['model_config'].get(k)!r} -> {model_cfg.get(k)!r}"
            for k in sorted(keys)
            if ckpt["model_config"].get(k) != model_cfg.get(k)
        ]
    for k, v in train_cfg.items():
        if k not in _RESUMABLE and ckpt["train_config"].get(k) != v:
            diffs.append(f"train.{k}: {ckpt['train_config'].get(k)!r} -> {v!r}")
    if ckpt["provenance"].get("sha256") != sha:
        diffs.append("training data: the file's SHA-256 differs from the one the run was trained on")
    if diffs:
        raise TrainError(
            f"{path}: cannot resume, settings differ from the checkpoint ({'; '.join(diffs)}); "
            "use the original settings or a new output directory"
        )


@dataclass(frozen=True)
class TrainConfig:
    """The training settings every data kind shares (recorded in ``config.json`` and checkpoints).

    Attributes:
        epochs: total epochs (including resumed ones).
        batch_size: samples per optimizer step.
        lr: peak AdamW learning rate.
        val_fraction: held-out fraction for the validation loss (at most 10,000 rows).
        seed: seed of weights, split, batch order and flow-matching noise.
        weight_decay: AdamW weight decay.
        schedule: ``"cosine"`` (to 0 at the last epoch) or ``"constant"``, after linear warmup.
        warmup_steps: optimizer steps of linear warmup.
        grad_clip: max gradient norm (0 disables clipping).
        ema_decay: EMA decay of the sampling weights (with warmup, see :func:`ema_model`).
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    val_fraction: float = 0.1
    seed: int = 0
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_steps: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.999

    def split_keywords(self, device: torch.device) -> dict[str, Any]:
        """What every kind's training-data class takes to split and place its rows."""
        return {"val_fraction": self.val_fraction, "seed": self.seed, "device": device}

    def check(self) -> None:
        """Raise :class:`TrainError` for settings that cannot train."""
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise TrainError(
                f"need epochs >= 1, batch_size >= 1, lr > 0; got {self.epochs}, {self.batch_size}, {self.lr}"
            )
        if not 0.0 <= self.val_fraction < 1.0:
            raise TrainError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        lr_at(0, 1, self.lr, self.schedule, self.warmup_steps)  # validates the schedule name


class TrainOptions(TypedDict, total=False):
    """Keyword options every ``train_*`` function takes (``**options``); each is optional.

    ``epochs``, ``batch_size``, ``lr``, ``val_fraction``, ``seed``, ``weight_decay``,
    ``schedule``, ``warmup_steps``, ``grad_clip``, ``ema_decay``: the :class:`TrainConfig` fields
    (defaults: the data kind's, e.g. ``DEFAULT_TRAIN`` or ``DEFAULT_JET_TRAIN``). How to run:

    * ``device``: ``"auto"`` (default), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
    * ``resume``: continue an existing run in the run directory (default); ``False`` refuses to
      touch one.
    * ``progress``: show a progress bar (loss, validation loss, samples/s); default ``True``.
    * ``max_minutes``: stop after the last epoch expected to end within this wall time.
    * ``config_overrides``: model hyperparameters (see ``MODELS[name].defaults``).
    * ``num_threads``: CPU threads (default: all cores available to the process).
    * ``init_from``: a run, checkpoint or shipped model whose (EMA) weights start a *new* run
      (fine-tuning, transfer): every tensor with the same name and shape is copied, the rest keep
      their fresh initialisation; a fitted tokeniser is fitted again on the new data. Recorded in
      the run's provenance (``init_from``: path, SHA-256, tensors copied).
    """

    epochs: int
    batch_size: int
    lr: float
    val_fraction: float
    seed: int
    weight_decay: float
    schedule: str
    warmup_steps: int
    grad_clip: float
    ema_decay: float
    device: str | torch.device
    resume: bool
    progress: bool
    max_minutes: float | None
    config_overrides: dict[str, Any] | None
    num_threads: int | None
    init_from: str | Path | None


def split_train_options(
    defaults: TrainConfig, options: Mapping[str, Any], *, caller: str
) -> tuple[TrainConfig, dict[str, Any]]:
    """``(TrainConfig, run options for fit)`` from a ``train_*`` function's ``**options``.

    Raises:
        TypeError: an option :class:`TrainOptions` does not name (as for any unknown keyword).
    """
    unknown = sorted(set(options) - set(TrainOptions.__annotations__))
    if unknown:
        raise TypeError(f"{caller}() got unexpected keyword argument(s): {', '.join(unknown)}")
    names = {f.name for f in fields(TrainConfig)}
    cfg = replace(defaults, **{k: v for k, v in options.items() if k in names})
    return cfg, {k: v for k, v in options.items() if k not in names}


class PreparedData(Protocol):
    """What the training loop needs from one kind of data (showers, jets, ...)."""

    provenance: dict[str, Any]
    """Where the rows came from; ``sha256`` identifies the data for resuming."""
    rate_key: str
    """History column of samples per second, e.g. ``"showers_per_s"``."""

    def model_data_keys(self) -> dict[str, Any]:
        """Config entries the data fixes (e.g. ``token_sizes``, ``n_cond``)."""
        ...

    def batches_per_epoch(self, batch_size: int) -> int:
        """Optimizer steps of one epoch."""
        ...

    def batches(self, epoch: int, batch_size: int) -> Iterable[tuple[Tensor, Tensor, Tensor | None]]:
        """Shuffled ``(x, cond, mask)`` batches of one epoch (same order for the same seed and epoch)."""
        ...

    def validation(self) -> tuple[Tensor, Tensor, Tensor | None] | None:
        """Validation rows ``(x, cond, mask)``, or ``None``."""
        ...

    def restore(self, ckpt: dict[str, Any]) -> None:
        """Load kind-specific state (e.g. a multiplicity model) from a checkpoint being resumed."""
        ...

    def checkpoint_entries(self) -> dict[str, Any]:
        """Kind-specific checkpoint entries (``data_kind``, ``preprocessing``, ...)."""
        ...

    def config_entries(self) -> dict[str, Any]:
        """Kind-specific ``config.json`` entries."""
        ...


def fit(
    prepare: Callable[[dict[str, Any] | None, torch.device], PreparedData],
    model_name: str,
    out_dir: str | Path,
    cfg: TrainConfig,
    *,
    data_kind: str,
    data_name: str,
    extra_settings: dict[str, Any] | None = None,
    device: str | torch.device = "auto",
    resume: bool = True,
    progress: bool = True,
    max_minutes: float | None = None,
    config_overrides: dict[str, Any] | None = None,
    num_threads: int | None = None,
    loss_fn: LossFn | None = None,
    init_weights: Callable[[GenerativeModel], None] | None = None,
    init_from: str | Path | None = None,
) -> TrainResult:
    """The one training function of every data kind: settings, resume, model, EMA, loop, checkpoints.

    Args:
        prepare: ``prepare(checkpoint or None, device)`` reads the data and returns its
            :class:`PreparedData` (fitting the preprocessing, or restoring it from the checkpoint).
        model_name: registered model; its ``data_kind`` must be ``data_kind``.
        out_dir: run directory (``config.json``, ``checkpoint.pt``, ``history.json``).
        cfg: the shared settings.
        data_kind: what ``prepare`` yields (``"calo-voxels"``, ``"jet-set"``).
        data_name: the data as the user named it (for messages).
        extra_settings: kind-specific settings recorded beside ``cfg`` (checked on resume).
        device, resume, progress, max_minutes, config_overrides, num_threads: see
            :func:`showerforge.training.calo_voxels.train_model`.
        loss_fn: objective to minimise instead of ``model.loss`` (distillation).
        init_weights: called on a new model before training (not on resume), e.g. to copy a
            teacher's weights.
        init_from: start a new run from another run's weights (:class:`TrainOptions`).
    """
    t_start = time.perf_counter()
    spec = get_spec(model_name)
    if data_kind not in spec.kinds:
        raise TrainError(
            f"{data_name}: {_KIND_WORDS.get(data_kind, data_kind)}, but model {model_name!r} trains on "
            f"{' or '.join(repr(k) for k in spec.kinds)} data; use a {data_kind!r} model: "
            + ", ".join(k for k, v in MODELS.items() if data_kind in v.kinds)
        )
    cfg.check()
    spec.check_overrides(config_overrides)  # before the run directory or the data is touched
    ctx, dev = init_distributed(resolve_device(device))
    run_dir = Path(out_dir)
    ckpt_path = run_dir / CHECKPOINT_NAME
    ckpt = None
    if ckpt_path.exists():
        if not resume:
            raise TrainError(f"{ckpt_path} exists; pass resume=True to continue it or choose another out_dir")
        ckpt = read_checkpoint(ckpt_path)
        if ckpt["data_kind"] != data_kind:
            raise TrainError(f"{ckpt_path} holds a {ckpt.get('data_kind', 'calo-voxel')} run; choose another out_dir")
    train_cfg = {"model_name": model_name, **(extra_settings or {}), **asdict(cfg)}
    source = None
    if init_from is not None and ckpt is None:  # read before the data: a wrong path fails fast
        source = _init_source(init_from)
    with torch_threads(dev, num_threads):
        data = prepare(ckpt, dev)
        data_keys = {k: v for k, v in data.model_data_keys().items() if k in spec.data_keys}
        model_cfg = spec.resolve(**{**(config_overrides or {}), **data_keys})
        if ckpt is not None:
            # a run saved before a hyperparameter existed continues with the value it was trained with
            saved = ckpt["model_config"]
            model_cfg.update(
                {k: v for k, v in spec.saved_before.items() if k not in saved and k not in (config_overrides or {})}
            )
            ckpt["model_config"] = {**{k: v for k, v in spec.saved_before.items() if k not in saved}, **saved}
            check_resume(ckpt, model_cfg, train_cfg, data.provenance["sha256"], ckpt_path)
        torch.manual_seed(cfg.seed)
        model = spec.builder(model_cfg)
        if init_weights is not None and ckpt is None:
            init_weights(model)
        if source is not None:
            data.provenance["init_from"] = _copy_weights(model, source, model_name)
        elif ckpt is not None and "init_from" in ckpt.get("provenance", {}):
            data.provenance["init_from"] = ckpt["provenance"]["init_from"]
        model = model.to(dev)
        fitted = _fit_to_data(model, data, cfg, ckpt)
        ema = ema_model(model, cfg.ema_decay)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        start_epoch, step, history = 0, 0, []
        if ckpt is not None:
            model.load_state_dict(ckpt["model"])
            ema.load_state_dict(ckpt["ema"])
            opt.load_state_dict(ckpt["optimizer"])
            data.restore(ckpt)
            start_epoch, step, history = int(ckpt["epoch"]), int(ckpt["step"]), list(ckpt["history"])
        if ctx.is_main:
            write_json_atomic(
                run_dir / CONFIG_NAME,
                {
                    "model": model_cfg,
                    "train": train_cfg,
                    "data": data.provenance,
                    **data.config_entries(),
                    **({"model_fit": fitted} if fitted is not None else {}),
                    "device": str(dev),
                    "processes": ctx.world_size,
                },
            )
        common = {
            "model_name": model_name,
            "model_config": model_cfg,
            "train_config": train_cfg,
            "provenance": data.provenance,
            **data.checkpoint_entries(),
            **({"model_fit": json.dumps(fitted, sort_keys=True)} if fitted is not None else {}),
        }
        loop = EpochLoop(
            model,
            ema,
            opt,
            lambda e: data.batches(e, cfg.batch_size),
            lambda: validation_loss(
                cast(GenerativeModel, ema.module), data.validation(), max(cfg.batch_size, 1024), cfg.seed, loss_fn
            ),
            cfg=cfg,
            steps_per_epoch=data.batches_per_epoch(cfg.batch_size),
            device=dev,
            files=RunFiles(run_dir, ckpt_path, common),
            rate_key=data.rate_key,
            progress=progress,
            max_minutes=max_minutes,
            t_start=t_start,
            ctx=ctx,
            loss_fn=loss_fn,
        )
        ran, stopped, step = loop.run(start_epoch, step, history)
    done = history[-1]["epoch"] if history else start_epoch
    return TrainResult(run_dir, ckpt_path, done, ran, stopped, history, time.perf_counter() - t_start)


def _init_source(spec: str | Path) -> tuple[Path, dict[str, Tensor]]:
    """The checkpoint path and EMA weights of ``init_from`` (a run, checkpoint or shipped model)."""
    from showerforge.runs.shipped import resolve_model

    path = resolve_model(spec)
    ckpt = read_checkpoint(path)
    try:
        state = ckpt["ema"]
    except KeyError:
        raise TrainError(f"{path} [ema]: no weights to start from (not a showerforge run checkpoint)") from None
    return path, {k[len("module.") :]: v for k, v in state.items() if k.startswith("module.")}


def _copy_weights(model: GenerativeModel, source: tuple[Path, dict[str, Tensor]], model_name: str) -> dict[str, Any]:
    """Copy the source's tensors of the same name and shape into ``model``; the record for provenance."""
    path, weights = source
    own = model.state_dict()
    same = {k: v for k, v in weights.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not same:
        raise TrainError(
            f"--init-from {path}: no weights of the same name and shape as a new {model_name} with these "
            "settings; start from a run of the same model (and hyperparameters), or train from scratch"
        )
    model.load_state_dict(same, strict=False)
    n_same = sum(int(v.numel()) for v in same.values())
    return {
        "path": str(Path(path).resolve()),
        "sha256": file_sha256(path),
        "tensors_copied": len(same),
        "tensors": len(own),
        "parameters_copied": n_same,
        "parameters": sum(int(v.numel()) for v in own.values()),
    }


def _fit_to_data(
    model: GenerativeModel, data: PreparedData, cfg: TrainConfig, ckpt: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Fit the data-dependent part of a new model (a tokeniser: ``model.fit_to_data``) on the
    training rows; a resumed run keeps the fitted state of its checkpoint. Returns the fit's report."""
    fit_to = getattr(model, "fit_to_data", None)
    if fit_to is None:
        return None
    if ckpt is not None:
        return dict(json.loads(ckpt["model_fit"])) if "model_fit" in ckpt else None
    report: dict[str, Any] = fit_to(data.batches(0, cfg.batch_size), seed=cfg.seed)
    return report


_KIND_WORDS = {"calo-voxels": "a shower file", "jet-set": "a jet file", "calo-points": "a point-cloud file"}


@dataclass
class RunFiles:
    """Where a run is written: ``history.json`` in ``run_dir``, the checkpoint, and the checkpoint
    entries that do not change between epochs (config, preprocessing, provenance, ...)."""

    run_dir: Path
    checkpoint: Path
    common: dict[str, Any]


@dataclass
class EpochLoop:
    """The epoch loop shared by every data kind; checkpoints after each epoch (atomically).

    Attributes:
        model, ema, opt: the network, its EMA copy (the sampling weights) and the optimizer.
        batches: ``batches(epoch)`` yields ``(x, cond, mask)`` (mask ``None`` for fixed-size data).
        val_loss: validation loss of the EMA model (or ``None``).
        cfg: the training settings (epochs, learning-rate schedule, clipping, seed).
        steps_per_epoch: optimizer steps of one epoch.
        device: where the batches live.
        files: where the run is written.
        rate_key: history column of samples per second (``showers_per_s``, ...).
        progress: show progress (rich on a terminal, one line an epoch otherwise).
        max_minutes, t_start: stop before an epoch that would end after ``max_minutes`` since ``t_start``.
        ctx: torchrun context: each rank trains on its rows of every global batch through DDP;
            rank 0 alone writes files and shows progress.
        loss_fn: objective instead of ``model.loss`` (single process only).
    """

    model: GenerativeModel
    ema: AveragedModel
    opt: torch.optim.Optimizer
    batches: Callable[[int], Iterable[tuple[Tensor, Tensor, Tensor | None]]]
    val_loss: Callable[[], float | None]
    cfg: TrainConfig
    steps_per_epoch: int
    device: torch.device
    files: RunFiles
    rate_key: str
    progress: bool
    max_minutes: float | None
    t_start: float
    ctx: DistContext = field(default_factory=DistContext)
    loss_fn: LossFn | None = None

    def run(self, start_epoch: int, step: int, history: list[dict[str, Any]]) -> tuple[int, bool, int]:
        """Epochs ``start_epoch`` .. ``cfg.epochs``; ``history`` is extended in place.

        Returns:
            (epochs run, stopped by ``max_minutes``, optimizer steps so far).
        """
        ctx = self.ctx
        if ctx.active and self.loss_fn is not None:
            raise TrainError("a custom training objective runs in one process; start it without torchrun")
        ddp = None
        if ctx.active:
            from torch.nn.parallel import DistributedDataParallel

            ddp = DistributedDataParallel(LossModule(self.model), broadcast_buffers=False)
        epochs = self.cfg.epochs
        stopped, last_epoch_s, ran = False, 0.0, 0
        self.model.train()
        with _progress(self.progress and ctx.is_main, self.rate_key.removesuffix("_per_s")) as bar:
            task = bar.add_task(
                "train", total=(epochs - start_epoch) * self.steps_per_epoch, loss="-", val="-", rate="-"
            )
            for epoch in range(start_epoch, epochs):
                if self._out_of_time(ran, last_epoch_s):
                    stopped = True
                    break
                t0 = time.perf_counter()
                bar.update(task, description=f"epoch {epoch + 1}/{epochs}")
                step, loss_sum, seen = self._train_epoch(epoch, step, ddp, lambda **kw: bar.update(task, **kw), t0)
                val = self.val_loss()
                last_epoch_s = time.perf_counter() - t0
                history.append(
                    {
                        "epoch": epoch + 1,
                        "loss": ctx.mean(loss_sum / max(1, seen)),
                        "val_loss": val,
                        "lr": self.opt.param_groups[0]["lr"],
                        "seconds": last_epoch_s,
                        self.rate_key: ctx.world_size * seen / max(1e-9, last_epoch_s),
                    }
                )
                bar.update(task, val="-" if val is None else f"{val:.4f}")
                self._say(history[-1])
                if ctx.is_main:
                    self._save(epoch + 1, step, history)
                ctx.barrier()
                ran += 1
        return ran, stopped, step

    def _out_of_time(self, ran: int, last_epoch_s: float) -> bool:
        """Whether the next epoch would end after ``max_minutes`` (every rank stops at the same epoch)."""
        late = (
            self.max_minutes is not None
            and ran
            and time.perf_counter() - self.t_start + last_epoch_s > 60 * self.max_minutes
        )
        return self.ctx.mean(float(late)) > 0

    def _train_epoch(
        self, epoch: int, step: int, ddp: Any, show: Callable[..., None], t0: float
    ) -> tuple[int, float, int]:
        """One epoch of optimizer steps; returns (steps so far, summed loss, samples seen)."""
        cfg, ctx, model = self.cfg, self.ctx, self.model
        total_steps = cfg.epochs * self.steps_per_epoch
        gen = torch.Generator(device=self.device).manual_seed(cfg.seed * 1_000_003 + epoch + 7_919 * ctx.rank)
        loss_sum, seen = 0.0, 0
        for x_all, c_all, mask_all in self.batches(epoch):
            x, c, mask = ctx.share(x_all, c_all, mask_all)
            assert x is not None and c is not None
            for group in self.opt.param_groups:
                group["lr"] = lr_at(step, total_steps, cfg.lr, cfg.schedule, cfg.warmup_steps)
            if ddp is not None:
                loss = ddp(x, c, mask, gen)
            elif self.loss_fn is not None:
                loss = self.loss_fn(model, x, c, mask, gen)
            else:
                loss = model.loss(x, c, mask, generator=gen)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            self.opt.step()
            self.ema.update_parameters(model)
            step += 1
            loss_sum += float(loss.detach()) * x.shape[0]
            seen += x.shape[0]
            rate = ctx.world_size * seen / max(1e-9, time.perf_counter() - t0)
            show(advance=1, loss=f"{loss_sum / seen:.4f}", rate=f"{rate:.0f}")
        return step, loss_sum, seen

    def _say(self, rec: dict[str, Any]) -> None:
        """Logs and batch jobs (no terminal): one line an epoch."""
        if self.progress and self.ctx.is_main and not sys.stderr.isatty():
            val, unit = rec["val_loss"], self.rate_key.removesuffix("_per_s")
            print(
                f"epoch {rec['epoch']}/{self.cfg.epochs}: loss {rec['loss']:.4f}, val "
                f"{'-' if val is None else f'{val:.4f}'}, {rec[self.rate_key]:.0f} {unit}/s, {rec['seconds']:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    def _save(self, epoch: int, step: int, history: list[dict[str, Any]]) -> None:
        save_checkpoint(
            self.files.checkpoint,
            {
                **self.files.common,
                "history": history,
                "epoch": epoch,
                "step": step,
                "model": self.model.state_dict(),
                "ema": self.ema.state_dict(),
                "ema_n_averaged": int(self.ema.n_averaged),
                "optimizer": self.opt.state_dict(),
                "showerforge_version": _version(),
                "torch_version": str(torch.__version__),
            },
        )
        write_json_atomic(self.files.run_dir / "history.json", history)


def _version() -> str:
    from showerforge._version import __version__

    return __version__
