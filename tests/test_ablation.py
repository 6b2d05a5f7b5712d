"""The iREC ablation (irec_jax.benchmark.ablation, eval.py --ablation): a tiny real run, its outputs, clean errors."""

import dataclasses
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import pytest

from irec_jax import codec, imageio, modelzoo
from irec_jax.assets import bundled_images
from irec_jax.benchmark import ablation
from irec_jax.benchmark.errors import EvalError
from irec_jax.benchmark.sets import ImageSet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import eval as eval_cli  # noqa: E402  (the repo-root CLI)

# Two grid points (N = 20 and 36), beam width 2, on the first bundled 32x32 crop.
ARGS = ["--ablation", "--omega", "3", "--one-plus-epsilon", "1.0,1.2", "--beams", "2", "--limit", "1",
        "--mc-samples", "4", "--no-progress"]
# The encoder's knobs: block_kl 50 and 200 x final_choices 1 and 4 x layer_choices 1 and 4 at one (Ω, 1+ε, B = 4).
KNOB_ARGS = ["--ablation", "--omega", "3", "--one-plus-epsilon", "1.2", "--beams", "4", "--block-kl", "50,200",
             "--final-choices", "1,4", "--layer-choices", "1,4", "--limit", "1", "--mc-samples", "2",
             "--no-progress", "--no-plots"]
