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
from irec_jax.models import gvae, gvae_integer, refine

# The tiny random-weight lossy model: conftest.py's tiny_gvae_config, tiny_gvae_params, lossy_model_dir and
# refinable_model_dir.


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
    assert cli.main(["compress", str(src), str(tmp_path / "q.irec"), "--model", lossy_model_dir, "--effort", "best"]) == 1
    err = capsys.readouterr().err
    assert err == "irec: error: lossy effort must be one of fast, default; got 'best'\n"
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
# The search the golden file was written with: the pruning (an encoder-only setting, the default until
# 2026-11-30), Omega 4 (the models' file default, so the header omits it) and 10 beams, all compared by
# distortion (the encoder's defaults until 2026-12-01).
GOLDEN_SEARCH = {"prune_fraction": 1e-3, "omega": 4.0, "beams": 10, "final_choices": 10}


def test_bundled_lossy_models_are_listed_in_rate_order():
    qualities = modelzoo.lossy_qualities()
    assert len(qualities) >= 4
    models = [modelzoo.lossy_model(q) for q in qualities]
    assert all(cm.lossy and cm.defaults.epsilon == 0.0 for cm in models)
    known = [m.ref for m in modelzoo.known_models()]
    assert modelzoo.load_model().ref in known and all(cm.ref in known for cm in models)
    # Every file read lists the bundled models: they stay loaded (the cache once held fewer and reloaded them).
    assert all(a is b for a, b in zip(modelzoo.known_models(), modelzoo.known_models()))
    from irec_jax import imageio
    from irec_jax.assets import bundled_images
    img = imageio.read_image(next(p for p in bundled_images("photos") if p.endswith("monarch_64.png")))
    reports = [lossy.compress_report(img, quality=q)[1] for q in qualities]
    assert [r.bpp for r in reports] == sorted(r.bpp for r in reports)  # higher quality: more bits
    assert reports[-1].psnr > reports[0].psnr


def test_golden_lossy_file_of_a_bundled_model():
    """A change to the format, the coder or a bundled lossy model must fail here visibly.
    Regenerate deliberately with IREC_REGEN_GOLDEN=1 (and bump the format or model version).
    Without posterior refinement: its float optimization is the encoder's own business and may round
    differently on another CPU (the decoder does not depend on it; its own tests are below). The
    search is pinned (``GOLDEN_SEARCH``)."""
    from irec_jax import imageio
    from irec_jax.assets import bundled_images
    img = imageio.read_image(next(p for p in bundled_images("photos") if p.endswith("kodim23_64.png")))
    quality = modelzoo.lossy_qualities()[1]
    path = os.path.join(GOLDEN, f"kodim23_64_lossy_q{quality}.irec")
    cm = modelzoo.lossy_model(quality)
    settings = dataclasses.replace(lossy.lossy_settings(cm), **GOLDEN_SEARCH)
    data = lossy.compress(img, model=cm, refine=0, settings=settings)
    if REGEN:
        with open(path, "wb") as f:
            f.write(data)
    with open(path, "rb") as f:
        golden = f.read()
    assert data == golden, "compressed bytes changed: format, coder or bundled lossy model changed"
    out = codec.decompress(golden)  # the header names the bundled model by position; CRC checked
    assert out.shape == img.shape and metrics.psnr(img, out) > 20.0
    with open(os.path.join(GOLDEN, "v4", os.path.basename(path)), "rb") as f:
        old = f.read()  # format 4, as the previous release wrote it: same choices, same pixels
    assert old[2] == 4 and len(old) >= len(golden)
    np.testing.assert_array_equal(lossy.decompress(old), out)
    with open(os.path.join(GOLDEN, "v5", os.path.basename(path)), "rb") as f:
        old = f.read()  # format 5: every stream sealed by a whole word
    assert old[2] == 5 and len(old) > len(golden)
    np.testing.assert_array_equal(lossy.decompress(old), out)


def test_the_reference_decoder_says_it_reads_lossless_files_only(lossy_model_dir, photo):
    from irec_jax import reference
    with pytest.raises(ValueError, match="lossless format only"):
        reference.decode(lossy.compress(photo, model=lossy_model_dir))


