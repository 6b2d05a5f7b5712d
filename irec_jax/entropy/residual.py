"""Lossless residual coding: 8-bit pixels under per-subpixel discretized
logistic (or mixture of logistics) likelihoods.

Two kinds of parameters. `QuantizedLogistic` (integer loc and 1/scale, what
the codec's integer models produce) is turned into frequency tables with
integer arithmetic only -- the sigmoid is the constant table of
`irec_jax.exact.tables` -- so its bitstreams decode identically on every
machine (`docs/format.md` specifies it). `FloatLogistic` /
`FloatLogisticMixture` (float loc and log_scale; not the models' `Logistic`,
which holds the scale) go through a float32 sigmoid: deterministic on one
machine and numpy build, not across them; for experiments and baselines.

Units: all likelihood parameters are in **8-bit levels**. Pixel value k in
{0, ..., 255} owns the bin [k - 0.5, k + 0.5); the edge bins take the tails,
i.e. P(0) = F(0.5) and P(255) = 1 - F(254.5), where F is the (mixture)
logistic CDF with location `loc` and scale `exp(log_scale)` (natural log).
A model whose outputs live on [-1, 1] or [0, 1] converts with
`rescale_params`. `log_scale` is clipped to `LOG_SCALE_RANGE` on both sides.

Coding: each subpixel is split into a group g = x // 16 and an offset
k = x % 16 (P(x) = P(g) P(k | g)). Each is coded with a table built from the
CDF at the 17 edges of its 16 bins (the group edges 16j - 0.5, resp. the
edges inside group g, normalized by the group's mass); the tables carry a
17th, never-coded symbol of frequency 1 and sum to 2**24. For
`QuantizedLogistic` the CDF is an integer (the sigmoid table at a rounded
standardized edge, `docs/format.md` section 3) and `tables.padded_weights_int`
quantizes it in integers; for float parameters the sigmoid is evaluated in
float32 and `tables.padded_coder_weights` quantizes in float64. Subpixels go
in raster (H, W, C) order in chunks of `CHUNK`; each chunk writes its group
symbols, then its offset symbols (`push_pixels` / `pop_pixels`, onto a range
coder here or an ANS stack in BB-ANS). Work is vectorized per chunk, never
holding a [subpixels, 256] table.
"""

from __future__ import annotations

import contextlib
import dataclasses
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Callable, Iterator, Sequence, Union

import numpy as np

from irec_jax import parallel
from irec_jax.entropy import _coder, tables
from irec_jax.errors import FormatError
from irec_jax.exact import tables as exact_tables
from irec_jax.exact.units import COEF_BITS, INV_SCALE_BITS, LOC_BITS, MIX_SHIFT, MIX_WEIGHT_BITS

CHUNK = 1 << 13  # subpixels per chunk; part of the stream order (format constant).
LOG_SCALE_RANGE = (-16.0, 16.0)  # clip for log_scale, in log 8-bit levels.
_GROUP = 16
_MIN_MASS = 1e-300
_LEVEL1_EDGES = np.arange(1, _GROUP, dtype=np.float32) * _GROUP - 0.5  # [15]
_LEVEL2_OFFSETS = np.arange(1, _GROUP, dtype=np.float32) - 0.5  # [15]


@dataclasses.dataclass(frozen=True)
class FloatLogistic:
    """Discretized logistic likelihood, one per subpixel, float parameters.
    loc: float [H, W, C], mean in 8-bit levels (bin centres 0..255).
    log_scale: float [H, W, C], natural log of the logistic scale in levels.
    """

    loc: np.ndarray
    log_scale: np.ndarray


@dataclasses.dataclass(frozen=True)
class FloatLogisticMixture:
    """Mixture of K discretized logistics per subpixel, float parameters.
    logits: float [H, W, C, K], unnormalized log mixture weights.
    loc: float [H, W, C, K], component means in 8-bit levels.
    log_scale: float [H, W, C, K], natural log of the component scales.
    """

    logits: np.ndarray
    loc: np.ndarray
    log_scale: np.ndarray


