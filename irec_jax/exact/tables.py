"""Constant integer lookup tables of the codec (part of the file format).

The decoder must compute bit-identical results on every CPU/GPU/TPU, so every
nonlinear function it uses is one of the fixed integer tables below. Each entry
is the correctly rounded integer (round to nearest; ties cannot occur except
where an entry is exactly an integer) of an exactly defined real number. The
values are computed with the stdlib ``decimal`` module (software arithmetic,
identical on every platform), never with libm; float64 serves only as a
starting guess that is then verified in Decimal. Generation additionally
refuses any entry whose Decimal value lies within 1e-20 of a rounding boundary
(1e-40 for the normal CDF comparisons), so the rounded integers do not depend on
the last digits of the Decimal approximations.

Tables shipped in ``tables.npz`` (next to this module; rebuild with
``python -m irec_jax.exact.tables``):

``normal_quantiles``: int32, shape [65536] (``NORMAL_BITS = 16``)
    ``Q[i] = round(2**16 * Phi^-1((i + 0.5) / 2**16))`` for i = 0..65535, where
    Phi is the standard normal CDF. Q is antisymmetric (``Q[65535 - i] == -Q[i]``)
    and non-decreasing; ``max |Q| = Q[65535] = 283438``, about 4.325 * 2**16.
    Equivalently, Q[i] is the unique integer v with
    ``Phi((v - 0.5) / 2**16) <= (i + 0.5) / 2**16 < Phi((v + 0.5) / 2**16)``.

``sigmoid``: int64, shape [65537]
    ``S[i] = round(2**32 / (1 + exp(-(i - 32768) / 1024)))`` for i = 0..65536:
    the logistic sigmoid at t = (i - 32768) / 2**10 (``SIGMOID_INDEX_BITS = 10``),
    t in [-32, 32] (``SIGMOID_RANGE = 32``), in units of 2**-32
    (``SIGMOID_BITS = 32``). ``S[32768] == 2**31``, ``S[i] + S[65536 - i] == 2**32``,
    non-decreasing, ``S[0] == 0``, ``S[65536] == 2**32``.

``elu``: int32, shape [8192] (``ELU_BITS = 10``)
    ``E[i] = round(1024 * (1 - exp(-i / 1024)))`` for i = 0..8191. ``E[0] == 0``,
    ``E[8191] == 1024``, non-decreasing.

Computed on demand (not shipped):

``power_law_ratio(j)``, j in [1, 2**16]
    ``round(2**30 * j ** -0.7864636765648174)`` (``POWER_LAW_BITS = 30``), with the
    exponent the exact decimal number ``POWER_LAW_EXPONENT = "0.7864636765648174"``.
    ``power_law_ratio(1) == 2**30``.

``softplus_scale(raw, floor, init)``
    The real number ``floor + init * ln(1 + exp(raw + ln(e - 1)))`` (so raw = 0
    gives ``floor + init``), to 50 significant digits. ``scale_table`` tabulates
    it at raw = (raw_min + i) / 2**step_bits as ``mant * 2**-exp`` with a 15-bit
    mantissa ``mant = round(s * 2**exp)`` in [2**14, 2**15) and
    ``inv = round(2**16 / s)`` (at most 2**31 - 1). These are encoder-side
    (model conversion) helpers whose outputs are stored with a model.
"""

from __future__ import annotations

import decimal
import functools
import hashlib
import operator
import os
import statistics
import sys
import tempfile
from decimal import Decimal

import numpy as np

from irec_jax.exact.decimal_fns import _CDF_GUARD, _context, _round
from irec_jax.exact.decimal_fns import (  # noqa: F401  (re-exported: the on-demand functions)
    POWER_LAW_BITS, POWER_LAW_EXPONENT, exp_neg_table, num_candidates, power_law_ratio, scale_table,
    softplus_scale, tanh_table)

__all__ = [
    "ELU_BITS",
    "NORMAL_BITS",
    "POWER_LAW_BITS",
    "POWER_LAW_EXPONENT",
    "SIGMOID_BITS",
    "SIGMOID_INDEX_BITS",
    "SIGMOID_RANGE",
    "TABLES_PATH",
    "elu_table",
    "exp_neg_table",
    "generate",
    "generate_elu",
    "generate_normal_quantiles",
    "generate_sigmoid",
    "load",
    "normal_cdf",
    "normal_quantile",
    "normal_quantiles",
    "power_law_ratio",
    "save",
    "scale_table",
    "sigmoid_table",
    "softplus_scale",
    "tanh_table",
]

