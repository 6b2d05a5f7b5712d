"""The lossless codec end to end: round trips, sizes, modes, models, golden files, errors."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from irec_jax import FormatError, codec, entropy, imageio, lossy, modelzoo, parallel, reference
from irec_jax.assets import bundled_images
from irec_jax.errors import ImageError, ModelError

GOLDEN = os.path.join(os.path.dirname(__file__), "data", "codec")
REGEN = os.environ.get("IREC_REGEN_GOLDEN") == "1"
# The encoder-only search settings the golden files were written with (the defaults until
# 2026-11-30): files do not store them, so later defaults may write other valid bytes.
GOLDEN_SEARCH = {"beams": 20, "prune_fraction": 1e-3}


def _photo(name: str = "monarch_64.png") -> np.ndarray:
    return imageio.read_image(next(p for p in bundled_images() if p.endswith(name)))


def _golden_image(name: str) -> np.ndarray:
    """The bundled image a golden file ``name`` codes ("x_gray.irec": x.png's green channel)."""
    img = _photo(name.split("_gray")[0].removesuffix(".irec") + ".png")
    return img[..., 1:2] if "_gray" in name else img


@pytest.fixture(scope="module")
def crops() -> list[np.ndarray]:
    return [imageio.read_image(p) for p in bundled_images("crops")[:5]]


def _roundtrip(img, **kw) -> tuple[bytes, np.ndarray]:
    data = codec.compress(img, **kw)
    out = codec.decompress(data, model=kw.get("model"))
    return data, out


def test_roundtrip_bundled_crops_bit_exact_and_smaller_than_raw(crops):
    for img in crops:
        data, out = _roundtrip(img)
        assert out.dtype == np.uint8 and out.shape == img.shape
        np.testing.assert_array_equal(out, img)
        assert len(data) < img.size  # under 8 bits per subpixel on a real photo


def test_roundtrip_64x64_photo_and_report_accounts_for_every_byte():
    img = _photo()
    data, report = codec.compress_report(img)
    np.testing.assert_array_equal(codec.decompress(data), img)
    assert report.total_bytes == len(data)
    assert report.header_bytes + report.stream_bytes == len(data)
    assert 0 < report.header_bytes < 16 and report.tiles == 1
    assert len(report.kl_nats) == modelzoo.load_model().model.num_layers
    # The stream is the exact codelengths and its end: a few bytes more at most (the range coder's
    # rounding and its last byte), a few bits less where its last symbols are implied by the padding.
    assert -16 < report.flush_bits <= 64
    # The index codelength is the indices' uniform code plus the step counts (tens of bits a layer).
    assert report.index_bits_ideal < report.index_bits < report.index_bits_ideal * 1.03 + 100 * len(report.kl_nats)
    assert report.bpd == pytest.approx(8 * len(data) / img.size)
    info = codec.read_info(data)
    assert (info["stream_bytes"], info["header_bytes"], info["tiles"]) == (report.stream_bytes,
                                                                          report.header_bytes, 1)


def test_tiles_decode_exactly_and_cost_their_seams():
    img = _photo("tulips_64.png")[:, :50]
    whole, rep_whole = codec.compress_report(img, fallback=False)
    tiled, rep = codec.compress_report(img, tile=16, fallback=False)
    assert rep.tiles == 4 * 4 and codec.read_info(tiled)["tiles"] == 16
    np.testing.assert_array_equal(codec.decompress(tiled), img)
    np.testing.assert_array_equal(reference.decode(tiled), img)
    # 16 small tiles each pay step counts, a flush and a tile length, and lose context at the seams.
    assert len(whole) < len(tiled) < 1.5 * len(whole)
    for bad in (0, 3, -2):
        with pytest.raises(ValueError, match="tile side"):
            codec.compress(img, tile=bad)


def test_final_choice_keeps_the_smallest_file_and_decodes_exactly():
    img = _photo("monarch_crop1_32.png")
    cm = modelzoo.load_model()
    _, default = codec.compress_report(img)
    data, rep = codec.compress_report(img, settings=dataclasses.replace(cm.defaults, final_choices=8))
    np.testing.assert_array_equal(codec.decompress(data), img)
    # every final beam costs the same index bits; choice 0 is the search's own pick
    assert rep.index_bits == default.index_bits and rep.residual_bits <= default.residual_bits
    with pytest.raises(ValueError, match="final_choices"):
        dataclasses.replace(cm.defaults, final_choices=0)


def test_layer_choices_code_the_choice_whose_rest_costs_least_and_decode_exactly(monkeypatch):
    """layer_choices compares every latent layer's best final beams but the last by the estimated
    cost of the rest of the file, and codes the cheapest; 1 is the search's own pick."""
    img = _photo("kodim23_crop1_32.png")
    cm = modelzoo.load_model()
    picks, rest_bits = [], codec._rest_bits

    def spy(pixels, cm_, states, acts, layer, epsilon):
        bits = rest_bits(pixels, cm_, states, acts, layer, epsilon)
        picks.append((layer, bits))
        return bits

    monkeypatch.setattr(codec, "_rest_bits", spy)
    settings = dataclasses.replace(cm.defaults, layer_choices=4)
    data, rep = codec.compress_report(img, settings=settings, fallback=False)
    np.testing.assert_array_equal(codec.decompress(data), img)
    # every layer but the last compared 4 choices, each by a finite estimate that depends on the choice
    assert [layer for layer, _ in picks] == list(range(cm.model.num_layers - 1))
    assert all(len(bits) == 4 and np.all(np.isfinite(bits)) and len(set(bits)) > 1 for _, bits in picks)
    assert any(np.argmin(bits) != 0 for _, bits in picks)  # the estimate overrode the search's pick
    monkeypatch.undo()
    default = codec.compress(img, fallback=False)
    assert data != default  # another path through the layers (sizes may tie)
    assert codec.compress(img, settings=dataclasses.replace(cm.defaults, layer_choices=1), fallback=False) == default


def test_rest_bits_is_the_later_layers_kl_then_the_pixels_codelength(crops):
    """Along the posterior means, the estimate after layer l - 1 is layer l's (1 + eps) KL in bits
    plus the estimate after layer l; after the last layer it is the pixels' exact codelength."""
    import jax.numpy as jnp

    from irec_jax.models.interface import gaussian_kl

    img, eps = crops[1], 0.1
    cm = modelzoo.load_model()
    model, params = cm.model, cm.params
    x = codec.model_input(img, cm.image_channels)
    acts = model.bottom_up(params, jnp.asarray(x))
    state = model.initial_state(params, x.shape)
    estimates, kl_bits = [], []
    for layer in range(model.num_layers):
        if layer:
            estimates += codec._rest_bits(img, cm, state, acts, layer - 1, eps)
        p, q = model.prior(params, state, layer), model.posterior(params, state, acts, layer)
        kl_bits.append(float(np.sum(gaussian_kl(q, p))) / np.log(2.0))
        state = model.advance(params, state, q.loc, layer)
    estimates += codec._rest_bits(img, cm, state, acts, model.num_layers - 1, eps)
    assert estimates[-1] == entropy.coded_bits(img, codec.pixel_params(model.likelihood(params, state), img.shape))
    for layer in range(1, model.num_layers):
        assert estimates[layer - 1] == pytest.approx((1 + eps) * kl_bits[layer] + estimates[layer], rel=1e-5)


def test_choices_are_checked_and_lossless_only():
    cm = modelzoo.load_model()
    for name in ("final_choices", "layer_choices"):
        for bad in (0, -1, 2.5, True):
            with pytest.raises(ValueError, match=name):
                dataclasses.replace(cm.defaults, **{name: bad})
    with pytest.raises(ValueError, match="layer_choices=2 applies to the lossless codec only"):
        lossy.lossy_settings(modelzoo.lossy_model(1), dataclasses.replace(cm.defaults, layer_choices=2))


def test_batch_with_choices_codes_each_image_as_compress_does(crops):
    cm = modelzoo.load_model()
    settings = dataclasses.replace(cm.defaults, final_choices=2, layer_choices=2)
    out = codec.compress_batch(crops[:3], settings=settings, fallback=False)
    for (data, _), img in zip(out, crops[:3]):
        assert data == codec.compress(img, settings=settings, fallback=False)
        np.testing.assert_array_equal(codec.decompress(data), img)


def test_batch_files_stand_alone_and_match_single_files(crops):
    out = codec.compress_batch(crops[:5])
    assert len(out) == 5
    for (data, rep), img in zip(out, crops[:5]):
        np.testing.assert_array_equal(codec.decompress(data), img)
        assert rep.total_bytes == len(data) and rep.tiles == 1
    singles = [codec.compress(img) for img in crops[:5]]
    # The same codes but for a rare float near-tie in the wider search: total size within 1%.
    assert abs(sum(len(d) for d, _ in out) / sum(map(len, singles)) - 1) < 0.01
    assert sum(d == s for (d, _), s in zip(out, singles)) >= 4


def test_batch_groups_on_threads_write_the_files_of_one_group(crops, monkeypatch):
    """On the CPU a batch is coded in groups on threads (one per core, >= BATCH_GROUP_MIN images each):
    the same files as one group, and the progress bar counts every group's steps to its total."""
    images = (crops * 4)[:16]
    assert codec.batch_groups(16) == max(1, min(parallel.usable_cores(), 2)) and codec.batch_groups(7) == 1
    monkeypatch.setattr(codec, "batch_groups", lambda count: 2)
    calls = []
    grouped = codec.compress_batch(images, refine=3, progress=lambda done, total: calls.append((done, total)))
    layers = modelzoo.load_model().model.num_layers
    assert calls[-1] == (2 * (layers + 3) + 1,) * 2 and [d for d, _ in calls] == list(range(len(calls)))
    monkeypatch.setattr(codec, "batch_groups", lambda count: 1)
    whole = codec.compress_batch(images, refine=3)
    assert sum(a == b for (a, _), (b, _) in zip(grouped, whole)) >= 15  # all but a rare float near-tie
    for (data, _), img in zip(grouped, images):
        np.testing.assert_array_equal(codec.decompress(data), img)


def test_refinement_by_default_on_small_images_smaller_files_and_bad_values(crops):
    """Posterior refinement is on by default for tiles up to REFINE_PIXELS; it changes the bytes, the
    files still decode exactly, and on these held-out crops they are smaller; bad steps fail first."""
    refined = [codec.compress_report(img) for img in crops[:4]]
    plain = [codec.compress_report(img, refine=0) for img in crops[:4]]
    assert all(r.refine_steps == codec.REFINE_STEPS and p.refine_steps == 0 for (_, r), (_, p) in zip(refined, plain))
    for (data, _), img in zip(refined, crops):
        np.testing.assert_array_equal(codec.decompress(data), img)
    assert sum(r.model_bytes for _, r in refined) < 0.99 * sum(p.model_bytes for _, p in plain)
    side = int(np.sqrt(codec.REFINE_PIXELS))
    assert codec.refine_steps(None, (side, side)) == codec.REFINE_STEPS
    assert codec.refine_steps(None, (side + 2, side)) == 0 and codec.refine_steps(7, (4000, 3000)) == 7
    for bad in (-1, 10_001, 2.5, True, "5"):
        with pytest.raises(ValueError, match="refine must be"):
            codec.compress(crops[0], refine=bad)
        with pytest.raises(ValueError, match="refine must be"):
            codec.compress_batch(crops[:2], refine=bad)


def test_effort_presets_set_refinement_and_the_coder_and_decode_exactly(crops):
    """effort="fast" does not refine; "best" refines longer and writes its Omega and epsilon in the
    header (small images 6 / 0.1, large ones 4 / 0.15 with 32 beams); explicit settings and refine win
    over the preset; the files decode exactly; an unknown effort fails before any work."""
    cm = modelzoo.load_model()
    img = crops[0]
    assert codec.compress_report(img, effort="fast")[1].refine_steps == 0
    data, rep = codec.compress_report(img, effort="best", fallback=False)
    assert rep.refine_steps == codec.EFFORTS["best"].refine[0] > codec.REFINE_STEPS
    info = codec.read_info(data)
    assert (info["omega"], info["epsilon"]) == (6.0, 0.1) and info["candidates"] == 735
    np.testing.assert_array_equal(codec.decompress(data), img)
    [(batch_data, batch_rep)] = codec.compress_batch([img], effort="best", fallback=False)
    assert batch_rep.refine_steps == rep.refine_steps and codec.read_info(batch_data)["omega"] == 6.0
    np.testing.assert_array_equal(codec.decompress(batch_data), img)

    small = codec.effort_settings(cm, img.shape, effort="best")
    assert (small.final_choices, small.layer_choices) == (16, 16)
    large = codec.effort_settings(cm, (500, 500, 3), effort="best")
    assert (large.omega, large.epsilon, large.beams, large.seed) == (4.0, 0.15, 32, cm.defaults.seed)
    assert (large.final_choices, large.layer_choices) == (1, 1)
    assert codec.refine_steps(None, (500, 500), "best") == codec.EFFORTS["best"].refine[1]
    assert codec.effort_settings(cm, (500, 500, 3), tile=64, effort="best").omega == 6.0  # its tiles are small
    assert codec.effort_settings(cm, (500, 500, 3)) == cm.defaults == codec.effort_settings(cm, (32, 32, 3), effort="fast")
    data, rep = codec.compress_report(img, effort="best", settings=cm.defaults, refine=2)
    assert rep.refine_steps == 2 and codec.read_info(data)["omega"] == cm.defaults.omega
    for bad in ("max", "", 3, None):
        with pytest.raises(ValueError, match="effort must be one of fast, default, best"):
            codec.compress(img, effort=bad)
        with pytest.raises(ValueError, match="effort must be one of"):
            codec.compress_batch([img], effort=bad)


def test_progress_counts_refinement_steps_layers_and_tiles(crops):
    """A progress bar moves during refinement too and ends exactly at its total."""
    calls = []
    codec.compress(crops[0], refine=3, tile=16, progress=lambda done, total: calls.append((done, total)))
    layers = modelzoo.load_model().model.num_layers
    total = 4 * (3 + layers + 1)  # four 16x16 tiles, each refined 3 steps, its layers, then the tile
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert [d for d, _ in calls] == list(range(total + 1)) and {t for _, t in calls} == {total}


@pytest.mark.parametrize("images, match", [
    ([], "at least one image"),
    ("mixed", "one shape"),
    ("big", "at most 1024"),
])
def test_batch_bad_input(images, match, crops):
    if images == "mixed":
        images = [crops[0], crops[0][:16]]
    elif images == "big":
        images = [np.zeros((1100, 4, 3), np.uint8)]
    with pytest.raises(ValueError, match=match):
        codec.compress_batch(images)


def test_same_input_same_bytes():
    img = _photo("sail_crop0_32.png")
    assert codec.compress(img) == codec.compress(img.copy())


@pytest.mark.parametrize("shape", [(1, 1, 3), (31, 33, 3), (257, 129, 3), (2, 1, 3), (5, 7, 1)])
def test_odd_sizes(shape):
    src = _photo("tulips_64.png")
    h, w, c = shape
    tiled = np.tile(src, (h // 64 + 1, w // 64 + 1, 1))[:h, :w]
    img = tiled[..., :1] if c == 1 else tiled
    data, out = _roundtrip(img, fallback=False)  # the model's padding path, whichever file is smaller
    assert out.shape == shape
    np.testing.assert_array_equal(out, img)
    assert entropy.unpack(data, [modelzoo.load_model().ref]).header.shape == shape
    np.testing.assert_array_equal(codec.decompress(codec.compress(img)), img)


def test_grayscale_array_and_png():
    rgb = _photo("kodim23_64.png")
    gray = np.round(rgb.astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.uint8)
    data, out = _roundtrip(gray, fallback=False)  # the model's gray path (stored mode is smaller here)
    assert out.shape == (64, 64, 1)
    np.testing.assert_array_equal(out[..., 0], gray)
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format="PNG")
    assert codec.compress(Image.open(io.BytesIO(buf.getvalue())), fallback=False) == data
    # One coded channel instead of three: far fewer residual bytes than the RGB image.
    assert len(data) < 0.6 * len(codec.compress(rgb, fallback=False))


def test_palette_one_bit_and_opaque_alpha_are_converted_without_loss():
    rgb = _photo("sail_crop1_32.png")
    pal = Image.fromarray(rgb).quantize(colors=64)
    expect = np.asarray(pal.convert("RGB"))
    np.testing.assert_array_equal(codec.decompress(codec.compress(pal)), expect)
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    assert codec.compress(Image.fromarray(rgba, "RGBA")) == codec.compress(rgb)
    bw = Image.fromarray(rgb[..., 0] > 128)
    out = codec.decompress(codec.compress(bw))
    np.testing.assert_array_equal(out[..., 0], np.where(rgb[..., 0] > 128, 255, 0))
    gray_pal = Image.fromarray(rgb[..., 1]).convert("P")
    assert codec.decompress(codec.compress(gray_pal)).shape == (32, 32, 1)


@pytest.mark.parametrize("make, match", [
    (lambda a: Image.fromarray(np.dstack([a, np.full(a.shape[:2], 7, np.uint8)]), "RGBA"),
     "transparency"),
    (lambda a: Image.fromarray(np.dstack([a[..., 0], a[..., 1]]), "LA"), "transparency"),
    (lambda a: Image.fromarray(a[..., 0].astype(np.uint16) * 257), "16-bit"),
    (lambda a: Image.fromarray(a).convert("CMYK"), "CMYK"),
    (lambda a: Image.fromarray(a).convert("F"), "32-bit"),
    (lambda a: a.astype(np.uint16), "16-bit"),
    (lambda a: a.astype(np.float32), "8-bit integers"),
    (lambda a: a[..., :2], "shape"),
    (lambda a: np.zeros((0, 4, 3), np.uint8), "empty"),
    (lambda a: a.astype(np.int32) + 200, "0..255"),
])
def test_unsupported_images_are_refused_clearly(make, match):
    with pytest.raises(ImageError, match=match):
        codec.compress(make(_photo("sail_crop0_32.png")))


def test_palette_with_transparency_is_refused():
    pal = Image.fromarray(_photo("sail_crop0_32.png")).quantize(colors=16)
    pal.info["transparency"] = 0
    pal_rgba = pal.convert("RGBA")
    if np.asarray(pal_rgba)[..., 3].min() == 255:  # colour 0 unused: make it used
        pal.putpixel((0, 0), 0)
    with pytest.raises(ImageError, match="transparency"):
        codec.compress(pal)


def test_settings_are_stored_and_used():
    img = _photo("tulips_crop0_32.png")
    settings = codec.coder_settings(omega=2.5, epsilon=0.1, beams=5, seed=7)
    data = codec.compress(img, settings=settings, fallback=False)
    stored = entropy.unpack(data, [modelzoo.load_model().ref]).header.settings
    assert stored.file_fields() == settings.file_fields() == {"omega": 2.5, "epsilon": 0.1, "seed": 7}
    np.testing.assert_array_equal(codec.decompress(data), img)
    assert data != codec.compress(img, fallback=False)
    info = codec.read_info(data)
    assert (info["omega"], info["epsilon"], info["seed"]) == (2.5, 0.1, 7) and "beams" not in info
    # The beam widths steer only the encoder: another width, the same header, a valid file.
    narrow = codec.compress(img, settings=dataclasses.replace(settings, beams=1, small_beams=1), fallback=False)
    assert narrow[:8] == data[:8]
    np.testing.assert_array_equal(codec.decompress(narrow), img)
    assert info["total_bytes"] == len(data)


@pytest.mark.parametrize("kw, match", [
    (dict(omega=-1.0), "omega"), (dict(epsilon=-0.5), "epsilon"), (dict(beams=0), "beams"),
    (dict(omega=0.1, epsilon=0.0), "candidate"), (dict(omega=40.0), "candidates")])
def test_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        codec.coder_settings(**kw)


@pytest.fixture(scope="module")
def other_model(tmp_path_factory) -> str:
    """A random-init model folder of the default's architecture (different weights)."""
    from irec_jax.models import RVAE, integer
    default = modelzoo.load_model()
    params = jax.tree.map(np.asarray, RVAE(default.config).init(jax.random.key(1)))
    path = str(tmp_path_factory.mktemp("model"))
    cm = modelzoo.CodecModel("random-1", default.config, integer.quantize(default.config, params))
    modelzoo.export_model(cm, path)
    return path


def test_version1_model_folder_is_converted_to_the_integer_form(tmp_path):
    """A float (version 1) model folder loads as its integer form, deterministically."""
    from irec_jax.models import RVAE
    default = modelzoo.load_model()
    params = jax.tree.map(np.asarray, RVAE(default.config).init(jax.random.key(2)))
    np.savez(tmp_path / "params.npz", **modelzoo._flatten(params))
    meta = {"format": "irec-model", "version": 1, "name": "float-v1", "config": default.config.__dict__,
            "defaults": {}, "card": {}}
    (tmp_path / "model.json").write_text(__import__("json").dumps(meta))
    cm = modelzoo.load_model(str(tmp_path))
    assert cm.params["down"]["conv1"]["w"].dtype == np.int8
    img = _photo("sail_crop1_32.png")
    np.testing.assert_array_equal(codec.decompress(codec.compress(img, model=cm), model=cm), img)


@pytest.mark.parametrize("old", [1, 2, 3])
def test_older_files_are_refused_naming_their_version(old):
    data = bytearray(codec.compress(_photo("sail_crop1_32.png")))
    assert data[2] == entropy.VERSION == 6
    data[2] = old
    with pytest.raises(FormatError, match=f"version {old} files"):
        codec.decompress(bytes(data))


def test_user_model_folder_roundtrip_and_wrong_model_rejected(other_model):
    img = _photo("kodim23_crop0_32.png")
    data = codec.compress(img, model=other_model, fallback=False)  # a random model: stored mode would win
    np.testing.assert_array_equal(codec.decompress(data, model=other_model), img)
    with pytest.raises(FormatError, match="unknown model 'random-1'"):
        codec.decompress(data)
    default = modelzoo.load_model()
    impostor = modelzoo.CodecModel("random-1", default.config, default.params)
    with pytest.raises(FormatError, match="unknown model"):
        codec.decompress(data, model=impostor)


def test_bad_model_specs(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        modelzoo.load_model(str(tmp_path / "nope"))
    with pytest.raises(ModelError, match="neither"):
        modelzoo.load_model(str(tmp_path))
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot read"):
        modelzoo.load_model(str(tmp_path))


def test_corrupt_files_raise_format_error_or_decode_exactly():
    img = _photo("monarch_crop0_32.png")
    data = codec.compress(img)
    rng = np.random.default_rng(0)
    for n in (0, 3, 8, len(data) // 2, len(data) - 1):
        with pytest.raises(FormatError):
            codec.decompress(data[:n])
    for _ in range(25):
        bad = bytearray(data)
        i = int(rng.integers(len(bad)))
        bad[i] ^= 1 << int(rng.integers(8))
        try:
            out = codec.decompress(bytes(bad))
        except FormatError:
            continue
        np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize("xla_flags", ["", "--xla_cpu_max_isa=SSE4_2", "--xla_cpu_max_isa=AVX2",
                                       "--xla_cpu_multi_thread_eigen=false"])
def test_decode_in_another_process_on_every_cpu_code_path(tmp_path, xla_flags):
    """Files written here (XLA's default CPU code path) and the golden files decode
    exactly in a fresh process on each of XLA's CPU code paths."""
    images = {"tulips_crop1_32.png": _photo("tulips_crop1_32.png"), "monarch_64.png": _photo("monarch_64.png")}
    files = []
    for name, img in images.items():
        (tmp_path / name).with_suffix(".irec").write_bytes(codec.compress(img, fallback=False))
        files.append((tmp_path / name).with_suffix(".irec"))
    files += [os.path.join(GOLDEN, "kodim23_crop1_32.irec"), os.path.join(GOLDEN, "sail_crop0_32_gray.irec")]
    code = ("import sys, numpy as np; from irec_jax import codec\n"
            "for i, f in enumerate(sys.argv[2:]):\n"
            "    np.save(f'{sys.argv[1]}/{i}.npy', codec.decompress(open(f, 'rb').read()))")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path)] + [str(f) for f in files], check=True,
                   env=dict(env, XLA_FLAGS=xla_flags, JAX_PLATFORMS="cpu", IREC_NO_CACHE="1"))
    expect = list(images.values()) + [_photo("kodim23_crop1_32.png"), _photo("sail_crop0_32.png")[..., 1:2]]
    for i, img in enumerate(expect):
        np.testing.assert_array_equal(np.load(tmp_path / f"{i}.npy"), img)


def test_header_model_ids_name_the_bundled_folders_append_only(monkeypatch):
    """Every bundled model folder has a header id whose entry names its exact weights, no two ids
    name the same weights, and a folder whose weights changed without a new id is refused (a model
    version bump must append an id, or files written before it would decode with other weights)."""
    from irec_jax.assets import asset_path

    entries = modelzoo.header_models()
    root = asset_path("models")
    folders = sorted(n for n in os.listdir(root) if os.path.isfile(os.path.join(root, n, "model.json")))
    assert sorted(e["folder"] for e in entries) == folders
    known = modelzoo.known_models()
    assert [(m.name, m.ref.param_hash.hex()) for m in known] == [(e["name"], e["hash"]) for e in entries]
    assert len({(e["name"], e["hash"]) for e in entries}) == len(entries)
    assert modelzoo.load_model().ref in [m.ref for m in known]
    swapped = [dict(e, hash="00000000") if e["folder"] == "default" else e for e in entries]
    monkeypatch.setattr(modelzoo, "header_models", lambda: swapped)
    with pytest.raises(ModelError, match="needs a new entry"):
        modelzoo.known_models()


@pytest.mark.parametrize("name, gray", [("kodim23_crop1_32.png", False), ("sail_crop0_32.png", True)])
def test_golden_files_of_the_bundled_model(name, gray):
    """A change to the format, the coder or the bundled model's weights must fail here visibly.

    Regenerate deliberately with IREC_REGEN_GOLDEN=1 (and bump the format or model version).
    The files pin the model's coding (``fallback=False``): stored mode is smaller for the gray one.
    Without posterior refinement: its float optimization is the encoder's own business and may round
    differently on another machine (to another valid file). The search settings are pinned
    (``GOLDEN_SEARCH``): the encoder's defaults may change without a format bump.
    """
    img = _photo(name)
    if gray:
        img = img[..., 1:2]
    path = os.path.join(GOLDEN, name.replace(".png", "_gray" if gray else "") + ".irec")
    settings = dataclasses.replace(modelzoo.load_model("default").defaults, **GOLDEN_SEARCH)
    data = codec.compress(img, fallback=False, refine=0, settings=settings)
    if REGEN:
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    with open(path, "rb") as f:
        golden = f.read()
    assert data == golden, "compressed bytes changed: format, coder or bundled model changed"
    np.testing.assert_array_equal(codec.decompress(golden), img)


# ---------------------------------------------------------------------------
# Stored mode: the fallback when the model's coding is larger.


def test_fallback_writes_stored_mode_when_it_is_smaller_and_reports_both_sizes():
    flat = np.full((24, 40, 3), 77, np.uint8)  # deflate codes this in a few bytes; the model cannot
    data, rep = codec.compress_report(flat)
    assert rep.stored and data[3] & 0x40 and entropy.is_stored(data)
    assert rep.total_bytes == rep.stored_bytes == len(data) < rep.model_bytes
    assert rep.header_bytes + rep.stream_bytes == rep.model_bytes  # the other fields describe the model's coding
    assert rep.bpd == pytest.approx(8 * len(data) / flat.size) and rep.model_bpd > rep.bpd
    np.testing.assert_array_equal(codec.decompress(data), flat)
    np.testing.assert_array_equal(codec.decompress(data, model="/no/such/model"), flat)  # ignored
    info = codec.read_info(data)
    assert info["mode"] == "stored" and info["model"] is None and info["total_bytes"] == len(data)
    assert (info["height"], info["width"], info["channels"]) == flat.shape and sum(info["filters"]) == 24
    model_file, rep2 = codec.compress_report(flat, fallback=False)
    assert not rep2.stored and len(model_file) == rep2.total_bytes == rep.model_bytes
    assert rep2.stored_bytes == rep.stored_bytes and not entropy.is_stored(model_file)
    assert codec.read_info(model_file)["mode"] == "model"
    np.testing.assert_array_equal(codec.decompress(model_file), flat)
    assert codec.compress(flat, fallback=False) == model_file


def test_photo_keeps_the_model_file_where_it_is_smaller():
    img = _photo("kodim23_crop1_32.png")
    data, rep = codec.compress_report(img)
    assert not rep.stored and len(data) == rep.model_bytes < rep.stored_bytes
    assert data == codec.compress(img, fallback=False)


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 1, 1), (5, 7, 1), (17, 23, 3), (33, 2, 1)])
def test_stored_round_trips_of_any_size(shape):
    img = (np.arange(np.prod(shape)).reshape(shape) * 37 % 7 + 100).astype(np.uint8)
    data, rep = codec.compress_report(img)
    assert rep.stored == (rep.stored_bytes < rep.model_bytes)  # tiny or flat images: deflate mostly wins
    assert rep.total_bytes == len(data) == min(rep.stored_bytes, rep.model_bytes)
    stored = entropy.pack_stored(img)
    assert entropy.is_stored(stored) and len(stored) == rep.stored_bytes
    for f in (data, stored):
        np.testing.assert_array_equal(codec.decompress(f), img)
        np.testing.assert_array_equal(reference.decode(f), img)


