"""Thin, guarded wrappers around constriction's range coder and ANS stack.

constriction signals corrupt input with exceptions of assorted types, and a
Rust panic surfaces as `pyo3_runtime.PanicException`, a BaseException. Every
decoder call goes through `guarded`, which turns all of those into FormatError.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import constriction
import numpy as np

from irec_jax.entropy import _bytes
from irec_jax.errors import FormatError

T = TypeVar("T")


def guarded(what: str, fn: Callable[[], T]) -> T:
    """Runs `fn`; any failure inside constriction becomes FormatError(what...)."""
    try:
        return fn()
    except FormatError:
        raise
    except (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError):
        raise
    except BaseException as err:  # includes pyo3_runtime.PanicException
        raise FormatError(f"{what}: corrupt or truncated coded data ({type(err).__name__}: {err})") from err


def new_encoder():
    """A fresh constriction RangeEncoder (queue: decode order = encode order)."""
    return constriction.stream.queue.RangeEncoder()


def new_decoder(payload: bytes, what: str):
    """A RangeDecoder over `payload` (bytes as written by `finish`)."""
    words = _bytes.bytes_to_words(payload)
    return guarded(what, lambda: constriction.stream.queue.RangeDecoder(words))


def finish(encoder) -> bytes:
    """The shortest byte string that decodes to everything `encoder` coded.

    The decoder reads the bytes as a binary fraction, zero-padded without end (`new_decoder` pads to
    whole words, constriction reads zeros past the last one), and decodes every symbol exactly when
    that fraction lies in the encoder's final interval. constriction seals a stream with a whole
    32-bit word inside the interval; this writes the fewest bytes m for which some m-byte fraction
    lies inside it (about 1.6 bytes a stream less). The interval is [lo, lo + range) in units of
    2^-(32 (pos + 2)), with ``pos, (lower, range) = encoder.pos()``: `lower` is lo's low 64 bits and
    the sealed stream fixes the rest (it lies in the interval, whose width is below 2^64).
    """
    words = np.asarray(encoder.get_compressed(), dtype=">u4")
    if not words.size:
        return b""
    pos, (lower, width) = encoder.pos()
    bits = 32 * (pos + 2)
    sealed = int.from_bytes(words.tobytes(), "big")
    shift = 32 * (words.size - pos - 2)
    top = sealed >> shift if shift >= 0 else sealed << -shift  # the sealed fraction, floored to `bits`
    lo = top - ((top - lower) % (1 << 64))

    def point(m: int) -> int | None:  # the least m-byte fraction >= lo, if it is below lo + width
        drop = bits - 8 * m
        c = -(-lo >> drop)
        return c if c << drop < lo + width else None

    short, long = 0, bits // 8  # a fraction fits in `long` bytes (lo itself); fitting is monotone in m
    while short < long:
        mid = (short + long) // 2
        short, long = (short, mid) if point(mid) is not None else (mid + 1, long)
    return point(short).to_bytes(short, "big")


def categorical_family():
    """constriction's categorical model family with `perfect=False` (the
    setting under which `tables.coder_weights` is exact)."""
    return constriction.stream.model.Categorical(perfect=False)


def categorical(weights: np.ndarray):
    """A fixed categorical model from float32 weights [n] (`coder_weights`)."""
    return constriction.stream.model.Categorical(weights, perfect=False)


def uniform(size: int):
    """constriction's uniform model over {0, ..., size - 1}, 1 <= size <= 2**24."""
    if not 1 <= size <= 1 << 24:
        raise ValueError(f"uniform alphabet size must be in [1, 2**24], got {size}")
    return constriction.stream.model.Uniform(size)


# ----------------------------------------------------------------------------
# Symbols onto a coder someone else owns: a stack (ANS, bits-back) or a queue.
# Public through ``irec_jax.entropy``; ``pop_*`` on the matching decoder
# returns what ``push_*`` wrote, in the same order, from either kind.


def new_stack(words: np.ndarray | None = None, what: str = "stack"):
    """An ANS stack (constriction ``AnsCoder``), empty or over uint32 words
    [n] (bottom first, as ``stack.get_compressed()`` returns them)."""
    if words is None:
        return constriction.stream.stack.AnsCoder()
    words = np.ascontiguousarray(words, dtype=np.uint32)
    return guarded(what, lambda: constriction.stream.stack.AnsCoder(words))


def is_stack(coder) -> bool:
    """True for an ANS stack: pushes there go in reverse, so pops read forward."""
    return isinstance(coder, constriction.stream.stack.AnsCoder)


def _push(coder, what: str | None, symbols: np.ndarray, *model) -> None:
    symbols = np.ascontiguousarray(symbols, dtype=np.int32)
    push = coder.encode_reverse if is_stack(coder) else coder.encode
    if what is None:
        push(symbols, *model)
    else:
        guarded(what, lambda: push(symbols, *model))


def push_categorical(coder, symbols: np.ndarray, weights: np.ndarray, what: str | None = None) -> None:
    """Pushes symbols int [n], row i under the categorical of coder weights
    float32 [n, m] (``tables.coder_weights``: frequency - 1, rows summing to
    2^24 - m), onto a stack or queue. With ``what`` (a decoder pushing back
    what it decoded), a failure is FormatError(what...)."""
    _push(coder, what, symbols, categorical_family(), np.ascontiguousarray(weights, dtype=np.float32))


def pop_categorical(coder, weights: np.ndarray, what: str) -> np.ndarray:
    """Inverse of ``push_categorical``: int64 [n]. FormatError(what...) on corrupt data."""
    weights = np.ascontiguousarray(weights, dtype=np.float32)
    return guarded(what, lambda: coder.decode(categorical_family(), weights)).astype(np.int64)


def push_uniform(coder, symbols: np.ndarray, size: int) -> None:
    """Pushes symbols int [n], each uniform over {0, ..., size - 1}."""
    _push(coder, None, symbols, uniform(size))


def pop_uniform(coder, size: int, count: int, what: str) -> np.ndarray:
    """Inverse of ``push_uniform``: int64 [count]. FormatError(what...) on corrupt data."""
    model = uniform(size)
    return guarded(what, lambda: coder.decode(model, int(count))).astype(np.int64)
