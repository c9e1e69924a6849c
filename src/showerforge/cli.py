"""Command line: ``showerforge simulate / inspect / train / generate / evaluate / demo``.

The CLI holds no logic: it parses, validates, calls the library and prints. User mistakes end
with a one-line ``error: ...`` naming the file and field, exit code 2, and no traceback.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from showerforge.errors import UserError

__all__ = ["main", "cli"]

F = TypeVar("F", bound=Callable[..., Any])


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the user's input is wrong; any other exception keeps its traceback.

    :class:`~showerforge.errors.UserError` covers the file errors (calo, jet, geometry,
    checkpoint, output path) and every option or argument check.
    """
    from showerforge.simulate.shards import CampaignError
    from showerforge.training.fit import TrainError

    return (UserError, CampaignError, TrainError, FileNotFoundError, PermissionError, IsADirectoryError)


def _campaign_output_options(layout: str) -> Callable[[F], F]:
    """``--scheduler``, ``--keep-shards`` and ``-o/--output`` of a simulation campaign writing ``layout``."""

    def decorate(fn: F) -> F:
        fn = click.option(
            "-o",
            "--output",
            type=click.Path(dir_okay=False, path_type=Path),
            required=True,
            help=f"Output HDF5 file ({layout} layout).",
        )(fn)
        fn = click.option("--keep-shards", is_flag=True, help="Keep OUTPUT.shards/ after merging.")(fn)
        return click.option(
            "--scheduler", default=None, help="Dask scheduler address (tcp://HOST:PORT) instead of local workers."
        )(fn)

    return decorate


def _fit_options(*, what: str, epochs: str, lr: str, seed: str, overrides: str) -> Callable[[F], F]:
    """The training options ``train`` and ``distill`` share: epochs, batch, lr, seed, device, threads,
    wall-time cap and ``--set`` hyperparameter overrides (``what``: the samples of one batch)."""

    def decorate(fn: F) -> F:
        options = [
            click.option("--epochs", type=click.IntRange(min=1), default=None, help=epochs),
            click.option("--batch-size", type=click.IntRange(min=1), default=None, help=f"{what} per optimizer step."),
            click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help=lr),
            click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help=seed),
            click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ..."),
            click.option(
                "--threads",
                type=click.IntRange(min=1),
                default=None,
                help="CPU threads (default: every core this process may use).",
            ),
            click.option(
                "--max-minutes",
                type=click.FloatRange(min=0, min_open=True),
                default=None,
                help="Stop after the epoch that passes this wall time (the run can be resumed).",
            ),
            click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=overrides),
        ]
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def _fit_keywords(epochs: int | None, batch_size: int | None, lr: float | None, threads: int | None) -> dict[str, Any]:
    """The given ones of ``--epochs``, ``--batch-size``, ``--lr``, ``--threads`` as training keywords."""
    given = (("epochs", epochs), ("batch_size", batch_size), ("lr", lr), ("num_threads", threads))
    return {k: v for k, v in given if v is not None}


