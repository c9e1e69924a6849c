"""Known answers of the CaloChallenge 2022 ``code/evaluate.py`` (dataset 2) on a seeded synthetic input.

The literals were computed by the challenge's own code (CaloChallenge/homepage commit
9b41df72a03aeecb48bfbaa946f9792f255e0ba7: ``HighLevelFeatures``, ``prepare_high_data_for_classifier``,
the script in modes ``prdc`` and ``hist-chi``, and ``jetnet.evaluation.fpd`` / ``kpd`` of jetnet
0.2.5, the functions the script calls) with
``python benchmarks/parity/showers_vs_calochallenge.py --known-answers``, on the files
:func:`synthetic_showers` makes, written by ``write_showers``. Synthetic showers are enough here:
the test pins conventions (threshold, feature definitions, classifier-input columns, FPD / KPD
normalisation and draws, PRDC's empty-voxel value, histogram binnings and normalisation), not
physics; a change of convention fails it.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from showerforge.data.calo import CaloFile, write_showers  # noqa: E402
from showerforge.evaluation.distances import fpd, kpd, prdc  # noqa: E402
from showerforge.evaluation.metrics import separation_power, separation_power_counts  # noqa: E402
from showerforge.evaluation.showers.binning import feature_edges  # noqa: E402
from showerforge.evaluation.showers.classifier import high_level_inputs  # noqa: E402
from showerforge.evaluation.showers.features import (  # noqa: E402
    default_threshold_mev,
    stream_features,
    voxel_histograms,
)
from showerforge.geometry import PRESETS  # noqa: E402

GEO = PRESETS["ds2"]
THRESHOLD = 0.5e-3 / 0.033  # the script's args.min_energy for dataset 2, MeV


def synthetic_showers(n: int, seed: int, width: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ds2-shaped showers without physics: ``(n,)`` MeV float64 and ``(n, 6480)`` MeV float32.

    An identical copy of ``benchmarks/parity/showers_vs_calochallenge.py``'s. Voxel energies are
    multiples of 1/128 MeV (below and above the threshold), so that every sum of them is exact in
    float32 as in float64 (the script sums in float32, showerforge in float64).
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


# ----------------------------------------------------------------------------- the script's numbers
# HighLevelFeatures of showers 0-2 of "real" (synthetic_showers(300, 1)) at layers LAYERS.
LAYERS = [0, 5, 12, 20, 44]
CC_ETOT = [9518.7578125, 67328.875, 1674.609375]
CC_FEATURES = {
    "layer_energy": [
        [58.421875, 353.46875, 480.0859375, 235.0234375, 7.2265625],
        [904.5625, 3070.1875, 4607.8671875, 896.515625, 31.625],
        [7.640625, 41.0390625, 88.96875, 64.4453125, 0.6328125],
    ],
    "center_x": [
        [-0.5180634067731273, -0.08658781151474278, -0.8551213998867297, -0.08949466548399684, -0.4511439704892741],
        [1.1785614765259784, 0.6717072159794485, 0.008496709670794373, 1.5760879034044792, 0.3284108205162874],
        [-0.7493911364230859, -0.5689762622648651, -1.246324899141345, -2.130684134582988, -1.1434267893597307],
    ],
    "center_y": [
        [-0.4162779386174904, -0.2611684282514939, -0.17815000889973803, -0.15616055906495757, -1.1108056758171496],
        [-1.3453462976681303, -0.3845597621017839, -0.7414400967366581, -1.4343609282019636, -0.5767859685186416],
        [0.28690900421409904, -0.22624572750637617, -0.6756923085134319, -0.45459320055159536, -0.9835725622122338],
    ],
    "width_x": [
        [5.035041333558469, 4.58847058307946, 5.28279723001412, 6.4346691076494205, 4.516107991456228],
        [5.781107411337214, 5.463084446075189, 5.230275178751279, 6.7379579952588315, 5.678641709070633],
        [6.260727591927641, 5.061327974452019, 5.708701602523768, 4.502819832053107, 4.695880594261593],
    ],
    "width_y": [
        [5.69507630120566, 4.605906367116212, 4.98373017345871, 5.399859900062376, 4.502530875938508],
        [5.49225526695882, 5.533589055682543, 4.531674883363831, 6.257866521636872, 4.904099205029587],
        [5.47230440144788, 5.7293738486709165, 5.416979674942888, 4.601662786594651, 3.6941457549611347],
    ],
    "sparsity": [
        [0.5486111111111112, 0.5, 0.5347222222222222, 0.48611111111111116, 0.7222222222222222],
        [0.4375, 0.41666666666666663, 0.4444444444444444, 0.5347222222222222, 0.6111111111111112],
        [0.7291666666666667, 0.625, 0.5069444444444444, 0.5902777777777778, 0.8541666666666666],
    ],
    "center_r": [
        [5.536721048408666, 4.801697462646981, 5.480970610730502, 6.424258717548117, 5.235648648648649],
        [6.314191079941962, 5.7999693371740335, 5.026737771847401, 7.392452114958956, 5.4862648221343875],
        [6.903680981595093, 5.990648201027984, 6.332705479452056, 5.019508425263669, 5.080555555555557],
    ],
    "width_r": [
        [5.250898242674488, 4.391792757935538, 4.844320820694204, 5.415233033822648, 3.83319958242646],
        [5.188065693438814, 5.236920085755168, 4.813893297340422, 5.8697587197554535, 5.16125902224364],
        [4.703819532979635, 4.788509247204261, 4.882588447322137, 4.582760289336468, 3.487234214837855],
    ],
}
# prepare_high_data_for_classifier rows 0-2 (label dropped): (sum, sum of (column + 1) * value)
CC_HIGH_ROWS = [
    (125.95389267605256, 11355.631118032672),
    (161.6018131239984, 11820.469049159143),
    (94.78605437535766, 11333.038408262126),
]
CC_HIGH_WIDTH = 362  # 1 + 45 E_layer + 4 x 45 centres/widths + 1 E_tot + 3 x 45 sparsity / r
# jetnet.evaluation.fpd(real, fake, min_samples=200, max_samples=600, num_batches=5, num_points=4, seed=7)
CC_FPD = (3.7740440053216213, 0.0329531213936282)
# jetnet.evaluation.kpd(real, fake, num_batches=5, batch_size=200, seed=7)
CC_KPD = (0.06871683855820976, 0.005683263322686968)
# evaluate.py -m prdc -d 2 -i fake.h5 -r real.h5 (prdc.compute_prdc, nearest_k=5)
CC_PRDC = {
    "precision": 0.6233333333333333,
    "recall": 0.6933333333333334,
    "density": 0.7,
    "coverage": 0.9066666666666666,
}
# evaluate.py -m hist-chi -d 2 -i fake.h5 -r real.h5: separation powers (family means over the 45 layers)
CC_SEP_ETOT = 0.03976186670993856
CC_SEP_VOXEL = 0.00019618097989482854
CC_SEP_MEANS = {
    "center_x": 0.022668056379366842,
    "center_y": 0.016679348679633443,
    "width_x": 0.16891141717882047,
    "width_y": 0.17747324481648366,
}
CC_SEP_LAYER_ENERGY = [
    0.022641830303686994, 0.0304597857296638, 0.029747239261273, 0.033740276910908404,
    0.025839018494924034, 0.029787107741468064, 0.021818750769712028, 0.020921860033225822,
    0.02043957248943881, 0.021360732297012897, 0.03509124176782377, 0.017529752937829313,
    0.013828381781801836, 0.028265335125684656, 0.0168008682819862, 0.014480676725504625,
    0.022973402654635978, 0.022530981739772714, 0.026760530431837723, 0.011039953875359608,
    0.026913814782924757, 0.02131522293474271, 0.033919522793522734, 0.04102072687725306,
    0.026493160111077243, 0.04178565754645075, 0.03425418365115597, 0.038086925806189526,
    0.04492725880373233, 0.04656214339172723, 0.03866190298362375, 0.035717489417002146,
    0.04629576672078707, 0.03916961741678252, 0.04758027153873417, 0.02309003599669573,
    0.03405948287825709, 0.032785822708504955, 0.026347705081625497, 0.0545655732632283,
    0.023171479145657727, 0.030378964072429727, 0.03601998286485038, 0.024760656539903465,
    0.03267918434575098,
]  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread_quiet():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*recommended.*")
        yield


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cc_known")
    out = {}
    for name, (seed, width) in {"real": (1, 1.0), "fake": (2, 1.15)}.items():
        inc, sh = synthetic_showers(300, seed, width)
        out[name] = write_showers(folder / f"{name}.h5", inc, sh, GEO)
    return out


@pytest.fixture(scope="module")
def feats(files: dict[str, Path]) -> dict[str, dict[str, np.ndarray]]:
    return {name: stream_features(path) for name, path in files.items()}


def _edges(name: str, **kw: Any) -> np.ndarray:
    edges = feature_edges(name, GEO, "2", **kw)
    assert edges is not None
    return edges


def _sep(ref: np.ndarray, cand: np.ndarray, edges: np.ndarray) -> float:
    value = separation_power(ref, cand, edges, n_bootstrap=0).value
    assert value is not None
    return value


def _voxels(path: Path) -> np.ndarray:
    with CaloFile.open(path) as f:
        _, sh = f.read()
    return sh


def test_threshold_is_the_scripts() -> None:
    assert default_threshold_mev(GEO) == THRESHOLD


def test_high_level_features_match_the_script(feats: dict[str, dict[str, np.ndarray]]) -> None:
    real = feats["real"]
    np.testing.assert_array_equal(real["etot"][:3], CC_ETOT)  # exact sums of multiples of 1/128
    for name, expected in CC_FEATURES.items():
        # showerforge stores per-layer features in float32: relative 6e-8
        np.testing.assert_allclose(real[name][:3][:, LAYERS], expected, rtol=2e-7, atol=1e-12, err_msg=name)


def test_high_level_classifier_inputs_match_the_script(feats: dict[str, dict[str, np.ndarray]]) -> None:
    x = high_level_inputs(feats["real"], GEO).astype(np.float64)
    assert x.shape == (300, CC_HIGH_WIDTH)
    sums = [(row.sum(), row @ np.arange(1, CC_HIGH_WIDTH + 1)) for row in x[:3]]
    np.testing.assert_allclose(sums, CC_HIGH_ROWS, rtol=1e-7)  # float32 columns: ~4e-9


def test_fpd_kpd_match_jetnet_on_the_scripts_inputs(feats: dict[str, dict[str, np.ndarray]]) -> None:
    x, y = (high_level_inputs(feats[k], GEO) for k in ("real", "fake"))
    value, error = fpd(x, y, 7, min_samples=200, max_samples=600, num_batches=5, num_points=4)
    # float32 inputs and eigh instead of sqrtm: 1e-7 on the value, 1e-6 on curve_fit's error
    assert value == pytest.approx(CC_FPD[0], rel=1e-6)
    assert error == pytest.approx(CC_FPD[1], rel=1e-5)
    assert tuple(kpd(x, y, 7, num_batches=5, batch_size=200)) == pytest.approx(CC_KPD, rel=1e-6)


def test_prdc_matches_the_script(files: dict[str, Path]) -> None:
    """log10 of the thresholded voxel energies, empty voxels at 0.1 MeV, k = 5."""

    def log_voxels(path: Path) -> np.ndarray:
        v = _voxels(path)
        v = np.where(v < THRESHOLD, np.float32(0.0), v)
        return np.log10(np.where(v == 0, np.float32(0.1), v))

    res = prdc(log_voxels(files["real"]), log_voxels(files["fake"]), k=5)
    assert {k: m.value for k, m in res.items()} == pytest.approx(CC_PRDC, abs=1e-12)


def test_histogram_edges_are_the_scripts(feats: dict[str, dict[str, np.ndarray]]) -> None:
    """Same ranges and bin counts; showerforge pins the log-binning end points exactly."""
    for name, (lo, hi, n) in {"center_x": (-30, 30, 101), "width_y": (0, 30, 101)}.items():
        np.testing.assert_array_equal(_edges(name, layer=7), np.linspace(lo, hi, n))
    np.testing.assert_array_equal(_edges("etot_over_einc"), np.linspace(0.5, 1.5, 101))
    top = float(feats["real"]["layer_energy"][:, 12].max())
    ours = _edges("layer_energy", layer=12, threshold_mev=THRESHOLD, reference_max=top)
    script = np.logspace(np.log10(THRESHOLD), np.log10(top), 40)  # in float64
    np.testing.assert_allclose(ours, script, rtol=1e-13)
    assert (ours[0], ours[-1]) == (THRESHOLD, top)


def _script_log_tops(top: float, ulps: int = 4) -> list[np.float32]:
    """The values the script's ``np.log10(np.float32(top))`` can take on any processor.

    numpy computes float32 ``log10`` with SIMD code that differs between processors (up to a
    few ulp from the correctly rounded value), so the script's top edge depends on the machine
    that ran it. The candidates are the correctly rounded float32 value and its neighbours.
    """
    exact = np.float32(np.log10(np.float64(np.float32(top))))
    out = [exact]
    lo = hi = exact
    for _ in range(ulps):
        lo, hi = np.nextafter(lo, np.float32(-np.inf)), np.nextafter(hi, np.float32(np.inf))
        out += [lo, hi]
    return out


def _script_values(ref: np.ndarray, cand: np.ndarray, top: float, n_edges: int) -> list[tuple[float, bool]]:
    """(separation power, whether the top edge keeps the maximum) for each candidate top edge."""
    out = []
    for log_top in _script_log_tops(top):
        edges = np.logspace(np.log10(THRESHOLD), log_top, n_edges)
        out.append((_sep(ref, cand, edges), bool(edges[-1] >= top)))
    return out


def _matches(stored: float, values: list[tuple[float, bool]], tol: float = 1e-14) -> list[bool]:
    """For each candidate edge reproducing the stored number: whether it kept the maximum."""
    return [kept for value, kept in values if abs(value - stored) <= tol]


def test_separation_powers_match_the_script(files: dict[str, Path], feats: dict[str, dict[str, np.ndarray]]) -> None:
    ref, cand = feats["real"], feats["fake"]
    sep = _sep(ref["etot_over_einc"], cand["etot_over_einc"], np.linspace(0.5, 1.5, 101))
    assert sep == pytest.approx(CC_SEP_ETOT, abs=1e-14)
    for name, expected in CC_SEP_MEANS.items():
        vals = [_sep(ref[name][:, lay], cand[name][:, lay], _edges(name, layer=lay)) for lay in range(45)]
        assert np.mean(vals) == pytest.approx(expected, abs=1e-14), name
    # voxels: the script's edges np.logspace(log10 t, log10 max, 50), log10 in float32 (processor-dependent)
    vr, vc = _voxels(files["real"]), _voxels(files["fake"])
    top = float(np.float32(ref["max_voxel"].max()))
    values = []
    for log_top in _script_log_tops(top):
        edges = np.logspace(np.log10(THRESHOLD), log_top, 50)
        counts = (voxel_histograms(v, edges, threshold_mev=THRESHOLD) for v in (vr, vc))
        values.append(separation_power_counts(*counts, n_bootstrap=0).value)
    assert any(abs(v - CC_SEP_VOXEL) <= 1e-15 for v in values), (values, CC_SEP_VOXEL)


def test_layer_energy_separation_and_the_scripts_top_edge(feats: dict[str, dict[str, np.ndarray]]) -> None:
    """The script's top edge can fall below the reference maximum and drop it from the histogram.

    The script takes ``np.log10`` of the float32 maximum, which numpy computes in float32 with
    processor-dependent rounding: the top edge ``10**log10(max)`` is then off by up to ~1e-7
    relative, below the maximum in about half of the layers. The stored numbers are reproduced
    exactly by one of the top edges the script can have computed (on any processor); where that
    edge kept the maximum, showerforge's own edges (end points pinned to the threshold and the
    maximum, independent of the processor) give the script's number, elsewhere they differ by one
    entry's weight.
    """
    ref, cand = feats["real"]["layer_energy"], feats["fake"]["layer_energy"]
    dropped = []
    for lay in range(45):
        top = float(ref[:, lay].max())
        stored = CC_SEP_LAYER_ENERGY[lay]
        kept = _matches(stored, _script_values(ref[:, lay], cand[:, lay], top, 40))
        assert kept, (lay, stored)  # one of the script's possible edges gives the stored number
        ours = _sep(
            ref[:, lay], cand[:, lay], _edges("layer_energy", layer=lay, threshold_mev=THRESHOLD, reference_max=top)
        )
        if all(kept):
            assert ours == pytest.approx(stored, abs=1e-14), lay
        elif not any(kept):
            dropped.append(lay)
            assert abs(ours - stored) < 2.0 / len(ref), lay  # one entry of 300
    assert 0 < len(dropped) < 45  # both cases occur in the stored numbers
