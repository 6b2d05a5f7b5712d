"""The .irec container: header, the tiles' coded streams, CRC of the image.

Layout (all integers unsigned LEB128 varints unless sized; docs/format.md
has the full specification):

  2 bytes  magic b"\\xecR"
  1 byte   format version (6; this reader also reads 4 and 5)
  1 byte   flags: bit 0 explicit settings, bit 1 explicit model,
           bit 2 width != height, bits 3-4 channel code (0: 3, 1: 1, 2: 4,
           3: explicit varint), bit 5 explicit tile side, bit 6 stored mode,
           bit 7 lossy (the streams hold latents only; ``irec_jax.lossy``)
  model    varint index into the reader's model list, or (flag) varint name
           length, UTF-8 name, 4-byte parameter hash
  settings (flag) 1 byte field mask, then each differing field
  varint height, [varint width], [varint channels], [varint tile side]
  varint length of every tile's stream but the last; the streams
  4 bytes  CRC-32 (zlib) of the decoded pixels, uint8 [H, W, C] in C order

The image is cut into tiles of T x T pixels (T = ``DEFAULT_TILE`` unless the
header says otherwise; edge tiles are smaller) in raster order, and every
tile is coded on its own (``tile_grid``), so memory stays bounded for any
image size.

A **stored-mode** file (flag bit 6; ``pack_stored``, ``StoredImage``) holds no
model, settings or tiles: after the height, [width] and [channels] comes
the zlib stream of the PNG-filtered scanlines (``irec_jax.entropy.stored``),
running up to the CRC. The codec writes it when the model's coding would be
larger.

A **lossy** file (flag bit 7; ``Header.lossy``) has the same layout; each
tile's stream holds only the latent layers, and the CRC is of the
reconstruction the encoder itself decoded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import struct
import zlib
from typing import Iterable, Sequence

import numpy as np

from irec_jax.entropy import _bytes, stored
from irec_jax.errors import FormatError
from irec_jax.settings import FILE_FIELDS, CoderSettings, check_storable

MAGIC = b"\xecR"
VERSION = 6  # 6: streams end in the fewest bytes, reads past them are zeros; 5: tighter counts and settings;
# 4: stored mode; 3: tiles, one stream each; 2: two sections; 1: float
READ_VERSIONS = (4, 5, 6)  # what ``unpack`` reads: 4 differs in its step counts (``indices``) and settings floats;
# 5 is read as 6 (its streams end in whole words, which a version-6 reader reads alike)
MAX_SIDE = 1 << 20
MAX_SUBPIXELS = 1 << 28
DEFAULT_TILE = 1024  # tile side T in pixels unless the header stores another (even, >= 2)
MAX_NAME_BYTES = 255
HASH_BYTES = 4
_CHANNEL_CODE = {3: 0, 1: 1, 4: 2}
_CHANNELS = {v: k for k, v in _CHANNEL_CODE.items()}
_F_SETTINGS, _F_MODEL, _F_WIDTH, _F_TILE, _F_STORED, _F_LOSSY = 1, 2, 4, 32, 64, 128
_F_NOT_STORED = _F_SETTINGS | _F_MODEL | _F_TILE | _F_LOSSY  # fields a stored-mode file never has


@dataclasses.dataclass(frozen=True)
class ModelRef:
    """Names a model: `name` plus `param_hash` (4 bytes, see `param_hash`).

    defaults: the settings a file written with this model omits.
    """

    name: str
    param_hash: bytes
    defaults: CoderSettings = CoderSettings()


@dataclasses.dataclass(frozen=True)
class Header:
    """What a reader needs before decoding: model, settings, image shape,
    tile side, and whether the file is lossy (latents only)."""

    model: ModelRef
    settings: CoderSettings
    height: int
    width: int
    channels: int
    tile: int = DEFAULT_TILE
    lossy: bool = False
    version: int = VERSION  # the format the file was written in (``pack`` writes only VERSION)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of the decoded image."""
        return (self.height, self.width, self.channels)

    def tiles(self) -> list[tuple[int, int, int, int]]:
        """``tile_grid`` of this image."""
        return tile_grid(self.height, self.width, self.tile)


def check_tile(tile: int) -> int:
    """``tile`` if it is a valid tile side (an even integer in [2, MAX_SIDE]), else ValueError."""
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or not (
            2 <= tile <= MAX_SIDE and tile % 2 == 0):
        raise ValueError(f"tile side must be an even integer in [2, {MAX_SIDE}], got {tile!r}")
    return int(tile)


