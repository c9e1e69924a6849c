"""Batched, seeded sampling of trained shower surrogates into arrays or CaloChallenge-format files."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt
import torch

from showerforge.data.calo import CaloFile, write_showers
from showerforge.data.preprocess import ShowerPreprocessor, preprocessor_from_state
from showerforge.errors import UserError
from showerforge.generate.common import BACKENDS, CPU_SLICE, SHOWER_SAMPLERS, SampleOptions, start_generation
from showerforge.geometry import Geometry
from showerforge.runs.checkpoint import (
    CheckpointError,
    LoadedRun,
    build_weights,
    checkpoint_path,
    read_checkpoint,
    run_fields,
)
from showerforge.training.calo_voxels import DATA_KIND

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "Surrogate",
    "load_model",
    "warn_outside_range",
    "onnx_sampler",
    "sample_array",
    "generate_showers",
    "energies_from",
]

_INVERSE_ROWS = 128


def _incident(incident_mev: np.ndarray) -> np.ndarray:
    inc = np.asarray(incident_mev, dtype=np.float64).reshape(-1)
    if inc.size == 0:
        raise UserError("incident energies: none given; expected at least one energy in MeV")
    if not np.all(np.isfinite(inc)) or np.any(inc <= 0):
        raise UserError("incident energies must be finite and > 0 MeV")
    return inc


def sample_array(
    surrogate: Surrogate,
    incident_mev: np.ndarray,
    *,
    batch_size: int = 1000,
    seed: int = 0,
    steps: int | None = None,
    solver: str | None = None,
    device: str | torch.device | None = None,
    progress: Callable[[int], Any] | None = None,
    backend: str = "torch",
    inverse_dtype: npt.DTypeLike = np.float32,
) -> np.ndarray:
    """Generate showers in memory.

    Args:
        surrogate: from :func:`showerforge.training.load_model`.
        incident_mev: (N,) or (N, 1) incident energies in MeV.
        batch_size: showers per batch; on CPU a batch is solved in slices of ``CPU_SLICE`` rows
            (larger network calls fall out of cache); on GPU use as many as fit.
        seed: seed of the noise; same (seed, batch_size, device, steps, solver) -> same showers.
        steps: ODE steps (``None``: the model's default, see ``surrogate.model.default_sampler``).
        solver: ``"euler"``, ``"midpoint"`` or ``"rk4"`` (``None``: the model's default).
        device: where to run (``None``: where the model is).
        progress: called with the number of showers after each batch.
        backend: ``"torch"`` or ``"onnxruntime"`` (the model exported to ONNX in memory and run
            there, :class:`showerforge.deploy.OnnxShowerSampler`; same seed, same noise).
        inverse_dtype: precision of the per-voxel inverse preprocessing (torch backend; see
            :meth:`~showerforge.data.preprocess.ShowerPreprocessor.inverse`): float32 (default)
            gives the float64 showers to ~1e-6 relative at half the cost.

    Returns:
        Showers (N, n_voxels) in MeV, float32, non-negative, voxels in (layer, angle, radius) order.
    """
    inc = _incident(incident_mev)
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    if backend not in BACKENDS:
        raise UserError(f"backend {backend!r}: unknown; choose one of {', '.join(BACKENDS)}")
    warn_outside_range(surrogate, inc)
    if backend == "onnxruntime":
        sampler = onnx_sampler(surrogate, steps=steps, solver=solver, device=device)
        return sampler.sample(inc, seed=seed, batch_size=batch_size, progress=progress)
    model = surrogate.model
    if device is not None:
        model = model.to(device)
    dev = next(model.parameters()).device
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    cond_all = surrogate.preprocessing.condition(inc)
    out = np.empty((inc.shape[0], surrogate.preprocessing.n_voxels), dtype=np.float32)
    if any(m.training for m in model.modules()):  # eval() walks every module: 1-2 ms at batch 1
        model.eval()
    for lo in range(0, inc.shape[0], batch_size):
        hi = min(lo + batch_size, inc.shape[0])
        cond = torch.from_numpy(cond_all[lo:hi]).to(dev)
        # on CPU, large batches fall out of cache: solve them in slices of CPU_SLICE rows
        step = hi - lo if dev.type != "cpu" else min(hi - lo, CPU_SLICE)
        x = np.concatenate(
            [
                model.sample(cond[a : a + step], generator=gen, steps=steps, solver=solver).float().cpu().numpy()
                for a in range(0, hi - lo, step)
            ]
        )
        for a in range(0, hi - lo, _INVERSE_ROWS):  # cache-sized slices (128 rows of float32: 3 MB)
            b = min(a + _INVERSE_ROWS, hi - lo)
            out[lo + a : lo + b] = surrogate.preprocessing.inverse(inc[lo + a : lo + b], x[a:b], dtype=inverse_dtype)
        if progress is not None:
            progress(hi - lo)
    return out


def onnx_sampler(
    surrogate: Surrogate, *, steps: int | None, solver: str | None, device: str | torch.device | None
) -> Any:
    """The model exported in memory and opened in onnxruntime on ``device`` (default: the model's)."""
    if "onnxruntime" not in SHOWER_SAMPLERS:
        raise UserError(
            "backend 'onnxruntime' is provided by showerforge.deploy: `import showerforge.deploy` first "
            "(sf.generate and `showerforge generate --backend onnxruntime` do)"
        )
    where = device if device is not None else surrogate.device
    return SHOWER_SAMPLERS["onnxruntime"](surrogate, steps=steps, solver=solver, device=str(where))


def warn_outside_range(surrogate: Surrogate, incident_mev: np.ndarray) -> int:
    """Warn when incident energies lie outside the training range (1 % margin); returns how many."""
    rng = surrogate.energy_range_mev
    if rng is None:
        return 0
    lo, hi = rng
    outside = int(np.count_nonzero((incident_mev < 0.99 * lo) | (incident_mev > 1.01 * hi)))
    if outside:
        warnings.warn(
            f"{outside} of {incident_mev.size} incident energies lie outside the training range "
            f"{lo / 1e3:g}-{hi / 1e3:g} GeV of this {surrogate.name} model: it extrapolates there",
            UserWarning,
            stacklevel=3,
        )
    return outside


def generate_showers(
    run_dir: str | Path,
    incident_mev: np.ndarray,
    out_path: str | Path,
    **options: Unpack[SampleOptions],
) -> Path:
    """Sample a trained run and write a CaloChallenge-format file (atomically).

    Args:
        run_dir: run directory (or checkpoint file) written by :func:`showerforge.training.train_model`,
            or the name of a shipped model (``"ds2-electron"``).
        incident_mev: (N,) incident energies in MeV (e.g. :func:`energies_from` a reference file).
        out_path: output ``.h5``.
        options: ``batch_size``, ``seed``, ``steps``, ``solver``, ``device``, ``progress``,
            ``backend``, see :class:`~showerforge.generate.common.SampleOptions`.

    Returns:
        ``out_path``. Its attributes name the model (``model``, ``model_config``), the checkpoint
        (``checkpoint``, ``checkpoint_sha256``, ``checkpoint_epoch``), the sampler (``solver``,
        ``steps``, ``nfe``, ``seed``, ``batch_size``, ``device``, ``backend``; with onnxruntime
        also ``onnxruntime_version`` and ``execution_provider``) and the training data
        (``training_data``, ``training_data_sha256``, ``particle`` when known).
    """
    run = start_generation(run_dir, out_path, options, load_model, caller="generate_showers")
    surrogate, attrs = run.surrogate, run.attrs
    kwargs = dict(run.sample_kwargs)
    if kwargs["progress"] is not None:
        kwargs["progress"](0)  # the model is loaded and checked: generation starts
    if kwargs.pop("backend") == "onnxruntime":
        import onnxruntime

        inc = _incident(incident_mev)
        warn_outside_range(surrogate, inc)
        sampler = onnx_sampler(surrogate, steps=kwargs["steps"], solver=kwargs["solver"], device=None)
        attrs |= {"onnxruntime_version": onnxruntime.__version__, "execution_provider": sampler.provider}
        showers = sampler.sample(inc, seed=kwargs["seed"], batch_size=kwargs["batch_size"], progress=kwargs["progress"])
    else:
        showers = sample_array(surrogate, incident_mev, **kwargs)
    prov = surrogate.provenance
    attrs["threshold_mev"] = float(surrogate.preprocessing.threshold_mev or 0.0)
    particle = prov.get("file_attrs", {}).get("particle")
    if particle is not None:
        attrs["particle"] = particle
    return write_showers(out_path, _incident(incident_mev), showers, surrogate.geometry, attrs)


def energies_from(path: str | Path) -> np.ndarray:
    """Incident energies (N,) in MeV of a CaloChallenge-format file, to generate the same spectrum."""
    with CaloFile.open(path) as f:
        return f.incident_energies()


@dataclass(kw_only=True)
class Surrogate(LoadedRun):
    """A trained shower model ready to sample: the :class:`LoadedRun` fields, and

    Attributes:
        preprocessing: fitted :class:`~showerforge.data.preprocess.ShowerPreprocessor`.
        geometry: readout the model generates.
    """

    preprocessing: ShowerPreprocessor
    geometry: Geometry

    export_layouts: ClassVar[tuple[str, ...]] = ("calochallenge", "par04", "par04-calodit")

    @property
    def energy_range_mev(self) -> tuple[float, float] | None:
        """(lowest, highest) incident energy of the training data in MeV, when recorded."""
        rng = self.provenance.get("incident_mev_range")
        if rng is None:  # older runs: the simulation campaign's energy attribute
            values = self.provenance.get("file_attrs", {}).get("energy_values_mev")
            try:
                rng = json.loads(values) if isinstance(values, str) else values
            except json.JSONDecodeError:
                rng = None
        if not rng:
            return None
        return float(min(rng)), float(max(rng))

    def draw_conditions(
        self, n: int, seed: int, energies_mev: np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` model conditions drawn as generation draws them: (cond (n, n_cond), no mask).

        Incident energies come from ``energies_mev`` (resampled) or log-uniformly from the
        training range.
        """
        rng = np.random.default_rng(seed)
        if energies_mev is not None:
            inc = rng.choice(np.asarray(energies_mev, dtype=np.float64).reshape(-1), n)
        else:
            rng_mev = self.energy_range_mev
            if rng_mev is None:
                raise UserError(
                    f"{self.checkpoint}: the run records no training energy range; pass --energies-from FILE "
                    "(incident energies to distil on)"
                )
            inc = np.exp(rng.uniform(math.log(rng_mev[0]), math.log(rng_mev[1]), n))
        return torch.from_numpy(self.preprocessing.condition(inc)), None

    def sample(
        self,
        energies: Any,
        *,
        seed: int = 0,
        steps: int | None = None,
        solver: str | None = None,
        batch_size: int = 1000,
    ) -> Any:
        """Showers for the given incident energies.

        Args:
            energies: (N,) incident energies in MeV.
            seed: noise seed (same seed, batch size, device and sampler -> same showers).
            steps, solver: ODE sampler (default: the model's).
            batch_size: showers per batch.

        Returns:
            (N, n_voxels) float32 array in MeV, voxels in CaloChallenge (layer, angle, radius) order.
            Energies outside the training range give a warning (the model extrapolates there).
        """
        return sample_array(self, energies, seed=seed, steps=steps, solver=solver, batch_size=batch_size)


def load_model(run_dir_or_checkpoint: str | Path, device: str | torch.device = "cpu", *, ema: bool = True) -> Surrogate:
    """Load a trained surrogate without executing code from the file.

    Args:
        run_dir_or_checkpoint: a run directory (holding ``checkpoint.pt``) or a checkpoint file.
        device: where to put the model (``"cpu"``, ``"cuda"``, ...).
        ema: use the EMA weights (default, the ones meant for sampling) or the raw weights.
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
        pre = preprocessor_from_state(ckpt["preprocessing"])
        geo = Geometry.from_dict(ckpt["geometry"])
    except (KeyError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: inconsistent checkpoint ({err})") from None
    model.to(device).eval()
    return Surrogate(preprocessing=pre, geometry=geo, **run_fields(ckpt, path, model))
