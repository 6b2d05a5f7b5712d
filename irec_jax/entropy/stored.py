"""Stored mode: an image as PNG-filtered scanlines through deflate, no model.

The safety net of the codec: when the model's coding of an image would be
larger, the file holds this instead (``docs/format.md`` §9). The scanlines are
exactly PNG's (ISO/IEC 15948 §9): per row one filter-type byte, 0 None,
1 Sub, 2 Up, 3 Average, 4 Paeth, then the row's bytes filtered with
bpp = channels; bytes left of the row and above the first row count as 0.
Each row takes the filter whose output has the smallest sum of absolute
values as signed bytes (the usual heuristic; ties to the lower type), and
the scanlines are compressed by ``zlib.compress(level=9)``.

Filtering is vectorised over the whole image. Unfiltering Average and Paeth
is sequential along a row, so ``unfilter`` sweeps the image's anti-diagonals
(pixel (y, x) needs only (y, x-1), (y-1, x) and (y-1, x-1), all on earlier
diagonals): H + W - 1 vector steps of at most min(H, W) pixels each.
"""

from __future__ import annotations

import zlib

import numpy as np

from irec_jax.errors import FormatError

NUM_FILTERS = 5  # None, Sub, Up, Average, Paeth
LEVEL = 9  # zlib level of the payload
_ROWS_PER_CHUNK = 256  # filter this many rows at a time (bounds the encoder's temporaries)


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """PNG's Paeth predictor of int16 arrays (a left, b up, c up-left), elementwise."""
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _predictions(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> list[np.ndarray]:
    """The five filters' predictions (int16, as ``a``) from left, up and up-left bytes."""
    return [np.zeros_like(a), a, b, (a + b) >> 1, _paeth(a, b, c)]


def filter_scanlines(pixels: np.ndarray) -> bytes:
    """PNG scanlines of uint8 pixels [H, W, C]: H rows of 1 + W*C bytes, each
    row under the filter that minimises the sum of |filtered bytes as int8|."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 3:
        raise ValueError(f"pixels must be uint8 [H, W, C], got {pixels.dtype} {pixels.shape}")
    h, w, bpp = pixels.shape
    raw = pixels.reshape(h, w * bpp).astype(np.int16)
    out = np.empty((h, 1 + w * bpp), np.uint8)
    for top in range(0, h, _ROWS_PER_CHUNK):
        x = raw[top:top + _ROWS_PER_CHUNK]
        b = np.concatenate([raw[top - 1:top] if top else np.zeros_like(x[:1]), x[:-1]])
        a = np.pad(x, ((0, 0), (bpp, 0)))[:, :w * bpp]
        c = np.pad(b, ((0, 0), (bpp, 0)))[:, :w * bpp]
        filtered = np.stack([(x - p).astype(np.uint8) for p in _predictions(a, b, c)])  # [5, rows, W C]
        cost = np.abs(filtered.view(np.int8).astype(np.int32)).sum(axis=-1)  # [5, rows]
        best = np.argmin(cost, axis=0)  # first minimum: ties go to the lower filter type
        out[top:top + x.shape[0], 0] = best
        out[top:top + x.shape[0], 1:] = np.take_along_axis(filtered, best[None, :, None], axis=0)[0]
    return out.tobytes()


def unfilter(scanlines: bytes | np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """uint8 pixels [H, W, C] from PNG scanlines (``filter_scanlines``' layout).

    Exact for any filter bytes 0..4 (ValueError for others or a wrong length).
    """
    h, w, bpp = shape
    rows = np.frombuffer(bytes(scanlines), np.uint8) if not isinstance(scanlines, np.ndarray) else scanlines
    if rows.size != h * (1 + w * bpp):
        raise ValueError(f"{rows.size} scanline bytes, a {h}x{w}x{bpp} image needs {h * (1 + w * bpp)}")
    rows = rows.reshape(h, 1 + w * bpp)
    types = rows[:, 0]
    if types.size and types.max() >= NUM_FILTERS:
        raise ValueError(f"filter type {int(types.max())} in a scanline (0..4 are defined)")
    filtered = rows[:, 1:].reshape(h, w, bpp)
    if not np.isin(types, (3, 4)).any():  # no row depends on its own left pixels nonlinearly
        return _unfilter_linear(filtered, types)
    return _unfilter_diagonals(filtered, types)


def _unfilter_linear(filtered: np.ndarray, types: np.ndarray) -> np.ndarray:
    """``unfilter`` of rows filtered by None, Sub or Up only: cumulative sums mod 256."""
    out = np.empty_like(filtered)
    prev = np.zeros_like(filtered[0])
    for y, t in enumerate(types):
        if t == 1:
            prev = np.cumsum(filtered[y], axis=0, dtype=np.uint8)  # wraps mod 256
        elif t == 2:
            prev = filtered[y] + prev
        else:
            prev = filtered[y]
        out[y] = prev
    return out


def _unfilter_diagonals(filtered: np.ndarray, types: np.ndarray) -> np.ndarray:
    """``unfilter`` by anti-diagonals d = y + x. Lanes run along the shorter
    side (y if H <= W, else x) with one leading zero lane; slot (d, 1 + lane)
    holds pixel (y, x) of diagonal d, and slots of pixels outside the image
    stay 0, which is what PNG's filters read there."""
    h, w, bpp = filtered.shape
    by_row = h <= w
    lanes = h if by_row else w
    ys, xs = np.indices((h, w))
    lane = ys if by_row else xs
    diag = np.zeros((h + w - 1, lanes + 1, bpp), np.int16)
    diag[ys + xs, lane + 1] = filtered
    ftype = np.zeros((h + w - 1, lanes + 1), np.int8)
    ftype[ys + xs, lane + 1] = types[ys]
    out = np.zeros((h + w + 1, lanes + 1, bpp), np.int16)  # out[d + 2] is diagonal d; two zero diagonals first
    sa, sb = (0, 1) if by_row else (1, 0)  # lane offsets of the left (a) and upper (b) neighbours
    for d in range(h + w - 1):
        lo = max(0, d - (w - 1 if by_row else h - 1))  # lanes of diagonal d: [lo, hi]
        hi = min(d, lanes - 1)
        s = slice(lo + 1, hi + 2)
        prev, prev2 = out[d + 1], out[d]
        a = prev[lo + 1 - sa:hi + 2 - sa]
        b = prev[lo + 1 - sb:hi + 2 - sb]
        c = prev2[lo:hi + 1]
        t = ftype[d, s, None]
        pred = np.where(t == 1, a, np.where(t == 2, b, 0))
        pred = np.where(t == 3, (a + b) >> 1, pred)
        if (t == 4).any():
            pred = np.where(t == 4, _paeth(a, b, c), pred)
        out[d + 2, s] = (diag[d, s] + pred) & 0xFF
    return out[ys + xs + 2, lane + 1].astype(np.uint8)


def deflate(pixels: np.ndarray) -> bytes:
    """The stored-mode payload of uint8 pixels [H, W, C]: zlib level 9 of the filtered scanlines."""
    return zlib.compress(filter_scanlines(pixels), LEVEL)


def inflate(payload: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """The scanlines (uint8 [H, 1 + W C]) of a stored-mode payload; FormatError
    (corrupt or truncated) unless it is one complete zlib stream of exactly
    the scanlines of ``shape`` with filter types 0..4 and nothing after it."""
    h, w, c = shape
    size = h * (1 + w * c)
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(payload, size + 1)  # never inflates more than the image
    except zlib.error as e:
        raise FormatError(f"stored image: corrupt or truncated deflate data ({e})") from None
    if len(raw) != size or not inflater.eof or inflater.unused_data or inflater.unconsumed_tail:
        what = ("ends early" if not inflater.eof else "has bytes after its end") if len(raw) == size else (
            f"holds {'more than ' if len(raw) > size else ''}{len(raw)} bytes, the image needs {size}")
        raise FormatError(f"stored image: corrupt or truncated deflate data (it {what})")
    rows = np.frombuffer(raw, np.uint8).reshape(h, 1 + w * c)
    if h and rows[:, 0].max() >= NUM_FILTERS:
        y = int(np.argmax(rows[:, 0] >= NUM_FILTERS))
        raise FormatError(f"stored image: corrupt or truncated data (row {y} has filter type "
                          f"{rows[y, 0]}; 0..4 are defined)")
    return rows
