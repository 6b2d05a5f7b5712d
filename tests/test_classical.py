"""Classical lossless codecs of the benchmark: bit-exact round trips, real file bytes, honest availability."""

import numpy as np
import pytest

from irec_jax.benchmark.classical import CLASSICAL_NAMES, as_hwc, available_codecs, classical_codecs, classical_row


def _tiny_rgb():
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:9, 0:11]
    smooth = np.stack([yy * 20, xx * 15, (yy + xx) * 9], -1)
    return np.clip(smooth + rng.integers(-20, 21, (9, 11, 3)), 0, 255).astype(np.uint8)


def _tiny_gray():
    return np.random.default_rng(8).integers(0, 256, (7, 5, 1), dtype=np.uint8)


# What each format's file starts with: the bytes are whole files, not bare payloads.
_MAGIC = {
    "PNG": lambda b: b[:8] == b"\x89PNG\r\n\x1a\n",
    "WebP": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
    "JPEG2000": lambda b: b[:4] == b"\xff\x4f\xff\x51",  # J2K codestream SOC + SIZ
    "JPEG-LS": lambda b: b[:2] == b"\xff\xd8",
    "JPEG-XL": lambda b: b[:2] == b"\xff\x0a",  # bare JPEG XL codestream
    "AVIF": lambda b: b[4:8] == b"ftyp",
}


@pytest.mark.parametrize("name", CLASSICAL_NAMES)
@pytest.mark.parametrize("image", [_tiny_rgb, _tiny_gray], ids=["rgb", "gray"])
def test_round_trip_is_bit_exact_or_codec_reports_unavailable(name, image):
    (codec,) = classical_codecs([name])
    img = image()
    if codec.unavailable is not None:
        # Not runnable here: the row must say why, in words, and never pretend.
        assert isinstance(codec.unavailable, str) and codec.unavailable.strip()
        assert available_codecs()[name] == codec.unavailable
        return
    data = codec.encode(img)
    assert isinstance(data, bytes) and len(data) > 0
    assert _MAGIC[name](data), f"{name}: {data[:12]!r} is not the start of a {name} file"
    out = codec.decode(data)
    assert out.dtype == np.uint8 and out.shape == img.shape
    np.testing.assert_array_equal(out, img)


def test_available_codecs_names_every_row():
    status = available_codecs()
    assert list(status) == list(CLASSICAL_NAMES)
    for reason in status.values():
        assert reason is None or (isinstance(reason, str) and reason)
    assert status["PNG"] is None  # Pillow is a hard dependency


def test_missing_library_reports_unavailable():
    def encode(img):
        raise ImportError("No module named 'notacodec'")

    codec = classical_row("Missing", "a codec whose library is absent", encode, lambda b: None)
    assert codec.unavailable.startswith("library not installed")


def test_lossy_codec_reports_not_lossless():
    (png,) = classical_codecs(["PNG"])

    def lossy_encode(img):
        return png.encode_fn(img & 0xFE)  # drops the lowest bit: not lossless

    codec = classical_row("Lossy", "drops a bit", lossy_encode, png.decode_fn)
    assert "not lossless" in codec.unavailable


def test_names_are_case_insensitive_and_unknown_names_fail():
    assert [c.name for c in classical_codecs(["png", "jpeg-xl"])] == ["PNG", "JPEG-XL"]
    with pytest.raises(ValueError, match="unknown classical codec"):
        classical_codecs(["FLIF"])


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3), np.float32),
                                 np.zeros((4,), np.uint8)])
def test_bad_input_raises_value_error_quoting_shape(bad):
    (codec,) = classical_codecs(["PNG"])
    with pytest.raises(ValueError, match=r"shape|dtype"):
        codec.encode(bad)


def test_as_hwc_adds_channel_axis():
    assert as_hwc(np.zeros((3, 2), np.uint8)).shape == (3, 2, 1)
