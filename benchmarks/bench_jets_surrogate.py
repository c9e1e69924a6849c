"""Jet surrogate speed beside Pythia8 + FastJet, measured in the same run on the same machine.

1. Reference: :func:`showerforge.simulate.jets.simulate_jets` generates ``--n-jets`` jets of
   ``--type`` (default gluon, MPI on, 30 particles) in this process; jets/s is wall clock,
   Pythia initialisation included (Pythia runs on one core).
2. Surrogate: a ``cfm-set`` model (``--run DIR`` for a trained run, else freshly initialised with
   the registry defaults and random weights; speed does not depend on the weights) whose
   preprocessing and multiplicity model are fitted on the reference jets just generated. Timed end
   to end with :func:`showerforge.generate.jet_set.sample_jets` (kinematics, multiplicity, ODE solve,
   inverse preprocessing, jet mass) at each ``--batch``; median of ``--repeats`` runs.

Prints a markdown table with the speed-up over the reference.

Example::

    python benchmarks/bench_jets_surrogate.py --n-jets 200 --batch 1 100 10000
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from showerforge.data.jet_preprocess import JetPreprocessor, multiplicity_target
from showerforge.generate.jet_set import JetSurrogate, load_jet_model, sample_jets
from showerforge.models import MODELS, get_solver
from showerforge.models.multiplicity import CategoricalMultiplicity
from showerforge.simulate.jets import JetBatch, JetConfig, simulate_jets

__all__ = ["reference_jets", "fresh_jet_surrogate", "jets_per_second", "main"]


def reference_jets(jet_type: str, n_jets: int, mpi: bool, seed: int = 1) -> tuple[JetBatch, float]:
    """Pythia8 + FastJet jets (30 particles) and the wall-clock rate in jets/s."""
    t0 = time.perf_counter()
    batch = simulate_jets(JetConfig(jet_type, n_particles=30, mpi=mpi), n_jets, seed=seed)
    return batch, n_jets / (time.perf_counter() - t0)


def fresh_jet_surrogate(jets: JetBatch, seed: int = 0) -> JetSurrogate:
    """An untrained ``cfm-set`` (registry defaults) with preprocessing and multiplicity fitted on ``jets``."""
    pf, jf, jt = jets.particle_features, jets.jet_features, jets.jet_type
    pre = JetPreprocessor(pf.shape[1]).fit(pf, jf, jt)
    mult = CategoricalMultiplicity(pre.conditioning.n_labels, pre.k_max)
    mult.fit(torch.from_numpy(pre.conditioning.labels(jt)), torch.from_numpy(multiplicity_target(pf, jf)))
    torch.manual_seed(seed)
    model = MODELS["cfm-set"].build(n_particles=pre.n_particles, n_features=pre.n_features, n_cond=pre.n_cond)
    with torch.no_grad():  # random (not zero-initialised) weights, as after training
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return JetSurrogate(model.eval(), mult, pre, model.config, Path("<fresh>"), "", 0)


def jets_per_second(sur: JetSurrogate, jet_type: str, batch: int, *, repeats: int, min_jets: int) -> float:
    """Median jets/s of :func:`sample_jets` at one batch size."""
    n = max(batch, min_jets)
    sample_jets(sur, [jet_type] * min(batch, 64), batch_size=batch)  # warm-up
    rates = []
    for r in range(repeats):
        t0 = time.perf_counter()
        sample_jets(sur, [jet_type] * n, batch_size=batch, seed=r)
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--type", default="g", help="jet type of reference and surrogate")
    ap.add_argument("--n-jets", type=int, default=500, help="reference jets to simulate")
    ap.add_argument("--no-mpi", action="store_true", help="reference without multiparton interactions")
    ap.add_argument(
        "--run",
        action="append",
        default=None,
        help="trained run directory, repeatable (e.g. a teacher and its few-step student; default: fresh cfm-set)",
    )
    ap.add_argument("--batch", nargs="*", type=int, default=[1, 100, 10_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-jets", type=int, default=50, help="jets per timed run at small batch")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: all available)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    ref, ref_rate = reference_jets(args.type, args.n_jets, mpi=not args.no_mpi)
    surrogates = (
        [(load_jet_model(r), Path(r).name) for r in args.run] if args.run else [(fresh_jet_surrogate(ref), "fresh")]
    )
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads for the surrogate; Pythia8 on 1 core; "
        f"reference: {args.n_jets} {args.type} jets, MPI {'off' if args.no_mpi else 'on'}, 30 particles\n"
    )
    print("| generator | sampler (NFE) | batch | jets/s | ms/jet | speed-up |")
    print("|---|---|---:|---:|---:|---:|")
    print(f"| Pythia8 + FastJet | - | - | {ref_rate:,.1f} | {1e3 / ref_rate:.2f} | 1x |", flush=True)
    for sur, name in surrogates:
        sampler = sur.model.default_sampler
        solver = get_solver(sampler["solver"])
        for batch in args.batch:
            rate = jets_per_second(sur, args.type, batch, repeats=args.repeats, min_jets=args.min_jets)
            print(
                f"| {sur.name} ({name}) | {solver.name} x {sampler['steps']} ({sampler['steps'] * solver.nfe_per_step}) | "
                f"{batch} | {rate:,.0f} | {1e3 / rate:.3f} | {rate / ref_rate:,.1f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
