"""Tests of irec_jax.entropy: round trips, rate bounds, malformed input,
golden byte streams and fuzzing of real .irec files.

Images: crops of scikit-image's astronaut.png (NASA, public domain), a
lossless-origin photo. Likelihood params are "real-looking": loc is a causal
neighbour prediction, log_scale follows the local prediction error, as a
trained model's would.

Regenerate the golden files with IREC_REGEN_GOLDEN=1 pytest tests/test_entropy.py.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irec_jax import FormatError
from irec_jax import entropy as E
from irec_jax.entropy import _bytes, tables
from irec_jax.settings import PowerLawSchedule

GOLDEN_DIR = pathlib.Path(__file__).parent / "data" / "entropy"
REGEN = os.environ.get("IREC_REGEN_GOLDEN") == "1"
TOY_MODEL = E.ModelRef("toy-rvae", E.param_hash([np.arange(4.0)]))
OTHER_MODEL = E.ModelRef("toy-mol", E.param_hash([np.arange(5.0)]),
                         E.CoderSettings(omega=3.0, epsilon=0.0, beams=10))
MODELS = (TOY_MODEL, OTHER_MODEL)
# A stream ends in the fewest bytes that decode (docs/format.md section 4), so it may hold a few bits
# less than its symbols' information where the last ones are implied by the zero padding.
IMPLIED_BITS = 16


# ----------------------------------------------------------------- fixtures


def astronaut() -> np.ndarray:
    """uint8 [512, 512, 3]: skimage.data.astronaut() (public domain)."""
    import skimage.data
    return skimage.data.astronaut()


def predictor_params(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Real-looking logistic params (levels) for uint8 [H, W, C]: loc is the
    mean of the upper and left neighbours, log_scale tracks the local error."""
    x = pixels.astype(np.float64)
    loc = np.full_like(x, 128.0)
    loc[1:, 1:] = (x[:-1, 1:] + x[1:, :-1]) / 2
    loc[0, 1:] = x[0, :-1]
    loc[1:, 0] = x[:-1, 0]
    err = np.abs(x - loc)
    pad = np.pad(err, ((2, 2), (2, 2), (0, 0)), mode="edge")
    local = sum(pad[i:i + x.shape[0], j:j + x.shape[1]] for i in range(5) for j in range(5)) / 25
    return loc, np.log(0.6 * local + 0.5)


def logistic_for(pixels: np.ndarray) -> E.FloatLogistic:
    return E.FloatLogistic(*predictor_params(pixels))


def quantized_for(pixels: np.ndarray) -> E.QuantizedLogistic:
    """``logistic_for`` in the integer form the codec's models produce."""
    loc, log_scale = predictor_params(pixels)
    return E.QuantizedLogistic(np.round(loc * 2048).astype(np.int32),
                               np.round(65536 * np.exp(-log_scale)).astype(np.int32))


def mixture_for(pixels: np.ndarray, k: int = 3) -> E.FloatLogisticMixture:
    loc, log_scale = predictor_params(pixels)
    offsets = np.linspace(-4.0, 4.0, k)
    return E.FloatLogisticMixture(
        logits=np.stack([np.full(loc.shape, -abs(o) / 4) for o in offsets], -1),
        loc=loc[..., None] + offsets,
        log_scale=log_scale[..., None] + np.linspace(-0.5, 0.5, k))


def fake_layers(rng: np.random.Generator, num_candidates: int, layers: int = 3,
                blocks: int = 6) -> list[E.LayerIndices]:
    """iREC-like output: step counts similar across blocks, argmax indices
    (uniform over N)."""
    out = []
    for _ in range(layers):
        steps = rng.integers(20, 27, size=rng.integers(1, blocks + 1))
        out.append(E.LayerIndices(steps, rng.integers(0, num_candidates, steps.sum())))
    return out


def num_candidates(s: E.CoderSettings) -> int:
    n = s.num_candidates
    assert n == int(math.floor(math.exp(s.omega * (1 + s.epsilon))))
    return n


# ----------------------------------------- a toy codec over the real format


def _toy_likelihood(base: E.Likelihood, header: E.Header,
                    layers: list[E.LayerIndices]) -> E.Likelihood:
    """Stands in for a model: the likelihood depends on everything the decoder
    decoded (model, settings, every step count and index), so corrupting any
    of them changes the pixels the residual decodes to."""
    stored = ", ".join(f"{k}={v!r}" for k, v in header.settings.file_fields().items())
    key = zlib.crc32(f"({header.model.name!r}, CoderSettings({stored}))".encode() + b"".join(
        layer.steps.astype("<i8").tobytes() + layer.indices.astype("<i8").tobytes()
        for layer in layers))
    shift = (key % 997) / 997 - 0.5
    if isinstance(base, E.QuantizedLogistic):
        return E.QuantizedLogistic(base.loc + int(round(shift * 2048)), base.inv_scale)
    if isinstance(base, E.QuantizedMixture):
        return E.QuantizedMixture(base.weight, base.loc + int(round(shift * 2048)), base.inv_scale, base.coef)
    if isinstance(base, E.FloatLogistic):
        return E.FloatLogistic(base.loc + shift, base.log_scale)
    return E.FloatLogisticMixture(base.logits, base.loc + shift, base.log_scale)


def toy_compress(pixels: np.ndarray, base: E.Likelihood, layers: list[E.LayerIndices],
                 model: E.ModelRef, s: E.CoderSettings,
                 index_model: E.IndexModel = E.UniformIndexModel(),
                 known: tuple[E.ModelRef, ...] = MODELS) -> bytes:
    """One tile, one stream: the layer count (a model would know it), every
    layer's step counts and indices, then the pixels."""
    h, w, c = pixels.shape
    header = E.Header(model, s, h, w, c)
    queue = E.new_queue()
    E.push_count(queue, len(layers))
    for i, layer in enumerate(layers):
        E.push_layer(queue, layer, num_candidates(s), index_model, index=i)
    E.push_pixels(queue, pixels, _toy_likelihood(base, header, layers))
    return E.pack(E.Container(header, (E.finish_queue(queue),), E.pixel_crc(pixels)), known)


