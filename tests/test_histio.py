"""Histogram files (ROOT via uproot, YODA text): round trips, the layout other tools read, bad files."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from showerforge.errors import UserError
from showerforge.validate import histio
from showerforge.validate.histio import INDEX_KEY, read_histograms, write_histograms
from showerforge.validate.histograms import Hist1D, fill, profile

uproot = pytest.importorskip("uproot")

FORMATS = (".root", ".yoda")


def _weighted() -> Hist1D:
    """Log-spaced edges, non-unit weights (sumw2 != sumw), a name with '/', ':' and spaces."""
    rng = np.random.default_rng(1)
    x = rng.lognormal(0.0, 1.0, 400)
    w = rng.uniform(0.2, 3.0, 400)
    return fill(
        "e tot/inc: ratio",
        x,
        np.logspace(-1, 1, 7),
        weights=w,
        title="E_tot / E_inc: all",
        xlabel="E [GeV]",
        analysis="calo basic",
        logx=True,
    )


def _profile() -> Hist1D:
    rng = np.random.default_rng(2)
    return profile(
        "candidate/mean energy", rng.normal(10.0, 2.0, (60, 5)), title="mean per layer", xlabel="layer", analysis="calo"
    )


def _plain() -> Hist1D:
    """Unit weights, no analysis, no x label."""
    return fill("n_hits", np.array([0.5, 1.5, 1.5, 2.5, 9.0]), np.array([0.0, 1.0, 2.0, 3.0]))


def _hists() -> list[Hist1D]:
    return [_weighted(), _profile(), _plain()]


def _assert_same(a: Hist1D, b: Hist1D) -> None:
    assert (b.name, b.analysis, b.kind, b.entries) == (a.name, a.analysis, a.kind, a.entries)
    assert (b.title, b.xlabel, b.logx) == (a.title, a.xlabel, a.logx)
    np.testing.assert_array_equal(b.edges, a.edges)
    np.testing.assert_allclose(b.values, a.values, rtol=1e-12, atol=0)
    np.testing.assert_allclose(b.errors, a.errors, rtol=1e-10, atol=0)


def _one_line_error(excinfo: pytest.ExceptionInfo[UserError], path: Path) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    assert str(path) in msg
    return msg


# ----------------------------------------------------------------------------- round trips


def test_fixture_is_weighted():
    h = _weighted()
    assert not np.allclose(h.errors**2, h.values)  # sumw2 != sumw: errors are not sqrt(counts)
    assert h.entries == 400


@pytest.mark.parametrize("suffix", FORMATS)
def test_round_trip(tmp_path, suffix):
    hists = _hists()
    out = write_histograms(tmp_path / f"h{suffix}", hists)
    assert out == tmp_path / f"h{suffix}"
    back = read_histograms(out)
    assert len(back) == len(hists)
    for a, b in zip(hists, back):
        _assert_same(a, b)


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("entries", [0, 1, 2])
def test_profile_with_few_entries_round_trips(tmp_path, suffix, entries):
    p = Hist1D("p", [0.0, 1.0, 2.0], [3.0, -1.5], [0.25, 0.0], kind="profile", entries=entries)
    (back,) = read_histograms(write_histograms(tmp_path / f"p{suffix}", [p]))
    _assert_same(p, back)


@pytest.mark.parametrize("suffix", FORMATS)
def test_names_that_sanitise_alike_stay_apart(tmp_path, suffix):
    hists = [
        Hist1D(n, [0.0, 1.0], [float(i + 1)], [1.0], analysis="a") for i, n in enumerate(["x y", "x:y", "x/y", "x.y+z"])
    ]
    back = read_histograms(write_histograms(tmp_path / f"same{suffix}", hists))
    assert [(h.name, h.values[0]) for h in back] == [("x y", 1.0), ("x:y", 2.0), ("x/y", 3.0), ("x.y+z", 4.0)]


# ----------------------------------------------------------------------------- ROOT layout


def test_root_file_opens_with_plain_uproot(tmp_path):
    h, p, plain = _hists()
    path = write_histograms(tmp_path / "h.root", [h, p, plain])
    with uproot.open(path) as f:
        classes = f.classnames(cycle=False)
        assert classes["calo_basic/e_tot_inc__ratio"] == "TH1D"
        assert classes["calo/candidate_mean_energy"] == "TProfile"
        assert classes["n_hits"] == "TH1D"
        assert classes[INDEX_KEY] == "TObjString"

        th1 = f["calo_basic/e_tot_inc__ratio"]
        np.testing.assert_allclose(th1.values(), h.values, rtol=1e-15)
        np.testing.assert_allclose(th1.variances(), h.errors**2, rtol=1e-15)
        np.testing.assert_allclose(th1.axis().edges(), np.logspace(-1, 1, 7), rtol=1e-15)
        assert th1.member("fTitle") == "E_tot / E_inc: all"
        assert th1.axis().member("fTitle") == "E [GeV]"
        assert th1.member("fEntries") == 400

        tprof = f["calo/candidate_mean_energy"]
        np.testing.assert_allclose(tprof.values(), p.values, rtol=1e-14)
        np.testing.assert_allclose(tprof.errors(), p.errors, rtol=1e-10)
        np.testing.assert_allclose(tprof.variances(), p.errors**2, rtol=1e-10)
        np.testing.assert_array_equal(tprof.axis().edges(), [-0.5, 0.5, 1.5, 2.5, 3.5, 4.5])
        assert tprof.member("fEntries") == 60
        np.testing.assert_array_equal(tprof.counts(), np.full(5, 60.0))  # unit-weight fills per bin


def test_root_histogram_errors_by_hand(tmp_path):
    h = Hist1D("h", [0.0, 1.0, 3.0], [2.0, 5.0], [1.5, 2.5], entries=6)
    with uproot.open(write_histograms(tmp_path / "h.root", [h])) as f:
        th1 = f["h"]
        np.testing.assert_array_equal(th1.values(flow=True), [0.0, 2.0, 5.0, 0.0])
        np.testing.assert_array_equal(th1.variances(flow=True), [0.0, 2.25, 6.25, 0.0])
        assert th1.member("fTsumw") == 7.0
        assert th1.member("fTsumwx") == 0.5 * 2.0 + 2.0 * 5.0  # bin centres times sumw


def test_root_file_written_by_other_tools_is_read(tmp_path):
    """No showerforge index: name = key, analysis = directory; TH1F contents become float64."""
    path = tmp_path / "other.root"
    with uproot.recreate(path) as f:
        f["ana/h"] = (np.array([1.0, 4.0], dtype=np.float32), np.array([0.0, 1.0, 2.0]))
    (h,) = read_histograms(path)
    assert (h.name, h.analysis, h.kind) == ("h", "ana", "histogram")
    np.testing.assert_array_equal(h.values, [1.0, 4.0])
    np.testing.assert_array_equal(h.errors, [1.0, 2.0])  # no fSumw2: Poisson errors sqrt(content)


# ----------------------------------------------------------------------------- YODA layout


def _block(text: str, begin: str) -> list[str]:
    lines = text.split("\n")
    start = lines.index(begin)
    return lines[start : lines.index(begin.replace("BEGIN", "END").rsplit(" ", 1)[0], start) + 1]


def _numbers(line: str) -> list[float]:
    """The numbers of a Total / Underflow / Overflow row (after its two labels)."""
    return [float(x) for x in line.split("\t")[2:]]


def test_yoda_histogram_block_by_hand(tmp_path):
    h = Hist1D("h", [0.0, 1.0, 3.0], [2.0, 5.0], [1.5, 2.5], entries=6, title="T", analysis="ANA", xlabel="x: a")
    text = write_histograms(tmp_path / "h.yoda", [h]).read_text()
    block = _block(text, "BEGIN YODA_HISTO1D_V2 /ANA/h")
    assert block[-1] == "END YODA_HISTO1D_V2"
    head = block[1 : block.index("---")]
    assert head == ["Entries: 6", "LogX: 0", "Path: /ANA/h", "Title: T", "Type: Histo1D", 'XLabel: "x: a"']
    assert "# ID\t ID\t sumw\t sumw2\t sumwx\t sumwx2\t numEntries" in block
    assert "# xlow\t xhigh\t sumw\t sumw2\t sumwx\t sumwx2\t numEntries" in block
    rows = {line.split("\t")[0].strip(): line for line in block if line.startswith(("Total", "Under", "Over"))}
    assert rows["Total"].startswith("Total   \tTotal   \t7.0000000000000000e+00\t")
    assert rows["Underflow"].startswith("Underflow\tUnderflow\t0.0")
    # Total: sums over the bins (sumwx with the bin centres 0.5 and 2), numEntries = entries
    assert _numbers(rows["Total"]) == [7.0, 8.5, 0.5 * 2 + 2 * 5, 0.25 * 2 + 4 * 5, 6.0]
    assert _numbers(rows["Underflow"]) == [0.0] * 5
    assert _numbers(rows["Overflow"]) == [0.0] * 5
    # bin 2: xlow 1, xhigh 3, sumw 5, sumw2 2.5^2, sumwx 2*5, sumwx2 4*5, numEntries sumw^2/sumw2 = 4
    second = [float(x) for x in block[-2].split("\t")]
    assert second == [1.0, 3.0, 5.0, 6.25, 10.0, 20.0, 4.0]
    assert "# Mean: 1.5714285714285714e+00" in block  # 11 / 7
    assert "# Area: 7.0000000000000000e+00" in block


def test_yoda_profile_block_by_hand(tmp_path):
    p = Hist1D("p", [0.0, 1.0], [3.0], [0.5], kind="profile", entries=10)
    text = write_histograms(tmp_path / "p.yoda", [p]).read_text()
    block = _block(text, "BEGIN YODA_PROFILE1D_V2 /p")
    assert "Type: Profile1D" in block
    assert "# xlow\t xhigh\t sumw\t sumw2\t sumwx\t sumwx2\t sumwy\t sumwy2\t numEntries" in block
    row = [float(x) for x in block[-2].split("\t")]
    # 10 unit fills: sumwy = 10 * 3, sumwy2 = n (n - 1) err^2 + n mean^2 = 90 * 0.25 + 10 * 9
    assert row == [0.0, 1.0, 10.0, 10.0, 5.0, 2.5, 30.0, 112.5, 10.0]
    # YODA's stdErr: var = (sumwy2 sumw - sumwy^2) / (sumw^2 - sumw2), err^2 = var sumw2 / sumw^2
    var = (112.5 * 10 - 30.0**2) / (10.0**2 - 10.0)
    assert math.isclose(math.sqrt(var * 10 / 100), 0.5)


def test_yoda_profile_moments_are_the_sums(tmp_path):
    rng = np.random.default_rng(3)
    y = rng.normal(5.0, 1.0, (40, 3))
    text = write_histograms(tmp_path / "p.yoda", [profile("p", y)]).read_text()
    block = _block(text, "BEGIN YODA_PROFILE1D_V2 /p")
    rows = block[block.index("# xlow\t xhigh\t sumw\t sumw2\t sumwx\t sumwx2\t sumwy\t sumwy2\t numEntries") + 1 : -1]
    assert len(rows) == 3
    sums = np.array([[float(x) for x in r.split("\t")][6:8] for r in rows])
    np.testing.assert_allclose(sums[:, 0], y.sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(sums[:, 1], (y**2).sum(axis=0), rtol=1e-12)


TRICKY = [
    "E: tot",
    "null",
    "~",
    " lead",
    "trail ",
    "a # b",
    "- item",
    "[1, 2]",
    "10",
    "'q'",
    '"dq"',
    "back\\slash",
    "µ [GeV]",
    "x\u2028y",
    "tab\there",
    "",
]


@pytest.mark.parametrize("title", TRICKY)
def test_yoda_annotations_are_yaml_and_round_trip(tmp_path, title):
    """YODA parses the annotation lines as YAML: tricky titles must come back as the same strings."""
    yaml = pytest.importorskip("yaml")
    h = Hist1D("n a/m:e", [0.0, 1.0], [1.0], [1.0], title=title, xlabel=title)
    path = write_histograms(tmp_path / "t.yoda", [h])
    lines = path.read_text(encoding="utf-8").split("\n")
    ann = yaml.safe_load("\n".join(lines[1 : lines.index("---")]))
    assert (ann["Title"], ann["Name"], ann["Path"], ann["Type"]) == (title, "n a/m:e", "/n_a_m_e", "Histo1D")
    assert ann.get("XLabel", "") == title
    (back,) = read_histograms(path)
    assert (back.title, back.xlabel, back.name) == (title, title, "n a/m:e")


YODA_FROM_RIVET = """\
BEGIN YODA_SCATTER2D_V2 /REF/MY_2024_I1/d01-x01-y01
Path: /REF/MY_2024_I1/d01-x01-y01
Type: Scatter2D
---
# xval\t xerr-\t xerr+\t yval\t yerr-\t yerr+
1.0 0.5 0.5 2.0 0.1 0.1
END YODA_SCATTER2D_V2