NORMAL_BITS = 16
SIGMOID_INDEX_BITS = 10
SIGMOID_RANGE = 32
SIGMOID_BITS = 32
ELU_BITS = 10

TABLES_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tables.npz")

_NORMAL_SIZE = 1 << NORMAL_BITS
_SIGMOID_SIZE = 2 * SIGMOID_RANGE * (1 << SIGMOID_INDEX_BITS) + 1  # 65537
_ELU_SIZE = 8 << ELU_BITS  # 8192

# name -> (dtype, shape) of the shipped tables.
_SPECS: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
    "normal_quantiles": (np.dtype(np.int32), (_NORMAL_SIZE,)),
    "sigmoid": (np.dtype(np.int64), (_SIGMOID_SIZE,)),
    "elu": (np.dtype(np.int32), (_ELU_SIZE,)),
}

# ---------------------------------------------------------------------------
# Decimal constants
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _pi() -> Decimal:
    """pi to 60 digits (series recipe of the ``decimal`` documentation)."""
    with decimal.localcontext(_context(64)):
        three = Decimal(3)
        lasts, t, s, n, na, d, da = 0, three, 3, 1, 0, 0, 24
        while s != lasts:
            lasts = s
            n, na = n + na, na + 8
            d, da = d + da, da + 32
            t = (t * n) / d
            s += t
    return _context(60).plus(s)


@functools.lru_cache(maxsize=None)
def _erf_consts() -> tuple[Decimal, Decimal]:
    """(1 / sqrt(2), 2 / sqrt(pi)) to 60 digits."""
    ctx = _context(60)
    return ctx.divide(1, Decimal(2).sqrt(ctx)), ctx.divide(2, _pi().sqrt(ctx))


# ---------------------------------------------------------------------------
# Normal quantiles
# ---------------------------------------------------------------------------

_ERF_EPS = Decimal("1e-56")


def _erf(z: Decimal) -> Decimal:
    """erf(z) by its Maclaurin series; call inside a prec-50 context."""
    z2 = z * z
    term = z  # (-1)^n z^(2n+1) / n!
    total = z
    n = 0
    while True:
        n += 1
        term = -term * z2 / n
        add = term / (2 * n + 1)
        total += add
        if abs(add) < _ERF_EPS:
            break
    return total * _erf_consts()[1]


def normal_cdf(x: Decimal | int | str) -> Decimal:
    """Standard normal CDF Phi(x) = (1 + erf(x / sqrt(2))) / 2 in Decimal (prec 50).

    Accurate to about 1e-44 absolute for |x| <= 5 (the alternating erf series
    cancels catastrophically for much larger |x|).
    """
    with decimal.localcontext(_context()):
        x = Decimal(x)
        return (1 + _erf(x * _erf_consts()[0])) / 2


def _cdf_at_half_step(k: int) -> Decimal:
    """Phi(k / 2**(NORMAL_BITS + 1)) (k odd: the boundary between two values)."""
    with decimal.localcontext(_context()):
        return normal_cdf(Decimal(k) / (1 << (NORMAL_BITS + 1)))


def normal_quantile(i: int) -> int:
    """Entry Q[i] of the normal quantile table, computed from its definition."""
    i = operator.index(i)
    if not 0 <= i < _NORMAL_SIZE:
        raise ValueError(f"index {i} outside [0, {_NORMAL_SIZE})")
    scale = 1 << NORMAL_BITS
    with decimal.localcontext(_context()):
        u = Decimal(2 * i + 1) / (2 * scale)  # exact
    v = round(statistics.NormalDist().inv_cdf((i + 0.5) / scale) * scale)
    while True:
        lo = _cdf_at_half_step(2 * v - 1)
        if abs(lo - u) < _CDF_GUARD:
            raise ArithmeticError(f"normal quantile {i}: boundary too close")
        if lo > u:
            v -= 1
            continue
        hi = _cdf_at_half_step(2 * v + 1)
        if abs(hi - u) < _CDF_GUARD:
            raise ArithmeticError(f"normal quantile {i}: boundary too close")
        if hi <= u:
            v += 1
            continue
        return v