def toy_decompress(data: bytes, base: E.Likelihood,
                   index_model: E.IndexModel = E.UniformIndexModel()) -> np.ndarray:
    container = E.unpack(data, MODELS)
    header = container.header
    if header.shape != np.shape(base.loc)[:3]:
        raise FormatError(f"file is for a {header.shape} image, the model gives "
                          f"{np.shape(base.loc)[:3]}")
    (stream,) = container.sections
    n = num_candidates(header.settings)
    queue = E.open_queue(stream, "tile 0")
    bound = E.max_indices(len(stream), n, index_model)
    count = E.pop_count(queue, "tile 0", version=header.version)
    if count > 8 * len(stream) + 64:
        raise FormatError(f"tile 0: {count} layers declared")
    layers = [E.pop_layer(queue, n, index_model, max_indices=bound, what="tile 0", version=header.version)
              for _ in range(count)]
    pixels = E.pop_pixels(queue, _toy_likelihood(base, header, layers), "tile 0")
    return E.check_pixels(container, pixels)


# ------------------------------------------------------ one round-trip helper


def check_roundtrip(encode, decode, value, equal=None) -> bytes:
    """encode -> bytes -> decode must restore `value`; encoding is deterministic."""
    data = encode(value)
    assert isinstance(data, bytes)
    assert encode(value) == data, "same input must give the same bytes"
    restored = decode(data)
    if equal is None:
        np.testing.assert_array_equal(restored, value)
    else:
        assert equal(restored, value)
    return data


def layers_equal(a: list[E.LayerIndices], b: list[E.LayerIndices]) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x.steps, y.steps) and np.array_equal(x.indices, y.indices)
        for x, y in zip(a, b))


@pytest.fixture(scope="module")
def crop32() -> np.ndarray:
    return astronaut()[200:232, 240:272]


@pytest.mark.parametrize("family", ["logistic", "mixture1", "mixture3"])
@pytest.mark.parametrize("shape", [(32, 32, 3), (7, 5, 1), (1, 1, 4), (130, 130, 3)])
def test_residual_roundtrip(family, shape):
    pixels = astronaut()[100:100 + shape[0], 50:50 + shape[1], :shape[2] % 4 or 3]
    if shape[2] == 4:
        pixels = np.concatenate([pixels, pixels[..., :1]], -1)
    pixels = pixels[..., :shape[2]]
    params = {"logistic": logistic_for, "mixture1": lambda p: mixture_for(p, 1),
              "mixture3": mixture_for}[family](pixels)
    check_roundtrip(lambda x: E.encode_residual(x, params),
                    lambda b: E.decode_residual(b, params), pixels)


@pytest.mark.parametrize("index_model", [
    E.UniformIndexModel(), E.TableIndexModel(np.linspace(1.0, 2.0, 36)),
    E.AdaptiveIndexModel(), E.AdaptiveIndexModel(max_refresh=16, uniform_weight=1.0)])
def test_indices_roundtrip(index_model):
    rng = np.random.default_rng(1)
    for layers in ([], [E.LayerIndices(np.zeros(0, np.int64), np.zeros(0, np.int64))],
                   fake_layers(rng, 36), [E.LayerIndices(np.array([3]), np.array([0, 35, 7]))]):
        check_roundtrip(lambda v: E.encode_indices(v, 36, index_model),
                        lambda b: E.decode_indices(b, 36, index_model), layers, layers_equal)


@pytest.mark.parametrize("n", [2, 3, 20, 36, 400, 1 << 24])
def test_indices_roundtrip_alphabet_sizes(n):
    rng = np.random.default_rng(n)
    layers = [E.LayerIndices(np.array([1, 5, 2]), rng.integers(0, n, 8)),
              E.LayerIndices(np.array([64] * 5), rng.integers(0, n, 320))]
    check_roundtrip(lambda v: E.encode_indices(v, n), lambda b: E.decode_indices(b, n),
                    layers, layers_equal)


def test_container_roundtrip_and_header_size():
    streams = (b"\x01" * 700, b"\x02" * 800, b"", b"x")
    for model, s, shape, tile, secs in [
            (TOY_MODEL, E.CoderSettings(), (32, 32, 3), E.DEFAULT_TILE, streams[:1]),
            (OTHER_MODEL, OTHER_MODEL.defaults, (768, 512, 3), E.DEFAULT_TILE, streams[1:2]),
            (TOY_MODEL, E.CoderSettings(2.5, 0.1234567, 4096, 2**32 - 1), (5, 9, 2), 6, streams[:2]),
            (E.ModelRef("unlisted", b"\0\1\2\3"), E.CoderSettings(seed=3), (3, 3, 1), 2, streams)]:
        c = E.Container(E.Header(model, s, *shape, tile), secs, 0xDEADBEEF)
        known = MODELS if model in MODELS else MODELS + (model,)
        data = check_roundtrip(lambda v: E.pack(v, known), lambda b: E.unpack(b, known), c, same_container)
        if model is TOY_MODEL and shape == (32, 32, 3):
            assert len(data) - sum(map(len, secs)) == 10  # magic 2, version, flags, model, height, CRC 4


def test_header_floats_take_the_fewest_decimal_digits_and_version_4_floats_still_read():
    """Format 5 writes omega / epsilon as m / 10^e (6 and 0.1: one byte each, 0.15: two); anything
    else as a raw float64. A format-4 header (k / 1000 zigzagged) reads to the same settings."""
    for omega, epsilon, size in [(6.0, 0.1, 3), (4.0, 0.15, 4), (2.5, 0.0, 4), (3.0, 0.1234567, 5),
                                 (7.25, 1e-9, 12)]:
        s = E.CoderSettings(omega=omega, epsilon=epsilon)
        c = E.Container(E.Header(TOY_MODEL, s, 32, 32, 3), (b"\x01",), 7)
        data = E.pack(c, MODELS)
        assert len(data) - 11 == size  # settings mask + the fields that differ from the defaults
        back = E.unpack(data, MODELS).header
        assert (back.settings.omega, back.settings.epsilon, back.version) == (omega, epsilon, E.VERSION)
    # version 4 as the previous release wrote it: omega 6 -> zigzag(6000) << 1, epsilon 0.1 -> zigzag(100) << 1
    out = bytearray(E.MAGIC + bytes([4, 0x01, 0x00, 0x03]))
    _bytes.put_uvarint(out, 24000)
    _bytes.put_uvarint(out, 400)
    header = E.unpack(bytes(out) + b"\x20\x01" + b"\0" * 4, MODELS).header
    assert (header.settings.omega, header.settings.epsilon, header.version) == (6.0, 0.1, 4)
    with pytest.raises(ValueError, match="writes format version 6 only"):
        E.pack(E.Container(dataclasses.replace(header, version=4), (b"\x01",), 0), MODELS)


