"""Thin, guarded wrappers around constriction's range coder.

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
        raise FormatError(f"{what}: corrupt coded data ({type(err).__name__}: {err})") from err


def new_encoder():
    """A fresh constriction RangeEncoder (queue: decode order = encode order)."""
    return constriction.stream.queue.RangeEncoder()


def new_decoder(payload: bytes, what: str):
    """A RangeDecoder over `payload` (bytes as written by `finish`)."""
    words = _bytes.bytes_to_words(payload)
    return guarded(what, lambda: constriction.stream.queue.RangeDecoder(words))


def finish(encoder) -> bytes:
    """The encoder's compressed words as bytes (trailing zero bytes trimmed)."""
    return _bytes.words_to_bytes(encoder.get_compressed())


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
