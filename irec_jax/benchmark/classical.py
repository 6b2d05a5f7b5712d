"""Classical lossless image codecs, one uniform row each: PNG, WebP, JPEG 2000, JPEG-LS, JPEG XL, AVIF.

Every row is an ``irec_jax.benchmark.rows.CodecRow`` (built by ``classical_row``)
with ``name``, ``encode(img) -> bytes`` and ``decode(bytes) -> img`` over
uint8 images ``[H, W, C]``, C = 1 (grayscale) or 3 (RGB). The bytes are a whole file of the format (what a ``.png`` /
``.webp`` / ``.j2k`` / ``.jls`` / ``.jxl`` / ``.avif`` file on disk holds),
so rates computed from them count every header byte.

Settings (lossless everywhere; the benchmark verifies that by decoding):

- PNG: Pillow, ``optimize=True`` (zlib level 9 and the best filter search Pillow has).
- WebP: libwebp lossless, method 6, quality 100 (slowest, smallest). WebP has
  no grayscale mode: a C=1 image is coded as RGB with three equal channels
  and decoded back to C=1 when the three channels are equal.
- JPEG 2000: OpenJPEG reversible 5/3 wavelet with the reversible colour
  transform (``reversible=True, mct=True``), written as a raw J2K codestream
  (the JP2 box wrapper would add 85 bytes per file and nothing else).
- JPEG-LS: CharLS, near-lossless error 0 (lossless).
- JPEG XL: libjxl ``lossless=True`` (without it libjxl is lossy), effort 9,
  bare codestream (imagecodecs' default, no ISO-BMFF container).
- AVIF: libavif quality 100 (= lossless: identity matrix, 4:4:4), speed 0.

All codecs come from ``imagecodecs`` except PNG (Pillow). ``available_codecs()``
probes each with a real encode/decode round trip and says why a row cannot run.
"""

from __future__ import annotations

import functools
import io
from typing import Callable

import numpy as np

from irec_jax.benchmark.rows import CodecRow, select_by_name

__all__ = ["classical_row", "CLASSICAL_NAMES", "classical_codecs", "available_codecs", "as_hwc"]

CLASSICAL_NAMES = ("PNG", "WebP", "JPEG2000", "JPEG-LS", "JPEG-XL", "AVIF")


