"""Exact functions evaluated on demand in Decimal (software arithmetic, the same
on every machine): the power-law schedule's ratios, the per-model scale
tables of the integer models, N = floor(exp(omega (1 + epsilon))), and the
Decimal helpers that ``irec_jax.exact.tables`` generates its shipped tables
with. No libm, no numpy transcendental functions.
"""

from __future__ import annotations

import decimal
import functools
import math
import operator
from decimal import Decimal

import numpy as np

POWER_LAW_EXPONENT = "0.7864636765648174"
POWER_LAW_BITS = 30

_PREC = 50
_HALF = Decimal("0.5")
# A value this close to a rounding boundary makes generation fail loudly.
_ROUND_GUARD = Decimal("1e-20")
_CDF_GUARD = Decimal("1e-40")


def _context(prec: int = _PREC) -> decimal.Context:
    """A fresh Decimal context independent of the caller's global context."""
    return decimal.Context(
        prec=prec,
        rounding=decimal.ROUND_HALF_EVEN,
        Emin=-999999,
        Emax=999999,
        capitals=1,
        clamp=0,
        flags=[],
        traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
    )


def _round(x: Decimal) -> int:
    """Nearest integer to x; raises if x is within _ROUND_GUARD of a tie."""
    n = x.to_integral_value(rounding=decimal.ROUND_HALF_EVEN)
    with decimal.localcontext(_context()):
        if abs(abs(x - n) - _HALF) < _ROUND_GUARD:
            raise ArithmeticError(f"{x} is too close to a rounding tie")
    return int(n)


@functools.lru_cache(maxsize=None)
def _ln_e_minus_1() -> Decimal:
    """ln(e - 1) to 60 digits."""
    ctx = _context(70)
    return _context(60).plus(ctx.ln(ctx.exp(1) - 1))


# ---------------------------------------------------------------------------
# Power law and softplus scales (on demand)
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _power_law_ratio(j: int, exponent: str) -> int:
    ctx = _context()
    with decimal.localcontext(ctx):
        x = ctx.power(Decimal(j), -Decimal(exponent))
        return _round(x * (1 << POWER_LAW_BITS))


def power_law_ratio(j: int, exponent: str = POWER_LAW_EXPONENT) -> int:
    """``round(2**30 * j ** -exponent)`` for integer j in [1, 2**16], the
    exponent a decimal string (default the paper's 0.7864636765648174)."""
    j = operator.index(j)
    if not 1 <= j <= (1 << 16):
        raise ValueError(f"power_law_ratio: j={j} outside [1, 65536]")
    return _power_law_ratio(j, str(exponent))


_LOG1P_SERIES_BELOW = Decimal("1e-20")


def softplus_scale(raw: Decimal | str | int, floor: str, init: str) -> Decimal:
    """``floor + init * ln(1 + exp(raw + ln(e - 1)))`` to 50 significant digits.

    floor and init are decimal strings (e.g. "0.001", "1"); raw = 0 gives
    floor + init (up to the last digit).
    """
    ctx = _context()
    with decimal.localcontext(ctx):
        y = ctx.exp(Decimal(raw) + _ln_e_minus_1())
        if y < _LOG1P_SERIES_BELOW:
            # ln(1 + y) = y - y^2/2 + y^3/3 - ...: relative error < y^3.
            softplus = y - y * y / 2 + y * y * y / 3
        else:
            wide = _context(_PREC + 25)
            softplus = ctx.plus(wide.ln(wide.add(1, y)))
        return Decimal(floor) + Decimal(init) * softplus


def _times_pow2(x: Decimal, e: int) -> Decimal:
    """x * 2**e, inside the current context."""
    return x * (1 << e) if e >= 0 else x / (1 << -e)


