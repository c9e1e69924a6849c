"""The validation history: every run with its label, date, candidate identity, metrics, gates and
histograms, in one database.

``store`` is a file path (an embedded SQLite database, created on first use) or an SQLAlchemy URL
(``sqlite:///history.db?timeout=1``, ``postgresql+psycopg://user@host/db`` with its driver
installed), so a team can share one server. Each run is written in one transaction: an error
(a locked or corrupt database, an interrupted process) leaves every earlier entry as it was.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from showerforge.errors import UserError
from showerforge.validate.histograms import Hist1D

__all__ = ["HistoryStore", "RunRecord", "open_store"]

SCHEMA_VERSION = 1


@dataclass
class RunRecord:
    """One validation run as stored.

    Attributes:
        suite: suite name.
        label: version label (unique within the suite).
        created: ISO-8601 UTC time.
        verdict: ``pass`` or ``fail``.
        candidate: identity (kind, file/checkpoint SHA-256, generator, version, settings).
        reference: identity of the reference.
        metrics: name -> {"value", "error", "floor", ...}.
        gates: list of {"expr", "key", "value", "error", "threshold", "op", "passed"}.
        histograms: name -> {"candidate": Hist1D, "reference": Hist1D, "comparison": {...}}.
        page: path of the run's HTML page.
    """

    suite: str
    label: str
    created: str
    verdict: str
    candidate: dict[str, Any]
    reference: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    gates: list[dict[str, Any]]
    histograms: dict[str, dict[str, Any]] = field(default_factory=dict)
    page: str = ""
    id: int | None = None


def _url(store: str | Path) -> str:
    s = str(store)
    if "://" in s:
        return s
    path = Path(s).expanduser()
    if path.is_dir():
        raise UserError(f"--store {s}: is a folder; give a database file such as {path / 'history.db'} or a URL")
    if not path.parent.is_dir():
        raise UserError(f"--store {s}: the folder {path.parent} does not exist")
    return f"sqlite:///{path.resolve()}"


def _describe(url: str) -> str:
    return url.split("///", 1)[1].split("?", 1)[0] if url.startswith("sqlite:///") else url.split("@")[-1]


def _text(value: str) -> str:
    """``value`` storable as UTF-8 text: a non-UTF-8 file name's bytes become U+FFFD (its link then
    names the folder as ``ls`` shows it, instead of the run failing to be recorded)."""
    from showerforge.evaluation.output import page_text

    return page_text(value)


def _json(obj: Any) -> str:
    def clean(o: Any) -> Any:
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [clean(v) for v in o]
        return o

    return json.dumps(clean(obj), sort_keys=True)


class HistoryStore:
    """Read and write validation runs (see module docstring); use :func:`open_store`."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self.url = url
        self.where = _describe(url)
        self.pending = False  # a new SQLite file, created by the first add()
        try:
            self.engine = sa.create_engine(url, future=True)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as err:
            raise UserError(f"--store {url}: not a usable database URL ({str(err).splitlines()[0]})") from None
        except ModuleNotFoundError as err:
            raise UserError(
                f"--store {url}: the database driver {err.name!r} is not installed; pip install it "
                "(e.g. psycopg[binary] for PostgreSQL) or use an SQLite file"
            ) from None
        md = sa.MetaData()
        self.runs = sa.Table(
            "validation_runs",
            md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("suite", sa.String(200), nullable=False),
            sa.Column("label", sa.String(200), nullable=False),
            sa.Column("created", sa.String(40), nullable=False),
            sa.Column("verdict", sa.String(10), nullable=False),
            sa.Column("candidate", sa.Text, nullable=False),
            sa.Column("reference", sa.Text, nullable=False),
            sa.Column("page", sa.Text, nullable=False, default=""),
            sa.UniqueConstraint("suite", "label", name="uq_suite_label"),
        )
        self.metrics = sa.Table(
            "validation_metrics",
            md,
            sa.Column("run_id", sa.Integer, sa.ForeignKey("validation_runs.id"), nullable=False, index=True),
            sa.Column("name", sa.String(300), nullable=False),
            sa.Column("value", sa.Float, nullable=True),
            sa.Column("error", sa.Float, nullable=True),
            sa.Column("extra", sa.Text, nullable=False, default="{}"),
        )
        self.gates = sa.Table(
            "validation_gates",
            md,
            sa.Column("run_id", sa.Integer, sa.ForeignKey("validation_runs.id"), nullable=False, index=True),
            sa.Column("position", sa.Integer, nullable=False),
            sa.Column("expr", sa.Text, nullable=False),
            sa.Column("passed", sa.Boolean, nullable=False),
            sa.Column("detail", sa.Text, nullable=False),
        )
        self.histograms = sa.Table(
            "validation_histograms",
            md,
            sa.Column("run_id", sa.Integer, sa.ForeignKey("validation_runs.id"), nullable=False, index=True),
            sa.Column("name", sa.String(300), nullable=False),
            sa.Column("candidate", sa.Text, nullable=False),
            sa.Column("reference", sa.Text, nullable=False),
            sa.Column("comparison", sa.Text, nullable=False),
        )
        self.info = sa.Table(
            "validation_schema",
            md,
            sa.Column("version", sa.Integer, nullable=False),
        )
        self._md = md

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        import sqlalchemy as sa

        try:
            yield
        except sa.exc.OperationalError as err:
            text = str(err.orig if err.orig is not None else err).splitlines()[0]
            if "readonly" in text or "read-only" in text:
                raise UserError(f"history {self.where}: the database is read-only; give a writable --store") from None
            if "locked" in text or "busy" in text:
                raise UserError(
                    f"history {self.where}: the database is locked by another process while {doing}; "
                    "nothing was written, retry when it finishes"
                ) from None
            raise UserError(f"history {self.where}: {text} while {doing}; nothing was written") from None
        except sa.exc.DatabaseError as err:
            text = str(err.orig if err.orig is not None else err).splitlines()[0]
            raise UserError(
                f"history {self.where}: not a readable validation history ({text}); "
                "give another --store, or move this file away"
            ) from None

    def prepare(self, write: bool) -> HistoryStore:
        """Check the history before any long work: readable, of a known schema, and (``write``)
        writable. A new SQLite file is only created by the first :meth:`add`; reading a file that
        does not exist is an error."""
        import sqlalchemy as sa

        path = self._sqlite_path()
        if path is not None and not path.exists():
            if not write:
                raise UserError(f"history {path}: no such file; give the --store of an earlier `validate run`")
            if not os.access(path.parent, os.W_OK):
                raise UserError(f"history {path}: cannot create it, the folder {path.parent} is not writable")
            self.pending = True
            return self
        with self._errors("opening it"), self.engine.begin() as conn:
            if write:
                self._md.create_all(conn)
            elif not sa.inspect(conn).has_table("validation_runs"):
                raise UserError(f"history {self.where}: not a validation history (no validation_runs table)")
            versions = [r[0] for r in conn.execute(sa.select(self.info.c.version))]
            if not versions and write:
                conn.execute(self.info.insert().values(version=SCHEMA_VERSION))
            elif versions and max(versions) > SCHEMA_VERSION:
                raise UserError(
                    f"history {self.where}: written by a newer showerforge (schema {max(versions)}); upgrade showerforge"
                )
            if write:  # fails now, not after the work, on a read-only file or server
                conn.execute(self.info.update().values(version=self.info.c.version))
        return self

    def _sqlite_path(self) -> Path | None:
        if not self.url.startswith("sqlite:///"):
            return None
        return Path(self.url[len("sqlite:///") :].split("?", 1)[0].removeprefix("file:"))

    def has_label(self, suite: str, label: str) -> bool:
        import sqlalchemy as sa

        if self.pending:
            return False
        with self._errors("reading it"), self.engine.connect() as conn:
            q = sa.select(self.runs.c.id).where(self.runs.c.suite == suite, self.runs.c.label == label)
            return conn.execute(q).first() is not None

    def add(self, record: RunRecord, *, replace: bool = False) -> int:
        """Write one run in one transaction; returns its id.

        Raises:
            UserError: the label exists in this suite (unless ``replace``), or the database is
                locked / unreadable; nothing is written then.
        """
        import sqlalchemy as sa

        with self._errors("writing the run"), self.engine.begin() as conn:
            if self.pending:
                self._md.create_all(conn)
                conn.execute(self.info.insert().values(version=SCHEMA_VERSION))
            old = conn.execute(
                sa.select(self.runs.c.id).where(self.runs.c.suite == record.suite, self.runs.c.label == record.label)
            ).first()
            if old is not None:
                if not replace:
                    raise UserError(
                        f"history {self.where}: suite {record.suite!r} already has a run labelled {record.label!r}; "
                        "choose another --label or pass --replace"
                    )
                for table in (self.metrics, self.gates, self.histograms):
                    conn.execute(table.delete().where(table.c.run_id == old[0]))
                conn.execute(self.runs.delete().where(self.runs.c.id == old[0]))
            run_id = conn.execute(
                self.runs.insert().values(
                    suite=record.suite,
                    label=record.label,
                    created=record.created,
                    verdict=record.verdict,
                    candidate=_json(record.candidate),
                    reference=_json(record.reference),
                    page=_text(record.page),
                )
            ).inserted_primary_key
            assert run_id is not None
            run_id = run_id[0]
            self._insert_children(conn, int(run_id), record)
        self.pending = False
        record.id = int(run_id)
        return int(run_id)

    def _insert_children(self, conn: Any, run_id: int, record: RunRecord) -> None:
        rows = [
            {
                "run_id": run_id,
                "name": name,
                "value": _finite(m.get("value")),
                "error": _finite(m.get("error")),
                "extra": _json({k: v for k, v in m.items() if k not in ("value", "error")}),
            }
            for name, m in record.metrics.items()
        ]
        if rows:
            conn.execute(self.metrics.insert(), rows)
        gates = [
            {"run_id": run_id, "position": i, "expr": g["expr"], "passed": bool(g["passed"]), "detail": _json(g)}
            for i, g in enumerate(record.gates)
        ]
        if gates:
            conn.execute(self.gates.insert(), gates)
        hists = [
            {
                "run_id": run_id,
                "name": name,
                "candidate": _json(h["candidate"].to_dict()),
                "reference": _json(h["reference"].to_dict()),
                "comparison": _json(h["comparison"]),
            }
            for name, h in record.histograms.items()
        ]
        if hists:
            conn.execute(self.histograms.insert(), hists)

    def suites(self) -> list[str]:
        import sqlalchemy as sa

        with self._errors("reading it"), self.engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(self.runs.c.suite).distinct().order_by(self.runs.c.suite))]

    def runs_of(self, suite: str, *, histograms: bool = False) -> list[RunRecord]:
        """All runs of ``suite`` in the order they were recorded."""
        import sqlalchemy as sa

        with self._errors("reading it"), self.engine.connect() as conn:
            rows = conn.execute(sa.select(self.runs).where(self.runs.c.suite == suite).order_by(self.runs.c.id)).all()
            return [self._record(conn, r, histograms) for r in rows]

    def get(self, suite: str, label: str, *, histograms: bool = True) -> RunRecord:
        import sqlalchemy as sa

        with self._errors("reading it"), self.engine.connect() as conn:
            row = conn.execute(
                sa.select(self.runs).where(self.runs.c.suite == suite, self.runs.c.label == label)
            ).first()
            if row is None:
                known = [r.label for r in self.runs_of(suite)]
                raise UserError(
                    f"history {self.where}: suite {suite!r} has no run labelled {label!r}"
                    + (f"; known labels: {', '.join(known)}" if known else "")
                )
            return self._record(conn, row, histograms)

    def _record(self, conn: Any, row: Any, histograms: bool) -> RunRecord:
        import sqlalchemy as sa

        metrics = {}
        for m in conn.execute(sa.select(self.metrics).where(self.metrics.c.run_id == row.id)):
            metrics[m.name] = {"value": m.value, "error": m.error, **json.loads(m.extra)}
        gates = [
            json.loads(g.detail)
            for g in conn.execute(
                sa.select(self.gates).where(self.gates.c.run_id == row.id).order_by(self.gates.c.position)
            )
        ]
        hists: dict[str, dict[str, Any]] = {}
        if histograms:
            for h in conn.execute(sa.select(self.histograms).where(self.histograms.c.run_id == row.id)):
                hists[h.name] = {
                    "candidate": Hist1D.from_dict(json.loads(h.candidate)),
                    "reference": Hist1D.from_dict(json.loads(h.reference)),
                    "comparison": json.loads(h.comparison),
                }
        return RunRecord(
            suite=row.suite,
            label=row.label,
            created=row.created,
            verdict=row.verdict,
            candidate=json.loads(row.candidate),
            reference=json.loads(row.reference),
            metrics=metrics,
            gates=gates,
            histograms=hists,
            page=row.page,
            id=row.id,
        )


def _finite(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def open_store(store: str | Path, *, write: bool = True) -> HistoryStore:
    """The history at a path or SQLAlchemy URL, checked (see :meth:`HistoryStore.prepare`)."""
    return HistoryStore(_url(store)).prepare(write)