BEGIN YODA_HISTO1D_V2 /MY_2024_I1/d01-x01-y01
Path: /MY_2024_I1/d01-x01-y01
Title: ~
Type: Histo1D
---
# Mean: 1.250000e+00
# Area: 4.000000e+00
# ID\t ID\t sumw\t sumw2\t sumwx\t sumwx2\t numEntries
Total   \tTotal   \t4.500000e+00\t5.000000e+00\t5.000000e+00\t9.000000e+00\t5.000000e+00
Underflow\tUnderflow\t5.000000e-01\t1.000000e+00\t0.000000e+00\t0.000000e+00\t1.000000e+00
Overflow\tOverflow\t0.000000e+00\t0.000000e+00\t0.000000e+00\t0.000000e+00\t0.000000e+00
# xlow\t xhigh\t sumw\t sumw2\t sumwx\t sumwx2\t numEntries
0.000000e+00\t1.000000e+00\t1.000000e+00\t1.000000e+00\t5.000000e-01\t2.500000e-01\t1.000000e+00
1.000000e+00\t2.000000e+00\t3.000000e+00\t4.000000e+00\t4.500000e+00\t8.750000e+00\t3.000000e+00
END YODA_HISTO1D_V2
"""


def test_yoda_file_written_by_yoda_is_read(tmp_path):
    path = tmp_path / "rivet.yoda"
    path.write_text(YODA_FROM_RIVET)
    (h,) = read_histograms(path)  # the Scatter2D block is skipped
    assert (h.name, h.analysis, h.kind, h.title, h.entries) == ("d01-x01-y01", "MY_2024_I1", "histogram", "", 5)
    np.testing.assert_array_equal(h.edges, [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(h.values, [1.0, 3.0])  # under/overflow rows are not folded in
    np.testing.assert_array_equal(h.errors, [1.0, 2.0])


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", ["h.txt", "h.json", "h"])
def test_unknown_suffix(tmp_path, name):
    path = tmp_path / name
    with pytest.raises(UserError, match=r"expected a name ending in \.root or \.yoda") as exc:
        write_histograms(path, [_plain()])
    _one_line_error(exc, path)
    assert not path.exists()
    path.write_text("x")
    with pytest.raises(UserError, match="unknown histogram file type"):
        read_histograms(path)


@pytest.mark.parametrize("suffix", FORMATS)
def test_missing_file(tmp_path, suffix):
    path = tmp_path / f"missing{suffix}"
    with pytest.raises(UserError, match="no such file") as exc:
        read_histograms(path)
    _one_line_error(exc, path)


def test_random_bytes_root(tmp_path):
    path = tmp_path / "junk.root"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(UserError, match="not a readable ROOT file") as exc:
        read_histograms(path)
    _one_line_error(exc, path)


def test_root_file_without_histograms(tmp_path):
    path = tmp_path / "empty.root"
    with uproot.recreate(path) as f:
        f["note"] = "no histograms here"
    with pytest.raises(UserError, match=r"no 1D histogram \(TH1D, TH1F, \.\.\., TProfile\)") as exc:
        read_histograms(path)
    _one_line_error(exc, path)


def test_random_bytes_yoda(tmp_path):
    path = tmp_path / "junk.yoda"
    path.write_bytes(b"\xff\xfe\x00" + np.random.default_rng(0).bytes(1000))
    with pytest.raises(UserError, match="not a text file") as exc:
        read_histograms(path)
    _one_line_error(exc, path)


def test_truncated_yoda(tmp_path):
    path = write_histograms(tmp_path / "t.yoda", [_weighted(), _plain()])
    lines = path.read_text().split("\n")
    path.write_text("\n".join(lines[:15]))  # inside the first block
    with pytest.raises(UserError, match=r"line 1: block /calo_basic/e_tot_inc__ratio has no 'END YODA_HISTO1D_V2'"):
        read_histograms(path)


def test_malformed_yoda_row_names_the_line(tmp_path):
    path = write_histograms(tmp_path / "m.yoda", [_plain()])
    lines = path.read_text().split("\n")
    bad = next(i for i, line in enumerate(lines) if line.startswith("1.0000000000000000e+00\t2.0"))
    lines[bad] = lines[bad].replace("\t", "\tabc\t", 1)
    path.write_text("\n".join(lines))
    with pytest.raises(UserError) as exc:
        read_histograms(path)
    msg = _one_line_error(exc, path)
    assert f"line {bad + 1}: expected 7 numbers (xlow xhigh sumw sumw2 sumwx sumwx2 numEntries)" in msg


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("garbage\n", "line 1: expected 'BEGIN <TYPE> <PATH>'"),
        ("BEGIN YODA_HISTO1D_V2 /h\nPath: /h\nEND YODA_HISTO1D_V2\n", "line 1: block /h has no '---' line"),
        ("BEGIN YODA_HISTO1D_V2 /h\nnot an annotation\n---\nEND YODA_HISTO1D_V2\n", "line 2: expected an annotation"),
        ("BEGIN YODA_HISTO1D_V2 /h\n---\nEND YODA_HISTO1D_V2\n", "line 1: block /h has no bin rows"),
        ("BEGIN YODA_HISTO1D_V2 /h\n---\n0 1 1 1 0 0 1\n2 3 1 1 0 0 1\nEND YODA_HISTO1D_V2\n", "line 3: bin ends at 1"),
        ("BEGIN YODA_HISTO1D_V2 /h\n---\n0 1 1 1 0 0 1\nTotal Total 1 1\nEND YODA_HISTO1D_V2\n", "line 4: expected 5"),
        ("BEGIN YODA_HISTO1D_V2 /h\n---\n1 0 1 1 0 0 1\nEND YODA_HISTO1D_V2\n", "line 1: histogram 'h': edges"),
        ("BEGIN YODA_SCATTER2D_V2 /s\n---\nEND YODA_SCATTER2D_V2\n", "no YODA_HISTO1D_V2 or YODA_PROFILE1D_V2 block"),
        ("", "no YODA_HISTO1D_V2 or YODA_PROFILE1D_V2 block"),
    ],
)
def test_malformed_yoda(tmp_path, text, expected):
    path = tmp_path / "bad.yoda"
    path.write_text(text)
    with pytest.raises(UserError) as exc:
        read_histograms(path)
    assert expected in _one_line_error(exc, path)


@pytest.mark.parametrize(
    ("hists", "expected"),
    [
        ([], "no histograms to write"),
        ([_plain(), _plain()], "histogram 'n_hits' of analysis '' is given twice"),
        ([_plain(), "not a histogram"], "item 1 is a str; expected a Hist1D"),
        ([Hist1D("nan", [0.0, 1.0], [np.nan], [0.0])], "histogram 'nan': values and edges must be finite"),
    ],
)
@pytest.mark.parametrize("suffix", FORMATS)
def test_bad_histograms(tmp_path, hists, expected, suffix):
    path = tmp_path / f"bad{suffix}"
    with pytest.raises(UserError) as exc:
        write_histograms(path, hists)
    assert expected in _one_line_error(exc, path)
    assert list(tmp_path.iterdir()) == []


def test_missing_uproot_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "uproot", None)  # makes `import uproot` fail
    path = tmp_path / "h.root"
    with pytest.raises(UserError, match=r"install it with pip install 'showerforge\[validate\]'") as exc:
        write_histograms(path, [_plain()])
    _one_line_error(exc, path)
    assert not path.exists()


# ----------------------------------------------------------------------------- atomic writes


@pytest.mark.parametrize(("suffix", "writer"), [(".root", "_to_root"), (".yoda", "_yoda_block")])
def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch, suffix, writer):
    original = getattr(histio, writer)
    calls = []

    def fail_on_second(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return original(*args)

    monkeypatch.setattr(histio, writer, fail_on_second)
    path = tmp_path / f"new{suffix}"
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_histograms(path, _hists())
    assert len(calls) == 2  # the first histogram was written to the temporary file
    assert list(tmp_path.iterdir()) == []  # neither the final name nor a temporary file

    existing = tmp_path / f"old{suffix}"
    existing.write_bytes(b"previous content")
    calls.clear()
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_histograms(existing, _hists())
    assert existing.read_bytes() == b"previous content"
    assert list(tmp_path.iterdir()) == [existing]


@pytest.mark.parametrize("suffix", FORMATS)
def test_invalid_histogram_leaves_existing_file_untouched(tmp_path, suffix):
    existing = tmp_path / f"old{suffix}"
    write_histograms(existing, [_plain()])
    before = existing.read_bytes()
    bad = _plain()
    bad.values = np.array([1.0, 2.0])  # wrong length after construction
    with pytest.raises(UserError, match="3 values and errors"):
        write_histograms(existing, [_weighted(), bad])
    assert existing.read_bytes() == before
    assert list(tmp_path.iterdir()) == [existing]


@pytest.mark.parametrize("suffix", FORMATS)
def test_overwrite_replaces_the_file(tmp_path, suffix):
    path = write_histograms(tmp_path / f"h{suffix}", [_plain()])
    write_histograms(path, [_profile()])
    assert [h.name for h in read_histograms(path)] == ["candidate/mean energy"]
