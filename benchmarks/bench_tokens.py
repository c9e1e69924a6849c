"""``ar-tokens`` generation speed per jet, with and without the KV cache, beside Pythia8 + FastJet.

1. Reference: :func:`showerforge.simulate.jets.simulate_jets` generates ``--n-jets`` jets of
   ``--type`` (30 particles; MPI on unless ``--no-mpi``) in this process; jets/s is wall clock,
   Pythia initialisation included.
2. Surrogate: an ``ar-tokens`` model with the registry defaults (``--set KEY=VALUE`` overrides),
   its preprocessing and tokeniser fitted on the reference jets and random weights. An untrained
   stop head would end jets at random lengths, so each generated jet is given the multiplicity of
   a reference jet (``lengths=``): the loop then runs exactly as a trained model's would for jets of
   those multiplicities (the stop head is still evaluated at each step). ``--run DIR`` times a
   trained run instead, with its own stop decisions.

Timed: token generation, decoding and the inverse preprocessing, at each ``--batch``, with the KV
cache and without it (the whole prefix recomputed at every step); median of ``--repeats`` runs on
one thread. Prints a markdown table.

Example::

    python benchmarks/bench_tokens.py --type t --n-jets 300 --batch 1 1000
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import torch

from showerforge.data.jet_preprocess import JetPreprocessor
from showerforge.generate.jet_set import load_jet_model
from showerforge.models import MODELS
from showerforge.models.autoregressive import ARTokens
from showerforge.simulate.jets import JetBatch, JetConfig, simulate_jets

__all__ = ["reference_jets", "fresh_model", "seconds_per_jet", "main"]


def reference_jets(jet_type: str, n_jets: int, mpi: bool, seed: int = 1) -> tuple[JetBatch, float]:
    """Pythia8 + FastJet jets (30 particles) and the wall-clock rate in jets/s."""
    t0 = time.perf_counter()
    batch = simulate_jets(JetConfig(jet_type, n_particles=30, mpi=mpi), n_jets, seed=seed)
    return batch, n_jets / (time.perf_counter() - t0)


def fresh_model(jets: JetBatch, overrides: dict[str, Any], seed: int = 0) -> tuple[ARTokens, JetPreprocessor]:
    """An ``ar-tokens`` model with random weights, its tokeniser and preprocessing fitted on ``jets``."""
    pf, jf, jt = jets.particle_features, jets.jet_features, jets.jet_type
    pre = JetPreprocessor(pf.shape[1]).fit(pf, jf, jt)
    torch.manual_seed(seed)
    spec = MODELS["ar-tokens"]
    model = spec.build(**overrides, n_particles=pre.n_particles, n_features=3, n_cond=pre.n_cond, order_by=2)
    assert isinstance(model, ARTokens)
    x, mask = pre.forward(pf)
    model.fit_to_data([(torch.from_numpy(x), torch.zeros(0), torch.from_numpy(mask))], seed=seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model.eval(), pre


def seconds_per_jet(
    model: ARTokens,
    pre: JetPreprocessor,
    cond: torch.Tensor,
    lengths: torch.Tensor | None,
    batch: int,
    *,
    kv_cache: bool,
    repeats: int,
) -> float:
    """Median wall time per jet of generating ``len(cond)`` jets in batches of ``batch``."""

    def once(seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        for lo in range(0, len(cond), batch):
            sl = slice(lo, lo + batch)
            x, mask = model.sample_set(
                cond[sl], generator=gen, kv_cache=kv_cache, lengths=None if lengths is None else lengths[sl]
            )
            pre.inverse(x.numpy(), mask.numpy())

    once(0)  # warm-up
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        once(r + 1)
        times.append((time.perf_counter() - t0) / len(cond))
    return statistics.median(times)


def _parse_set(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = int(value) if value.lstrip("-").isdigit() else value
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--type", default="t", help="jet type of reference and surrogate")
    ap.add_argument("--n-jets", type=int, default=300, help="reference jets to simulate")
    ap.add_argument("--no-mpi", action="store_true", help="reference without multiparton interactions")
    ap.add_argument("--run", default=None, help="a trained ar-tokens jet run (default: a fresh model)")
    ap.add_argument("--set", action="append", default=[], help="model hyperparameter of the fresh model")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 1000])
    ap.add_argument("--jets-at-batch-1", type=int, default=50, help="jets timed one at a time")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    jets, ref_rate = reference_jets(args.type, args.n_jets, not args.no_mpi)
    if args.run:
        sur = load_jet_model(args.run)
        model, pre = sur.model, sur.preprocessing
        assert isinstance(model, ARTokens)
    else:
        model, pre = fresh_model(jets, _parse_set(args.set))
    k = (jets.particle_features[..., 3] > 0).sum(axis=1)
    print(
        f"Pythia8 + FastJet ({args.type}, MPI {'off' if args.no_mpi else 'on'}): {ref_rate:.1f} jets/s; "
        f"mean multiplicity {k.mean():.1f}; model {model.config['d_model']} wide, {model.config['n_blocks']} blocks"
    )
    print("| batch | KV cache | ms / jet | jets / s | vs Pythia8 |\n|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for batch in args.batch:
        n = max(batch, args.jets_at_batch_1) if batch == 1 else max(batch, 1000)
        types = np.full(n, pre.conditioning.type_index([args.type])[0])
        cond = torch.from_numpy(pre.conditioning.condition(types, np.full(n, 1000.0)))
        lengths = None if args.run else torch.from_numpy(rng.choice(k, n)).long()
        for kv_cache in (True, False):
            s = seconds_per_jet(model, pre, cond, lengths, batch, kv_cache=kv_cache, repeats=args.repeats)
            print(
                f"| {batch} | {'yes' if kv_cache else 'no'} | {1e3 * s:.3f} | {1 / s:.0f} | {1 / s / ref_rate:.1f}x |"
            )


if __name__ == "__main__":
    main()
