"""Baselines at equal Geant4 budget: random search and Optuna's TPE, straight on Geant4.

Both spend the loop's budget (``n_iterations x designs_per_iteration`` designs of
``showers_per_design`` showers each), in batches of ``designs_per_iteration`` designs (one Geant4
campaign per batch, as an iteration of the loop). A design's objective is what the loop minimises,
measured: the mean per-event loss of its showers (the same reconstruction) plus the penalty of its
length and cost. The best design is the one with the lowest measured objective; it is then
verified with fresh seeds like the loop's final design (its measured objective is optimistic: it
won among noisy measurements). Batches are kept in ``FOLDER/batch-KKKK.h5`` with
``FOLDER/trials.jsonl``; a rerun resumes (TPE re-reads the finished trials).

A baseline may be repeated with other seeds (``repeat`` 1, 2, ...; :func:`run_name` names the
runs ``random``, ``random-s1``, ...): the spread of its verified results over the repeats says
how much of a comparison is the luck of one seed. Repeat 0 draws exactly what a single run draws.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from showerforge.data.io import atomic_output
from showerforge.errors import UserError
from showerforge.optimisation.config import OptConfig
from showerforge.optimisation.design import Design, DesignSpace
from showerforge.optimisation.engines import read_batch, simulate_designs, write_batch
from showerforge.optimisation.reco import load_reconstruction, per_event_loss

__all__ = ["BASELINES", "run_baseline", "run_name", "best_design"]

BASELINES = ("random", "tpe")
BASELINE_SALT = 5_000_003


def run_name(kind: str, repeat: int) -> str:
    """``random`` for the first run of a baseline, ``random-s1``, ``random-s2`` ... for its repeats."""
    return kind if repeat == 0 else f"{kind}-s{repeat}"


def _root(seed: int, repeat: int) -> list[int]:
    """Entropy of a baseline run's random numbers (repeat 0: what a single run has always drawn)."""
    return [seed, BASELINE_SALT] + ([BASELINE_SALT + repeat] if repeat else [])


