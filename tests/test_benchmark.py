"""The benchmark harness (irec_jax.benchmark: rows, sets, runner, report, evaluate; eval.py): rows, failures,
exactness, outputs, clean errors."""

import dataclasses
import io
import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

from irec_jax.benchmark import suite as ev
from irec_jax.benchmark import report, rows, runner, sets
from irec_jax.benchmark.classical import classical_codecs
from irec_jax.benchmark.errors import EvalError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import eval as eval_cli  # noqa: E402  (the repo-root CLI)


def _images():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)
    gray = (np.arange(40, dtype=np.uint8).reshape(5, 8, 1) * 5).astype(np.uint8)
    return rgb, gray


def _set(name="tiny"):
    rgb, gray = _images()
    return sets.ImageSet(name, (rgb, gray), ("rgb.png", "gray.png"), "test images")


def _png_codec():
    return classical_codecs(["PNG"])[0]


def _raises_on_gray():
    png = _png_codec()

    def encode(img):
        if img.shape[2] == 1:
            raise RuntimeError("no gray here")
        return png.encode(img)

    return rows.codec_row("GrayFails", encode, png.decode, "fails on C=1")


def _off_by_one():
    png = _png_codec()

    def decode(data):
        out = png.decode(data).copy()
        out[0, 0, 0] ^= 1
        return out

    return rows.codec_row("OffByOne", png.encode, decode, "flips one bit on decode")


def _npz_set_codec():
    """A real set-level coder: every image in one compressed npz."""

    def encode_set(images):
        buf = io.BytesIO()
        np.savez_compressed(buf, *images)
        return buf.getvalue()

    def decode_set(data):
        with np.load(io.BytesIO(data)) as z:
            return [z[f"arr_{i}"] for i in range(len(z.files))]

    return rows.set_codec_row("NPZ-set", encode_set, decode_set, "numpy savez_compressed of the whole set")


def _codecs():
    return [_png_codec(), classical_codecs(["JPEG-LS"])[0], _raises_on_gray(), _off_by_one(), _npz_set_codec()]


@pytest.fixture(scope="module")
def results():
    return runner.run([_set("tiny"), _set("tiny2")], _codecs(), progress=False)


def _row(results, codec, image="rgb.png", set_name="tiny"):
    (row,) = [r for r in results.rows if r.codec == codec and r.image == image and r.set == set_name]
    return row


def test_every_image_and_codec_gets_a_row(results):
    image_rows = [r for r in results.rows if r.kind == "image"]
    assert len(image_rows) == 2 * 2 * 4  # sets x images x image codecs
    set_rows = [r for r in results.rows if r.kind == "set"]
    assert [r.set for r in set_rows] == ["tiny", "tiny2"]
    for r in image_rows:
        if r.error is None:
            assert r.bpd == pytest.approx(8 * r.bytes / (r.height * r.width * r.channels))
            assert r.encode_s >= 0 and r.decode_s >= 0


def test_classical_rows_are_exact_and_count_whole_files(results):
    rgb, _ = _images()
    row = _row(results, "PNG")
    assert row.exact and row.error is None
    assert row.bytes == len(_png_codec().encode(rgb))
    assert _row(results, "JPEG-LS", "gray.png").exact


def test_failure_on_one_image_is_recorded_and_run_goes_on(results):
    bad = _row(results, "GrayFails", "gray.png")
    assert not bad.exact and bad.bytes is None and bad.bpd is None
    assert "RuntimeError" in bad.error and "no gray here" in bad.error
    assert _row(results, "GrayFails", "rgb.png").exact  # same codec, next image, still ran
    assert _row(results, "OffByOne", "gray.png", "tiny2").bytes > 0  # later codecs and sets still ran


def test_differing_decode_is_marked_inexact(results):
    row = _row(results, "OffByOne")
    assert row.error is None and row.exact is False and row.bytes > 0
    assert "1 of" in row.detail and "differ" in row.detail


def test_set_row_covers_the_whole_set(results):
    row = _row(results, "NPZ-set", "<set: 2 images>")
    rgb, gray = _images()
    assert row.exact and row.num_images == 2 and row.dims == rgb.size + gray.size
    assert row.bpd == pytest.approx(8 * row.bytes / row.dims)


def test_summary_and_table_mark_failures_and_inexact(results):
    cells = {(c.codec, c.set): c for c in report.summarize(results)}
    gf = cells["GrayFails", "tiny"]
    assert gf.num_failed == 1 and gf.mean_bpd == pytest.approx(_row(results, "GrayFails").bpd)
    assert cells["OffByOne", "tiny"].num_inexact == 2
    png = cells["PNG", "tiny"]
    assert png.mean_bpd == pytest.approx(np.mean([_row(results, "PNG", i).bpd for i in ("rgb.png", "gray.png")]))
    table = report.format_table(results)
    assert "mean of per-image bits/dim" in table and "tiny (2)" in table and "tiny2 (2)" in table
    for name in ("PNG", "JPEG-LS", "GrayFails", "OffByOne", "NPZ-set"):
        assert name in table
    assert "(!1)" in table and "(x2)" in table and "(set)" in table
    assert "no gray here" in table  # the error text is shown, not hidden


