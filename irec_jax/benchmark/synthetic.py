"""Synthetic posterior/prior pairs with a chosen total KL, for coder benchmarks.

The recipe of the coder-core issue: prior N(0, 1) over D dims; per-dimension
activity a ~ Exp(1), z ~ N(0, 1), u ~ U(0, 1); posterior mean t*a*z and
scale exp(-t*a*u), with t found by bisection so that the total KL hits the
target. ``inactive`` sets a = 0 (so KL = 0 exactly) on that fraction of dims.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class GaussianPair:
    """Posterior q and prior p over D dims, float64 [D] each."""

    q_loc: np.ndarray
    q_scale: np.ndarray
    p_loc: np.ndarray
    p_scale: np.ndarray

    def kl(self) -> float:
        """KL(q || p) in nats."""
        log_r = np.log(self.q_scale) - np.log(self.p_scale)
        delta = (self.q_loc - self.p_loc) / self.p_scale
        return float(np.sum(0.5 * np.expm1(2.0 * log_r) - log_r + 0.5 * delta**2))

    def args(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.q_loc, self.q_scale, self.p_loc, self.p_scale


def gaussian_pair(dims: int, total_kl: float, seed: int, inactive: float = 0.0) -> GaussianPair:
    """A posterior/prior pair over ``dims`` dims whose KL is ``total_kl`` nats
    (to 1e-9 relative), drawn from numpy's PCG64 with ``seed``."""
    if dims < 1 or total_kl < 0 or not 0.0 <= inactive < 1.0:
        raise ValueError(f"bad pair request: dims={dims}, total_kl={total_kl}, inactive={inactive}")
    rs = np.random.default_rng(seed)
    a = rs.exponential(1.0, dims)
    z = rs.normal(size=dims)
    u = rs.uniform(size=dims)
    if inactive:
        a[rs.uniform(size=dims) < inactive] = 0.0
    zeros, ones = np.zeros(dims), np.ones(dims)

    def pair(t: float) -> GaussianPair:
        return GaussianPair(t * a * z, np.exp(-t * a * u), zeros, ones)

    lo, hi = 0.0, 1.0
    while pair(hi).kl() < total_kl:
        hi *= 2.0
        if hi > 1e6:
            raise ValueError(f"cannot reach KL {total_kl} with {dims} dims")
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if pair(mid).kl() < total_kl:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return pair(0.5 * (lo + hi))