KNOBS = [(k, c, lc) for k in (50.0, 200.0) for c in (1, 4) for lc in (1, 4)]  # grid order
HEATMAPS = ("ablation_total_overhead.png", "ablation_coding_overhead.png", "ablation_residual_overhead.png",
            "ablation_encode_s.png")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A frozen copy of the bundled model: a training job may re-export the bundled one mid-test."""
    path = str(tmp_path_factory.mktemp("model"))
    for _ in range(5):
        for name in ("model.json", "params.npz"):
            shutil.copy(os.path.join(modelzoo.bundled_model_dir(), name), os.path.join(path, name))
        try:
            modelzoo.load_model(path)
            return path
        except ValueError:  # copied while being rewritten: copy again
            time.sleep(1.0)
    pytest.fail("could not copy a consistent bundled model")


def _run(tmp_path_factory, name: str, args: list[str], model_dir: str) -> str:
    out = str(tmp_path_factory.mktemp(name))
    rc = eval_cli.main(args + ["--model", model_dir, "--out", out])
    assert rc == 0
    return out


def _load(out: str) -> dict:
    with open(os.path.join(out, "ablation.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, model_dir):
    return _run(tmp_path_factory, "ablation", ARGS, model_dir)


@pytest.fixture(scope="module")
def doc(run_dir):
    return _load(run_dir)


@pytest.fixture(scope="module")
def knobs_dir(tmp_path_factory, model_dir):
    return _run(tmp_path_factory, "ablation_knobs", KNOB_ARGS, model_dir)


@pytest.fixture(scope="module")
def knobs_doc(knobs_dir):
    return _load(knobs_dir)


def test_json_has_documented_keys_and_types(doc, model_dir):
    for key, kind in (("name", str), ("description", str), ("started", str), ("wall_s", float), ("seed", int),
                      ("mc_samples", int), ("model", dict), ("grid", dict), ("images", list), ("sets", list),
                      ("points", list), ("rows", list), ("metrics", dict), ("environment", dict),
                      ("files", dict)):
        assert isinstance(doc[key], kind), key
    assert doc["mc_samples"] == 4
    model = modelzoo.load_model(model_dir)
    assert doc["model"]["spec"] == model_dir and doc["model"]["name"] == model.name
    assert doc["model"]["param_hash"] == model.ref.param_hash.hex()
    assert doc["grid"]["omega"] == [3.0] and doc["grid"]["one_plus_epsilon"] == [1.0, 1.2]
    assert doc["grid"]["beams"] == [2]
    assert [p["num_candidates"] for p in doc["grid"]["points"]] == [20, 36]
    assert [im["image"] for im in doc["images"]] == [os.path.basename(bundled_images("crops")[0])]
    assert len(doc["points"]) == 2 and len(doc["rows"]) == 2
    defaults = codec.coder_settings()
    assert doc["grid"]["block_kl"] == [defaults.block_kl] and doc["grid"]["final_choices"] == [1]
    assert doc["grid"]["layer_choices"] == [1]
    for p in doc["grid"]["points"] + doc["points"] + doc["rows"]:
        assert isinstance(p["block_kl"], float) and p["block_kl"] == defaults.block_kl == 200.0
        assert isinstance(p["final_choices"], int) and p["final_choices"] == defaults.final_choices == 1
        assert isinstance(p["layer_choices"], int) and p["layer_choices"] == defaults.layer_choices == 1
    for p in doc["points"]:
        assert p["error"] is None and p["num_images"] == 1 and p["num_ok"] == 1
        for k in ("total_overhead", "coding_overhead", "coding_overhead_ideal", "residual_overhead",
                  "bpd", "encode_s", "decode_s", "index_bits", "residual_bits"):
            assert isinstance(p[k], float) and math.isfinite(p[k]) and p[k] > 0, k
    for r in doc["rows"]:
        for k in ("total_bytes", "header_bytes", "stream_bytes", "num_candidates", "dims"):
            assert isinstance(r[k], int), k
        assert isinstance(r["kl_bits_per_layer"], list) and isinstance(r["exact"], bool)


def test_every_point_is_bit_exact(doc):
    assert all(p["all_exact"] and p["num_exact"] == p["num_images"] for p in doc["points"])
    assert all(r["exact"] and r["error"] is None for r in doc["rows"])
    assert all(isinstance(r["retimed"], bool) and r["compiled_in_timed_call"] is False for r in doc["rows"])


def test_overheads_come_from_the_real_bytes(doc, model_dir):
    img = imageio.read_image(bundled_images("crops")[0])
    stats = doc["images"][0]
    for r in doc["rows"]:
        # the file is exactly what the codec writes for this image and setting, unrefined (the study
        # is of the coder on the network's posteriors, which stats' Monte Carlo terms sample)
        settings = dataclasses.replace(
            codec.coder_settings(omega=r["omega"], epsilon=r["epsilon"], beams=r["beams"], seed=0),
            block_kl=r["block_kl"], final_choices=r["final_choices"], small_beams=r["beams"])
        data, rep = codec.compress_report(img, model=model_dir, settings=settings, fallback=False, refine=0)
        assert (len(data), rep.stream_bytes, rep.index_bits, rep.residual_bits) == (
            r["total_bytes"], r["stream_bytes"], r["index_bits"], r["residual_bits"])
        assert r["header_bytes"] + r["stream_bytes"] == r["total_bytes"]
        # the stream holds the two exact codelengths and how it ends (a few bits either way: its last
        # symbols may be implied by the zero padding, docs/format.md section 4)
        assert -16 < 8 * r["stream_bytes"] - r["index_bits"] - r["residual_bits"] <= 64
        kl_bits = sum(rep.kl_nats) / math.log(2)
        assert r["kl_bits"] == pytest.approx(kl_bits, rel=1e-9)
        assert r["coding_overhead"] == pytest.approx(r["index_bits"] / kl_bits, rel=1e-9)
        assert r["coding_overhead_ideal"] == pytest.approx(rep.index_bits_ideal / kl_bits, rel=1e-9)
        assert r["residual_overhead"] == pytest.approx(r["residual_bits"] / stats["eq_recon_bits"], rel=1e-9)
        assert r["total_overhead"] == pytest.approx(8 * r["total_bytes"] / stats["nelbo_bits"], rel=1e-9)
        assert r["bpd"] == pytest.approx(8 * r["total_bytes"] / img.size, rel=1e-12)
    # aggregates over one image are that image's row
    for p, r in zip(doc["points"], doc["rows"]):
        assert p["total_overhead"] == pytest.approx(r["total_overhead"])


def test_mc_elbo_is_consistent(doc):
    s = doc["images"][0]
    assert s["samples"] == 4 and s["dims"] == 32 * 32 * 3
    assert s["nelbo_bits"] == pytest.approx(s["kl_bits"] + s["eq_recon_bits"], rel=1e-5)
    assert 0 < s["eq_recon_bits_se"] < s["eq_recon_bits"] and s["nelbo_bits_se"] > 0


def test_heatmaps_and_table_are_written(run_dir, doc):
    for name in HEATMAPS:
        with open(os.path.join(run_dir, name), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", name
    assert set(HEATMAPS) <= set(doc["files"].values())
    with open(os.path.join(run_dir, "ablation_table.txt")) as f:
        table = f.read()
    assert "1+ε" in table and "1/1" in table and "FAILED" not in table
    header = next(line for line in table.splitlines() if line.lstrip().startswith("B "))
    assert header.split() == ["B", "Ω", "1+ε", "N", "block", "choice", "layer", "bpd", "total", "coding", "(ideal)",
                              "residual", "index", "b", "resid", "b", "enc", "s", "dec", "s", "exact"]


# --- the encoder's knobs: block_kl, final_choices and layer_choices ------------------------------------

def _knob(d: dict) -> tuple:
    return d["block_kl"], d["final_choices"], d["layer_choices"]


def test_knob_keys_and_types(knobs_doc):
    grid = knobs_doc["grid"]
    assert grid["block_kl"] == [50.0, 200.0] and grid["final_choices"] == [1, 4] and grid["beams"] == [4]
    assert grid["layer_choices"] == [1, 4]
    # grid order: B, then block_kl, then final_choices, then layer_choices, then Ω, then 1+ε
    assert [_knob(p) for p in grid["points"]] == [_knob(p) for p in knobs_doc["points"]] == KNOBS
    assert len(knobs_doc["points"]) == len(knobs_doc["rows"]) == 8
    for p in grid["points"] + knobs_doc["points"] + knobs_doc["rows"]:
        assert type(p["block_kl"]) is float and type(p["final_choices"]) is int and type(p["layer_choices"]) is int
    for p in knobs_doc["points"]:
        assert p["error"] is None
        for k in ("index_bits", "residual_bits", "coding_overhead", "residual_overhead", "bpd", "encode_s"):
            assert isinstance(p[k], float) and math.isfinite(p[k]) and p[k] > 0, k
    for k in ("block_kl", "final_choices", "layer_choices", "index_bits", "residual_bits"):
        assert k in knobs_doc["metrics"]
    assert {"block", "choice", "layer"} <= set(knobs_doc["table_columns"])


def test_final_choices_only_lower_the_residual(knobs_doc):
    by = {_knob(p): p for p in knobs_doc["rows"]}
    for block in (50.0, 200.0):
        for layer in (1, 4):
            one, four = by[block, 1, layer], by[block, 4, layer]
            # choice 0 is the search's own pick, and every final beam costs the same index bits
            assert four["index_bits"] == one["index_bits"] and four["kl_bits"] == one["kl_bits"]
            assert four["residual_bits"] <= one["residual_bits"]


def test_layer_choices_keep_the_first_layers_bits_and_reach_the_coder(knobs_doc):
    by = {_knob(p): p for p in knobs_doc["rows"]}
    for block in (50.0, 200.0):
        for final in (1, 4):
            one, four = by[block, final, 1], by[block, final, 4]
            # a layer's final beams all cost its index bits; which one is coded moves the later layers' KL
            assert four["kl_bits_per_layer"][0] == one["kl_bits_per_layer"][0]
    assert any(by[k + (4,)]["kl_bits_per_layer"][1:] != by[k + (1,)]["kl_bits_per_layer"][1:]
               for k in {(b, c) for b, c, _ in KNOBS})


def test_both_block_sizes_decode_exactly(knobs_doc):
    for p in knobs_doc["points"]:
        assert p["all_exact"] and p["num_exact"] == 1, _knob(p)
    assert all(r["exact"] and r["error"] is None for r in knobs_doc["rows"])
    # the knob reached the coder: smaller blocks send more step counts
    by = {_knob(r): r for r in knobs_doc["rows"]}
    assert by[50.0, 1, 1]["index_bits"] != by[200.0, 1, 1]["index_bits"]


def test_knob_table_shows_the_knobs(knobs_dir):
    with open(os.path.join(knobs_dir, "ablation_table.txt")) as f:
        lines = f.read().splitlines()
    body = [line.split() for line in lines if line.lstrip().startswith("4 ")]
    assert [(r[4], r[5], r[6]) for r in body] == [(f"{k:g}", str(c), str(lc)) for k, c, lc in KNOBS]
    assert all(r[-1] == "1/1" for r in body)


def test_heatmap_panels_tell_the_knobs_apart():
    from irec_jax.benchmark.ablation_report import _panels
    grid = ablation.make_grid((3.0,), (1.2,), (4, 8), block_kl=(50, 200), final_choices=(1,))
    assert [name for name, *_ in _panels(grid)] == ["B = 4, block = 50", "B = 4, block = 200",
                                                    "B = 8, block = 50", "B = 8, block = 200"]
    assert [name for name, *_ in _panels(ablation.make_grid((3.0,), (1.2,), (4,)))] == ["B = 4"]
    grid = ablation.make_grid((3.0,), (1.2,), (4,), final_choices=(1, 4), layer_choices=(1, 4))
    assert [name for name, *_ in _panels(grid)] == [
        "B = 4, choices = 1, layer choices = 1", "B = 4, choices = 1, layer choices = 4",
        "B = 4, choices = 4, layer choices = 1", "B = 4, choices = 4, layer choices = 4"]


def test_grid_point_settings_carry_the_knobs():
    point = ablation.GridPoint(3.0, 1.2, 20, block_kl=50.0, final_choices=20, layer_choices=16)
    s = point.settings(seed=7)
    assert (s.omega, s.epsilon, s.beams, s.seed, s.block_kl, s.final_choices, s.layer_choices) == (
        3.0, 0.2, 20, 7, 50.0, 20, 16)
    assert s.prune_fraction == codec.coder_settings().prune_fraction
    default = ablation.GridPoint(3.0, 1.2, 20)
    assert (default.block_kl, default.final_choices, default.layer_choices) == (
        codec.coder_settings().block_kl, codec.coder_settings().final_choices, codec.coder_settings().layer_choices)
    assert "block=50" in point.label and "choices=20:16" in point.label


@pytest.mark.parametrize("axes, words", [
    (dict(omega=(0.0,), one_plus_epsilon=(1.2,), beams=(1,)), "omega 0.0 must be > 0"),
    (dict(omega=(3.0,), one_plus_epsilon=(0.9,), beams=(1,)), "must be >= 1"),
    (dict(omega=(3.0,), one_plus_epsilon=(1.2,), beams=(0,)), "beams 0 must be an integer"),
    (dict(omega=(3.0,), one_plus_epsilon=(1.2,), beams=(2.5,)), "beams 2.5 must be an integer"),
    (dict(omega=(3.0, 3.0), one_plus_epsilon=(1.2,), beams=(1,)), "repeats"),
    (dict(omega=(20.0,), one_plus_epsilon=(1.0,), beams=(1,)), "Ω=20 1+ε=1 B=1"),  # 4.9e8 candidates
    (dict(omega=(3.0,), one_plus_epsilon=(), beams=(1,)), "no values"),
    (dict(omega=(3.0,), one_plus_epsilon=(1.2,), beams=(1,), block_kl=(0.0,)), "block_kl 0.0 must be > 0"),
    (dict(omega=(3.0,), one_plus_epsilon=(1.2,), beams=(1,), block_kl=(math.inf,)), "block_kl value inf is not"),
    (dict(omega=(2.0, 4.0), one_plus_epsilon=(1.2,), beams=(1,), block_kl=(3.0,)),
     "Ω=4 1+ε=1.2 B=1 block=3 choices=1:1: invalid coder settings: block_kl=3.0 must be >= omega"),
    (dict(omega=(3.0,), one_plus_epsilon=(1.2,), beams=(1,), block_kl=(50, 50)), "block_kl repeats"),
    (dict(omega=(3.0,), one_plus_epsilon=(1.2,), beams=(1,), final_choices=(0,)), "final_choices 0 must be an"),
    (dict(omega=(3.0,), one_plus_epsilon=(1.2,), beams=(1,), final_choices=(2.5,)), "final_choices 2.5 must be"),
    (dict(omega=(3.0,), one_plus_epsilon=(1.2,), beams=(1,), final_choices=(5000,)), "in [1, 4096]"),
    (dict(omega=(3.0,), one_plus_epsilon=(1.2,), beams=(2, 8), final_choices=(4,)),
     "B=2 block=200 choices=4:1: final_choices 4 must be <= beams (2)"),
    (dict(omega=(3.0,), one_plus_epsilon=(1.2,), beams=(1,), layer_choices=(0,)), "layer_choices 0 must be an"),
    (dict(omega=(3.0,), one_plus_epsilon=(1.2,), beams=(1,), layer_choices=(1, 1)), "layer_choices repeats"),
    (dict(omega=(3.0,), one_plus_epsilon=(1.2,), beams=(2, 8), layer_choices=(4,)),
     "B=2 block=200 choices=1:4: layer_choices 4 must be <= beams (2)"),
])
def test_bad_grid_values_are_clear_errors(axes, words):
    with pytest.raises(EvalError) as e:
        ablation.make_grid(**axes)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_named_grids():
    full = ablation.named_grid("full")
    assert len(full.points) == 5 * 4 * 3
    assert max(p.num_candidates for p in full.points) == math.floor(math.exp(9.0))
    assert len(ablation.named_grid("default").points) == 3 * 2 * 3
    coder = ablation.named_grid("coder")
    assert len(coder.points) == 3 * 2 * 2 * 2 and coder.beams == (20,)
    assert coder.omega == (codec.coder_settings().omega,)
    assert coder.block_kl == (50.0, 200.0) and coder.final_choices == (1, 20) and coder.layer_choices == (1, 20)
    for p in coder.points:
        s = p.settings()
        assert s.final_choices <= s.beams and s.layer_choices <= s.beams and s.block_kl >= s.omega
    for name in ("default", "full"):  # the grids that do not name the knobs take the coder's defaults
        g = ablation.named_grid(name)
        assert g.block_kl == (200.0,) and g.final_choices == (1,) and g.layer_choices == (1,)
    with pytest.raises(EvalError, match="unknown ablation grid"):
        ablation.named_grid("huge")


@pytest.mark.parametrize("argv, words", [
    (["--ablation", "--beams", "1,x"], "'x' is not an integer"),
    (["--ablation", "--omega", "2,,3"], "comma-separated"),
    (["--ablation", "--omega", "-1"], "must be > 0"),
    (["--ablation", "--mc-samples", "1"], "at least 2"),
    (["--ablation", "--codecs", "PNG"], "does not apply"),
    (["--ablation", "--images", "/nonexistent/dir"], "does not exist"),
    (["--grid", "full"], "only apply with --ablation"),
    (["--ablation", "--final-choices", "1,x"], "--final-choices: 'x' is not an integer"),
    (["--ablation", "--block-kl", "50,,200"], "--block-kl '50,,200': give comma-separated numbers"),
    (["--ablation", "--block-kl", "abc"], "--block-kl: 'abc' is not a number"),
    (["--ablation", "--block-kl", "3"], "block=3 choices=1:1: invalid coder settings: block_kl=3.0 must be >= omega"),
    (["--ablation", "--final-choices", "20"], "final_choices 20 must be <= beams (1)"),
    (["--ablation", "--final-choices", "0", "--beams", "20"], "final_choices 0 must be an integer in [1, 4096]"),
    (["--ablation", "--layer-choices", "1,x"], "--layer-choices: 'x' is not an integer"),
    (["--ablation", "--layer-choices", "20"], "layer_choices 20 must be <= beams (1)"),
    (["--ablation", "--lossy", "--layer-choices", "2"], "--layer-choices do(es) not apply to the lossy ablation"),
    (["--layer-choices", "1,20"], "--layer-choices only apply with --ablation"),
    (["--block-kl", "50"], "--block-kl only apply with --ablation"),
    (["--final-choices", "1,20"], "--final-choices only apply with --ablation"),
])
def test_cli_bad_input_is_one_line_and_nonzero(argv, words, capsys, tmp_path):
    rc = eval_cli.main(argv + ["--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("eval.py: error:") and words in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_images_the_model_cannot_take_are_refused():
    odd = ImageSet("odd", (np.zeros((5, 6, 3), np.uint8),), ("odd.png",))
    gray = ImageSet("gray", (np.zeros((4, 4, 1), np.uint8),), ("gray.png",))
    for s in (odd, gray):
        with pytest.raises(EvalError, match="even height and width and 3 channels"):
            ablation.ablation_images([s], 3)


def test_a_failing_point_is_recorded_and_the_run_goes_on(monkeypatch, model_dir):
    real = codec.compress_report

    def flaky(image, *, model="default", settings=None, progress=None, fallback=True, refine=None):
        if settings is not None and settings.epsilon == 0.0:
            raise RuntimeError("injected failure")
        return real(image, model=model, settings=settings, progress=progress, fallback=fallback, refine=refine)

    monkeypatch.setattr(codec, "compress_report", flaky)
    img = imageio.read_image(bundled_images("crops")[0])
    grid = ablation.make_grid((3.0,), (1.0, 1.2), (2,))
    res = ablation.run(grid, [ImageSet("one", (img,), ("a.png",))], model_dir, mc_samples=4, progress=False)
    bad, good = res.points
    assert bad["error"] == "RuntimeError: injected failure" and bad["total_overhead"] is None
    assert good["error"] is None and good["all_exact"]
    assert "failed: B=2 Ω=3 1+ε=1 block=200 choices=1:1: RuntimeError: injected failure" in ablation.format_table(res)