def test_counts_cost_what_layer_bits_says():
    """``push_count`` is Elias delta (1 bit for 0, 4 for 1-2, 10 for 31-62); a layer's step offsets
    are adaptive below ``ADAPTIVE_STEP_WIDTH``, uniform above; ``layer_bits`` is the exact codelength
    of all of it, and everything round-trips."""
    from irec_jax.entropy import indices
    assert [indices._count_bits(v) for v in (0, 1, 2, 3, 30, 31, 62, (1 << 40) - 1)] == [1, 4, 4, 5, 9, 10, 10, 51]
    rng = np.random.default_rng(3)
    for steps in [np.array([5]), np.array([40, 41, 44, 39]), 30 + rng.binomial(16, 0.5, 4096),
                  1 + rng.integers(0, 2 * indices.ADAPTIVE_STEP_WIDTH, 64)]:
        layer = E.LayerIndices(steps, rng.integers(0, 36, int(steps.sum())))
        queue = E.new_queue()
        E.push_layer(queue, layer, 36)
        data = E.finish_queue(queue)
        assert -IMPLIED_BITS <= 8 * len(data) - E.layer_bits(layer, 36) <= 64
        back = E.pop_layer(E.open_queue(data, "t"), 36, max_indices=E.max_indices(len(data), 36))
        assert layers_equal([back], [layer])
    peaked = E.LayerIndices(30 + rng.binomial(16, 0.5, 4096), np.zeros(0, np.int64))
    uniform_cost = 4096 * np.log2(int(peaked.steps.max() - peaked.steps.min()) + 1)
    assert E.layer_bits(E.LayerIndices(peaked.steps, np.zeros(int(peaked.steps.sum()), np.int64)), 36) < (
        uniform_cost + int(peaked.steps.sum()) * np.log2(36)) - 0.15 * uniform_cost


def test_corrupt_counts_are_format_errors():
    with pytest.raises(FormatError, match="corrupt count"):
        E.pop_count(E.open_queue(b"\0" * 16, "t"), "t")  # zero bits forever: no Elias-gamma length ends
    from irec_jax.entropy import _coder
    queue = E.new_queue()
    _coder.push_uniform(queue, np.array([0] * 5 + [1] * 6), 2)  # a 63-bit length: longer than any count
    with pytest.raises(FormatError, match="corrupt count"):
        E.pop_count(E.open_queue(E.finish_queue(queue), "t"), "t")


def same_container(a: E.Container, b: E.Container) -> bool:
    """Equal as a file: what the header stores (the encoder-only settings, e.g. beams, are not)."""
    ha, hb = a.header, b.header
    return ((ha.model, ha.shape, ha.tile, ha.settings.file_fields(), a.sections, a.pixel_crc)
            == (hb.model, hb.shape, hb.tile, hb.settings.file_fields(), b.sections, b.pixel_crc))


def test_encoder_only_settings_are_not_stored():
    header = E.Header(TOY_MODEL, E.CoderSettings(beams=7, small_beams=9, block_kl=80.0, final_choices=3), 4, 4, 3)
    data = E.pack(E.Container(header, (b"x",), 0), MODELS)
    plain = E.pack(E.Container(E.Header(TOY_MODEL, E.CoderSettings(), 4, 4, 3), (b"x",), 0), MODELS)
    assert data == plain and E.unpack(data, MODELS).header.settings.beams == TOY_MODEL.defaults.beams


def test_tile_grid_and_bad_tiles():
    assert E.tile_grid(5, 7, 4) == [(0, 0, 4, 4), (0, 4, 4, 3), (4, 0, 1, 4), (4, 4, 1, 3)]
    assert E.tile_grid(3, 3, 1024) == [(0, 0, 3, 3)]
    for bad in (0, 1, 3, -2, E.MAX_SIDE + 2 if hasattr(E, "MAX_SIDE") else (1 << 20) + 2, 2.0, True):
        with pytest.raises(ValueError, match="tile side"):
            E.check_tile(bad)
    with pytest.raises(ValueError, match="needs 4 streams"):
        E.pack(E.Container(E.Header(TOY_MODEL, E.CoderSettings(), 4, 4, 3, 2), (b"",), 0), MODELS)


def test_varint_roundtrip():
    for v in [0, 1, 127, 128, 300, 2**32, 2**63 - 1]:
        out = bytearray()
        _bytes.put_uvarint(out, v)
        assert _bytes.Reader(bytes(out), "t").uvarint("v", 2**64) == v
        assert _bytes.unzigzag(_bytes.zigzag(v)) == v and _bytes.unzigzag(_bytes.zigzag(-v)) == -v


def test_full_file_roundtrip_and_determinism(crop32):
    rng = np.random.default_rng(0)
    s = E.CoderSettings()
    layers = fake_layers(rng, num_candidates(s))
    base = logistic_for(crop32)
    data = check_roundtrip(lambda x: toy_compress(x, base, layers, TOY_MODEL, s),
                           lambda b: toy_decompress(b, base), crop32)
    assert data[:2] == E.MAGIC


# ---------------------------------------------------------------- rate bounds


def test_residual_rate_bound():
    """>= 100k subpixels: coded bits >= ideal information content (up to the
    24-bit quantization), and at most 0.1% + a few bytes of flush over it."""
    pixels = astronaut()[:192, :192]  # 110,592 subpixels
    for params in (logistic_for(pixels), mixture_for(pixels)):
        ideal = E.residual_bits(pixels, params)
        bits = 8 * len(E.encode_residual(pixels, params))
        assert bits >= ideal * (1 - 1e-5) - IMPLIED_BITS
        assert bits <= ideal * 1.001 + 64


