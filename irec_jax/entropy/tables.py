"""Distributions -> integer frequency tables, the one place where floats
become the integers that encoder and decoder must agree on.

All coding in `irec_jax.entropy` uses tables of `PRECISION`-bit integer
frequencies: every symbol gets >= 1, each table sums to exactly 2**PRECISION.
constriction's `Categorical(perfect=False)` model reproduces such a table
exactly when it is handed `freq - 1` as (exactly representable) float32
weights; `coder_weights` does that conversion.
"""

from __future__ import annotations

import numpy as np

PRECISION = 24  # bits; constriction's default precision for its categorical model.


def freqs_from_cdf(cdf: np.ndarray, precision: int = PRECISION) -> np.ndarray:
    """Quantizes cumulative probabilities to integer frequencies.

    Args:
      cdf: float64 [..., n + 1], the (unnormalized) CDF at the n + 1 bin edges,
        non-decreasing along the last axis. Each row is rescaled so its first
        entry maps to 0 and its last to 1; a flat (zero-mass) or non-finite
        row becomes uniform.
      precision: the tables sum to 2**precision.

    Returns:
      int64 [..., n]: frequencies, each >= 1, summing to 2**precision along
      the last axis: freq_i = floor(c_{i+1} S) - floor(c_i S) + 1 with
      S = 2**precision - n and c the rescaled CDF. Pure and deterministic:
      encoder and decoder call this same function on the same float64 inputs.
    """
    cdf = np.asarray(cdf, dtype=np.float64)
    n = cdf.shape[-1] - 1
    cum = floor_cumulative(cdf.reshape(-1, n + 1), _spare(n, precision))
    return (np.diff(cum, axis=-1).astype(np.int64) + 1).reshape(cdf.shape[:-1] + (n,))


def _spare(n: int, precision: int) -> int:
    if n < 1:
        raise ValueError(f"a table needs >= 1 symbol, got {n}")
    if n > 1 << precision:
        raise ValueError(f"{n} symbols do not fit {precision}-bit frequencies")
    return (1 << precision) - n


def floor_cumulative(cdf: np.ndarray, spare: int, check: bool = True) -> np.ndarray:
    """The quantizer behind every table: floor(rescaled CDF * spare).

    Args:
      cdf: float64 [rows, n + 1] CDF at the bin edges (see `freqs_from_cdf`).
      spare: 2**precision minus the symbols that get a free count.
      check: verify every row is non-decreasing and repair the rows that are
        not; pass False only if the caller does that check itself.

    Returns:
      float64 [rows, n + 1] of integers: 0 in the first column, `spare` in the
      last, non-decreasing along each row (so every bin's count is >= 0).
    """
    lo = cdf[:, :1]
    with np.errstate(invalid="ignore", over="ignore"):
        total = cdf[:, -1:] - lo
    if np.all(lo == 0.0) and np.all(total == 1.0):
        cum = cdf * float(spare)
    else:
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            cum = cdf - lo
            cum *= float(spare) / total
    np.floor(cum, out=cum)  # integers < 2**precision: exact in float64
    cum[:, 0] = 0.0
    cum[:, -1] = float(spare)
    if check:
        with np.errstate(invalid="ignore"):
            bad = ~np.all(cum[:, 1:] - cum[:, :-1] >= 0, axis=1)
        repair_rows(cum, cdf, bad, spare)
    return cum


def repair_rows(cum: np.ndarray, cdf: np.ndarray, bad: np.ndarray, spare: int) -> None:
    """Recomputes the rows `bad` (bool [rows]) of `cum` in place on the slow,
    robust path (zero or non-finite mass -> uniform; non-monotone -> repaired)."""
    if np.any(bad):
        cum[bad] = _floor_cumulative_robust(cdf[bad], spare)