def tile_grid(height: int, width: int, tile: int) -> list[tuple[int, int, int, int]]:
    """The tiles of an H x W image, raster order: (top, left, rows, cols) of
    each T x T square, those on the bottom and right edges cut to the image."""
    return [(y, x, min(tile, height - y), min(tile, width - x))
            for y in range(0, height, tile) for x in range(0, width, tile)]


@dataclasses.dataclass(frozen=True)
class Container:
    """A whole .irec file: header, one opaque coded stream per tile
    (``header.tiles()`` order), CRC-32 of the pixels."""

    header: Header
    sections: tuple[bytes, ...]
    pixel_crc: int

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of the decoded image."""
        return self.header.shape


@dataclasses.dataclass(frozen=True)
class StoredImage:
    """A stored-mode file, parsed: the PNG scanlines of the image (inflated
    and checked: ``stored.inflate``; ``stored.unfilter`` gives the pixels),
    the CRC-32 of the pixels and the payload's size in bytes."""

    height: int
    width: int
    channels: int
    scanlines: np.ndarray  # uint8 [H, 1 + W C]: per row the filter type, then the filtered bytes
    pixel_crc: int
    payload_bytes: int

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of the decoded image."""
        return (self.height, self.width, self.channels)


def param_hash(arrays: Iterable[np.ndarray]) -> bytes:
    """First 4 bytes of SHA-256 over the arrays' dtypes, shapes and
    little-endian bytes, in the given order (e.g. the leaves of a parameter
    pytree)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.asarray(a)
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))  # the same on any host
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(a.tobytes())
    return h.digest()[:HASH_BYTES]


def pixel_crc(pixels: np.ndarray) -> int:
    """CRC-32 (zlib) of uint8 pixels [H, W, C], C order."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8, got {pixels.dtype}")
    return zlib.crc32(np.ascontiguousarray(pixels).tobytes())


def check_pixels(container: "Container | StoredImage", pixels: np.ndarray) -> np.ndarray:
    """Returns `pixels` if their shape and CRC match the container, else
    raises FormatError (a corrupt file or a wrong model/decoder)."""
    pixels = np.asarray(pixels)
    if pixels.shape != container.shape:
        raise FormatError(f"decoded image has shape {pixels.shape}, the file "
                          f"declares {container.shape}")
    crc = pixel_crc(pixels)
    if crc != container.pixel_crc:
        raise FormatError(f"CRC mismatch: decoded pixels give {crc:08x}, the file "
                          f"stores {container.pixel_crc:08x} (corrupt or truncated file, or wrong model)")
    return pixels


_FLOAT_DIGITS = 8  # decimal exponents e in [0, 8): value = m / 10^e


def _put_float(out: bytearray, value: float) -> None:
    """Exact float (format 5): (m << 4) | (e << 1) if value == m / 10^e for an
    integer 0 <= m < 2^53 and the least e in [0, 8) (6 and 0.1 take 1 byte,
    0.15 two), else 1 + float64."""
    if math.isfinite(value) and math.copysign(1, value) > 0:
        for e in range(_FLOAT_DIGITS):
            m = round(value * 10 ** e)
            if m < 1 << 53 and m / 10 ** e == value:
                _bytes.put_uvarint(out, (m << 4) | (e << 1))
                return
    _bytes.put_uvarint(out, 1)
    out += struct.pack(">d", value)


def _get_float(r: _bytes.Reader, field: str, version: int = VERSION) -> float:
    """Inverse of ``_put_float``; ``version`` 4: zigzag(k) << 1 for k / 1000."""
    tag = r.uvarint(field, 1 << 57)
    if tag & 1:
        if tag != 1:
            raise FormatError(f"header: bad float encoding for {field}")
        return struct.unpack(">d", r.take(8, field))[0]
    if version == 4:
        return _bytes.unzigzag(tag >> 1) / 1000
    return (tag >> 4) / 10 ** ((tag >> 1) & 7)


def _check_shape(shape: tuple[int, int, int]) -> None:
    h, w, c = shape
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE and 1 <= c <= 255):
        raise ValueError(f"unsupported image shape {shape}")


def _shape_flags(shape: tuple[int, int, int]) -> int:
    """The flag bits of an (H, W, C) shape: width stored, channel code."""
    h, w, c = shape
    return (_CHANNEL_CODE.get(c, 3) << 3) | (_F_WIDTH if w != h else 0)


def _put_shape(out: bytearray, shape: tuple[int, int, int]) -> None:
    """Height, then width if it differs, then channels if not 3, 1 or 4."""
    h, w, c = shape
    _bytes.put_uvarint(out, h)
    if w != h:
        _bytes.put_uvarint(out, w)
    if c not in _CHANNEL_CODE:
        _bytes.put_uvarint(out, c)


def _get_shape(r: _bytes.Reader, flags: int, max_subpixels: int) -> tuple[int, int, int]:
    height = r.uvarint("height", MAX_SIDE)
    width = r.uvarint("width", MAX_SIDE) if flags & _F_WIDTH else height
    code = (flags >> 3) & 3
    channels = r.uvarint("channels", 255) if code == 3 else _CHANNELS[code]
    if min(height, width, channels) < 1 or height * width * channels > max_subpixels:
        raise FormatError(f"unsupported image shape ({height}, {width}, {channels})")
    return height, width, channels


def pack_stored(pixels: np.ndarray) -> bytes:
    """The stored-mode file of uint8 pixels [H, W, C]: header (no model, no
    settings), zlib level 9 of the PNG-filtered scanlines, CRC-32."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 3:
        raise ValueError(f"pixels must be uint8 [H, W, C], got {pixels.dtype} {pixels.shape}")
    _check_shape(pixels.shape)
    out = bytearray(MAGIC)
    out += bytes([VERSION, _F_STORED | _shape_flags(pixels.shape)])
    _put_shape(out, pixels.shape)
    out += stored.deflate(pixels)
    out += struct.pack(">I", pixel_crc(pixels))
    return bytes(out)