def test_index_rate_bound():
    rng = np.random.default_rng(5)
    n = 36
    layers = [E.LayerIndices(np.full(2000, 60), rng.integers(0, n, 120_000))]
    ideal = 120_000 * math.log2(n)
    bits = 8 * len(E.encode_indices(layers, n))
    assert ideal - IMPLIED_BITS <= bits <= ideal * 1.001 + 64 + 8 * 8
    # A fixed table is coded at exactly its quantized information content.
    probs = np.linspace(1.0, 3.0, n)
    model = E.TableIndexModel(probs)
    freqs = E.freqs_from_pmf(probs)
    exact = E.table_bits(freqs, layers[0].indices)
    bits = 8 * (len(E.encode_indices(layers, n, model)) - 5)  # minus 5 bytes of varints
    assert exact - IMPLIED_BITS <= bits <= exact + 64


def test_rate_on_samples_from_the_model():
    """Pixels drawn from the model itself: coded bits track the entropy."""
    rng = np.random.default_rng(2)
    loc = rng.uniform(-20, 275, (64, 64, 30))
    log_scale = rng.uniform(-3, 5, loc.shape)
    u = rng.uniform(1e-12, 1 - 1e-12, loc.shape)
    pixels = np.clip(np.round(loc + np.exp(log_scale) * np.log(u / (1 - u))), 0, 255)
    pixels = pixels.astype(np.uint8)
    params = E.FloatLogistic(loc, log_scale)
    ideal = E.residual_bits(pixels, params)
    data = check_roundtrip(lambda x: E.encode_residual(x, params),
                           lambda b: E.decode_residual(b, params), pixels)
    assert ideal * (1 - 1e-5) - IMPLIED_BITS <= 8 * len(data) <= ideal * 1.001 + 64


# ------------------------------------------------------------- tables, edges


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=2, max_size=40),
       st.booleans())
def test_freqs_from_cdf_always_valid(values, sort):
    cdf = np.array(values, dtype=np.float64)
    if sort:
        cdf = np.sort(cdf)
    freqs = E.freqs_from_cdf(cdf[None])
    assert freqs.shape == (1, cdf.size - 1)
    assert freqs.min() >= 1 and freqs.sum() == 1 << tables.PRECISION
    np.testing.assert_array_equal(freqs, E.freqs_from_cdf(cdf[None]))
    w = tables.padded_coder_weights(cdf[None])
    assert w.min() >= 0 and w.sum(dtype=np.float64) == (1 << tables.PRECISION) - cdf.size


def test_freqs_from_cdf_is_proportional():
    cdf = np.array([[0.0, 0.25, 0.5, 0.5, 1.0]])
    f = E.freqs_from_cdf(cdf)[0]
    np.testing.assert_allclose(f / 2**24, [0.25, 0.25, 0.0, 0.5], atol=1e-6)
    assert f[2] == 1


@pytest.mark.parametrize("loc,log_scale", [
    (0.0, -16.0), (255.0, -16.0), (-1e6, 0.0), (1e6, 0.0), (127.3, 16.0),
    (15.5, -30.0), (240.0, 40.0), (100.0, -5.0)])
def test_residual_extreme_params(loc, log_scale):
    pixels = np.array([0, 1, 15, 16, 127, 128, 239, 240, 254, 255], np.uint8).reshape(2, 5, 1)
    params = E.FloatLogistic(np.full(pixels.shape, loc), np.full(pixels.shape, log_scale))
    check_roundtrip(lambda x: E.encode_residual(x, params),
                    lambda b: E.decode_residual(b, params), pixels)
    assert math.isfinite(E.residual_bits(pixels, params))


def test_edge_bins_take_the_tails():
    """P(0) = F(0.5) and P(255) = 1 - F(254.5): a pixel of 0 under loc=-50 is
    nearly free, and so is 255 under loc=300."""
    pixels = np.array([[[0], [255]]], np.uint8)
    params = E.FloatLogistic(np.array([[[-50.0], [300.0]]]), np.zeros((1, 2, 1)))
    assert E.residual_bits(pixels, params) < 1e-10
    assert len(E.encode_residual(pixels, params)) <= 4


def test_rescale_params():
    loc, log_scale = E.rescale_params(np.array([-1.0, 1.0]), np.array([0.0, 0.0]),
                                      centre0=-1.0, step=2 / 255)
    np.testing.assert_allclose(loc, [0.0, 255.0])
    np.testing.assert_allclose(log_scale, np.log(127.5))


def test_invalid_arguments_are_value_errors(crop32):
    params = logistic_for(crop32)
    with pytest.raises(ValueError, match="uint8"):
        E.encode_residual(crop32.astype(np.int32), params)
    with pytest.raises(ValueError, match="finite"):
        E.encode_residual(crop32, E.FloatLogistic(np.full(crop32.shape, np.nan), params.log_scale))
    with pytest.raises(ValueError, match=r"\[0, 36\)"):
        E.encode_indices([E.LayerIndices(np.array([1]), np.array([36]))], 36)
    with pytest.raises(ValueError, match="2 indices for 1 steps"):
        E.encode_indices([E.LayerIndices(np.array([1]), np.array([0, 1]))], 36)
    with pytest.raises(ValueError, match="num_candidates"):
        E.encode_indices([], (1 << 24) + 1)
    for bad in (dict(omega=-1.0), dict(omega=0.5), dict(omega=20.0), dict(beams=0),
                dict(beams=4097), dict(seed=2**32), dict(seed=-1)):
        with pytest.raises(ValueError, match="coder settings"):
            E.pack(E.Container(E.Header(TOY_MODEL, E.CoderSettings(**bad), 2, 2, 3), (b"",), 0), MODELS)
    with pytest.raises(ValueError, match="schedule"):  # the header cannot record another schedule
        s = E.CoderSettings(schedule=PowerLawSchedule(0.5))
        E.pack(E.Container(E.Header(TOY_MODEL, s, 2, 2, 3), (b"",), 0), MODELS)


