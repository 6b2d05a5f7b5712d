"""The numpy reference decoder (``irec_jax.reference``) agrees bit for bit with the JAX decoder."""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from irec_jax import FormatError, codec, entropy, imageio, reference
from irec_jax.assets import bundled_images
from irec_jax.exact import intops, tables

GOLDEN = os.path.join(os.path.dirname(__file__), "data", "codec")


def _photo(name: str) -> np.ndarray:
    return imageio.read_image(next(p for p in bundled_images() if p.endswith(name)))


@functools.lru_cache(maxsize=None)
def _crop_file() -> bytes:
    """One fresh 32x32 file, shared by the tests below that need any valid file."""
    return codec.compress(_photo("kodim23_crop1_32.png"), fallback=False)


def _check(data: bytes, img: np.ndarray) -> None:
    ref = reference.decode(data)
    assert ref.dtype == np.uint8 and ref.shape == img.shape
    np.testing.assert_array_equal(ref, codec.decompress(data))
    np.testing.assert_array_equal(ref, img)


# ---------------------------------------------------------------------------
# Whole files.


@pytest.mark.parametrize("name, gray", [("kodim23_crop1_32.png", False), ("sail_crop0_32.png", True)])
def test_golden_files(name, gray):
    """The golden files of tests/test_codec.py (made the same way). Files of an
    older format version cannot be decoded by either decoder; until they are
    regenerated, the same image is encoded afresh instead."""
    img = _photo(name)
    if gray:
        img = img[..., 1:2]
    with open(os.path.join(GOLDEN, name.replace(".png", "_gray" if gray else "") + ".irec"), "rb") as f:
        data = f.read()
    if data[2] != entropy.VERSION:
        data = _crop_file() if not gray else codec.compress(img, fallback=False)
    _check(data, img)


_FRESH = {
    "photo_64": lambda: (_photo("tulips_64.png"), None),
    "odd_rgb_17x23": lambda: (_photo("kodim23_64.png")[5:22, 7:30], None),
    "gray_25x27": lambda: (_photo("sail_64.png")[10:35, 3:30, 1:2], None),
    "one_pixel": lambda: (_photo("monarch_crop0_32.png")[:1, :1], None),
    "flat_rgb_6x9": lambda: (np.full((6, 9, 3), 77, np.uint8), None),
    "settings": lambda: (_photo("monarch_crop1_32.png"),
                         codec.coder_settings(omega=2.0, epsilon=0.0, beams=4, seed=7)),
}


@pytest.mark.parametrize("case", sorted(_FRESH))
def test_fresh_encodes(case):
    img, settings = _FRESH[case]()
    _check(codec.compress(img, settings=settings, fallback=False), img)  # the model's coding
    _check(codec.compress(img, settings=settings), img)  # the smaller of it and the stored mode


@pytest.mark.parametrize("case", ["gray_25x27", "flat_rgb_6x9"])
def test_stored_mode_files(case):
    """Files the codec writes in stored mode (the model's coding was larger) decode alike."""
    img, _ = _FRESH[case]()
    data, rep = codec.compress_report(img)
    assert rep.stored
    _check(data, img)


@pytest.mark.parametrize("predict_scale", [False, True])
def test_other_logistic_model_folders(tmp_path, predict_scale):
    """Model folders that are not the bundled one (named in the header by name
    and hash) with the logistic head, with a learned per-channel raw scale
    (predict_scale=False) or a predicted one; RGB and grayscale."""
    import jax

    from irec_jax import modelzoo
    from irec_jax.models import RVAE, RVAEConfig, integer
    cfg = RVAEConfig(num_layers=2, det_channels=8, stoch_channels=4, predict_scale=predict_scale)
    params = RVAE(cfg).init(jax.random.key(4))
    if not predict_scale:
        params["head"]["raw_scale"] = np.array([-0.5, 0.0, 0.7], np.float32)
    cm = modelzoo.CodecModel("logistic-test", cfg, integer.quantize(cfg, params))
    folder = modelzoo.export_model(cm, str(tmp_path / "model"))
    img = _photo("tulips_crop0_32.png")[2:31, :27]
    for image in (img, img[..., :1]):
        data = codec.compress(image, model=folder, fallback=False)
        np.testing.assert_array_equal(reference.decode(data, model_dir=folder), image)
        np.testing.assert_array_equal(codec.decompress(data, model=folder), image)
    with pytest.raises(FormatError, match="unknown model"):
        reference.decode(data)


