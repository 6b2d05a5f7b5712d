"""BB-ANS baseline: bit-exact round trips, honest rates from real bytes, determinism, bad input."""

import math
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from skimage import data as skdata

from irec_jax import FormatError
from irec_jax.baselines import (BbansRates, bbans_decode_sequence, bbans_decode_single,
                                bbans_encode_sequence, bbans_encode_single, bbans_rates)
from irec_jax.configs import small
from irec_jax.models import RVAE, RVAEConfig
from irec_jax.models.integer import IntegerRVAE, quantize

BITS = 8


def _integer_model(cfg, key, image_shape=None):
    """The codec's integer model and params from a random float init."""
    config = RVAEConfig.from_config(cfg)
    args = () if image_shape is None else (image_shape,)
    params = jax.tree.map(np.asarray, RVAE(config).init(key, *args))
    return IntegerRVAE(config), quantize(config, params)


@pytest.fixture(scope="module")
def model_params():
    return _integer_model(small.get_config().model, jax.random.key(0))


@pytest.fixture(scope="module")
def crops():
    """16x16 crops of scikit-image's lossless-origin photos (astronaut, coffee)."""
    astro, coffee = skdata.astronaut(), skdata.coffee()
    return [astro[100:116, 200:216], coffee[150:166, 300:316], astro[300:316, 120:136]]


@pytest.fixture(scope="module")
def single(model_params, crops):
    model, params = model_params
    return bbans_encode_single(model, params, crops[0], bits=BITS)


def _latent_dims(model, shape):
    return model.num_layers * math.prod(model.latent_shape((1, *shape), 0))


def test_single_round_trip_is_bit_exact_and_deterministic(model_params, crops, single):
    model, params = model_params
    out = bbans_decode_single(model, params, single, crops[0].shape, bits=BITS)
    assert out.dtype == np.uint8 and out.shape == crops[0].shape
    assert np.array_equal(out, crops[0])
    assert bbans_encode_single(model, params, crops[0], bits=BITS) == single