def _mean_loss(cm, img, posteriors, keys=16) -> float:
    """The refinement's objective (beta D + KL bpp) of ``posteriors`` averaged over ``keys`` samples."""
    import jax
    beta, distortion = cm.rate_distortion
    shape = posteriors[0].loc.shape
    top = gvae_integer._top_prior_jit(cm.config, cm.params, tuple(shape))
    theta = tuple((q.loc, jnp.log(q.scale)) for q in posteriors)
    x = jnp.asarray(img[None], jnp.float32)
    return float(np.mean([gvae_integer._refine_loss(cm.config, cm.params, x, top, distortion, jnp.float32(beta),
                                                    theta, jax.random.key(100 + k)) for k in range(keys)]))


def test_refinement_lowers_the_models_own_loss_for_the_image():
    import jax
    from irec_jax import imageio
    from irec_jax.assets import bundled_images
    img = imageio.read_image(next(p for p in bundled_images("photos") if p.endswith("monarch_64.png")))
    cm = modelzoo.lossy_model(2)
    assert cm.rate_distortion == (cm.card["beta"], "mse")
    model, params = cm.model, cm.params
    acts = model.bottom_up(params, jnp.asarray(img[None]))
    amortized = tuple(gvae._posterior_jit(cm.config, acts, layer) for layer in range(2))
    refined = model.refine(params, img[None], acts, beta=cm.rate_distortion[0], steps=25, key=jax.random.key(0))
    before, after = _mean_loss(cm, img, amortized), _mean_loss(cm, img, refined)
    assert after < 0.98 * before, (before, after)  # 6.28 -> 6.05 when written
    assert all(q.loc.shape == a.loc.shape and bool(jnp.all(q.scale > 0)) for q, a in zip(refined, amortized))


def test_refined_files_decode_to_the_encoders_reconstruction(refinable_model_dir, photo, tmp_path):
    cm = modelzoo.load_model(refinable_model_dir)
    data, report = lossy.compress_report(photo, model=cm)
    assert report.refine_steps == lossy.REFINE_STEPS > 0
    assert lossy.compress(photo, model=cm) == data  # deterministic in one process
    plain, report0 = lossy.compress_report(photo, model=cm, refine=0)
    assert report0.refine_steps == 0 and plain != data
    calls = []  # the progress bar moves during refinement and feedback too and ends at its total
    lossy.compress(photo, model=cm, refine=3, progress=lambda done, total: calls.append((done, total)))
    # one tile: its 3 refinement steps, the feedback's steps before each part of z1 after the first, its layers
    total = 3 + (lossy.FEEDBACK_CHUNKS - 1) * lossy.FEEDBACK_STEPS + cm.model.num_layers
    assert [d for d, _ in calls] == list(range(total + 1)) and {t for _, t in calls} == {total}
    out = codec.decompress(data, model=cm)  # CRC of the encoder's reconstruction checked
    assert metrics.psnr(photo, out) == pytest.approx(report.psnr)
    bits, _ = lossy.ideal_report(photo, model=cm, refine=lossy.REFINE_STEPS)
    assert bits != lossy.ideal_report(photo, model=cm)[0]  # the ideal of what is coded, or of the network's own
    # Refinement is the encoder's business: the same file decodes on another CPU code path.
    path = tmp_path / "r.irec"
    path.write_bytes(data)
    script = ("import numpy as np; from irec_jax import codec; "
              f"np.save({str(tmp_path / 'r.npy')!r}, codec.decompress(open({str(path)!r}, 'rb').read(), "
              f"model={refinable_model_dir!r}))")
    env = dict(os.environ, XLA_FLAGS="--xla_cpu_max_isa=SSE4_2", JAX_PLATFORMS="cpu")
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=300)
    np.testing.assert_array_equal(np.load(tmp_path / "r.npy"), out)


def _bundled_photo(name: str = "monarch_64.png") -> np.ndarray:
    from irec_jax import imageio
    from irec_jax.assets import bundled_images
    return imageio.read_image(next(p for p in bundled_images("photos") if p.endswith(name)))