def test_batch_falls_back_per_image():
    photo = _photo("kodim23_crop1_32.png")
    flat = np.full_like(photo, 200)
    (d1, r1), (d2, r2) = codec.compress_batch([photo, flat])
    assert not r1.stored and r2.stored and r2.model_bytes > len(d2)
    np.testing.assert_array_equal(codec.decompress(d1), photo)
    np.testing.assert_array_equal(codec.decompress(d2), flat)
    (m1, q1), (m2, q2) = codec.compress_batch([photo, flat], fallback=False)
    assert not q2.stored and len(m2) == r2.model_bytes and m1 == d1


def test_corrupt_stored_files_raise_format_error():
    data = codec.compress(np.full((8, 8, 3), 5, np.uint8))
    assert entropy.is_stored(data)
    for bad, match in ((data[:-6] + data[-4:], "corrupt or truncated"), (data[:9], "corrupt or truncated"),
                       (data[:-1] + bytes([data[-1] ^ 1]), "CRC mismatch")):
        with pytest.raises(FormatError, match=match):
            codec.decompress(bad)
        with pytest.raises(FormatError, match=match):
            reference.decode(bad)


@pytest.mark.parametrize("name", ["kodim23_crop1_32.irec", "sail_crop0_32_gray.irec", "sail_crop0_32_gray_stored.irec"])
def test_format_4_files_still_decode(name):
    """Files the previous release wrote (format 4: the golden files before the bump to 5) decode to
    the same pixels, with the JAX decoder and the reference decoder, and ``info`` names their format."""
    img = _golden_image(name)
    with open(os.path.join(GOLDEN, "v4", name), "rb") as f:
        data = f.read()
    assert data[2] == 4
    np.testing.assert_array_equal(codec.decompress(data), img)
    np.testing.assert_array_equal(reference.decode(data), img)
    if not entropy.is_stored(data):
        assert codec.read_info(data)["format_version"] == 4