@dataclasses.dataclass(frozen=True)
class QuantizedLogistic:
    """Discretized logistic with integer parameters, one per subpixel.
    loc: int [H, W, C], mean in 8-bit levels, units of 2^-LOC_BITS (2^-11).
    inv_scale: int [H, W, C], 1 / scale (scale in levels), units of
      2^-INV_SCALE_BITS (2^-16), >= 0.
    """

    loc: np.ndarray
    inv_scale: np.ndarray


Likelihood = Union[FloatLogistic, FloatLogisticMixture, QuantizedLogistic, "QuantizedMixture"]


def rescale_params(loc: np.ndarray, log_scale: np.ndarray, *, centre0: float,
                   step: float) -> tuple[np.ndarray, np.ndarray]:
    """Converts (loc, log_scale) from a model's pixel scale to 8-bit levels.

    The model maps pixel value k to `centre0 + k * step`; e.g. PixelCNN++-style
    [-1, 1] data has centre0=-1, step=2/255; [0, 1] data has centre0=0,
    step=1/255. Returns float64 (loc, log_scale) in levels, same shapes.
    """
    loc = (np.asarray(loc, np.float64) - centre0) / step
    return loc, np.asarray(log_scale, np.float64) - np.log(step)


@dataclasses.dataclass(frozen=True)
class _Flat:
    """Likelihood flattened to n subpixels x K components (K = 1: logistic)."""

    loc: np.ndarray  # [n, K] float64, levels
    inv_scale: np.ndarray  # [n, K] float64, 1 / levels
    weight: np.ndarray | None  # [n, K] float64 normalized; None when K = 1
    loc32: np.ndarray  # [n, K] float32 copies for the table hot path
    inv_scale32: np.ndarray  # [n, K] float32

    def rows(self, start: int, stop: int) -> "_Flat":
        w = None if self.weight is None else self.weight[start:stop]
        return _Flat(self.loc[start:stop], self.inv_scale[start:stop], w,
                     self.loc32[start:stop], self.inv_scale32[start:stop])


def _shape_of(params: Likelihood) -> tuple[int, int, int]:
    loc = np.shape(params.loc)
    if isinstance(params, (QuantizedLogistic, FloatLogistic)):
        name, other = (("inv_scale", params.inv_scale) if isinstance(params, QuantizedLogistic)
                       else ("log_scale", params.log_scale))
        if len(loc) != 3 or np.shape(other) != loc:
            raise ValueError(f"{type(params).__name__} params need loc and {name} of one shape "
                             f"[H, W, C], got {loc} and {np.shape(other)}")
        return loc
    if isinstance(params, FloatLogisticMixture):
        shapes = {np.shape(params.logits), loc, np.shape(params.log_scale)}
        if len(loc) != 4 or len(shapes) != 1 or loc[-1] < 1:
            raise ValueError(
                "FloatLogisticMixture params need logits, loc, log_scale of one shape "
                f"[H, W, C, K], got {sorted(shapes)}")
        return loc[:3]
    raise TypeError(f"unsupported likelihood {type(params).__name__}")


def _flatten(params: Likelihood) -> _Flat:
    _shape_of(params)
    k = 1 if isinstance(params, FloatLogistic) else np.shape(params.loc)[-1]
    loc = np.asarray(params.loc, np.float64).reshape(-1, k)
    log_scale = np.asarray(params.log_scale, np.float64).reshape(-1, k)
    if not (np.isfinite(loc).all() and np.isfinite(log_scale).all()):
        raise ValueError("likelihood params must be finite")
    inv_scale = np.exp(-np.clip(log_scale, *LOG_SCALE_RANGE))
    weight = None
    if not isinstance(params, FloatLogistic):
        logits = np.asarray(params.logits, np.float64).reshape(-1, k)
        if not np.isfinite(logits).all():
            raise ValueError("mixture logits must be finite")
        weight = np.exp(logits - logits.max(-1, keepdims=True))
        weight /= weight.sum(-1, keepdims=True)
    return _Flat(loc, inv_scale, weight, loc.astype(np.float32),
                 inv_scale.astype(np.float32))


def _sigmoid_into(out: np.ndarray, u: np.ndarray) -> np.ndarray:
    """out[...] = 1 / (1 + exp(u)) for float32 u (overwritten)."""
    with np.errstate(over="ignore"):
        np.exp(u, out=u)
    u += np.float32(1.0)
    np.divide(np.float32(1.0), u, out=u)
    out[...] = u
    return out