def test_results_json_follows_compressai_schema(results, tmp_path):
    paths = report.write_outputs(results, str(tmp_path / "out"))
    with open(paths["results"]) as f:
        doc = json.load(f)
    assert isinstance(doc["name"], str) and isinstance(doc["description"], str)
    res = doc["results"]
    n = 5 * 2  # codecs x sets
    for key in ("codec", "set", "bpd", "bpd_total", "encoding_time", "decoding_time", "num_images", "num_failed",
                "num_inexact"):
        assert isinstance(res[key], list) and len(res[key]) == n, key
    assert all(isinstance(v, float) for v in res["bpd"] + res["encoding_time"] + res["decoding_time"])
    assert all(isinstance(v, str) for v in res["codec"] + res["set"])
    assert set(doc["codecs"]) == {"PNG", "JPEG-LS", "GrayFails", "OffByOne", "NPZ-set"}
    for name, entry in doc["codecs"].items():
        assert set(entry) == {"name", "description", "results"}
        assert entry["results"]["set"] == ["tiny", "tiny2"]
        assert len(entry["results"]["bpd"]) == 2
        with open(paths[f"compressai:{name}"]) as f:
            assert json.load(f) == entry
    rows = doc["rows"]
    assert len(rows) == len(results.rows)
    for r in rows:
        for key, types in (("image", str), ("set", str), ("codec", str), ("exact", bool),
                           ("bytes", (int, type(None))), ("bpd", (float, type(None))),
                           ("encode_s", (float, type(None))), ("decode_s", (float, type(None))),
                           ("error", (str, type(None)))):
            assert isinstance(r[key], types), (key, r[key])
    with open(paths["rows"]) as f:
        assert len(f.read().strip().splitlines()) == 1 + len(results.rows)
    for key in ("plot:mean_bpd", "plot:per_image", "plot:vs_reference", "table"):
        assert os.path.getsize(paths[key]) > 0
    with open(paths["plot:mean_bpd"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_batch_rows_group_by_shape_and_split_the_time():
    png = _png_codec()
    calls = []

    def encode_batch(images):
        calls.append([im.shape for im in images])
        return [png.encode(im) for im in images]

    rgb, gray = _images()
    batched = dataclasses.replace(png, name="PNG-batched", encode_batch_fn=encode_batch)
    image_set = sets.ImageSet("mixed", (rgb, gray, rgb, rgb, gray), tuple(f"{i}.png" for i in range(5)))
    res = runner.run([image_set], [png, batched], progress=False, warmup=False, batch=2)
    assert calls == [[rgb.shape] * 2, [rgb.shape], [gray.shape] * 2]  # one shape per batch, at most 2
    one = {r.image: r for r in res.rows if r.codec == "PNG"}
    for r in (r for r in res.rows if r.codec == "PNG-batched"):
        assert r.exact and r.bytes == one[r.image].bytes and r.encode_s is not None
    assert [r.image for r in res.rows if r.codec == "PNG-batched"] == list(image_set.ids)

    def broken(images):
        raise RuntimeError("batch exploded")

    res = runner.run([image_set], [dataclasses.replace(png, name="Broken", encode_batch_fn=broken)],
                     progress=False, warmup=False, batch=4)
    assert all(not r.exact and "batch exploded" in r.error for r in res.rows)
    with pytest.raises(EvalError, match="batch"):
        runner.run([image_set], [png], progress=False, batch=0)


def test_unavailable_row_is_reported_not_run():
    row = rows.codec_row("Nope", lambda img: b"", lambda b: None, unavailable="library missing")
    res = runner.run([_set()], [_png_codec(), row], progress=False)
    assert all(r.error == "unavailable: library missing" for r in res.rows if r.codec == "Nope")
    assert "n/a" in report.format_table(res) and "unavailable: Nope: library missing" in report.format_table(res)


def test_same_image_rules():
    rgb, gray = _images()
    assert runner.same_image(gray, gray[..., 0]) == (True, None)
    assert runner.same_image(gray, np.repeat(gray, 3, axis=2))[0]
    assert not runner.same_image(rgb, rgb.astype(np.int32))[0]
    assert "shape" in runner.same_image(rgb, rgb[:4])[1]


def test_extra_codecs_hook_plugs_in(monkeypatch):
    png = _png_codec()
    monkeypatch.setattr(ev, "extra_codecs",
                        lambda spec, refine=None, effort="default": [rows.codec_row(f"Model[{spec}]", png.encode,
                                                                                     png.decode)])
    built = ev.build_codecs(None, "m.ckpt")
    assert built[-1].name == "Model[m.ckpt]" and len(built) == 7
    assert [c.name for c in ev.build_codecs(["model[m.ckpt]", "PNG"], "m.ckpt")] == ["Model[m.ckpt]", "PNG"]

    def broken(spec, refine=None, effort="default"):
        raise OSError("no such model")

    monkeypatch.setattr(ev, "extra_codecs", broken)
    assert [c.name for c in ev.build_codecs(["PNG"], "x")] == ["PNG"]  # classical subsets still run
    with pytest.raises(EvalError, match="no such model"):
        ev.build_codecs(None, "x")


def test_effort_reaches_the_irec_row_and_bad_values_fail_first(capsys):
    from irec_jax.benchmark.model_rows import irec_row

    assert "effort best (images up to 128x128: 150 refinement steps, omega 6" in irec_row(effort="best").description
    assert "effort default" in irec_row().description
    with pytest.raises(EvalError, match="effort must be one of fast, default, best; got 'max'"):
        ev.build_codecs(None, "default", effort="max")
    assert eval_cli.main(["--ablation", "--effort", "best"]) == 2
    assert capsys.readouterr().err.startswith("eval.py: error: --effort does not apply to --ablation")
    assert eval_cli.main(["--lossy", "--suite", "quick", "--effort", "best"]) == 2
    assert capsys.readouterr().err == ("eval.py: error: --effort: lossy effort must be one of fast, default; "
                                       "got 'best'\n")


def test_bundled_sets_load():
    crops, photos = sets.bundled_sets()
    assert crops.name == "crops32" and len(crops) == 8 and all(im.shape == (32, 32, 3) for im in crops.images)
    assert photos.name == "photos64" and len(photos) == 4 and all(im.shape == (64, 64, 3) for im in photos.images)


def _write_pngs(folder):
    os.makedirs(folder / "sub", exist_ok=True)
    rgb, gray = _images()
    Image.fromarray(rgb).save(folder / "a.png")
    Image.fromarray(gray[..., 0]).save(folder / "sub" / "b.png")


def test_cli_folder_run_writes_outputs(tmp_path, capsys):
    _write_pngs(tmp_path / "imgs")
    out = tmp_path / "out"
    rc = eval_cli.main(["--images", f"mine={tmp_path / 'imgs'}", "--codecs", "png,JPEG-LS", "--out", str(out),
                        "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "mine (2)" in printed and "PNG" in printed and "JPEG-LS" in printed
    with open(out / "results.json") as f:
        doc = json.load(f)
    assert {r["image"] for r in doc["rows"]} == {"a.png", os.path.join("sub", "b.png")}
    assert all(r["exact"] for r in doc["rows"])
    assert (out / "mean_bpd.png").exists() and (out / "per_image_bpd.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["--images", "/nonexistent/folder"], "does not exist"),
    (["--images", "EMPTY"], "no *.png files"),
    (["--suite", "quick", "--codecs", "PNG,FLIF"], "unknown codec(s) FLIF"),
    ([], "nothing to evaluate"),
])
def test_cli_bad_input_is_one_clean_line(tmp_path, capsys, argv, message):
    (tmp_path / "empty").mkdir()
    argv = [str(tmp_path / "empty") if a == "EMPTY" else a for a in argv]
    rc = eval_cli.main(argv + ["--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith("eval.py: error:") and message in err


def test_tfds_not_prepared_fails_fast_without_download(tmp_path, capsys, monkeypatch):
    # tfds is never imported (so it cannot start a download): importing it here would fail.
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    rc = eval_cli.main(["--dataset", "cifar10", "--data-dir", str(tmp_path), "--limit", "3", "--out",
                        str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1
    assert "not prepared" in err and "tfds build cifar10" in err and str(tmp_path) in err
    assert not (tmp_path / "out").exists()


def test_tfds_prepared_dir_looks_at_the_disk_only(tmp_path):
    assert sets.tfds_prepared_dir("imagenet32", str(tmp_path)) is None
    version = tmp_path / "downsampled_imagenet" / "32x32" / "2.0.0"
    version.mkdir(parents=True)
    assert sets.tfds_prepared_dir("imagenet32", str(tmp_path)) is None  # no dataset_info.json yet
    (version / "dataset_info.json").write_text("{}")
    assert sets.tfds_prepared_dir("imagenet32", str(tmp_path)) == str(version)


def test_tfds_damaged_dataset_is_one_clean_line(tmp_path, capsys):
    version = tmp_path / "cifar10" / "3.0.2"
    version.mkdir(parents=True)
    (version / "dataset_info.json").write_text("{}")
    rc = eval_cli.main(["--dataset", "cifar10", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out"),
                        "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and "cannot read tfds dataset 'cifar10'" in err


def test_tfds_set_reads_prepared_data_through_tfds_source(tmp_path):
    import tensorflow_datasets as tfds

    version = tmp_path / "cifar10" / "3.0.2"
    version.mkdir(parents=True)
    (version / "dataset_info.json").write_text("{}")  # passes the on-disk check; mock_data serves the records
    with tfds.testing.mock_data(num_examples=5):
        image_set = sets.tfds_set("cifar10", "test", limit=3, data_dir=str(tmp_path), progress=False)
    assert image_set.name == "cifar10-test" and len(image_set) == 3
    assert all(im.shape == (32, 32, 3) and im.dtype == np.uint8 for im in image_set.images)
    res = runner.run([image_set], [_png_codec()], progress=False)
    assert all(r.exact for r in res.rows)


def test_unavailable_set_row_is_one_row():
    row = rows.set_codec_row("NoSet", lambda ims: b"", lambda b: [], unavailable="needs a model")
    res = runner.run([_set()], [row], progress=True)  # progress bars on: must not disturb the run
    (only,) = res.rows
    assert only.kind == "set" and only.num_images == 2 and only.error == "unavailable: needs a model"
    (cell,) = report.summarize(res)
    assert cell.mean_bpd is None and cell.unavailable == "needs a model"


def _fallback_row():
    """A codec with a fallback, like iREC: pretends its model coded every file in 1000 bytes and
    falls back (to PNG) on gray images."""
    png = _png_codec()

    def encode(img):
        data = png.encode(img)
        return rows.Coded(data, 1000, stored=img.shape[2] == 1)

    row = rows.codec_row("Fallback", encode, png.decode, "model with a stored-mode fallback")
    return dataclasses.replace(row, encode_batch_fn=lambda images: [encode(im) for im in images])


@pytest.mark.parametrize("batch", [1, 2])
def test_fallback_rows_report_the_model_rate_and_count_fallbacks(batch, tmp_path):
    res = runner.run([_set("tiny")], [_png_codec(), _fallback_row()], progress=False, batch=batch)
    mine = {r.image: r for r in res.rows if r.codec == "Fallback"}
    assert mine["gray.png"].stored and not mine["rgb.png"].stored
    for r in mine.values():
        assert r.exact and r.model_bytes == 1000 and r.model_bpd == pytest.approx(8000 / r.dims)
        assert r.bytes == _row(res, "PNG", r.image).bytes  # the file's bytes are what is counted
    assert _row(res, "PNG").model_bytes is None and _row(res, "PNG").stored is None
    cells = {c.codec: c for c in report.summarize(res)}
    fb = cells["Fallback"]
    assert fb.num_stored == 1 and fb.mean_bpd == cells["PNG"].mean_bpd
    assert fb.model_bpd == pytest.approx(np.mean([8000 / r.dims for r in mine.values()]))
    assert cells["PNG"].num_stored is None and cells["PNG"].model_bpd is None
    table = report.format_table(res)
    assert "model's own coding" in table and "(s1)" in table and "sN = N files fell back" in table
    doc = report.to_json(res)
    i = doc["results"]["codec"].index("Fallback")
    assert doc["results"]["num_stored"][i] == 1 and doc["results"]["model_bpd"][i] == pytest.approx(fb.model_bpd)
    assert doc["results"]["bpd"][i] == pytest.approx(fb.mean_bpd)  # existing keys kept
    assert doc["codecs"]["Fallback"]["results"]["num_stored"] == [1]
    paths = report.write_outputs(res, str(tmp_path), plots=False)
    json.load(open(paths["results"]))
    assert "model_bytes" in open(paths["rows"]).readline()


def test_irec_row_reports_its_files_and_model_rate():
    from irec_jax.benchmark.model_rows import irec_row

    photo = np.asarray(Image.open(os.path.join(ROOT, "irec_jax", "assets", "images", "kodim23_crop1_32.png")))
    flat = np.full_like(photo, 40)
    image_set = sets.ImageSet("two", (photo, flat), ("photo.png", "flat.png"))
    res = runner.run([image_set], [irec_row()], progress=False, warmup=False, batch=2)
    by = {r.image: r for r in res.rows}
    assert all(r.exact for r in res.rows)
    assert not by["photo.png"].stored and by["photo.png"].model_bytes == by["photo.png"].bytes
    assert by["flat.png"].stored and by["flat.png"].model_bytes > by["flat.png"].bytes
    assert report.summarize(res)[0].num_stored == 1