def _floor_cumulative_robust(cdf: np.ndarray, spare: int) -> np.ndarray:
    """Slow path of `floor_cumulative`: uniform for rows without finite
    positive mass, monotone repair for the rest."""
    n = cdf.shape[-1] - 1
    lo = cdf[:, :1]
    with np.errstate(invalid="ignore", over="ignore"):
        total = cdf[:, -1:] - lo
    ok = np.isfinite(total) & (total > 0) & np.all(np.isfinite(cdf), -1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        scaled = (cdf - lo) / np.where(ok, total, 1.0)
    scaled = np.where(ok, scaled, np.linspace(0.0, 1.0, n + 1))
    scaled = np.clip(np.where(np.isfinite(scaled), scaled, 0.0), 0.0, 1.0)
    scaled[:, 0] = 0.0
    scaled[:, -1] = 1.0
    np.maximum.accumulate(scaled, axis=-1, out=scaled)
    return np.floor(scaled * spare)


def padded_coder_weights(cdf: np.ndarray, precision: int = PRECISION) -> np.ndarray:
    """Hot-path tables for the residual coder: CDF float64 [rows, n + 1] ->
    float32 coder weights [rows, n + 1].

    Bins 0..n-1 get `floor_cumulative` counts; column n is a never-coded
    padding symbol with weight 0 (frequency 1), which lets the whole table
    come from one contiguous difference. Frequencies: each >= 1, summing to
    2**precision over the n + 1 symbols.
    """
    rows, edges = cdf.shape
    spare = _spare(edges, precision)
    cum = floor_cumulative(cdf, spare, check=False)
    out = _flat_diff(cum)
    with np.errstate(invalid="ignore"):
        if not out.min(initial=0.0) >= 0:  # rare: some row needs the slow path
            repair_rows(cum, cdf, ~np.all(out >= 0, axis=1), spare)
            out = _flat_diff(cum)
    return out


def padded_weights_int(cdf: np.ndarray, precision: int = PRECISION, *, check: bool = True) -> np.ndarray:
    """`padded_coder_weights` for an integer CDF int64 [rows, n + 1] (values
    below 2^32 here), in integer arithmetic only: cum_j = floor((c_j - c_0)
    * spare / (c_n - c_0)) with spare = 2^precision - (n + 1); a row without
    mass (c_n == c_0) becomes uniform, cum_j = floor(j * spare / n). Returns
    float32 coder weights [rows, n + 1] (the last, padding, column 0).
    ``check=False`` skips verifying that rows are non-decreasing (for callers
    whose CDFs are monotone by construction)."""
    cdf = np.asarray(cdf, np.int64)
    rows, edges = cdf.shape
    n = edges - 1
    spare = _spare(edges, precision)
    lo = cdf[:, :1]
    total = cdf[:, -1:] - lo
    if check and (np.any(total < 0) or np.any(cdf[:, 1:] < cdf[:, :-1])):
        raise ValueError("integer CDF rows must be non-decreasing")
    num = (cdf - lo) * spare
    if np.all(total == total[0, 0]) and total[0, 0] > 0 and not total[0, 0] & (total[0, 0] - 1):
        cum = num >> int(total[0, 0]).bit_length() - 1  # one power-of-two total: a shift
    else:
        uniform = (np.arange(edges, dtype=np.int64) * spare) // n
        cum = np.where(total > 0, floor_div(num, np.maximum(total, 1)), uniform[None, :])
    return _flat_diff(cum.astype(np.float64))


def floor_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Exact floor(num / den) for int64 0 <= num < 2^62, 0 < den (broadcast),
    with quotients below 2^40: a float64 estimate (off by at most one there)
    corrected in integers -- several times faster than numpy's integer
    division, and the same integers."""
    q = np.floor(num / den).astype(np.int64)
    q -= q * den > num
    q += (q + 1) * den <= num
    return q


def _flat_diff(cum: np.ndarray) -> np.ndarray:
    """Row-wise differences of cum [rows, m] as float32 [rows, m], the last
    column set to 0 (one contiguous pass instead of a strided one)."""
    rows, m = cum.shape
    flat = cum.reshape(-1)
    out = np.empty(rows * m, np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        np.subtract(flat[1:], flat[:-1], out=out[:-1], casting="same_kind")
    out = out.reshape(rows, m)
    out[:, -1] = 0.0
    return out


def freqs_from_pmf(pmf: np.ndarray, precision: int = PRECISION) -> np.ndarray:
    """`freqs_from_cdf` of a probability mass table float [..., n] (>= 0,
    unnormalized; negative or non-finite entries count as 0).
    Returns int64 [..., n], each >= 1, summing to 2**precision."""
    pmf = np.asarray(pmf, dtype=np.float64)
    pmf = np.where(np.isfinite(pmf) & (pmf > 0), pmf, 0.0)
    zeros = np.zeros(pmf.shape[:-1] + (1,))
    return freqs_from_cdf(np.concatenate([zeros, np.cumsum(pmf, axis=-1)], -1), precision)


def coder_weights(freqs: np.ndarray, precision: int = PRECISION) -> np.ndarray:
    """Integer frequencies [..., n] (each >= 1, summing to 2**24) -> the
    float32 weights [..., n] that make constriction's
    `Categorical(perfect=False)` code with exactly these frequencies (it gives
    every symbol 1 and splits the rest in proportion to the weights)."""
    if precision != PRECISION:
        raise ValueError(f"constriction codes with {PRECISION}-bit tables")
    return np.ascontiguousarray(np.asarray(freqs) - 1, dtype=np.float32)


def table_bits(freqs: np.ndarray, symbols: np.ndarray, precision: int = PRECISION) -> float:
    """Information content in bits of `symbols` int [m] under integer tables
    int [m, n] (one per symbol) or one shared table int [n]."""
    freqs = np.asarray(freqs, dtype=np.float64)
    symbols = np.asarray(symbols, dtype=np.int64)
    if freqs.ndim == 1:
        picked = freqs[symbols]
    else:
        picked = np.take_along_axis(freqs, symbols[:, None], axis=-1)[:, 0]
    return float(np.sum(precision - np.log2(picked)))
