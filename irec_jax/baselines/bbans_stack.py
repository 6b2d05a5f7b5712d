"""BB-ANS initial bits: the seeded stack an encoder starts on, and bytes.

constriction's ``AnsCoder`` pops symbol 0 from an empty stack without
consuming anything, so coding from a truly empty stack would pick the extreme
left bin of every latent at no cost. The encoder instead starts on a fixed
pseudo-random stack (SplitMix64 words, :func:`seed_stream`) deep enough for
every pop, and afterwards strips the bottom words no pop ever reached
(:func:`finish`). The decoder needs nothing else, and must end on the top of
the seed stream (:func:`check_end`). See ``irec_jax.baselines.bbans``.
"""

from __future__ import annotations

import numpy as np

from irec_jax import entropy
from irec_jax.entropy import tables
from irec_jax.errors import FormatError

POP_BITS_MAX = tables.PRECISION  # one pop consumes at most 24 bits (every frequency >= 1)
SEED_KEY = 0x1E7C_BB05_A115_0001  # SplitMix64 seed of the initial-bits stream (format constant)


def seed_stream(n: int) -> np.ndarray:
    """The first ``n`` words (uint32 [n]) of the initial-bits stream (SplitMix64,
    low then high half of each output). Word 0 (the top of the stack) is odd, so
    the stack never ends in a zero word."""
    m = (n + 1) // 2
    with np.errstate(over="ignore"):
        z = np.uint64(SEED_KEY) + np.arange(1, m + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    words = z.astype("<u8").view("<u4").astype(np.uint32)[:n]
    if n:
        words[0] |= np.uint32(1)
    return words


def seed_stack(n: int) -> np.ndarray:
    """A stack of ``n`` seed words, bottom first: its top is stream word 0."""
    return np.ascontiguousarray(seed_stream(n)[::-1])


class SeededStack:
    """An encoder's stack on the initial-bits stream, deep enough for ``pops``
    pops; ``lowest`` records how far down they reached."""

    def __init__(self, pops: int):
        self.depth = -(-pops * POP_BITS_MAX // 32) + 4
        self.seed = seed_stack(self.depth)
        self.stack = entropy.new_stack(self.seed)
        self.lowest = self.depth

    def note_lowest(self) -> None:
        """Call after a run of pops: notes how far down the stack they reached
        (the words below the two words of the ANS head are untouched)."""
        self.lowest = min(self.lowest, self.stack.num_words() - 2)

    def size_words(self) -> int:
        """The file's size in words, had coding ended now."""
        return self.stack.num_words() - self.lowest

    def finish(self) -> bytes:
        """The stack without the seed words no pop reached, as bytes."""
        final = self.stack.get_compressed()
        if self.lowest < 0 or not np.array_equal(final[:self.lowest], self.seed[:self.lowest]):
            raise RuntimeError("bbans: the initial-bits stack was too shallow (internal error)")
        return to_bytes(final[self.lowest:])


def open_stack(data: bytes):
    """A decoder's stack over a file's bytes (FormatError if unusable)."""
    return entropy.new_stack(from_bytes(data), "bbans stream")


def check_end(stack) -> None:
    """FormatError unless the decoded ``stack`` is the top of the seed stream."""
    rest = stack.get_compressed()
    # The encoder never strips the two head words, so at least two remain.
    if rest.shape[0] < 2 or not np.array_equal(rest, seed_stack(rest.shape[0])):
        raise FormatError("bbans stream: corrupt coded data (decoding did not end on the "
                          "initial bits; wrong bytes, shapes, bits or model parameters)")


def to_bytes(words: np.ndarray) -> bytes:
    """uint32 words, bottom first, little-endian, trailing zero bytes dropped."""
    return np.asarray(words, dtype="<u4").tobytes().rstrip(b"\0")


def from_bytes(data: bytes) -> np.ndarray:
    """Inverse of :func:`to_bytes`: uint32 [n]."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    data += b"\0" * (-len(data) % 4)
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)