def test_push_pop_pairs_share_one_stack(crop32):
    """Codecs composed on one ANS stack (as BB-ANS does): each pop returns what
    its push wrote, last pushed first; the pixels' pair is the residual's own."""
    rng = np.random.default_rng(5)
    params, quantized = logistic_for(crop32), quantized_for(crop32)
    symbols = rng.integers(0, 300, 50)
    weights = np.tile(tables.coder_weights(tables.freqs_from_pmf(np.linspace(1.0, 2.0, 300))), (50, 1))
    stack = E.new_stack()
    E.push_uniform(stack, symbols, 300)
    E.push_pixels(stack, crop32, params)
    E.push_categorical(stack, symbols[::-1], weights)
    E.push_pixels(stack, crop32, quantized)
    assert np.array_equal(E.pop_pixels(stack, quantized), crop32)
    assert np.array_equal(E.pop_categorical(stack, weights, "t"), symbols[::-1])
    assert np.array_equal(E.pop_pixels(stack, params), crop32)
    assert np.array_equal(E.pop_uniform(stack, 300, 50, "t"), symbols)
    assert stack.is_empty()
    with pytest.raises(ValueError, match="uint8 of shape"):
        E.push_pixels(stack, crop32[:8], params)


def test_entropy_does_not_import_jax():
    code = ("import sys, irec_jax.entropy; "
            "bad = [m for m in sys.modules if m == 'jax' or m.startswith(('jax.', "
            "'irec_jax.rec', 'irec_jax.models', 'flax'))]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------ malformed input


@pytest.fixture(scope="module")
def real_file(crop32):
    rng = np.random.default_rng(0)
    s = E.CoderSettings()
    return toy_compress(crop32, logistic_for(crop32), fake_layers(rng, num_candidates(s)),
                        TOY_MODEL, s)


@pytest.mark.parametrize("mutate,message", [
    (lambda d: b"PK" + d[2:], "not an .irec file"),
    (lambda d: d[:2] + b"\x07" + d[3:], "unsupported .irec format version 7"),
    (lambda d: d[:3] + bytes([d[3] | 0xC0]) + d[4:], "unsupported header flags"),  # stored and lossy
    (lambda d: d[:4] + b"\x05" + d[5:], "unknown model id 5"),
    (lambda d: d[:3] + bytes([d[3] | 0x20]) + d[4:6] + b"\x02" + d[6:], "truncated file: (tile|256 tiles)"),
    (lambda d: d[:5], "too short"),
    (lambda d: d[:-4] + bytes([d[-4] ^ 1]) + d[-3:], "CRC mismatch"),
    (lambda d: d[:-200] + d[-4:], "CRC mismatch|corrupt"),
])
def test_malformed_files_raise_format_error(real_file, crop32, mutate, message):
    with pytest.raises(FormatError, match=message):
        toy_decompress(mutate(real_file), logistic_for(crop32))


def test_padding_symbol_in_residual_is_format_error():
    """The 17th table entry is never written; corrupt data that decodes to it
    must be a FormatError, not an out-of-range pixel."""
    from irec_jax.entropy import _coder, residual
    pixels = np.zeros((1, 1, 1), np.uint8)
    params = E.FloatLogistic(np.zeros((1, 1, 1)), np.zeros((1, 1, 1)))
    weights = residual._weights(residual._level1_cdf(residual._flatten(params)))
    encoder = _coder.new_encoder()
    encoder.encode(np.array([16], np.int32), _coder.categorical_family(), weights)
    with pytest.raises(FormatError, match="padding symbol"):
        E.decode_residual(_coder.finish(encoder), params)
    assert E.decode_residual(E.encode_residual(pixels, params), params)[0, 0, 0] == 0


def test_unknown_explicit_model_and_bad_settings():
    c = E.Container(E.Header(E.ModelRef("mystery", b"abcd"), E.CoderSettings(), 4, 4, 3),
                    (b"",), 0)
    data = E.pack(c, ())
    with pytest.raises(FormatError, match="unknown model 'mystery' \\(params 61626364\\)"):
        E.unpack(data, MODELS)
    c = E.Container(E.Header(TOY_MODEL, E.CoderSettings(omega=2.0), 4, 4, 3), (b"",), 0)
    data = bytearray(E.pack(c, MODELS))
    data[6] = 0x01  # omega: raw float64 follows...
    with pytest.raises(FormatError):
        E.unpack(bytes(data[:7]) + b"\x7f\xf8" + b"\0" * 6 + bytes(data[8:]), MODELS)


def test_header_settings_beyond_the_coder_limits_are_format_errors():
    """The container accepts exactly what the coder accepts: seed < 2^32 in a
    header, else FormatError naming the field; the beam width is not a
    header field (mask bit 3 is unused)."""
    from irec_jax.rec import RecSettings
    assert RecSettings is E.CoderSettings
    for mask, value, field in [(0x04, 2**32, "seed"), (0x04, 2**64 - 1, "seed")]:
        out = bytearray(E.MAGIC + bytes([E.VERSION, 0x01]) + b"\x00" + bytes([mask]))
        _bytes.put_uvarint(out, value)
        data = bytes(out) + b"\x04" + b"\0" * 8
        with pytest.raises(FormatError, match=f"invalid coder settings in the header: {field}"):
            E.unpack(data, MODELS)
    with pytest.raises(FormatError, match="unsupported settings mask"):
        E.unpack(E.MAGIC + bytes([E.VERSION, 0x01]) + b"\x00\x08\x01\x04" + b"\0" * 8, MODELS)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=24))
def test_any_settings_bytes_give_valid_settings_or_format_error(raw):
    """Whatever bytes sit where the settings go, unpack returns settings a
    decoder can use (2 <= N <= 2**24) or raises FormatError."""
    data = E.MAGIC + bytes([E.VERSION, 0x01]) + b"\x00" + raw + b"\x04" + b"\0" * 8
    try:
        s = E.unpack(data, MODELS).header.settings
    except FormatError:
        return
    assert 2 <= s.num_candidates <= 1 << 24 and s.beams >= 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.sampled_from(["uniform", "table", "adaptive"]),
       st.sampled_from([2, 36, 1 << 24]))
def test_random_bytes_never_crash_section_decoders(raw, model_name, n):
    """Arbitrary bytes: FormatError or well-formed output, nothing else."""
    model = _golden_index_model(model_name, n) if n < 1 << 20 else E.UniformIndexModel()
    try:
        layers = E.decode_indices(raw, n, model)
    except FormatError:
        pass
    else:
        for layer in layers:
            assert layer.steps.min(initial=1) >= 1
            assert layer.indices.size == layer.steps.sum()
            assert layer.indices.size == 0 or 0 <= layer.indices.min() <= layer.indices.max() < n
    params = E.FloatLogistic(np.linspace(-10, 270, 40).reshape(2, 4, 5), np.full((2, 4, 5), 1.0))
    try:
        pixels = E.decode_residual(raw, params)
    except FormatError:
        return
    assert pixels.dtype == np.uint8 and pixels.shape == (2, 4, 5)