def test_error_feedback_codes_z1_in_parts_that_decode_as_one_file():
    """With feedback, z1's blocks are coded in FEEDBACK_CHUNKS parts against posteriors refined again in
    between: another (valid) file than without, which decodes to the encoder's reconstruction."""
    img, cm = _bundled_photo(), modelzoo.lossy_model(2)
    data, report = lossy.compress_report(img, model=cm, refine=10)
    assert report.feedback_steps == lossy.FEEDBACK_STEPS > 0 and lossy.FEEDBACK_CHUNKS > 1
    plain, report0 = lossy.compress_report(img, model=cm, refine=10, feedback=0)
    assert report0.feedback_steps == 0 and plain != data
    for blob, rep in ((data, report), (plain, report0)):
        out = codec.decompress(blob, model=cm)  # CRC of the encoder's reconstruction checked
        assert metrics.psnr(img, out) == pytest.approx(rep.psnr)
    # z1 of this photo has enough blocks for every part, so the feedback ran (the files differ above).
    from irec_jax import rec
    acts = cm.model.bottom_up(cm.params, jnp.asarray(img[None]))
    state = cm.model.initial_state(cm.params, (1,) + img.shape)
    q2 = cm.model.posterior(cm.params, state, acts, 0)
    state = cm.model.advance(cm.params, state, q2.loc, 0)
    q1, p1 = cm.model.posterior(cm.params, state, acts, 1), cm.model.prior(cm.params, state, 1)
    settings = lossy.lossy_settings(cm)
    assert rec.block_count(*(np.asarray(a)[0] for a in (q1.loc, q1.scale, p1.loc, p1.scale)),
                           settings) >= lossy.FEEDBACK_CHUNKS


def test_refine_rest_keeps_the_coded_dims_and_lowers_the_loss_of_the_rest():
    import jax
    from irec_jax.models.interface import Gaussian
    img, cm = _bundled_photo(), modelzoo.lossy_model(2)
    model, params = cm.model, cm.params
    acts = model.bottom_up(params, jnp.asarray(img[None]))
    state = model.initial_state(params, (1,) + img.shape)
    state = model.advance(params, state, model.posterior(params, state, acts, 0).loc, 0)
    q1, p1 = model.posterior(params, state, acts, 1), model.prior(params, state, 1)
    fixed = np.random.default_rng(0).random(q1.loc.shape) < 0.5
    z_fixed = np.asarray(q1.loc + q1.scale * jax.random.normal(jax.random.key(3), q1.loc.shape))
    beta = cm.rate_distortion[0]
    out = model.refine_rest(params, img[None], state, q1, fixed, z_fixed, beta=beta, steps=10, key=jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(out.loc)[fixed], np.asarray(q1.loc)[fixed])
    np.testing.assert_array_equal(np.asarray(out.scale)[fixed], np.asarray(q1.scale)[fixed])
    assert not np.array_equal(np.asarray(out.loc)[~fixed], np.asarray(q1.loc)[~fixed])
    # The schedule is the caller's (the lossy presets set its step size); refine.FEEDBACK by default.
    same = model.refine_rest(params, img[None], state, q1, fixed, z_fixed, beta=beta, steps=10,
                             key=jax.random.key(0), schedule=refine.FEEDBACK)
    np.testing.assert_array_equal(np.asarray(same.loc), np.asarray(out.loc))
    longer = model.refine_rest(params, img[None], state, q1, fixed, z_fixed, beta=beta, steps=10,
                               key=jax.random.key(0), schedule=dataclasses.replace(refine.FEEDBACK, lr=0.03))
    np.testing.assert_array_equal(np.asarray(longer.loc)[fixed], np.asarray(q1.loc)[fixed])
    assert not np.array_equal(np.asarray(longer.loc), np.asarray(out.loc))

    def loss(q):  # the objective of the free dims, averaged over 16 samples
        prior = Gaussian(p1.loc.astype(jnp.float32), p1.scale.astype(jnp.float32))
        theta = (q.loc, jnp.log(q.scale))
        x = jnp.asarray(img[None], jnp.float32)
        return float(np.mean([gvae_integer._refine_rest_loss(cm.config, params, x, prior, jnp.asarray(fixed),
                                                             jnp.asarray(z_fixed), "mse", jnp.float32(beta), theta,
                                                             jax.random.key(100 + k)) for k in range(16)]))
    assert loss(out) < 0.99 * loss(q1), (loss(q1), loss(out))  # 5.40 -> 5.33 when written
    assert loss(longer) < 0.99 * loss(q1), (loss(q1), loss(longer))