def friendly(fn: F) -> F:
    """Turn user errors into ``error: message`` and exit code 2 (tracebacks with SHOWERFORGE_DEBUG=1)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo("interrupted: finished shards/epochs are kept; re-run the same command to resume", err=True)
            sys.exit(130)
        except ModuleNotFoundError as err:
            from showerforge.extras import missing_extra_message

            hint = missing_extra_message(err)
            if hint is None or os.environ.get("SHOWERFORGE_DEBUG"):
                raise
            click.echo(f"error: {hint}", err=True)
            sys.exit(2)
        except _user_errors() as err:
            if os.environ.get("SHOWERFORGE_DEBUG"):
                raise
            msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            click.echo(f"error: {msg}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="showerforge")
def cli() -> None:
    """showerforge: reference simulation -> dataset -> surrogate -> generate -> evaluate.

    Energies are in MeV inside files; options accept units (10GeV, 500MeV). Lengths are mm.
    Run any command with --help for its options.
    """


def _status(message: str) -> None:
    click.echo(message, err=True)


# ----------------------------------------------------------------------------- simulate
@cli.group()
def simulate() -> None:
    """Run a reference simulation (Geant4 calorimeter showers, Pythia8 jets)."""


@simulate.command("calo")
@click.option(
    "--geometry",
    "geometry",
    default="ds2",
    show_default=True,
    help="Preset (ds2, ds3, mini, pbwo4, ild-ecal, ild-hcal, ild-ecal-hcal) or a JSON geometry file.",
)
@click.option(
    "--particle",
    default="e-",
    show_default=True,
    type=click.Choice(["e-", "e+", "gamma", "pi+", "pi-"]),
    help="Particle shot along +z into the calorimeter (pi+, pi- need --physics FTFP_BERT or QGSP_BERT).",
)
@click.option(
    "--energy",
    default="1:100GeV",
    show_default=True,
    help="10GeV (fixed), 1,10,100GeV (list) or 1:100GeV (range). Units keV/MeV/GeV/TeV.",
)
@click.option(
    "--spectrum",
    type=click.Choice(["fixed", "list", "uniform", "log-uniform"]),
    default=None,
    help="How energies are drawn (default: fixed / list / log-uniform by the form of --energy).",
)
@click.option("--n", "n", type=click.IntRange(min=1), default=1000, show_default=True, help="Number of showers.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Campaign seed.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=os.cpu_count() or 1,
    show_default="all cores",
    help="Local worker processes.",
)
@click.option(
    "--shard-size",
    type=click.IntRange(min=1),
    default=250,
    show_default=True,
    help="Showers per shard (each shard: own seed, own process, resumable).",
)
@click.option(
    "--physics",
    default="standard",
    show_default=True,
    type=click.Choice(["standard", "option1", "option2", "option3", "option4", "FTFP_BERT", "QGSP_BERT"]),
    help="Geant4 EM physics constructor (G4EmStandardPhysics[_optionN]), or the hadronic reference list "
    "FTFP_BERT or QGSP_BERT (for pions); without the Geant4 data sets these run on approximate hadronic "
    "data (approximate neutron cross sections, no discrete nuclear levels), recorded in the file.",
)
@click.option(
    "--cut",
    "cut_mm",
    type=click.FloatRange(min=0, min_open=True),
    default=0.7,
    show_default=True,
    help="Geant4 production cut in mm.",
)
@click.option(
    "--sampling-fraction",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    help="Divide visible energy by this value (default: measured in this campaign; ild-* keep visible MeV).",
)
@click.option(
    "--points",
    is_flag=True,
    help="Write point clouds (x, y mm; layer; energy MeV per point: the non-empty sub-cells) instead of "
    "cells; ild-* geometries.",
)
@click.option(
    "--threshold-mip",
    type=click.FloatRange(min=0),
    default=0.5,
    show_default=True,
    help="Cell readout threshold in MIPs of each layer's sensor (cell files of the ild-* geometries).",
)
@_campaign_output_options("CaloChallenge")
@friendly
def simulate_calo(
    geometry: str,
    particle: str,
    energy: str,
    spectrum: str | None,
    n: int,
    seed: int,
    workers: int,
    shard_size: int,
    physics: str,
    cut_mm: float,
    sampling_fraction: float | None,
    points: bool,
    threshold_mip: float,
    scheduler: str | None,
    keep_shards: bool,
    output: Path,
) -> None:
    """Simulate calorimeter showers with Geant4 into a CaloChallenge-format HDF5 file.

    With --points (geometries ild-ecal, ild-hcal, ild-ecal-hcal) each shower is written as a
    point cloud: the energy deposits summed on a grid finer than the cells (5 x 5 sub-cells per
    ECal cell), one point (x, y in mm, layer, energy in MeV) per non-empty sub-cell.

    \b
    Example:
      showerforge simulate calo --geometry ds2 --particle e- --energy 1:100GeV \\
          --spectrum log-uniform --n 10000 --seed 7 --workers 2 -o electrons.h5
      showerforge simulate calo --geometry ild-ecal --particle gamma --energy 10:90GeV \\
          --spectrum uniform --n 1000 --points -o photons.h5
      showerforge simulate calo --geometry ild-ecal-hcal --particle pi+ --physics FTFP_BERT \\
          --energy 10:90GeV --n 1000 --points -o pions.h5

    Re-running the same command resumes an interrupted campaign.
    """
    from showerforge.api import simulate_showers

    simulate_showers(
        geometry=geometry,
        particle=particle,
        energy=energy,
        spectrum=spectrum,
        n=n,
        seed=seed,
        output=output,
        workers=workers,
        shard_size=shard_size,
        physics=physics,
        cut_mm=cut_mm,
        sampling_fraction=sampling_fraction,
        scheduler=scheduler,
        keep_shards=keep_shards,
        on_status=_status,
        points=points,
        threshold_mip=threshold_mip,
    )
    click.echo(f"wrote {output}")


@simulate.command("jets")
@click.option(
    "--type",
    "types",
    default="g,q,t,w,z",
    show_default=True,
    help="Comma-separated jet types: g (gluon), q (light quark), t (top), w, z.",
)
@click.option("--n", "n", type=click.IntRange(min=1), default=1000, show_default=True, help="Jets per type.")
@click.option(
    "--particles",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Highest-pT constituents kept per jet (JetNet: 30 or 150), zero-padded.",
)
@click.option("--pt", "pt_window", default="800:1600", show_default=True, help="Jet pT window in GeV, LOW:HIGH.")
@click.option(
    "--eta-max", type=click.FloatRange(min=0, min_open=True), default=2.5, show_default=True, help="Jet |eta| cut."
)
@click.option(
    "--radius", type=click.FloatRange(min=0, min_open=True), default=0.8, show_default=True, help="Anti-kT R."
)
@click.option("--mpi/--no-mpi", default=True, show_default=True, help="Multiparton interactions (underlying event).")
@click.option(
    "--pythia",
    "pythia_settings",
    multiple=True,
    metavar="'KEY = VALUE'",
    help="Further Pythia setting, read after showerforge's own (repeatable): e.g. --pythia 'Tune:pp = 21' "
    "--pythia 'PhaseSpace:pTHatMin = 700'.",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Campaign seed.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=os.cpu_count() or 1,
    show_default="all cores",
    help="Local worker processes.",
)
@click.option("--shard-size", type=click.IntRange(min=1), default=2000, show_default=True, help="Jets per shard.")
@_campaign_output_options("JetNet")
@friendly
def simulate_jets_cmd(
    types: str,
    n: int,
    particles: int,
    pt_window: str,
    eta_max: float,
    radius: float,
    mpi: bool,
    pythia_settings: tuple[str, ...],
    seed: int,
    workers: int,
    shard_size: int,
    scheduler: str | None,
    keep_shards: bool,
    output: Path,
) -> None:
    """Generate jets with Pythia8 (pp, 13 TeV) + FastJet anti-kT into a JetNet-format HDF5 file.

    \b
    Example:
      showerforge simulate jets --type g,q,t,w,z --n 50000 --particles 30 --seed 3 -o jets.h5

    Jets are matched to the hard parton (t/W/Z: the resonance) within Delta R < 0.4. Re-running the
    same command resumes an interrupted campaign.
    """
    from showerforge.api import simulate_jets

    try:
        lo, hi = (float(x) for x in pt_window.split(":"))
    except ValueError:
        raise UserError(f"--pt {pt_window!r}: expected LOW:HIGH in GeV, e.g. 800:1600") from None
    simulate_jets(
        types=types,
        n=n,
        seed=seed,
        output=output,
        particles=particles,
        pt_gev=(lo, hi),
        eta_max=eta_max,
        radius=radius,
        mpi=mpi,
        pythia=pythia_settings,
        workers=workers,
        shard_size=shard_size,
        scheduler=scheduler,
        keep_shards=keep_shards,
        on_status=_status,
    )
    click.echo(f"wrote {output}")


# ----------------------------------------------------------------------------- validate
@cli.group()
def validate() -> None:
    """Validate versions of a surrogate (or of a Geant4 / Pythia8 configuration) against a suite.

    \b
    showerforge validate run --suite ds2.toml --candidate RUN|NAME|FILE --label v3
    showerforge validate history --suite ds2.toml
    showerforge validate compare --suite ds2.toml v2 v3
    showerforge validate dashboard --suite ds2.toml -o dashboard/

    The history is an SQLite file (validation.db beside the suite) or any SQLAlchemy URL (--store).
    """


def _store_option(fn: Any) -> Any:
    return click.option(
        "--store",
        default=None,
        metavar="PATH|URL",
        help="History database: a file (SQLite, created on first use) or an SQLAlchemy URL such as "
        "postgresql+psycopg://user@host/db. Default: validation.db beside the suite.",
    )(fn)


def _suite_option(required: bool = True) -> Any:
    return click.option(
        "--suite",
        "suite_path",
        type=click.Path(path_type=Path),
        required=required,
        help="Suite file (TOML): reference, analyses, metrics, gates (see docs/validation.md).",
    )


def _open_history(suite_path: Path, store: str | None) -> tuple[Any, str]:
    from showerforge.validate.run import default_store
    from showerforge.validate.store import open_store
    from showerforge.validate.suite import load_suite

    s = load_suite(suite_path)
    return open_store(store if store is not None else default_store(s), write=False), s.name


@validate.command("run")
@_suite_option()
@click.option(
    "--candidate",
    required=True,
    help="A shower/jet file, a training run folder, a checkpoint or a shipped model name "
    "(models are sampled at the reference's incident energies / jet types).",
)
@click.option("--label", required=True, help="Version label, unique in the suite's history (v3, 2026-11-30).")
@_store_option
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for index.html, result.json, histograms.root/.yoda, plots/ (default: validation/SUITE/LABEL "
    "beside the suite).",
)
@click.option("--replace", is_flag=True, help="Overwrite an earlier run with the same label.")
@friendly
def validate_run_cmd(
    suite_path: Path, candidate: str, label: str, store: str | None, output: Path | None, replace: bool
) -> None:
    """Validate one version: histograms with chi2/ndf and KS p, metrics, gates, page, history entry.

    Exit code 0 when every gate passes, 1 when a gate fails, 2 for a usage error (bad suite,
    candidate, label or history; nothing is recorded then).

    \b
    Example:
      showerforge validate run --suite ds2.toml --candidate runs/ds2-v3 --label v3
    """
    from showerforge.validate.run import validate_run

    res = validate_run(suite_path, candidate, label, store=store, output=output, replace=replace, on_status=_status)
    r = res.record
    if not r.gates:
        click.echo("the suite has no gates: nothing can fail (add gates = [...] to the suite)")
    for g in r.gates:
        value = "-" if g["value"] is None else f"{g['value']:.4g}"
        click.echo(f"{'pass' if g['passed'] else 'FAIL'}  {g['expr']}  (value {value})")
    worst = r.metrics.get("chi2_ndf_max", {})
    click.echo(
        f"{r.suite} {r.label}: {r.verdict.upper()} ({sum(g['passed'] for g in r.gates)}/{len(r.gates)} gates; "
        f"{len(r.histograms)} histograms, worst chi2/ndf {worst.get('value') or 0:.3g} in {worst.get('where')})"
    )
    click.echo(f"page: {res.output / 'index.html'}")
    sys.exit(res.exit_code)


@validate.command("history")
@_suite_option()
@_store_option
@click.option("--metric", "metrics", multiple=True, help="Columns to show (default: the gated values).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option(
    "--fail-on-regression",
    is_flag=True,
    help="Exit 1 when the latest version regressed (a gate that passed before fails, or a gated value "
    "moved the wrong way by more than 2 standard deviations).",
)
@friendly
def validate_history_cmd(
    suite_path: Path, store: str | None, metrics: tuple[str, ...], as_json: bool, fail_on_regression: bool
) -> None:
    """Print the trend of a suite: one line per version, gated values, regression alarm."""
    from showerforge.validate.history import check_metric_names, format_history
    from showerforge.validate.report import regressions

    st, name = _open_history(suite_path, store)
    runs = st.runs_of(name)
    if any("(" in m for m in metrics if m not in {k for r in runs for k in r.metrics}):
        runs = st.runs_of(name, histograms=True)  # FUNC(HISTOGRAM) columns read the histograms
    check_metric_names(runs, list(metrics), name)
    if fail_on_regression and regressions(runs):
        click.echo(format_history(runs, name, list(metrics) or None))
        sys.exit(1)
    if as_json:
        rows = [
            {"label": r.label, "created": r.created, "verdict": r.verdict, "metrics": r.metrics, "gates": r.gates}
            for r in runs
        ]
        click.echo(json.dumps(rows, indent=1, default=str))
        return
    click.echo(format_history(runs, name, list(metrics) or None))


@validate.command("compare")
@click.argument("a")
@click.argument("b")
@_suite_option(required=False)
@_store_option
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True, help="Histograms listed.")
@friendly
def validate_compare_cmd(a: str, b: str, suite_path: Path | None, store: str | None, top: int) -> None:
    """Rank the histograms that changed most between versions A and B (labels in the history), the
    ones that moved away from the reference first; or compare two histogram files (.root / .yoda).
    """
    from showerforge.validate.history import compare_versions, format_changes

    if suite_path is None:
        if not all(Path(x).suffix in (".root", ".yoda") for x in (a, b)):
            raise UserError("validate compare: give --suite with two labels, or two .root/.yoda histogram files")
        from showerforge.validate.history import compare_files

        click.echo(compare_files(a, b, top))
        return
    st, name = _open_history(suite_path, store)
    changes, metric_rows = compare_versions(st, name, a, b)
    click.echo(format_changes(changes, metric_rows, a, b, top))


@validate.command("dashboard")
@_suite_option()
@_store_option
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for index.html and the trend plots (default: validation/SUITE/dashboard beside the suite).",
)
@friendly
def validate_dashboard_cmd(suite_path: Path, store: str | None, output: Path | None) -> None:
    """One HTML page: each gated metric's trend across versions, gates as lines, regression alarm,
    links to each run's page."""
    from showerforge.validate.report import write_dashboard

    st, name = _open_history(suite_path, store)
    runs = st.runs_of(name, histograms=True)
    if not runs:
        raise UserError(f"history {st.where}: suite {name!r} has no validation runs yet; run `validate run` first")
    out = output if output is not None else suite_path.parent / "validation" / name / "dashboard"
    click.echo(f"wrote {write_dashboard(runs, out, name)}")