def test_index_section_rejects_oversized_declarations():
    queue = E.new_queue()
    E.push_count(queue, 1 << 30)  # a billion blocks...
    data = b"\x04" + E.finish_queue(queue)  # one layer, uniform model
    with pytest.raises(FormatError, match="1073741824 blocks declared"):
        E.decode_indices(data, 36)
    queue = E.new_queue()
    E.push_count(queue, 3)
    E.push_count(queue, 1 << 39)  # ...or steps
    E.push_count(queue, 0)
    with pytest.raises(FormatError, match="exceed what the payload can hold"):
        E.decode_indices(b"\x04" + E.finish_queue(queue), 36)
    with pytest.raises(FormatError, match="adaptive index model, the reader uses the uniform"):
        E.decode_indices(E.encode_indices([], 36, E.AdaptiveIndexModel()), 36)
    with pytest.raises(FormatError, match="layers declared, only 0 bytes follow"):
        E.decode_indices(b"\xfc\xff\xff\x0f", 36)


# ------------------------------------------------------------------- golden


def _golden_cases() -> dict[str, dict]:
    img = astronaut()
    rng = np.random.default_rng(1234)
    return {
        "default_32x32_rgb": dict(
            pixels=img[300:332, 180:212], family="logistic", model=0,
            settings=E.CoderSettings(), index_model="uniform",
            layers=fake_layers(rng, 36)),
        "mixture_explicit_model": dict(
            pixels=img[60:84, 300:340], family="mixture", model=1,
            settings=E.CoderSettings(omega=2.5, epsilon=0.0, beams=10, seed=77),
            index_model="adaptive", layers=fake_layers(rng, 12)),
        "gray_table_indices": dict(
            pixels=img[400:416, 10:30, 1:2], family="logistic", model=0,
            settings=E.CoderSettings(omega=3.0, epsilon=0.2, beams=20, seed=5),
            index_model="table", layers=fake_layers(rng, 36)),
        "quantized_40x24_rgb": dict(
            pixels=img[200:224, 100:140], family="quantized", model=0,
            settings=E.CoderSettings(), index_model="uniform",
            layers=fake_layers(rng, 36)),
        "coupled_30x20_rgb": dict(
            pixels=img[240:260, 150:180], family="coupled", model=0,
            settings=E.CoderSettings(), index_model="uniform",
            layers=fake_layers(rng, 36)),
    }


def _golden_index_model(name: str, n: int) -> E.IndexModel:
    return {"uniform": E.UniformIndexModel(),
            "table": E.TableIndexModel(np.linspace(2.0, 1.0, n)),
            "adaptive": E.AdaptiveIndexModel()}[name]


def _save_inputs(path: pathlib.Path, case: dict) -> None:
    base = {"logistic": logistic_for, "mixture": mixture_for, "quantized": quantized_for,
            "coupled": coupled_for}[case["family"]](case["pixels"])
    arrays = {f"param_{k}": v for k, v in vars(base).items()}
    for i, layer in enumerate(case["layers"]):
        arrays[f"steps_{i}"], arrays[f"indices_{i}"] = layer.steps, layer.indices
    np.savez_compressed(path, pixels=case["pixels"], **arrays)


def _load_inputs(path: pathlib.Path, family: str):
    z = np.load(path)
    if family == "quantized":
        base = E.QuantizedLogistic(z["param_loc"], z["param_inv_scale"])
    elif family == "coupled":
        base = E.QuantizedMixture(z["param_weight"], z["param_loc"], z["param_inv_scale"], z["param_coef"])
    elif family == "logistic":
        base = E.FloatLogistic(z["param_loc"], z["param_log_scale"])
    else:
        base = E.FloatLogisticMixture(z["param_logits"], z["param_loc"], z["param_log_scale"])
    layers = [E.LayerIndices(z[f"steps_{i}"], z[f"indices_{i}"])
              for i in range(sum(k.startswith("steps_") for k in z.files))]
    return z["pixels"], base, layers


@pytest.mark.parametrize("name", sorted(_golden_cases()))
def test_golden_bitstreams(name):
    case = _golden_cases()[name]
    inputs, golden = GOLDEN_DIR / f"{name}.npz", GOLDEN_DIR / f"{name}.irec"
    if REGEN:
        _save_inputs(inputs, case)
    pixels, base, layers = _load_inputs(inputs, case["family"])
    model = MODELS[case["model"]]
    known = MODELS if case["model"] == 0 else (TOY_MODEL,)  # model 1: written by name
    index_model = _golden_index_model(case["index_model"], num_candidates(case["settings"]))
    data = toy_compress(pixels, base, layers, model, case["settings"], index_model, known)
    if REGEN:
        golden.write_bytes(data)
    assert data == golden.read_bytes(), (
        f"{golden.name}: the byte format changed; if intended, bump VERSION and "
        "regenerate with IREC_REGEN_GOLDEN=1")
    np.testing.assert_array_equal(toy_decompress(golden.read_bytes(), base, index_model),
                                  pixels)


@pytest.mark.parametrize("name", sorted(p.stem for p in (GOLDEN_DIR / "v5").glob("*.irec")))
def test_format_5_bitstreams_still_decode(name):
    """The golden bitstreams as format 5 wrote them (each stream sealed with a whole 32-bit word, then
    its trailing zero bytes dropped) decode to the same pixels, and they are longer than today's by
    the bytes that ending wasted."""
    case = _golden_cases()[name]
    pixels, base, _ = _load_inputs(GOLDEN_DIR / f"{name}.npz", case["family"])
    old = (GOLDEN_DIR / "v5" / f"{name}.irec").read_bytes()
    new = (GOLDEN_DIR / f"{name}.irec").read_bytes()
    assert (old[2], new[2]) == (5, 6) and old[3:8] == new[3:8] and len(new) < len(old)
    assert E.unpack(old, MODELS).header.version == 5
    index_model = _golden_index_model(case["index_model"], num_candidates(case["settings"]))
    np.testing.assert_array_equal(toy_decompress(old, base, index_model), pixels)


