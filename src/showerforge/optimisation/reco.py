"""Reconstruction (showers -> energy) and the per-event loss.

A reconstruction is a function ``reco(features, true_mev, groups, seed) -> predicted_mev`` with
``features`` (N, L) the visible MeV of each layer, ``true_mev`` (N,) the incident energies,
``groups`` (N,) int the design of each shower and ``seed`` an int; it returns (N,) predicted MeV,
each predicted by a model that did not see that shower (cross-fitting), so the loss is not
flattered by over-fitting. The default, ``linear``, calibrates each design on its own: a
weighted least-squares fit of ``E = sum_l w_l e_l + c`` (weights ``1 / (E + 1 GeV)``, as the
loss), two folds. A user's reconstruction is named ``"module:function"`` in the config.

The per-event loss (AIDO): ``(y_pred - y)^2 / (|y| + 1)`` with ``y`` in GeV.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np

from showerforge.errors import UserError

__all__ = ["Reconstruction", "linear_reconstruction", "load_reconstruction", "per_event_loss", "residuals"]

Reconstruction = Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]


def linear_reconstruction(features: np.ndarray, true_mev: np.ndarray, groups: np.ndarray, seed: int) -> np.ndarray:
    """Per-design calibrated layer sum, cross-fitted on two folds (module docstring)."""
    pred = np.empty(len(true_mev), dtype=np.float64)
    rng = np.random.default_rng(seed)
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        fold = rng.permutation(len(rows)) % 2
        x = np.column_stack([features[rows], np.ones(len(rows))])
        y = true_mev[rows]
        w = 1.0 / np.sqrt(y / 1000.0 + 1.0)
        for k in (0, 1):
            fit, use = rows[fold != k], fold == k
            coef = _lstsq(x[fold != k] * w[fold != k, None], y[fold != k] * w[fold != k]) if fit.size else None
            pred[rows[use]] = x[use] @ coef if coef is not None else np.mean(y)
    return pred


def _lstsq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    scale = np.maximum(np.abs(a).max(axis=0), 1e-12)
    coef, *_ = np.linalg.lstsq(a / scale, b, rcond=None)
    return coef / scale


def load_reconstruction(spec: str) -> Reconstruction:
    """``linear`` or a Python entry ``module:function`` (the module must be importable)."""
    if spec == "linear":
        return linear_reconstruction
    module, _, name = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except ImportError as err:
        raise UserError(f"reconstruction {spec!r}: cannot import {module!r} ({err})") from None
    except AttributeError:
        raise UserError(f"reconstruction {spec!r}: module {module!r} has no {name!r}") from None
    if not callable(fn):
        raise UserError(f"reconstruction {spec!r}: {name!r} is not a function")
    return fn


def residuals(pred_mev: np.ndarray, true_mev: np.ndarray) -> np.ndarray:
    """``(y_pred - y) / sqrt(|y| + 1)`` (GeV): the per-event loss is its square."""
    y, p = np.asarray(true_mev) / 1000.0, np.asarray(pred_mev) / 1000.0
    return (p - y) / np.sqrt(np.abs(y) + 1.0)


def per_event_loss(pred_mev: np.ndarray, true_mev: np.ndarray) -> np.ndarray:
    """``(y_pred - y)^2 / (|y| + 1)``, y in GeV, shape (N,)."""
    return residuals(pred_mev, true_mev) ** 2
