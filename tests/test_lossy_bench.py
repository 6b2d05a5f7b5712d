"""The lossy benchmark (irec_jax.benchmark.lossy, lossy_report; eval.py --lossy): real-byte rates, CompressAI
averaging and schema, BD figures with known answers, skips, estimates and the command line end to end."""

import csv
import dataclasses
import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

from irec_jax.benchmark import lossy, lossy_report
from irec_jax.benchmark.errors import EvalError
from irec_jax.benchmark.sets import ImageSet
from irec_jax.errors import ImageError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import eval as eval_cli  # noqa: E402  (the repo-root CLI)


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth RGB gradient with mild noise, uint8 [h, w, 3] (compresses like a photo, not like noise)."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 90 * np.sin(yy / 7 + seed), 128 + 90 * np.cos(xx / 9), (yy + 2 * xx) % 256], -1)
    noise = np.random.default_rng(seed).normal(0, 6, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _jpeg(settings=(20, 50, 80)) -> lossy.LossyCodec:
    (codec,) = lossy.classical_lossy_codecs(["JPEG-420"])
    return lossy.LossyCodec("JPEG-420", tuple(settings), codec.encode_fn, codec.decode_fn, setting_name="quality")


def _curve(name, bpp, psnr, ms_db=None, estimate=False) -> lossy.Curve:
    n = len(bpp)
    ms_db = (None,) * n if ms_db is None else tuple(ms_db)
    ms = tuple(None if v is None else 1 - 10 ** (-v / 10) for v in ms_db)
    return lossy.Curve(name, "", "quality", tuple(range(n)), tuple(bpp), tuple(psnr), ms, ms_db, (0.0,) * n,
                       (0.0,) * n, (1,) * n, (0,) * n, estimate=estimate)


# --- rates, decodes, averaging ---------------------------------------------------------------------

def test_bpp_comes_from_the_real_bytes():
    img = _photo(24, 40, 0)
    codec = _jpeg()
    res = lossy.run_lossy([ImageSet("s", (img,), ("a.png",))], [codec], progress=False, warmup=False)
    assert [r.setting for r in res.rows] == [20, 50, 80]
    for r in res.rows:
        data = codec.encode(img, r.setting)
        assert data[:2] == b"\xff\xd8"  # a whole JPEG file
        assert r.bytes == len(data) and r.bpp == pytest.approx(8 * len(data) / (24 * 40))
        assert not r.estimate and r.error is None and r.psnr > 15 and r.ms_ssim is None
    assert res.rows[0].bytes < res.rows[1].bytes < res.rows[2].bytes


def test_every_decode_is_checked_and_a_failure_is_a_row():
    good = _jpeg()

    def crop_16_wide(data):  # wrong only on 16-px-wide images: the availability probe (72 wide) passes
        out = good.decode(data)
        return out[:, :-1] if out.shape[1] == 16 else out

    half = lossy.LossyCodec("Cropped", (50,), good.encode_fn, crop_16_wide, setting_name="q")
    always = lossy.LossyCodec("Float", (50,), good.encode_fn, lambda d: good.decode(d) / 255, setting_name="q")
    res = lossy.run_lossy([ImageSet("s", (_photo(16, 16, 1),), ("a.png",))], [half, always, good], progress=False)
    (bad,) = [r for r in res.rows if r.codec == "Cropped"]
    assert bad.error.startswith("decode: ValueError: decoded to shape (16, 15, 3)") and bad.psnr is None
    assert bad.bytes is not None  # the file was written; only its decode is wrong
    assert all(r.error is None for r in res.rows if r.codec == "JPEG-420")
    assert "dtype float64" in res.unavailable["Float"]  # a codec broken everywhere fails its probe: skipped


def test_curves_average_per_setting_like_compressai():
    row = lambda image, setting, bpp, psnr, ms, error=None: lossy.LossyRow(  # noqa: E731
        image, "s", "C", setting, 200, 200, False, None if error else 100, bpp, psnr, ms,
        None if ms is None else -10 * np.log10(1 - ms), 0.1, 0.2, error)
    codec = lossy.LossyCodec("C", (1, 2), lambda i, s: b"", lambda d: d, description="test codec")
    rows = (row("a", 1, 0.2, 30.0, 0.90), row("b", 1, 0.4, 34.0, 0.96),
            row("a", 2, 1.0, 40.0, 0.99), row("b", 2, None, None, None, error="decode: ValueError: x"))
    res = lossy.LossyResults((("s", 2, ""),), (codec,), rows, {}, (), "t", 1.0)
    (c,) = lossy.curves(res)
    assert c.bpp == pytest.approx((0.3, 1.0)) and c.psnr == pytest.approx((32.0, 40.0))
    assert c.ms_ssim == pytest.approx((0.93, 0.99))
    assert c.ms_ssim_db[0] == pytest.approx(-10 * np.log10(1 - 0.93))  # dB of the mean, as CompressAI plots
    assert c.num_images == (2, 1) and c.num_failed == (0, 1)


def test_small_images_get_null_ms_ssim_and_one_note():
    big, small = _photo(168, 172, 2), _photo(32, 32, 3)
    res = lossy.run_lossy([ImageSet("s", (big, small), ("big.png", "small.png"))], [_jpeg((60,))],
                          progress=False, warmup=False)
    by = {r.image: r for r in res.rows}
    assert 0.5 < by["big.png"].ms_ssim < 1 and by["big.png"].ms_ssim_db > 3
    assert by["small.png"].ms_ssim is None and by["small.png"].ms_ssim_db is None
    assert len(res.notes) == 1 and "1 of 2 images" in res.notes[0]
    (c,) = lossy.curves(res)
    assert c.ms_ssim == (None,)  # not a mean over a subset of the images


def test_grayscale_images_are_refused_in_one_line():
    gray = np.zeros((8, 8, 1), np.uint8)
    with pytest.raises(EvalError, match=r"s/g.png: grayscale image"):
        lossy.run_lossy([ImageSet("s", (gray,), ("g.png",))], [_jpeg()], progress=False)


# --- skips and estimates ---------------------------------------------------------------------------

def test_missing_codec_library_is_skipped_with_a_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # `import pillow_heif` now raises ImportError
    (hevc,) = lossy.classical_lossy_codecs(["hevc-444"])
    reason = lossy.unavailable_reason(hevc)
    assert reason.startswith("library not installed") and "pillow_heif" in reason
    res = lossy.run_lossy([ImageSet("s", (_photo(16, 16, 4),), ("a.png",))], [_jpeg(), hevc], progress=False)
    assert res.unavailable == {"HEVC-444": reason}
    assert {r.codec for r in res.rows} == {"JPEG-420"}
    assert [c.name for c in lossy.curves(res)] == ["JPEG-420"]
    table = lossy_report.format_lossy_table(res, lossy.curves(res))
    assert f"skipped: HEVC-444: {reason}" in table.splitlines()


def test_estimate_codec_is_labelled_and_has_no_bytes():
    def estimate(img, bits_per_pixel):
        return lossy.Estimate(bits=bits_per_pixel * img.shape[0] * img.shape[1], decoded=img // 2 * 2)

    ideal = lossy.LossyCodec("iREC ideal", (0.25, 0.5), estimate_fn=estimate, setting_name="bpp target")
    res = lossy.run_lossy([ImageSet("s", (_photo(16, 24, 5),), ("a.png",))], [ideal], progress=False)
    assert [(r.bytes, r.bpp, r.estimate, r.decode_s) for r in res.rows] == [(None, 0.25, True, None),
                                                                            (None, 0.5, True, None)]
    (c,) = lossy.curves(res)
    entry = lossy_report.compressai_entry(c)
    assert entry["estimate"] is True and "estimate" in entry["description"]
    assert entry["results"]["bpp"] == [0.25, 0.5] and entry["results"]["decoding_time"] == [None, None]
    with pytest.raises(ValueError):
        lossy.LossyCodec("both", (1,), lambda i, s: b"", lambda d: d, estimate_fn=estimate)


# --- BD figures ------------------------------------------------------------------------------------

_BPP = (0.1, 0.2, 0.4, 0.8, 1.6)
_PSNR = (26.0, 28.5, 31.5, 34.0, 37.5)
_MS_DB = (9.0, 11.0, 13.5, 16.0, 19.0)


def test_bd_of_a_curve_against_itself_is_zero():
    (row,) = lossy_report.bd_table([_curve("A", _BPP, _PSNR, _MS_DB)], ["A"], "A")
    assert row.error is None and row.method == "akima"
    assert row.bd_rate == pytest.approx(0, abs=1e-9) and row.bd_psnr == pytest.approx(0, abs=1e-9)
    assert row.bd_rate_ms_ssim == pytest.approx(0, abs=1e-9)


def test_half_the_bits_at_every_quality_is_minus_fifty_percent():
    anchor = _curve("A", _BPP, _PSNR, _MS_DB)
    half = _curve("half", [b / 2 for b in _BPP], _PSNR, _MS_DB, estimate=True)
    up = _curve("up", _BPP, [p + 1 for p in _PSNR])
    rows = lossy_report.bd_table([anchor, half, up], ["A"], "half") + lossy_report.bd_table([anchor, up], ["A"],
                                                                                              "up")
    assert rows[0].bd_rate == pytest.approx(-50.0) and rows[0].bd_rate_ms_ssim == pytest.approx(-50.0)
    assert rows[0].bd_psnr > 0 and rows[0].test_estimate
    assert rows[1].bd_psnr == pytest.approx(1.0) and rows[1].bd_rate < 0
    assert rows[1].bd_rate_ms_ssim is None and rows[1].error is None  # no MS-SSIM: n/a, not an error


def test_bd_problems_are_row_errors_not_exceptions():
    anchor = _curve("A", _BPP, _PSNR)
    bumpy = _curve("bumpy", _BPP, (26.0, 29.0, 28.0, 34.0, 37.0))
    short = _curve("short", _BPP[:3], _PSNR[:3])
    far = _curve("far", [b * 1000 for b in _BPP], [p + 60 for p in _PSNR])
    rows = [r for name in ("bumpy", "short", "far", "absent")
            for r in lossy_report.bd_table([anchor, bumpy, short, far], ["A"], name)]
    assert "not monotone" in rows[0].error and rows[0].bd_rate is None
    assert "3 PSNR points, BD needs 4" in rows[1].error
    assert "do not overlap" in rows[2].error and rows[2].bd_rate is None and rows[2].bd_psnr is None
    assert "no curve named 'absent'" in rows[3].error


def test_reference_curves_ship_with_their_source():
    refs = lossy_report.reference_curves()
    assert [c.name for c in refs] == ["bmshj2018-hyperprior (MSE)", "BPG 4:4:4"]
    for c in refs:
        assert c.source["repo"] == "InterDigitalInc/CompressAI" and len(c.source["commit"]) == 40
        assert c.source["path"].startswith("results/image/kodak/") and c.source["dataset"] == "Kodak"
        assert len(c.bpp) == len(c.psnr) == len(c.ms_ssim) == 8 and list(c.bpp) == sorted(c.bpp)
    # DESIGN.md's anchor: the MSE hyperprior reaches about 33 dB at 0.5 bpp on Kodak.
    assert np.interp(0.5, refs[0].bpp, refs[0].psnr) == pytest.approx(33.06, abs=0.1)


# --- eval.py --lossy end to end --------------------------------------------------------------------

def _write_pngs(folder, images):
    os.makedirs(folder, exist_ok=True)
    for name, img in images.items():
        Image.fromarray(img).save(os.path.join(folder, name))


def test_eval_lossy_writes_compressai_files_rows_table_and_plots(tmp_path, capsys):
    _write_pngs(tmp_path / "imgs", {"a.png": _photo(24, 32, 6), "b.png": _photo(32, 24, 7)})
    out = tmp_path / "out"
    rc = eval_cli.main(["--lossy", "--images", str(tmp_path / "imgs"), "--out", str(out), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    doc = json.loads((out / "lossy_results.json").read_text())
    ran = [n for n in lossy.LOSSY_NAMES if n not in doc["unavailable"]]
    assert {"JPEG-420", "JPEG-444", "WebP"} <= set(ran)  # Pillow's own codecs always run
    assert all(doc["unavailable"][n] for n in doc["unavailable"])
    for name in ran:
        entry = json.loads((out / "compressai" / f"{name}.json").read_text())
        assert entry["name"] == name and isinstance(entry["description"], str) and entry["estimate"] is False
        r = entry["results"]
        assert set(r) == {"bpp", "psnr-rgb", "ms-ssim", "ms-ssim-db", "encoding_time", "decoding_time"}
        settings = lossy.classical_lossy_codecs([name])[0].settings
        assert entry["settings"] == list(settings) and all(len(v) == len(settings) for v in r.values())
        assert r["ms-ssim"] == [None] * len(settings)  # 24x32 images: too small for MS-SSIM
        assert all(b > 0 for b in r["bpp"]) and all(p > 10 for p in r["psnr-rgb"])
        assert f"\n{name}" in printed
    with open(out / "lossy_rows.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * sum(len(lossy.classical_lossy_codecs([n])[0].settings) for n in ran)
    assert {r["image"] for r in rows} == {"a.png", "b.png"}
    jpeg = [r for r in rows if r["codec"] == "JPEG-420" and r["setting"] == "45" and r["image"] == "a.png"]
    assert float(jpeg[0]["bpp"]) == pytest.approx(8 * int(jpeg[0]["bytes"]) / (24 * 32))
    assert [r["test"] for r in doc["bd"]] == [n for n in ran if n != "JPEG-420"]
    assert all(r["anchor"] == "JPEG-420" for r in doc["bd"])
    assert "Bjontegaard deltas" in (out / "lossy_table.txt").read_text()
    assert "MS-SSIM is null for 2 of 2 images" in printed
    for plot in ("rd_psnr", "rd_psnr_logx", "rd_ms_ssim_db", "rd_ms_ssim_db_logx"):
        assert (out / f"{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, message", [
    (["--images", "{tmp}/nowhere"], "does not exist"),
    (["--images", "{tmp}/empty"], "no *.png files"),
    (["--images", "{tmp}/gray"], "grayscale image"),
    (["--images", "{tmp}/broken"], "not an image file"),
    (["--images", "{tmp}/imgs", "--codecs", "JPEG-420,FLIF"], "unknown lossy codec(s) FLIF"),
    (["--images", "{tmp}/imgs", "--lossy-model", "{tmp}/nowhere"], "--lossy-model {tmp}/nowhere: model"),
    (["--images", "{tmp}/imgs", "--ablation", "--lossy-model", "{tmp}/nowhere"], "--lossy-model {tmp}/nowhere"),
    (["--images", "{tmp}/imgs", "--ablation", "--grid", "coder"],
     "--grid coder is not a lossy ablation grid (known: default, small)"),
    (["--images", "{tmp}/imgs", "--ablation", "--final-choices", "1"], "--final-choices do(es) not apply"),
    (["--images", "{tmp}/imgs", "--ablation", "--lossy-model", "a", "--lossy-model", "b"], "one --lossy-model"),
    (["--images", "{tmp}/imgs", "--bd-anchor", "PNG"], "unknown BD anchor 'PNG'"),
    (["--images", "{tmp}/imgs", "--model", "x"], "--lossy does not use --model"),
])
def test_eval_lossy_bad_input_is_one_line_and_nonzero(tmp_path, capsys, argv, message):
    os.makedirs(tmp_path / "empty")
    _write_pngs(tmp_path / "gray", {"g.png": np.zeros((8, 8), np.uint8)})
    _write_pngs(tmp_path / "imgs", {"a.png": _photo(8, 8, 8)})
    os.makedirs(tmp_path / "broken")
    (tmp_path / "broken" / "x.png").write_bytes(b"not a png")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    rc = eval_cli.main(["--lossy", *argv, "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and message.replace("{tmp}", str(tmp_path)) in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("eval.py: error: ")


def test_lossy_model_needs_lossy(capsys):
    assert eval_cli.main(["--suite", "quick", "--lossy-model", "x"]) == 2
    assert capsys.readouterr().err == "eval.py: error: --lossy-model only applies with --lossy\n"
    assert eval_cli.main(["--ablation", "--refine", "3"]) == 2
    assert capsys.readouterr().err.startswith("eval.py: error: --refine applies to the lossless benchmark and")


def test_refine_that_the_model_cannot_take_is_one_error_line(tmp_path, capsys, lossy_model_dir, irec_images):
    folder, _ = irec_images
    for extra in (["--ablation", "--grid", "small"], ["--codecs", "JPEG-420"]):
        rc = eval_cli.main(["--lossy", *extra, "--lossy-model", lossy_model_dir, "--refine", "4", "--images",
                            str(folder), "--out", str(tmp_path / "o"), "--no-progress", "--no-plots"])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("eval.py: error: --refine: model 'gvae-tiny-test' does not say the beta")
        assert len(err.strip().splitlines()) == 1
        rc = eval_cli.main(["--lossy", *extra, "--lossy-model", lossy_model_dir, "--feedback", "4", "--images",
                            str(folder), "--out", str(tmp_path / "o"), "--no-progress", "--no-plots"])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("eval.py: error: --feedback: model 'gvae-tiny-test' does not say the beta")
        assert len(err.strip().splitlines()) == 1
    assert eval_cli.main(["--suite", "quick", "--feedback", "3"]) == 2  # the lossless benchmark has no feedback
    assert capsys.readouterr().err.startswith("eval.py: error: --feedback applies to the lossy")


# --- iREC: the ideal estimate, skips, ordering, the coded-vs-ideal gap --------------------------------

def test_ideal_report_codes_tiles_independently_and_stays_below_the_file(lossy_model_dir):
    from irec_jax import lossy as lossy_codec

    img = _photo(64, 96, 9)
    bits, decoded = lossy_codec.ideal_report(img, model=lossy_model_dir)
    assert decoded.dtype == np.uint8 and decoded.shape == img.shape and bits > 0
    assert lossy_codec.ideal_report(img, model=lossy_model_dir)[0] == bits  # fixed key: deterministic
    # Tiles of 64: 64x64 and 64x32 (edge-padded to 64x64, cropped after), each coded on its own.
    tiled_bits, tiled = lossy_codec.ideal_report(img, model=lossy_model_dir, tile=64)
    left = lossy_codec.ideal_report(img[:, :64], model=lossy_model_dir)
    right = lossy_codec.ideal_report(lossy_codec._pad_tile(img[:, 64:]), model=lossy_model_dir)
    assert tiled_bits == pytest.approx(left[0] + right[0], rel=1e-9) and tiled_bits != pytest.approx(bits)
    np.testing.assert_array_equal(tiled, np.concatenate([left[1], right[1][:, :32]], axis=1))
    # A real file spends more than the ideal coder (about 10x on this random tiny model).
    assert 8 * len(lossy_codec.compress(img, model=lossy_model_dir)) > bits
    with pytest.raises(ImageError, match=">= 64 pixels"):
        lossy_codec.ideal_report(img[:40], model=lossy_model_dir)


def test_skipped_images_are_one_note_and_points_follow_the_measured_bpp():
    rate = {"small": 0.5, "big": 2.0, "mid": 1.0}  # bits per pixel of each "model"

    def estimate(img, setting):
        return lossy.Estimate(rate[setting] * img.shape[0] * img.shape[1], img)

    skip = lambda img: "too small" if min(img.shape[:2]) < 64 else None  # noqa: E731
    codec = lossy.LossyCodec("M", ("big", "small", "mid"), estimate_fn=estimate, setting_name="model", skip=skip,
                             order_by_bpp=True)
    images = (_photo(64, 70, 1), _photo(32, 32, 2), _photo(70, 64, 3), _photo(16, 80, 4))
    sets = [ImageSet("s", images, ("a", "b", "c", "d"))]
    res = lossy.run_lossy(sets, [codec, _jpeg((50,))], progress=False)
    assert {r.image for r in res.rows if r.codec == "M"} == {"a", "c"}
    assert {r.image for r in res.rows if r.codec == "JPEG-420"} == {"a", "b", "c", "d"}
    assert res.notes[0] == "M: left out 2 of 4 images, too small (s/b, s/d)"
    (m, _) = lossy.curves(res)
    assert m.settings == ("small", "mid", "big") and m.bpp == (0.5, 1.0, 2.0) and m.num_images == (2, 2, 2)
    (only,) = [c for c in lossy.curves(res, {("s", "a")}) if c.name == "JPEG-420"]
    assert only.num_images == (1,)
    res = lossy.run_lossy([ImageSet("t", images[1:2], ("b",))], [codec], progress=False)
    assert res.unavailable == {"M": "every image left out (too small)"} and res.rows == ()


def test_gap_table_pairs_coded_and_ideal_model_by_model():
    coded = _curve("iREC", (0.30, 0.60), (28.0, 31.0))
    coded = dataclasses.replace(coded, settings=("q1", "q2"))
    ideal = dataclasses.replace(_curve("iREC ideal", (0.40, 0.25), (31.5, 29.0), estimate=True), settings=("q2", "q1"))
    g1, g2 = lossy_report.gap_table([coded, ideal])
    assert (g1.setting, g2.setting) == ("q1", "q2")
    assert g1.psnr_gap_db == pytest.approx(-1.0) and g1.bpp_ratio == pytest.approx(1.2)
    assert g2.psnr_gap_db == pytest.approx(-0.5) and g2.bpp_ratio == pytest.approx(1.5)
    # Against the ideal curve at the files' own bpp (linear in log bpp, extended past 0.40): the extra bits count.
    slope = 2.5 / np.log(0.40 / 0.25)
    assert g1.psnr_gap_equal_rate_db == pytest.approx(28.0 - (29.0 + slope * np.log(0.30 / 0.25)))
    assert g2.psnr_gap_equal_rate_db == pytest.approx(31.0 - (31.5 + slope * np.log(0.60 / 0.40)))
    assert lossy_report.ideal_psnr_at(0.25, ideal) == pytest.approx(29.0)
    assert lossy_report.ideal_psnr_at(0.3, dataclasses.replace(ideal, bpp=(0.4, None))) is None
    assert lossy_report.gap_table([coded]) == []
    text = lossy_report.format_lossy_table(lossy.LossyResults((("s", 1, ""),), (), (), {}, (), "t", 1.0),
                                           [coded, ideal], gaps=[g1, g2])
    assert "iREC coded vs iREC ideal" in text and "-1.00" in text and "1.500" in text and "-1.97" in text


# --- iREC in eval.py --lossy and the lossy ablation, end to end -------------------------------------

@pytest.fixture(scope="module")
def irec_images(tmp_path_factory):
    """Two 64x96 RGB photos and one 32x40 image (too small for the lossy models)."""
    folder = tmp_path_factory.mktemp("irec_imgs")
    images = {"a.png": _photo(64, 96, 11), "b.png": _photo(64, 96, 12), "tiny.png": _photo(32, 40, 13)}
    _write_pngs(folder, images)
    return folder, images


def test_eval_lossy_with_irec_writes_real_files_the_ideal_and_the_gap(tmp_path, capsys, lossy_model_dir,
                                                                     irec_images):
    from irec_jax import codec as irec_codec
    from irec_jax import lossy as lossy_codec
    from irec_jax import metrics

    folder, images = irec_images
    out = tmp_path / "out"
    rc = eval_cli.main(["--lossy", "--lossy-model", lossy_model_dir, "--images", str(folder), "--codecs",
                        "JPEG-420,WebP", "--out", str(out), "--no-progress", "--no-plots"])
    printed = capsys.readouterr()
    assert rc == 0 and "Traceback" not in printed.err
    coded = json.loads((out / "compressai" / "iREC.json").read_text())
    ideal = json.loads((out / "compressai" / "iREC_ideal.json").read_text())
    schema = {"bpp", "psnr-rgb", "ms-ssim", "ms-ssim-db", "encoding_time", "decoding_time"}
    for entry in (coded, ideal):
        assert set(entry["results"]) == schema and entry["settings"] == ["gvae-tiny-test"]
        assert entry["setting_name"] == "model" and entry["num_images"] == [2]
    assert coded["name"] == "iREC" and coded["estimate"] is False and coded["results"]["decoding_time"][0] > 0
    assert ideal["name"] == "iREC ideal" and ideal["estimate"] is True and "estimate" in ideal["description"]
    assert ideal["results"]["decoding_time"] == [None]
    with open(out / "lossy_rows.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["codec"] in ("iREC", "iREC ideal")]
    assert sorted((r["codec"], r["image"]) for r in rows) == [("iREC", "a.png"), ("iREC", "b.png"),
                                                               ("iREC ideal", "a.png"), ("iREC ideal", "b.png")]
    bpp = []
    for r in rows:
        img = images[r["image"]]
        if r["codec"] == "iREC":  # the real file: its size, and the score of what codec.decompress gives
            data = lossy_codec.compress(img, model=lossy_model_dir)
            assert int(r["bytes"]) == len(data) and float(r["bpp"]) == pytest.approx(8 * len(data) / (64 * 96))
            decoded = irec_codec.decompress(data, model=lossy_model_dir)
            assert float(r["psnr"]) == pytest.approx(metrics.psnr(img, decoded))
            bpp.append(float(r["bpp"]))
        else:
            bits, decoded = lossy_codec.ideal_report(img, model=lossy_model_dir)
            assert r["bytes"] == "" and float(r["bpp"]) == pytest.approx(bits / (64 * 96))
            assert float(r["psnr"]) == pytest.approx(metrics.psnr(img, decoded))
    assert coded["results"]["bpp"][0] == pytest.approx(np.mean(bpp))
    doc = json.loads((out / "lossy_results.json").read_text())
    (gap,) = doc["gap"]["rows"]
    assert gap["setting"] == "gvae-tiny-test" and gap["num_images"] == gap["num_images_ideal"] == 2
    assert gap["psnr_gap_equal_rate_db"] is None  # one rate point: no ideal curve to read at the files' bpp
    assert gap["psnr_gap_db"] == pytest.approx(coded["results"]["psnr-rgb"][0] - ideal["results"]["psnr-rgb"][0])
    assert gap["bpp_ratio"] == pytest.approx(coded["results"]["bpp"][0] / ideal["results"]["bpp"][0])
    assert gap["bpp_ratio"] > 1
    irec_bd = [r for r in doc["bd"] if r["test"] == "iREC"]
    assert [r["anchor"] for r in irec_bd] == ["JPEG-420", "WebP", "iREC ideal"]  # (no refinement: no third)
    assert all("has 1 PSNR points, BD needs 4" in r["error"] for r in irec_bd), irec_bd  # one model: no BD
    table = (out / "lossy_table.txt").read_text()
    assert "iREC coded vs iREC ideal" in table and "iREC ideal (estimate)" in table
    assert "BD iREC vs JPEG-420, WebP: BD-rate (PSNR): ValueError: iREC has 1 PSNR points" in table
    notes = [n for n in doc["notes"] if "left out" in n]
    assert notes == ["iREC and iREC ideal: left out 1 of 3 images, smaller than 64 px on a side: the lossy models "
                     f"need both sides >= 64 ({folder.name}/tiny.png)"]
    assert any("over the 2 images iREC coded, not all 3" in n for n in doc["notes"])
    assert table.strip() in printed.out


def test_lossy_ablation_small_grid_writes_its_table(tmp_path, capsys, lossy_model_dir, irec_images):
    folder, images = irec_images
    out = tmp_path / "abl"
    rc = eval_cli.main(["--ablation", "--lossy", "--lossy-model", lossy_model_dir, "--grid", "small", "--images",
                        str(folder), "--out", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((out / "lossy_ablation.json").read_text())
    table = (out / "lossy_ablation_table.txt").read_text()
    assert [(p["beams"], p["final_choices"], p["one_plus_epsilon"]) for p in doc["points"]] == [
        (4, 1, 1.0), (4, 1, 1.2), (4, 4, 1.0), (4, 4, 1.2)]
    assert all(p["error"] is None and p["num_ok"] == 2 for p in doc["points"])
    assert len(doc["rows"]) == 8 and {r["image"] for r in doc["rows"]} == {"a.png", "b.png"}
    for r in doc["rows"]:
        assert r["bpp"] == pytest.approx(8 * r["total_bytes"] / (64 * 96))
        assert r["gap_db"] == pytest.approx(r["psnr"] - r["ideal_psnr"])
        assert r["bpp_ratio"] == pytest.approx(r["bpp"] / r["ideal_bpp"])
    by = {(r["image"], r["one_plus_epsilon"], r["final_choices"]): r for r in doc["rows"]}
    for (image, ope, choices), r in by.items():  # the closest of 4 final beams does not lose to the first
        if choices == 4:
            assert r["psnr"] >= by[image, ope, 1]["psnr"] - 0.02  # (a ranking by a float preview may be off)
    assert "left out 1 of 3 images" in doc["notes"][0]
    assert table.startswith("Lossy iREC ablation: model gvae-tiny-test") and "gap dB" in table
    assert doc["model"]["refine_steps"] == 0 and "posteriors refined 0 steps" in table
    assert len([line for line in table.splitlines() if line.split()[:2] == ["0", "4"]]) == 4  # fb 0, B 4
    assert doc["model"]["feedback_steps"] == [0] and all(p["feedback_steps"] == 0 for p in doc["points"])


def test_lossy_ablation_takes_the_error_feedback_as_an_axis(tmp_path, capsys, irec_images):
    folder, _ = irec_images
    out = tmp_path / "abl_fb"  # the bundled middle quality: z1 of these photos has several blocks to feed back into
    rc = eval_cli.main(["--ablation", "--lossy", "--grid", "small", "--one-plus-epsilon", "1.0", "--refine", "2",
                        "--feedback", "0,2", "--images", str(folder), "--out", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((out / "lossy_ablation.json").read_text())
    assert [(p["feedback_steps"], p["beams"], p["final_choices"]) for p in doc["points"]] == [
        (0, 4, 1), (0, 4, 4), (2, 4, 1), (2, 4, 4)]
    assert doc["grid"]["feedback_steps"] == [0, 2] and doc["model"]["refine_steps"] == 2
    assert all(p["error"] is None and p["num_ok"] == 2 for p in doc["points"])
    assert len(doc["rows"]) == 8 and all(r["feedback_steps"] in (0, 2) for r in doc["rows"])
    rows = {(r["image"], r["feedback_steps"], r["final_choices"]): r for r in doc["rows"]}
    coded = {k: (r["total_bytes"], r["psnr"]) for k, r in rows.items()}
    assert any(coded[i, 0, c] != coded[i, 2, c] for i, _, c in rows), coded  # the feedback ran
    table = (out / "lossy_ablation_table.txt").read_text()
    assert table.splitlines()[3].split()[:3] == ["fb", "B", "choice"], table
    assert sorted(line.split()[0] for line in table.splitlines() if line.split()[1:2] == ["4"]) == ["0", "0", "2", "2"]


@pytest.mark.parametrize("value, message", [
    ("0,0", "give one or more distinct step counts"), ("-1", "feedback must be an integer number of steps"),
    ("2,x", "--feedback: 'x' is not an integer")])
def test_lossy_ablation_refuses_bad_feedback_axes(tmp_path, capsys, refinable_model_dir, irec_images, value, message):
    folder, _ = irec_images
    rc = eval_cli.main(["--ablation", "--lossy", "--lossy-model", refinable_model_dir, "--grid", "small",
                        "--feedback", value, "--images", str(folder), "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_the_lossy_benchmark_takes_one_feedback_value(tmp_path, capsys, refinable_model_dir, irec_images):
    folder, _ = irec_images
    rc = eval_cli.main(["--lossy", "--codecs", "JPEG-420", "--lossy-model", refinable_model_dir, "--feedback", "0,2",
                        "--images", str(folder), "--out", str(tmp_path / "o"), "--no-progress", "--no-plots"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("eval.py: error: --feedback '0,2': give a number of steps (a list only with "
                                      "--ablation --lossy)"), err


def test_the_lossy_benchmark_codes_with_the_effort_preset(tmp_path, capsys, refinable_model_dir, irec_images):
    from irec_jax import lossy as lossy_codec

    folder, images = irec_images
    out = tmp_path / "o"
    rc = eval_cli.main(["--lossy", "--codecs", "JPEG-420", "--lossy-model", refinable_model_dir, "--effort", "fast",
                        "--images", str(folder), "--out", str(out), "--no-progress", "--no-plots"])
    assert rc == 0, capsys.readouterr().err
    coded = json.loads((out / "compressai" / "iREC.json").read_text())
    fast = lossy_codec.EFFORTS["fast"]
    assert f"effort fast: omega {fast.omega:g}, epsilon 0, {fast.beams} beams" in coded["description"]
    assert f"refined per tile: gvae-tiny-beta {fast.refine} steps" in coded["description"]
    assert f"{lossy_codec.BLOCK_KL:g}-nat blocks" in coded["description"]
    assert f"steps of size {fast.feedback_schedule().lr:g})" in coded["description"]
    with open(out / "lossy_rows.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["codec"] == "iREC" and r["image"] == "a.png")
    assert int(row["bytes"]) == len(lossy_codec.compress(images["a.png"], model=refinable_model_dir, effort="fast"))
