"""Run shards as short-lived subprocesses through Dask, with a progress bar in events/s.

Shared by the Geant4 calorimeter and the Pythia8 jet campaigns. Each shard is a JSON spec file
handed to ``python -m MODULE SPEC.json``; the module writes its output atomically and, while it
runs, the number of events done into the shard's progress file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "CampaignError",
    "ProgressBar",
    "ShardTask",
    "execute_shards",
    "write_progress",
    "shard_main",
    "campaign_lock",
    "shard_dir",
    "check_scheduler",
    "run_sharded",
]

S = TypeVar("S")


class CampaignError(RuntimeError):
    """A shard failed; the message carries the shard's own error output."""


@contextlib.contextmanager
def campaign_lock(output: str | Path) -> Iterator[Path]:
    """Hold ``OUTPUT.lock`` while a campaign writes ``output``; a second campaign is refused.

    The lock names the process that holds it (host, pid, start time). A lock left by a process
    that no longer runs on this host is taken over.

    Raises:
        CampaignError: another live campaign writes the same output.
    """
    out = Path(output)
    lock = out.with_name(out.name + ".lock")
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text())
            except (OSError, ValueError):
                holder = {}
            if holder.get("host") == me["host"] and int(holder.get("pid", 0)) == me["pid"]:
                yield lock  # this process holds it already (re-entrant): the outer holder releases it
                return
            if holder.get("host") == me["host"] and not _alive(int(holder.get("pid", 0))):
                lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
            raise CampaignError(
                f"{out}: another campaign is writing this output (pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}, since {holder.get('started', '?')}); wait for it to finish, "
                f"or remove {lock.name} if that process is gone"
            ) from None
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class ShardTask:
    """One shard to run: its index, seed, number of events, spec file and progress file."""

    index: int
    seed: int
    n_events: int
    spec_path: str
    progress_file: str


def write_progress(path: str | Path, done: int) -> None:
    """Record ``done`` events in a shard's progress file (atomically)."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(done))
    os.replace(tmp, path)


def shard_main(run: Callable[[str], None]) -> None:
    """Body of a shard's ``__main__``: run ``run(argv[1])``, report errors on stderr, flush, ``os._exit``.

    ``os._exit`` skips interpreter teardown, which may crash after Geant4 ran; outputs are written
    (atomically) and flushed before it.
    """
    import traceback

    code = 0
    try:
        run(sys.argv[1])
    except BaseException:  # everything goes to the parent through stderr
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run_subprocess(module: str, spec_path: str) -> tuple[int, str]:
    """Dask task: run one shard in a fresh Python process; returns (exit code, stderr tail)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run(
        [sys.executable, "-m", module, spec_path],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    return proc.returncode, (proc.stderr or "")[-3000:]


def _read_progress(path: str) -> int:
    try:
        return int(Path(path).read_text() or 0)
    except (OSError, ValueError):
        return 0


SCHEDULER_TIMEOUT_S = 10.0
"""How long a remote Dask scheduler may take to answer before a campaign gives up."""


def check_scheduler(scheduler: str) -> None:
    """Fail fast when nothing listens at a ``tcp://HOST:PORT`` scheduler address (other schemes: Dask decides)."""
    scheme, _, rest = scheduler.rpartition("://")
    host, _, port = rest.rpartition(":")
    if scheme not in ("", "tcp") or not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=SCHEDULER_TIMEOUT_S):
            pass
    except OSError as err:
        raise CampaignError(
            f"--scheduler {scheduler}: cannot connect ({err.strerror or err}); start a scheduler there "
            "(`dask scheduler`) or leave --scheduler out to run on local workers"
        ) from None


@contextlib.contextmanager
def shard_dir(path: str | Path) -> Iterator[Path]:
    """Create a campaign's shard folder; if the campaign then fails before any shard finished, remove it.

    Finished shards (``*.h5``, written atomically) are what a resumed campaign reuses, so a folder
    that holds one is kept; a folder with only specs and progress files is not worth leaving behind.
    """
    path = Path(path)
    existed = path.exists()
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        if not existed and not any(path.glob("*.h5")):
            shutil.rmtree(path, ignore_errors=True)
        raise


def run_sharded(
    folder: str | Path,
    specs: Sequence[S],
    *,
    complete: Callable[[S], bool],
    task: Callable[[S], ShardTask],
    module: str,
    workers: int,
    scheduler: str | None,
    progress: bool,
    n_total: int,
    label: str,
    unit: str,
    say: Callable[[str], None],
) -> None:
    """Run the shards of ``specs`` that are not ``complete`` yet, in the shard folder ``folder``.

    The part of a campaign shared by every engine: resume (finished shards are kept and counted),
    one spec file per shard to run (``task`` writes it and returns the :class:`ShardTask`), then
    :func:`execute_shards`. A folder created here is removed again if nothing finished.
    ``n_total`` is the number of events of all ``specs`` (for the progress display).
    """
    with shard_dir(folder):
        todo = [s for s in specs if not complete(s)]
        if len(todo) < len(specs):
            say(f"resuming: {len(specs) - len(todo)} of {len(specs)} shards already done")
        tasks = [task(s) for s in todo]
        if not tasks:
            return
        by_index = {t.index: s for t, s in zip(tasks, todo)}
        execute_shards(
            tasks,
            module,
            lambda t: complete(by_index[t.index]),
            workers=workers,
            scheduler=scheduler,
            progress=progress,
            n_total=n_total,
            done_before=n_total - sum(t.n_events for t in tasks),
            label=label,
            unit=unit,
        )


