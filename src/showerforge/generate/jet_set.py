"""Batched, seeded sampling of trained jet set models into arrays or JetNet-format files.

A generated jet is built in four steps:

1. its kinematics: jet pT (GeV) and eta are drawn from the training spectra of its type
   (:meth:`~showerforge.data.jet_preprocess.JetConditioning.draw`; with ``condition="type+pt"``
   a given ``jet_pt`` may replace the drawn pT, and the model is conditioned on it);
2. its multiplicity ``k`` from the fitted :class:`~showerforge.models.multiplicity.CategoricalMultiplicity`
   (given the type, and the pT bin for ``"type+pt"``); the first ``min(k, n)`` slots are real;
3. the particles of the real slots from the set model (ODE from noise, masked); a model that
   draws its own length (``ar-tokens``) replaces steps 2 and 3: it generates the particles one
   after the other until its stop decision or the length cap;
4. the inverse preprocessing: ``eta_rel, phi_rel, pt_rel`` (pT-descending, zero-padded).

``jet_features`` of a generated jet are ``(drawn pT, drawn eta, mass of the generated
constituents, k)``, the mass computed by :func:`~showerforge.data.jet_preprocess.jet_mass_gev` from
``pt_rel``, the relative coordinates and the drawn jet pT (massless constituents).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from showerforge.data.jet_preprocess import JetPreprocessor, jet_mass_gev
from showerforge.data.jetnet import JET_TYPES, write_jets
from showerforge.errors import UserError
from showerforge.generate.common import CPU_SLICE, SampleOptions, start_generation
from showerforge.models.multiplicity import CategoricalMultiplicity
from showerforge.runs.checkpoint import (
    CheckpointError,
    LoadedRun,
    build_weights,
    checkpoint_path,
    read_checkpoint,
    run_fields,
)
from showerforge.training.jet_set import DATA_KIND

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["JetSurrogate", "load_jet_model", "sample_jets", "generate_jets", "jet_types_for"]


def jet_types_for(jet_type: str | list[str], n: int) -> list[str]:
    """``n`` labels of each named type, in order (``("t", 2)`` -> ``["t", "t"]``)."""
    names = [jet_type] if isinstance(jet_type, str) else list(jet_type)
    if not names or n < 1:
        raise UserError(f"need at least one jet type and n >= 1, got {jet_type!r}, n={n}")
    unknown = [t for t in names if t not in JET_TYPES]
    if unknown:
        raise UserError(f"unknown jet types {unknown}; expected one of {JET_TYPES}")
    return [t for t in names for _ in range(n)]


def _torch_only(backend: str) -> None:
    if backend != "torch":
        raise UserError(f"--backend {backend}: jets are generated with the torch backend (onnxruntime covers showers)")


def sample_jets(
    surrogate: JetSurrogate,
    jet_type: Any,
    *,
    seed: int = 0,
    batch_size: int = 1000,
    steps: int | None = None,
    solver: str | None = None,
    jet_pt: np.ndarray | None = None,
    progress: Callable[[int], Any] | None = None,
    backend: str = "torch",
    temperature: float | None = None,
    top_k: int | None = None,
) -> dict[str, np.ndarray]:
    """Generate jets in memory.

    Args:
        surrogate: from :func:`showerforge.training.jet_set.load_jet_model`.
        jet_type: (N,) jet type of each jet, as names (``"g"``, ...) or integer labels.
        seed: seed of kinematics, multiplicities and noise; same (seed, batch_size, device,
            steps, solver) -> same jets.
        batch_size: jets per batch (on CPU solved in slices of ``CPU_SLICE`` rows).
        steps: ODE steps (``None``: the model's default).
        solver: ``"euler"``, ``"midpoint"`` or ``"rk4"`` (``None``: the model's default).
        jet_pt: (N,) jet pT in GeV to use instead of drawing it (the model is conditioned on it
            only with ``condition="type+pt"``).
        progress: called with the number of jets after each batch.
        backend: ``"torch"`` only (the onnxruntime backend covers shower models).
        temperature, top_k: sampling settings of an autoregressive model (``ar-tokens``), which
            draws each jet's multiplicity itself (its stop decision) instead of the multiplicity model.

    Returns:
        JetNet arrays: ``particle_features`` (N, n, 4) float32, ``jet_features`` (N, 4) float32
        (pT GeV, eta, mass GeV, multiplicity), ``jet_type`` (N,) int8.
    """
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    _torch_only(backend)
    pre, model = surrogate.preprocessing, surrogate.model
    conditioning = pre.conditioning
    types = conditioning.type_index(jet_type)
    rng = np.random.default_rng(int(seed))
    pt, eta = conditioning.draw(types, rng)
    if jet_pt is not None:
        pt = conditioning.check_pt(jet_pt, types.size)
    rel_mass = conditioning.draw_mass(types, pt, rng)
    own_length = bool(getattr(model, "own_length", False))
    settings = model.sampler_settings(steps=steps, solver=solver, temperature=temperature, top_k=top_k)
    labels = torch.from_numpy(conditioning.labels(types, pt, rel_mass))
    k = surrogate.multiplicity.sample(labels, generator=torch.Generator().manual_seed(int(seed))).numpy()
    n_real = np.minimum(k, pre.n_particles)
    cond_all = conditioning.condition(types, pt, rel_mass)
    dev = surrogate.device
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    pf = np.zeros((types.size, pre.n_particles, 4), np.float32)
    model.eval()
    for lo in range(0, types.size, batch_size):
        sl = slice(lo, min(lo + batch_size, types.size))
        cond = torch.from_numpy(cond_all[sl]).to(dev)
        if own_length:
            x_t, mask_t = model.sample_set(cond, generator=gen, **settings)  # type: ignore[operator]
            mask = mask_t.cpu().numpy()
            k[sl] = n_real[sl] = mask.sum(axis=1)
        else:
            mask = np.arange(pre.n_particles)[None, :] < n_real[sl, None]
            x_t = _sample_masked(model, cond, torch.from_numpy(mask).to(dev), gen, settings)
        pf[sl] = pre.inverse(x_t.float().cpu().numpy(), mask)
        if progress is not None:
            progress(sl.stop - sl.start)
    jf = np.stack([pt, eta, jet_mass_gev(pf, pt), k], axis=1).astype(np.float32)
    return {"particle_features": pf, "jet_features": jf, "jet_type": types.astype(np.int8)}


def _sample_masked(
    model: Any, cond: torch.Tensor, mask: torch.Tensor, gen: torch.Generator, settings: dict[str, Any]
) -> torch.Tensor:
    """A set model's particles for given masks, in cache-sized calls on CPU."""
    step = len(cond) if cond.device.type != "cpu" else min(len(cond), CPU_SLICE)
    parts = [
        model.sample(cond[a : a + step], generator=gen, mask=mask[a : a + step], **settings)
        for a in range(0, len(cond), step)
    ]
    return torch.cat(parts) if parts else torch.zeros((0, *model.event_shape))


def generate_jets(
    run_dir: str | Path,
    jet_type: str | list[str],
    n: int,
    out_path: str | Path,
    **options: Unpack[SampleOptions],
) -> Path:
    """Sample a trained jet run and write a JetNet-format file (atomically).

    Args:
        run_dir: run directory (or checkpoint) written by :func:`showerforge.training.jet_set.train_jets`.
        jet_type: a type (``"g"``, ``"q"``, ``"t"``, ``"w"``, ``"z"``) or a list of types; the
            file holds ``n`` jets of each listed type, in list order. Every type must have been
            in the training data.
        n: jets per type, >= 1.
        out_path: output ``.h5``.
        options: ``batch_size``, ``seed``, ``steps``, ``solver`` (ODE models), ``temperature``,
            ``top_k`` (``ar-tokens``), ``device``, ``progress``, see
            :class:`~showerforge.generate.common.SampleOptions`.

    Returns:
        ``out_path``. Attributes name the model (``model``, ``model_config``), the checkpoint
        (``checkpoint``, ``checkpoint_sha256``, ``checkpoint_epoch``), the sampler (``solver``,
        ``steps``, ``nfe``, ``seed``, ``batch_size``, ``device``), the conditioning and the
        training data (``training_data``, ``training_data_sha256``).
    """
    types = jet_types_for(jet_type, int(n))
    _torch_only(str(options.get("backend", "torch")))
    run = start_generation(run_dir, out_path, options, load_jet_model, caller="generate_jets")
    surrogate, attrs = run.surrogate, run.attrs
    if run.sample_kwargs["progress"] is not None:
        run.sample_kwargs["progress"](0)  # the model is loaded and checked: generation starts
    arrays = sample_jets(surrogate, types, **run.sample_kwargs)
    source = "the model's stop decision" if getattr(surrogate.model, "own_length", False) else "the multiplicity model"
    attrs |= {
        "condition": surrogate.preprocessing.conditioning.kind,
        "jet_features_source": "pt, eta drawn from the training spectra per type; mass from the "
        f"generated constituents (massless); multiplicity from {source}",
    }
    arrays["settings"] = {"generator": "showerforge", "model": surrogate.name, "seed": run.sample_kwargs["seed"]}  # type: ignore[assignment]
    return write_jets(out_path, arrays, attrs)


@dataclass(kw_only=True)
class JetSurrogate(LoadedRun):
    """A trained jet model ready to sample: the :class:`~showerforge.runs.checkpoint.LoadedRun`
    fields, and

    Attributes:
        multiplicity: the fitted :class:`CategoricalMultiplicity` (on CPU).
        preprocessing: the fitted :class:`JetPreprocessor`.
    """

    multiplicity: CategoricalMultiplicity
    preprocessing: JetPreprocessor

    export_layouts: ClassVar[tuple[str, ...]] = ("jetnet",)

    def draw_conditions(
        self, n: int, seed: int, energies_mev: np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` model conditions drawn as generation draws them: jet type, pT, eta and multiplicity.

        Returns:
            (cond (n, n_cond), mask (n, n_particles) of the real slots).
        """
        if energies_mev is not None:
            raise UserError(f"{self.checkpoint}: incident energies were given, but this is a jet model")
        rng = np.random.default_rng(seed)
        pre = self.preprocessing
        conditioning = pre.conditioning
        types = conditioning.type_index(list(rng.choice(list(conditioning.pt_quantiles), n)))
        pt, _ = conditioning.draw(types, rng)
        rel_mass = conditioning.draw_mass(types, pt, rng)
        labels = torch.from_numpy(conditioning.labels(types, pt, rel_mass))
        k = self.multiplicity.sample(labels, generator=torch.Generator().manual_seed(seed)).numpy()
        mask = np.arange(pre.n_particles)[None, :] < np.minimum(k, pre.n_particles)[:, None]
        return torch.from_numpy(conditioning.condition(types, pt, rel_mass)), torch.from_numpy(mask)

    def sample(
        self,
        n: int,
        jet_type: str | list[str] = "t",
        *,
        seed: int = 0,
        steps: int | None = None,
        solver: str | None = None,
        batch_size: int = 1000,
        temperature: float | None = None,
        top_k: int | None = None,
    ) -> dict[str, Any]:
        """``n`` jets of each type in ``jet_type`` (``"t"`` or ``["g", "t"]``), JetNet arrays.

        ``steps``, ``solver`` set an ODE model's sampler, ``temperature``, ``top_k`` an autoregressive one's.

        Returns:
            ``particle_features`` (N, n_particles, 4: eta_rel, phi_rel, pT_rel, mask),
            ``jet_features`` (N, 4: pT GeV, eta, mass GeV, multiplicity), ``jet_type`` (N,) int8.
        """
        return sample_jets(
            self,
            jet_types_for(jet_type, n),
            seed=seed,
            steps=steps,
            solver=solver,
            batch_size=batch_size,
            temperature=temperature,
            top_k=top_k,
        )


def load_jet_model(
    run_dir_or_checkpoint: str | Path, device: str | torch.device = "cpu", *, ema: bool = True
) -> JetSurrogate:
    """Load a jet surrogate written by :func:`train_jets` (``torch.load(weights_only=True)``).

    Args:
        run_dir_or_checkpoint: run directory or ``checkpoint.pt``.
        device: where to put the set model (the multiplicity model stays on CPU).
        ema: EMA weights (default, meant for sampling) or the raw weights.

    Raises:
        CheckpointError: missing, unsafe, not a jet checkpoint, or inconsistent.
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
        mult = CategoricalMultiplicity(**json.loads(ckpt["multiplicity_config"]))
        mult.load_state_dict(ckpt["multiplicity"])
        pre = JetPreprocessor.from_state(ckpt["preprocessing"])
    except (KeyError, ValueError, RuntimeError, TypeError) as err:
        raise CheckpointError(f"{path}: inconsistent checkpoint ({err})") from None
    model.to(device).eval()
    return JetSurrogate(multiplicity=mult.eval(), preprocessing=pre, **run_fields(ckpt, path, model))