def run_baseline(
    kind: str,
    cfg: OptConfig,
    space: DesignSpace,
    folder: Path,
    *,
    repeat: int = 0,
    scheduler: str | None = None,
    progress: bool = False,
    say: Callable[[str], None] = lambda m: None,
) -> dict[str, Any]:
    """Run (or resume) the baseline ``kind`` (``random`` or ``tpe``) with seed ``repeat``; returns its best trial."""
    if kind not in BASELINES:
        raise UserError(f"--baselines: unknown baseline {kind!r}; expected some of {', '.join(BASELINES)}")
    folder.mkdir(parents=True, exist_ok=True)
    trials = _read_trials(folder)
    root = _root(cfg.seed, repeat)
    if kind == "random":
        proposer: _Random | _Tpe = _Random(space, root)
    else:
        tpe_seed = cfg.seed if repeat == 0 else int(np.random.SeedSequence(root).generate_state(1)[0] >> 1)
        proposer = _Tpe(space, tpe_seed, trials)
    n_batches = cfg.n_iterations
    for b in range(n_batches):
        if (b + 1) * cfg.designs_per_iteration <= len(trials):
            continue  # done before (TPE was rebuilt from these trials)
        u, choices = proposer.ask(b, cfg.designs_per_iteration)
        values = _evaluate(cfg, space, u, choices, folder, b, root, scheduler, progress, say)
        new = [
            {"batch": b, "u": u[i].tolist(), "choices": choices[i].tolist(), **values[i]} for i in range(len(values))
        ]
        proposer.tell(new)
        trials += new
        with atomic_output(folder / "trials.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(t) + "\n" for t in trials))
        say(f"{run_name(kind, repeat)} batch {b}: best objective so far {min(t['objective'] for t in trials):.5g}")
    best = min(trials, key=lambda t: t["objective"])
    return {**best, "design": space.design(np.asarray(best["u"]), best["choices"]).to_dict(), "n_trials": len(trials)}


def _read_trials(folder: Path) -> list[dict[str, Any]]:
    path = folder / "trials.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _evaluate(
    cfg: OptConfig,
    space: DesignSpace,
    u: np.ndarray,
    choices: np.ndarray,
    folder: Path,
    b: int,
    root: list[int],
    scheduler: str | None,
    progress: bool,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Measured loss, penalty and objective of each design of batch ``b`` (``root``: :func:`_root`)."""
    path = folder / f"batch-{b:04d}.h5"
    designs = [space.design(u[i], choices[i]) for i in range(len(u))]
    if not path.is_file():
        rng = np.random.default_rng(np.random.SeedSequence([*root, b]))
        energies = [cfg.energy.sample(cfg.showers_per_design, rng) for _ in designs]
        seeds = [int(s) >> 1 for s in rng.integers(0, 2**32, size=len(designs), dtype=np.uint64)]
        batch = simulate_designs(
            cfg, space, designs, energies, seeds, folder / "shards", scheduler=scheduler, progress=progress, say=say
        )
        write_batch(path, batch, u, choices, designs)
    batch, _, _ = read_batch(path)
    reco = load_reconstruction(cfg.reconstruction)
    pred = np.asarray(reco(batch.layer_mev, batch.incident_mev, batch.design_index, cfg.seed + b), dtype=np.float64)
    loss = per_event_loss(pred, batch.incident_mev)
    out = []
    for i, d in enumerate(designs):
        li = loss[batch.design_index == i]
        pen = space.design_penalty(d)
        out.append(
            {
                "loss": float(li.mean()),
                "loss_error": float(li.std(ddof=1) / np.sqrt(len(li))),
                "penalty": pen,
                "objective": float(li.mean()) + pen,
            }
        )
    return out


class _Random:
    """Designs drawn uniformly: ``u`` in [0, 1], every material equally likely."""

    def __init__(self, space: DesignSpace, root: list[int]) -> None:
        self.space, self.root = space, root

    def ask(self, b: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(np.random.SeedSequence([*self.root, 1, b]))
        u = rng.uniform(0.0, 1.0, (n, self.space.n_cont))
        choices = np.stack([rng.integers(0, k, n) for k in self.space.sizes], axis=1) if self.space.sizes else None
        return u, choices if choices is not None else np.zeros((n, 0), dtype=np.int64)

    def tell(self, trials: list[dict[str, Any]]) -> None:
        pass


class _Tpe:
    """Optuna's TPE sampler, asked for a batch at a time (constant liar), told the measured objectives."""

    def __init__(self, space: DesignSpace, seed: int, done: list[dict[str, Any]]) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna, self.space = optuna, space
        self.dists: dict[str, Any] = {p.name: optuna.distributions.FloatDistribution(0.0, 1.0) for p in space.cont}
        self.dists |= {q.name: optuna.distributions.CategoricalDistribution(list(q.choices)) for q in space.disc}
        sampler = optuna.samplers.TPESampler(
            seed=seed, constant_liar=True, n_startup_trials=space.cfg.designs_per_iteration
        )
        self.study = optuna.create_study(sampler=sampler, direction="minimize")
        for t in done:
            self.study.add_trial(
                optuna.trial.create_trial(params=self._params(t), distributions=self.dists, value=t["objective"])
            )
        self.pending: list[Any] = []

    def _params(self, t: dict[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {p.name: float(v) for p, v in zip(self.space.cont, t["u"])}
        params |= {q.name: q.choices[int(j)] for q, j in zip(self.space.disc, t["choices"])}
        return params

    def ask(self, b: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        self.pending = [self.study.ask(self.dists) for _ in range(n)]
        u = np.asarray([[tr.params[p.name] for p in self.space.cont] for tr in self.pending]).reshape(n, -1)
        choices = np.asarray(
            [[q.choices.index(tr.params[q.name]) for q in self.space.disc] for tr in self.pending], dtype=np.int64
        ).reshape(n, -1)
        return u, choices

    def tell(self, trials: list[dict[str, Any]]) -> None:
        for tr, t in zip(self.pending, trials):
            self.study.tell(tr, t["objective"])


def best_design(space: DesignSpace, best: dict[str, Any]) -> Design:
    """The concrete design of a baseline's best trial."""
    return space.design(np.asarray(best["u"]), best["choices"])
