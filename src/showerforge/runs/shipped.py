"""Pretrained surrogates shipped inside the package, and how a run becomes one.

A shipped model is a folder ``showerforge/pretrained/<name>/`` holding

* ``model.pt``: a slim checkpoint (the layout of :mod:`showerforge.runs.checkpoint` with the EMA
  weights only: no optimizer state, no raw weights), read with ``torch.load(weights_only=True)``;
* ``card.json``: the model card: what it generates, the reference it was trained on (generator,
  seeds, Geant4 version, ``physics_data``), the training budget and the measured fidelity.

:func:`resolve_model` turns a shipped name, a run directory or a checkpoint file into the
checkpoint's path; ``showerforge.load`` loads it as the surrogate of its kind.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from showerforge.errors import UserError
from showerforge.runs.checkpoint import (
    CheckpointError,
    checkpoint_path,
    read_checkpoint,
    save_checkpoint,
    write_json_atomic,
)

__all__ = ["PRETRAINED_DIR", "shipped_models", "pretrained_checkpoint", "export_pretrained", "resolve_model"]

PRETRAINED_DIR = Path(str(resources.files("showerforge"))) / "pretrained"
"""Folder of the shipped models (one sub-folder per name)."""

_CHECKPOINT = "model.pt"
_CARD = "card.json"
_SLIM_DROP = ("model", "optimizer")


def shipped_models() -> dict[str, dict[str, Any]]:
    """Model cards of the shipped models, by name (empty when none is installed)."""
    cards = {}
    if PRETRAINED_DIR.is_dir():
        for card in sorted(PRETRAINED_DIR.glob(f"*/{_CARD}")):
            if (card.parent / _CHECKPOINT).is_file():
                cards[card.parent.name] = json.loads(card.read_text())
    return cards


def pretrained_checkpoint(name: str) -> Path:
    """Checkpoint file of a shipped model, or a :class:`~showerforge.errors.UserError` naming the shipped ones."""
    path = PRETRAINED_DIR / name / _CHECKPOINT
    if not path.is_file():
        known = ", ".join(shipped_models()) or "none"
        raise UserError(
            f"{name}: neither a run directory, a checkpoint file nor a shipped model "
            f"(shipped: {known}; list them with `showerforge models`)"
        )
    return path


def _compact_preprocessing(state: dict[str, Any] | str) -> dict[str, Any]:
    """The preprocessing state with energy-binned shape statistics rounded to 5 decimals.

    They are logits of order 1-15 (~200k numbers for ds2 with 8 bins); at full precision their JSON
    text would be ~4 MB of a shipped file, rounded ~2 MB, and generated showers change by < 1e-4
    relative.
    """
    st: dict[str, Any] = json.loads(state) if isinstance(state, str) else dict(state)
    shape = dict(st.get("shape", {}))
    if "n_bins" in shape:
        for key in ("mean", "low", "high"):
            shape[key] = np.round(np.asarray(shape[key], dtype=np.float64), 5).tolist()
        shape["std"] = np.maximum(np.round(np.asarray(shape["std"], dtype=np.float64), 5), 1e-5).tolist()
        st["shape"] = shape
    return st


def export_pretrained(run: str | Path, out_dir: str | Path, card: dict[str, Any]) -> Path:
    """Write a run as a shippable model: ``out_dir/model.pt`` (EMA weights only) and ``card.json``.

    Args:
        run: run directory or checkpoint written by training.
        out_dir: destination folder (e.g. ``src/showerforge/pretrained/ds2-electron``).
        card: model card; the checkpoint's model name, config, epochs and training settings are
            added under ``model``.

    Returns:
        The path of the slim checkpoint.
    """
    src = checkpoint_path(run)
    ckpt = read_checkpoint(src)
    slim = {k: v for k, v in ckpt.items() if k not in _SLIM_DROP}
    slim["preprocessing"] = _compact_preprocessing(slim["preprocessing"])
    prov = dict(slim.get("provenance", {}))
    if "path" in prov:  # a local path means nothing on another machine: keep the file name
        prov["path"] = Path(str(prov["path"])).name
    slim["provenance"] = prov
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = save_checkpoint(out / _CHECKPOINT, slim)
    full_card = {
        **card,
        "model": {
            "name": ckpt["model_name"],
            "config": ckpt["model_config"],
            "epochs": int(ckpt["epoch"]),
            "train": ckpt["train_config"],
            "parameters": sum(int(v.numel()) for k, v in ckpt["ema"].items() if k.startswith("module.")),
        },
    }
    write_json_atomic(out / _CARD, full_card)
    return path


def resolve_model(name_or_path: str | Path) -> Path:
    """Checkpoint file of a run directory, a checkpoint file or a shipped model name."""
    p = Path(name_or_path)
    if p.exists():
        path = checkpoint_path(p)
        if not path.is_file():
            raise CheckpointError(
                f"{p}: a directory without {path.name}; give a run directory written by "
                "`showerforge train`, a checkpoint file or a shipped model name"
            )
        return path
    return pretrained_checkpoint(str(name_or_path))
