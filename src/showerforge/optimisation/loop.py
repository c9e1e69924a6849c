"""The optimisation loop (AIDO-like), recorded iteration by iteration and resumable.

Iteration ``k`` (all randomness from ``SeedSequence([seed, k])``):

1. draw ``designs_per_iteration`` concrete designs around the current point (design 0 is the
   current point itself, :meth:`DesignSpace.sample`);
2. simulate ``showers_per_design`` showers at each (Geant4 or the toy engine), kept with their
   designs in ``OUT/iterations/iter-KKKK/showers.h5``;
3. reconstruct the energy (cross-fitted, :mod:`reco`) and compute the per-event loss;
4. train the surrogate on the showers of the last ``history_iterations`` iterations;
5. take ``steps_per_iteration`` Adam steps on ``u`` (continuous) and the logits (discrete) of
   ``surrogate loss + penalty(length, cost)``, each step projected into the trust region
   ``|u - u_k| <= trust_radius`` (per parameter, in units of its range) and ``[0, 1]``, and every
   material logit within ``logit_radius`` of its value at the start of the iteration.

After each iteration ``OUT/state.json`` (the current point, every record) and
``OUT/history.jsonl`` are rewritten atomically, then the plots and ``OUT/index.html``. A run
killed at any point resumes from the last recorded iteration; the showers of an iteration that
finished simulating are reused, finished Geant4 shards too, so the path is the same.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from showerforge.data.io import atomic_output
from showerforge.errors import UserError
from showerforge.optimisation.config import OptConfig, load_config
from showerforge.optimisation.design import Design, DesignSpace
from showerforge.optimisation.engines import (
    EventBatch,
    check_engine,
    provenance_summary,
    read_batch,
    simulate_designs,
    write_batch,
)
from showerforge.optimisation.reco import Reconstruction, load_reconstruction, per_event_loss, residuals
from showerforge.optimisation.surrogate import LossSurrogate, one_thread, train_surrogate

__all__ = ["OptimiseResult", "optimise", "descend", "run_loop", "check_output"]

STATE_FORMAT = "showerforge-optimise-v1"


@dataclass
class OptimiseResult:
    """What :func:`optimise` returns: the output folder, the records, the start and final designs."""

    output: Path
    records: list[dict[str, Any]]
    start: Design
    final: Design

    def __fspath__(self) -> str:
        return str(self.output)


def optimise(
    config: str | Path,
    output: str | Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    iterations: int | None = None,
    progress: bool = False,
    on_status: Callable[[str], None] | None = None,
) -> OptimiseResult:
    """Run (or resume) the optimisation of ``config`` into the folder ``output`` (module docstring).

    Args:
        config: the TOML config (``docs/optimise.md``).
        output: the run folder (created; a folder of a run of another config is refused).
        scheduler: a Dask scheduler address (``tcp://host:port``) for the Geant4 shards.
        workers: local Geant4 processes (overrides ``[simulation] workers``).
        iterations: overrides ``[simulation] iterations``.
        progress: a progress bar of the Geant4 showers.
        on_status: called with one-line status messages.
    """
    cfg = load_config(config, workers=workers, iterations=iterations)
    return run_loop(cfg, Path(output), scheduler=scheduler, progress=progress, say=on_status or (lambda m: None))


def check_output(cfg: OptConfig, out: Path) -> dict[str, Any] | None:
    """Refuse an output that is a file or the config's folder; return the saved state if any."""
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out}: is a file; give a folder for the run")
    if out.resolve() == Path(cfg.path).resolve().parent:
        raise UserError(f"-o {out}: is the folder of the config {cfg.path}; give a new folder for the run")
    state_path = out / "state.json"
    if not state_path.is_file():
        if out.is_dir() and any(out.iterdir()):
            raise UserError(f"-o {out}: the folder holds other files and no optimisation run; give a new folder")
        return None
    state: dict[str, Any] = json.loads(state_path.read_text())
    if state.get("format") != STATE_FORMAT or state.get("config_hash") != config_hash(cfg):
        raise UserError(
            f"-o {out}: holds a run of another config; give a new folder (or the config of that run, "
            f"{out / 'config.json'})"
        )
    return state


