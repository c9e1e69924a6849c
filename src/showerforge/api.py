"""The user's entry points, one import away (``import showerforge as sf``).

Example:
    >>> import numpy as np
    >>> import showerforge as sf
    >>> sf.simulate_showers(geometry="mini", particle="e-", energy="1:10GeV", n=200, seed=1, output="e.h5")
    >>> run = sf.train("e.h5", model="cfm-voxel", output="run/", epochs=1)
    >>> showers = sf.load(run).sample(energies=np.full(100, 5000.0), seed=3)   # (100, 576) MeV
    >>> model = sf.load("ds2-electron")                                        # a shipped model
    >>> result = sf.evaluate("e.h5", "gen.h5", output="report/", quick=True)

The command line is a thin layer over the same functions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "simulate_showers",
    "simulate_jets",
    "train",
    "distill",
    "load",
    "generate_file",
    "evaluate",
    "shipped_models",
    "export_onnx",
    "validate_run",
    "validation_history",
    "fit_refiner",
    "apply_refiner",
    "read_points",
    "to_cells",
    "to_voxels",
    "convert",
    "optimise",
]


def simulate_showers(
    *,
    geometry: str = "ds2",
    particle: str = "e-",
    energy: str = "1:100GeV",
    n: int = 1000,
    seed: int = 0,
    output: str | Path,
    spectrum: str | None = None,
    workers: int | None = None,
    shard_size: int = 250,
    physics: str = "standard",
    cut_mm: float = 0.7,
    sampling_fraction: float | None = None,
    scheduler: str | None = None,
    keep_shards: bool = False,
    progress: bool = True,
    on_status: Callable[[str], None] | None = None,
    points: bool = False,
    threshold_mip: float = 0.5,
) -> Path:
    """Geant4 showers into a CaloChallenge-format file (``showerforge simulate calo``).

    Args:
        geometry: preset (``ds2``, ``ds3``, ``mini``, ``pbwo4``, ``ild-ecal``, ``ild-hcal``,
            ``ild-ecal-hcal``) or a JSON geometry file.
        particle: ``e-``, ``e+``, ``gamma``; ``pi+``, ``pi-`` with a hadronic ``physics``.
        energy: with units: ``"10GeV"``, ``"1,10,100GeV"``, ``"1:100GeV"``.
        n: showers.
        seed: campaign seed (same seed and shard size -> identical showers).
        output: HDF5 file to write (atomically); an interrupted campaign resumes.
        spectrum: ``fixed``, ``list``, ``uniform``, ``log-uniform`` (default by the form of ``energy``).
        workers: local processes (default: all cores).
        physics: ``standard``, ``option1`` .. ``option4`` (EM), or ``FTFP_BERT`` / ``QGSP_BERT``
            (hadronic; on approximate hadronic data when the Geant4 data sets are not installed,
            recorded in the file as ``hadronic_data``).
        shard_size, cut_mm, sampling_fraction, scheduler, keep_shards: as on the command line.
        progress: progress bar (plain lines when not on a terminal).
        on_status: called with one-line status messages (what runs where, resume, merge).
        points: write a point-cloud file (x, y in mm, layer, energy in MeV per point) of a
            geometry with sub-cells (``ild-*``) instead of a cell file.
        threshold_mip: cell readout threshold in MIPs (cell files of the ``ild-*`` geometries).

    Returns:
        The output path.
    """
    from showerforge.simulate.campaign import simulate_shower_file

    return simulate_shower_file(
        geometry=geometry,
        particle=particle,
        energy=energy,
        n=n,
        seed=seed,
        output=output,
        spectrum=spectrum,
        workers=workers,
        shard_size=shard_size,
        physics=physics,
        cut_mm=cut_mm,
        sampling_fraction=sampling_fraction,
        scheduler=scheduler,
        keep_shards=keep_shards,
        progress=progress,
        on_status=on_status,
        points=points,
        threshold_mip=threshold_mip,
    )


def simulate_jets(
    *,
    types: str | list[str] = "g,q,t,w,z",
    n: int = 1000,
    seed: int = 0,
    output: str | Path,
    particles: int = 30,
    pt_gev: tuple[float, float] = (800.0, 1600.0),
    eta_max: float = 2.5,
    radius: float = 0.8,
    mpi: bool = True,
    pythia: tuple[str, ...] | list[str] = (),
    workers: int | None = None,
    shard_size: int = 2000,
    scheduler: str | None = None,
    keep_shards: bool = False,
    progress: bool = True,
    on_status: Callable[[str], None] | None = None,
) -> Path:
    """Pythia8 + FastJet jets into a JetNet-format file (``showerforge simulate jets``).

    Args:
        types: jet types, ``"t"``, ``"g,q"`` or a list.
        n: jets per type.
        seed: campaign seed.
        output: HDF5 file to write (atomically); an interrupted campaign resumes.
        particles: highest-pT constituents kept per jet (zero-padded).
        pt_gev: jet pT window in GeV.
        eta_max, radius, mpi: jet |eta| cut, anti-kT R, multiparton interactions.
        pythia: further Pythia settings, ``"Key = value"`` (a tune, ``PhaseSpace:pTHatMin``, ...),
            read after showerforge's own, so they win; checked before the campaign starts.
        workers, shard_size, scheduler, keep_shards, progress: as on the command line.
        on_status: called with one-line status messages.
    """
    from showerforge.simulate.jet_campaign import simulate_jet_file

    return simulate_jet_file(
        types=types,
        n=n,
        seed=seed,
        output=output,
        particles=particles,
        pt_gev=pt_gev,
        eta_max=eta_max,
        radius=radius,
        mpi=mpi,
        pythia=pythia,
        workers=workers,
        shard_size=shard_size,
        scheduler=scheduler,
        keep_shards=keep_shards,
        progress=progress,
        on_status=on_status,
    )


def train(
    data: str | Path,
    *,
    output: str | Path,
    model: str | None = None,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    max_minutes: float | None = None,
    config: dict[str, Any] | None = None,
    progress: bool = True,
    resume: bool = True,
    **train_settings: Any,
) -> Any:
    """Train a surrogate on a shower file (CaloChallenge) or a jet file (JetNet, ``FILE.h5[:TYPE]``).

    Args:
        data: training file; its kind chooses the default model (``cfm-voxel`` / ``cfm-set``).
        output: run directory (``checkpoint.pt``, ``config.json``, ``history.json``); re-running resumes.
        model: registered model name (``showerforge models`` lists them).
        epochs: total epochs (default: the training default of the data kind).
        seed, device, max_minutes, progress: as on the command line.
        config: model hyperparameters (``MODELS[name].defaults``).
        resume: continue a run found in ``output`` (else refuse it).
        **train_settings: further training settings (``batch_size``, ``lr``, ``num_threads``, ...;
            ``init_from``: a run, checkpoint or shipped model whose weights start a new run where
            names and shapes agree, as ``--init-from``; jets: ``condition``).

    Returns:
        A :class:`~showerforge.training.TrainResult` (epochs, history, time); it is path-like:
        the run directory, ready for :func:`load`.
    """
    from showerforge.kinds import kind_of_file

    kw = dict(train_settings)
    if epochs is not None:
        kw["epochs"] = epochs
    return kind_of_file(data).train(
        data,
        output,
        model=model,
        seed=seed,
        device=device,
        max_minutes=max_minutes,
        config_overrides=config,
        progress=progress,
        resume=resume,
        **kw,
    )


def distill(
    model: str | Path,
    *,
    output: str | Path,
    steps: int = 1,
    n_pairs: int = 20_000,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    energies_from: str | Path | None = None,
    **settings: Any,
) -> Any:
    """Distil a trained flow-matching run (or a shipped model) into a ``steps``-step student.

    Args:
        model: teacher: run directory, checkpoint or shipped model name (``"ds2-electron"``).
        output: the student's run directory; re-running resumes.
        steps: network evaluations per sample of the student (Euler steps).
        n_pairs: teacher trajectories to train on.
        epochs, seed, device, progress: as on the command line (``showerforge distill``).
        energies_from: showers: a file whose incident energies the student is distilled at.
        **settings: ``trajectory_steps``, ``trajectories``, ``energies_mev``, ``batch_size``,
            ``lr``, ``num_threads``, ``max_minutes``, ``config_overrides``, ... (see
            :func:`showerforge.generate.distill.distill`).

    Returns:
        A :class:`~showerforge.training.TrainResult`; it is path-like: the run directory, ready for
        :func:`load` (its default sampler is the ``steps``-step one).
    """
    from showerforge.generate.distill import distill as run_distill

    kw = dict(settings)
    if epochs is not None:
        kw["epochs"] = epochs
    from showerforge.kinds import load as load_kind

    if energies_from is not None:  # the teacher's kind says what a file of conditions gives
        from showerforge.kinds import GenerationRequest, kind_of_checkpoint

        request = GenerationRequest(energies_from=energies_from, options={"energies_from": "--energies-from"})
        kw["energies_mev"] = kind_of_checkpoint(model).draws(request, model=str(model))
    return run_distill(
        model, output, steps=steps, n_pairs=n_pairs, seed=seed, device=device, progress=progress, load=load_kind, **kw
    )


def load(name_or_path: str | Path, device: str = "cpu") -> Any:
    """A trained surrogate: a shipped name (``"ds2-electron"``), a run directory or a checkpoint.

    Showers: ``load(...).sample(energies=MeV_array, seed=0)`` -> (N, voxels) MeV.
    Jets: ``load(...).sample(n=100, jet_type="t", seed=0)`` -> JetNet arrays.
    """
    from showerforge.kinds import load as _load

    return _load(name_or_path, device)


def generate_file(
    model: str | Path,
    *,
    output: str | Path,
    n: int | None = None,
    energy: str | None = None,
    energies: Any = None,
    energies_from: str | Path | None = None,
    types: str | None = None,
    seed: int = 0,
    **options: Any,
) -> Path:
    """Sample a model into a file of its kind (``showerforge generate``).

    Showers are drawn at incident energies: ``energies`` (MeV array), ``energies_from`` (a
    reference file's) or ``energy`` (``"1:100GeV"``) with ``n``. Jets per type: ``types``
    (``"t"``, ``"g,q"``) with ``n`` jets of each.

    Args:
        model: run directory, checkpoint or shipped name (``"ds2-electron"``).
        output: the HDF5 file to write (atomically); never inside the model's folder.
        seed: seeds the noise (and energies drawn from a range).
        options: ``batch_size``, ``steps``, ``solver`` (ODE models), ``temperature``, ``top_k``
            (autoregressive models: ``ar-tokens``), ``device``, ``backend``; ``progress``: called as
            ``progress(done, total)`` once the model is loaded and after each batch; ``threads``:
            torch's CPU threads while generating (default: unchanged; restored afterwards).

    Returns:
        The output path; its attributes record the model, checkpoint hash and sampler settings.
    """
    from showerforge.data.io import check_not_input, check_writable
    from showerforge.kinds import GenerationRequest, kind_of_checkpoint

    threads = options.pop("threads", None)
    if threads is not None and int(threads) < 1:
        from showerforge.errors import UserError

        raise UserError(f"threads must be >= 1, got {threads}")
    kind = kind_of_checkpoint(model)
    request = GenerationRequest(
        n=n, energy=energy, energies_mev=energies, energies_from=energies_from, types=types, seed=seed
    )
    draws = kind.draws(request, model=str(model))
    check_not_input(output, energies_from, model)
    check_writable(output)
    report = options.pop("progress", None)
    if report is not None:
        total, done = kind.n_events(draws), [0]

        def progress(k: int) -> None:
            done[0] += int(k)
            report(done[0], total)

        options["progress"] = progress
    if threads is None:
        return kind.generate(model, draws, output, seed=seed, **options)
    import torch

    from showerforge.runs.device import torch_threads

    with torch_threads(torch.device("cpu"), int(threads)):
        return kind.generate(model, draws, output, seed=seed, **options)


def export_onnx(
    model: Any,
    output: str | Path,
    *,
    layout: str | None = None,
    steps: int | None = None,
    solver: str | None = None,
    opset: int = 17,
    fmt: str = "onnx",
) -> Any:
    """Export a model as one ONNX graph (sampler + inverse preprocessing) (``showerforge export``).

    Args:
        model: run directory, checkpoint, shipped name (``"ds2-electron"``) or a loaded model.
        output: the ``.onnx`` file (written atomically).
        layout: showers: ``"calochallenge"`` (default; noise + incident MeV -> showers MeV),
            ``"par04"`` or ``"par04-calodit"`` (Geant4 Par04's calling conventions); jets:
            ``"jetnet"`` (default); point clouds: ``"points"`` (default; noise + incident MeV ->
            calibrated points). See ``docs/deploy.md``.
        steps, solver: the ODE sampler unrolled into the graph (default: the model's).
        opset, fmt: ONNX opset; export format (``"onnx"``).

    Returns:
        :class:`showerforge.deploy.ExportResult` (path, inputs, outputs, metadata, probe difference).
    """
    from showerforge.data.io import check_not_input
    from showerforge.deploy.export import check_layout, check_opset
    from showerforge.kinds import LEGACY_DEFAULT, get_kind
    from showerforge.kinds import load as load_kind

    if layout is not None:
        check_layout(layout, fmt)
    check_opset(opset)
    if hasattr(model, "export_layouts"):  # a loaded model
        surrogate = model
    else:  # checked before loading: the output is not the model's file nor in its folder
        check_not_input(output, model if Path(str(model)).exists() else None)
        surrogate = load_kind(model)
    kind = get_kind(getattr(surrogate, "data_kind", "") or LEGACY_DEFAULT)
    return kind.export(surrogate, output, layout=layout, steps=steps, solver=solver, opset=opset, fmt=fmt)


def shipped_models() -> dict[str, dict[str, Any]]:
    """Model cards of the pretrained surrogates shipped with the package, by name."""
    from showerforge.runs.shipped import shipped_models as _shipped

    return _shipped()


def evaluate(
    reference: str | Path,
    candidate: str | Path,
    *,
    output: str | Path | None = None,
    quick: bool = False,
    seed: int = 0,
    plots: bool = True,
    max_samples: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Compare a candidate file with a reference file (showers or jets, detected from the files).

    Args:
        reference: reference file (Geant4 / Pythia8); jets may name a type, ``FILE.h5:t``.
        candidate: candidate (generated) file.
        output: report folder (``metrics.json``, ``plots/``, ``index.html``); default: a folder
            ``<candidate>.report`` beside the candidate.
        quick: the quick classifier protocol (see ``showerforge evaluate --help``).
        seed: seeds splits, bootstraps and classifiers.
        plots: write PNG plots.
        max_samples: use only the first N showers/jets of each file.
        options: further keywords of :func:`showerforge.evaluation.evaluate_files` (showers:
            ``floor_reference``, ``classifiers``, ``nplm_toys``, ``fpd_extrapolation``, ...) or
            :func:`showerforge.evaluation.evaluate_jet_files` (jets: ``efp_normed``, ...).

    Returns:
        The metrics (the content of ``metrics.json``), each value with its uncertainty and floor.
    """
    from showerforge.kinds import kind_of_file

    out = Path(output) if output is not None else Path(str(candidate).split(":")[0] + ".report")
    return kind_of_file(reference).evaluate(
        reference, candidate, out, seed=seed, quick=quick, plots=plots, max_samples=max_samples, **options
    )


def validate_run(
    suite: str | Path,
    candidate: str | Path,
    label: str,
    *,
    store: str | Path | None = None,
    output: str | Path | None = None,
    replace: bool = False,
) -> Any:
    """Validate one version against a suite (``showerforge validate run``; see docs/validation.md).

    Args:
        suite: suite file (TOML): reference, analyses, metrics, gates.
        candidate: a shower/jet file, a training run folder, a checkpoint or a shipped model name.
        label: version label, unique in the suite's history.
        store: history database path or SQLAlchemy URL (default ``validation.db`` beside the suite).
        output: folder for the page and files (default ``validation/<suite>/<label>`` beside it).
        replace: overwrite an earlier run with the same label.

    Returns:
        A :class:`showerforge.validate.run.ValidationResult`: ``.passed``, ``.exit_code``,
        ``.record`` (gates, metrics, histograms, identity), ``.output``.
    """
    from showerforge.validate.run import validate_run as _run

    return _run(suite, candidate, label, store=store, output=output, replace=replace)


def validation_history(suite: str | Path, *, store: str | Path | None = None) -> list[Any]:
    """Every recorded run of a suite, oldest first (:class:`showerforge.validate.store.RunRecord`)."""
    from showerforge.validate.run import default_store
    from showerforge.validate.store import open_store
    from showerforge.validate.suite import load_suite

    s = load_suite(suite)
    return open_store(store if store is not None else default_store(s), write=False).runs_of(s.name, histograms=True)


def fit_refiner(
    source: str | Path,
    target: str | Path,
    output: str | Path | None = None,
    *,
    method: str = "fm",
    inputs: str | list[str] | None = None,
    seed: int = 0,
    epochs: int | None = None,
    **settings: Any,
) -> Any:
    """Fit a refiner that makes ``source`` events look like ``target`` events (``showerforge refine fit``).

    Args:
        source, target: shower or jet files of the same kind and geometry.
        output: refiner folder (``None``: keep in memory).
        method: ``fm`` (flow matching), ``flow`` (normalizing-flow morphing) or ``reweight``.
        inputs: ``shapes``, ``layers``, ``voxels`` (showers); ``jet``, ``particles`` (jets).
        seed: the same seed gives the same refiner.
        epochs, **settings: training settings (``hidden``, ``lr``, ``batch_size``, ``steps``, ``clip``, ...).

    Returns:
        A :class:`showerforge.refine.Refiner` (``.summary`` holds the fit's figures).
    """
    from showerforge.refine import fit_refiner as _fit

    return _fit(source, target, output, method=method, inputs=inputs, seed=seed, epochs=epochs, **settings)


def apply_refiner(refiner: Any, input: str | Path, output: str | Path | None = None, **options: Any) -> dict[str, Any]:  # noqa: A002
    """Apply a refiner (a folder or a :class:`~showerforge.refine.Refiner`) to a file (``showerforge refine apply``).

    Returns:
        dict with ``showers`` (MeV) or ``refined_inputs`` or ``weights`` (+ ``ess``), and ``n``.
    """
    from showerforge.refine import apply_refiner as _apply

    return _apply(refiner, input, output, **options)


# ----------------------------------------------------------------------------- point clouds
def read_points(path: str | Path, max_events: int | None = None) -> Any:
    """A point-cloud file as :class:`showerforge.data.points.PointClouds` (flat points x, y mm, layer, energy MeV).

    ``clouds.event(i)`` is shower ``i`` as an (n, 4) array; ``clouds.incident_mev`` its energies;
    ``clouds.geometry`` the detector. Refuses NaN, negative energies and layers outside the geometry.
    """
    from showerforge.data.points import read_points as _read

    return _read(path, max_events)


def _clouds(points: Any) -> Any:
    from showerforge.data.points import PointClouds

    return points if isinstance(points, PointClouds) else read_points(points)


def to_cells(points: Any, *, threshold_mip: float = 0.5, geometry: str | Path | None = None) -> Any:
    """Project point clouds (a file or ``PointClouds``) onto the cells of their geometry, with the readout threshold.

    Args:
        points: a point-cloud file or :class:`~showerforge.data.points.PointClouds`.
        threshold_mip: cells below this fraction of the layer's MIP energy are dropped (0: none).
        geometry: another cell geometry with the same layers (default: the points' own).

    Returns:
        :class:`~showerforge.data.points.CellHits` (flat cells above threshold: event, layer,
        cell, x_mm, y_mm, energy_mev); ``.dense()`` gives the (N, n_cells) array in MeV.
    """
    from showerforge.data.points import points_to_cells
    from showerforge.geometry import get_geometry

    clouds = _clouds(points)
    return points_to_cells(clouds, get_geometry(geometry) if geometry is not None else None, threshold_mip)


def to_voxels(points: Any, *, geometry: str | Path | None = None) -> tuple[Any, Any]:
    """Project point clouds onto a cylindrical CaloChallenge readout.

    Args:
        points: a point-cloud file or :class:`~showerforge.data.points.PointClouds`.
        geometry: the cylindrical readout (preset, JSON or XML) with the points' number of layers;
            default: 50 angular x 18 radial bins of 2.325 mm per layer (CaloChallenge dataset 3).

    Returns:
        ``(incident_mev (N,), voxels (N, n_voxels) float32 MeV)``.
    """
    from showerforge.data.convert import ds3_like
    from showerforge.data.points import points_to_voxels
    from showerforge.errors import UserError
    from showerforge.geometry import get_geometry

    clouds = _clouds(points)
    if geometry is None and clouds.geometry is None:
        raise UserError("to_voxels: the points carry no geometry; give geometry=")
    target = get_geometry(geometry) if geometry is not None else ds3_like(clouds.geometry)
    return clouds.incident_mev, points_to_voxels(clouds, target)


def convert(
    input: str | Path,  # noqa: A002
    output: str | Path,
    *,
    to: str,
    threshold_mip: float = 0.5,
    geometry: str | Path | None = None,
    on_status: Callable[[str], None] | None = None,
) -> Path:
    """Convert a file (``showerforge convert``): points -> ``cells`` or ``voxels``, cells -> ``points``.

    Streams 1000 showers at a time; writes atomically; never writes over the input. See
    :func:`showerforge.data.convert.convert_file`.
    """
    from showerforge.data.convert import convert_file

    return convert_file(input, output, to=to, threshold_mip=threshold_mip, geometry=geometry, on_status=on_status)


def optimise(
    config: str | Path,
    output: str | Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    iterations: int | None = None,
    verify: bool = False,
    verify_energies: str = "2,5,10,20GeV",
    verify_n: int = 300,
    baselines: tuple[str, ...] | list[str] = (),
    baseline_seeds: int | None = None,
    progress: bool = False,
    on_status: Callable[[str], None] | None = None,
) -> Any:
    """Optimise a detector design through a surrogate of the per-event loss (``showerforge optimise``).

    Args:
        config: the TOML config (``docs/optimise.md``): design space, beam, costs, constraints,
            Geant4 budget, trust region, reconstruction.
        output: the run folder; a killed run resumes on the same path when called again.
        scheduler: a Dask scheduler address (``tcp://host:port``) for the Geant4 shards.
        workers: local Geant4 processes (overrides the config's ``[simulation] workers``).
        iterations: overrides the config's ``[simulation] iterations``.
        verify: re-simulate the start and final designs (and the baselines' best) with fresh seeds.
        verify_energies: energies of the resolution check, with a unit (``2,5,10,20GeV``).
        verify_n: showers per verification energy (twice as many of the beam spectrum calibrate).
        baselines: ``random`` and/or ``tpe`` (Optuna), run on Geant4 with the loop's budget.
        baseline_seeds: runs of each baseline, each with its own seed (overrides the config's
            ``[simulation] baseline_seeds``, default 1); the comparison gives their mean and spread.
        progress: a progress bar of the Geant4 showers.
        on_status: called with one-line status messages.

    Returns:
        A :class:`showerforge.optimisation.runner.RunResult` (path-like: the run folder): ``records``
        (one per iteration), ``start`` and ``final`` designs, ``verification``, ``baselines``.
    """
    from showerforge.optimisation.runner import optimise_and_verify

    return optimise_and_verify(
        config,
        output,
        scheduler=scheduler,
        workers=workers,
        iterations=iterations,
        verify=verify,
        verify_energies=verify_energies,
        verify_n=verify_n,
        baselines=tuple(baselines),
        baseline_seeds=baseline_seeds,
        progress=progress,
        on_status=on_status,
    )
