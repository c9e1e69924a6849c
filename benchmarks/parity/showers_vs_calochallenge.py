"""showerforge's shower evaluation against the CaloChallenge 2022 ``code/evaluate.py``, on the same files.

1. Samples (``--workdir``): the first ``--n`` showers of three ds2 electron files, rewritten with
   :func:`showerforge.data.calo.write_showers` (float64 ``incident_energies``, as the challenge's
   files): ``ref`` (Geant4), ``g4`` (Geant4, independent seed) and ``gen`` (a surrogate). Pairs:
   ``generated`` = reference ``ref``, input ``gen``; ``geant4`` = reference ``ref``, input ``g4``.
   ``legacy_*.h5`` are 300-shower copies in the old format (float32 energies).
2. CaloChallenge side, run by ``--cc-python`` (a separate environment with torch, jetnet, prdc,
   h5py, matplotlib, scikit-learn; showerforge is not needed there) on the script files in
   ``--cc-dir`` (``git show HEAD:code/<file>`` of CaloChallenge/homepage): every mode that applies
   to dataset 2 (``fpd``, ``kpd``, ``prdc``, ``hist-chi``, ``cls-high``, ``cls-low``) is run as
   ``python evaluate.py -i INPUT -r REFERENCE -m MODE -d 2 --output_dir DIR``. The script's source
   is executed unchanged except for the patches a run names (listed in the output):

   * ``small-split``: ``ttv_split(..., dataset=None)``: the 0.6/0.2/0.2 split fractions instead of
     the fixed 60,000/20,000/20,000 showers of the challenge's 100k-shower ds2 files (with fewer
     than 80,000 showers the test and validation splits are empty and the script stops with
     ``UnboundLocalError``);
   * ``no-usetex``: ``plt.rc('text', usetex=False)`` (the script asks for a LaTeX installation to
     draw the histogram titles, even in ``hist-chi`` mode; without one it stops).

   Each mode is first run unpatched (classifiers for one epoch) to record whether it runs.
   ``numpy.random`` and ``torch`` are seeded before the script starts (it uses their global state
   for the split and the initialisation). ``jetnet.evaluation.fpd`` / ``kpd`` and
   ``prdc.compute_prdc`` are wrapped to record their full-precision results (the script's text
   files round to 4 decimals); the computation is untouched. The script's own high-level features
   (``HighLevelFeatures``) and classifier inputs (``prepare_high_data_for_classifier``,
   ``prepare_low_data_for_classifier``) of every file are saved for the element-wise comparison.
3. showerforge side, in this process: :func:`~showerforge.evaluation.showers.features.stream_features`,
   ``high_level_inputs`` / ``low_level_inputs``; FPD / KPD with the challenge's settings and jetnet's
   seed 42 (same draws) on showerforge's inputs and on the script's own arrays;
   :func:`~showerforge.evaluation.showers.report.evaluate_files` (the engine of ``showerforge
   evaluate``) with reference ``ref``, candidate ``gen``, ``--floor-reference g4`` and seed 42:
   candidate_vs_reference is the ``generated`` pair and reference_vs_reference the ``geant4`` pair
   (both against the whole reference, as the script); the challenge's classifier
   (3 x 2048, 50 epochs) with ``--repeats`` runs.
4. A markdown table: quantity, CaloChallenge, showerforge (± error), difference, agreement. Also
   written to ``WORKDIR/results.json`` and ``WORKDIR/table.md``. Every step is cached in the work
   folder (delete a sub-folder to redo it).

``--known-answers`` instead prints the script's numbers on the small seeded synthetic input of
``tests/test_parity_showers_known.py`` (:func:`synthetic_showers`) as Python literals.

Example (setup in ``benchmarks/parity/README.md``)::

    python benchmarks/parity/showers_vs_calochallenge.py --n 1500 \\
        --cc-python /work/scratch/jetnet-venv/bin/python --cc-dir /work/scratch/calochallenge
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

__all__ = ["PAIRS", "PATCHES", "SOURCES", "cc_main", "main", "sf_evaluate", "sf_library", "synthetic_showers"]

SOURCES = {
    "ref": "/work/data/ds2_e_test.h5",
    "g4": "/work/data/ds2_train_10k.h5",
    "gen": "/work/data/ds2_gen_v3.h5",
}
"""Sample name -> file whose first ``--n`` showers it holds."""
PAIRS = {"generated": ("ref", "gen"), "geant4": ("ref", "g4")}
"""Compared pairs: (reference, input) by sample name."""
PATCHES = {
    "small-split": ("dataset=args.dataset)", "dataset=None)"),
    "no-usetex": ("plt.rc('text', usetex=True)", "plt.rc('text', usetex=False)"),
}
"""Source substitutions of ``evaluate.py`` a run may ask for (each must match exactly once)."""
MIN_ENERGY = 0.5e-3 / 0.033
"""The script's ``args.min_energy`` for datasets 2 and 3 (MeV)."""
SEED = 42
"""jetnet's default seed, which the script's ``fpd`` / ``kpd`` calls use."""
# The script's histogram labels -> showerforge feature names.
HIST_LABELS = {
    "E layer": "layer_energy",
    "EC Eta layer": "center_x",
    "EC Phi layer": "center_y",
    "Width Eta layer": "width_x",
    "Width Phi layer": "width_y",
}
# HighLevelFeatures attributes -> showerforge feature names.
HLF_NAMES = {
    "E_layers": "layer_energy",
    "EC_etas": "center_x",
    "EC_phis": "center_y",
    "width_etas": "width_x",
    "width_phis": "width_y",
    "sparsity": "sparsity",
    "EC_r": "center_r",
    "width_r": "width_r",
}