def _cdf_into(out: np.ndarray, p: _Flat, points: np.ndarray,
              shift: np.ndarray | None = None) -> None:
    """out[n, m] = mixture logistic CDF at float32 points[m] + shift[n] (levels).

    The sigmoid runs in float32 (3x faster here than float64; its ~1e-7
    error is far below what moves a 24-bit table) and is widened to the
    float64 CDF the quantizer takes. Deterministic: same inputs, same outputs.
    """
    for k in range(p.loc.shape[1]):
        loc = p.loc32[:, k] if shift is None else p.loc32[:, k] - shift
        u = np.subtract.outer(loc, points)
        u *= p.inv_scale32[:, k:k + 1]
        if p.weight is None:
            _sigmoid_into(out, u)
        elif k == 0:
            out[...] = _sigmoid_into(np.empty(u.shape), u) * p.weight[:, :1]
        else:
            out += _sigmoid_into(np.empty(u.shape), u) * p.weight[:, k:k + 1]


def _level1_cdf(p: _Flat) -> np.ndarray:
    """CDF at the group edges: float64 [n, 17] = [0, F(15.5), ..., F(239.5), 1]."""
    n = p.loc.shape[0]
    out = np.empty((n, _GROUP + 1))
    out[:, 0] = 0.0
    out[:, -1] = 1.0
    _cdf_into(out[:, 1:-1], p, _LEVEL1_EDGES)
    return out


def _level2_cdf(p: _Flat, cdf1: np.ndarray, group: np.ndarray) -> np.ndarray:
    """CDF at the edges inside each subpixel's group: float64 [n, 17]."""
    n = group.shape[0]
    out = np.empty((n, _GROUP + 1))
    at = np.arange(0, n * (_GROUP + 1), _GROUP + 1) + group
    flat1 = cdf1.reshape(-1)
    out[:, 0] = flat1[at]
    out[:, -1] = flat1[at + 1]
    _cdf_into(out[:, 1:-1], p, _LEVEL2_OFFSETS, shift=(group * _GROUP).astype(np.float32))
    return out


def _weights(cdf: np.ndarray) -> np.ndarray:
    """[n, 17] CDF at a level's bin edges -> float32 coder weights [n, 17]
    (16 symbols and `tables.padded_coder_weights`' padding symbol)."""
    return tables.padded_coder_weights(cdf)


@dataclasses.dataclass(frozen=True)
class _FlatInt:
    """QuantizedLogistic flattened to n subpixels (int64)."""

    loc: np.ndarray  # [n], units 2^-LOC_BITS levels
    inv_scale: np.ndarray  # [n], units 2^-INV_SCALE_BITS

    def rows(self, start: int, stop: int) -> "_FlatInt":
        return _FlatInt(self.loc[start:stop], self.inv_scale[start:stop])


def _flatten_int(params: QuantizedLogistic) -> _FlatInt:
    _shape_of(params)
    loc, inv = np.asarray(params.loc), np.asarray(params.inv_scale)
    if loc.dtype.kind not in "iu" or inv.dtype.kind not in "iu":
        raise ValueError(f"QuantizedLogistic params must be integers, got {loc.dtype} and {inv.dtype}")
    loc, inv = loc.reshape(-1).astype(np.int64), inv.reshape(-1).astype(np.int64)
    if loc.size and (np.abs(loc).max() >= 1 << 30 or inv.min() < 0 or inv.max() >= 1 << 31):
        raise ValueError("QuantizedLogistic params out of range (|loc| < 2^30, 0 <= inv_scale < 2^31)")
    return _FlatInt(loc, inv)


_T_SHIFT = LOC_BITS + INV_SCALE_BITS - exact_tables.SIGMOID_INDEX_BITS
_T_MAX = exact_tables.SIGMOID_RANGE << exact_tables.SIGMOID_INDEX_BITS
_ONE = 1 << exact_tables.SIGMOID_BITS


