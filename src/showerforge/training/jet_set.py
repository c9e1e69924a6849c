"""Training set models on JetNet-format jets: split, preprocessing, multiplicity, loop, checkpoints.

:func:`train_jets` is the jet counterpart of :func:`showerforge.training.calo_voxels.train_model`. It
reuses the machinery shared by every data kind, :mod:`showerforge.training.fit` and
:mod:`showerforge.runs.checkpoint` (learning-rate schedule, EMA with warmup, thread control,
resume checks, atomic checkpoints read with ``weights_only=True``); only the data side is jet
specific:

* the training file(s) are read with :func:`showerforge.data.jetnet.read_jets` and held in memory
  (JetNet sizes: 170k jets x 150 particles x 3 float32 is 300 MB);
* a :class:`~showerforge.data.jet_preprocess.JetPreprocessor` and a
  :class:`~showerforge.models.multiplicity.CategoricalMultiplicity` are fitted on the training
  split and saved in the checkpoint; the set model (``"cfm-set"``) learns the particles for the
  real slots of each jet's mask.

Checkpoint layout: as in :mod:`showerforge.runs.checkpoint` (``preprocessing`` holds the
:class:`JetPreprocessor` state, there is no ``geometry``), plus ``data_kind = "jet-set"``,
``multiplicity`` (``state_dict`` of the multiplicity model) and ``multiplicity_config`` (JSON
text). The split, every epoch's batch order and the flow-matching noise depend only on ``seed``
and the epoch index, so a resumed run matches an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from showerforge.data.jet_preprocess import JetPreprocessor, multiplicity_target, relative_jet_mass
from showerforge.data.jetnet import JetData, read_jets
from showerforge.errors import UserError
from showerforge.models.multiplicity import CategoricalMultiplicity
from showerforge.runs.checkpoint import file_sha256
from showerforge.training.fit import (
    PreparedData,
    TrainConfig,
    TrainError,
    TrainOptions,
    TrainResult,
    fit,
    split_train_options,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["DEFAULT_JET_TRAIN", "DATA_KIND", "JetTrainingData", "train_jets"]

DATA_KIND = "jet-set"
MAX_VAL_JETS = 10_000

JET_TRAIN_CONFIG = TrainConfig(batch_size=256)
DEFAULT_JET_TRAIN: dict[str, Any] = {**asdict(JET_TRAIN_CONFIG), "condition": "type", "n_pt_bins": 4}
"""Jet training hyperparameters and their defaults (recorded in ``config.json``)."""


def _read(data_spec: str | Path | Sequence[str | Path]) -> tuple[JetData, list[dict[str, Any]]]:
    """Concatenate one or more ``path[:type]`` specs; provenance of each file."""
    specs = [data_spec] if isinstance(data_spec, (str, Path)) else list(data_spec)
    if not specs:
        raise TrainError("no training file given")
    parts = [read_jets(s) for s in specs]
    n = {p.n_particles for p in parts}
    if len(n) > 1:
        raise TrainError(f"training files differ in particle slots per jet: {sorted(n)}")
    files = [
        {
            "spec": str(s),
            "path": str(Path(p.path).resolve()),
            "sha256": file_sha256(p.path),
            "n_jets": len(p),
            "selected_type": p.selected_type,
        }
        for s, p in zip(specs, parts)
    ]
    data = JetData(
        np.concatenate([p.particle_features for p in parts]),
        np.concatenate([p.jet_features for p in parts]),
        np.concatenate([p.jet_type for p in parts]),
        dict(parts[0].attrs),
    )
    if len(data) == 0:
        names = ", ".join(str(s) for s in specs) if isinstance(specs, (list, tuple)) else str(specs)
        raise TrainError(f"{names} [jet_type]: no jets to train on (the selected type is not in the file?)")
    return data, files


class JetTrainingData:
    """Preprocessed jets in memory: training and validation splits, seeded batches.

    Args:
        data: jets (all of them; the split is drawn here).
        preprocessing: fitted on the training split when ``None``.
        val_fraction: held-out fraction (at most 10,000 jets).
        seed: seed of the split and of the batch order.
        device: device of the tensors.
        condition, n_pt_bins: passed to a new :class:`JetPreprocessor`.
    """

    def __init__(
        self,
        data: JetData,
        *,
        val_fraction: float,
        seed: int,
        device: torch.device,
        preprocessing: JetPreprocessor | None = None,
        condition: str = "type",
        n_pt_bins: int = 4,
    ) -> None:
        if not 0.0 <= val_fraction < 1.0:
            raise UserError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.seed, self.device = int(seed), device
        n_val = min(int(round(val_fraction * len(data))), MAX_VAL_JETS)
        if len(data) - n_val < 1:
            raise UserError(
                f"{len(data)} jets leave no training jets after the validation split; "
                "give more jets or a smaller val_fraction"
            )
        perm = np.random.default_rng(self.seed).permutation(len(data))
        tr, va = np.sort(perm[n_val:]), np.sort(perm[:n_val])
        pf, jf, jt = data.particle_features, data.jet_features, data.jet_type
        if preprocessing is None:
            preprocessing = JetPreprocessor(data.n_particles, condition, n_pt_bins).fit(pf[tr], jf[tr], jt[tr])
        self.preprocessing = preprocessing
        self.n_train, self.n_val = tr.size, n_val
        mass = relative_jet_mass(pf) if preprocessing.conditioning.uses_mass else None
        self.labels = preprocessing.conditioning.labels(jt[tr], jf[tr, 0], None if mass is None else mass[tr])
        self.k = np.minimum(multiplicity_target(pf[tr], jf[tr]), preprocessing.k_max)
        self.train = self._tensors(pf[tr], jf[tr], jt[tr], None if mass is None else mass[tr])
        self.val = self._tensors(pf[va], jf[va], jt[va], None if mass is None else mass[va]) if n_val else None

    def _tensors(
        self, pf: np.ndarray, jf: np.ndarray, jt: np.ndarray, mass: np.ndarray | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        x, mask = self.preprocessing.forward(pf)
        cond = self.preprocessing.conditioning.condition(jt, jf[:, 0], mass)
        return tuple(torch.from_numpy(a).to(self.device) for a in (x, mask, cond))  # type: ignore[return-value]

    def multiplicity(self) -> CategoricalMultiplicity:
        """The multiplicity model fitted on the training split."""
        conditioning = self.preprocessing.conditioning
        mult = CategoricalMultiplicity(conditioning.n_labels, self.preprocessing.k_max)
        return mult.fit(torch.from_numpy(self.labels), torch.from_numpy(self.k))

    def batches_per_epoch(self, batch_size: int) -> int:
        """Optimizer steps in one epoch (the last, partial batch included)."""
        return -(-self.n_train // batch_size)

    def epoch(self, epoch: int, batch_size: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """Shuffled batches ``(x (B, n, 3), mask (B, n), cond (B, n_cond))`` of one epoch."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(self.n_train, generator=gen).to(self.device)
        for lo in range(0, self.n_train, batch_size):
            idx = perm[lo : lo + batch_size]
            yield tuple(a[idx] for a in self.train)  # type: ignore[misc]


