"""Stored mode: PNG filters and their unfilter, the stored-mode container, its errors (no model needed)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from irec_jax import FormatError, entropy, reference
from irec_jax.entropy import stored

SHAPES = [(1, 1, 1), (1, 1, 3), (1, 9, 3), (9, 1, 3), (5, 7, 3), (7, 5, 1), (6, 11, 4), (13, 4, 2), (3, 40, 3)]


def _random_scanlines(rng: np.random.Generator, shape: tuple[int, int, int], kind: int | None) -> np.ndarray:
    """Random scanlines uint8 [H, 1 + W C]; every row of filter ``kind`` (None: random kinds)."""
    h, w, c = shape
    rows = rng.integers(0, 256, (h, 1 + w * c), dtype=np.uint8)
    rows[:, 0] = rng.integers(0, 5, h) if kind is None else kind
    return rows


@pytest.mark.parametrize("kind", [0, 1, 2, 3, 4, None])
@pytest.mark.parametrize("shape", SHAPES)
def test_unfilter_is_exact_on_random_scanlines_for_every_filter(shape, kind):
    """The fast (diagonal-sweep) unfilter agrees with the reference decoder's
    plain row-by-row one on arbitrary bytes, tall and wide images alike."""
    rows = _random_scanlines(np.random.default_rng(sum(shape) + 7 * (kind or 9)), shape, kind)
    fast = entropy.unfilter(rows.tobytes(), shape)
    np.testing.assert_array_equal(fast, reference.unfilter_rows(rows, shape[2]))
    assert fast.dtype == np.uint8 and fast.shape == shape


@pytest.mark.parametrize("shape", SHAPES)
def test_filter_then_unfilter_restores_pixels(shape):
    rng = np.random.default_rng(3)
    smooth = np.cumsum(rng.integers(-3, 4, shape), axis=1) % 256  # rows that favour Sub/Average/Paeth
    for pixels in (rng.integers(0, 256, shape).astype(np.uint8), smooth.astype(np.uint8)):
        lines = stored.filter_scanlines(pixels)
        assert len(lines) == shape[0] * (1 + shape[1] * shape[2])
        np.testing.assert_array_equal(stored.unfilter(lines, shape), pixels)


def test_filter_choice_is_the_minimum_absolute_sum_heuristic():
    """Each row takes the filter whose bytes, read as int8, have the smallest |sum| (ties: lower type)."""
    rng = np.random.default_rng(5)
    pixels = (np.cumsum(rng.integers(-2, 3, (12, 17, 3)), axis=0) + 100).astype(np.uint8)
    lines = np.frombuffer(stored.filter_scanlines(pixels), np.uint8).reshape(12, -1)
    h, n = lines.shape
    for y in range(h):
        costs = []
        for kind in range(5):  # refilter row y with each type, by the reference's definitions
            trial = lines.copy()
            trial[y, 0] = kind
            raw = pixels.reshape(h, -1).astype(np.int64)
            above = raw[y - 1] if y else np.zeros(n - 1, np.int64)
            a = np.concatenate([np.zeros(3, np.int64), raw[y, :-3]])
            c = np.concatenate([np.zeros(3, np.int64), above[:-3]])
            p = a + above - c
            paeth = np.where((abs(p - a) <= abs(p - above)) & (abs(p - a) <= abs(p - c)), a,
                             np.where(abs(p - above) <= abs(p - c), above, c))
            pred = [0 * a, a, above, (a + above) // 2, paeth][kind]
            costs.append(int(np.abs(((raw[y] - pred) % 256).astype(np.uint8).view(np.int8).astype(int)).sum()))
        assert lines[y, 0] == int(np.argmin(costs))


@pytest.mark.parametrize("channels, color_type", [(1, 0), (2, 4), (3, 2), (4, 6)])
def test_payload_is_png_image_data(channels, color_type):
    """Wrapped in a PNG's chunks, the payload is a PNG that Pillow decodes to the same pixels."""
    pixels = np.random.default_rng(channels).integers(0, 256, (9, 14, channels)).astype(np.uint8)
    pixels[:, 5:] = pixels[:, 5:6]  # some structure, so several filter types occur

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 14, 9, 8, color_type, 0, 0, 0))
           + chunk(b"IDAT", stored.deflate(pixels)) + chunk(b"IEND", b""))
    with Image.open(io.BytesIO(png)) as im:
        back = np.asarray(im)
    np.testing.assert_array_equal(back.reshape(pixels.shape), pixels)


@pytest.mark.parametrize("shape", [(32, 32, 3), (17, 23, 3), (25, 27, 1), (1, 1, 3), (1, 1, 1), (6, 11, 4),
                                   (5, 3, 2), (3, 5, 7)])
