"""Reading and writing images for the lossless codec, with the mode policy in one place.

What the codec accepts (``to_array``), and why:

* RGB and grayscale ("L") 8-bit images: coded as they are.
* 1-bit ("1") images: converted to grayscale 0/255 (every pixel kept).
* Palette ("P") images: converted to RGB, or to grayscale when every palette
  entry in use is gray (every pixel's colour kept; the palette itself is not
  stored, so the decoded file is an RGB/grayscale PNG).
* RGBA / LA / palette-with-transparency: accepted only when every pixel is
  fully opaque (the alpha channel then carries nothing and is dropped);
  refused otherwise.
* 16-bit, 32-bit, float, CMYK, YCbCr, LAB, HSV and other modes: refused
  (the model codes 8-bit RGB levels).

Every refusal raises ``ImageError`` (a ValueError) whose message says what was
found and what to do.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

import numpy as np

from irec_jax.errors import ImageError

MAX_SIDE = 1 << 14  # 16384: larger images are refused (memory) with a clear message.


def _from_pil(im: Any, where: str) -> np.ndarray:
    mode = im.mode
    if mode in ("RGB", "L"):
        arr = np.asarray(im)
    elif mode == "1":
        arr = np.asarray(im.convert("L"))
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        rgba = np.asarray(im.convert("RGBA"))
        if has_alpha and rgba[..., 3].min() != 255:
            raise ImageError(f"{where}: palette image with transparency is not supported "
                             "(irec codes opaque RGB or grayscale; flatten it first)")
        rgb = rgba[..., :3]
        gray = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
        arr = rgb[..., 0] if gray else rgb
    elif mode in ("RGBA", "LA", "RGBa", "La"):
        arr = np.asarray(im)
        if mode in ("RGBa", "La") or arr[..., -1].min() != 255:
            raise ImageError(f"{where}: {mode} image with transparency is not supported "
                             "(irec codes opaque RGB or grayscale; flatten it first)")
        arr = arr[..., :-1]
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
    elif mode.startswith("I;16") or mode in ("I", "F"):
        raise ImageError(f"{where}: {mode} ({'16' if '16' in mode else '32'}-bit) images are not "
                         "supported; irec codes 8-bit RGB or grayscale")
    else:
        raise ImageError(f"{where}: image mode {mode} is not supported; irec codes 8-bit RGB "
                         "or grayscale (convert it first)")
    return check_array(arr, where)


def check_array(arr: Any, where: str = "image") -> np.ndarray:
    """uint8 [H, W, C] (C = 1 or 3) from an array-like; ImageError for anything else.

    Accepts [H, W] (grayscale) and [H, W, 1 | 3] arrays of dtype uint8 (or an
    integer dtype whose values all lie in 0..255 and that is not wider than 8
    bits in meaning: uint16 arrays are refused as 16-bit images).
    """
    arr = np.asarray(arr)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ImageError(f"{where}: pixels must be 8-bit integers, got dtype {arr.dtype}")
    if arr.dtype.itemsize > 1 and arr.dtype not in (np.int32, np.int64):
        raise ImageError(f"{where}: {arr.dtype} ({8 * arr.dtype.itemsize}-bit) images are not "
                         "supported; irec codes 8-bit RGB or grayscale")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3):
        raise ImageError(f"{where}: expected an [H, W] or [H, W, 1|3] image, got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"{where}: empty image of shape {arr.shape}")
    if max(arr.shape[:2]) > MAX_SIDE:
        raise ImageError(f"{where}: {arr.shape[1]}x{arr.shape[0]} is larger than the "
                         f"{MAX_SIDE}-pixel side irec supports")
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ImageError(f"{where}: pixel values must lie in 0..255, got "
                             f"{arr.min()}..{arr.max()}")
        arr = arr.astype(np.uint8)
    return np.ascontiguousarray(arr)


def to_array(image: Any) -> np.ndarray:
    """uint8 [H, W, C] (C = 1 or 3) from a path, a PIL image or an array (policy above)."""
    if isinstance(image, (str, os.PathLike)):
        return read_image(os.fspath(image))
    if hasattr(image, "mode") and hasattr(image, "convert"):
        return _from_pil(image, "image")
    return check_array(image)


def read_image(path: str) -> np.ndarray:
    """Decodes an image file (any format Pillow reads) to uint8 [H, W, C] under the policy above."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if getattr(im, "n_frames", 1) > 1:
                raise ImageError(f"{path}: animated or multi-frame images are not supported")
            im.load()
            return _from_pil(im, path)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file Pillow can read") from None
    except Image.DecompressionBombError as e:  # not an OSError: would escape as a traceback
        raise ImageError(f"{path}: refused as too large to decode safely ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        if isinstance(e, ImageError):
            raise
        raise ImageError(f"{path}: cannot decode image ({e})") from None


def write_atomic(path: str, data: bytes, *, force: bool = False) -> None:
    """Writes ``data`` to ``path`` through a temporary file in the same folder, then renames.

    Refuses to replace an existing file unless ``force`` (FileExistsError). A
    failure leaves neither a partial file nor a changed ``path``. The file
    gets the usual permissions of a new file (0666 less the umask), not the
    temporary file's private 0600.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not force:
        raise FileExistsError(f"{path} exists (use --force to overwrite)")
    folder = os.path.dirname(os.path.abspath(path))
    # O_EXCL on a fresh random name, mode 0666 so the umask applies as for any new file.
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if not force and os.path.exists(path):
            raise FileExistsError(f"{path} exists (use --force to overwrite)")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of uint8 [H, W, 1 | 3] pixels (grayscale or RGB)."""
    import io

    from PIL import Image

    arr = check_array(pixels, "pixels")
    im = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def write_image(path: str, pixels: np.ndarray, *, force: bool = False) -> None:
    """Saves pixels as an image whose format follows the extension (lossless ones only)."""
    import io

    from PIL import Image

    ext = os.path.splitext(path)[1].lower()
    if ext not in ("", ".png", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".pnm", ".webp"):
        raise ImageError(f"{path}: cannot write a lossless image with extension {ext!r} "
                         "(use .png, .bmp, .tiff, .ppm/.pgm or .webp)")
    if ext in ("", ".png"):
        data = encode_png(pixels)
    else:
        arr = check_array(pixels, "pixels")
        if ext == ".ppm" and arr.shape[-1] == 1 or ext == ".pgm" and arr.shape[-1] == 3:
            raise ImageError(f"{path}: {ext} does not match a {arr.shape[-1]}-channel image")
        im = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
        buf = io.BytesIO()
        kwargs = {"lossless": True} if ext == ".webp" else {}
        im.save(buf, format={"bmp": "BMP", "tif": "TIFF", "tiff": "TIFF", "ppm": "PPM", "pgm": "PPM",
                             "pnm": "PPM", "webp": "WEBP"}[ext[1:]], **kwargs)
        data = buf.getvalue()
    write_atomic(path, data, force=force)
