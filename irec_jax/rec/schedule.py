"""Auxiliary-variable schedules: how the prior variance is split over steps.

A block coded in K steps writes z - mu_p = a_1 + ... + a_K with
a_k ~ N(0, f_k * sigma_p^2) under the prior, where the fractions f_k sum to 1.

The decoder needs the schedule exactly, so it is integer: each schedule
gives variances V_k (integers summing to 2^30 over a block's steps) by
integer arithmetic, and the step's candidate scale sqrt(V_k / 2^30) is a
15-bit mantissa and a shift (:func:`step_scales`) from an exact integer
square root. The fractions f_k = V_k / 2^30 (float64) are for the
encoder's scoring only.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Protocol, runtime_checkable

import numpy as np

from irec_jax.settings import PAPER_EXPONENT, VARIANCE_BITS, PowerLawSchedule  # noqa: F401  (the format's schedule)


@runtime_checkable
class AuxSchedule(Protocol):
    """Splits the prior variance of a block over its auxiliary steps."""

    def step_variances(self, k: int) -> tuple[int, ...]:
        """Integer variances V_0..V_{K-1} >= 0 of the K steps of a block,
        summing to exactly 2^VARIANCE_BITS (integer arithmetic only)."""
        ...


def variances(schedule: AuxSchedule, steps: np.ndarray, length: int) -> np.ndarray:
    """int64 [nb, L]: V[b, k] of every block's live steps k < K_b, 0 after."""
    steps = _validate(steps, length)
    out = np.zeros((steps.shape[0], length), np.int64)
    for k in np.unique(steps):
        if k > 0:
            out[steps == k, :k] = np.asarray(schedule.step_variances(int(k)), np.int64)
    return out


def fractions(schedule: AuxSchedule, steps: np.ndarray, length: int) -> np.ndarray:
    """float64 [nb, L]: f[b, k] = V[b, k] / 2^30 (for scoring; sums to 1 over live steps)."""
    return variances(schedule, steps, length) / float(1 << VARIANCE_BITS)


@functools.lru_cache(maxsize=4096)
def _scale(v: int) -> tuple[int, int]:
    t = math.isqrt(v << VARIANCE_BITS)  # floor(2^30 sqrt(v / 2^30)); >= 2^15 for v >= 1
    if t == 0:
        return 0, 30
    b = t.bit_length()
    return t >> (b - 15), 45 - b


def step_scales(var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate scales of integer variances V [...] as (mant, shift) int32 [...]:
    with t = isqrt(V 2^30) (= floor(2^30 sqrt(V / 2^30))) of bit length b,
    mant = t >> (b - 15) in [2^14, 2^15) and shift = 45 - b, so that
    mant 2^-shift is sqrt(V / 2^30) truncated to 15 bits (0, 30 for V = 0)."""
    var = np.asarray(var, np.int64)
    values, inverse = np.unique(var, return_inverse=True)
    pairs = np.array([_scale(int(v)) for v in values], np.int32).reshape(-1, 2)
    return pairs[inverse.reshape(var.shape), 0], pairs[inverse.reshape(var.shape), 1]


def _validate(steps: np.ndarray, length: int) -> np.ndarray:
    steps = np.asarray(steps, dtype=np.int64)
    if steps.ndim != 1 or (steps.size and (steps.min() < 0 or steps.max() > length)):
        raise ValueError(f"steps must be a 1-d array in [0, {length}], got shape {steps.shape}")
    return steps


@dataclasses.dataclass(frozen=True)
class EqualSchedule:
    """Every step takes the same variance floor(2^30 / K); the last step also
    takes the remainder."""

    def step_variances(self, k: int) -> tuple[int, ...]:
        each = (1 << VARIANCE_BITS) // k
        return (each,) * (k - 1) + ((1 << VARIANCE_BITS) - each * (k - 1),)