def _provenance(files: list[dict[str, Any]], data: JetTrainingData) -> dict[str, Any]:
    digest = (
        files[0]["sha256"]
        if len(files) == 1
        else hashlib.sha256("\n".join(f"{f['spec']} {f['sha256']}" for f in files).encode()).hexdigest()
    )
    return {
        "path": files[0]["path"] if len(files) == 1 else [f["path"] for f in files],
        "sha256": digest,
        "files": files,
        "n_jets": data.n_train + data.n_val,
        "n_train": data.n_train,
        "n_val": data.n_val,
        "jet_types": data.preprocessing.conditioning.types,
    }


def train_jets(
    data_spec: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    *,
    model: str = "cfm-set",
    condition: str = DEFAULT_JET_TRAIN["condition"],
    n_pt_bins: int = DEFAULT_JET_TRAIN["n_pt_bins"],
    **options: Unpack[TrainOptions],
) -> TrainResult:
    """Train a registered set model (``data_kind = "jet-set"``) on JetNet-format jets.

    Writes ``<out_dir>/config.json``, ``<out_dir>/checkpoint.pt`` after every epoch (atomically)
    and ``<out_dir>/history.json``. Re-running with the same arguments continues from the last
    complete epoch; a larger ``epochs`` extends a finished run.

    Args:
        data_spec: a JetNet-format file, ``path:type`` to keep one type, or a list of them
            (concatenated; e.g. the public ``g.hdf5`` and ``t.hdf5``).
        out_dir: run directory.
        model: key of :data:`showerforge.models.MODELS` with ``data_kind == "jet-set"``.
        condition: ``"type"`` (one-hot jet type), ``"type+pt"`` (plus standardised log jet pT) or
            ``"type+mass"`` (plus the standardised relative mass m / pT of the kept particles;
            generation draws it per type and jet-pT octile from the training jets).
        n_pt_bins: bins of the multiplicity model in jet pT (``"type+pt"``) or m / pT (``"type+mass"``).
        options: training settings and how to run, see :class:`~showerforge.training.fit.TrainOptions`
            (defaults: :data:`DEFAULT_JET_TRAIN`; ``batch_size`` counts jets).

    Returns:
        A :class:`~showerforge.training.TrainResult`.

    Raises:
        TrainError: bad settings, a non-set model, or a resume with different settings.
    """
    cfg, run_options = split_train_options(JET_TRAIN_CONFIG, options, caller="train_jets")

    def prepare(ckpt: dict[str, Any] | None, dev: torch.device) -> PreparedData:
        jets, files = _read(data_spec)
        pre = JetPreprocessor.from_state(ckpt["preprocessing"]) if ckpt is not None else None
        try:
            data = JetTrainingData(
                jets,
                **cfg.split_keywords(dev),
                preprocessing=pre,
                condition=condition,
                n_pt_bins=n_pt_bins,
            )
        except UserError as err:
            raise TrainError(f"{data_spec}: {err}") from None
        return _JetData(data, _provenance(files, data))

    return fit(
        prepare,
        model,
        out_dir,
        cfg,
        data_kind=DATA_KIND,
        data_name=str(data_spec),
        extra_settings={"condition": condition, "n_pt_bins": n_pt_bins},
        **run_options,
    )