def test_corrupt_file_is_refused_like_the_jax_decoder():
    data = bytearray(_crop_file())
    data[-1] ^= 1  # the pixel CRC
    for dec in (codec.decompress, reference.decode):
        with pytest.raises(FormatError, match="CRC"):
            dec(bytes(data))


def test_reference_runs_without_jax(tmp_path):
    """Independence: the reference decoder works in a process where JAX cannot be imported."""
    img = _photo("kodim23_crop1_32.png")
    (tmp_path / "x.irec").write_bytes(_crop_file())
    np.save(tmp_path / "want.npy", img)
    code = (
        "import sys\n"
        "for m in ('jax', 'jaxlib', 'flax'):\n"
        "    sys.modules[m] = None\n"
        "import numpy as np\n"
        "from irec_jax import reference\n"
        "out = reference.decode(open(sys.argv[1], 'rb').read())\n"
        "assert (out == np.load(sys.argv[2])).all(), 'pixels differ'\n"
        "loaded = [m for m, v in sys.modules.items() if m.startswith(('jax', 'flax')) and v]\n"
        "assert not loaded, loaded\n"
        "print('ok')\n")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.irec"), str(tmp_path / "want.npy")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


# ---------------------------------------------------------------------------
# Primitives against the JAX ones.


def test_mul_shift_and_round_shift_match_intops():
    rng = np.random.default_rng(0)
    n = 20000
    a = np.concatenate([rng.integers(-(1 << 31), 1 << 31, n), rng.integers(-(1 << 16), 1 << 16, n),
                        [-(1 << 31), (1 << 31) - 1, -1, 0, 1, 32767, -32768, 65535, -65536] * 8])
    mant = np.concatenate([rng.integers(0, (1 << 15) + 1, 2 * n), np.repeat([0, 1, 1 << 14, 1 << 15], 18)])
    # The conv rescale's domain (split 16: shifts 17..46); tests/test_models_integer.py covers the others.
    shift = np.concatenate([rng.integers(17, 47, 2 * n), np.tile([17, 18, 30, 45, 46, 31, 17, 20, 40], 8)])
    exact = np.array([(int(x) * int(m) + ((1 << int(s)) >> 1)) >> int(s) for x, m, s in zip(a, mant, shift)],
                     dtype=object)
    fits = np.array([-(1 << 31) <= e < (1 << 31) for e in exact])
    assert fits.all()
    exact = exact.astype(np.int64)
    got = reference.mul_shift(a, mant, shift)
    np.testing.assert_array_equal(got, exact)
    np.testing.assert_array_equal(got, np.asarray(intops.mul_shift(jnp.asarray(a, jnp.int32),
                                                                   jnp.asarray(mant, jnp.int32),
                                                                   jnp.asarray(shift, jnp.int32))))
    with pytest.raises(OverflowError):
        reference.mul_shift((1 << 31) - 1, 1 << 15, 0)
    small = rng.integers(-(1 << 30), 1 << 30, n)
    for s in (1, 4, 10):
        np.testing.assert_array_equal(reference.round_shift(small, s),
                                      np.asarray(intops.round_shift(jnp.asarray(small, jnp.int32), s)))
    x = np.concatenate([rng.integers(-20000, 20000, n), [-8192, -8191, -8190, -1, 0, 1]])
    np.testing.assert_array_equal(reference.elu(x), np.asarray(intops.elu(jnp.asarray(x, jnp.int32),
                                                                          jnp.asarray(tables.elu_table()))))


def test_convs_match_intops():
    rng = np.random.default_rng(1)
    x = rng.integers(-3000, 40000, (1, 5, 7, 6))  # some inputs beyond the 2^15 clip
    for o, kind in ((5, "conv"), (3, "deconv")):
        cols = o if kind == "conv" else 4 * o
        w = rng.integers(-127, 128, (54, cols))
        mant, shift = rng.integers(1 << 14, 1 << 15, o), rng.integers(17, 30, o)
        bias = rng.integers(-5000, 5000, o)
        jargs = (jnp.asarray(x, jnp.int32), jnp.asarray(w, jnp.float32), jnp.asarray(mant, jnp.int32),
                 jnp.asarray(shift, jnp.int32), jnp.asarray(bias, jnp.int32))
        ref_fn, jax_fn = ((reference.conv3x3, intops.conv3x3) if kind == "conv"
                          else (reference.deconv5x5s2, intops.deconv5x5s2))
        np.testing.assert_array_equal(ref_fn(x[0], w, mant, shift, bias), np.asarray(jax_fn(*jargs))[0])