@pytest.mark.parametrize("name", ["kodim23_crop1_32.irec", "sail_crop0_32_gray.irec"])
def test_format_5_files_still_decode(name):
    """Files of format 5, whose streams end in a whole 32-bit word (the golden files before the bump
    to 6), decode to the same pixels with both decoders; today's golden file is the same file a few
    bytes shorter, with version byte 6."""
    img = _golden_image(name)
    with open(os.path.join(GOLDEN, "v5", name), "rb") as f:
        old = f.read()
    with open(os.path.join(GOLDEN, name), "rb") as f:
        new = f.read()
    assert old[2] == 5 and new[2] == 6 and codec.read_info(old)["format_version"] == 5
    assert old[3:-4][:len(new) - 11] == new[3:len(new) - 8] and 0 < len(old) - len(new) <= 4
    np.testing.assert_array_equal(codec.decompress(old), img)
    np.testing.assert_array_equal(reference.decode(old), img)


def test_golden_stored_file():
    """The stored mode's bytes, pinned but for the deflate stream itself (zlib builds may
    choose other matches): the header, the scanlines it inflates to, the CRC, the pixels."""
    img = _photo("sail_crop0_32.png")[..., 1:2]
    path = os.path.join(GOLDEN, "sail_crop0_32_gray_stored.irec")
    data = codec.compress(img)
    if REGEN:
        with open(path, "wb") as f:
            f.write(data)
    with open(path, "rb") as f:
        golden = f.read()
    assert entropy.is_stored(golden) and data[:5] == golden[:5] and data[-4:] == golden[-4:]
    np.testing.assert_array_equal(entropy.unpack(data, []).scanlines, entropy.unpack(golden, []).scanlines)
    np.testing.assert_array_equal(codec.decompress(golden), img)
    np.testing.assert_array_equal(reference.decode(golden), img)
