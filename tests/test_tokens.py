"""ar-tokens and its tokenisers: round trips within the stated resolution, sequences that end with the
stop decision or at the cap, a toy with known lengths and cluster shares, the chain through the kinds
(API and command line, jets and point clouds) and bad input refused in one line."""

from __future__ import annotations

import io
import json
import math
import sys

import h5py
import numpy as np
import pytest
import torch

import showerforge as sf
from showerforge.data.jetnet import read_jets, write_jets
from showerforge.data.points import PointClouds, PointsWriter, read_points
from showerforge.errors import UserError
from showerforge.geometry import PRESETS
from showerforge.models import MODELS, build_model
from showerforge.models.tokens import PAD_ID, AxisTokeniser, VQTokeniser
from showerforge.simulate.jets import JetConfig, simulate_jets

torch.set_num_threads(1)

TINY = {"d_model": 16, "n_blocks": 1, "n_heads": 2, "bins": 16}
TRAIN = {"epochs": 2, "progress": False, "device": "cpu", "num_threads": 1, "batch_size": 32}


def _model(**over):
    spec = MODELS["ar-tokens"]
    torch.manual_seed(0)
    return build_model(spec.resolve(**{**spec.example_config, **over}))


def _perturb(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model


# ----------------------------------------------------------------- tokenisers
@pytest.mark.parametrize("spacing", ["uniform", "quantile"])
def test_axis_tokeniser_round_trip_within_half_a_bin(spacing):
    rng = np.random.default_rng(3)
    x = np.stack([rng.normal(0, 1, 4000), rng.exponential(1.0, 4000), rng.integers(0, 30, 4000) + 0.5], 1)
    x = torch.from_numpy(x.astype(np.float32))
    tok = AxisTokeniser(3, 24, spacing)
    report = tok.fit(x)
    ids = tok.encode(x)
    assert ids.shape == (4000, 3) and int(ids.min()) >= 0 and int(ids.max()) < 24
    back = tok.decode(ids)
    half = 0.5 * torch.stack([tok.widths[a, ids[:, a]] for a in range(3)], 1)
    assert ((back - x).abs() <= half * (1 + 1e-5) + 1e-6).all()
    assert np.allclose(report["max_abs_error"], (back - x).abs().max(0).values.numpy(), atol=1e-5)
    # uniform decoding stays in the bin; the fitted edges travel in a state_dict read with weights_only
    inside = tok.encode(tok.decode(ids, generator=torch.Generator().manual_seed(0), mode="uniform"))
    assert (inside == ids).float().mean() > 0.999
    buf = io.BytesIO()
    torch.save(tok.state_dict(), buf)
    buf.seek(0)
    clone = AxisTokeniser(3, 24, spacing)
    clone.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(clone.encode(x), ids)


def test_vq_tokeniser_reconstructs_clusters_it_can_represent():
    """Eight tight clusters and 16 codes: every cluster gets a code, the error is near the cluster width."""
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[a, b, c] for a in (-2.0, 2.0) for b in (-2.0, 2.0) for c in (-1.0, 1.0)])
    label = torch.randint(8, (3000,), generator=g)
    x = centres[label] + 0.03 * torch.randn(3000, 3, generator=g)
    tok = VQTokeniser(3, 16, code_dim=4, hidden=32, steps=400)
    report = tok.fit(x, seed=1)
    assert report["recon_mse"] < 0.05 and report["codes_used"] >= 8 and 0 < report["usage"] <= 1
    ids = tok.encode(x)[:, 0]
    # no code is shared by two clusters
    for code in ids.unique():
        assert len(label[ids == code].unique()) == 1
    assert tok.describe()["stop_id"] == 17 and tok.describe()["pad_id"] == 18


# ----------------------------------------------------------------- sequences
def test_sequences_end_with_stop_or_cap_and_padding_never_leaks():
    model = _perturb(_model(n_particles=5)).eval()
    cond = torch.randn(300, 5, generator=torch.Generator().manual_seed(2))
    ids, lengths, stopped = model.sample_tokens(cond, generator=torch.Generator().manual_seed(0))
    pos = torch.arange(5)[None, :]
    real = pos < lengths[:, None]
    assert (lengths >= 1).all() and (lengths <= 5).all()
    assert torch.equal(stopped, lengths < 5)  # ended by the stop decision, or at the cap
    assert (ids[real] != PAD_ID).all() and (ids[~real] == PAD_ID).all()
    assert 0 < int(stopped.sum()) < 300  # both endings occur
    x, mask = model.sample_set(cond, generator=torch.Generator().manual_seed(0))
    assert torch.equal(mask, real) and (x[~mask] == 0).all() and torch.isfinite(x).all()