class _JetData:
    """:class:`~showerforge.training.fit.PreparedData` of JetNet-format jets."""

    rate_key = "jets_per_s"

    def __init__(self, data: JetTrainingData, provenance: dict[str, Any]) -> None:
        self.data, self.provenance = data, provenance
        self.mult = data.multiplicity()

    def model_data_keys(self) -> dict[str, Any]:
        pre = self.data.preprocessing
        # order_by: models that order the particles (ar-tokens) sort them by log pT, descending
        return {"n_particles": pre.n_particles, "n_features": pre.n_features, "n_cond": pre.n_cond, "order_by": 2}

    def batches_per_epoch(self, batch_size: int) -> int:
        return self.data.batches_per_epoch(batch_size)

    def batches(self, epoch: int, batch_size: int) -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
        return ((x, c, m) for x, m, c in self.data.epoch(epoch, batch_size))

    def validation(self) -> tuple[Tensor, Tensor, Tensor | None] | None:
        val = self.data.val
        return None if val is None else (val[0], val[2], val[1])

    def restore(self, ckpt: dict[str, Any]) -> None:
        self.mult.load_state_dict(ckpt["multiplicity"])

    def checkpoint_entries(self) -> dict[str, Any]:
        return {
            "data_kind": DATA_KIND,
            "preprocessing": self.data.preprocessing.state_dict(),
            "multiplicity": self.mult.state_dict(),
            "multiplicity_config": json.dumps(self.mult.config),
        }

    def config_entries(self) -> dict[str, Any]:
        return {
            "data_kind": DATA_KIND,
            "preprocessing": self.data.preprocessing.state_dict(),
            "multiplicity": self.mult.config,
        }