def synthetic_showers(n: int, seed: int, width: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ds2-shaped showers without physics: ``(n,)`` MeV float64 and ``(n, 6480)`` MeV float32.

    A Gaussian longitudinal profile around a random depth, exponential radial fall-off of scale
    ``1.2 * width`` radial bins (on a 1 % floor, so that no layer is empty), an angular
    modulation, log-normal voxel noise, 30-70 % empty voxels, and a total of about 0.9 E_inc;
    many voxels of the far layers fall below the 0.5 keV / 0.033 threshold. Voxel energies are
    multiples of 1/128 MeV (1/128 is below the threshold, 2/128 above), so that every sum of them
    (layer energies, E_tot < 2^17 MeV) is exact in float32 as in float64: the script's float32
    sums and showerforge's float64 sums agree bit for bit.
    ``tests/test_parity_showers_known.py`` holds an identical copy.
    """
    rng = np.random.default_rng(seed)
    inc = 10.0 ** rng.uniform(3.0, 5.0, n)
    layer = np.arange(45.0)[:, None, None]
    alpha = np.arange(16.0)[None, :, None]
    r = np.arange(9.0)[None, None, :]
    depth = rng.normal(12.0, 2.0, (n, 1, 1, 1))
    phase = rng.uniform(0.0, 2.0 * np.pi, (n, 1, 1, 1))
    e = (np.exp(-0.5 * ((layer - depth) / 6.0) ** 2) + 0.01) * np.exp(-r / (1.2 * width))
    e = e * (1.0 + 0.3 * np.cos(2.0 * np.pi * alpha / 16.0 - phase)) * rng.lognormal(0.0, 0.8, (n, 45, 16, 9))
    e = (e * (rng.uniform(0.0, 1.0, e.shape) > 0.3 + 0.05 * r)).reshape(n, -1)
    e *= (0.9 * inc / e.sum(1) * rng.normal(1.0, 0.03, n))[:, None]
    return inc, (np.round(e * 128.0) / 128.0).astype(np.float32)


# =========================================================================== CaloChallenge side
# Runs in the CaloChallenge environment: imports h5py, torch, jetnet, prdc; never showerforge.


def _spy(record: dict[str, Any]) -> None:
    """Wrap jetnet's fpd / kpd and prdc's compute_prdc to record their results (values untouched)."""
    import jetnet
    import prdc

    def wrap(name: str, fn: Any) -> Any:
        def inner(*args: Any, **kwargs: Any) -> Any:
            out = fn(*args, **kwargs)
            record[name] = {k: float(v) for k, v in out.items()} if isinstance(out, dict) else [float(v) for v in out]
            return out

        return inner

    jetnet.evaluation.fpd = wrap("fpd", jetnet.evaluation.fpd)
    jetnet.evaluation.kpd = wrap("kpd", jetnet.evaluation.kpd)
    prdc.compute_prdc = wrap("prdc", prdc.compute_prdc)


def _script_source(cc_dir: Path, patches: list[str]) -> str:
    source = (cc_dir / "evaluate.py").read_text()
    for name in patches:
        old, new = PATCHES[name]
        if source.count(old) != 1:
            raise RuntimeError(f"patch {name}: {old!r} occurs {source.count(old)} times in evaluate.py")
        source = source.replace(old, new)
    return source


def cc_run(spec: dict[str, Any]) -> None:
    """Execute ``evaluate.py`` with ``spec["argv"]`` (seeded, patched as listed); write the spy record."""
    import torch

    cc_dir = Path(spec["cc_dir"])
    os.chdir(cc_dir)
    sys.path.insert(0, str(cc_dir))
    np.random.seed(spec["seed"])  # noqa: NPY002 - the script uses the global state
    torch.manual_seed(spec["seed"])
    record: dict[str, Any] = {}
    _spy(record)
    sys.argv = ["evaluate.py", *spec["argv"]]
    code = compile(_script_source(cc_dir, spec["patches"]), str(cc_dir / "evaluate.py"), "exec")
    try:
        exec(code, {"__name__": "__main__", "__file__": str(cc_dir / "evaluate.py")})
    finally:
        Path(spec["record"]).write_text(json.dumps(record))


def _cc_module(cc_dir: Path) -> Any:
    """``evaluate.py`` imported as a module (its functions; the main block does not run)."""
    import importlib.util

    os.chdir(cc_dir)
    sys.path.insert(0, str(cc_dir))
    mod_spec = importlib.util.spec_from_file_location("cc_evaluate", cc_dir / "evaluate.py")
    module = importlib.util.module_from_spec(mod_spec)  # type: ignore[arg-type]
    mod_spec.loader.exec_module(module)  # type: ignore[union-attr]
    import matplotlib.pyplot as plt

    plt.rc("text", usetex=False)
    return module


def _cc_arrays(module: Any, path: str) -> dict[str, np.ndarray]:
    """The script's high-level features and classifier inputs of one file, as its main block makes them."""
    import h5py

    with h5py.File(path, "r") as f:
        shower, energy = module.extract_shower_and_energy(f, which=path)
        shower = np.where(shower < MIN_ENERGY, np.zeros_like(shower), shower)
        hlf = module.HLF.HighLevelFeatures("electron", filename="binning_dataset_2.xml")
        hlf.CalculateFeatures(shower)
        hlf.Einc = energy
        out = {"etot": np.asarray(hlf.E_tot), "incident_energy": np.asarray(energy).reshape(-1)}
        n_layers = len(hlf.bin_edges) - 1
        for attr, name in HLF_NAMES.items():
            arr = np.full((len(shower), n_layers), np.nan)
            for layer, values in getattr(hlf, attr).items():
                arr[:, layer] = values
            out[name] = arr
        out["high"] = module.prepare_high_data_for_classifier(f, hlf, 0.0, threshold=MIN_ENERGY)[:, :-1]
        out["low"] = module.prepare_low_data_for_classifier(f, hlf, 0.0, normed=False, threshold=MIN_ENERGY)[:, :-1]
    return out


def cc_dump(spec: dict[str, Any]) -> None:
    """Save the script's features and classifier inputs of every file in ``spec["files"]``."""
    module = _cc_module(Path(spec["cc_dir"]))
    for name, path in spec["files"].items():
        arrays = _cc_arrays(module, path)
        np.savez(Path(spec["out"]) / f"{name}.npz", **arrays)  # type: ignore[arg-type]


def cc_known(spec: dict[str, Any]) -> None:
    """The script's numbers on the synthetic known-answer input: features, FPD, KPD (jetnet)."""
    import jetnet

    module = _cc_module(Path(spec["cc_dir"]))
    real, fake = (_cc_arrays(module, spec["files"][k]) for k in ("real", "fake"))
    shown = spec["shown"]
    out: dict[str, Any] = {"etot": real["etot"][:shown].tolist(), "high_row_sums": []}
    for name in HLF_NAMES.values():
        out[name] = real[name][:shown][:, spec["layers"]].tolist()
    weights = np.arange(1, real["high"].shape[1] + 1)
    out["high_row_sums"] = [[float(row.sum()), float(row @ weights)] for row in real["high"][:shown]]
    f = spec["fpd"]
    out["fpd"] = [float(v) for v in jetnet.evaluation.fpd(real["high"], fake["high"], **f)]
    k = spec["kpd"]
    out["kpd"] = [float(v) for v in jetnet.evaluation.kpd(real["high"], fake["high"], **k)]
    out["versions"] = {"jetnet": jetnet.__version__, "numpy": np.__version__}
    Path(spec["out"]).write_text(json.dumps(out, indent=1))


def cc_main(argv: list[str]) -> None:
    """Entry point of the CaloChallenge side: ``--cc-run | --cc-dump | --cc-known SPEC.json``."""
    spec = json.loads(Path(argv[1]).read_text())
    {"--cc-run": cc_run, "--cc-dump": cc_dump, "--cc-known": cc_known}[argv[0]](spec)


# =========================================================================== orchestration


def prepare_samples(workdir: Path, n: int) -> dict[str, Path]:
    """The first ``n`` showers of each source, rewritten by showerforge (float64 energies)."""
    import h5py

    from showerforge.data.calo import CaloFile, write_showers

    paths = {}
    for name, src in SOURCES.items():
        path = workdir / "samples" / f"{name}.h5"
        paths[name] = path
        if path.exists():
            with h5py.File(path, "r") as f:
                if f["showers"].shape[0] == n and f["incident_energies"].dtype == np.float64:
                    continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with CaloFile.open(src) as f:
            inc, sh = f.read(0, n)
            write_showers(path, inc, sh, f.geometry, {"subset_of": src, "rows": f"0:{n}"})
    for name in ("ref", "gen"):  # the old format: float32 incident energies
        legacy = workdir / "samples" / f"legacy_{name}.h5"
        paths[f"legacy_{name}"] = legacy
        if not legacy.exists():
            with h5py.File(paths[name], "r") as f, h5py.File(legacy, "w") as out:
                out["incident_energies"] = f["incident_energies"][:300].astype(np.float32)
                out["showers"] = f["showers"][:300]
    return paths


def _cc_call(cfg: dict[str, Any], flag: str, spec: dict[str, Any], log: Path) -> tuple[int, float, str]:
    """Run the CaloChallenge side in its environment; (exit code, seconds, last error line)."""
    spec_path = log.with_suffix(".spec.json")
    spec_path.write_text(json.dumps(spec, indent=1))
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg["cc_threads"]), MPLBACKEND="Agg")
    t0 = time.perf_counter()
    with open(log, "w") as out:
        rc = subprocess.call(
            [cfg["cc_python"], str(Path(__file__).resolve()), flag, str(spec_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
    error = next((ln for ln in reversed(lines) if re.match(r"^\w*(Error|Exception)\b", ln)), "") if rc else ""
    return rc, time.perf_counter() - t0, error


def cc_runs(cfg: dict[str, Any], paths: dict[str, Path]) -> list[dict[str, Any]]:
    """The list of script runs: unpatched probes, then the measured runs."""
    runs: list[dict[str, Any]] = []

    def add(key: str, mode: str, pair: tuple[str, str], patches: list[str], seed: int, extra: list[str]) -> None:
        ref, inp = pair
        runs.append({"key": key, "mode": mode, "reference": ref, "input": inp, "patches": patches, "seed": seed})
        runs[-1]["argv"] = ["-i", str(paths[inp]), "-r", str(paths[ref]), "-m", mode, "-d", "2", *extra]

    gen = PAIRS["generated"]
    for mode in ("hist-chi", "cls-high", "cls-low"):
        add(f"probe_{mode}", mode, gen, [], 0, ["--cls_n_epochs", "1"] if mode.startswith("cls") else [])
    add("probe_legacy_cls-low", "cls-low", ("legacy_ref", "legacy_gen"), ["small-split"], 0, ["--cls_n_epochs", "1"])
    add("probe_kpd", "kpd", gen, [], 0, [])
    for pair_name, pair in PAIRS.items():
        add(f"{pair_name}_fpd", "fpd", pair, [], 0, [])
        add(f"{pair_name}_prdc", "prdc", pair, [], 0, [])
        add(f"{pair_name}_hist-chi", "hist-chi", pair, ["no-usetex"], 0, [])
    for level in cfg["cls_levels"]:
        for seed in cfg["cls_seeds"]:
            for pair_name, pair in PAIRS.items():
                add(f"{pair_name}_cls-{level}_s{seed}", f"cls-{level}", pair, ["small-split"], seed, [])
    return runs


def run_cc(cfg: dict[str, Any], paths: dict[str, Path], execute: bool = True) -> dict[str, Any]:
    """Every script run (cached in ``WORKDIR/cc/KEY``): exit code, error, parsed results.

    The script's arrays are saved before the classifier runs; ``execute=False`` only collects
    the cached results.
    """
    results = {}
    for run in cc_runs(cfg, paths):
        folder = Path(cfg["workdir"]) / "cc" / run["key"]
        cached = folder / "result.json"
        if cached.exists() and json.loads(cached.read_text())["run"] == run:
            results[run["key"]] = json.loads(cached.read_text())
            continue
        if not execute:
            continue
        if run["mode"].startswith("cls") and not run["key"].startswith("probe"):
            cc_arrays(cfg, paths)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.txt"):
            stale.unlink()
        spec = {"cc_dir": cfg["cc_dir"], "argv": [*run["argv"], "--output_dir", str(folder)], "seed": run["seed"]}
        spec |= {"patches": run["patches"], "record": str(folder / "record.json")}
        print(f"[calochallenge] {run['key']} ...", file=sys.stderr, flush=True)
        rc, seconds, error = _cc_call(cfg, "--cc-run", spec, folder / "log.txt")
        res = {"run": run, "rc": rc, "seconds": seconds, "error": error, **_parse_cc(folder, run["mode"])}
        for model in folder.glob("*.pt"):  # the classifier's checkpoint (170 MB for cls-low)
            model.unlink()
        cached.write_text(json.dumps(res, indent=1))
        results[run["key"]] = res
    if execute:
        cc_arrays(cfg, paths)
    return results


def cc_arrays(cfg: dict[str, Any], paths: dict[str, Path]) -> None:
    """Save the script's features and classifier inputs of every sample (once)."""
    dump = Path(cfg["workdir"]) / "cc" / "arrays"
    if (dump / "done").exists():
        return
    dump.mkdir(parents=True, exist_ok=True)
    print("[calochallenge] arrays ...", file=sys.stderr, flush=True)
    files = {k: str(paths[k]) for k in SOURCES}
    spec = {"cc_dir": cfg["cc_dir"], "files": files, "out": str(dump)}
    rc, _, error = _cc_call(cfg, "--cc-dump", spec, dump / "log.txt")
    if rc:
        raise RuntimeError(f"CaloChallenge array dump failed: {error} (see {dump / 'log.txt'})")
    (dump / "done").write_text("")


def _parse_cc(folder: Path, mode: str) -> dict[str, Any]:
    """Results of one script run from its record, stdout and output files."""
    record = json.loads((folder / "record.json").read_text()) if (folder / "record.json").exists() else {}
    out: dict[str, Any] = {"record": record}
    log = (folder / "log.txt").read_text() if (folder / "log.txt").exists() else ""
    if mode.startswith("cls"):
        auc = re.findall(r"rescaled AUC of dataset is ([0-9.eE+-]+)", log)
        jsd = re.findall(r"rescaled JSD of the two dists is ([0-9.eE+-]+)", log)
        out["auc"] = float(auc[-1]) if auc else None
        out["jsd"] = float(jsd[-1]) if jsd else None
    hist = folder / "histogram_chi2_2.txt"
    if mode == "hist-chi" and hist.exists():
        out["separation_power"] = _parse_hist(hist.read_text())
    return out


def _parse_hist(text: str) -> dict[str, Any]:
    """``histogram_chi2_2.txt`` -> ``{feature: value}`` or ``{feature: {layer: value}}`` (showerforge keys)."""
    sep: dict[str, Any] = {}
    for label, value in re.findall(r"^([^\n]+): \n([^\n]+)\n", text, flags=re.M):
        v = float(value)
        if label == "Etot / Einc":
            sep["etot_over_einc"] = v
        elif label == "Voxel distribution":
            sep["voxel_energy"] = v
        else:
            family, layer = label.rsplit(" ", 1)
            sep.setdefault(HIST_LABELS[family], {})[layer] = v
    return sep


# =========================================================================== showerforge side


def _features(paths: dict[str, Path]) -> tuple[Any, dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Geometry, showerforge features and low-level inputs of every sample."""
    from showerforge.data.calo import CaloFile
    from showerforge.evaluation.showers.classifier import low_level_inputs
    from showerforge.evaluation.showers.features import default_threshold_mev, stream_features

    feats, low = {}, {}
    for name in SOURCES:
        with CaloFile.open(paths[name]) as f:
            geo = f.geometry
            feats[name] = stream_features(f)
            inc, sh = f.read()
            low[name] = low_level_inputs(inc, sh, threshold_mev=default_threshold_mev(geo))
    return geo, feats, low


def _max_diff(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Largest absolute difference, the largest |value| and the largest relative difference."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) | np.isfinite(b)
    d = np.abs(a[ok] - b[ok])
    scale = np.maximum(np.abs(a[ok]), np.abs(b[ok]))
    rel = np.divide(d, scale, out=np.zeros_like(d), where=scale > 0)
    return {"max_abs": float(d.max()), "max_value": float(scale.max()), "max_rel": float(rel.max())}


def compare_arrays(cfg: dict[str, Any], geo: Any, feats: dict[str, Any], low: dict[str, Any]) -> dict[str, Any]:
    """Element-wise: the script's features and classifier inputs against showerforge's."""
    from showerforge.evaluation.showers.classifier import high_level_inputs

    out: dict[str, Any] = {}
    for name in SOURCES:
        cc = np.load(Path(cfg["workdir"]) / "cc" / "arrays" / f"{name}.npz")
        sf = feats[name]
        rows: dict[str, Any] = {
            key: _max_diff(cc[key], sf[key]) for key in ("incident_energy", "etot", *HLF_NAMES.values())
        }
        rows["high_level_inputs"] = _max_diff(cc["high"], high_level_inputs(sf, geo))
        rows["low_level_inputs"] = _max_diff(cc["low"], low[name])
        rows["shapes"] = {"high": list(cc["high"].shape), "low": list(cc["low"].shape)}
        out[name] = rows
    return out


def _challenge_distances(x: np.ndarray, y: np.ndarray) -> dict[str, list[float]]:
    """FPD and KPD with the script's settings and jetnet's default seed (same draws)."""
    from showerforge.evaluation.distances import fpd, kpd

    return {
        "fpd": list(fpd(x, y, SEED, min_samples=10_000, max_samples=50_000, num_batches=20, num_points=10)),
        "kpd": list(kpd(x, y, SEED, num_batches=10, batch_size=10_000)),
    }


def _cached(path: Path, key: dict[str, Any], compute: Any) -> Any:
    """``compute()``, or its earlier result stored in ``path`` under the same ``key``."""
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            return stored["value"]
    if compute is None:
        return None
    value = compute()
    path.write_text(json.dumps({"key": key, "value": value}, indent=1))
    return value


def sf_library(cfg: dict[str, Any], paths: dict[str, Path], execute: bool = True) -> dict[str, Any] | None:
    """Element-wise array comparison and FPD / KPD by the library (cached in ``sf_library.json``).

    FPD / KPD with the script's settings and seed 42: of the ``geant4`` pair on showerforge's
    inputs (the ``generated`` pair on showerforge's inputs is what ``evaluate`` computes with
    seed 42), and of the ``generated`` pair on the script's own arrays (arithmetic alone).
    """
    work = Path(cfg["workdir"])
    if not execute:
        return _cached(work / "sf_library.json", {"n": cfg["n"]}, None)

    def compute() -> dict[str, Any]:
        from showerforge.evaluation.showers.classifier import high_level_inputs

        geo, feats, low = _features(paths)
        out: dict[str, Any] = {"arrays": compare_arrays(cfg, geo, feats, low)}
        del low
        print("[showerforge] FPD / KPD ...", file=sys.stderr, flush=True)
        ref, inp = PAIRS["geant4"]
        out["geant4"] = {"own_inputs": _challenge_distances(*(high_level_inputs(feats[k], geo) for k in (ref, inp)))}
        ref, inp = PAIRS["generated"]
        cc_high = [np.load(work / "cc" / "arrays" / f"{k}.npz")["high"] for k in (ref, inp)]
        out["generated"] = {"script_inputs": _challenge_distances(*cc_high)}
        return out

    return _cached(work / "sf_library.json", {"n": cfg["n"]}, compute)


def sf_evaluate(cfg: dict[str, Any], paths: dict[str, Path], execute: bool = True) -> dict[str, Any] | None:
    """``evaluate_files`` on both pairs (cached in ``sf_evaluate.json``)."""
    key = {"n": cfg["n"], "repeats": cfg["repeats"], "cls_levels": cfg["cls_levels"]}
    print("[showerforge] evaluate_files ...", file=sys.stderr, flush=True) if execute else None
    return _cached(Path(cfg["workdir"]) / "sf_evaluate.json", key, (lambda: _evaluate(cfg, paths)) if execute else None)


def sf_classifiers(cfg: dict[str, Any], paths: dict[str, Path], execute: bool = True) -> dict[str, Any]:
    """Further runs of the challenge's classifier (``classifier_test``, what ``evaluate`` calls).

    One run per seed of ``--sf-cls-seeds``, level and pair, cached one by one in
    ``sf_classifiers.json`` as ``{"pair/level/seed": run}``.
    """
    path = Path(cfg["workdir"]) / "sf_classifiers.json"
    done: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    todo = [(p, lv, sd) for sd in cfg["sf_cls_seeds"] for lv in cfg["cls_levels"] for p in PAIRS]
    if not execute or all(f"{p}/{lv}/{sd}" in done for p, lv, sd in todo):
        return done
    from showerforge.evaluation.showers.classifier import ClassifierConfig, classifier_test, high_level_inputs

    geo, feats, low = _features(paths)
    for pair, level, seed in todo:
        key = f"{pair}/{level}/{seed}"
        if key in done:
            continue
        print(f"[showerforge] classifier {key} ...", file=sys.stderr, flush=True)
        x = {k: high_level_inputs(feats[k], geo) if level == "high" else low[k] for k in PAIRS[pair]}
        res = classifier_test(*(x[k] for k in PAIRS[pair]), config=ClassifierConfig(repeats=1), seed=seed)
        done[key] = res.runs[0]
        path.write_text(json.dumps(done, indent=1))
    return done


def _evaluate(cfg: dict[str, Any], paths: dict[str, Path]) -> dict[str, Any]:
    """``showerforge evaluate --reference ref --candidate gen --floor-reference g4 --seed 42 --repeats R``.

    Extras of ``evaluate_files`` that the challenge has no counterpart of (an NPLM test, where
    this version has one) are switched off.
    """
    import inspect

    from showerforge.evaluation.showers.classifier import ClassifierConfig
    from showerforge.evaluation.showers.report import evaluate_files

    extra: dict[str, Any] = {"nplm_toys": 0} if "nplm_toys" in inspect.signature(evaluate_files).parameters else {}
    t0 = time.perf_counter()
    metrics = evaluate_files(
        paths["ref"],
        paths["gen"],
        Path(cfg["workdir"]) / "sf_evaluate",
        floor_reference=paths["g4"],
        seed=SEED,
        classifiers=[f"{level}_level" for level in cfg["cls_levels"]],
        classifier_config=ClassifierConfig(repeats=cfg["repeats"]),
        plots=False,
        **extra,
    )
    keep = ("separation_power", "classifier", "distances", "n_showers")
    return {
        "generated": {k: metrics["candidate_vs_reference"].get(k) for k in keep},
        "geant4": {k: metrics["reference_vs_reference"].get(k) for k in keep},
        "seconds": time.perf_counter() - t0,
    }


# =========================================================================== the table


def _fmt(v: float | None, e: float | None = None) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:.6g}" + (f" ± {e:.2g}" if e is not None and math.isfinite(e) else "")


def _row(
    q: str, pair: str, cc: float | None, cc_err: float | None, sf: float | None, sf_err: float | None, tol: float | None
) -> dict:
    """One table row; ``tol``: the allowed |difference| (None: report only)."""
    diff = None if cc is None or sf is None else sf - cc
    agree = None if diff is None or tol is None else abs(diff) <= tol
    return {
        "quantity": q,
        "pair": pair,
        "cc": cc,
        "cc_err": cc_err,
        "sf": sf,
        "sf_err": sf_err,
        "diff": diff,
        "agree": agree,
    }


def distance_rows(cc: dict[str, Any], lib: dict[str, Any] | None, ev: dict[str, Any] | None) -> list[dict[str, Any]]:
    """FPD, KPD (x 1e3) and PRDC rows of both pairs.

    Agreement on the same draws: |difference| <= max(the script's error, 1 % of its value); on
    other draws (``evaluate``'s floor, seed 43): <= both errors in quadrature.
    """
    rows = []
    for pair in PAIRS:
        rec = cc.get(f"{pair}_fpd", {}).get("record", {})
        dist = ((ev or {}).get(pair) or {}).get("distances") or {}
        for metric in ("fpd", "kpd"):
            if metric not in rec:
                continue
            v, e = (1e3 * x for x in rec[metric])
            name = metric.upper() + " ×1e3"
            for kind, label in (
                ("own_inputs", "library, seed 42"),
                ("script_inputs", "library on the script's arrays"),
            ):
                res = ((lib or {}).get(pair) or {}).get(kind)
                if res:
                    x, xe = (1e3 * float(t) for t in res[metric])
                    rows.append(_row(f"{name}, {label}", pair, v, e, x, xe, max(e, 0.01 * abs(v))))
            m = dist.get(metric)
            if m:
                seed = SEED if pair == "generated" else SEED + 1
                x, xe = 1e3 * m["value"], 1e3 * m["error"]
                tol = max(e, 0.01 * abs(v)) if seed == SEED else math.hypot(e, xe)
                rows.append(_row(f"{name}, `evaluate` (seed {seed})", pair, v, e, x, xe, tol))
        prdc_cc = cc.get(f"{pair}_prdc", {}).get("record", {}).get("prdc", {})
        prdc_sf = dist.get("prdc") or {}
        for key in ("precision", "recall", "density", "coverage"):
            m = prdc_sf.get(key)
            if m and key in prdc_cc:
                tol = max(m["error"], 0.01 * abs(prdc_cc[key]))
                rows.append(_row(f"PRDC {key}, `evaluate`", pair, prdc_cc[key], None, m["value"], m["error"], tol))
    return rows


def _family(sep: dict[str, Any], key: str) -> dict[str, tuple[float, float | None]]:
    """{layer or '': (value, error)} of one family from either side (values as floats)."""
    v = sep.get(key)
    if v is None:
        return {}
    items = v.items() if isinstance(v, dict) and "value" not in v else [("", v)]
    out = {}
    for layer, m in items:
        val, err = (m.get("value"), m.get("error")) if isinstance(m, dict) else (m, None)
        if val is not None and math.isfinite(val):
            out[layer] = (float(val), err)
    return out


def script_drops(workdir: Path, ref_path: Path) -> dict[str, list[str]]:
    """Histograms whose top edge, as the script computes it, lies below the reference maximum.

    The script's edges are ``np.logspace(log10(min_energy), np.log10(max), n)`` with ``max`` a
    float32 number, whose ``log10`` numpy takes in float32: the top edge is off by up to ~1e-7
    relative and, when below the maximum, the reference's largest entry falls outside the
    histogram. showerforge pins the end points. Returns the layers ("" for the voxel histogram).
    """
    import h5py

    def dropped(top: np.float32, n_edges: int) -> bool:
        return bool(np.logspace(np.log10(MIN_ENERGY), np.log10(top), n_edges)[-1] < top)

    layer_energy = np.load(workdir / "cc" / "arrays" / f"{ref_path.stem}.npz")["layer_energy"]
    out = {
        "layer_energy": [
            str(i) for i in range(layer_energy.shape[1]) if dropped(np.float32(np.nanmax(layer_energy[:, i])), 40)
        ]
    }
    with h5py.File(ref_path, "r") as f:
        out["voxel_energy"] = [""] if dropped(np.float32(f["showers"][:].max()), 50) else []
    return out


def separation_rows(
    cc: dict[str, Any], ev: dict[str, Any], drops: dict[str, list[str]], work: Path
) -> tuple[list[dict], dict]:
    """Separation power per family: mean over the histograms the script writes, largest differences.

    Agreement: every histogram within max(1 % of the script's value, showerforge's bootstrap
    error); the note gives the largest |difference| among the histograms where the script keeps
    the reference maximum, and among those where it drops it (:func:`script_drops`). A last row
    per pair recomputes the layer energies' separation powers with showerforge's
    ``separation_power`` on the script's own layer energies (``WORKDIR/cc/arrays``) and edges,
    and one for the voxel histogram with showerforge's ``voxel_histograms`` on the script's edges.
    """
    rows, detail = [], {}
    families = ("etot_over_einc", "voxel_energy", *HIST_LABELS.values())
    for pair in PAIRS:
        c_sep = cc.get(f"{pair}_hist-chi", {}).get("separation_power", {})
        s_sep = ev[pair]["separation_power"]
        for fam in families:
            c, s = _family(c_sep, fam), _family(s_sep, fam)
            common = sorted(set(c) & set(s), key=lambda k: int(k) if k else -1)
            if not common:
                continue
            diffs = {k: s[k][0] - c[k][0] for k in common}
            cmean = float(np.mean([c[k][0] for k in common]))
            smean = float(np.mean([s[k][0] for k in common]))
            row = _row(f"separation power {fam} (mean of {len(common)})", pair, cmean, None, smean, None, None)
            row["agree"] = all(abs(diffs[k]) <= max(s[k][1] or 0.0, 0.01 * c[k][0]) for k in common)
            lost = [k for k in common if k in drops.get(fam, [])]
            kept = [k for k in common if k not in lost]
            notes = [f"max abs diff {max(abs(diffs[k]) for k in kept):.1g}"] if kept else []
            if lost:
                notes.append(
                    f"{max(abs(diffs[k]) for k in lost):.1g} in the {len(lost)} where the script drops the maximum"
                )
            row["note"] = "; ".join(notes)
            rows.append(row)
            detail[f"{pair}/{fam}"] = {k: [c[k][0], s[k][0], s[k][1]] for k in common}
        rows.append(_script_edges_row(work, pair, c_sep.get("layer_energy", {})))
        if "voxel_energy" in c_sep:
            rows.append(_script_voxel_row(work, pair, c_sep["voxel_energy"]))
    return rows, detail


def _script_voxel_row(work: Path, pair: str, script: float) -> dict[str, Any]:
    """showerforge's voxel histograms and ``separation_power_counts`` on the script's edges (float32 log10)."""
    from showerforge.data.calo import CaloFile
    from showerforge.evaluation.metrics import separation_power_counts
    from showerforge.evaluation.showers.features import voxel_histograms

    counts = []
    edges = None
    for name in PAIRS[pair]:
        with CaloFile.open(work / "samples" / f"{name}.h5") as f:
            _, sh = f.read()
        if edges is None:  # the reference comes first
            edges = np.logspace(np.log10(MIN_ENERGY), np.log10(np.float32(sh.max())), 50)
        counts.append(voxel_histograms(sh, edges, threshold_mev=MIN_ENERGY))
    value = separation_power_counts(*counts, n_bootstrap=0).value
    row = _row("separation power voxel_energy, script's edges", pair, script, None, value, None, 1e-12)
    row["agree"] = row["diff"] is not None and abs(row["diff"]) <= 1e-12
    return row


def _script_edges_row(work: Path, pair: str, script: dict[str, float]) -> dict[str, Any]:
    """showerforge's ``separation_power`` on the script's own layer energies and edges (float32 log10)."""
    from showerforge.evaluation.metrics import separation_power

    ref, inp = (np.load(work / "cc" / "arrays" / f"{k}.npz")["layer_energy"] for k in PAIRS[pair])
    vals: dict[str, float] = {}
    for layer in script:
        i = int(layer)
        edges = np.logspace(np.log10(MIN_ENERGY), np.log10(np.float32(ref[:, i].max())), 40)
        vals[layer] = float(separation_power(ref[:, i], inp[:, i], edges, n_bootstrap=0).value or math.nan)
    cmean, smean = float(np.mean(list(script.values()))), float(np.mean(list(vals.values())))
    worst = max(abs(vals[k] - script[k]) for k in script)
    label = f"separation power layer_energy, script's E_layer and edges (mean of {len(script)})"
    row = _row(label, pair, cmean, None, smean, None, 1e-12)
    row["agree"], row["note"] = worst <= 1e-12, f"max abs diff {worst:.1g}"
    return row


def classifier_rows(
    cc: dict[str, Any], ev: dict[str, Any], extra: dict[str, Any], cfg: dict[str, Any]
) -> list[dict[str, Any]]:
    """AUC and JSD: the script's mean over seeds against showerforge's mean over runs.

    showerforge's runs: ``evaluate``'s repeats and the ``--sf-cls-seeds`` runs. Error of each
    mean: max(std over runs, one run's statistical error) / sqrt(runs), with one run's error the
    Hanley-McNeil AUC error on the 2 x 300 validation showers, or showerforge's JSD error.
    Agreement: |difference| <= 2 sigma combined.
    """
    from showerforge.evaluation.showers.classifier import hanley_mcneil_error

    rows = []
    n_val = int(cfg["n"] * 0.2)
    for pair in PAIRS:
        for level in cfg["cls_levels"]:
            runs = [cc[k] for k in (f"{pair}_cls-{level}_s{s}" for s in cfg["cls_seeds"]) if k in cc]
            res = (ev[pair].get("classifier") or {}).get(f"{level}_level")
            if not res:
                continue
            for key in ("auc", "jsd"):
                cc_vals = np.array([r[key] for r in runs if r.get(key) is not None])
                more = [r for k, r in extra.items() if k.startswith(f"{pair}/{level}/")]
                sf_vals = np.array([r[key] for r in [*res["runs"], *more]])
                if not len(cc_vals):
                    continue
                one = (
                    hanley_mcneil_error(float(cc_vals.mean()), n_val, n_val)
                    if key == "auc"
                    else float(np.mean([r["jsd_error"] for r in [*res["runs"], *more]]))
                )
                errs = [max(v.std(ddof=1) if len(v) > 1 else 0.0, one) / math.sqrt(len(v)) for v in (cc_vals, sf_vals)]
                tol = 2.0 * math.hypot(*errs)
                label = f"classifier {key.upper()} {level}-level ({len(cc_vals)} vs {len(sf_vals)} runs)"
                rows.append(_row(label, pair, float(cc_vals.mean()), errs[0], float(sf_vals.mean()), errs[1], tol))
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The comparison table in markdown."""
    lines = [
        "| quantity | pair | CaloChallenge | showerforge | difference | agrees |",
        "|---|---|---:|---:|---:|:---:|",
    ]
    for r in rows:
        diff = "–" if r["diff"] is None else f"{r['diff']:+.2g}"
        agree = {True: "yes", False: "**no**", None: "–"}[r["agree"]]
        note = f" ({r['note']})" if r.get("note") else ""
        lines.append(
            f"| {r['quantity']} | {r['pair']} | {_fmt(r['cc'], r['cc_err'])} | {_fmt(r['sf'], r['sf_err'])} | {diff}{note} | {agree} |"
        )
    return "\n".join(lines)


def array_table(arrays: dict[str, Any]) -> str:
    """Largest element-wise differences of features and classifier inputs, per file."""
    keys = [k for k in next(iter(arrays.values())) if k != "shapes"]
    lines = ["| array | " + " | ".join(arrays) + " |", "|---|" + "---:|" * len(arrays)]
    for k in keys:
        cells = [
            f"{a[k]['max_abs']:.2g} (rel {a[k]['max_rel']:.1g}; max {a[k]['max_value']:.3g})" for a in arrays.values()
        ]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_table(cc: dict[str, Any]) -> str:
    """Every script run: mode, pair, patches, exit code, error, seconds."""
    lines = ["| run | mode | patches | exit | error | s |", "|---|---|---|---:|---|---:|"]
    for key, r in cc.items():
        patches = ", ".join(r["run"]["patches"]) or "none"
        err = r["error"].replace("|", "\\|")[:110]
        lines.append(f"| {key} | {r['run']['mode']} | {patches} | {r['rc']} | {err} | {r['seconds']:.0f} |")
    return "\n".join(lines)


# =========================================================================== entry points


def known_answers(cfg: dict[str, Any]) -> None:
    """Print the script's numbers on the synthetic input of the known-answer test, as literals."""
    from showerforge.data.calo import write_showers
    from showerforge.geometry import PRESETS

    folder = Path(cfg["workdir"]) / "known"
    folder.mkdir(parents=True, exist_ok=True)
    for pkl in folder.glob("*.pkl"):  # the script's cache of reference features: never stale
        pkl.unlink()
    files = {}
    for name, (seed, width) in {"real": (1, 1.0), "fake": (2, 1.15)}.items():
        inc, sh = synthetic_showers(300, seed, width)
        files[name] = str(write_showers(folder / f"{name}.h5", inc, sh, PRESETS["ds2"]))
    spec = {
        "cc_dir": cfg["cc_dir"],
        "files": files,
        "shown": 3,
        "layers": [0, 5, 12, 20, 44],
        "fpd": {"min_samples": 200, "max_samples": 600, "num_batches": 5, "num_points": 4, "seed": 7},
        "kpd": {"num_batches": 5, "batch_size": 200, "seed": 7},
        "out": str(folder / "known.json"),
    }
    rc, _, error = _cc_call(cfg, "--cc-known", spec, folder / "log.txt")
    if rc:
        raise RuntimeError(f"known answers failed: {error} (see {folder / 'log.txt'})")
    known = json.loads((folder / "known.json").read_text())
    results = {}
    for mode, patches in (("prdc", []), ("hist-chi", ["no-usetex"])):
        run = folder / mode
        run.mkdir(exist_ok=True)
        argv = ["-i", files["fake"], "-r", files["real"], "-m", mode, "-d", "2", "--output_dir", str(run)]
        spec = {
            "cc_dir": cfg["cc_dir"],
            "argv": argv,
            "seed": 0,
            "patches": patches,
            "record": str(run / "record.json"),
        }
        rc, _, error = _cc_call(cfg, "--cc-run", spec, run / "log.txt")
        if rc:
            raise RuntimeError(f"known answers, {mode}: {error}")
        results[mode] = _parse_cc(run, mode)
    known["prdc"] = results["prdc"]["record"]["prdc"]
    known["separation_power"] = results["hist-chi"]["separation_power"]
    (folder / "known_all.json").write_text(json.dumps(known, indent=1))
    print(json.dumps(known, indent=1))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1500, help="showers per sample")
    p.add_argument("--workdir", type=Path, default=Path("/work/scratch/parity"))
    p.add_argument("--cc-python", default="/work/scratch/jetnet-venv/bin/python")
    p.add_argument("--cc-dir", default="/work/scratch/calochallenge", help="folder of evaluate.py & co.")
    p.add_argument("--cc-threads", type=int, default=2, help="torch threads of the script's classifier")
    p.add_argument("--cls-seeds", type=int, nargs="*", default=[1], help="seeds of the script's classifier runs")
    p.add_argument("--cls-levels", nargs="*", default=["high", "low"], choices=["high", "low"])
    p.add_argument("--repeats", type=int, default=1, help="classifier runs per comparison in evaluate")
    p.add_argument("--sf-cls-seeds", type=int, nargs="*", default=[], help="further showerforge classifier runs")
    p.add_argument(
        "--only",
        choices=["cc", "sf-evaluate", "sf-library", "sf-classifiers", "table"],
        help="run one part (the parts can run side by side; 'table' uses what is cached)",
    )
    p.add_argument("--known-answers", action="store_true", help="print the known answers of the test")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    work = Path(cfg["workdir"])
    work.mkdir(parents=True, exist_ok=True)
    if args.known_answers:
        known_answers(cfg)
        return
    paths = prepare_samples(work, args.n)
    for pkl in (work / "samples").glob("*.pkl"):  # the script's reference cache: never stale
        if pkl.stat().st_mtime < paths[pkl.stem].stat().st_mtime:
            pkl.unlink()
    run = {part: args.only in (None, part) for part in ("cc", "sf-evaluate", "sf-library", "sf-classifiers")}
    cc = run_cc(cfg, paths, execute=run["cc"])
    ev = sf_evaluate(cfg, paths, execute=run["sf-evaluate"])
    lib = sf_library(cfg, paths, execute=run["sf-library"])
    extra = sf_classifiers(cfg, paths, execute=run["sf-classifiers"])
    if args.only not in (None, "table"):
        return
    rows = distance_rows(cc, lib, ev)
    drops: dict[str, list[str]] = {}
    if ev:
        drops = script_drops(work, paths["ref"])
        sep, detail = separation_rows(cc, ev, drops, work)
        rows += sep + classifier_rows(cc, ev, extra, cfg)
    parts = [run_table(cc)] + ([array_table(lib["arrays"])] if lib else []) + [markdown(rows)]
    text = "\n\n".join(parts)
    print(text)
    (work / "table.md").write_text(text + "\n")
    results = {"config": cfg, "calochallenge": cc, "showerforge": {"evaluate": ev, "library": lib}, "rows": rows}
    results |= {"separation_detail": detail if ev else {}, "script_drops_reference_maximum": drops}
    (work / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("--cc-run", "--cc-dump", "--cc-known"):
        cc_main(sys.argv[1:])
    else:
        main()