def is_stored(data: bytes) -> bool:
    """Whether ``data`` starts like a stored-mode file of a format version this reader reads
    (``unpack`` still checks the rest): no model is needed to decode it."""
    return len(data) >= 4 and bytes(data[:2]) == MAGIC and data[2] in READ_VERSIONS and bool(data[3] & _F_STORED)


def is_lossy(data: bytes) -> bool:
    """Whether ``data`` starts like a lossy file of a format version this reader reads (``unpack`` checks the rest)."""
    return len(data) >= 4 and bytes(data[:2]) == MAGIC and data[2] in READ_VERSIONS and bool(data[3] & _F_LOSSY)


def pack(container: Container, models: Sequence[ModelRef]) -> bytes:
    """Serializes a container.

    Args:
      container: header, one stream per tile, pixel CRC.
      models: the models a reader knows, in a fixed order; a model found here
        is written as its 1-byte position, any other by name + hash.
    """
    h = container.header
    if h.version != VERSION:
        raise ValueError(f"this writer writes format version {VERSION} only, the header says {h.version}")
    check_storable(h.settings)
    _check_shape(h.shape)
    check_tile(h.tile)
    if len(container.sections) != len(h.tiles()):
        raise ValueError(f"a {h.height}x{h.width} image in {h.tile}-pixel tiles needs {len(h.tiles())} "
                         f"streams, got {len(container.sections)}")
    if len(h.model.param_hash) != HASH_BYTES:
        raise ValueError(f"param_hash must be {HASH_BYTES} bytes")
    name = h.model.name.encode()
    if len(name) > MAX_NAME_BYTES:
        raise ValueError(f"model name longer than {MAX_NAME_BYTES} bytes")
    known = [m for m in models if (m.name, m.param_hash) == (h.model.name, h.model.param_hash)]
    defaults = known[0].defaults if known else h.model.defaults
    flags = _shape_flags(h.shape) | (_F_TILE if h.tile != DEFAULT_TILE else 0)
    flags |= _F_MODEL if not known else 0
    flags |= _F_LOSSY if h.lossy else 0
    stored, default_fields = h.settings.file_fields(), defaults.file_fields()
    flags |= _F_SETTINGS if stored != default_fields else 0
    out = bytearray(MAGIC)
    out += bytes([VERSION, flags])
    if known:
        _bytes.put_uvarint(out, list(models).index(known[0]))
    else:
        _bytes.put_uvarint(out, len(name))
        out += name + h.model.param_hash
    if flags & _F_SETTINGS:
        mask = sum(1 << i for i, f in enumerate(FILE_FIELDS) if stored[f] != default_fields[f])
        out.append(mask)
        for i, f in enumerate(FILE_FIELDS):
            if mask >> i & 1:
                value = stored[f]
                if isinstance(value, float):
                    _put_float(out, value)
                else:
                    _bytes.put_uvarint(out, value)
    _put_shape(out, h.shape)
    if flags & _F_TILE:
        _bytes.put_uvarint(out, h.tile)
    for section in container.sections[:-1]:
        _bytes.put_uvarint(out, len(section))
    for section in container.sections:
        out += section
    out += struct.pack(">I", container.pixel_crc & 0xFFFFFFFF)
    return bytes(out)


