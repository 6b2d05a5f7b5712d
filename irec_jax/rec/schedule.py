"""Auxiliary-variable schedules: how the prior variance is split over steps.

A block coded in K steps writes z - mu_p = a_1 + ... + a_K with
a_k ~ N(0, f_k * sigma_p^2) under the prior, where the fractions f_k sum to 1.
Schedules are pure functions of K computed in float64 numpy, identically by
encoder and decoder.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, runtime_checkable

import numpy as np

PAPER_EXPONENT = 0.7864636765648174  # the original iREC code's power law


@runtime_checkable
class AuxSchedule(Protocol):
    """Splits the prior variance of a block over its auxiliary steps."""

    def fractions(self, steps: np.ndarray, length: int) -> np.ndarray:
        """Per-step variance fractions.

        Args:
          steps: int array [nb], steps K_b >= 0 of each block.
          length: padded length L >= max(steps).

        Returns:
          float64 array [nb, L]: f[b, k] > 0 for k < K_b, summing to exactly 1
          over those steps, and 0 for k >= K_b.
        """
        ...


def _validate(steps: np.ndarray, length: int) -> np.ndarray:
    steps = np.asarray(steps, dtype=np.int64)
    if steps.ndim != 1 or (steps.size and (steps.min() < 0 or steps.max() > length)):
        raise ValueError(f"steps must be a 1-d array in [0, {length}], got shape {steps.shape}")
    return steps


@dataclasses.dataclass(frozen=True)
class PowerLawSchedule:
    """The published schedule: at step k (0-based) of K, take the fraction
    r_k = (K - k)^(-exponent) of the variance still remaining. The last step
    (r = 1) takes all that remains."""

    exponent: float = PAPER_EXPONENT

    def fractions(self, steps: np.ndarray, length: int) -> np.ndarray:
        steps = _validate(steps, length)
        k = np.arange(length, dtype=np.float64)[None, :]
        left = steps[:, None].astype(np.float64) - k  # K - k, >= 1 on live steps
        live = left >= 1.0
        r = np.where(live, np.maximum(left, 1.0) ** (-self.exponent), 0.0)
        # Remaining variance before step k: prod_{j<k} (1 - r_j).
        keep = np.cumprod(1.0 - r, axis=1)
        before = np.concatenate([np.ones_like(keep[:, :1]), keep[:, :-1]], axis=1)
        return np.where(live, r * before, 0.0)


@dataclasses.dataclass(frozen=True)
class EqualSchedule:
    """Every step takes the same fraction 1/K of the prior variance."""

    def fractions(self, steps: np.ndarray, length: int) -> np.ndarray:
        steps = _validate(steps, length)
        k = np.arange(length)[None, :]
        live = k < steps[:, None]
        return np.where(live, 1.0 / np.maximum(steps[:, None], 1), 0.0)


def cumulative(fractions: np.ndarray) -> np.ndarray:
    """rho[b, k] = f[b, 0] + ... + f[b, k], the prior variance fraction of the
    partial sum after step k, clipped to <= 1 (exactly 1 after the last step
    of every schedule above, up to rounding)."""
    return np.minimum(np.cumsum(fractions, axis=1), 1.0)