def config_hash(cfg: OptConfig) -> str:
    """Hash of everything that determines the path (``iterations``, ``workers``, ``baseline_seeds`` excluded)."""
    d = cfg.to_json_dict()
    for key in ("iterations", "budget_showers", "workers", "baseline_seeds"):
        d.pop(key, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def run_loop(
    cfg: OptConfig, out: Path, *, scheduler: str | None = None, progress: bool = False, say: Callable[[str], None]
) -> OptimiseResult:
    """The loop of a checked config (see :func:`optimise`)."""
    from showerforge.optimisation.report import write_report
    from showerforge.simulate.shards import campaign_lock

    space = DesignSpace(cfg)
    reco = load_reconstruction(cfg.reconstruction)
    state = check_output(cfg, out)
    out.mkdir(parents=True, exist_ok=True)
    with campaign_lock(out / "state.json"):
        if state is None:
            u, logits = space.start(np.random.default_rng(np.random.SeedSequence([cfg.seed, 999_999])))
            state = _new_state(cfg, u, logits)
            _write_json(out / "config.json", cfg.to_json_dict())
            _save(out, state)  # a run killed in its first iteration resumes too
        start = space.best(np.asarray(state["start_u"]), [np.asarray(x) for x in state["start_logits"]])
        todo = range(len(state["records"]), cfg.n_iterations)
        if len(todo):
            check_engine(cfg, space, say)
        for k in todo:
            t0 = time.time()
            record = _iteration(cfg, space, reco, state, k, out, scheduler, progress, say)
            record["seconds"] = round(time.time() - t0, 2)
            state["records"].append(record)
            state["u"], state["logits"] = record["u_after"], record["logits_after"]
            _save(out, state)
            write_report(out, cfg, space, state)
            say(_summary_line(record))
        if not len(todo):
            write_report(out, cfg, space, state)
    final = space.best(np.asarray(state["u"]), [np.asarray(x) for x in state["logits"]])
    return OptimiseResult(out, state["records"], start, final)


def _new_state(cfg: OptConfig, u: np.ndarray, logits: list[np.ndarray]) -> dict[str, Any]:
    return {
        "format": STATE_FORMAT,
        "config_hash": config_hash(cfg),
        "start_u": u.tolist(),
        "start_logits": [lg.tolist() for lg in logits],
        "u": u.tolist(),
        "logits": [lg.tolist() for lg in logits],
        "records": [],
    }


def _iteration(
    cfg: OptConfig,
    space: DesignSpace,
    reco: Reconstruction,
    state: dict[str, Any],
    k: int,
    out: Path,
    scheduler: str | None,
    progress: bool,
    say: Callable[[str], None],
) -> dict[str, Any]:
    seeds = np.random.SeedSequence([cfg.seed, k]).generate_state(4)
    u0 = np.asarray(state["u"], dtype=np.float64)
    logits0 = [np.asarray(x, dtype=np.float64) for x in state["logits"]]
    batch_path = out / "iterations" / f"iter-{k:04d}" / "showers.h5"
    if not batch_path.is_file():
        _simulate_iteration(cfg, space, u0, logits0, k, int(seeds[0]), batch_path, scheduler, progress, say)
    rows, centre, provenance = _training_rows(cfg, space, reco, out, k, int(seeds[1]))
    sur, history = train_surrogate(*rows, cfg.surrogate, seed=int(seeds[2]) >> 1)
    u1, logits1, info = descend(sur, space, u0, logits0, seed=int(seeds[3]) >> 1)
    before, after = space.best(u0, logits0), space.best(u1, logits1)
    length, cost = space.design_length_cost(before)
    return {
        "iteration": k,
        "design": before.to_dict(),
        "design_after": after.to_dict(),
        "probabilities_after": [_softmax(lg).round(4).tolist() for lg in logits1],
        "length_mm": round(length, 3),
        "cost": round(cost, 3),
        "geant4_loss": centre[0],
        "geant4_loss_error": centre[1],
        "geant4_showers": cfg.showers_per_iteration,
        "geant4_showers_total": cfg.showers_per_iteration * (k + 1),
        "surrogate_fit_loss": round(history[-1], 5),
        **info,
        "provenance": provenance,
        "u_before": u0.tolist(),
        "u_after": u1.tolist(),
        "logits_after": [lg.tolist() for lg in logits1],
    }


def _simulate_iteration(
    cfg: OptConfig,
    space: DesignSpace,
    u0: np.ndarray,
    logits0: list[np.ndarray],
    k: int,
    seed: int,
    path: Path,
    scheduler: str | None,
    progress: bool,
    say: Callable[[str], None],
) -> None:
    rng = np.random.default_rng(seed)
    u, choices = space.sample(u0, logits0, cfg.designs_per_iteration, rng)
    designs = [space.design(u[i], choices[i]) for i in range(len(u))]
    energies = [cfg.energy.sample(cfg.showers_per_design, rng) for _ in designs]
    shard_seeds = [int(s) >> 1 for s in rng.integers(0, 2**32, size=len(designs), dtype=np.uint64)]
    say(f"iteration {k}: {len(designs)} designs x {cfg.showers_per_design} showers ({cfg.engine})")
    folder = path.parent / "shards"
    batch = simulate_designs(
        cfg, space, designs, energies, shard_seeds, folder, scheduler=scheduler, progress=progress, say=say
    )
    write_batch(path, batch, u, choices, designs)
    shutil.rmtree(folder, ignore_errors=True)


def _training_rows(
    cfg: OptConfig, space: DesignSpace, reco: Reconstruction, out: Path, k: int, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[float, float], dict[str, Any]]:
    """Surrogate rows of the last ``history_iterations`` iterations; the loss of design 0 of iteration ``k``
    (with its standard error) and the provenance summary of iteration ``k``'s showers."""
    xs, es, rs = [], [], []
    centre = (float("nan"), float("nan"))
    provenance: dict[str, Any] = {}
    for j in range(max(0, k - cfg.history_iterations + 1), k + 1):
        batch, u, choices = read_batch(out / "iterations" / f"iter-{j:04d}" / "showers.h5")
        pred = reconstruct(reco, batch, seed + j)
        r = residuals(pred, batch.incident_mev)
        xs.append(space.vector(u, choices)[batch.design_index])
        es.append(batch.incident_mev)
        rs.append(r)
        if j == k:
            loss = per_event_loss(pred, batch.incident_mev)[batch.design_index == 0]
            centre = (round(float(loss.mean()), 6), round(float(loss.std(ddof=1) / np.sqrt(len(loss))), 6))
            provenance = provenance_summary(batch.provenance)
    return (np.concatenate(xs), np.concatenate(es), np.concatenate(rs)), centre, provenance


def reconstruct(reco: Reconstruction, batch: EventBatch, seed: int) -> np.ndarray:
    """Predicted energies (MeV) of a batch, checked."""
    pred = np.asarray(reco(batch.layer_mev, batch.incident_mev, batch.design_index, int(seed)), dtype=np.float64)
    if pred.shape != batch.incident_mev.shape or not np.all(np.isfinite(pred)):
        raise UserError(
            f"reconstruction: expected {len(batch)} finite predicted energies (MeV), got shape {pred.shape}"
        )
    return pred


def descend(
    sur: LossSurrogate, space: DesignSpace, u0: np.ndarray, logits0: list[np.ndarray], *, seed: int
) -> tuple[np.ndarray, list[np.ndarray], dict[str, Any]]:
    """Adam on ``surrogate loss + penalty`` from ``(u0, logits0)`` inside the trust region.

    The objective is deterministic (fixed noise and energies), so the point returned is the best one
    along the Adam path (the start included): the objective after is never above the objective
    before, however Adam's momentum carries it around a steep penalty wall.

    Returns:
        The new ``u`` and logits, and the surrogate loss, penalty and objective before and after.
    """
    cfg = space.cfg
    rng = np.random.default_rng(seed)
    energies, noise = sur.grid(np.sort(cfg.energy.sample(16, rng)), seed)
    lo = torch.as_tensor(np.clip(u0 - cfg.trust_radius, 0, 1), dtype=torch.float32)
    hi = torch.as_tensor(np.clip(u0 + cfg.trust_radius, 0, 1), dtype=torch.float32)
    u = torch.tensor(u0, dtype=torch.float32, requires_grad=True)
    logits = [torch.tensor(lg, dtype=torch.float32, requires_grad=True) for lg in logits0]
    bounds = [(torch.as_tensor(lg - cfg.logit_radius), torch.as_tensor(lg + cfg.logit_radius)) for lg in logits0]
    groups = [{"params": [u], "lr": cfg.learning_rate}]
    if logits:
        groups.append({"params": logits, "lr": 5 * cfg.learning_rate})
    opt = torch.optim.Adam(groups)

    def objective() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        probs = [torch.softmax(lg, 0) for lg in logits]
        loss = sur.expected_loss(space.torch_vector(u, probs), energies, noise)
        pen = space.expected_penalty(u.double(), [p.double() for p in probs]).float()
        return loss + pen, loss, pen

    def snapshot(values: tuple[torch.Tensor, ...]) -> tuple[list[float], torch.Tensor, list[torch.Tensor]]:
        return [float(v.detach()) for v in values], u.detach().clone(), [lg.detach().clone() for lg in logits]

    with one_thread():
        first = best = snapshot(objective())
        for _ in range(cfg.steps_per_iteration):
            values = objective()
            if float(values[0].detach()) < best[0][0]:
                best = snapshot(values)
            opt.zero_grad()
            values[0].backward()
            opt.step()
            with torch.no_grad():
                u.copy_(torch.minimum(torch.maximum(u, lo), hi))
                for lg, (a, b) in zip(logits, bounds):
                    lg.copy_(torch.minimum(torch.maximum(lg, a.float()), b.float()))
        end = snapshot(objective())
        best = end if end[0][0] < best[0][0] else best
    first_values, last = first[0], best[0]
    u_best, logits_best = best[1], best[2]
    info = {
        "objective_before": round(first_values[0], 6),
        "surrogate_loss_before": round(first_values[1], 6),
        "penalty_before": round(first_values[2], 6),
        "objective_after": round(last[0], 6),
        "surrogate_loss_after": round(last[1], 6),
        "penalty_after": round(last[2], 6),
    }
    return u_best.double().numpy(), [lg.double().numpy() for lg in logits_best], info


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x))
    return np.asarray(e / e.sum())


def _summary_line(r: dict[str, Any]) -> str:
    return (
        f"iteration {r['iteration']}: Geant4 loss {r['geant4_loss']:.4g} +- {r['geant4_loss_error']:.2g} at "
        f"length {r['length_mm']:.1f} mm, cost {r['cost']:.4g}; surrogate {r['surrogate_loss_before']:.4g} -> "
        f"{r['surrogate_loss_after']:.4g} ({r['seconds']:.0f} s, {r['geant4_showers_total']} showers)"
    )


def _write_json(path: Path, data: Any) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))


def _save(out: Path, state: dict[str, Any]) -> None:
    _write_json(out / "state.json", state)
    with atomic_output(out / "history.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in state["records"]))
