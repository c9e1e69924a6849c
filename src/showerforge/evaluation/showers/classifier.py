"""Classifier two-sample test of the CaloChallenge 2022 (``code/evaluate.py``, modes cls-low/high).

A fully connected network learns to tell reference showers (label 1) from candidate showers
(label 0). Protocol, as in the challenge:

1. both samples are cut to the same size ``n`` and each is split 60 / 20 / 20 % into train, test
   and validation (seeded; the same permutation for both samples, so row ``i`` of each sample
   lands in the same split: identical files give identical inputs with both labels);
2. network: ``Linear(d, h)``, then ``n_layers - 1`` times ``Linear(h, h)``, LeakyReLU after
   each, ``Linear(h, 1)`` logit; default ``h = 2048``, ``n_layers = 3`` (the challenge's
   ``cls_n_layer=2`` hidden-to-hidden layers after the input layer);
3. training: BCE with logits, Adam (lr 2e-4), batch 1000, up to 50 epochs; the state of the
   epoch with the best *test* accuracy is kept (training stops early at test accuracy 1);
4. calibration: isotonic regression (``y_min=1e-6, y_max=1-1e-6``, clipped) of the sigmoid
   outputs fitted on the test split;
5. on the validation split: ``AUC`` of the calibrated outputs, and
   ``JSD = (ln 2 - BCE) / ln 2`` with ``BCE`` the binary cross-entropy of the calibrated outputs
   (0: indistinguishable, 1: perfectly separated).

The value is the mean over ``repeats`` runs (different seeds for split and initialisation); the
error is their standard deviation, or, for a single run, the statistical error on the validation
split: Hanley & McNeil (1982) for the AUC, standard error of the mean cross-entropy for the JSD.

Inputs (:func:`low_level_inputs`, :func:`high_level_inputs`):

* low level: ``[log10 E_inc, voxels / E_inc]`` (MeV / MeV), thresholded voxels;
* high level: ``[log10 E_inc, log10(E_layer + 1e-8), center_x / 100, center_y / 100,
  width_x / 100, width_y / 100, log10(E_tot + 1e-8), sparsity, center_r / 100, width_r / 100]``
  with the x/y columns only for layers binned in angle and energies in MeV, lengths in mm.

Differences from the challenge script: float32 instead of float64 arithmetic, CPU or GPU
whichever torch finds, seeded splits and initialisation. ``quick=True`` runs a small network
(3 x 256, lr 1e-3, 15 epochs, one repeat) for small samples and tests.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from showerforge.errors import UserError
from showerforge.evaluation.metrics import Measurement
from showerforge.evaluation.showers.features import PER_LAYER_FEATURES, defined_layers
from showerforge.geometry import Geometry

__all__ = [
    "ClassifierConfig",
    "ClassifierResult",
    "classifier_test",
    "classifier_test_indexed",
    "low_level_inputs",
    "high_level_inputs",
    "verdict_inputs",
    "hanley_mcneil_error",
]


@dataclass(frozen=True)
class ClassifierConfig:
    """Hyper-parameters of the two-sample classifier.

    Attributes:
        hidden: hidden units per layer.
        n_layers: number of hidden layers.
        lr: Adam learning rate.
        batch_size: showers per batch.
        epochs: maximum number of epochs.
        repeats: independent runs averaged.
        split: train / test / validation fractions.
        device: torch device (``None``: ``cuda`` when available, else ``cpu``).
        threads: CPU threads for torch (``None``: every core this process may use for a wide
            network, 1 for ``hidden <= 512``, whose small matrices gain nothing from threads and
            lose badly to thread contention on a busy machine).
        standardise: scale each input column to zero mean and unit variance (training split).
        select: which epoch is kept: ``"test_accuracy"`` (the challenge's) or ``"test_loss"``
            (lowest BCE on the test split: early stopping on the loss).
        patience: stop after this many epochs without improvement (0: run every epoch).
        weight_decay: Adam weight decay (L2).
    """

    hidden: int = 2048
    n_layers: int = 3
    lr: float = 2e-4
    batch_size: int = 1000
    epochs: int = 50
    repeats: int = 5
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    device: str | None = None
    threads: int | None = None
    standardise: bool = False
    select: str = "test_accuracy"
    patience: int = 0
    weight_decay: float = 0.0

    @classmethod
    def quick(cls) -> ClassifierConfig:
        """A small fast setting for small samples and tests: 3 x 256, 15 epochs, 1 repeat."""
        return cls(hidden=256, n_layers=3, lr=1e-3, batch_size=1000, epochs=15, repeats=1)

    @classmethod
    def verdict(cls) -> ClassifierConfig:
        """The test with measured power: standardised inputs, 3 x 256, batch 128, up to 300 epochs,
        early stopping on the test-split loss (patience 20), one run (power curve in
        ``docs/evaluation.md``)."""
        return cls(
            hidden=256,
            n_layers=3,
            lr=1e-3,
            batch_size=128,
            epochs=300,
            repeats=1,
            standardise=True,
            select="test_loss",
            patience=20,
            weight_decay=1e-5,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        d = asdict(self)
        d["split"] = list(self.split)
        return d


@dataclass(frozen=True)
class ClassifierResult:
    """Outcome of :func:`classifier_test`.

    Attributes:
        auc: ROC AUC on the validation split (0.5: indistinguishable).
        jsd: (ln 2 - BCE) / ln 2 on the validation split.
        n_per_class: showers per class used (train + test + validation).
        runs: per-repeat ``{"auc", "jsd", "best_epoch"}``.
        scores: per-shower classifier logits of the last run (not in :meth:`to_dict`).
    """

    auc: Measurement
    jsd: Measurement
    n_per_class: int
    runs: tuple[dict[str, float], ...] = ()
    scores: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    """Of the last run: (rows of ``inputs``, label 1 = reference, logit = log w) on the validation
    split, where w = p / (1 - p) estimates the density ratio reference / candidate."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``auc`` and ``jsd`` as ``{"value", "error"}``)."""
        return {
            "auc": self.auc.to_dict(),
            "jsd": self.jsd.to_dict(),
            "n_per_class": self.n_per_class,
            "runs": [dict(r) for r in self.runs],
        }


def low_level_inputs(incident_mev: np.ndarray, showers_mev: np.ndarray, *, threshold_mev: float = 0.0) -> np.ndarray:
    """Low-level classifier input ``[log10 E_inc, voxels / E_inc]``.

    Args:
        incident_mev: (n,) MeV.
        showers_mev: (n, V) MeV; voxels below ``threshold_mev`` (or negative) are set to 0.

    Returns:
        (n, V + 1) float32.
    """
    inc = np.asarray(incident_mev, dtype=np.float64).reshape(-1, 1)
    out = np.empty((inc.shape[0], showers_mev.shape[1] + 1), dtype=np.float32)
    out[:, 0] = np.log10(inc[:, 0])
    vox = np.asarray(showers_mev, dtype=np.float32)
    out[:, 1:] = np.where((vox < threshold_mev) | (vox < 0), 0.0, vox) / inc.astype(np.float32)
    return out


def high_level_inputs(features: dict[str, np.ndarray], geometry: Geometry) -> np.ndarray:
    """High-level classifier input from the features of :mod:`showerforge.evaluation.showers.features`.

    Returns:
        (n, d) float32, columns as in the module docstring.
    """
    cols = [np.log10(features["incident_energy"])[:, None]]
    layers = {name: defined_layers(geometry, name) for name in PER_LAYER_FEATURES}
    cols.append(np.log10(features["layer_energy"][:, layers["layer_energy"]].astype(np.float64) + 1e-8))
    for name in ("center_x", "center_y", "width_x", "width_y"):
        cols.append(features[name][:, layers[name]] / 1e2)
    cols.append(np.log10(features["etot"] + 1e-8)[:, None])
    cols.append(features["sparsity"][:, layers["sparsity"]])
    for name in ("center_r", "width_r"):
        cols.append(features[name][:, layers[name]] / 1e2)
    return np.concatenate([np.asarray(c, dtype=np.float32) for c in cols], axis=1)


def verdict_inputs(features: dict[str, np.ndarray], geometry: Geometry) -> np.ndarray:
    """Inputs of the verdict classifier: :func:`high_level_inputs` plus the ratios physicists read.

    Appends ``E_tot / E_inc`` and ``E_layer / E_tot`` of every layer with voxels (0 for an empty
    shower) to the high-level columns; the verdict classifier standardises every column.

    Returns:
        (n, d + 1 + n_layers) float32.
    """
    etot = np.asarray(features["etot"], dtype=np.float64)
    layers = defined_layers(geometry, "layer_energy")
    frac = features["layer_energy"][:, layers].astype(np.float64) / np.where(etot > 0, etot, 1.0)[:, None]
    extra = np.concatenate([np.asarray(features["etot_over_einc"], dtype=np.float64)[:, None], frac], axis=1)
    return np.concatenate([high_level_inputs(features, geometry), extra.astype(np.float32)], axis=1)


def hanley_mcneil_error(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUC estimate (Hanley & McNeil 1982, Radiology 143:29)."""
    q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def _threads(cfg: ClassifierConfig) -> int:
    if cfg.threads is not None:
        return max(1, int(cfg.threads))
    if cfg.hidden <= 512:
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def classifier_test(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    quick: bool = False,
    config: ClassifierConfig | None = None,
    repeats: int | None = None,
    seed: int = 0,
) -> ClassifierResult:
    """Train a classifier to separate reference from candidate inputs; AUC and JSD on held-out data.

    Args:
        reference: (n, d) inputs of the reference sample (label 1).
        candidate: (m, d) inputs of the candidate sample (label 0).
        quick: use :meth:`ClassifierConfig.quick` (when ``config`` is None).
        config: hyper-parameters (default: the challenge's full protocol).
        repeats: override ``config.repeats``.
        seed: seeds the subsampling, the splits, the initialisation and the batches.

    Returns:
        :class:`ClassifierResult`. Rows beyond ``min(n, m)`` are left out (seeded choice), so
        the classes are balanced.

    Raises:
        UserError: fewer than 10 showers per class, or inputs of different widths.
    """
    ref, cand = np.asarray(reference, dtype=np.float32), np.asarray(candidate, dtype=np.float32)
    if ref.ndim != 2 or cand.ndim != 2 or ref.shape[1] != cand.shape[1]:
        raise UserError(f"classifier inputs must be (n, d) with the same d, got {ref.shape} and {cand.shape}")
    x = np.concatenate([ref, cand])
    idx = np.arange(len(x))
    return classifier_test_indexed(
        x, idx[: len(ref)], idx[len(ref) :], quick=quick, config=config, repeats=repeats, seed=seed
    )


def classifier_test_indexed(
    inputs: np.ndarray,
    reference_rows: np.ndarray,
    candidate_rows: np.ndarray,
    *,
    quick: bool = False,
    config: ClassifierConfig | None = None,
    repeats: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> ClassifierResult:
    """:func:`classifier_test` on rows of one array, without copying it (for large inputs).

    Args:
        inputs: (N, d) float32 inputs of both samples.
        reference_rows: (n,) rows of ``inputs`` forming the reference sample (label 1).
        candidate_rows: (m,) rows forming the candidate sample (label 0); disjoint from the
            reference rows.
        quick, config, repeats, seed: as in :func:`classifier_test`.
        progress: called as ``progress(epochs done, epochs)`` after every epoch, ``epochs`` being
            ``repeats`` times the maximum epochs (a run that stops early counts as complete).
    """
    import torch  # heavy: imported only when a classifier is trained

    cfg = config or (ClassifierConfig.quick() if quick else ClassifierConfig())
    if repeats is not None:
        cfg = replace(cfg, repeats=int(repeats))
    x = np.asarray(inputs, dtype=np.float32)
    pos, neg = np.asarray(reference_rows, dtype=np.int64), np.asarray(candidate_rows, dtype=np.int64)
    if x.ndim != 2:
        raise UserError(f"classifier inputs must be (N, d), got {x.shape}")
    n = min(len(pos), len(neg))
    if n < 10:
        raise UserError(f"classifier test needs at least 10 showers per class, got {n}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xC1A5]))
    if len(pos) > n:
        pos = pos[np.sort(rng.choice(len(pos), n, replace=False))]
    if len(neg) > n:
        neg = neg[np.sort(rng.choice(len(neg), n, replace=False))]
    if cfg.select not in ("test_accuracy", "test_loss"):
        raise UserError(f"classifier select={cfg.select!r}; expected 'test_accuracy' or 'test_loss'")
    runs = []
    scores: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    old_threads = torch.get_num_threads()
    torch.set_num_threads(_threads(cfg))
    if progress is not None:
        progress(0, cfg.repeats * cfg.epochs)
    try:
        for i in range(cfg.repeats):
            run, scores = _one_run(torch, x, pos, neg, cfg, int(rng.integers(2**31)), _epoch_tick(progress, i, cfg))
            runs.append(run)
    finally:
        torch.set_num_threads(old_threads)
    aucs = np.array([run["auc"] for run in runs])
    jsds = np.array([run["jsd"] for run in runs])
    if len(runs) > 1:
        auc = Measurement(float(aucs.mean()), float(aucs.std(ddof=1)))
        jsd = Measurement(float(jsds.mean()), float(jsds.std(ddof=1)))
    else:
        run = runs[0]
        auc = Measurement(
            float(aucs[0]), hanley_mcneil_error(float(aucs[0]), int(run["n_val_pos"]), int(run["n_val_neg"]))
        )
        jsd = Measurement(float(jsds[0]), float(run["jsd_error"]))
    return ClassifierResult(auc, jsd, n, tuple(runs), scores)


def _epoch_tick(
    progress: Callable[[int, int], None] | None, repeat: int, cfg: ClassifierConfig
) -> Callable[[int], None] | None:
    """``progress`` as seen by repeat ``repeat``: epoch ``e`` of it is epoch ``repeat * epochs + e``."""
    if progress is None:
        return None
    total = cfg.repeats * cfg.epochs
    return lambda epoch: progress(repeat * cfg.epochs + epoch, total)


def _splits(
    pos: np.ndarray, neg: np.ndarray, split: tuple[float, float, float], rng: np.random.Generator
) -> list[np.ndarray]:
    """Rows of train, test and validation: the same permuted positions of both samples."""
    n = len(pos)
    perm = rng.permutation(n)
    n_train, n_test = int(n * split[0]), int(n * split[1])
    n_val = min(n - n_train - n_test, int(round(n * split[2])))
    cuts = [(0, n_train), (n_train, n_train + n_test), (n_train + n_test, n_train + n_test + n_val)]
    return [np.concatenate([pos[perm[a:b]], neg[perm[a:b]]]) for a, b in cuts]


def _one_run(
    torch: Any,
    x: np.ndarray,
    pos: np.ndarray,
    neg: np.ndarray,
    cfg: ClassifierConfig,
    seed: int,
    on_epoch: Callable[[int], None] | None = None,
) -> tuple[dict[str, float], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    from sklearn.isotonic import IsotonicRegression
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    train, test, val = _splits(pos, neg, cfg.split, rng)
    y = np.zeros(len(x), dtype=np.float32)
    y[pos] = 1.0
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[Any] = []
        width = x.shape[1]
        for _ in range(cfg.n_layers):
            layers += [torch.nn.Linear(width, cfg.hidden), torch.nn.LeakyReLU()]
            width = cfg.hidden
        model = torch.nn.Sequential(*layers, torch.nn.Linear(width, 1)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    if cfg.standardise:  # statistics of the training rows, applied batch by batch
        mu = x[train].mean(axis=0, dtype=np.float64)
        sd = x[train].std(axis=0, dtype=np.float64)
        shift = torch.from_numpy(mu.astype(np.float32)).to(device)
        scale = torch.from_numpy(np.where(sd > 0, 1.0 / np.where(sd > 0, sd, 1.0), 1.0).astype(np.float32)).to(device)

    def batches(idx: np.ndarray) -> Any:
        for lo in range(0, len(idx), cfg.batch_size):
            sel = np.sort(idx[lo : lo + cfg.batch_size])
            xb = torch.from_numpy(x[sel]).to(device)
            if cfg.standardise:
                xb = (xb - shift) * scale
            yield (xb, torch.from_numpy(y[sel]).to(device))

    def logits(idx: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            out = [model(xb)[:, 0].double().cpu().numpy() for xb, _ in batches(idx)]
        return np.concatenate(out)

    def predict(idx: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-logits(idx)))

    test_y = y[np.concatenate([np.sort(test[lo : lo + cfg.batch_size]) for lo in range(0, len(test), cfg.batch_size)])]
    best_acc, best_epoch, best_state = -1.0, 0, None
    best_score = -math.inf
    for epoch in range(cfg.epochs):
        model.train()
        for xb, yb in batches(rng.permutation(train)):
            opt.zero_grad()
            loss = loss_fn(model(xb)[:, 0], yb)
            loss.backward()
            opt.step()
        z = logits(test)
        acc = float(np.mean((z > 0) == (test_y > 0.5)))
        if cfg.select == "test_loss":  # minus the mean BCE: higher is better
            score = -float(np.mean(np.logaddexp(0.0, z) - test_y * z))
        else:
            score = acc
        if score > best_score:
            best_score, best_acc, best_epoch = score, acc, epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if on_epoch is not None:
            on_epoch(epoch + 1)
        if acc == 1.0 and cfg.select == "test_accuracy":
            break
        if cfg.patience and epoch + 1 - best_epoch >= cfg.patience:
            break
    if on_epoch is not None and epoch + 1 < cfg.epochs:  # stopped early: the run is complete
        on_epoch(cfg.epochs)
    if best_state is not None:
        model.load_state_dict(best_state)
    p_test = predict(test)
    val_order = np.concatenate([np.sort(val[lo : lo + cfg.batch_size]) for lo in range(0, len(val), cfg.batch_size)])
    z_val = logits(val)
    p_val, val_y = 1.0 / (1.0 + np.exp(-z_val)), y[val_order].astype(np.float64)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-6, y_max=1.0 - 1e-6).fit(p_test, test_y)
    p_cal = np.clip(iso.predict(p_val), 1e-6, 1.0 - 1e-6)
    auc = float(roc_auc_score(val_y, p_cal))
    bce_each = -(val_y * np.log(p_cal) + (1.0 - val_y) * np.log(1.0 - p_cal))
    ln2 = math.log(2.0)
    jsd = (ln2 - float(bce_each.mean())) / ln2
    jsd_err = float(bce_each.std(ddof=1) / math.sqrt(len(bce_each))) / ln2
    run = {
        "auc": auc,
        "jsd": jsd,
        "jsd_error": jsd_err,
        "best_epoch": float(best_epoch),
        "epochs_run": float(epoch + 1),
        "test_accuracy": best_acc,
        "n_val_pos": int(val_y.sum()),
        "n_val_neg": int((1 - val_y).sum()),
    }
    return run, (val_order, val_y, z_val)