def test_kv_cache_gives_the_hidden_states_of_a_full_pass():
    model = _perturb(_model(n_particles=6)).eval()
    g = torch.Generator().manual_seed(4)
    cond, ids = torch.randn(3, 5, generator=g), torch.randint(8, (3, 6, 3), generator=g)
    with torch.no_grad():
        full, _ = model._run(torch.cat([model._cond_token(cond), model._embed(ids, 0, cond)], 1))
        step, cache = model._run(model._cond_token(cond))
        steps = [step]
        for j in range(6):
            step, cache = model._run(model._embed(ids[:, j : j + 1], j, cond), cache)
            steps.append(step)
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)


@pytest.mark.parametrize(
    "settings,words",
    [
        ({"temperature": 0.0}, "--temperature"),
        ({"temperature": -1.0}, "--temperature"),
        ({"temperature": math.nan}, "--temperature"),
        ({"top_k": 0}, "--top-k"),
        ({"top_k": -2}, "--top-k"),
        ({"steps": 4}, "--steps"),
    ],
)
def test_bad_sampling_settings_are_one_line_errors(settings, words):
    with pytest.raises(UserError, match=words) as err:
        _model().sampler_settings(**settings)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------- a toy with known answers
def _toy(n_per_cond, seed=0):
    """Condition 0: lengths 1, 2, 3; condition 1: lengths 4, 5, 6 (equal shares, exactly); constituents
    in two clusters (x0 = -2 or +2, share 0.3 and 0.7, exactly), x1 noise."""
    rng = np.random.default_rng(seed)
    xs, masks, conds = [], [], []
    for c, choices in ((0, (1, 2, 3)), (1, (4, 5, 6))):
        lengths = np.repeat(choices, n_per_cond // 3)
        total = int(lengths.sum())
        side = np.where(rng.permutation(total) < round(0.3 * total), -2.0, 2.0)
        x = np.zeros((len(lengths), 6, 2), np.float32)
        mask = np.arange(6)[None, :] < lengths[:, None]
        x[mask] = np.stack([side + rng.normal(0, 0.1, total), rng.normal(0, 1, total)], 1)
        xs.append(x)
        masks.append(mask)
        conds.append(np.eye(2, dtype=np.float32)[np.full(len(lengths), c)])
    return (torch.from_numpy(np.concatenate(a)) for a in (xs, masks, conds))


def test_toy_length_distribution_and_cluster_shares():
    """Lengths on the support within 4 sigma of 1/3 each, at most 4 % outside it (lengths the data never
    has), the share of the left cluster within 4 sigma of 0.3, for each condition."""
    x, mask, cond = _toy(300)
    cfg = {
        "n_particles": 6,
        "n_features": 2,
        "n_cond": 2,
        "order_by": 1,
        "bins": 12,
        "d_model": 32,
        "n_blocks": 1,
        "n_heads": 2,
    }
    torch.manual_seed(0)
    model = build_model(MODELS["ar-tokens"].resolve(**cfg))
    model.fit_to_data([(x, cond, mask)])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 200)
    for _ in range(200):  # full batches: 600 sequences
        loss = model.loss(x, cond, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    model.eval()
    n = 1500
    for c, choices in ((0, (1, 2, 3)), (1, (4, 5, 6))):
        gen_x, gen_mask = model.sample_set(
            torch.eye(2)[torch.full((n,), c)], generator=torch.Generator().manual_seed(10 + c)
        )
        lengths = gen_mask.sum(1).numpy()
        for k in choices:
            share = float((lengths == k).mean())
            assert abs(share - 1 / 3) <= 4 * math.sqrt(2 / 9 / n), (c, k, share)
        assert float((~np.isin(lengths, choices)).mean()) <= 0.04, (c, np.bincount(lengths))
        left = (gen_x[gen_mask][:, 0] < 0).double()
        assert abs(float(left.mean()) - 0.3) <= 4 * math.sqrt(0.21 / len(left)), float(left.mean())


# ----------------------------------------------------------------- the chain through the kinds
@pytest.fixture(scope="module")
def jet_file(tmp_path_factory):
    batches = [simulate_jets(JetConfig(t, n_particles=30, mpi=False), 60, seed=21 + i) for i, t in enumerate("gt")]
    arrays = {
        k: np.concatenate([getattr(b, k) for b in batches]) for k in ("particle_features", "jet_features", "jet_type")
    }
    return write_jets(tmp_path_factory.mktemp("tok_jets") / "jets.h5", arrays)


def toy_point_file(path, n=40, seed=0):
    """Point-cloud showers on the ild-ecal geometry: 3-25 points, layers 0-29, energies in MeV."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 26, n)
    m = int(sizes.sum())
    pts = np.stack(
        [rng.normal(0, 15, m), rng.normal(0, 15, m), rng.integers(0, 30, m), rng.exponential(2.0, m) + 0.1], 1
    )
    clouds = PointClouds(pts.astype(np.float32), np.concatenate([[0], np.cumsum(sizes)]), rng.uniform(5e3, 15e3, n))
    geometry = PRESETS["ild-ecal"]
    clouds.geometry = geometry
    with PointsWriter(path, n, geometry, {"particle": "gamma"}) as w:
        w.add(clouds)
    return path


@pytest.fixture(scope="module")
def point_file(tmp_path_factory):
    return toy_point_file(tmp_path_factory.mktemp("tok_points") / "points.h5")


def test_a_resumed_run_matches_an_uninterrupted_one(point_file, tmp_path):
    """The tokeniser is fitted once; a resumed run keeps it and ends with the same weights."""
    from showerforge.runs import read_checkpoint

    cut = sf.train(point_file, output=tmp_path / "cut", model="ar-tokens", config=TINY, max_minutes=1e-9, **TRAIN)
    assert (cut.epochs_run, cut.stopped_early) == (1, True)
    sf.train(point_file, output=tmp_path / "cut", model="ar-tokens", config=TINY, **TRAIN)
    sf.train(point_file, output=tmp_path / "straight", model="ar-tokens", config=TINY, **TRAIN)
    a, b = read_checkpoint(tmp_path / "cut"), read_checkpoint(tmp_path / "straight")
    assert a["epoch"] == b["epoch"] == 2 and a["model_fit"] == b["model_fit"]
    for key in ("model", "ema"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key


def _weights_only(run):
    with open(run / "checkpoint.pt", "rb") as f:
        return torch.load(f, weights_only=True)


@pytest.mark.filterwarnings("ignore:.*recommended")
def test_jet_chain_api(jet_file, tmp_path):
    run = sf.train(jet_file, output=tmp_path / "run", model="ar-tokens", config=TINY, **TRAIN)
    ckpt = _weights_only(tmp_path / "run")
    tokens = json.loads(ckpt["model_fit"])
    assert ckpt["model_name"] == "ar-tokens" and ckpt["data_kind"] == "jet-set"
    assert tokens["order_by"] == 2 and tokens["length_cap"] == 30 and tokens["vocab_sizes"] == [16, 16, 16]
    out = sf.generate_file(run, output=tmp_path / "gen.h5", types="g,t", n=40, seed=1, temperature=0.9, top_k=8)
    jets = read_jets(out)
    real = jets.particle_features[..., 3] > 0
    assert np.array_equal(real.sum(1), jets.jet_features[:, 3]) and (jets.particle_features[~real] == 0).all()
    assert (real[:, :1]).all() and np.all(np.diff(real.astype(int), axis=1) <= 0)  # real slots first
    with h5py.File(out) as f:
        assert "top_k" in f.attrs and "temperature" in f.attrs and "tokens" in f.attrs
    again = sf.load(run).sample(40, ["g", "t"], seed=1, temperature=0.9, top_k=8)
    assert np.array_equal(again["particle_features"], jets.particle_features)
    metrics = sf.evaluate(jet_file, out, output=tmp_path / "report", quick=True, plots=False)
    assert metrics["candidate"]["n_jets"] == 80 and (tmp_path / "report" / "metrics.json").exists()
    suite = tmp_path / "suite.toml"
    suite.write_text(f'name = "ar"\n[reference]\nfile = "{jet_file}:t"\n[analyses]\nuse = ["jet_substructure"]\n')
    res = sf.validate_run(suite, tmp_path / "run", "ar", store=tmp_path / "history.db", output=tmp_path / "validation")
    assert res.exit_code in (0, 1) and "jet_mass" in res.record.histograms


@pytest.mark.filterwarnings("ignore:.*recommended")
def test_point_chain_api(point_file, tmp_path):
    run = sf.train(point_file, output=tmp_path / "run", model="ar-tokens", config=TINY, **TRAIN)
    ckpt = _weights_only(tmp_path / "run")
    assert ckpt["data_kind"] == "calo-points" and json.loads(ckpt["model_fit"])["order_by"] == 3
    cap = int(read_points(point_file).num_points.max())
    config = json.loads(ckpt["model_config"])
    assert config["n_cond"] == 1 and config["n_particles"] == cap
    out = sf.generate_file(run, output=tmp_path / "gen.h5", energy="10GeV", n=12, seed=2)
    gen = read_points(out)
    assert len(gen) == 12 and (gen.num_points >= 1).all() and (gen.num_points <= cap).all()
    assert len(gen.points) == gen.num_points.sum() and (gen.points[:, 3] > 0).all()
    assert set(np.unique(gen.points[:, 2])) <= set(range(30))
    metrics = sf.evaluate(point_file, out, output=tmp_path / "report", quick=True, plots=False)
    assert metrics


def test_a_checkpoint_of_another_kind_is_refused_in_one_line(point_file, tmp_path):
    from showerforge.generate.jet_set import load_jet_model
    from showerforge.runs.checkpoint import CheckpointError

    sf.train(point_file, output=tmp_path / "run", model="ar-tokens", config=TINY, **{**TRAIN, "epochs": 1})
    with pytest.raises(CheckpointError, match="holds a calo-points model") as err:
        load_jet_model(tmp_path / "run")
    assert "\n" not in str(err.value)


def _cli(monkeypatch, capsys, *args):
    from showerforge.cli import main

    monkeypatch.setattr(sys, "argv", ["showerforge", *map(str, args)])
    with pytest.raises(SystemExit) as done:
        main()
    out = capsys.readouterr()
    return int(done.value.code or 0), out.err


@pytest.mark.filterwarnings("ignore:.*recommended")
def test_cli_chain_and_bad_input(jet_file, point_file, tmp_path, monkeypatch, capsys):
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    common = ["--epochs", "1", "--device", "cpu", *sets]
    gen = ["generate", "--model", tmp_path / "j", "--type", "t", "--n", "20"]
    chain = [
        ["train", "--data", jet_file, "--model", "ar-tokens", "-o", tmp_path / "j", *common],
        ["train", "--data", point_file, "--model", "ar-tokens", "-o", tmp_path / "p", *common],
        [*gen, "--top-k", "5", "-o", tmp_path / "g.h5"],
        ["evaluate", "--reference", jet_file, "--candidate", tmp_path / "g.h5", "--quick", "--no-plots"],
        ["generate", "--model", tmp_path / "p", "--energy", "10GeV", "--n", "5", "-o", tmp_path / "gp.h5"],
        ["evaluate", "--reference", point_file, "--candidate", tmp_path / "gp.h5", "--quick", "--no-plots"],
    ]
    for k, args in enumerate(chain):
        code, err = _cli(monkeypatch, capsys, *args, *(["-o", tmp_path / f"rep{k}"] if args[0] == "evaluate" else []))
        assert code == 0, (args, err)
    bad = {
        "--temperature": [*gen, "--temperature", "0", "-o", tmp_path / "b1.h5"],
        "--top-k": [*gen, "--top-k", "0", "-o", tmp_path / "b2.h5"],
        "--steps": [*gen, "--steps", "3", "-o", tmp_path / "b3.h5"],
        "distillation does not apply": ["distill", "--model", tmp_path / "j", "--steps", "1", "-o", tmp_path / "d"],
        "ONNX export does not apply": ["export", "--model", tmp_path / "j", "-o", tmp_path / "x.onnx"],
        "is a shower model": ["generate", "--model", tmp_path / "p", "--type", "t", "-o", tmp_path / "b4.h5"],
        "holds a calo-points run": ["train", "--data", jet_file, "--model", "ar-tokens", "-o", tmp_path / "p", *common],
    }
    for words, args in bad.items():
        code, err = _cli(monkeypatch, capsys, *args)
        assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and words in err, (words, err)
    assert not any((tmp_path / f).exists() for f in ("b1.h5", "b2.h5", "b3.h5", "b4.h5", "x.onnx", "d"))


@pytest.mark.filterwarnings("ignore:.*recommended")
def test_init_from_carries_the_backbone_from_jets_to_showers(jet_file, point_file, tmp_path):
    """Transfer: a shower run started from a jet run holds the jet run's weights wherever name and
    shape agree (the transformer), fresh ones elsewhere (the energy condition), and records it; a
    model with nothing in common is refused in one line."""
    from showerforge.runs import read_checkpoint
    from showerforge.training.fit import TrainError

    sf.train(jet_file, output=tmp_path / "jets", model="ar-tokens", config=TINY, **TRAIN)
    tuned = {**TRAIN, "lr": 1e-12}  # the copied weights stay where they were (AdamW steps of ~1e-12)
    sf.train(point_file, output=tmp_path / "ft", model="ar-tokens", config=TINY, init_from=tmp_path / "jets", **tuned)
    src, ft = read_checkpoint(tmp_path / "jets"), read_checkpoint(tmp_path / "ft")
    record = ft["provenance"]["init_from"]
    assert 0 < record["tensors_copied"] < record["tensors"] and record["sha256"]
    same = [k for k, v in ft["ema"].items() if k in src["ema"] and v.shape == src["ema"][k].shape]
    blocks = [k for k in same if ".blocks." in k or "block" in k]
    assert blocks and all(torch.allclose(ft["ema"][k], src["ema"][k], atol=1e-8) for k in blocks)
    scratch = sf.train(point_file, output=tmp_path / "scratch", model="ar-tokens", config=TINY, **tuned)
    assert not all(torch.equal(read_checkpoint(scratch.checkpoint)["ema"][k], src["ema"][k]) for k in blocks)
    with pytest.raises(TrainError, match="no weights of the same name and shape"):
        sf.train(jet_file, output=tmp_path / "set", model="cfm-set", init_from=tmp_path / "jets", epochs=1)
    assert not (tmp_path / "set" / "checkpoint.pt").exists()


def test_backbone_features_ignore_padding_and_the_batch():
    """The tagger's input: one vector per set, the same whatever sits in the padded slots, however
    wide the padding and whatever the other sets of the batch."""
    model = _perturb(_model())  # sets of up to 7 constituents
    x = torch.randn(3, 7, 3)
    mask = torch.arange(7)[None, :] < torch.tensor([[3], [7], [5]])
    cond = torch.zeros(3, model.config["n_cond"])
    junk = torch.where(mask[..., None], x, torch.randn(3, 7, 3))
    with torch.no_grad():
        f = model.features(x, cond, mask)
        other_padding = model.features(junk, cond, mask)
        alone = model.features(x[:1, :3], cond[:1], mask[:1, :3])
    assert f.shape == (3, model.config["d_model"]) and torch.isfinite(f).all()
    torch.testing.assert_close(other_padding, f, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(alone, f[:1], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(f[0], f[1])


def test_init_from_mistakes_are_one_line_and_write_nothing(jet_file, tmp_path, monkeypatch, capsys):
    """A missing source and a file that is not a checkpoint: exit 2, one line naming it, no run folder."""
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    for source, words in ((tmp_path / "nowhere", "neither a run directory"), (junk, "not a torch checkpoint")):
        out = tmp_path / f"run_{source.name}"
        code, err = _cli(monkeypatch, capsys, "train", "--data", jet_file, "--model", "ar-tokens", "--epochs", "1",
                         "--init-from", source, "-o", out)  # fmt: skip
        assert code == 2 and words in err and str(source.name) in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()
