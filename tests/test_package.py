"""The package's front door: the top-level API and bad input at the CLI boundary."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image

from irec_jax import imageio
from irec_jax.assets import bundled_images


def test_top_level_api_imports_nothing_heavy_until_used():
    code = ("import sys, irec_jax\n"
            "assert 'jax' not in sys.modules and 'irec_jax.codec' not in sys.modules\n"
            "assert callable(irec_jax.compress) and callable(irec_jax.decompress)\n"
            "assert issubclass(irec_jax.FormatError, ValueError)\n"
            "try:\n    irec_jax.nope\nexcept AttributeError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "no attribute 'nope'" in out.stdout


def test_cli_parser_imports_no_jax():
    """``irec --help`` and argument errors build the parser only: its help texts (the presets' descriptions
    among them) must not pull in JAX, which costs seconds of start-up."""
    code = ("import sys\nfrom irec_jax import cli\ncli.build_parser().format_help()\n"
            "assert 'jax' not in sys.modules and 'optax' not in sys.modules, 'jax imported'\n")
    subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)


def test_top_level_round_trip():
    import irec_jax

    img = imageio.read_image(bundled_images("crops")[0])
    np.testing.assert_array_equal(irec_jax.decompress(irec_jax.compress(img)), img)


def test_decompression_bomb_is_one_line_error(tmp_path):
    """Pillow's DecompressionBombError is no OSError: it used to escape as a traceback."""
    path = tmp_path / "huge.png"
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        Image.new("L", (15000, 13000)).save(path)  # 195M pixels: over twice Pillow's limit
    finally:
        Image.MAX_IMAGE_PIXELS = old
    out = subprocess.run([sys.executable, "-m", "irec_jax", "compress", str(path), str(tmp_path / "x.irec")],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.startswith("irec: error:") and "too large" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.irec").exists()