def test_another_process_decodes_the_same_bytes(tmp_path, crops, single):
    (tmp_path / "file.bb").write_bytes(single)
    np.save(tmp_path / "crop.npy", crops[0])
    script = textwrap.dedent(f"""
        import jax, numpy as np
        from irec_jax.baselines import bbans_decode_single
        from irec_jax.configs import small
        from irec_jax.models import RVAE, RVAEConfig
        from irec_jax.models.integer import IntegerRVAE, quantize
        config = RVAEConfig.from_config(small.get_config().model)
        model = IntegerRVAE(config)
        params = quantize(config, jax.tree.map(np.asarray, RVAE(config).init(jax.random.key(0))))
        crop = np.load({str(tmp_path / "crop.npy")!r})
        data = open({str(tmp_path / "file.bb")!r}, "rb").read()
        out = bbans_decode_single(model, params, data, crop.shape, bits={BITS})
        assert np.array_equal(out, crop)
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def test_single_image_pays_its_initial_bits(model_params, crops, single):
    # Pushing the priors alone costs exactly BITS per latent dim; the file must
    # hold them all (no free initial bits) plus the pixels, and little else.
    model, params = model_params
    prior_bits = BITS * _latent_dims(model, crops[0].shape)
    assert 8 * len(single) > prior_bits
    # Pixels under any model cost < 16 bits/subpixel with these tables here;
    # a file far above prior + pixels would mean wasted initial bits.
    assert 8 * len(single) < prior_bits + 16 * crops[0].size


def test_sequence_round_trip_and_amortized_rates(model_params, crops):
    model, params = model_params
    seq = bbans_encode_sequence(model, params, crops, bits=BITS)
    out = bbans_decode_sequence(model, params, seq, [c.shape for c in crops], bits=BITS)
    assert all(np.array_equal(o, c) for o, c in zip(out, crops))

    rates = bbans_rates(model, params, crops, bits=BITS)
    assert isinstance(rates, BbansRates)
    assert rates.sequence_bytes == len(seq)
    assert rates.single_bytes[0] == len(bbans_encode_single(model, params, crops[0], bits=BITS))
    # The chained file is the first image's file plus what the others add.
    assert abs(rates.prefix_bytes[0] - rates.single_bytes[0]) <= 3
    assert rates.prefix_bytes[-1] - 3 <= rates.sequence_bytes <= rates.prefix_bytes[-1]
    # Bits back: chaining beats coding one by one, and later images cost less
    # than a single image does.
    assert len(seq) < sum(rates.single_bytes)
    assert rates.amortized_bpd < rates.single_bpd
    assert rates.marginal_bpd < rates.amortized_bpd
    dims = sum(c.size for c in crops)
    assert rates.amortized_bpd == pytest.approx(8 * len(seq) / dims)
    assert rates.single_bpd == pytest.approx(8 * sum(rates.single_bytes) / dims)


def test_mixed_shapes_and_other_bits_round_trip(model_params, crops):
    model, params = model_params
    images = [skdata.coffee()[40:48, 60:72], crops[1]]
    for bits in (3, 12):
        seq = bbans_encode_sequence(model, params, images, bits=bits)
        out = bbans_decode_sequence(model, params, seq, [im.shape for im in images], bits=bits)
        assert all(np.array_equal(o, im) for o, im in zip(out, images))


def test_corrupt_truncated_or_mismatched_data_raises_format_error(model_params, crops, single):
    model, params = model_params
    shape = crops[0].shape
    flipped = bytearray(single)
    flipped[len(flipped) // 2] ^= 0x10
    bad_inputs = {
        "flipped byte": (bytes(flipped), shape, BITS),
        "truncated top": (single[: len(single) // 2], shape, BITS),
        "truncated bottom": (single[len(single) // 2:], shape, BITS),
        "empty": (b"", shape, BITS),
        "zero top word": (single + b"\0" * (-len(single) % 4 + 4), shape, BITS),
        "wrong bits": (single, shape, BITS - 1),
        "wrong shape": (single, (16, 18, 3), BITS),
    }
    for name, (data, shp, bits) in bad_inputs.items():
        with pytest.raises(FormatError):
            bbans_decode_single(model, params, data, shp, bits=bits)
            pytest.fail(f"{name}: no FormatError")


def test_bad_arguments_raise_value_error(model_params, crops, single):
    model, params = model_params
    img = crops[0]
    with pytest.raises(ValueError, match="even"):
        bbans_encode_single(model, params, img[:15])
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        bbans_encode_single(model, params, img[..., :1])
    with pytest.raises(ValueError, match="integer"):
        bbans_encode_single(model, params, img.astype(np.float32))
    with pytest.raises(ValueError, match="0..255"):
        bbans_encode_single(model, params, img.astype(np.int32) - 1 - img.min())
    with pytest.raises(ValueError, match="bits"):
        bbans_encode_single(model, params, img, bits=0)
    with pytest.raises(ValueError, match="bits"):
        bbans_encode_single(model, params, img, bits=17)
    with pytest.raises(ValueError, match="at least one"):
        bbans_encode_sequence(model, params, [])
    with pytest.raises(ValueError, match="sequence"):
        bbans_encode_sequence(model, params, img)
    with pytest.raises(ValueError, match="even"):
        bbans_decode_single(model, params, single, (15, 16, 3), bits=BITS)
    with pytest.raises(ValueError, match="bytes"):
        bbans_decode_single(model, params, "text", img.shape, bits=BITS)
    # FormatError is a ValueError too.
    assert issubclass(FormatError, ValueError)


def test_grayscale_model_round_trip():
    cfg = small.get_config().model
    cfg.image_channels = 1
    cfg.num_layers = 2
    model, params = _integer_model(cfg, jax.random.key(1), (1, 16, 16, 1))
    img = skdata.camera()[200:216, 240:256, None]  # clean grayscale photo
    data = bbans_encode_single(model, params, img)
    assert np.array_equal(bbans_decode_single(model, params, data, img.shape), img)


def test_float_model_is_refused(crops):
    # BB-ANS codes with the codec's integer model only (its pixel tables and latents are exact).
    model = RVAE(RVAEConfig.from_config(small.get_config().model))
    with pytest.raises(TypeError, match="integer model"):
        bbans_encode_single(model, model.init(jax.random.key(0)), crops[0])


def test_latents_are_the_exact_bin_centres(model_params):
    # The bin centres are the iREC decoder's own reconstruction of the table
    # quantiles at (j + 1/2) / 2**bits, on the 2^-10 grid, inside their bins.
    from scipy import special

    from irec_jax import rec
    from irec_jax.baselines import bbans_latents
    from irec_jax.exact.tables import normal_quantiles

    model, params = model_params
    state = model.initial_state(params, (1, 16, 16, 3))
    prior = model.prior(params, state, 0)
    for bits in (1, 3, 8, 16):
        n = 1 << bits
        centres = bbans_latents.bin_centres(bits)
        assert centres.dtype == np.int32 and centres.shape == (n,)
        assert np.all(np.diff(centres) > 0)
        mid = special.ndtri((np.arange(n) + 0.5) / n)
        assert np.all(np.abs(centres / 65536.0 - mid) < (0.02 if bits < 16 else 1e-4))
        bins = np.arange(prior.loc.size) % n
        z = np.asarray(bbans_latents.latents(prior, bins, bits))
        assert z.dtype == np.float32 and z.shape == prior.loc.shape
        want = rec.from_standard(normal_quantiles()[((2 * bins + 1) << 16) >> (bits + 1)]
                                 .reshape(prior.loc.shape), prior.loc, prior.scale)
        assert z.tobytes() == want.tobytes()
        assert np.array_equal(z * 1024, np.round(z * 1024))
        loc, scale = np.asarray(prior.loc, np.float64), np.asarray(prior.scale, np.float64)
        edges = np.concatenate([[-np.inf], special.ndtri(np.arange(1, n) / n), [np.inf]])
        lo, hi = loc + scale * edges[bins].reshape(loc.shape), loc + scale * edges[bins + 1].reshape(loc.shape)
        half_step = 2.0 ** -11 + 1e-12  # rounding onto the 2^-10 grid
        assert np.all((z >= lo - half_step) & (z <= hi + half_step))


# ---------------------------------------------------------------------------
# Files: the (H, W, C) framing the benchmark writes.


def test_file_round_trip_is_header_plus_payload(model_params, crops, single):
    import struct

    from irec_jax import baselines
    from irec_jax.baselines import bbans
    assert "bbans" in baselines.__all__
    model, params = model_params
    data = bbans.encode_file(model, params, crops[0], BITS)
    assert data == struct.pack(">HHB", *crops[0].shape) + single
    out = bbans.decode_file(model, params, data, BITS)
    assert out.dtype == np.uint8 and np.array_equal(out, crops[0])


def test_set_file_round_trip_is_header_plus_payload(model_params, crops):
    import struct

    from irec_jax.baselines import bbans
    model, params = model_params
    images = [crops[0], crops[1][:8, :12]]
    data = bbans.encode_set_file(model, params, images, BITS)
    head = struct.pack(">I", 2) + b"".join(struct.pack(">HHB", *im.shape) for im in images)
    assert data == head + bbans_encode_sequence(model, params, images, bits=BITS)
    out = bbans.decode_set_file(model, params, data, BITS)
    assert len(out) == 2 and all(np.array_equal(a, b) for a, b in zip(out, images))


def test_truncated_or_corrupt_files_raise_format_error(model_params, crops):
    import struct

    from irec_jax.baselines import bbans
    model, params = model_params
    one = bbans.encode_file(model, params, crops[0], BITS)
    many = bbans.encode_set_file(model, params, crops[:2], BITS)
    for data in (b"", one[:4]):
        with pytest.raises(FormatError, match="bbans file: truncated header"):
            bbans.decode_file(model, params, data, BITS)
    for data in (b"", many[:3], many[:8], struct.pack(">I", 1 << 31) + many[4:]):
        with pytest.raises(FormatError, match="bbans file: truncated header"):
            bbans.decode_set_file(model, params, data, BITS)
    with pytest.raises(FormatError, match="declares no images"):
        bbans.decode_set_file(model, params, struct.pack(">I", 0), BITS)
    with pytest.raises(FormatError, match="shape this model cannot decode"):  # C = 7, odd H
        bbans.decode_file(model, params, struct.pack(">HHB", 15, 16, 7) + one[5:], BITS)
    for data in (one[:5], one[:-6]):  # header intact, stack cut short
        with pytest.raises(FormatError):
            bbans.decode_file(model, params, data, BITS)
    with pytest.raises(FormatError):
        bbans.decode_set_file(model, params, many[:-6], BITS)
    with pytest.raises(ValueError, match="does not fit"):
        bbans.encode_file(model, params, np.zeros((2, 70000, 3), np.uint8), BITS)