def _random_pushes(rng: np.random.Generator) -> list[tuple[str, int | np.ndarray, np.ndarray]]:
    """A random queue's contents: runs of uniform symbols (alphabets as the codec uses them) and of
    categorical ones under skewed tables (long runs of likely symbols, the carry's worst case)."""
    runs = []
    for _ in range(int(rng.integers(1, 5))):
        n = int(rng.integers(1, 400))
        if rng.random() < 0.5:
            size = int(rng.choice([2, 3, 36, 735, 1 << 16, 1 << 24]))
            runs.append(("uniform", size, rng.integers(0, size, n)))
        else:
            probs = rng.dirichlet(np.full(int(rng.integers(2, 17)), rng.choice([0.05, 1.0])))
            weights = tables.coder_weights(tables.freqs_from_pmf(probs))
            runs.append(("categorical", weights, rng.choice(probs.size, n, p=probs)))
    return runs


def _rows(weights: np.ndarray, n: int) -> np.ndarray:
    return np.broadcast_to(weights, (n, weights.size))


def _decodes(data: bytes, runs: list) -> bool:
    queue = E.open_queue(data, "stream")
    try:
        for kind, model, symbols in runs:
            out = (E.pop_uniform(queue, model, symbols.size, "stream") if kind == "uniform"
                   else E.pop_categorical(queue, _rows(model, symbols.size), "stream"))
            if not np.array_equal(out, symbols):
                return False
    except FormatError:
        return False
    return True


def test_streams_end_with_the_fewest_bytes_that_decode():
    """`finish_queue` writes the shortest byte string whose zero-padded fraction lies in the coder's
    final interval: it decodes every symbol, is never longer than constriction's whole-word seal, and
    neither (m - 1)-byte string next to it (its prefix, or the prefix plus one) decodes (the only
    two that could, so none shorter does)."""
    rng = np.random.default_rng(2026)
    saved = []
    for _ in range(300):
        runs = _random_pushes(rng)
        queue = E.new_queue()
        for kind, model, symbols in runs:
            if kind == "uniform":
                E.push_uniform(queue, symbols, model)
            else:
                E.push_categorical(queue, symbols, _rows(model, symbols.size))
        data = E.finish_queue(queue)
        sealed = np.asarray(queue.get_compressed(), ">u4").tobytes().rstrip(b"\0")
        assert len(data) <= len(sealed) and _decodes(data, runs)
        if data:
            prefix = int.from_bytes(data[:-1], "big")
            shorter = [data[:-1]] + ([(prefix + 1).to_bytes(len(data) - 1, "big")]
                                     if prefix + 1 < 256 ** (len(data) - 1) else [])
            assert not any(_decodes(s, runs) for s in shorter)
        saved.append(len(sealed) - len(data))
    assert 1.0 < np.mean(saved) < 3.0  # the seal wrote 32 bits where about 16 were needed
    assert E.finish_queue(E.new_queue()) == b""


@pytest.mark.parametrize("name", sorted(_golden_cases()))
def test_format_4_bitstreams_still_decode(name):
    """The golden bitstreams as format 4 wrote them (uniform count lengths and step offsets, k / 1000
    floats) decode to the same pixels with ``version=4`` read from their header."""
    case = _golden_cases()[name]
    pixels, base, _ = _load_inputs(GOLDEN_DIR / f"{name}.npz", case["family"])
    data = (GOLDEN_DIR / "v4" / f"{name}.irec").read_bytes()
    assert data[2] == 4 and E.unpack(data, MODELS).header.version == 4
    index_model = _golden_index_model(case["index_model"], num_candidates(case["settings"]))
    np.testing.assert_array_equal(toy_decompress(data, base, index_model), pixels)


# --------------------------------------------------------------------- fuzz


@pytest.fixture(scope="module")
def fuzz_corpus():
    """Real .irec files of astronaut crops, with the likelihoods to decode them."""
    img = astronaut()
    rng = np.random.default_rng(7)
    corpus = []
    for (y, x, h, w), family, s in [
            ((120, 200, 24, 24), "logistic", E.CoderSettings()),
            ((300, 330, 16, 20), "mixture", E.CoderSettings(omega=2.0, epsilon=0.0, seed=9))]:
        pixels = img[y:y + h, x:x + w]
        base = logistic_for(pixels) if family == "logistic" else mixture_for(pixels)
        data = toy_compress(pixels, base, fake_layers(rng, num_candidates(s)), TOY_MODEL, s)
        corpus.append((data, pixels, base))
    return corpus


def mutate(data: bytes, kind: int, pos: int, value: int) -> bytes:
    """One mutation of `data`: truncate, flip a bit, overwrite, insert or
    delete a byte, or flip several bits."""
    pos %= len(data)
    if kind == 0:
        return data[:pos]
    if kind == 1:
        return data[:pos] + bytes([data[pos] ^ (1 << (value % 8))]) + data[pos + 1:]
    if kind == 2:
        return data[:pos] + bytes([value % 256]) + data[pos + 1:]
    if kind == 3:
        return data[:pos] + bytes([value % 256]) + data[pos:]
    if kind == 4:
        return data[:pos] + data[pos + 1:]
    out = bytearray(data)
    for i in range(1 + value % 4):
        p = (pos + 97 * i * (value + 1)) % len(data)
        out[p] ^= 1 << ((value >> i) % 8)
    return bytes(out)


def decode_outcome(data: bytes, pixels: np.ndarray, base) -> str:
    """'error' (FormatError) or 'exact' (the original image); anything else
    (another exception, a wrong image) fails the test."""
    try:
        out = toy_decompress(data, base)
    except FormatError:
        return "error"
    if out.shape == pixels.shape and np.array_equal(out, pixels):
        return "exact"
    return "WRONG IMAGE"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 1), kind=st.integers(0, 5), pos=st.integers(0, 10**6),
       value=st.integers(0, 255))
def test_fuzz_mutations(fuzz_corpus, which, kind, pos, value):
    data, pixels, base = fuzz_corpus[which]
    mutated = mutate(data, kind, pos, value)
    assert decode_outcome(mutated, pixels, base) in ("error", "exact")


