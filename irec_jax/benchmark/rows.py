"""The one row interface of the benchmark, which classical codecs, iREC and BB-ANS all implement.

Two kinds of row:

- **image rows** (:class:`ImageCodec`): ``name``, ``encode(img) -> bytes`` and
  ``decode(bytes) -> img`` (img uint8 ``[H, W, C]``). :class:`CodecRow` is the
  record for one: two functions plus what the tables say about them
  (``codec_row`` builds one; ``irec_jax.benchmark.classical`` and
  ``irec_jax.benchmark.model_rows`` build theirs with it too).
- **set rows** (:class:`SetCodec`): amortized coders whose bytes are for a
  whole sequence of images: ``name``, ``encode_set(images) -> bytes``,
  ``decode_set(bytes) -> images`` (BB-ANS amortized); :class:`SetCodecRow`,
  ``set_codec_row``.

An image row's encoder may return a :class:`Coded` instead of bytes: the
file plus what the runner cannot read off it, i.e. for a codec with a
fallback mode (iREC's stored mode) the model's own coding's size and
whether the file fell back.

Optional attributes any row may have: ``description`` (str), ``version``
(str), ``unavailable`` (None, or why the row cannot run here: it is then
recorded, not run), and on set rows ``count_fn``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = ["Coded", "ImageCodec", "SetCodec", "CodecRow", "SetCodecRow", "codec_row", "set_codec_row", "row_kind",
           "row_description", "select_by_name"]


@dataclasses.dataclass(frozen=True)
class Coded:
    """An encoder's file with what the runner cannot read off it.

    ``data``: the whole file (what is counted and decoded); ``model_bytes``:
    the size the model's own coding had (it is ``len(data)`` unless the file
    fell back); ``stored``: whether the file is the fallback (stored mode).
    """

    data: bytes
    model_bytes: int
    stored: bool


@runtime_checkable
class ImageCodec(Protocol):
    """A single-image row."""

    name: str

    def encode(self, img: np.ndarray) -> "bytes | Coded": ...

    def decode(self, data: bytes) -> np.ndarray: ...


@runtime_checkable
class SetCodec(Protocol):
    """A set-level row: one byte string for a whole sequence of images (amortized coders)."""

    name: str

    def encode_set(self, images: Sequence[np.ndarray]) -> bytes: ...

    def decode_set(self, data: bytes) -> Sequence[np.ndarray]: ...


@dataclasses.dataclass(frozen=True)
class CodecRow:
    """An image row from two functions: ``encode_fn(img uint8 [H, W, C]) -> bytes | Coded``, ``decode_fn(bytes) -> img``.

    ``reason``: why the row cannot run here, when that is known up front;
    ``probe(row) -> reason | None`` finds it out on first use instead (the
    classical codecs' round trip). ``library() -> str`` names the library
    version for the tables.
    """

    name: str
    encode_fn: Callable[[np.ndarray], bytes]
    decode_fn: Callable[[bytes], np.ndarray]
    description: str = ""
    reason: str | None = None
    probe: Callable[["CodecRow"], str | None] | None = dataclasses.field(default=None, compare=False)
    library: Callable[[], str] | None = dataclasses.field(default=None, compare=False)
    # Optional: images of one shape -> one file (bytes | Coded) each, in one call (the runner's --batch path).
    encode_batch_fn: Callable[[Sequence[np.ndarray]], list] | None = dataclasses.field(default=None, compare=False)

    def encode(self, img: np.ndarray) -> "bytes | Coded":
        return self.encode_fn(img)

    def decode(self, data: bytes) -> np.ndarray:
        return self.decode_fn(data)

    @property
    def unavailable(self) -> str | None:
        if self.reason or self.probe is None:
            return self.reason
        return self.probe(self)

    @property
    def version(self) -> str:
        if self.library is None:
            return ""
        try:
            return self.library()
        except Exception as e:  # library missing: the probe says so too
            return f"unavailable ({type(e).__name__}: {e})"


@dataclasses.dataclass(frozen=True)
class SetCodecRow:
    """A set row from two functions: ``encode_set(images) -> bytes``, ``decode_set(bytes) -> images``."""

    name: str
    encode_set_fn: Callable[[Sequence[np.ndarray]], bytes]
    decode_set_fn: Callable[[bytes], Sequence[np.ndarray]]
    description: str = ""
    unavailable: str | None = None
    # Optional (images, data) -> (bytes counted, dims counted), e.g. a marginal rate.
    count_fn: Callable[[Sequence[np.ndarray], bytes], tuple[int, int]] | None = None

    def encode_set(self, images: Sequence[np.ndarray]) -> bytes:
        return self.encode_set_fn(images)

    def decode_set(self, data: bytes) -> Sequence[np.ndarray]:
        return self.decode_set_fn(data)


def codec_row(name: str, encode: Callable[[np.ndarray], bytes], decode: Callable[[bytes], np.ndarray],
              description: str = "", unavailable: str | None = None) -> CodecRow:
    """Wrap an ``(encode, decode)`` pair of single-image functions as a benchmark row."""
    return CodecRow(name, encode, decode, description, unavailable)


def set_codec_row(name: str, encode_set: Callable[[Sequence[np.ndarray]], bytes],
                  decode_set: Callable[[bytes], Sequence[np.ndarray]], description: str = "",
                  unavailable: str | None = None, count: Callable | None = None) -> SetCodecRow:
    """Wrap an ``(encode_set, decode_set)`` pair of whole-set functions as a benchmark row."""
    return SetCodecRow(name, encode_set, decode_set, description, unavailable, count)


def row_kind(codec: Any) -> str:
    """"set" for a :class:`SetCodec`, "image" for an :class:`ImageCodec`; TypeError for anything else."""
    if callable(getattr(codec, "encode_set", None)) and callable(getattr(codec, "decode_set", None)):
        return "set"
    if callable(getattr(codec, "encode", None)) and callable(getattr(codec, "decode", None)):
        return "image"
    raise TypeError(f"codec row {codec!r} has neither encode/decode nor encode_set/decode_set")


def row_description(codec: Any) -> str:
    """The row's ``description`` and ``version``, joined with "; "."""
    parts = [str(getattr(codec, "description", "") or "")]
    version = getattr(codec, "version", "")
    if version and not callable(version):
        parts.append(str(version))
    return "; ".join(p for p in parts if p)


def select_by_name(codecs: Sequence[Any], names: Sequence[str] | None, what: str,
                   error: type[Exception] = ValueError) -> list:
    """``codecs`` (anything with a ``name``), all of them or those of ``names`` in that order, matched
    case-insensitively, each once; ``error`` ("unknown <what> codec(s) ...") naming the unknown and known ones."""
    if names is None:
        return list(codecs)
    by_name = {c.name.lower(): c for c in codecs}
    unknown = [n for n in names if n.lower() not in by_name]
    if unknown:
        raise error(f"unknown {what} codec(s) {', '.join(unknown)}; known: {', '.join(c.name for c in codecs)}")
    return [by_name[n.lower()] for n in dict.fromkeys(names)]