def execute_shards(
    tasks: list[ShardTask],
    module: str,
    is_complete: Callable[[ShardTask], bool],
    *,
    workers: int,
    scheduler: str | None,
    progress: bool,
    n_total: int,
    done_before: int = 0,
    label: str = "simulating",
    unit: str = "events",
) -> None:
    """Run ``tasks`` on a Dask LocalCluster (``workers`` slots) or a remote ``scheduler``.

    Raises:
        CampaignError: when shards fail (their error output is in the message); finished shards stay.
    """
    from dask.distributed import Client, LocalCluster, as_completed

    for name in ("distributed", "distributed.scheduler", "distributed.core", "distributed.worker"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for t in tasks:
        Path(t.progress_file).unlink(missing_ok=True)
    cluster = None
    if scheduler:
        check_scheduler(scheduler)
        try:
            client = Client(scheduler, timeout=SCHEDULER_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as err:
            raise CampaignError(
                f"--scheduler {scheduler}: no Dask scheduler answered within {SCHEDULER_TIMEOUT_S:g} s ({err}); "
                "start one (`dask scheduler`) or leave --scheduler out to run on local workers"
            ) from None
    else:
        # Threads suffice: each task only waits on its subprocess.
        cluster = LocalCluster(
            n_workers=max(1, workers),
            threads_per_worker=1,
            processes=False,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)
    try:
        futures = {
            client.submit(_run_subprocess, module, t.spec_path, pure=False, key=f"shard-{t.index}"): t for t in tasks
        }
        failures: list[str] = []
        pending = set(futures)
        ac = as_completed(futures)
        with ProgressBar(n_total, done_before, progress, label, unit) as bar:
            while pending:
                running = sum(_read_progress(t.progress_file) for f, t in futures.items() if f in pending)
                finished = sum(t.n_events for f, t in futures.items() if f not in pending)
                bar.update(done_before + finished + running)
                for fut in ac.next_batch(block=False) if ac.has_ready() else []:
                    pending.discard(fut)
                    t = futures[fut]
                    rc, stderr = fut.result()
                    if rc != 0 or not is_complete(t):
                        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
                        why = lines[-1] if lines else "no error output"  # the exception line of a traceback
                        failures.append(f"shard {t.index} (seed {t.seed}) exited with {rc}: {why}")
                if pending:
                    time.sleep(0.3)
            bar.update(done_before + sum(t.n_events for t in tasks))
        if failures:
            more = f" (+{len(failures) - 3} more)" if len(failures) > 3 else ""
            raise CampaignError("; ".join(failures[:3]) + more)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


class ProgressBar:
    """A rich progress bar with events/s on a terminal (or SHOWERFORGE_PROGRESS=1); elsewhere (a log
    file, a batch job) a plain line every ``PLAIN_EVERY_S`` seconds, and one when ``total`` is reached.

    Args:
        total: events in all.
        done: events already done before (counted as done, not in the rate).
        enabled: show anything at all.
        label: what is counted, at the start of every line.
        unit: the events' unit (``showers``, ``jets``, ...).
    """

    PLAIN_EVERY_S = 30.0

    def __init__(self, total: int, done: int, enabled: bool, label: str, unit: str) -> None:
        self.enabled = (enabled and sys.stderr.isatty()) or os.environ.get("SHOWERFORGE_PROGRESS") == "1"
        self.plain = enabled and not self.enabled
        self.total, self.label, self.unit = total, label, unit
        self.t0, self.done0, self.last = time.monotonic(), done, 0.0
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
            from rich.text import Text

            class _Rate(TextColumn):
                def render(self, task: Any) -> Text:
                    speed = task.finished_speed or task.speed
                    return Text(f"{speed:.2f} {unit}/s" if speed else f"… {unit}/s")

            self.p = Progress(
                TextColumn(label),
                BarColumn(),
                MofNCompleteColumn(),
                _Rate(""),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self.task = self.p.add_task(label, total=total, completed=done)

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            self.p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.p.stop()

    def update(self, done: int) -> None:
        if self.enabled:
            self.p.update(self.task, completed=min(done, self.total))
        elif self.plain:
            now = time.monotonic()
            if now - self.last >= self.PLAIN_EVERY_S or done >= self.total:
                self.last = now
                print(
                    plain_progress_line(
                        self.label, min(done, self.total), self.total, self.unit, done - self.done0, now - self.t0
                    ),
                    file=sys.stderr,
                    flush=True,
                )


_Progress = ProgressBar  # its name before it was made public (still imported under it)


def plain_progress_line(label: str, done: int, total: int, unit: str, done_here: int, seconds: float) -> str:
    """``label: done/total unit (pct), rate unit/s, ETA`` for logs that are not a terminal."""
    rate = done_here / seconds if seconds > 0 else 0.0
    eta = f", about {(total - done) / rate / 60:.1f} min left" if rate > 0 and done < total else ""
    return f"{label}: {done}/{total} {unit} ({100 * done / max(1, total):.0f} %), {rate:.2f} {unit}/s{eta}"