def _table_cdf(d: np.ndarray, inv_scale: np.ndarray) -> np.ndarray:
    """int64: the logistic CDF in units 2^-32 at integer offsets d = point - loc
    (levels in units 2^-LOC_BITS), broadcast with inv_scale: S[clip(t) + 2^15]
    with t = round(d * inv_scale / 2^17), i.e. d / scale in units 2^-10, and S
    the sigmoid table (``np.take``'s clip mode is the clip to +-_T_MAX)."""
    t = d * inv_scale
    t += 1 << (_T_SHIFT - 1)
    t >>= _T_SHIFT
    t += _T_MAX
    return np.take(exact_tables.sigmoid_table(), t, mode="clip")


def _int_cdf(p: _FlatInt, points: np.ndarray) -> np.ndarray:
    """int64 [n, m]: ``_table_cdf`` at integer points [m] or [n, m]."""
    return _table_cdf((points if points.ndim == 2 else points[None, :]) - p.loc[:, None], p.inv_scale[:, None])


_LEVEL1_POINTS = (np.arange(1, _GROUP, dtype=np.int64) * _GROUP * 2 - 1) << (LOC_BITS - 1)  # 16j - 0.5
_LEVEL2_POINTS = (np.arange(1, _GROUP, dtype=np.int64) * 2 - 1) << (LOC_BITS - 1)  # k - 0.5


def _int_level1(p: _FlatInt) -> np.ndarray:
    """int64 [n, 17]: [0, C(15.5), ..., C(239.5), 2^32]."""
    n = p.loc.shape[0]
    out = np.empty((n, _GROUP + 1), np.int64)
    out[:, 0], out[:, -1] = 0, _ONE
    out[:, 1:-1] = _int_cdf(p, _LEVEL1_POINTS)
    return out


def _int_level2(p: _FlatInt, cdf1: np.ndarray, group: np.ndarray) -> np.ndarray:
    """int64 [n, 17]: the CDF at the edges inside each subpixel's group, its
    ends taken from the level-1 CDF."""
    n = group.shape[0]
    out = np.empty((n, _GROUP + 1), np.int64)
    rows = np.arange(n)
    out[:, 0], out[:, -1] = cdf1[rows, group], cdf1[rows, group + 1]
    points = _LEVEL2_POINTS[None, :] + (group.astype(np.int64) * _GROUP << LOC_BITS)[:, None]
    out[:, 1:-1] = _int_cdf(p, points)
    return out


@dataclasses.dataclass(frozen=True)
class QuantizedMixture:
    """Mixture of K discretized logistics per subpixel with integer parameters,
    the channels of a pixel coupled (``irec_jax.models.likelihoods.CoupledMixture``'s
    integer form; ``docs/format.md`` section 3).

    weight: int [H, W, C, K], >= 0, some weight of every subpixel > 0
      (the models' largest is 2^MIX_WEIGHT_BITS).
    loc: int [H, W, C, K], component means in levels, units 2^-LOC_BITS,
      before the coupling shift.
    inv_scale: int [H, W, C, K], 1 / scale, units 2^-INV_SCALE_BITS.
    coef: int [H, W, C (C - 1) / 2, K], units 2^-COEF_BITS: channel c's
      component k is shifted by sum_{j<c} coef[c (c - 1) / 2 + j, k] (x_j - 127.5).
    """

    weight: np.ndarray
    loc: np.ndarray
    inv_scale: np.ndarray
    coef: np.ndarray


