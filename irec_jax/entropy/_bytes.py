"""Varints, a bounds-checked byte reader and the range-coder word <-> byte glue.

Every read checks the bytes that remain before it returns or allocates, and
every failure is a `FormatError` that names the field being read.
"""

from __future__ import annotations

import numpy as np

from irec_jax.errors import FormatError

_MAX_VARINT_BYTES = 10  # enough for any value < 2**70; we never accept more.


def put_uvarint(out: bytearray, value: int) -> None:
    """Appends `value` (an int >= 0) as an unsigned LEB128 varint."""
    if value < 0:
        raise ValueError(f"varint must be >= 0, got {value}")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def zigzag(value: int) -> int:
    """Maps a signed int to an unsigned one: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ..."""
    return 2 * value if value >= 0 else -2 * value - 1


def unzigzag(value: int) -> int:
    """Inverse of `zigzag`."""
    return value >> 1 if value % 2 == 0 else -((value + 1) >> 1)


class Reader:
    """Reads fields from `data` front to back; every overrun is a FormatError.

    `what` names the structure (e.g. "header") in error messages.
    """

    def __init__(self, data: bytes, what: str) -> None:
        self._data = bytes(data)
        self._pos = 0
        self._what = what

    @property
    def pos(self) -> int:
        """Bytes consumed so far."""
        return self._pos

    @property
    def remaining(self) -> int:
        """Bytes not yet consumed."""
        return len(self._data) - self._pos

    def uvarint(self, field: str, max_value: int) -> int:
        """Reads an unsigned varint and checks it is <= `max_value`."""
        value = 0
        for i in range(_MAX_VARINT_BYTES):
            if self._pos >= len(self._data):
                raise FormatError(f"{self._what}: truncated while reading {field}")
            byte = self._data[self._pos]
            self._pos += 1
            value |= (byte & 0x7F) << (7 * i)
            if byte < 0x80:
                if value > max_value:
                    raise FormatError(
                        f"{self._what}: {field} = {value} is out of range "
                        f"(at most {max_value})")
                return value
        raise FormatError(f"{self._what}: {field} is not a valid varint")

    def take(self, n: int, field: str) -> bytes:
        """Reads exactly `n` bytes."""
        if n > self.remaining:
            raise FormatError(
                f"{self._what}: truncated {field}: needs {n} bytes, "
                f"{self.remaining} remain")
        out = self._data[self._pos:self._pos + n]
        self._pos += n
        return out

    def rest(self) -> bytes:
        """Reads all remaining bytes."""
        return self.take(self.remaining, "rest")


def bytes_to_words(data: bytes) -> np.ndarray:
    """Coded bytes (as `_coder.finish` writes them) -> uint32 words [n], zero-padded to whole words."""
    data = bytes(data) + b"\0" * (-len(data) % 4)
    return np.frombuffer(data, dtype=">u4").astype(np.uint32)