def test_stored_file_round_trip(shape):
    rng = np.random.default_rng(shape[0])
    pixels = (np.add.outer(np.arange(shape[0]), np.arange(shape[1]))[..., None] * 3
              + rng.integers(0, 4, shape)).astype(np.uint8)
    data = entropy.pack_stored(pixels)
    assert data[:3] == entropy.MAGIC + bytes([entropy.VERSION]) and data[3] & 0x40 and not data[3] & 0xA3
    assert entropy.is_stored(data)
    parsed = entropy.unpack(data, [])  # no model needed
    assert isinstance(parsed, entropy.StoredImage) and parsed.shape == shape
    assert parsed.payload_bytes == len(data) - 4 - 4 - (shape[0] > 127) - 1 - (shape[1] != shape[0]) * (
        1 + (shape[1] > 127)) - (shape[2] not in (1, 3, 4))
    np.testing.assert_array_equal(entropy.check_pixels(parsed, entropy.unfilter(parsed.scanlines, shape)), pixels)
    np.testing.assert_array_equal(reference.decode(data), pixels)
    assert entropy.pack_stored(pixels) == data  # deterministic


def test_large_image_unfilters_exactly():
    """A 300 x 500 photo-like RGB image (both sweep layouts: tall and wide)."""
    rng = np.random.default_rng(0)
    base = np.cumsum(np.cumsum(rng.integers(-2, 3, (300, 500, 3)), axis=0), axis=1)
    for pixels in (base % 256, np.ascontiguousarray(base.transpose(1, 0, 2)) % 256):
        pixels = pixels.astype(np.uint8)
        data = entropy.pack_stored(pixels)
        parsed = entropy.unpack(data, [])
        assert len(np.unique(parsed.scanlines[:, 0])) > 1  # more than one filter type in use
        np.testing.assert_array_equal(entropy.unfilter(parsed.scanlines, pixels.shape), pixels)


def _stored_file(pixels: np.ndarray, payload: bytes) -> bytes:
    """A stored-mode file of ``pixels``' header and CRC around any ``payload``."""
    good = entropy.pack_stored(pixels)
    head = len(good) - 4 - len(stored.deflate(pixels))
    return good[:head] + payload + good[-4:]


PIXELS = (np.arange(8 * 9 * 3).reshape(8, 9, 3) * 7 % 256).astype(np.uint8)
ROWS = np.frombuffer(stored.filter_scanlines(PIXELS), np.uint8).reshape(8, -1)


@pytest.mark.parametrize("payload, match", [
    (b"", "corrupt or truncated deflate data"),
    (zlib.compress(ROWS.tobytes(), 9)[:-6], "corrupt or truncated deflate data"),
    (b"\x78\xda\xff\xff\xff", "corrupt or truncated deflate data"),
    (zlib.compress(ROWS.tobytes()[:-1], 9), "corrupt or truncated deflate data"),
    (zlib.compress(ROWS.tobytes() + b"\0", 9), "corrupt or truncated deflate data"),
    (zlib.compress(ROWS.tobytes(), 9) + b"\0", "corrupt or truncated deflate data"),
    (zlib.compress(np.where(np.arange(ROWS.size).reshape(ROWS.shape) == ROWS.shape[1] * 3, 5,
                            ROWS).astype(np.uint8).tobytes(), 9), "row 3 has filter type 5"),
])
def test_corrupt_stored_payloads_are_format_errors(payload, match):
    with pytest.raises(FormatError, match=match):
        entropy.unpack(_stored_file(PIXELS, payload), [])
    with pytest.raises(FormatError, match=match):
        reference.decode(_stored_file(PIXELS, payload))


def test_stored_flags_and_crc_are_checked():
    data = bytearray(entropy.pack_stored(PIXELS))
    for extra in (0x01, 0x02, 0x20, 0x80):  # settings, model, tile side, lossy
        bad = bytes(data[:3]) + bytes([data[3] | extra]) + bytes(data[4:])
        with pytest.raises(FormatError, match="unsupported header flags"):
            entropy.unpack(bad, [])
    data[-1] ^= 1
    with pytest.raises(FormatError, match="CRC mismatch"):
        parsed = entropy.unpack(bytes(data), [])
        entropy.check_pixels(parsed, entropy.unfilter(parsed.scanlines, parsed.shape))


def test_damaged_stored_files_give_format_errors_or_the_image():
    """Random truncations, bit flips and byte edits: a FormatError, or (after the CRC) the exact image."""
    rng = np.random.default_rng(11)
    data = entropy.pack_stored(PIXELS)
    for trial in range(400):
        bad = bytearray(data)
        if trial % 3 == 0:
            bad = bad[:rng.integers(0, len(bad))]
        elif trial % 3 == 1:
            i = rng.integers(0, len(bad))
            bad[i] ^= 1 << rng.integers(0, 8)
        else:
            bad[rng.integers(0, len(bad))] = rng.integers(0, 256)
        try:
            parsed = entropy.unpack(bytes(bad), [])
            if isinstance(parsed, entropy.StoredImage):
                out = entropy.check_pixels(parsed, entropy.unfilter(parsed.scanlines, parsed.shape))
                np.testing.assert_array_equal(out, PIXELS)
        except FormatError:
            pass
