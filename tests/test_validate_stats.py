"""Known answers of the validation statistics, gates and history database."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from showerforge.errors import UserError
from showerforge.validate.gates import parse_gate
from showerforge.validate.histograms import band, compare, fill, ks_pvalue, profile, reference_edges
from showerforge.validate.run import evaluate_gates
from showerforge.validate.store import HistoryStore, RunRecord, now_utc, open_store


def _gauss(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, 1.0, n)


def test_identical_histograms_give_chi2_zero_and_ks_p_one() -> None:
    x = _gauss(5000, 1)
    edges = reference_edges(x, 30)
    h = fill("x", x, edges)
    c = compare(h, fill("x", x.copy(), edges))
    assert c.chi2 == 0.0 and c.chi2_ndf == 0.0 and c.max_pull == 0.0 and c.band == "good"
    assert c.ndf == 29  # 30 filled bins minus the normalisation
    assert ks_pvalue(x, x.copy()) == 1.0


def test_chi2_closed_form_two_bins() -> None:
    # a = (30, 10) of 40, b = (20, 20) of 40: fractions 0.75/0.25 vs 0.5/0.5
    a = fill("x", np.r_[np.zeros(30), np.ones(10)], [-0.5, 0.5, 1.5])
    b = fill("x", np.r_[np.zeros(20), np.ones(20)], [-0.5, 0.5, 1.5])
    var = np.array([30 + 20, 10 + 20]) / 40.0**2
    expect = float(np.sum((np.array([0.75, 0.25]) - 0.5) ** 2 / var))
    c = compare(a, b)
    assert c.chi2 == pytest.approx(expect, rel=1e-12) and c.ndf == 1


def test_same_parent_gives_chi2_ndf_near_one() -> None:
    edges = reference_edges(_gauss(20000, 0), 20)
    values = [
        compare(fill("x", _gauss(20000, s), edges), fill("x", _gauss(20000, s + 100), edges)).chi2_ndf
        for s in range(20)
    ]
    assert 0.8 < float(np.mean(values)) < 1.2  # type: ignore[arg-type]


def test_a_histogram_shifted_by_5_sigma_is_flagged() -> None:
    # a profile (compared as it is) with every bin moved by 5 combined standard errors
    pr = profile("p", np.random.default_rng(3).normal(0, 1, (400, 10)))
    moved = profile("p", np.random.default_rng(3).normal(0, 1, (400, 10)))
    moved.values[:] = pr.values + 5 * np.sqrt(2) * pr.errors
    cp = compare(moved, pr)
    assert cp.chi2_ndf == pytest.approx(25.0, rel=1e-9) and cp.band == "bad" and cp.max_pull == pytest.approx(5.0)
    # unbinned: a location shift of 5 standard errors of the mean difference
    n = 5000
    x, y = _gauss(n, 4), _gauss(n, 5, shift=5 * np.sqrt(2.0 / n))
    assert ks_pvalue(x, y) < 1e-3  # type: ignore[operator]
    hx, hy = fill("x", x, reference_edges(x, 30)), fill("x", y, reference_edges(x, 30))
    assert compare(hy, hx).chi2_ndf > 1.5  # type: ignore[operator]


def test_bands_are_mcplots() -> None:
    assert [band(v) for v in (0.0, 0.99, 1.0, 3.99, 4.0, 100.0, None)] == [
        "good", "good", "marginal", "marginal", "bad", "bad", "n/a",
    ]  # fmt: skip


def test_values_outside_the_edges_stay_in_the_normalisation() -> None:
    h = fill("x", [-10.0, 0.5, 10.0, np.nan], [0.0, 1.0, 2.0])
    assert h.values.tolist() == [2.0, 1.0] and h.entries == 3


def test_different_binnings_refuse_to_compare() -> None:
    with pytest.raises(UserError, match="different binnings"):
        compare(fill("x", [1.0], [0.0, 1.0, 2.0]), fill("x", [1.0], [0.0, 1.5, 2.0]))


# ----------------------------------------------------------------------------- gates


def test_a_gate_exactly_at_its_threshold_passes() -> None:
    assert parse_gate("auc_high <= 0.65").passes(0.65)
    assert parse_gate("ks_p_min >= 0.01").passes(0.01)
    assert not parse_gate("auc_high < 0.65").passes(0.65)
    assert not parse_gate("auc_high <= 0.65").passes(0.6500001)
    assert not parse_gate("auc_high <= 0.65").passes(None)
    assert not parse_gate("auc_high <= 0.65").passes(float("nan"))


def test_gate_grammar() -> None:
    g = parse_gate('chi2_ndf("etot_over_einc") <= 4')
    assert (g.metric, g.histogram, g.op, g.threshold, g.key) == (
        "chi2_ndf",
        "etot_over_einc",
        "<=",
        4.0,
        "chi2_ndf(etot_over_einc)",
    )
    assert parse_gate("w1m_ratio<=3e0").threshold == 3.0
    for bad in ("auc_high", "auc_high == 0.6", "import os", 'auc_high("x") <= 1', "chi2_ndf <= 4", "auc <= inf"):
        with pytest.raises(UserError, match="gate"):
            parse_gate(bad, "suite.toml: gates[0]")


def test_gate_verdicts_from_metrics_and_histograms() -> None:
    gates = [parse_gate("auc_high <= 0.6"), parse_gate('chi2_ndf("e") <= 4'), parse_gate("ks_p_min >= 0.05")]
    metrics = {"auc_high": {"value": 0.6, "error": 0.01}, "ks_p_min": {"value": 0.01, "error": None}}
    hists = {"e": {"comparison": {"chi2_ndf": 4.5}}}
    out = evaluate_gates(gates, metrics, hists)
    assert [g["passed"] for g in out] == [True, False, False]
    assert out[0]["error"] == 0.01 and out[1]["value"] == 4.5


# ----------------------------------------------------------------------------- history


def _record(label: str, auc: float) -> RunRecord:
    x = _gauss(1000, 7)
    h = fill("e", x, reference_edges(x, 10), title="E", xlabel="E [GeV]", analysis="calo_energy")
    return RunRecord(
        suite="s",
        label=label,
        created=now_utc(),
        verdict="pass",
        candidate={"type": "file", "sha256": "ab" * 32},
        reference={"type": "file"},
        metrics={"auc_high": {"value": auc, "error": 0.01, "floor": 0.51}},
        gates=[
            {
                "expr": "auc_high <= 0.65",
                "key": "auc_high",
                "value": auc,
                "error": 0.01,
                "op": "<=",
                "threshold": 0.65,
                "passed": True,
            }
        ],
        histograms={"e": {"candidate": h, "reference": h, "comparison": compare(h, h).to_dict()}},
    )


def test_history_round_trip(tmp_path: Path) -> None:
    st = open_store(tmp_path / "h.db")
    st.add(_record("v1", 0.7))
    st.add(_record("v2", 0.6))
    runs = st.runs_of("s", histograms=True)
    assert [r.label for r in runs] == ["v1", "v2"]
    assert runs[1].metrics["auc_high"] == {"value": 0.6, "error": 0.01, "floor": 0.51}
    h = runs[0].histograms["e"]["candidate"]
    assert np.array_equal(h.values, _record("x", 0).histograms["e"]["candidate"].values) and h.xlabel == "E [GeV]"
    with pytest.raises(UserError, match="already has a run labelled 'v1'"):
        st.add(_record("v1", 0.5))
    st.add(_record("v1", 0.5), replace=True)
    assert [r.metrics["auc_high"]["value"] for r in st.runs_of("s")] == [0.6, 0.5]
    # an SQLAlchemy URL names the same database
    assert [r.label for r in open_store(f"sqlite:///{tmp_path / 'h.db'}").runs_of("s")] == ["v2", "v1"]


def test_a_locked_database_gives_one_line_and_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    open_store(db).add(_record("v1", 0.7))
    holder = sqlite3.connect(db)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        store = HistoryStore(f"sqlite:///{db}?timeout=0.2")
        with pytest.raises(UserError) as err:
            store.add(_record("v2", 0.6))
        assert "locked" in str(err.value) and "\n" not in str(err.value)
    finally:
        holder.rollback()
        holder.close()
    assert [r.label for r in open_store(db).runs_of("s")] == ["v1"]


def test_an_interrupted_write_keeps_earlier_entries(tmp_path: Path) -> None:
    """A failure inside the transaction (here: a histogram that cannot be serialised) rolls back."""
    db = tmp_path / "h.db"
    open_store(db).add(_record("v1", 0.7))
    bad = _record("v2", 0.6)
    bad.histograms["e"]["candidate"] = object()  # type: ignore[assignment]
    with pytest.raises(AttributeError):
        open_store(db).add(bad)
    runs = open_store(db).runs_of("s", histograms=True)
    assert [r.label for r in runs] == ["v1"] and runs[0].histograms


def test_a_corrupt_database_gives_one_line_and_is_not_overwritten(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    db.write_bytes(b"not a database " * 100)
    with pytest.raises(UserError) as err:
        open_store(db)
    msg = str(err.value)
    assert str(db) in msg and "not a readable validation history" in msg and "\n" not in msg
    assert db.read_bytes() == b"not a database " * 100


def test_cli_history_on_a_corrupt_database_exits_2(tmp_path: Path) -> None:
    suite = tmp_path / "s.toml"
    suite.write_text('name = "s"\n[reference]\nfile = "ref.h5"\n')
    db = tmp_path / "bad.db"
    db.write_bytes(b"\x00garbage" * 64)
    proc = subprocess.run(
        [sys.executable, "-m", "showerforge", "validate", "history", "--suite", str(suite), "--store", str(db)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "not a readable validation history" in proc.stderr