@pytest.mark.slow
def test_fuzz_10000_mutations(fuzz_corpus):
    """10,000 seeded mutations: zero hangs (every decode < 5 s), zero
    exceptions other than FormatError, zero wrong images."""
    rng = np.random.default_rng(2024)
    counts = {"error": 0, "exact": 0}
    worst = 0.0
    for i in range(10_000):
        data, pixels, base = fuzz_corpus[i % len(fuzz_corpus)]
        mutated = mutate(data, int(rng.integers(6)), int(rng.integers(len(data))),
                         int(rng.integers(256)))
        t0 = time.perf_counter()
        outcome = decode_outcome(mutated, pixels, base)
        worst = max(worst, time.perf_counter() - t0)
        assert outcome in counts, f"mutation {i}: {outcome}"
        counts[outcome] += 1
    print(f"\nfuzz: 10000 mutations, {counts['error']} FormatError, {counts['exact']} "
          f"exact original image, 0 other exceptions, 0 wrong images, "
          f"slowest decode {worst * 1e3:.1f} ms")
    assert worst < 5.0


# ----------------------------------------- coupled integer mixtures


def coupled_for(pixels: np.ndarray, k: int = 3, seed: int = 0) -> E.QuantizedMixture:
    """A QuantizedMixture around ``predictor_params`` with random weights and
    coupling coefficients (what a coupled model's integer head produces)."""
    rng = np.random.default_rng(seed)
    loc, log_scale = predictor_params(pixels)
    h, w, c = pixels.shape
    offsets = np.linspace(-6.0, 6.0, k)
    weight = rng.integers(0, 1 << 16, (h, w, c, k))
    weight[..., 0] = 1 << 16
    return E.QuantizedMixture(
        weight=weight, loc=np.round((loc[..., None] + offsets) * 2048).astype(np.int32),
        inv_scale=np.round(65536 * np.exp(-log_scale[..., None] - np.linspace(-0.5, 0.5, k))).astype(np.int32),
        coef=rng.integers(-(1 << 14), (1 << 14) + 1, (h, w, c * (c - 1) // 2, k)))


@pytest.mark.parametrize("shape", [(37, 29, 3), (16, 9, 1), (1, 1, 3), (70, 80, 3)])
def test_coupled_mixture_round_trips_on_a_queue_and_a_stack(shape):
    rng = np.random.default_rng(sum(shape))
    img = rng.integers(0, 256, shape).astype(np.uint8)
    img[: shape[0] // 2] = np.clip(img[: shape[0] // 2] // 8 + 100, 0, 255)  # some predictable pixels
    params = coupled_for(img)
    q = E.new_queue()
    bits = E.push_pixels(q, img, params)
    data = E.finish_queue(q)
    np.testing.assert_array_equal(E.pop_pixels(E.open_queue(data, "x"), params), img)
    assert bits == pytest.approx(E.coded_bits(img, params), rel=1e-12) == E.residual_bits(img, params)
    assert bits - IMPLIED_BITS <= 8 * len(data) <= bits + 64
    stack = E.new_stack()
    E.push_pixels(stack, img, params)
    np.testing.assert_array_equal(E.pop_pixels(stack, params), img)


@pytest.mark.parametrize("workers", [2, 3])
def test_mixture_tables_built_in_row_slices_on_threads_are_the_same_integers(workers):
    """push/pop build a mixture unit's tables in row slices on threads where there are cores; the
    tables, the bytes and the bits are those of one piece (a full unit has 2,730 pixels: 2 slices)."""
    from concurrent.futures import ThreadPoolExecutor

    from irec_jax.entropy import residual

    img = astronaut()[:96, :120]
    params = coupled_for(img)
    with ThreadPoolExecutor(workers - 1) as pool:
        threads = residual._Threads(pool, workers)
        serial, sliced = residual.PixelTables(params), residual.PixelTables(params, threads)
        x = img.reshape(-1).astype(np.int64)
        units = list(serial.units())
        for unit in units:
            (w1, ctx), (v1, sctx) = serial.groups(unit, x), sliced.groups(unit, x)
            group = x[unit] // 16
            np.testing.assert_array_equal(w1, v1)
            np.testing.assert_array_equal(serial.offsets(ctx, group), sliced.offsets(sctx, group))
        assert max(len(sliced.groups(u, x)[1]) for u in units) == min(workers, 2730 // residual._MIN_SLICE_ROWS)
        queue, sliced_queue = E.new_queue(), E.new_queue()
        bits = residual._push_pixels(queue, img, serial)
        assert residual._push_pixels(sliced_queue, img, sliced) == bits
        data = E.finish_queue(queue)
        assert E.finish_queue(sliced_queue) == data
        np.testing.assert_array_equal(residual._pop_pixels(E.open_queue(data, "x"), sliced, "x"), img)
        assert residual._coded_bits(img, sliced) == pytest.approx(bits, rel=1e-12)


def test_coupling_changes_the_code_and_wrong_coefficients_decode_wrong_pixels():
    img = astronaut()[200:232, 240:272]
    params = coupled_for(img)
    flat = E.QuantizedMixture(params.weight, params.loc, params.inv_scale, np.zeros_like(params.coef))
    data = E.encode_residual(img, params)
    assert data != E.encode_residual(img, flat)
    assert not np.array_equal(E.decode_residual(data, flat), img)


def test_quantized_mixture_params_are_checked():
    img = np.zeros((4, 5, 3), np.uint8)
    p = coupled_for(img)
    with pytest.raises(ValueError, match="coef"):
        E.encode_residual(img, E.QuantizedMixture(p.weight, p.loc, p.inv_scale, p.coef[..., :2, :]))
    with pytest.raises(ValueError, match="out of range"):
        E.encode_residual(img, E.QuantizedMixture(np.zeros_like(p.weight), p.loc, p.inv_scale, p.coef))
    with pytest.raises(ValueError, match="integers"):
        E.encode_residual(img, E.QuantizedMixture(p.weight, p.loc.astype(float), p.inv_scale, p.coef))
    with pytest.raises(ValueError, match="shape"):
        E.encode_residual(img[:, :4], p)
