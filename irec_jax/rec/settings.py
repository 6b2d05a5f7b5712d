"""Coder settings: Ω, ε, beams, block formation, seed, auxiliary schedule."""

from __future__ import annotations

import dataclasses
import math

from irec_jax.rec.schedule import AuxSchedule, PowerLawSchedule

MAX_CANDIDATES = 1 << 24  # entropy coders take alphabets up to 2^24 symbols
MAX_BEAMS = 4096


@dataclasses.dataclass(frozen=True)
class RecSettings:
    """Settings shared by the iREC encoder and decoder.

    Attributes:
      omega: nats of KL coded per auxiliary step (Ω). Each block takes
        K_b = max(1, ceil(KL_b / omega)) steps.
      epsilon: oversampling (ε). Each step draws
        N = floor(exp(omega * (1 + epsilon))) candidates.
      beams: beam width B of the encoder's search (B = 1 is greedy argmax
        importance sampling). The decoder does not depend on it.
      block_kl: target KL per block in nats. A tensor of total KL K is cut
        into nb blocks of equal size over a seeded shuffle of its dimensions,
        nb the power of two nearest K / block_kl (so blocks hold 0.71 to 1.41
        block_kl). Larger blocks waste less to the per-block rounding of K_b
        (under one step per block) but cost more work per nat. The decoder
        does not depend on it.
      prune_fraction: the encoder leaves the smallest-KL dimensions of a block
        out of its candidate scoring while their summed KL stays at or below
        this fraction of the block's KL (dimensions with KL ~ 0 then cost no
        candidate work; they are still decoded, as prior draws). The decoder
        does not depend on it.
      seed: shared randomness, an integer in [0, 2^32).
      schedule: how the prior variance is split over the auxiliary steps.
    """

    omega: float = 3.0
    epsilon: float = 0.2
    beams: int = 20
    block_kl: float = 200.0
    prune_fraction: float = 1e-3
    seed: int = 0
    schedule: AuxSchedule = PowerLawSchedule()

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"RecSettings.{name}={getattr(self, name)!r}: {why}")

        for name in ("omega", "epsilon", "block_kl", "prune_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise bad(name, "must be a real number")
            if not math.isfinite(value):
                raise bad(name, "must be finite")
        for name in ("beams", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad(name, "must be an integer")
        if self.omega <= 0:
            raise bad("omega", "must be > 0 nats")
        if self.epsilon < 0:
            raise bad("epsilon", "must be >= 0")
        log_n = self.omega * (1.0 + self.epsilon)
        if log_n > math.log(MAX_CANDIDATES):
            raise bad(
                "omega",
                f"with epsilon={self.epsilon} gives exp(omega*(1+epsilon)) = "
                f"{math.exp(min(log_n, 700.0)):.3g} candidates per step, "
                f"more than {MAX_CANDIDATES}",
            )
        if self.num_candidates < 2:
            raise bad(
                "omega",
                f"with epsilon={self.epsilon} gives {self.num_candidates} candidate "
                "per step; need at least 2 (omega*(1+epsilon) >= ln 2)",
            )
        if not 1 <= self.beams <= MAX_BEAMS:
            raise bad("beams", f"must be in [1, {MAX_BEAMS}]")
        if self.block_kl < self.omega:
            raise bad("block_kl", f"must be >= omega ({self.omega}) nats")
        if not 0.0 <= self.prune_fraction < 1.0:
            raise bad("prune_fraction", "must be in [0, 1)")
        if not 0 <= self.seed < 2**32:
            raise bad("seed", "must be in [0, 2^32)")
        if not isinstance(self.schedule, AuxSchedule):
            raise bad("schedule", "must implement AuxSchedule (a step_variances(k) method)")

    @property
    def num_candidates(self) -> int:
        """N = floor(exp(omega * (1 + epsilon))), candidates per step, evaluated
        exactly (``irec_jax.exact.tables.num_candidates``)."""
        from irec_jax.exact.tables import num_candidates
        return num_candidates(self.omega, self.epsilon)

    @property
    def bits_per_step(self) -> float:
        """log2 N: index bits per auxiliary step under a uniform index code."""
        return math.log2(self.num_candidates)