# ----------------------------------------------------------------------------- inspect
@cli.command("convert")
@click.argument("input_file", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "--to",
    "to",
    required=True,
    type=click.Choice(["cells", "voxels", "points"]),
    help="cells: points onto the geometry's cells (with the threshold); voxels: points onto a cylindrical "
    "CaloChallenge readout; points: a cell file to one point per non-empty cell.",
)
@click.option(
    "--threshold-mip",
    type=click.FloatRange(min=0),
    default=0.5,
    show_default=True,
    help="--to cells: drop cells below this fraction of the layer's MIP energy (0: keep all).",
)
@click.option(
    "--geometry",
    default=None,
    help="--to voxels: the cylindrical readout (preset, JSON, CaloChallenge XML; default 50 x 18 bins of "
    "2.325 mm per layer as ds3); --to cells: another cell geometry with the same layers.",
)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="HDF5 file to write.")
@friendly
def convert_cmd(input_file: Path, to: str, threshold_mip: float, geometry: str | None, output: Path) -> None:
    """Convert showers between point clouds, cells and cylindrical voxels.

    Energies stay visible energies in MeV; positions are in mm. The output is written atomically
    and never over the input.

    \b
    Examples:
      showerforge convert photons.h5 --to cells -o photons_cells.h5
      showerforge convert photons.h5 --to voxels -o photons_ds3.h5
      showerforge convert photons_cells.h5 --to points -o photons_from_cells.h5
    """
    from showerforge.api import convert

    convert(input_file, output, to=to, threshold_mip=threshold_mip, geometry=geometry, on_status=_status)
    click.echo(f"wrote {output}")