def test_threefry_matches_jax_and_known_answer():
    from irec_jax.rec import rng as jrng

    # Random123's known-answer vector for Threefry-2x32-20.
    y0, y1 = reference.threefry2x32(0x13198A2E, 0x03707344, 0x243F6A88, 0x85A308D3)
    assert (int(y0), int(y1)) == (0xC4923A9C, 0x483DF7A0)
    r = np.random.default_rng(2)
    k0, k1, x0, x1 = (r.integers(0, 1 << 32, 5000, dtype=np.uint64) for _ in range(4))
    want = jrng._hash(*(jnp.asarray(v.astype(np.uint32)) for v in (k0, k1, x0, x1)))
    got = reference.threefry2x32(k0, k1, x0, x1)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, np.asarray(w).astype(np.uint64))
    # Keys, candidates, signs and paths as the coder uses them.
    key = jrng.layer_key(jnp.uint32(7), jnp.uint32(3))
    ref_key = reference.threefry2x32(7, reference.REC_TAG, 3, 0)
    np.testing.assert_array_equal(np.asarray(key).astype(np.uint64), np.array(ref_key))
    positions = np.arange(300)
    table = jnp.asarray(tables.normal_quantiles())
    for index in (0, 1, 2, 35, 1 << 23, (1 << 24) - 1):
        want = jrng.one_candidate(key, jnp.uint32(index), jnp.asarray(positions, jnp.uint32), table)
        np.testing.assert_array_equal(reference.one_candidate(ref_key, index, positions), np.asarray(want))
    for path in (0, 1, 0xDEADBEEF):
        beam = reference.threefry2x32(*ref_key, path, 0)[0]
        assert int(beam) == int(jrng.path_key(key, jnp.uint32(path)))
        assert int(reference.threefry2x32(*ref_key, path, 36)[0]) == int(
            jrng.extend_path(key, jnp.uint32(path), jnp.uint32(35)))
        want = jrng.signs(jnp.uint32(int(beam)), jnp.asarray(positions, jnp.uint32))
        np.testing.assert_array_equal(reference.signs(beam, positions), np.asarray(want))
    for seed, stream, size in ((0, 0, 1), (7, 3, 1000), ((1 << 32) - 1, 5, 777)):
        np.testing.assert_array_equal(reference.permutation(seed, stream, size),
                                      jrng.permutation(seed, stream, size))


def test_schedule_and_reconstruction_match_rec():
    from irec_jax import rec
    from irec_jax.rec import schedule

    for k in list(range(1, 40)) + [100, 1000]:
        v = reference.power_law_variances(k)
        assert tuple(v) == rec.PowerLawSchedule().step_variances(k) and sum(v) == 1 << 30
        mant, shift = schedule.step_scales(np.array(v))
        assert [reference.step_scale(x) for x in v] == list(zip(mant.tolist(), shift.tolist()))
    assert reference.step_scale(0) == (0, 30)
    r = np.random.default_rng(3)
    shape, num = (6, 5, 8), 36
    loc = r.integers(-3000, 3000, shape)
    mant, shift = r.integers(1 << 14, 1 << 15, shape), r.integers(9, 34, shape)
    for seed, stream, nb in ((0, 0, 1), (9, 2, 4), (123, 1, 240)):
        steps = r.integers(1, 12, nb)
        indices = r.integers(0, num, int(steps.sum()))
        settings = rec.RecSettings(seed=seed)
        want = rec.decode(rec.RecCode(steps, indices, num), loc / 1024.0,
                          np.ldexp(mant.astype(float), -shift), settings, stream=stream)
        got = reference.reconstruct(steps, indices, loc.ravel(), mant.ravel(), shift.ravel(), seed, stream)
        np.testing.assert_array_equal(got.reshape(shape), np.round(np.asarray(want, np.float64) * 1024))