def test_refinement_settings_get_clear_errors(lossy_model_dir, refinable_model_dir, photo, tmp_path, capsys):
    assert lossy.refine_steps(modelzoo.load_model(lossy_model_dir), None) == 0  # no beta: no refinement
    with pytest.raises(ModelError, match="does not say the beta"):
        lossy.compress(photo, model=lossy_model_dir, refine=5)
    for bad in (-1, 2.5, True, 10_001):
        with pytest.raises(ValueError, match="refine must be an integer"):
            lossy.compress(photo, model=refinable_model_dir, refine=bad)
    with pytest.raises(ModelError, match="does not say the beta"):
        lossy.compress(photo, model=lossy_model_dir, feedback=5)
    for bad in (-1, 2.5, True, 10_001):
        with pytest.raises(ValueError, match="feedback must be an integer"):
            lossy.compress(photo, model=refinable_model_dir, feedback=bad)
    assert lossy.feedback_steps(modelzoo.load_model(refinable_model_dir), None, 0) == 0  # no refinement: none
    bad_card = dataclasses.replace(modelzoo.load_model(refinable_model_dir), card={"beta": "much"})
    with pytest.raises(ModelError, match="not a number"):
        lossy.compress(photo, model=bad_card)
    from PIL import Image
    src = tmp_path / "p.png"
    Image.fromarray(photo).save(src)
    for args in (["--model", refinable_model_dir, "--refine", "-3"], ["--refine", "-5"],
                 ["--model", lossy_model_dir, "--refine", "5"], ["--model", refinable_model_dir, "--feedback", "-1"],
                 ["--feedback", "3"]):
        assert cli.main(["compress", str(src), str(tmp_path / "o.irec"), *args]) == 1
        err = capsys.readouterr().err
        assert err.startswith("irec: error:") and err.count("\n") == 1, err
    assert not (tmp_path / "o.irec").exists()
    assert cli.main(["compress", str(src), str(tmp_path / "o.irec"), "--model", refinable_model_dir,
                     "--refine", "3", "--feedback", "2"]) == 0
    assert "posteriors refined, 3 steps; error feedback, 2 steps a part)" in capsys.readouterr().out
    assert cli.main(["compress", str(src), str(tmp_path / "f.irec"), "--model", refinable_model_dir,
                     "--refine", "0", "--feedback", "2"]) == 0
    assert " (error feedback, 2 steps a part)" in capsys.readouterr().out


def test_effort_presets_set_the_encoders_work_and_explicit_arguments_win(refinable_model_dir, photo, tmp_path,
                                                                        capsys):
    cm = modelzoo.load_model(refinable_model_dir)
    fast = lossy.EFFORTS["fast"]
    assert lossy.lossy_settings(cm, effort="default") == lossy.lossy_settings(cm)
    assert (lossy.refine_steps(cm, None), lossy.feedback_steps(cm, None, 1)) == (lossy.REFINE_STEPS,
                                                                                 lossy.FEEDBACK_STEPS)
    settings = lossy.lossy_settings(cm, effort="fast")
    assert (settings.omega, settings.beams, settings.final_choices) == (fast.omega, fast.beams, fast.final_choices)
    data, report = lossy.compress_report(photo, model=cm, effort="fast")
    assert (report.refine_steps, report.feedback_steps) == (fast.refine, fast.feedback) != (0, 0)
    assert codec.read_info(data, model=refinable_model_dir)["omega"] == fast.omega  # the file records it
    np.testing.assert_array_equal(codec.decompress(data, model=refinable_model_dir),  # CRC-checked
                                  lossy.decompress(data, model=cm))
    # The preset is only those values: the same bytes spelled out, and a preset of one's own is taken.
    assert data == lossy.compress(photo, model=cm, settings=settings, refine=fast.refine, feedback=fast.feedback,
                                  effort=lossy.LossyEffort(**{**dataclasses.asdict(fast), "name": "mine"}))
    assert fast.feedback_schedule().lr == fast.feedback_lr != refine.FEEDBACK.lr  # fewer, longer steps
    assert lossy.EFFORTS["default"].feedback_schedule() == refine.FEEDBACK
    assert f"of size {fast.feedback_lr:g}" in fast.describe()
    _, plain = lossy.compress_report(photo, model=cm, effort="fast", refine=0)
    assert (plain.refine_steps, plain.feedback_steps) == (0, 0)
    with pytest.raises(ValueError, match="lossy effort must be one of fast, default; got 'best'"):
        lossy.compress(photo, model=cm, effort="best")
    from PIL import Image
    src = tmp_path / "p.png"
    Image.fromarray(photo).save(src)
    assert cli.main(["compress", str(src), str(tmp_path / "f.irec"), "--model", refinable_model_dir,
                     "--effort", "fast"]) == 0
    assert (f"(posteriors refined, {fast.refine} steps; error feedback, {fast.feedback} steps a part)"
            in capsys.readouterr().out)
    assert (tmp_path / "f.irec").read_bytes() == data