def generate_normal_quantiles() -> np.ndarray:
    """Compute Q (int32 [65536]) from its definition (a few seconds)."""
    half = _NORMAL_SIZE // 2
    lower = np.array([normal_quantile(i) for i in range(half)], dtype=np.int64)
    q = np.concatenate([lower, -lower[::-1]])
    return q.astype(np.int32)


# ---------------------------------------------------------------------------
# Sigmoid and ELU
# ---------------------------------------------------------------------------


def generate_sigmoid() -> np.ndarray:
    """Compute S (int64 [65537]) from its definition (under a second)."""
    ctx = _context()
    centre = _SIGMOID_SIZE // 2  # 32768
    one = 1 << SIGMOID_BITS
    denom = 1 << SIGMOID_INDEX_BITS
    lower = np.empty(centre + 1, dtype=np.int64)
    with decimal.localcontext(ctx):
        for i in range(centre + 1):
            # t = (i - centre) / 1024 <= 0; S = 2**32 / (1 + exp(-t)).
            e = ctx.exp(Decimal(centre - i) / denom)
            lower[i] = _round(one / (1 + e))
    return np.concatenate([lower, one - lower[-2::-1]]).astype(np.int64)


def generate_elu() -> np.ndarray:
    """Compute E (int32 [8192]) from its definition (well under a second)."""
    ctx = _context()
    one = 1 << ELU_BITS
    out = np.empty(_ELU_SIZE, dtype=np.int32)
    with decimal.localcontext(ctx):
        for i in range(_ELU_SIZE):
            out[i] = _round(one * (1 - ctx.exp(Decimal(-i) / one)))
    return out


def generate() -> dict[str, np.ndarray]:
    """All shipped tables from their definitions: {"normal_quantiles", "sigmoid", "elu"}."""
    return {
        "normal_quantiles": generate_normal_quantiles(),
        "sigmoid": generate_sigmoid(),
        "elu": generate_elu(),
    }


# ---------------------------------------------------------------------------
# Shipping and loading
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def load() -> dict[str, np.ndarray]:
    """The shipped tables {"normal_quantiles", "sigmoid", "elu"} as read-only arrays.

    Read once from ``tables.npz`` next to this module and cached.
    """
    out: dict[str, np.ndarray] = {}
    with np.load(TABLES_PATH, allow_pickle=False) as npz:
        for name, (dtype, shape) in _SPECS.items():
            arr = np.ascontiguousarray(npz[name]).astype(dtype, copy=False)
            if arr.dtype != dtype or arr.shape != shape:
                raise ValueError(f"{TABLES_PATH}: {name} has {arr.dtype}{arr.shape}")
            arr.setflags(write=False)
            out[name] = arr
    return out


def normal_quantiles() -> np.ndarray:
    """Shipped Q table: int32 [65536], read-only."""
    return load()["normal_quantiles"]


def sigmoid_table() -> np.ndarray:
    """Shipped S table: int64 [65537], read-only."""
    return load()["sigmoid"]


def elu_table() -> np.ndarray:
    """Shipped E table: int32 [8192], read-only."""
    return load()["elu"]


def _sha256(arr: np.ndarray) -> str:
    """sha256 of the array's little-endian bytes."""
    return hashlib.sha256(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()).hexdigest()


def save(tables: dict[str, np.ndarray], path: str = TABLES_PATH) -> None:
    """Write tables atomically (temporary file then os.replace) as a compressed npz."""
    arrays = {}
    for name, (dtype, shape) in _SPECS.items():
        arr = np.asarray(tables[name])
        if arr.dtype != dtype or arr.shape != shape:
            raise ValueError(f"{name}: expected {dtype}{shape}, got {arr.dtype}{arr.shape}")
        arrays[name] = arr.astype(dtype.newbyteorder("<"), copy=False)
    fd, tmp = tempfile.mkstemp(prefix=".tables-", suffix=".npz.tmp", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main() -> int:
    tables = generate()
    save(tables)
    for name in _SPECS:
        arr = tables[name]
        print(f"{name}: {arr.dtype} {arr.shape} sha256={_sha256(arr)}")
    return 0



if __name__ == "__main__":
    sys.exit(main())