def as_hwc(img: np.ndarray) -> np.ndarray:
    """``img`` as a C-contiguous uint8 ``[H, W, C]`` array (``[H, W]`` gets C = 1)."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3:
        raise ValueError(f"expected an image [H, W, C] or [H, W], got shape {img.shape}")
    if img.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got dtype {img.dtype} (shape {img.shape})")
    return np.ascontiguousarray(img)


def _check_input(img: np.ndarray) -> np.ndarray:
    img = as_hwc(img)
    h, w, c = img.shape
    if c not in (1, 3) or h < 1 or w < 1:
        raise ValueError(f"classical codecs take [H, W, 1] or [H, W, 3] uint8 images, got shape {img.shape}")
    return img


def classical_row(name: str, description: str, encode_fn: Callable[[np.ndarray], bytes],
                  decode_fn: Callable[[bytes], np.ndarray], library: Callable[[], str] | None = None) -> CodecRow:
    """A classical codec as a benchmark row (``irec_jax.benchmark.rows.CodecRow``) over uint8 ``[H, W, C]``.

    ``encode_fn`` receives ``[H, W]`` for C = 1 and ``[H, W, 3]`` for C = 3
    (anything else is refused with a ValueError quoting the shape);
    ``decode_fn`` may return either layout (the row adds the channel axis).
    The row's ``unavailable`` is None when a probe round trip works here, else why not.
    """

    def encode(img: np.ndarray) -> bytes:
        img = _check_input(img)
        plane = img[..., 0] if img.shape[2] == 1 else img
        return bytes(encode_fn(np.ascontiguousarray(plane)))

    def decode(data: bytes) -> np.ndarray:
        return as_hwc(decode_fn(bytes(data)))

    return CodecRow(name, encode, decode, description, probe=_probe, library=library)


def _probe_images() -> list[np.ndarray]:
    # A smooth gradient plus seeded noise: exercises prediction and literal paths.
    rng = np.random.default_rng(12345)
    yy, xx = np.mgrid[0:12, 0:10]
    base = (yy * 17 + xx * 9) % 256
    rgb = np.stack([base, 255 - base, (base * 3) % 256], -1) + rng.integers(-3, 4, (12, 10, 3))
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    gray = rgb[..., :1].copy()
    return [rgb, gray]


@functools.lru_cache(maxsize=None)
def _probe(codec: CodecRow) -> str | None:
    """None if ``codec`` round-trips RGB and grayscale probe images bit-exactly here, else the reason."""
    for img in _probe_images():
        try:
            out = codec.decode(codec.encode(img))
        except ImportError as e:
            return f"library not installed ({e})"
        except Exception as e:
            return f"{type(e).__name__}: {e}"
        if img.shape[2] == 1 and out.shape[2] == 3 and np.array_equal(out[..., :1], out[..., 1:2]) \
                and np.array_equal(out[..., :1], out[..., 2:]):
            out = out[..., :1]
        if out.shape != img.shape or not np.array_equal(out, img):
            return f"not lossless in this build: a {img.shape} probe image did not decode bit-exactly"
    return None


# --- the codecs -----------------------------------------------------------------------------------

def _ic():
    import imagecodecs  # optional dependency; only when a codec runs

    return imagecodecs


def _png_encode(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img, mode="L" if img.ndim == 2 else "RGB").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _png_decode(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if im.format != "PNG":
            raise ValueError(f"not a PNG file (Pillow reads it as {im.format})")
        if im.mode not in ("L", "RGB"):
            raise ValueError(f"PNG decodes to Pillow mode {im.mode!r}, expected 'L' or 'RGB'")
        return np.asarray(im)


def _pillow_version() -> str:
    import PIL
    from PIL import features

    return f"Pillow {PIL.__version__}, zlib {features.version('zlib')}"


def _webp_encode(img: np.ndarray) -> bytes:
    if img.ndim == 2:  # WebP has no grayscale mode
        img = np.ascontiguousarray(np.repeat(img[..., None], 3, axis=2))
    return _ic().webp_encode(img, level=100, lossless=True, method=6)


def _webp_decode(data: bytes) -> np.ndarray:
    out = np.asarray(_ic().webp_decode(data))
    if out.ndim == 3 and out.shape[2] == 4:
        raise ValueError("WebP file decodes with an alpha channel; this benchmark codes RGB or gray")
    if out.ndim == 3 and out.shape[2] == 3 and np.array_equal(out[..., 0], out[..., 1]) \
            and np.array_equal(out[..., 0], out[..., 2]):
        return out[..., :1]  # coded gray (see module docstring)
    return out


def _j2k_encode(img: np.ndarray) -> bytes:
    ic = _ic()
    return ic.jpeg2k_encode(img, level=0, reversible=True, mct=img.ndim == 3, codecformat=ic.JPEG2K.CODEC.J2K)


def _jls_encode(img: np.ndarray) -> bytes:
    return _ic().jpegls_encode(img, level=0)


def _jxl_encode(img: np.ndarray) -> bytes:
    return _ic().jpegxl_encode(img, lossless=True, effort=9)


def _avif_encode(img: np.ndarray) -> bytes:
    ic = _ic()
    return ic.avif_encode(img, level=ic.AVIF.QUALITY.LOSSLESS, speed=0)


def _ic_version(fn: str) -> Callable[[], str]:
    def version() -> str:
        ic = _ic()
        return f"{getattr(ic, fn)()} (imagecodecs {ic.__version__})"

    return version


def _decoder(fn: str) -> Callable[[bytes], np.ndarray]:
    def decode(data: bytes) -> np.ndarray:
        return getattr(_ic(), fn)(data)

    return decode


def _all_codecs() -> tuple[CodecRow, ...]:
    return (
        classical_row("PNG", "PNG, Pillow optimize=True", _png_encode, _png_decode, _pillow_version),
        classical_row("WebP", "WebP lossless, method 6, quality 100 (gray coded as RGB)", _webp_encode, _webp_decode,
              _ic_version("webp_version")),
        classical_row("JPEG2000", "JPEG 2000 reversible 5/3 + RCT (mct), J2K codestream", _j2k_encode,
              _decoder("jpeg2k_decode"), _ic_version("jpeg2k_version")),
        classical_row("JPEG-LS", "JPEG-LS lossless (NEAR=0)", _jls_encode, _decoder("jpegls_decode"),
              _ic_version("jpegls_version")),
        classical_row("JPEG-XL", "JPEG XL lossless=True, effort 9, bare codestream", _jxl_encode,
              _decoder("jpegxl_decode"), _ic_version("jpegxl_version")),
        classical_row("AVIF", "AVIF lossless (quality 100: identity matrix, 4:4:4), speed 0", _avif_encode,
              _decoder("avif_decode"), _ic_version("avif_version")),
    )


_CODECS = _all_codecs()


def classical_codecs(names: list[str] | tuple[str, ...] | None = None) -> list[CodecRow]:
    """The classical rows (all of them, or ``names`` in that order, matched case-insensitively).

    Unavailable rows are included: check ``codec.unavailable`` (or use ``available_codecs``).
    """
    return select_by_name(_CODECS, names, "classical")


def available_codecs() -> dict[str, str | None]:
    """``{name: None}`` for each classical codec that round-trips bit-exactly here, ``{name: reason}`` otherwise."""
    return {c.name: c.unavailable for c in _CODECS}