@cli.command("inspect")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--geometry",
    default=None,
    help="Geometry to check against: preset, JSON file or CaloChallenge binning XML "
    "(default: from the file, else from its voxel count).",
)
@click.option(
    "--binning",
    "binning",
    type=click.Path(path_type=Path),
    default=None,
    help="CaloChallenge binning XML (same as --geometry FILE.xml).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@friendly
def inspect_cmd(file: Path, geometry: str | None, binning: Path | None, as_json: bool) -> None:
    """Describe and validate a shower file (CaloChallenge; streams, any size), a point-cloud file or a jet file (JetNet).

    Checks keys, shapes, dtypes, units plausibility, NaN or negative energies and the geometry.
    Exit code 0 when the checks pass, 1 when a check fails, 2 when the file cannot be read.
    """
    from showerforge.kinds import kind_of_file

    desc, text = kind_of_file(file).inspect(file, geometry=str(binning) if binning else geometry)
    click.echo(json.dumps(desc, indent=2, default=str) if as_json else text)
    if not desc["ok"]:
        click.echo(f"error: {file}: {desc['errors'][0]}", err=True)
        sys.exit(1)


# ----------------------------------------------------------------------------- train / generate
@cli.command("train")
@click.option(
    "--data",
    "data",
    required=True,
    help="Training file: CaloChallenge showers, point-cloud showers (simulate calo --points) "
    "or JetNet jets (FILE.h5[:TYPE]).",
)
@click.option(
    "--model",
    "model",
    default=None,
    help="Registered model (`showerforge models` lists them). Default by data kind: showers cfm-voxel, "
    "point clouds cfm-points, jets cfm-set; jets and point clouds also ar-tokens.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Run directory: config.json, checkpoint.pt, history.json.",
)
@_fit_options(
    what="Samples",
    epochs="Total epochs (a finished run is extended).",
    lr="Peak learning rate (AdamW).",
    seed="Seed of weights, split, noise.",
    overrides="Model hyperparameter override, e.g. --set d_model=128 (repeatable).",
)
@click.option(
    "--condition",
    type=click.Choice(["type", "type+pt", "type+mass"]),
    default=None,
    help="Jets: condition on the jet type (one-hot; the default), on type and log jet pT, or on type "
    "and the relative jet mass m/pT (drawn at generation per type and pT from the training jets).",
)
@click.option(
    "--init-from",
    default=None,
    metavar="RUN",
    help="Start a new run from the weights of another run, checkpoint or shipped model (fine-tuning, "
    "transfer between data sets): tensors of the same name and shape are copied, the rest start fresh.",
)
@click.option("--no-resume", is_flag=True, help="Refuse to continue an existing run in the output directory.")
@friendly
def train_cmd(
    data: str,
    model: str | None,
    output: Path,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    seed: int,
    device: str,
    threads: int | None,
    max_minutes: float | None,
    condition: str,
    overrides: tuple[str, ...],
    init_from: str | None,
    no_resume: bool,
) -> None:
    """Train a surrogate on reference data; re-running the same command resumes.

    \b
    Example:
      showerforge train --data electrons_train.h5 --model cfm-voxel -o runs/e1/
      showerforge train --data jets.h5:t --model ar-tokens --init-from runs/g_jets/ -o runs/t_ft/
    """
    from showerforge.api import train

    cfg = _parse_overrides(overrides)
    kw = _fit_keywords(epochs, batch_size, lr, threads)
    if condition is not None:
        kw["condition"] = condition
    if init_from is not None:
        kw["init_from"] = init_from
    result = train(
        data,
        output=output,
        model=model,
        seed=seed,
        device=device,
        resume=not no_resume,
        max_minutes=max_minutes,
        config=cfg or None,
        **kw,
    )
    click.echo(f"run: {output} ({_describe_result(result)})")


def _describe_result(result: object) -> str:
    history = getattr(result, "history", None) or [{}]
    last = history[-1]
    parts = [f"{getattr(result, 'epochs_completed', len(history))} epochs"]
    for key in ("loss", "val_loss"):
        if last.get(key) is not None:
            parts.append(f"{key} {last[key]:.4g}")
    if getattr(result, "stopped_early", False):
        parts.append("stopped at --max-minutes; re-run to continue")
    return ", ".join(parts)


def _parse_overrides(items: tuple[str, ...]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. --set d_model=128")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


@cli.command("distill")
@click.option(
    "--model",
    "teacher",
    type=click.Path(path_type=Path),
    required=True,
    help="Teacher: run directory (or checkpoint.pt) of a trained flow-matching model, or a shipped "
    "model name such as ds2-electron.",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Network evaluations of the student (Euler steps): 1, 2, 4, ...",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The student's run directory (never the teacher's).",
)
@click.option(
    "--n-pairs",
    type=click.IntRange(min=2),
    default=20_000,
    show_default=True,
    help="Teacher trajectories (noise -> sample) to train on.",
)
@click.option(
    "--trajectory-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Grid of the stored trajectories (default --steps); a multiple, e.g. 4, serves 1-, 2- and 4-step students.",
)
@click.option(
    "--trajectories",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Reuse teacher_trajectories.h5 of another distill run of the same teacher.",
)
@click.option(
    "--energies-from",
    type=click.Path(path_type=Path),
    default=None,
    help="Showers: draw incident energies from this CaloChallenge file (default: log-uniform over the "
    "teacher's training range).",
)
@_fit_options(
    what="Trajectories",
    epochs="Student epochs (default 10).",
    lr="Peak learning rate (default 5e-4).",
    seed="Seed of conditions, noise, order.",
    overrides="Student hyperparameter override, e.g. --set d_model=64 (a smaller student starts from random weights, but keeps the teacher's tensors of equal shape, such as the point models' shower flow).",
)
@friendly
def distill_cmd(
    teacher: Path,
    steps: int,
    output: Path,
    n_pairs: int,
    trajectory_steps: int | None,
    trajectories: Path | None,
    energies_from: Path | None,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    seed: int,
    device: str,
    threads: int | None,
    max_minutes: float | None,
    overrides: tuple[str, ...],
) -> None:
    """Distil a trained surrogate into a few-step student (1-4 network evaluations per sample).

    The teacher's ODE is integrated from fresh noise and its states at t = k/K are stored
    (teacher_trajectories.h5 in the output); the student, started from the teacher's weights,
    learns to follow them with K Euler steps. The output is an ordinary run directory: generate,
    evaluate and export it like any other. Re-running the same command resumes. Cost on one CPU
    core (ds2): the teacher's trajectories at about 30 per second, the student at about 350 per
    second and epoch; ds2-electron-1step (30k trajectories, 10 epochs) took 36 minutes.

    \b
    Examples:
      showerforge distill --model ds2-electron --steps 1 -o runs/ds2-1step
      showerforge distill --model runs/jets/ --steps 2 --n-pairs 50000 -o runs/jets-2step
    """
    from showerforge.api import distill

    kw = _fit_keywords(epochs, batch_size, lr, threads)
    result = distill(
        teacher,
        output=output,
        steps=steps,
        n_pairs=n_pairs,
        trajectory_steps=trajectory_steps,
        trajectories=trajectories,
        energies_from=energies_from,
        seed=seed,
        device=device,
        max_minutes=max_minutes,
        config_overrides=_parse_overrides(overrides) or None,
        **kw,
    )
    click.echo(f"run: {output} ({steps}-step student; {_describe_result(result)})")


@cli.command("generate")
@click.option(
    "--model",
    "run_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Run directory (or checkpoint.pt) written by `showerforge train`, or a shipped model "
    "name such as ds2-electron (`showerforge models` lists them).",
)
@click.option(
    "--energies-from",
    type=click.Path(path_type=Path),
    default=None,
    help="Showers: take the incident energies of this CaloChallenge file (same order).",
)
@click.option("--energy", default=None, help="Showers: energies instead, e.g. 10GeV or 1:100GeV (with --n).")
@click.option("--type", "jet_type", default=None, help="Jets: jet type(s) to generate, e.g. t or g,q.")
@click.option(
    "--n",
    "n",
    type=click.IntRange(min=1),
    default=None,
    help="How many showers (with --energy; with --energies-from: the file's first N) or jets per type.",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Sampling seed.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True, help="Samples per batch.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="ODE steps (default: the model's).")
@click.option(
    "--solver", type=click.Choice(["euler", "midpoint", "rk4"]), default=None, help="ODE solver (default: the model's)."
)
@click.option(
    "--temperature",
    type=float,
    default=None,
    help="Autoregressive models (ar-tokens): sampling temperature > 0 (default 1: the learnt distribution).",
)
@click.option(
    "--top-k",
    "top_k",
    type=int,
    default=None,
    help="Autoregressive models (ar-tokens): keep the K >= 1 most likely tokens at each draw (default: all).",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, ...")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads of the model (default: torch's, every core). On a machine busy with other jobs, "
    "--threads 1 avoids threads waiting for each other (jetnet30 on 2 busy cores: 21 ms/jet with 2 threads, "
    "3 ms/jet with 1).",
)
@click.option(
    "--backend",
    type=click.Choice(["torch", "onnxruntime"]),
    default="torch",
    show_default=True,
    help="Showers: run the model in PyTorch, or export it to ONNX and run it in onnxruntime "
    "(same seed, same noise, same showers within float tolerance).",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Output HDF5 file."
)
@friendly
def generate_cmd(
    run_dir: Path,
    energies_from: Path | None,
    energy: str | None,
    jet_type: str | None,
    n: int | None,
    seed: int,
    batch_size: int,
    steps: int | None,
    solver: str | None,
    temperature: float | None,
    top_k: int | None,
    device: str,
    threads: int | None,
    backend: str,
    output: Path,
) -> None:
    """Generate showers (CaloChallenge format), point clouds or jets (JetNet format) with a trained surrogate.

    \b
    Examples:
      showerforge generate --model runs/e1/ --energies-from electrons_test.h5 -o generated.h5
      showerforge generate --model runs/e1/ --energy 1:100GeV --n 10000 -o generated.h5
      showerforge generate --model ds2-electron --energy 1:100GeV --n 10000 --seed 1 -o x.h5
      showerforge generate --model runs/jets/ --type t --n 50000 -o gen_t.h5
      showerforge generate --model runs/ar-jets/ --type t --n 10000 --temperature 0.9 --top-k 20 -o gen_t.h5
    """
    from showerforge.api import generate_file
    from showerforge.kinds import kind_of_checkpoint

    noun = kind_of_checkpoint(run_dir).noun
    with _generation_progress(f"generating {noun}", noun) as progress:
        generate_file(
            run_dir,
            output=output,
            n=n,
            energy=energy,
            energies_from=energies_from,
            types=jet_type,
            seed=seed,
            batch_size=batch_size,
            steps=steps,
            solver=solver,
            temperature=temperature,
            top_k=top_k,
            device=device,
            backend=backend,
            progress=progress,
            threads=threads,
        )
    click.echo(f"wrote {output}")


@contextlib.contextmanager
def _generation_progress(label: str, unit: str) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback for generation, shown as ``simulate`` shows its progress: a
    rich bar on a terminal, else a plain line on stderr every 30 s and at the end. Nothing is shown
    before the first call (made once the model is loaded and checked)."""
    from showerforge.simulate.shards import ProgressBar

    bar: list[ProgressBar] = []

    def progress(done: int, total: int) -> None:
        if not bar:
            bar.append(ProgressBar(total, 0, True, label, unit).__enter__())
        bar[0].update(done)

    try:
        yield progress
    finally:
        if bar:
            bar[0].__exit__(None, None, None)


@cli.command("export")
@click.option(
    "--model",
    "model",
    type=click.Path(path_type=Path),
    required=True,
    help="Run directory (or checkpoint.pt) of a trained model, or a shipped model name such as ds2-electron.",
)
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True, help="Export format.")
@click.option(
    "--layout",
    type=click.Choice(["calochallenge", "par04", "par04-calodit", "jetnet", "points"]),
    default=None,
    help="calochallenge (showers' default): noise + incident energy (MeV) -> showers (MeV, CaloChallenge order); "
    "par04: Geant4 Par04's VAE convention (noise from Geant4); par04-calodit: Par04's CaloDiT-2 convention "
    "(noise inside); jetnet (jets' default): noise + jet type + mask -> JetNet particles; points (point-cloud "
    "models): summary noise + point noise + incident energy (MeV) -> calibrated points and their number.",
)
@click.option(
    "--steps", type=click.IntRange(min=1), default=None, help="ODE steps unrolled in the graph (default: the model's)."
)
@click.option(
    "--solver", type=click.Choice(["euler", "midpoint", "rk4"]), default=None, help="ODE solver (default: the model's)."
)
@click.option(
    "--opset", type=click.IntRange(min=13), default=17, show_default=True, help="ONNX opset (15 for onnxruntime 1.11)."
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Output .onnx file."
)
@friendly
def export_cmd(
    model: Path, fmt: str, layout: str | None, steps: int | None, solver: str | None, opset: int, output: Path
) -> None:
    """Export a trained model as one ONNX graph: ODE sampler and inverse preprocessing, output in physical units.

    \b
    Examples:
      showerforge export --model ds2-electron --format onnx -o ds2.onnx
      showerforge export --model runs/e1/ --layout par04 --steps 4 --solver euler -o par04.onnx

    Inputs, outputs, units and how to run the file in Geant4's Par04 example: docs/deploy.md.
    """
    from showerforge.api import export_onnx

    result = export_onnx(model, output, layout=layout, steps=steps, solver=solver, opset=opset, fmt=fmt)
    for name, shape, meaning in result.inputs:
        click.echo(f"input  {name} {shape}: {meaning}")
    for name, shape, meaning in result.outputs:
        click.echo(f"output {name} {shape}: {meaning}")
    if result.probe_max_rel_diff is not None:
        click.echo(f"onnxruntime vs PyTorch on a probe batch: max relative difference {result.probe_max_rel_diff:.2g}")
    if result.par04_macro:
        click.echo("Par04 macro commands:")
        for line in result.par04_macro:
            click.echo(f"  {line}")
    click.echo(f"wrote {output}")


@cli.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@friendly
def models_cmd(as_json: bool) -> None:
    """List the registered model architectures and the pretrained surrogates shipped with showerforge.

    A shipped model is used by name: `showerforge generate --model ds2-electron ...` or
    `showerforge.load("ds2-electron")` in Python; its card states the reference it was trained on
    (generator, seeds, Geant4 version, physics data), the training budget and the measured fidelity.
    """
    from showerforge.models import MODELS
    from showerforge.runs.shipped import shipped_models

    shipped = shipped_models()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "architectures": {
                        k: {"data_kind": v.data_kind, "data_kinds": list(v.kinds), "description": v.description}
                        for k, v in MODELS.items()
                    },
                    "shipped": shipped,
                },
                indent=2,
            )
        )
        return
    click.echo("architectures (showerforge train --model NAME):")
    for name, spec in MODELS.items():
        click.echo(f"  {name:<16} {','.join(spec.kinds):<19} {spec.description}")
    click.echo("shipped pretrained surrogates (showerforge generate --model NAME):")
    if not shipped:
        click.echo("  none installed")
    for name, card in shipped.items():
        click.echo(f"  {name:<16} {card.get('summary', '')}")
        for key in ("reference", "training", "fidelity", "note"):
            if key in card:
                click.echo(f"  {'':<16} {key}: {_card_line(card[key])}")
                nested = card[key].items() if isinstance(card[key], dict) else ()
                for sub, value in nested:
                    if isinstance(value, dict):
                        click.echo(f"  {'':<16} {key} ({sub.replace('_', ' ')}): {_card_line(value)}")


def _card_line(value: object) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k} {v}" for k, v in value.items() if not isinstance(v, (dict, list)))
    return str(value)


# ----------------------------------------------------------------------------- demo
@cli.command("demo")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo"),
    show_default=True,
    help="Folder for the demo's files and report.",
)
@click.option("--workers", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default="all cores")
@friendly
def demo_cmd(output: Path, workers: int) -> None:
    """The embedded default job: Geant4 showers on `mini` -> train cfm-voxel -> generate -> evaluate.

    About 10-15 minutes on 2 CPU cores; re-running resumes. Ends by printing where the report is.
    """
    from showerforge.demo import DemoConfig, run_demo

    index = run_demo(output, DemoConfig(workers=workers), say=lambda m: click.echo(m, err=True))
    click.echo(f"report: {index}")


# ----------------------------------------------------------------------------- evaluate
@cli.command("evaluate")
@click.option(
    "--reference", required=True, help="Reference file (Geant4 / Pythia8); jets: FILE.h5:TYPE selects a type."
)
@click.option(
    "--candidate",
    required=True,
    multiple=True,
    help="Candidate (generated) file of the same geometry / jet type. Give it several times for a "
    "leaderboard: one report per candidate in OUTPUT/<name>/, one table and overlaid histograms in OUTPUT/.",
)
@click.option(
    "--published",
    is_flag=True,
    help="With several candidates on a ds2 readout: print the published CaloChallenge dataset-2 numbers "
    "beside ours (our samples are DS2-like, not DS2).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Report folder: metrics.json, plots/, index.html.",
)
@click.option(
    "--geometry",
    default=None,
    help="Showers: readout for files without a geometry attribute (preset, JSON or CaloChallenge XML).",
)
@click.option(
    "--quick",
    is_flag=True,
    help="Small classifier (3 x 256, 15 epochs, 1 repeat), fewer bootstrap replicas and small FPD/KPD/PRDC "
    "subsamples: for small samples and tests. Default: the CaloChallenge protocol (3 x 2048, 50 epochs, "
    "5 repeats; about 15 minutes per run for 10k vs 10k ds2 showers on 2 CPU cores).",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seeds splits, bootstrap and classifiers."
)
@click.option(
    "--max-showers",
    "--max-jets",
    "max_showers",
    type=click.IntRange(min=1),
    default=None,
    help="Use only the first N showers (jets) of each file.",
)
@click.option(
    "--floor-reference",
    default=None,
    help="Showers: a second reference file independent of --reference (e.g. Geant4 with another "
    "seed). The floor is then this file against the whole reference and the candidate meets the "
    "whole reference. Default: the reference is split in halves A and B; candidate vs A, floor B vs A "
    "(same sample sizes, so the floor is unbiased).",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=None,
    help="Classifier runs averaged (default 5, --quick 1; the challenge script runs once).",
)
@click.option(
    "--nplm-toys",
    type=click.IntRange(min=0),
    default=None,
    help="Showers: toys of the NPLM goodness-of-fit test (default 50, --quick 20; 0 skips it; about 1 s per toy for ds2).",
)
@click.option(
    "--fpd-extrapolation",
    type=click.Choice(["jetnet", "lsq"]),
    default="jetnet",
    show_default=True,
    help="FPD at infinite sample size: jetnet's bounded fit (published numbers) or the exact least-squares line.",
)
@click.option(
    "--efp-normed",
    is_flag=True,
    help="Jets: EFPs of pT fractions (pT / sum pT) instead of jetnet's unnormalised pT_rel.",
)
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@friendly
def evaluate_cmd(
    reference: str,
    candidate: tuple[str, ...],
    published: bool,
    output: Path,
    geometry: str | None,
    quick: bool,
    seed: int,
    max_showers: int | None,
    floor_reference: str | None,
    repeats: int | None,
    nplm_toys: int | None,
    fpd_extrapolation: str,
    efp_normed: bool,
    no_plots: bool,
) -> None:
    """Compare a candidate file with a reference: CaloChallenge metrics for showers, JetNet metrics for jets.

    \b
    Showers: separation power, chi2/ndf and Wasserstein-1 of the high-level features, classifier
    AUC (high- and low-level), FPD and KPD (x 1e3, on the classifier's high-level inputs) and PRDC
    (log10 voxel energies), each beside the reference-vs-reference floor at the same sample sizes.
    Jets: W1M, W1P, W1EFP, FPD, KPD beside truth-vs-truth (jetnet's conventions).
    Works on any two files of matching geometry, ours or anyone's.
    """
    from showerforge.data.io import check_not_input

    check_not_input(output, reference, *candidate, floor_reference)
    from showerforge.evaluation.progress import StepProgress
    from showerforge.kinds import kind_of_file

    kind = kind_of_file(reference)
    options: dict[str, Any] = {
        "seed": seed,
        "quick": quick,
        "plots": not no_plots,
        "max_samples": max_showers,
        "floor_reference": floor_reference,
        "geometry": geometry,
        "repeats": repeats,
        "nplm_toys": nplm_toys,
        "fpd_extrapolation": fpd_extrapolation,
        "efp_normed": efp_normed,
    }
    if len(candidate) > 1:
        from showerforge.evaluation.leaderboard import evaluate_many
        from showerforge.evaluation.metrics import format_measurement

        with StepProgress() as progress:  # reading, classifiers, bootstrap (where the kind reports them)
            board = evaluate_many(
                reference, list(candidate), output, kind=kind, published=published, progress=progress, **options
            )
        for row in board["candidates"]:
            cells = ", ".join(f"{k} {format_measurement(row[k])}" for k in board["metrics"])
            click.echo(f"{row['name']}: {cells}")
        click.echo("floor: " + ", ".join(f"{k} {format_measurement(board['floor'][k])}" for k in board["metrics"]))
    else:
        from showerforge.api import evaluate

        if published:
            raise UserError("--published needs several --candidate files")
        with StepProgress() as progress:
            metrics = evaluate(reference, candidate[0], output=output, progress=progress, **options)
        click.echo(kind.summary(metrics))
    click.echo(f"report: {output / 'index.html'}")


# ----------------------------------------------------------------------------- refine
@cli.group()
def refine() -> None:
    """Correct mis-modelled events: fit a refiner on source and target samples, then apply it.

    \b
    Methods:
      fm        conditional flow matching from source to target (minibatch optimal-transport
                pairs, conditioned on E_inc or the jet type); inputs: shapes, layers or voxels
                (showers), jet (jets); refined showers stay in MeV and non-negative
      flow      normalizing-flow morphing: a conditional flow per sample, source -> latent ->
                target (zuko neural spline flows); best for a few inputs
      reweight  calibrated classifier weights w = p/(1-p), clipped; writes a `weights` dataset
                and reports the effective sample size

    \b
    Example:
      showerforge refine fit --source mc.h5 --target data.h5 --method fm --inputs layers -o refiner/
      showerforge refine apply --refiner refiner/ --input mc_more.h5 -o mc_more_refined.h5
    """


@refine.command("fit")
@click.option("--source", required=True, help="Events to correct (a shower or jet file; FILE:TYPE for one jet type).")
@click.option("--target", required=True, help="Events to match (same kind and geometry as the source).")
@click.option(
    "--method",
    type=click.Choice(["fm", "flow", "reweight"]),
    default="fm",
    show_default=True,
    help="Refinement method.",
)
@click.option(
    "--inputs",
    default=None,
    help="Input blocks, comma-separated: shapes, layers, voxels (showers); jet, particles (jets). "
    "fm/flow take one. Default: voxels (fm), shapes (flow), shapes,layers (reweight); jet (+ particles for reweight).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Training epochs (fm/flow: 100 and at least 4000 optimizer steps; reweight: up to 200, early stopping).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Events per optimizer step (256).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Learning rate (1e-3).")
@click.option(
    "--hidden", type=click.IntRange(min=1), default=None, help="Hidden units per layer (fm 256, flow and reweight 128)."
)
@click.option(
    "--steps", type=click.IntRange(min=1), default=None, help="fm: ODE steps (midpoint) used when applying (20)."
)
@click.option(
    "--clip", type=click.FloatRange(min=1, min_open=True), default=None, help="reweight: largest weight kept (20)."
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seeds pairing, initialisation and batches.",
)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads (default: torch's).")
@click.option(
    "-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True, help="Refiner folder to write."
)
@friendly
def refine_fit_cmd(
    source: str,
    target: str,
    method: str,
    inputs: str | None,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    hidden: int | None,
    steps: int | None,
    clip: float | None,
    seed: int,
    threads: int | None,
    output: Path,
) -> None:
    """Fit a refiner that makes SOURCE events look like TARGET events.

    Writes OUTPUT/refiner.pt (tensors and JSON only), OUTPUT/refiner.json and OUTPUT/fit.png
    (source, target and refined source; the weight distribution for reweight).
    """
    from showerforge.refine import fit_refiner

    if method != "fm" and steps is not None:
        raise UserError("--steps applies to --method fm")
    if method != "reweight" and clip is not None:
        raise UserError("--clip applies to --method reweight")
    ref = fit_refiner(
        source, target, output, method=method, inputs=inputs, seed=seed, threads=threads, say=_status,
        epochs=epochs, batch_size=batch_size, lr=lr, hidden=hidden, steps=steps, clip=clip,
    )  # fmt: skip
    s = ref.summary
    click.echo(
        f"fitted {method} on {', '.join(ref.blocks)} ({len(ref.columns)} inputs): source {s['source']['n']}, "
        f"target {s['target']['n']} events, {s['fit_seconds']:.0f} s"
    )
    if method == "reweight":
        w = s["source_weights"]
        click.echo(
            f"weights on the source: mean {w['mean']:.3f}, effective sample size {w['ess']:.0f} of {w['n']} "
            f"({100 * w['ess_fraction']:.0f} %), clipped at {w['clip']:g}: {100 * w['clipped_fraction']:.2f} %"
        )
    click.echo(f"refiner: {output}")


@refine.command("apply")
@click.option(
    "--refiner", "refiner_dir", required=True, type=click.Path(path_type=Path), help="Folder written by `refine fit`."
)
@click.option(
    "--input", "input_spec", required=True, help="Events to refine (same kind and geometry as the refiner's source)."
)
@click.option("--steps", type=click.IntRange(min=1), default=None, help="fm: ODE steps (default: the refiner's).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads (default: torch's).")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Refined file to write."
)
@friendly
def refine_apply_cmd(refiner_dir: Path, input_spec: str, steps: int | None, threads: int | None, output: Path) -> None:
    """Apply a refiner: write INPUT's events refined (showers in MeV, or `refined_inputs`), or with `weights`."""
    from showerforge.refine import apply_refiner, load_refiner

    ref = load_refiner(refiner_dir)
    if steps is not None and ref.method != "fm":
        raise UserError(f"--steps applies to fm refiners; {refiner_dir} is a {ref.method} refiner")
    out = apply_refiner(ref, input_spec, output, steps=steps, threads=threads, say=_status)
    if ref.method == "reweight":
        click.echo(
            f"weights of {out['n']} events: mean {out['mean']:.3f}, effective sample size {out['ess']:.0f} "
            f"({100 * out['ess_fraction']:.0f} %), clipped at {out['clip']:g}: {100 * out['clipped_fraction']:.2f} %"
        )
    else:
        what = "showers (MeV)" if "showers" in out else "refined_inputs"
        click.echo(
            f"refined {out['n']} events ({ref.method} on {', '.join(ref.blocks)}) in {out['seconds']:.1f} s: {what}"
        )
    click.echo(f"wrote {output}")


def _one_line_warnings() -> None:
    """Print warnings as ``warning: message`` (no source line); ``SHOWERFORGE_DEBUG=1`` keeps Python's form."""
    if os.environ.get("SHOWERFORGE_DEBUG"):
        return

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        text = str(message).strip()
        click.echo(f"warning: {text.splitlines()[0] if text else category.__name__}", err=True)

    warnings.showwarning = show


# ----------------------------------------------------------------------------- optimise
@cli.command("optimise")
@click.option(
    "--config", "config", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The TOML config."
)
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True, help="The run folder.")
@click.option("--iterations", type=click.IntRange(min=1), default=None, help="Overrides [simulation] iterations.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Local Geant4 processes.")
@click.option("--scheduler", default=None, help="Dask scheduler address (tcp://HOST:PORT) instead of local workers.")
@click.option("--verify", is_flag=True, help="Re-simulate the start and final designs with fresh seeds.")
@click.option("--verify-energies", default="2,5,10,20GeV", show_default=True, help="Energies of the resolution check.")
@click.option("--verify-n", type=click.IntRange(min=10), default=300, show_default=True, help="Showers per energy.")
@click.option("--baselines", default="", help="Comma-separated: random, tpe (Optuna), on Geant4 at the loop's budget.")
@click.option(
    "--baseline-seeds",
    type=click.IntRange(min=1),
    default=None,
    help="Runs of each baseline, each with its own seed (overrides [simulation] baseline_seeds; default 1).",
)
@friendly
def optimise_cmd(
    config: Path,
    output: Path,
    iterations: int | None,
    workers: int | None,
    scheduler: str | None,
    verify: bool,
    verify_energies: str,
    verify_n: int,
    baselines: str,
    baseline_seeds: int | None,
) -> None:
    """Optimise a detector design with Geant4 and a surrogate of the per-event loss.

    \b
    Example:
      showerforge optimise --config examples/optimise_ecal.toml -o opt_ecal/ --verify
      showerforge optimise --config examples/optimise_ecal.toml -o opt_ecal/ --verify --baselines random,tpe
      showerforge optimise --config examples/optimise_pions.toml -o opt_pions/ --verify

    Re-running the same command resumes a killed run on the same path.
    """
    from showerforge.api import optimise

    res = optimise(
        config,
        output,
        scheduler=scheduler,
        workers=workers,
        iterations=iterations,
        verify=verify,
        verify_energies=verify_energies,
        verify_n=verify_n,
        baselines=[b.strip() for b in baselines.split(",") if b.strip()],
        baseline_seeds=baseline_seeds,
        on_status=_status,
    )
    click.echo(f"start: {res.start.describe()}")
    click.echo(f"final: {res.final.describe()}")
    if res.verification is not None:
        from showerforge.optimisation.verify import resolution_table

        click.echo(resolution_table(res.verification))
        if res.baselines:
            from showerforge.optimisation.runner import methods_table, summarise_methods

            budget = res.records[-1]["geant4_showers_total"] if res.records else 0
            click.echo(methods_table(summarise_methods(res.verification, budget), res.verification["energies_mev"]))
    click.echo(f"wrote {Path(output) / 'index.html'}")


def main() -> None:
    """Console-script entry point; usage mistakes, like other user errors, end with one line and exit code 2."""
    _one_line_warnings()
    try:
        code = cli.main(prog_name="showerforge", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as err:  # a bare `showerforge`: the help text
        click.echo(err.format_message())
        sys.exit(0)
    except click.UsageError as err:
        hint = f" (see `{err.ctx.command_path} --help`)" if err.ctx is not None else ""
        click.echo(f"error: {err.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as err:
        click.echo(f"error: {err.format_message()}", err=True)
        sys.exit(err.exit_code)
    except click.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