def _mixture_shape(params: QuantizedMixture) -> tuple[int, int, int]:
    shape = np.shape(params.loc)
    if len(shape) != 4 or shape[-1] < 1 or shape[-1] > 16 or {np.shape(params.weight),
                                                             np.shape(params.inv_scale)} != {shape}:
        raise ValueError("QuantizedMixture params need weight, loc, inv_scale of one shape [H, W, C, K] "
                         f"(1 <= K <= 16), got {np.shape(params.weight)}, {shape}, {np.shape(params.inv_scale)}")
    h, w, c, k = shape
    if np.shape(params.coef) != (h, w, c * (c - 1) // 2, k):
        raise ValueError(f"QuantizedMixture coef must have shape {(h, w, c * (c - 1) // 2, k)}, "
                         f"got {np.shape(params.coef)}")
    return h, w, c


@dataclasses.dataclass(frozen=True)
class _FlatMix:
    """QuantizedMixture flattened to n pixels (int64)."""

    weight: np.ndarray  # [n, C, K]
    loc: np.ndarray  # [n, C, K], units 2^-LOC_BITS
    inv_scale: np.ndarray  # [n, C, K]
    coef: np.ndarray  # [n, P, K], units 2^-COEF_BITS


def _flatten_mix(params: QuantizedMixture) -> _FlatMix:
    h, w, c = _mixture_shape(params)
    arrays = [np.asarray(a) for a in (params.weight, params.loc, params.inv_scale, params.coef)]
    if any(a.dtype.kind not in "iu" for a in arrays):
        raise ValueError("QuantizedMixture params must be integers")
    weight, loc, inv, coef = (a.reshape(h * w, a.shape[2], a.shape[3]).astype(np.int64) for a in arrays)
    if loc.size and (np.abs(loc).max() >= 1 << 30 or inv.min() < 0 or inv.max() >= 1 << 31
                     or weight.min() < 0 or weight.max() > 1 << MIX_WEIGHT_BITS
                     or weight.max(axis=-1).min() <= 0
                     or (coef.size and np.abs(coef).max() > 1 << COEF_BITS)):
        raise ValueError("QuantizedMixture params out of range (|loc| < 2^30, 0 <= inv_scale < 2^31, "
                         f"0 <= weight <= 2^{MIX_WEIGHT_BITS} with some weight > 0, |coef| <= 2^{COEF_BITS})")
    return _FlatMix(weight, loc, inv, coef)


def _mix_cdf(weight: np.ndarray, loc: np.ndarray, inv: np.ndarray, points: np.ndarray) -> np.ndarray:
    """int64 [n, m]: the mixture CDF sum_k weight_k C_k(point) >> MIX_SHIFT at
    integer points [n, m] (units 2^-LOC_BITS), C_k the component's
    sigmoid-table CDF (``_table_cdf``, all K components at once); weight, loc, inv [n, K]."""
    cdf = _table_cdf(points[:, None, :] - loc[:, :, None], inv[:, :, None])  # [n, K, m]
    return np.einsum("nk,nkm->nm", weight, cdf) >> MIX_SHIFT


_COEF_TO_LOC = COEF_BITS + 1 - LOC_BITS  # coef * (2 x - 255) is in units 2^-(COEF_BITS + 1)


class _MixtureUnit:
    """Tables of one channel of a chunk of pixels under a QuantizedMixture."""

    def __init__(self, p: _FlatMix, channel: int, known: np.ndarray):
        """p: the chunk's pixels; known: int64 [n, C] levels of the chunk (channels < channel are used)."""
        loc = p.loc[:, channel]
        if channel:
            centred = 2 * known[:, :channel] - 255  # 2 (x_j - 127.5), exact
            first = channel * (channel - 1) // 2
            shift = np.einsum("npk,np->nk", p.coef[:, first:first + channel], centred)
            loc = loc + ((shift + (1 << (_COEF_TO_LOC - 1))) >> _COEF_TO_LOC)
        self.weight, self.loc, self.inv = p.weight[:, channel], loc, p.inv_scale[:, channel]

    def groups(self) -> tuple[np.ndarray, np.ndarray]:
        n = self.loc.shape[0]
        cdf1 = np.empty((n, _GROUP + 1), np.int64)
        cdf1[:, 0] = 0
        cdf1[:, 1:-1] = _mix_cdf(self.weight, self.loc, self.inv, np.broadcast_to(_LEVEL1_POINTS, (n, _GROUP - 1)))
        cdf1[:, -1] = (self.weight.sum(axis=1) << exact_tables.SIGMOID_BITS) >> MIX_SHIFT
        return tables.padded_weights_int(cdf1, check=False), cdf1

    def offsets(self, cdf1: np.ndarray, group: np.ndarray) -> np.ndarray:
        n = group.shape[0]
        rows = np.arange(n)
        cdf2 = np.empty((n, _GROUP + 1), np.int64)
        cdf2[:, 0], cdf2[:, -1] = cdf1[rows, group], cdf1[rows, group + 1]
        points = _LEVEL2_POINTS[None, :] + (group.astype(np.int64) * _GROUP << LOC_BITS)[:, None]
        cdf2[:, 1:-1] = _mix_cdf(self.weight, self.loc, self.inv, points)
        return tables.padded_weights_int(cdf2, check=False)


class PixelTables:
    """The coder tables of a likelihood, unit by unit in coding order (see the
    module docstring): the one place pixels meet frequency tables::

        t = PixelTables(params)
        for unit in t.units():                          # a slice of the flat subpixels
            w1, ctx = t.groups(unit, known)             # float32 [n, 17] coder weights
            w2 = t.offsets(ctx, group)                  # given the unit's groups int [n]

    ``known`` is the flat int64 image of the subpixels coded so far (all of it
    on the encoder's side). Independent likelihoods have one unit per
    ``CHUNK`` subpixels in raster order; a coupled ``QuantizedMixture`` has,
    for each chunk of ``CHUNK // C`` pixels, one unit per channel in order
    (a slice with step C), whose tables depend on the channels before it.
    Weights are for constriction's ``Categorical(perfect=False)``: symbol i
    has frequency w_i + 1 (16 symbols plus a never-coded padding symbol 16),
    summing to 2^24.
    """

    def __init__(self, params: Likelihood, threads: _Threads | None = None):
        """``threads``: build a mixture unit's tables in row slices at once (numpy releases the
        GIL); the tables are the same integers with or without them."""
        self._threads = threads
        self._mix = isinstance(params, QuantizedMixture)
        if self._mix:
            self.shape = tuple(_mixture_shape(params))
            self._flat = _flatten_mix(params)
        else:
            self.shape = tuple(_shape_of(params))
            self._int = isinstance(params, QuantizedLogistic)
            self._flat = _flatten_int(params) if self._int else _flatten(params)
        self.size = int(np.prod(self.shape))

    def units(self) -> Iterator[slice]:
        """The flat subpixels of every unit, in coding order."""
        if not self._mix:
            for start, stop in _chunks(self.size):
                yield slice(start, stop)
            return
        c = self.shape[2]
        for start, stop in _chunks(self.size // c, max(1, CHUNK // c)):
            for ch in range(c):
                yield slice(start * c + ch, stop * c, c)

    def groups(self, unit: slice, known: np.ndarray) -> tuple[np.ndarray, object]:
        """Coder weights float32 [n, 17] of the groups x // 16 of a unit's
        subpixels, and what ``offsets`` needs of them (the level-1 CDF)."""
        if self._mix:
            c = self.shape[2]
            start, stop, channel = unit.start // c, (unit.stop - 1) // c + 1, unit.start % c
            rows = known[start * c:stop * c].reshape(-1, c)
            flat = (self._flat.weight, self._flat.loc, self._flat.inv_scale, self._flat.coef)
            units = [(lo, hi, _MixtureUnit(_FlatMix(*(a[start + lo:start + hi] for a in flat)), channel, rows[lo:hi]))
                     for lo, hi in _row_slices(stop - start, self._threads)]
            tabs = self._map(lambda u: u[2].groups(), units)  # [(w1, cdf1)] per row slice
            return _join([w1 for w1, _ in tabs]), [u + (cdf1,) for u, (_, cdf1) in zip(units, tabs)]
        p = self._flat.rows(unit.start, unit.stop)
        if self._int:
            cdf1 = _int_level1(p)
            return tables.padded_weights_int(cdf1, check=False), (p, cdf1)  # monotone by construction
        cdf1 = _level1_cdf(p)
        return _weights(cdf1), (p, cdf1)

    def offsets(self, ctx: object, group: np.ndarray) -> np.ndarray:
        """Coder weights float32 [n, 17] of the offsets x % 16 given the groups
        int [n] and ``groups``' context of the same unit."""
        group = np.asarray(group, np.int64)
        if self._mix:
            return _join(self._map(lambda u: u[2].offsets(u[3], group[u[0]:u[1]]), ctx))  # u: (lo, hi, unit, cdf1)
        p, cdf1 = ctx
        if self._int:
            return tables.padded_weights_int(_int_level2(p, cdf1, group), check=False)
        return _weights(_level2_cdf(p, cdf1, group))

    def _map(self, fn: Callable, items: Sequence) -> list:
        """[fn(item) for item in items], the row slices at once when there are threads."""
        return parallel.map_on(None if self._threads is None else self._threads.pool, fn, items)


_MIN_SLICE_ROWS = 1024  # below this a unit's tables are built in one piece (thread overhead)


@dataclasses.dataclass(frozen=True)
class _Threads:
    """A pool of workers - 1 threads; the calling thread is the last worker."""

    pool: Executor
    workers: int


def _row_slices(n: int, threads: _Threads | None) -> list[tuple[int, int]]:
    """[lo, hi) slices of n rows: one per thread, each at least _MIN_SLICE_ROWS (one without threads)."""
    parts = 1 if threads is None else max(1, min(threads.workers, n // _MIN_SLICE_ROWS))
    edges = [n * i // parts for i in range(parts + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _join(pieces: list[np.ndarray]) -> np.ndarray:
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


@contextlib.contextmanager
def _table_threads(params: Likelihood) -> Iterator[_Threads | None]:
    """Threads for ``PixelTables`` of a mixture (up to 4, one per core), None for one core or
    other likelihoods (their tables are cheap)."""
    workers = min(4, parallel.usable_cores())
    if workers < 2 or not isinstance(params, QuantizedMixture):
        yield None
        return
    with ThreadPoolExecutor(workers - 1, thread_name_prefix="irec-tables") as pool:  # and the caller's
        yield _Threads(pool, workers)


def _chunks(n: int, size: int = CHUNK) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(n, start + size)


def push_pixels(coder, pixels: np.ndarray, params: Likelihood) -> float:
    """Pushes 8-bit pixels uint8 [H, W, C] under a per-subpixel likelihood of the
    same shape onto ``coder``: a queue (``encode_residual``'s range encoder) or
    an ANS stack (``new_stack``; BB-ANS). On a queue the units go in coding
    order, each its group symbols then its offset symbols; on a stack in the
    reverse order, so that ``pop_pixels`` reads both the same way. Returns
    the exact codelength in bits (``coded_bits``)."""
    with _table_threads(params) as threads:
        return _push_pixels(coder, pixels, PixelTables(params, threads))


def _push_pixels(coder, pixels: np.ndarray, pt: PixelTables) -> float:
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.shape != pt.shape:
        raise ValueError(
            f"pixels must be uint8 of shape {pt.shape}, got {pixels.dtype} {pixels.shape}")
    x = pixels.reshape(-1).astype(np.int64)
    stack = _coder.is_stack(coder)
    bits = 0.0
    for unit in (reversed(list(pt.units())) if stack else pt.units()):
        group, offset = np.divmod(x[unit], _GROUP)
        w1, ctx = pt.groups(unit, x)
        levels = [(group, w1), (offset, pt.offsets(ctx, group))]
        for symbols, weights in (reversed(levels) if stack else levels):
            _coder.push_categorical(coder, symbols, weights)
            bits += _table_bits(weights, symbols)
    return bits


def _table_bits(weights: np.ndarray, symbols: np.ndarray) -> float:
    """-sum log2(freq / 2^24) of symbols [n] under coder weights [n, 17] (freq = weight + 1)."""
    freqs = weights[np.arange(symbols.shape[0]), symbols].astype(np.float64) + 1.0
    return float(np.sum(tables.PRECISION - np.log2(freqs)))


def pop_pixels(coder, params: Likelihood, what: str = "pixels") -> np.ndarray:
    """Inverse of ``push_pixels``: uint8 [H, W, C] (shape from params) off a
    range decoder or an ANS stack. FormatError(what...) if the range/ANS
    decoder notices corrupt data."""
    with _table_threads(params) as threads:
        return _pop_pixels(coder, PixelTables(params, threads), what)


def _pop_pixels(coder, pt: PixelTables, what: str) -> np.ndarray:
    out = np.zeros(pt.size, np.int64)
    for unit in pt.units():
        w1, ctx = pt.groups(unit, out)
        group = _pop_level(coder, w1, what)
        offset = _pop_level(coder, pt.offsets(ctx, group), what)
        out[unit] = group * _GROUP + offset
    return out.astype(np.uint8).reshape(pt.shape)


def _pop_level(coder, weights: np.ndarray, what: str) -> np.ndarray:
    """Pops one symbol per row of weights [n, 17]; int64 [n] in [0, 16).
    The never-coded padding symbol 16 can only come from corrupt data."""
    symbols = _coder.pop_categorical(coder, weights, what)
    if symbols.size and symbols.max() >= _GROUP:
        raise FormatError(f"{what}: corrupt or truncated coded data (decoded the padding symbol)")
    return symbols


def encode_residual(pixels: np.ndarray, params: Likelihood) -> bytes:
    """Codes 8-bit pixels uint8 [H, W, C] under a per-subpixel likelihood of the
    same shape, in 8-bit levels (see module docstring). Returns the range-coded
    bytes (no length, no shape: the decoder knows both)."""
    encoder = _coder.new_encoder()
    push_pixels(encoder, pixels, params)
    return _coder.finish(encoder)


def decode_residual(data: bytes, params: Likelihood) -> np.ndarray:
    """Inverse of `encode_residual`: returns uint8 [H, W, C] (shape from params).

    Raises FormatError if the coded data is corrupt in a way the range decoder
    notices; other corruption yields wrong pixels, caught by the container CRC.
    """
    return pop_pixels(_coder.new_decoder(data, "residual section"), params, "residual section")


def residual_bits(pixels: np.ndarray, params: Likelihood) -> float:
    """Ideal information content -sum log2 P(x) in bits, from float64 CDFs
    (no quantization): the bound an ideal coder would reach. A bin whose
    float64 mass underflows counts as `_MIN_MASS` (about 997 bits)."""
    if isinstance(params, (QuantizedLogistic, QuantizedMixture)):
        return coded_bits(pixels, params)
    shape = _shape_of(params)
    pixels = np.asarray(pixels)
    if pixels.shape != tuple(shape):
        raise ValueError(f"pixels shape {pixels.shape} != params shape {tuple(shape)}")
    flat = _flatten(params)
    x = pixels.reshape(-1).astype(np.float64)
    total = 0.0
    for start, stop in _chunks(x.shape[0]):
        p = flat.rows(start, stop)
        xs = x[start:stop]
        f_lo, s_lo = _cdf_sf(p, xs - 0.5)
        f_hi, s_hi = _cdf_sf(p, xs + 0.5)
        f_lo[xs == 0], s_lo[xs == 0] = 0.0, 1.0
        f_hi[xs == 255], s_hi[xs == 255] = 1.0, 0.0
        mass = np.where(f_hi <= s_lo, f_hi - f_lo, s_lo - s_hi)
        total -= float(np.sum(np.log2(np.maximum(mass, _MIN_MASS))))
    return total


def coded_bits(pixels: np.ndarray, params: Likelihood) -> float:
    """The exact codelength in bits of `pixels` under the coder's own integer
    frequency tables (what the range coder writes, less its few bytes of
    flush): sum of -log2(freq / 2^24) over the group and offset symbols."""
    with _table_threads(params) as threads:
        return _coded_bits(pixels, PixelTables(params, threads))


def _coded_bits(pixels: np.ndarray, pt: PixelTables) -> float:
    x = np.asarray(pixels).reshape(-1).astype(np.int64)
    if x.shape[0] != pt.size:
        raise ValueError(f"pixels shape {np.shape(pixels)} != params shape {pt.shape}")
    total = 0.0
    for unit in pt.units():
        group, offset = np.divmod(x[unit], _GROUP)
        w1, ctx = pt.groups(unit, x)
        total += _table_bits(w1, group) + _table_bits(pt.offsets(ctx, group), offset)
    return total


def _cdf_sf(p: _Flat, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accurate float64 CDF and survival function at points [n] -> ([n], [n])."""
    t = (points[:, None] - p.loc) * p.inv_scale  # [n, K]
    e = np.exp(-np.abs(t))
    big = 1.0 / (1.0 + e)
    small = e / (1.0 + e)
    f = np.where(t >= 0, big, small)
    s = np.where(t >= 0, small, big)
    if p.weight is None:
        return f[:, 0], s[:, 0]
    return np.sum(f * p.weight, -1), np.sum(s * p.weight, -1)
