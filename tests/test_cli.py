"""The irec command line: commands, outputs, and one-line errors with non-zero exits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from irec_jax import codec, imageio
from irec_jax.assets import bundled_images
from irec_jax.cli import main


@pytest.fixture(autouse=True)
def _no_compile_cache(monkeypatch):
    """In-process CLI calls must not switch on JAX's persistent cache for the test session."""
    monkeypatch.setenv("IREC_NO_CACHE", "1")


@pytest.fixture
def png(tmp_path) -> str:
    src = next(p for p in bundled_images() if p.endswith("sail_crop1_32.png"))
    dst = tmp_path / "in.png"
    shutil.copy(src, dst)
    return str(dst)


def _run(*args: str) -> int:
    return main(list(args))


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("irec: error: ")
    return err[0]


def test_compress_info_decompress(png, tmp_path, capsys):
    out, back = str(tmp_path / "x.irec"), str(tmp_path / "back.png")
    assert _run("compress", png, out) == 0
    text = capsys.readouterr().out
    assert "bits/dim" in text and f"posteriors refined, {codec.REFINE_STEPS} steps" in text  # a small image: refined by default
    assert _run("info", out) == 0
    text = capsys.readouterr().out
    assert "version 6, 32x32x3" in text and "coded streams" in text and "blocks" in text
    assert _run("info", out, "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["total_bytes"] == os.path.getsize(out) and info["format_version"] == 6
    assert _run("decompress", out, back, "--quiet") == 0
    assert capsys.readouterr().out == ""
    np.testing.assert_array_equal(imageio.read_image(back), imageio.read_image(png))
    assert sorted(os.listdir(tmp_path)) == ["back.png", "in.png", "x.irec"]  # no temp files left


def test_effort_option(png, tmp_path, capsys):
    """--effort picks a preset (fast: no refinement; best: Omega 6 in the header of a small image);
    --omega still overrides it; an unknown name is a usage error."""
    fast, best, mixed = (str(tmp_path / f"{n}.irec") for n in ("fast", "best", "mixed"))
    assert _run("compress", png, fast, "--effort", "fast") == 0
    assert "posteriors refined" not in capsys.readouterr().out
    assert _run("compress", png, best, "--effort", "best", "--no-fallback") == 0
    assert f"posteriors refined, {codec.EFFORTS['best'].refine[0]} steps" in capsys.readouterr().out
    assert _run("compress", png, mixed, "--effort", "best", "--omega", "3.5", "--refine", "1", "--no-fallback") == 0
    capsys.readouterr()
    assert _run("info", best, "--json") == 0 and json.loads(capsys.readouterr().out)["omega"] == 6.0
    assert _run("info", mixed, "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["omega"], info["epsilon"]) == (3.5, 0.1)
    for path in (fast, best, mixed):
        assert _run("decompress", path, path + ".png", "-q") == 0
        np.testing.assert_array_equal(imageio.read_image(path + ".png"), imageio.read_image(png))
    with pytest.raises(SystemExit) as e:
        _run("compress", png, str(tmp_path / "x.irec"), "--effort", "max")
    assert e.value.code == 2 and "invalid choice: 'max'" in capsys.readouterr().err


def test_stored_mode_is_announced_and_can_be_turned_off(tmp_path, capsys):
    src = str(tmp_path / "flat.png")
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(src)
    out, back = str(tmp_path / "x.irec"), str(tmp_path / "back.png")
    assert _run("compress", src, out) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "stored mode" in lines[0] and "model's coding was larger" in lines[0]
    size = os.path.getsize(out)
    assert f"{size:,} bytes" in lines[0] and lines[0].count(" bytes") == 2
    assert _run("info", out) == 0
    text = capsys.readouterr().out
    assert "30x20x3" in text and "mode        stored" in text and "Paeth" in text
    assert _run("info", out, "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["mode"] == "stored" and info["total_bytes"] == size
    assert _run("decompress", out, back, "-q", "--model", "/no/such/model") == 0  # no model needed
    np.testing.assert_array_equal(imageio.read_image(back), imageio.read_image(src))
    assert _run("compress", src, out, "--force", "--no-fallback") == 0
    assert "stored mode" not in capsys.readouterr().out and os.path.getsize(out) > size
    assert _run("info", out) == 0
    assert "mode        model" in capsys.readouterr().out


def test_settings_flags_and_other_output_formats(png, tmp_path):
    out = str(tmp_path / "x.irec")
    assert _run("compress", png, out, "--omega", "2.5", "--beams", "4", "-q") == 0
    for ext in ("bmp", "tiff", "ppm", "webp"):
        dst = str(tmp_path / f"back.{ext}")
        assert _run("decompress", out, dst, "-q") == 0
        np.testing.assert_array_equal(imageio.read_image(dst), imageio.read_image(png))


def test_outputs_get_the_permissions_of_any_new_file(png, tmp_path):
    out, back = tmp_path / "x.irec", tmp_path / "back.png"
    old = os.umask(0o027)
    try:
        assert _run("compress", png, str(out), "-q") == 0
        assert _run("decompress", str(out), str(back), "-q") == 0
    finally:
        os.umask(old)
    assert (out.stat().st_mode & 0o777) == (back.stat().st_mode & 0o777) == 0o640  # 0666 less the umask


def test_existing_output_is_kept_without_force(png, tmp_path, capsys):
    out = tmp_path / "x.irec"
    out.write_bytes(b"precious")
    assert _run("compress", png, str(out), "-q") == 1
    assert "--force" in _error_line(capsys)
    assert out.read_bytes() == b"precious"
    assert _run("compress", png, str(out), "-q", "--force") == 0
    assert out.read_bytes()[:2] == b"\xecR"


@pytest.mark.parametrize("case, match", [
    ("missing_input", "no such file"),
    ("not_an_image", "not an image"),
    ("truncated_irec", "truncated"),
    ("not_irec", "not an .irec file"),
    ("bad_omega", "omega"),
    ("bad_tile", "tile side"),
    ("rgba_transparent", "transparency"),
    ("sixteen_bit", "16-bit"),
    ("bad_model", "not found"),
    ("bad_extension", "extension"),
    ("missing_folder", "does not exist"),
    ("bad_refine", "refine must be"),
])
def test_errors_are_one_line_with_exit_1(case, match, png, tmp_path, capsys):
    good = str(tmp_path / "good.irec")
    assert _run("compress", png, good, "-q") == 0
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello, this is not an image at all")
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (4, 4), (1, 2, 3, 4)).save(rgba)
    deep = tmp_path / "deep.png"
    Image.fromarray(np.arange(16, dtype=np.uint16).reshape(4, 4) * 4000).save(deep)
    trunc = tmp_path / "t.irec"
    trunc.write_bytes(open(good, "rb").read()[:20])
    out = str(tmp_path / "out.any")
    args = {
        "missing_input": ["compress", str(tmp_path / "nope.png"), out],
        "not_an_image": ["compress", str(junk), out],
        "truncated_irec": ["decompress", str(trunc), str(tmp_path / "o.png")],
        "not_irec": ["decompress", str(junk), str(tmp_path / "o.png")],
        "bad_omega": ["compress", png, out, "--omega", "-1"],
        "bad_tile": ["compress", png, out, "--tile", "7"],
        "rgba_transparent": ["compress", str(rgba), out],
        "sixteen_bit": ["compress", str(deep), out],
        "bad_model": ["compress", png, out, "--model", str(tmp_path / "nomodel")],
        "bad_extension": ["decompress", good, str(tmp_path / "o.jpg")],
        "missing_folder": ["compress", png, str(tmp_path / "no" / "dir" / "x.irec")],
        "bad_refine": ["compress", png, out, "--refine", "-5"],
    }[case]
    assert _run(*args, "-q") == 1
    assert match in _error_line(capsys)
    assert not os.path.exists(out) and not os.path.exists(tmp_path / "o.png")
    leftovers = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert leftovers == []


def test_console_entry_point_and_module_exit_codes(png, tmp_path):
    out = str(tmp_path / "x.irec")
    r = subprocess.run([sys.executable, "-m", "irec_jax", "compress", png, out, "-q"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "irec_jax", "decompress", out, out],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip().startswith("irec: error:") and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([sys.executable, "-m", "irec_jax", "frobnicate"], capture_output=True, text=True)
    assert r.returncode == 2


def test_export_model_from_a_training_workdir(tmp_path, capsys):
    """A train.py checkpoint loads with --model, directly or exported to a model folder."""
    from irec_jax.configs import small
    from irec_jax.train import train_and_evaluate

    cfg = small.get_config()
    cfg.model.num_layers, cfg.model.det_channels, cfg.model.stoch_channels = 2, 8, 4
    cfg.train.num_steps, cfg.train.batch_size, cfg.train.crop_size = 2, 2, 16
    cfg.train.checkpoint_every, cfg.train.eval_every, cfg.train.progress_bar = 2, 0, False
    cfg.train.async_checkpoint = False
    img = imageio.read_image(next(p for p in bundled_images() if p.endswith("kodim23_64.png")))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    Image.fromarray(img).save(data_dir / "a.png")
    cfg.data.name, cfg.data.train_dir = "folder", str(data_dir)
    workdir = str(tmp_path / "work")
    train_and_evaluate(cfg, workdir)
    src = str(data_dir / "a.png")
    assert _run("compress", src, str(tmp_path / "a.irec"), "--model", workdir, "-q") == 0
    assert _run("export-model", workdir, str(tmp_path / "m"), "--name", "tiny", "-q") == 0
    assert _run("compress", src, str(tmp_path / "b.irec"), "--model", str(tmp_path / "m"), "-q",
                "--no-fallback") == 0  # a 2-step model: the stored mode would be smaller
    assert _run("decompress", str(tmp_path / "b.irec"), str(tmp_path / "b.png"), "-q") == 1
    assert "unknown model 'tiny'" in _error_line(capsys)
    assert _run("decompress", str(tmp_path / "b.irec"), str(tmp_path / "b.png"), "-q",
                "--model", str(tmp_path / "m")) == 0
    np.testing.assert_array_equal(imageio.read_image(str(tmp_path / "b.png")), img)