def scale_table(
    floor: str, init: str, raw_min: int, count: int, step_bits: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tabulate softplus_scale at raw_i = (raw_min + i) / 2**step_bits, i < count.

    Returns (mant, exp, inv), each int32 [count], with s_i ~= mant_i * 2**-exp_i,
    ``mant_i = round(s_i * 2**exp_i)`` in [2**14, 2**15) and
    ``inv_i = min(round(2**16 / s_i), 2**31 - 1)``. Raises ValueError if some
    s_i <= 0 or a value does not fit int32.
    """
    raw_min, count, step_bits = map(operator.index, (raw_min, count, step_bits))
    if count < 0 or step_bits < 0:
        raise ValueError("scale_table: count and step_bits must be >= 0")
    mant = np.empty(count, dtype=np.int32)
    exps = np.empty(count, dtype=np.int32)
    inv = np.empty(count, dtype=np.int32)
    lo, hi = 1 << 14, 1 << 15
    int32_max = (1 << 31) - 1
    ctx = _context()
    with decimal.localcontext(ctx):
        denom = Decimal(1 << step_bits)
        for i in range(count):
            s = softplus_scale(Decimal(raw_min + i) / denom, floor, init)
            if s <= 0:
                raise ValueError(f"scale_table: scale {s} <= 0 at raw index {raw_min + i}")
            f = float(s)
            if 0.0 < f < math.inf:
                e = 15 - math.frexp(f)[1]  # s * 2**e in [2**14, 2**15) up to float error
            else:
                e = 14 - int(s.adjusted() * 3.321928094887362)
            while _times_pow2(s, e) >= hi:
                e -= 1
            while _times_pow2(s, e) < lo:
                e += 1
            m = int(_times_pow2(s, e).to_integral_value(rounding=decimal.ROUND_HALF_EVEN))
            if m == hi:
                m, e = lo, e - 1
            if not -int32_max <= e <= int32_max:
                raise ValueError(f"scale_table: exponent {e} does not fit int32")
            r = int((Decimal(1 << 16) / s).to_integral_value(rounding=decimal.ROUND_HALF_EVEN))
            mant[i], exps[i], inv[i] = m, e, min(r, int32_max)
    return mant, exps, inv


def _tabulate(name: str, count: int, step_bits: int, bits: int, fn) -> np.ndarray:
    """int32 [count]: ``round(2**bits * fn(i / 2**step_bits))`` with ``fn`` a
    Decimal function evaluated in this module's context."""
    count, step_bits, bits = map(operator.index, (count, step_bits, bits))
    if count < 0 or step_bits < 0 or not 0 <= bits <= 30:
        raise ValueError(f"{name}: need count, step_bits >= 0 and bits in [0, 30]")
    out = np.empty(count, dtype=np.int32)
    ctx = _context()
    with decimal.localcontext(ctx):
        for i in range(count):
            out[i] = _round(fn(ctx, Decimal(i) / Decimal(1 << step_bits)) * (1 << bits))
    return out


def tanh_table(raw_min: int, count: int, step_bits: int, bits: int) -> np.ndarray:
    """``round(2**bits * tanh(raw_i))`` at raw_i = (raw_min + i) / 2**step_bits,
    i < count: int32 [count] (a model's coupling coefficients)."""
    shift = Decimal(operator.index(raw_min)) / Decimal(1 << operator.index(step_bits))
    return _tabulate("tanh_table", count, step_bits, bits,
                     lambda ctx, x: 1 - 2 / (ctx.exp(2 * (x + shift)) + 1))


def exp_neg_table(count: int, step_bits: int, bits: int) -> np.ndarray:
    """``round(2**bits * exp(-i / 2**step_bits))`` for i < count: int32 [count]
    (a model's mixture weights from logit gaps)."""
    return _tabulate("exp_neg_table", count, step_bits, bits, lambda ctx, x: ctx.exp(-x))


def num_candidates(omega: float, epsilon: float) -> int:
    """N = floor(exp(omega (1 + epsilon))), candidates per iREC step, the same on
    every machine: omega and epsilon are taken as the exact values of their
    float64s, and 1 + epsilon, the product and the exponential are each
    evaluated in Decimal at 50 significant digits (software arithmetic; a
    float64 ``math.exp`` could round differently across C libraries when the
    result is within an ulp of an integer). The exponent is capped at 50
    (N > 2^24 is refused by every caller anyway)."""
    ctx = _context()
    with decimal.localcontext(ctx):
        t = min(Decimal(float(omega)) * (1 + Decimal(float(epsilon))), Decimal(50))
        return int(ctx.exp(t).to_integral_value(rounding=decimal.ROUND_FLOOR))