def unpack(data: bytes, models: Sequence[ModelRef], *,
           max_subpixels: int = MAX_SUBPIXELS) -> Container | StoredImage:
    """Parses and validates a container; raises FormatError on any defect.

    A stored-mode file gives a ``StoredImage`` (its payload inflated and
    checked; no model needed), any other a ``Container``.

    Args:
      data: the file's bytes.
      models: the models this reader can decode with (same order as `pack`).
      max_subpixels: refuse images with more H*W*C than this.
    """
    data = bytes(data)
    if len(data) < 4 + 4:
        raise FormatError(f"file too short ({len(data)} bytes) to be an .irec file")
    if data[:2] != MAGIC:
        raise FormatError(f"not an .irec file (magic {data[:2].hex()}, expected {MAGIC.hex()})")
    if data[2] not in READ_VERSIONS:
        old = {1: " (version 1 files were decoded with float arithmetic that is not reproducible "
                  "across machines; re-encode the image)",
               2: " (version 2 files predate tiles; decode them with the release that wrote "
                  "them, or re-encode the image)",
               3: " (version 3 files predate the stored mode; decode them with the release that "
                  "wrote them, or re-encode the image)"}.get(data[2], "")
        raise FormatError(f"unsupported .irec format version {data[2]}{old}; this reader "
                          f"supports versions {READ_VERSIONS[0]} to {READ_VERSIONS[-1]}")
    version, flags = data[2], data[3]
    if flags & _F_STORED and flags & _F_NOT_STORED:
        raise FormatError(f"unsupported header flags {flags:#04x}")
    r = _bytes.Reader(data[4:-4], "header")
    crc = struct.unpack(">I", data[-4:])[0]
    if flags & _F_STORED:
        shape = _get_shape(r, flags, max_subpixels)
        payload = r.rest()
        return StoredImage(*shape, stored.inflate(payload, shape), crc, len(payload))
    if flags & _F_MODEL:
        name_len = r.uvarint("model name length", MAX_NAME_BYTES)
        raw = r.take(name_len, "model name")
        digest = r.take(HASH_BYTES, "model hash")
        try:
            name = raw.decode()
        except UnicodeDecodeError:
            raise FormatError("header: model name is not UTF-8") from None
        found = [m for m in models if (m.name, m.param_hash) == (name, digest)]
        if not found:
            raise FormatError(f"unknown model {name!r} (params {digest.hex()})")
        model = found[0]
    else:
        code = r.uvarint("model id", 1 << 32)
        if code >= len(models):
            raise FormatError(f"unknown model id {code} (this reader knows {len(models)})")
        model = models[code]
    values = {}
    if flags & _F_SETTINGS:
        mask = r.take(1, "settings mask")[0]
        if mask >> len(FILE_FIELDS):
            raise FormatError(f"header: unsupported settings mask {mask:#04x}")
        for i, f in enumerate(FILE_FIELDS):
            if mask >> i & 1:
                if f in ("omega", "epsilon"):
                    values[f] = _get_float(r, f, version)
                else:
                    values[f] = r.uvarint(f, (1 << 64) - 1)
    try:
        settings = dataclasses.replace(model.defaults, **values)
        check_storable(settings)
    except ValueError as err:
        detail = str(err).removeprefix("invalid coder settings: ")
        raise FormatError(f"invalid coder settings in the header: {detail}") from None
    height, width, channels = _get_shape(r, flags, max_subpixels)
    tile = r.uvarint("tile side", MAX_SIDE) if flags & _F_TILE else DEFAULT_TILE
    if tile < 2 or tile % 2:
        raise FormatError(f"header: tile side {tile} is not an even number >= 2")
    count = (-(-height // tile)) * (-(-width // tile))
    if count - 1 > r.remaining:  # every stream but the last has a length of >= 1 byte
        raise FormatError(f"truncated file: {count} tiles declared, {r.remaining} bytes remain")
    lengths, total = [], 0
    for i in range(count - 1):
        n = r.uvarint(f"tile {i} length", 1 << 40)
        total += n
        if total > r.remaining:
            raise FormatError(f"truncated file: tile {i} declares {n} bytes, "
                              f"{r.remaining - total + n} remain")
        lengths.append(n)
    sections = [r.take(n, f"tile {i}") for i, n in enumerate(lengths)]
    sections.append(r.rest())
    header = Header(model, settings, height, width, channels, tile, bool(flags & _F_LOSSY), version)
    return Container(header, tuple(sections), crc)
