"""The iREC coder settings: one record for the coder (``irec_jax.rec``) and
the .irec container (``irec_jax.entropy``), with one set of limits.

    s = CoderSettings(omega=3.0, epsilon=0.2, beams=20, seed=0)
    s.num_candidates          # N = floor(exp(omega (1 + epsilon))) = 36

``rec.RecSettings`` and ``entropy.CoderSettings`` are this class. A file
stores ``FILE_FIELDS`` (omega, epsilon, seed), what the decoder needs;
``beams``, ``small_beams``, ``block_kl``, ``min_block_kl``,
``prune_fraction``, ``final_choices`` and ``layer_choices`` steer only the encoder; ``schedule`` is the
format's power law (:class:`PowerLawSchedule`), which the file does not store.

This module imports neither ``rec`` nor ``entropy`` (nor JAX): both import it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from typing import Any

# Limits: what the coder accepts is what a file may declare.
MAX_CANDIDATES = 1 << 24  # N <= 2^24: constriction's alphabets stop there
MIN_CANDIDATES = 2
MAX_BEAMS = 4096
SEED_LIMIT = 1 << 32  # seed in [0, 2^32): the coder's uint32 key
FILE_FIELDS = ("omega", "epsilon", "seed")  # what the .irec header stores, in order

PAPER_EXPONENT = 0.7864636765648174  # the original iREC code's power law
VARIANCE_BITS = 30  # a block's step variances are integers summing to 2^30


@dataclasses.dataclass(frozen=True)
class PowerLawSchedule:
    """The published schedule, the one .irec files are coded with: at step k
    (0-based) of K, take the fraction r_{K-k} = (K - k)^(-exponent) of the
    variance still remaining; the last step (r_1 = 1) takes all that remains.
    In integers: R = 2^30, then V_k = floor(R r_{K-k} / 2^30) and R -= V_k,
    with r_j = round(2^30 j^-exponent) from Decimal arithmetic
    (``irec_jax.exact.tables.power_law_ratio``; the exponent's shortest
    decimal form)."""

    exponent: float = PAPER_EXPONENT

    def step_variances(self, k: int) -> tuple[int, ...]:
        return _power_law(repr(float(self.exponent)), int(k))


@functools.lru_cache(maxsize=1024)
def _power_law(exponent: str, k: int) -> tuple[int, ...]:
    from irec_jax.exact.tables import power_law_ratio

    rest, out = 1 << VARIANCE_BITS, []
    for i in range(k - 1):
        v = (rest * power_law_ratio(k - i, exponent)) >> VARIANCE_BITS
        out.append(v)
        rest -= v
    return tuple(out) + (rest,)


@dataclasses.dataclass(frozen=True)
class CoderSettings:
    """Settings shared by the iREC encoder, its decoder and the .irec header.

    Invalid values raise ValueError("invalid coder settings: <field>=...").

    Attributes:
      omega: nats of KL coded per auxiliary step (Ω > 0). Each block takes
        K_b = max(1, ceil(KL_b / omega)) steps.
      epsilon: oversampling (ε >= 0). Each step draws
        N = floor(exp(omega * (1 + epsilon))) candidates, 2 <= N <= 2^24.
      beams: beam width B of the encoder's search, 1 .. 4096 (B = 1 is greedy
        argmax importance sampling). The decoder does not depend on it and
        files do not store it. 16 (20 until 2026-11-30): on a 2-core CPU the
        search's time steps with the vector width (20 beams cost as much as
        32); a 500x500 photo encodes 0.5-1.9 s faster for 0.05-0.3% more bits.
      small_beams: the beam width for small tensors, those of KL <= 16
        block_kl (``rec.layout.LARGE_TENSOR_BLOCKS``): they search with
        max(beams, small_beams). Wider beams bring the sample closer to the
        posterior (64 instead of 20 beams: 0.6-0.7% smaller files on the
        bundled held-out 32x32 and 64x64 images) at a cost in search time
        that matters only for large tensors. 1 .. 4096; not stored in files.
      seed: shared randomness, an integer in [0, 2^32).
      block_kl: target KL per block in nats (>= omega). A tensor of total KL K
        is cut into nb blocks of equal size over a seeded shuffle of its
        dimensions, nb the power of two nearest K / target (so blocks hold
        0.71 to 1.41 of the target). The target is block_kl for tensors up
        to 16 block_kl of KL and shrinks as block_kl sqrt(16 block_kl / K)
        for larger ones, down to min_block_kl (``rec.layout.target_block_kl``).
        Larger blocks waste less to the per-block step counts and rounding
        of K_b but cost more search work per nat. Not stored in files; the
        decoder does not depend on it.
      min_block_kl: the smallest target KL per block (>= omega; a block_kl
        below it wins), reached by large tensors. 50 nats keeps a 500x500
        photo near 5 s on a 2-core CPU. Not stored in files.
      prune_fraction: in [0, 1). The encoder leaves the smallest-KL dimensions
        of a block out of its candidate scoring while their summed KL stays at
        or below this fraction of the block's KL (they are still decoded, as
        prior draws). Not stored in files; the decoder does not depend on it.
        0.003 (0.001 until 2026-11-30): fewer scored dims in a block's widest
        rows, a smaller compiled width (a 500x500 photo: 320 instead of 384)
        at no measurable cost in bits.
      final_choices: how many of the last latent layer's final beams the
        encoder compares by the exact codelength of the pixels they lead to,
        keeping the smallest file (1 .. beams; 1: the beam search's best).
        Every final beam costs the same index bits, so this is invisible to
        the decoder; it costs one likelihood pass per choice. Not stored in
        files.
      layer_choices: the same for every other latent layer (1 .. beams; 1: the
        beam search's best): the encoder compares that many of the layer's
        final beams by an estimate of what the rest of the file costs (the
        later layers' (1 + epsilon) KL along their posterior means, plus the
        pixels' exact codelength at the end of that path) and codes the
        cheapest. Invisible to the decoder; one pass of the rest of the model
        per choice. Lossless codec only. Not stored in files.
      schedule: how the prior variance is split over the auxiliary steps (any
        object with a ``step_variances(k)`` method, ``rec.AuxSchedule``). Not
        stored in files: the .irec format codes with ``PowerLawSchedule()``.
        A mapping is read as ``PowerLawSchedule`` fields (the JSON form).
    """

    omega: float = 3.0
    epsilon: float = 0.2
    beams: int = 16
    seed: int = 0
    small_beams: int = 64
    block_kl: float = 200.0
    min_block_kl: float = 50.0
    prune_fraction: float = 3e-3
    final_choices: int = 1
    layer_choices: int = 1
    schedule: Any = PowerLawSchedule()

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"invalid coder settings: {name}={getattr(self, name)!r} {why}")

        for name in ("omega", "epsilon", "block_kl", "min_block_kl", "prune_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise bad(name, "must be a real number")
            if not math.isfinite(value):
                raise bad(name, "must be finite")
            object.__setattr__(self, name, float(value))
        for name in ("beams", "small_beams", "seed", "final_choices", "layer_choices"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise bad(name, "must be an integer")
            object.__setattr__(self, name, int(value))
        if self.omega <= 0:
            raise bad("omega", "must be > 0 nats")
        if self.epsilon < 0:
            raise bad("epsilon", "must be >= 0")
        log_n = self.omega * (1.0 + self.epsilon)
        if self.num_candidates > MAX_CANDIDATES:
            raise bad("omega", f"with epsilon={self.epsilon} gives exp(omega*(1+epsilon)) = "
                               f"{math.exp(min(log_n, 700.0)):.3g} candidates per step, "
                               f"more than {MAX_CANDIDATES} (2^24)")
        if self.num_candidates < MIN_CANDIDATES:
            raise bad("omega", f"with epsilon={self.epsilon} gives {self.num_candidates} candidate "
                               "per step; need at least 2 (omega*(1+epsilon) >= ln 2)")
        if not 1 <= self.beams <= MAX_BEAMS:
            raise bad("beams", f"must be in [1, {MAX_BEAMS}]")
        if not 1 <= self.small_beams <= MAX_BEAMS:
            raise bad("small_beams", f"must be in [1, {MAX_BEAMS}]")
        for name in ("final_choices", "layer_choices"):
            if not 1 <= getattr(self, name) <= MAX_BEAMS:
                raise bad(name, f"must be in [1, {MAX_BEAMS}]")
        if not 0 <= self.seed < SEED_LIMIT:
            raise bad("seed", "must be in [0, 2^32)")
        if self.block_kl < self.omega:
            raise bad("block_kl", f"must be >= omega ({self.omega}) nats")
        if self.min_block_kl < self.omega:
            raise bad("min_block_kl", f"must be >= omega ({self.omega}) nats")
        if not 0.0 <= self.prune_fraction < 1.0:
            raise bad("prune_fraction", "must be in [0, 1)")
        if not callable(getattr(self.schedule, "step_variances", None)):
            raise bad("schedule", "must implement AuxSchedule (a step_variances(k) method)")

    @property
    def num_candidates(self) -> int:
        """N = floor(exp(omega * (1 + epsilon))), candidates per step, evaluated
        exactly (``irec_jax.exact.tables.num_candidates``, the one place it is computed)."""
        from irec_jax.exact.tables import num_candidates
        return num_candidates(self.omega, self.epsilon)

    @property
    def bits_per_step(self) -> float:
        """log2 N: index bits per auxiliary step under a uniform index code."""
        return math.log2(self.num_candidates)

    def file_fields(self) -> dict[str, Any]:
        """The fields an .irec header stores (``FILE_FIELDS``), by name."""
        return {name: getattr(self, name) for name in FILE_FIELDS}


def check_storable(settings: CoderSettings) -> CoderSettings:
    """Returns ``settings`` if an .irec header can record them, else ValueError:
    a file stores FILE_FIELDS only, so the schedule must be the format's
    ``PowerLawSchedule()`` (beams, small_beams, block_kl, min_block_kl,
    prune_fraction, final_choices and layer_choices do not affect decoding)."""
    if not isinstance(settings, CoderSettings):
        raise ValueError(f"invalid coder settings: need a CoderSettings, got {type(settings).__name__}")
    if settings.schedule != PowerLawSchedule():
        raise ValueError(f"invalid coder settings: schedule={settings.schedule!r}; .irec files are "
                         "coded with the default PowerLawSchedule() (the header does not store it)")
    return settings


def preset(effort: Any, presets: dict[str, Any], kind: type, what: str = "effort") -> Any:
    """``effort`` itself if it is a ``kind`` (an encoder preset record), else the preset it names in
    ``presets``; ValueError listing the names (``what`` says whose presets they are)."""
    if isinstance(effort, kind):
        return effort
    if isinstance(effort, str) and effort in presets:
        return presets[effort]
    raise ValueError(f"{what} must be one of {', '.join(presets)}; got {effort!r}")
