"""Generation helpers shared by showers and jets: options, sampler choice, slice size, file attributes."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import torch

from showerforge.data.io import check_writable
from showerforge.errors import UserError
from showerforge.runs.checkpoint import LoadedRun, update_run
from showerforge.runs.device import resolve_device
from showerforge.runs.shipped import resolve_model

__all__ = [
    "BACKENDS",
    "SHOWER_SAMPLERS",
    "register_shower_sampler",
    "CPU_SLICE",
    "SampleOptions",
    "Generation",
    "start_generation",
    "resolve_sampler",
    "SAMPLER_OPTIONS",
    "generation_attrs",
    "calibrate_run",
]

BACKENDS = ("torch", "onnxruntime")
"""Generation backends (``backend`` option, ``--backend``)."""

SHOWER_SAMPLERS: dict[str, Callable[..., Any]] = {}
"""Shower samplers other than torch, by backend name: ``factory(surrogate, steps=, solver=, device=)``
returns an object with ``.sample(incident_mev, seed=, batch_size=, progress=)`` and ``.provider``.
:mod:`showerforge.deploy` registers ``"onnxruntime"`` when imported."""


def register_shower_sampler(backend: str, factory: Callable[..., Any]) -> None:
    """Make ``backend`` available to :func:`~showerforge.generate.calo_voxels.sample_array`."""
    SHOWER_SAMPLERS[backend] = factory


class SampleOptions(TypedDict, total=False):
    """Keyword options of every ``generate_*`` function (``**options``); each is optional.

    * ``batch_size``: samples per batch (default 1000); on CPU a batch is solved in slices of
      :data:`CPU_SLICE` rows.
    * ``seed``: seed of the noise (default 0); same (seed, batch_size, device, steps, solver) ->
      same output.
    * ``steps``, ``solver``: ODE steps and ``"euler"``, ``"midpoint"`` or ``"rk4"`` (default:
      the model's ``default_sampler``).
    * ``device``: where to run (default ``"cpu"``; ``"auto"``: CUDA when available).
    * ``progress``: called with the number of samples after each batch.
    * ``backend``: ``"torch"`` (default) or ``"onnxruntime"`` (showers: the model exported to ONNX
      and run in onnxruntime, CPU execution provider, CUDA where ``device`` asks for it; the same
      seed gives the same noise, so both backends give the same showers within float tolerance).
    """

    batch_size: int
    seed: int
    steps: int | None
    solver: str | None
    temperature: float | None
    top_k: int | None
    device: str | torch.device
    progress: Callable[[int], Any] | None
    backend: str


@dataclass
class Generation:
    """A loaded model ready to sample: the keywords for the in-memory sampler and the file attributes."""

    surrogate: Any
    sample_kwargs: dict[str, Any]
    attrs: dict[str, Any]


def start_generation(
    run_dir: str | Path,
    out_path: str | Path,
    options: Mapping[str, Any],
    load: Callable[[Path, torch.device], LoadedRun],
    *,
    caller: str,
) -> Generation:
    """Check the options and the output, load the model, choose the sampler (before any work).

    Args:
        run_dir: run directory, checkpoint or shipped model name.
        out_path: the file to be written (checked writable now).
        options: the caller's :class:`SampleOptions`.
        load: the data kind's loader (``load_model``, ``load_jet_model``).
        caller: function name for the error on an unknown option.
    """
    unknown = sorted(set(options) - set(SampleOptions.__annotations__))
    if unknown:
        raise TypeError(f"{caller}() got unexpected keyword argument(s): {', '.join(unknown)}")
    backend = str(options.get("backend", "torch"))
    if backend not in BACKENDS:
        raise UserError(f"--backend {backend!r}: unknown backend; choose one of {', '.join(BACKENDS)}")
    check_writable(out_path)
    device = resolve_device(options.get("device", "cpu"))
    surrogate = load(resolve_model(run_dir), device)
    settings = surrogate.model.sampler_settings(**{k: options.get(k) for k in SAMPLER_OPTIONS})
    seed, batch_size = int(options.get("seed", 0)), int(options.get("batch_size", 1000))
    kwargs = {"batch_size": batch_size, "seed": seed, **settings}
    attrs = generation_attrs(surrogate, settings, seed=seed, batch_size=batch_size, device=device)
    attrs["backend"] = backend
    return Generation(surrogate, {**kwargs, "progress": options.get("progress"), "backend": backend}, attrs)


SAMPLER_OPTIONS = ("solver", "steps", "temperature", "top_k")
"""Sampler settings of :class:`SampleOptions`; the model checks those of its family (``sampler_settings``)."""

CPU_SLICE = 512
"""Rows per network call on CPU (measured: batch 10,000 in one call is 2.5x slower per shower)."""


def resolve_sampler(surrogate: LoadedRun, solver: str | None, steps: int | None) -> tuple[str, int]:
    """(solver name, steps) of an ODE model: the given ones, else the model's default sampler."""
    settings = surrogate.model.sampler_settings(solver=solver, steps=steps)
    return str(settings["solver"]), int(settings["steps"])


def generation_attrs(
    surrogate: LoadedRun, settings: dict[str, Any], *, seed: int, batch_size: int, device: str | torch.device
) -> dict[str, Any]:
    """Attributes every generated file carries: model, checkpoint, sampler (``settings`` from the
    model's ``sampler_settings``), training data."""
    prov = surrogate.provenance
    return {
        "generator": "showerforge",
        "model": surrogate.name,
        "model_config": json.dumps(surrogate.config, sort_keys=True),
        "checkpoint": str(surrogate.checkpoint.resolve()),
        "checkpoint_sha256": surrogate.sha256,
        "checkpoint_epoch": surrogate.epoch,
        **surrogate.model.sampler_attrs(settings),
        "seed": int(seed),
        "batch_size": int(batch_size),
        "device": str(device),
        "training_data": str(prov.get("path", "")),
        "training_data_sha256": str(prov.get("sha256", "")),
    }


def calibrate_run(
    checkpoint: str | Path,
    load: Callable[[Path], LoadedRun],
    target: Any = None,
    *,
    n: int = 1000,
    seed: int = 0,
    progress: bool = True,
) -> bool:
    """Fit a trained run's sampler calibration (:meth:`LoadedRun.calibrate_sampler`) and store it in
    the run's checkpoint and ``config.json``; returns whether the model has one.

    Args:
        checkpoint: the run's checkpoint (or run directory).
        load: loads it as the surrogate of its kind.
        target: reference events for the calibration (the training file's), else the stored target.
        n, seed: events the model generates, uncalibrated, to measure itself.
        progress: a progress line (rich bar on a terminal, else every 30 s).
    """
    from showerforge.simulate.shards import ProgressBar

    run = load(Path(checkpoint))
    total = int(n) * (1 + int(getattr(run, "calibration_refinements", 0)))  # further rounds of n events
    with ProgressBar(total, 0, progress, "calibrating the sampler", "showers") as bar:
        done = [0]

        def step(k: int) -> None:
            done[0] += int(k)
            bar.update(done[0])

        entries = run.calibrate_sampler(target, n=n, seed=seed, progress=step)
    if entries is None:
        return False
    update_run(run.checkpoint, entries)
    return True
