"""Checkpoints: a state_dict plus JSON text, written atomically, read with ``weights_only=True``.

Layout of ``<run_dir>/checkpoint.pt`` (a dict; only tensors, dicts, lists, str and numbers, so
``torch.load(..., weights_only=True)`` reads it without executing code):

=====================  ====================================================================
key                    value
=====================  ====================================================================
``format``             ``"showerforge-checkpoint"``
``format_version``     1
``model_name``         registry key, e.g. ``"cfm-voxel"``
``model_config``       JSON text of ``model.config`` (rebuilds the architecture)
``train_config``       JSON text of the training hyperparameters
``preprocessing``      JSON text of the fitted preprocessing state
``geometry``           JSON text of the :class:`~showerforge.geometry.Geometry`
``provenance``         JSON text: training file path, SHA-256, size, rows, split, file attributes
``history``            JSON text: one record per completed epoch (loss, val_loss, lr, seconds)
``data_kind``          the kind of data (``"calo-voxels"``, ``"jet-set"``; see :mod:`showerforge.kinds`)
``epoch``              completed epochs (int); resuming starts at this epoch index
``step``               optimizer steps taken (int)
``model``              ``state_dict`` of the trained weights
``ema``                ``state_dict`` of the EMA weights (used for sampling)
``ema_n_averaged``     EMA updates so far (int)
``optimizer``          optimizer ``state_dict`` (AdamW)
``showerforge_version``, ``torch_version``  str
=====================  ====================================================================

``config.json`` next to it holds the same configuration, resolved and human readable.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from showerforge.data.io import atomic_output
from showerforge.errors import UserError
from showerforge.models import GenerativeModel, build_model

__all__ = [
    "LoadedRun",
    "build_weights",
    "CHECKPOINT_NAME",
    "CONFIG_NAME",
    "CheckpointError",
    "checkpoint_path",
    "file_sha256",
    "save_checkpoint",
    "read_checkpoint",
    "write_json_atomic",
    "update_run",
]

CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.json"
FORMAT = "showerforge-checkpoint"
FORMAT_VERSION = 1
LEGACY_KIND_NAMES = {"": "calo-voxels", "calo-voxel": "calo-voxels"}
"""``data_kind`` of checkpoints written before kinds had their present names (or none) -> the name now;
:func:`read_checkpoint` returns the present name."""
_JSON_KEYS = ("model_config", "train_config", "preprocessing", "geometry", "provenance", "history")


class CheckpointError(UserError):
    """A checkpoint is missing, unreadable, unsafe or not a showerforge checkpoint."""


def checkpoint_path(run_dir_or_checkpoint: str | Path) -> Path:
    """``<dir>/checkpoint.pt`` for a run directory, the path itself for a file."""
    p = Path(run_dir_or_checkpoint)
    return p / CHECKPOINT_NAME if p.is_dir() else p


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    """SHA-256 hex digest of a file, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _atomic_write(path: Path, write: Any) -> Path:
    with atomic_output(path) as tmp:
        write(tmp)
    return path


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON via a temporary file and a rename."""
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    return _atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text))


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename (never a half-written file).

    Values under the JSON keys (``model_config``, ``preprocessing``, ...) may be dicts/lists;
    they are stored as JSON text.
    """
    payload = dict(payload)
    for key in _JSON_KEYS:
        if key in payload and not isinstance(payload[key], str):
            payload[key] = json.dumps(payload[key], sort_keys=True)
    payload.setdefault("format", FORMAT)
    payload.setdefault("format_version", FORMAT_VERSION)
    return _atomic_write(Path(path), lambda tmp: torch.save(payload, tmp))


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)``; JSON fields come back parsed.

    Raises:
        CheckpointError: the file is missing, holds pickled objects other than tensors and plain
            containers, or is not a showerforge checkpoint.
    """
    path = checkpoint_path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic[:2] != b"PK":  # torch.save writes a zip archive
        raise CheckpointError(
            f"{path}: not a torch checkpoint (expected a checkpoint.pt written by "
            "`showerforge train`, or a run directory)"
        )
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        detail = [ln.strip() for ln in str(err).splitlines() if "Unsupported global" in ln]
        raise CheckpointError(
            f"{path}: refused: the file holds objects other than tensors and plain containers, and "
            f"showerforge loads checkpoints only with weights_only=True"
            + (f" ({detail[0].split(' was not')[0]})" if detail else "")
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({err})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a showerforge checkpoint (missing format={FORMAT!r})")
    if int(ckpt.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {ckpt['format_version']} is newer than this showerforge")
    for key in _JSON_KEYS:
        if key in ckpt:
            ckpt[key] = json.loads(ckpt[key])
    ckpt["data_kind"] = LEGACY_KIND_NAMES.get(str(ckpt.get("data_kind", "")), str(ckpt.get("data_kind")))
    return ckpt


@dataclass(kw_only=True)
class LoadedRun:
    """What every loaded run holds (fields shared by every data kind; keyword-only), its registry
    ``name`` and the ``device`` of its model.

    Attributes:
        model: the :class:`~showerforge.models.GenerativeModel` (EMA weights by default), in eval mode.
        config: model config (``config["name"]`` is the registry key).
        checkpoint: path of the checkpoint file.
        sha256: SHA-256 of the checkpoint file.
        epoch: completed training epochs.
        provenance: training-data provenance (path, SHA-256, rows, file attributes).
        train_config: training hyperparameters.
    """

    model: GenerativeModel
    config: dict[str, Any]
    checkpoint: Path
    sha256: str
    epoch: int
    provenance: dict[str, Any] = field(default_factory=dict)
    train_config: dict[str, Any] = field(default_factory=dict)
    data_kind: str = ""

    export_layouts: ClassVar[tuple[str, ...]] = ()
    """ONNX layouts the model exports in (``showerforge.deploy``); the first is the default."""

    @property
    def name(self) -> str:
        """Registry name of the model."""
        return str(self.config["name"])

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device

    def draw_conditions(self, n: int, seed: int, energies_mev: Any = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` conditions drawn as generation draws them, and the mask of real slots (or ``None``).

        Each kind's surrogate defines it; distillation draws its teacher's trajectories at them.
        """
        raise UserError(f"{self.checkpoint}: a {self.name} model does not say how to draw its conditions")

    def calibrate_sampler(
        self,
        target: Any = None,
        *,
        n: int = 1000,
        seed: int = 0,
        progress: Callable[[int], Any] | None = None,
    ) -> dict[str, Any] | None:
        """Fit what the sampler calibrates after training (a kind may define it) and return the
        checkpoint entries that change, or ``None`` when nothing is calibrated (the default)."""
        return None


