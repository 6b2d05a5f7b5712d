"""The lossy codec end to end on a tiny GVAE: the integer decoder path, round trips that decode to
the encoder's own reconstruction (also in a fresh process on another CPU code path), and errors."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from irec_jax import cli, codec, lossy, metrics, modelzoo
from irec_jax.errors import FormatError, ImageError, ModelError
from irec_jax.models import gvae, gvae_integer

# The tiny random-weight lossy model: conftest.py's tiny_gvae_config, tiny_gvae_params and lossy_model_dir.


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data
    return np.ascontiguousarray(data.astronaut()[100:196, 180:310])  # 96 x 130: not a multiple of 64


def test_integer_path_follows_the_float_model(tiny_gvae_config, tiny_gvae_params, photo):
    cfg, float_params = tiny_gvae_config, tiny_gvae_params
    fm, im = gvae.GVAE(cfg), gvae_integer.IntegerGVAE(cfg)
    ip = gvae_integer.quantize(cfg, float_params)
    gvae_integer.check_params(cfg, ip)
    x = jnp.asarray(photo[None])
    acts = im.bottom_up(ip, x)
    si, sf = im.initial_state(ip, x.shape), fm.initial_state(float_params, x.shape)
    for layer in range(2):
        pi, pf = im.prior(ip, si, layer), fm.prior(float_params, sf, layer)
        assert np.max(np.abs(np.asarray(pi.loc - pf.loc))) < 0.02
        assert np.max(np.abs(np.asarray(pi.scale / pf.scale) - 1)) < 0.03
        # Exactly representable: loc on the 2^-10 grid, so the coder recovers the integers.
        np.testing.assert_array_equal(np.asarray(pi.loc) * 1024, np.round(np.asarray(pi.loc) * 1024))
        z = im.posterior(ip, si, acts, layer).loc
        si, sf = im.advance(ip, si, z, layer), fm.advance(float_params, sf, jnp.round(z * 1024) / 1024, layer)
    out, ref = np.asarray(im.reconstruct(ip, si)), np.asarray(fm.reconstruct(float_params, sf))
    assert out.dtype == np.uint8 and out.shape == (1, *photo.shape)
    assert np.mean(np.abs(out - np.round(ref))) < 0.5 and np.max(np.abs(out - ref)) < 3


def test_integer_state_is_coded_in_order(tiny_gvae_config, tiny_gvae_params, photo):
    cfg, float_params = tiny_gvae_config, tiny_gvae_params
    im = gvae_integer.IntegerGVAE(cfg)
    ip = gvae_integer.quantize(cfg, float_params)
    state = im.initial_state(ip, (1, *photo.shape))
    with pytest.raises(ValueError, match="before layer 0, not layer 1"):
        im.prior(ip, state, 1)
    with pytest.raises(ValueError, match="both layers"):
        im.reconstruct(ip, state)


def test_roundtrip_decodes_to_the_encoders_reconstruction(lossy_model_dir, photo):
    data, report = lossy.compress_report(photo, model=lossy_model_dir)
    out = codec.decompress(data, model=lossy_model_dir)  # checks the CRC of the encoder's reconstruction
    np.testing.assert_array_equal(out, lossy.decompress(data, model=lossy_model_dir))
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert report.total_bytes == len(data) and report.bpp == pytest.approx(8 * len(data) / (96 * 130))
    assert report.psnr == pytest.approx(metrics.psnr(photo, out), abs=1e-9)
    assert 0 < report.header_bytes < 40 and report.index_bits <= 8 * (len(data) - report.header_bytes)
    info = codec.read_info(data, model=lossy_model_dir)
    assert info["mode"] == "lossy" and info["epsilon"] == 0.0 and info["bpp"] == pytest.approx(report.bpp)
    # Deterministic: the same bytes again.
    assert lossy.compress(photo, model=lossy_model_dir) == data


def test_distortion_aware_final_choice_never_loses(lossy_model_dir, photo):
    cm = modelzoo.load_model(lossy_model_dir)
    base = lossy.lossy_settings(cm)
    _, first = lossy.compress_report(photo, model=cm, settings=dataclasses.replace(base, final_choices=1))
    _, best = lossy.compress_report(photo, model=cm, settings=base)
    assert best.mse <= first.mse


def test_tiles_code_independently_and_cover_the_image(lossy_model_dir):
    from skimage import data
    img = np.ascontiguousarray(data.astronaut()[:150, :200])
    data_, report = lossy.compress_report(img, model=lossy_model_dir, tile=128)
    assert report.tiles == 4  # 2 x 2 tiles; the edge tiles (22 and 72 px) are padded to 64
    assert codec.decompress(data_, model=lossy_model_dir).shape == img.shape


def test_decodes_in_a_fresh_process_on_the_sse42_code_path(lossy_model_dir, photo, tmp_path):
    data = lossy.compress(photo, model=lossy_model_dir)
    path = tmp_path / "x.irec"
    path.write_bytes(data)
    out_path = tmp_path / "x.npy"
    script = ("import numpy as np, sys; from irec_jax import codec; "
              f"np.save({str(out_path)!r}, codec.decompress(open({str(path)!r}, 'rb').read(), "
              f"model={lossy_model_dir!r}))")
    env = dict(os.environ, XLA_FLAGS="--xla_cpu_max_isa=SSE4_2", JAX_PLATFORMS="cpu")
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=300)
    np.testing.assert_array_equal(np.load(out_path), codec.decompress(data, model=lossy_model_dir))


def test_bad_inputs_get_clear_errors(lossy_model_dir, photo):
    with pytest.raises(ImageError, match="RGB"):
        lossy.compress(photo[..., 0], model=lossy_model_dir)
    with pytest.raises(ImageError, match=">= 64 pixels; this image is 60 x 130"):
        lossy.compress(photo[:60], model=lossy_model_dir)
    with pytest.raises(ValueError, match="multiple of 64"):
        lossy.compress(photo, model=lossy_model_dir, tile=96)
    with pytest.raises(ModelError, match="lossless model"):
        lossy.compress(photo, model="default")
    with pytest.raises(ModelError, match="is a lossy model"):
        codec.compress(photo, model=lossy_model_dir)
    with pytest.raises(ModelError, match="quality must be one of|no bundled lossy model"):
        lossy.compress(photo, quality=999)
    lossless = codec.compress(photo[:32, :32])
    with pytest.raises(FormatError, match="not a lossy file"):
        lossy.decompress(lossless)
    data = lossy.compress(photo, model=lossy_model_dir)
    with pytest.raises(FormatError):
        codec.decompress(data)  # the reader does not know the model
    corrupt = bytearray(data)
    corrupt[len(corrupt) // 2] ^= 0x55
    with pytest.raises(FormatError):
        codec.decompress(bytes(corrupt), model=lossy_model_dir)
    with pytest.raises(FormatError):
        codec.decompress(data[:-7], model=lossy_model_dir)


def test_cli_lossy_compress_decompress_info(lossy_model_dir, photo, tmp_path, capsys):
    from PIL import Image
    src, dst, back = tmp_path / "p.png", tmp_path / "p.irec", tmp_path / "back.png"
    Image.fromarray(photo).save(src)
    assert cli.main(["compress", str(src), str(dst), "--model", lossy_model_dir]) == 0
    assert "lossy (gvae-tiny-test)" in capsys.readouterr().out
    assert cli.main(["decompress", str(dst), str(back), "--model", lossy_model_dir]) == 0
    assert "the encoder's reconstruction" in capsys.readouterr().out
    np.testing.assert_array_equal(np.asarray(Image.open(back)),
                                  codec.decompress(dst.read_bytes(), model=lossy_model_dir))
    assert cli.main(["info", str(dst), "--model", lossy_model_dir]) == 0
    assert "lossy (iREC latents only)" in capsys.readouterr().out
    assert cli.main(["compress", str(src), str(tmp_path / "q.irec"), "--model", lossy_model_dir, "--no-fallback"]) == 1
    assert "--no-fallback applies to lossless coding only" in capsys.readouterr().err
    assert cli.main(["compress", str(src), str(tmp_path / "q.irec"), "--quality", "999"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("irec: error:") and err.count("\n") == 1


def test_a_lossless_file_flagged_lossy_is_refused_as_corrupt():
    from skimage import data
    lossless = bytearray(codec.compress(np.ascontiguousarray(data.astronaut()[:32, :32])))
    lossless[3] |= 0x80  # the lossy flag, on a file that names the lossless default model
    with pytest.raises(FormatError, match="flagged lossy but names the lossless model"):
        codec.decompress(bytes(lossless))
    with pytest.raises(FormatError, match="does not match its model"):
        codec.read_info(bytes(lossless))


# ---------------------------------------------------------------------------
# The bundled lossy models.

GOLDEN = os.path.join(os.path.dirname(__file__), "data", "codec")
REGEN = os.environ.get("IREC_REGEN_GOLDEN") == "1"


def test_bundled_lossy_models_are_listed_in_rate_order():
    qualities = modelzoo.lossy_qualities()
    assert len(qualities) >= 4
    models = [modelzoo.lossy_model(q) for q in qualities]
    assert all(cm.lossy and cm.defaults.epsilon == 0.0 for cm in models)
    known = [m.ref for m in modelzoo.known_models()]
    assert known[0] == modelzoo.load_model().ref and known[1:] == [cm.ref for cm in models]
    from irec_jax import imageio
    from irec_jax.assets import bundled_images
    img = imageio.read_image(next(p for p in bundled_images("photos") if p.endswith("monarch_64.png")))
    reports = [lossy.compress_report(img, quality=q)[1] for q in qualities]
    assert [r.bpp for r in reports] == sorted(r.bpp for r in reports)  # higher quality: more bits
    assert reports[-1].psnr > reports[0].psnr


def test_golden_lossy_file_of_a_bundled_model():
    """A change to the format, the coder or a bundled lossy model must fail here visibly.
    Regenerate deliberately with IREC_REGEN_GOLDEN=1 (and bump the format or model version)."""
    from irec_jax import imageio
    from irec_jax.assets import bundled_images
    img = imageio.read_image(next(p for p in bundled_images("photos") if p.endswith("kodim23_64.png")))
    quality = modelzoo.lossy_qualities()[1]
    path = os.path.join(GOLDEN, f"kodim23_64_lossy_q{quality}.irec")
    data = lossy.compress(img, quality=quality)
    if REGEN:
        with open(path, "wb") as f:
            f.write(data)
    with open(path, "rb") as f:
        golden = f.read()
    assert data == golden, "compressed bytes changed: format, coder or bundled lossy model changed"
    out = codec.decompress(golden)  # the header names the bundled model by position; CRC checked
    assert out.shape == img.shape and metrics.psnr(img, out) > 20.0


def test_the_reference_decoder_says_it_reads_lossless_files_only(lossy_model_dir, photo):
    from irec_jax import reference
    with pytest.raises(ValueError, match="lossless format only"):
        reference.decode(lossy.compress(photo, model=lossy_model_dir))