def update_run(checkpoint: str | Path, entries: dict[str, Any]) -> Path:
    """Replace top-level ``entries`` of a checkpoint (atomically) and of the ``config.json`` beside it.

    Returns:
        The checkpoint path.
    """
    path = checkpoint_path(checkpoint)
    ckpt = read_checkpoint(path)
    ckpt.update(entries)
    save_checkpoint(path, ckpt)
    config = path.parent / CONFIG_NAME
    if config.is_file():
        doc = json.loads(config.read_text())
        doc.update({k: v for k, v in entries.items() if k in doc})
        write_json_atomic(config, doc)
    return path


def run_fields(ckpt: dict[str, Any], path: Path, model: GenerativeModel) -> dict[str, Any]:
    """The :class:`LoadedRun` fields of a checkpoint read from ``path`` (keyword arguments)."""
    return {
        "model": model,
        "config": dict(ckpt["model_config"]),
        "checkpoint": path,
        "sha256": file_sha256(path),
        "epoch": int(ckpt["epoch"]),
        "provenance": dict(ckpt.get("provenance", {})),
        "train_config": dict(ckpt.get("train_config", {})),
        "data_kind": str(ckpt.get("data_kind", "")),
    }


def build_weights(ckpt: dict[str, Any], *, ema: bool = True) -> GenerativeModel:
    """The registered model of a checkpoint with its EMA (default) or raw weights loaded.

    Raises:
        KeyError, ValueError, RuntimeError: the checkpoint lacks a part or its weights do not fit;
            callers turn these into :class:`CheckpointError` naming the file.
    """
    model = build_model(ckpt["model_config"])
    state = ckpt["ema"] if ema else ckpt["model"]
    if ema:  # AveragedModel keeps the network under "module."
        state = {k[len("module.") :]: v for k, v in state.items() if k.startswith("module.")}
    model.load_state_dict(state)
    return model
