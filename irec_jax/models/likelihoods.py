"""Discretized logistic pixel likelihoods (single and mixture).

Pixel convention (used throughout ``irec_jax.models``):

* Images are integer arrays of 8-bit levels ``k in {0, ..., 255}``.
* Networks see ``(k - 127.5) / 127.5`` in ``[-1, 1]`` (:func:`to_network_input`).
* Likelihood parameters are in **units of 8-bit levels**: a logistic with
  ``loc`` on the level axis (nominally 0..255, any real value allowed) and
  ``scale > 0`` in levels. Bin ``k`` is ``[k - 0.5, k + 0.5)`` (width 1,
  centred on ``k``), except the edge bins, which take the tails: bin 0 is
  ``(-inf, 0.5)`` and bin 255 is ``[254.5, inf)``. So the 256 bin masses sum
  to exactly one and ``-log2 p`` is the codelength of the 8-bit value.

These are the parameters the entropy layer codes with; convert them to
numpy with :func:`to_entropy_logistic` / :func:`to_entropy_mixture`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

NUM_LEVELS = 256
_SOFTPLUS_INV_ONE = math.log(math.expm1(1.0))


def positive_scale(raw: jax.Array, floor: float, init: float = 1.0) -> jax.Array:
    """Map an unconstrained ``raw`` to a scale ``> floor > 0``.

    ``scale = floor + init * softplus(raw + softplus^-1(1))``: ``raw = 0``
    gives ``floor + init``; for ``raw -> -inf`` it behaves like
    ``init * exp(raw)`` (log-scale regime), for large ``raw`` it grows
    linearly (no overflow).
    """
    return floor + init * softplus(raw + _SOFTPLUS_INV_ONE)


@jax.custom_jvp
def softplus(x: jax.Array) -> jax.Array:
    """``log(1 + e^x)``, stably: the values of ``jax.nn.softplus`` (bit for bit on finite
    inputs), written as ``max(x, 0) + log1p(exp(-|x|))`` without its inf/NaN selects,
    which XLA:CPU fuses and vectorizes better; the derivative is the exact ``sigmoid(x)``
    (autodiff of ``max`` and ``|x|`` would be off at ``x = 0``)."""
    return jnp.maximum(x, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(x)))


@softplus.defjvp
def _softplus_jvp(primals: tuple[jax.Array], tangents: tuple[jax.Array]) -> tuple[jax.Array, jax.Array]:
    (x,), (t,) = primals, tangents
    return softplus(x), t * jax.nn.sigmoid(x)


def log_sigmoid(x: jax.Array) -> jax.Array:
    """``log sigmoid(x) = -softplus(-x)``."""
    return -softplus(-x)


def to_network_input(x: jax.Array) -> jax.Array:
    """Integer levels 0..255 -> float32 in [-1, 1]."""
    return (x.astype(jnp.float32) - 127.5) / 127.5


def to_levels(r: jax.Array) -> jax.Array:
    """Network units -> 8-bit level units: ``127.5 + 127.5 r`` (the inverse map of :func:`to_network_input`)."""
    return 127.5 + 127.5 * r


@struct.dataclass
class Logistic:
    """Discretized logistic per subpixel, in 8-bit level units."""

    loc: jax.Array  # [B, H, W, C], levels
    scale: jax.Array  # [B, H, W, C], levels, > 0


@struct.dataclass
class MixtureOfLogistics:
    """Mixture of K discretized logistics per subpixel, in 8-bit level units.

    Each subpixel has its own mixture (no coupling between colour channels),
    so subpixels can be entropy coded independently given ``z``.
    """

    logits: jax.Array  # [B, H, W, C, K], unnormalized mixture log-weights
    loc: jax.Array  # [B, H, W, C, K], levels
    scale: jax.Array  # [B, H, W, C, K], levels, > 0


@struct.dataclass
class CoupledMixture:
    """Mixture of K discretized logistics per subpixel whose component means
    depend linearly on the channels before it (PixelCNN++'s coupling, with a
    mixture per channel), in 8-bit level units.

    Channel c of a pixel is a mixture with weights softmax(logits[c]) of
    logistics at ``loc[c, k] + sum_{j<c} coef[p(c, j), k] * (x_j - 127.5)``
    with scale ``scale[c, k]``, where x_j are the pixel's levels and
    ``p(c, j) = c (c - 1) / 2 + j`` orders the pairs (1,0), (2,0), (2,1).
    So p(x) = p(x_0) p(x_1 | x_0) p(x_2 | x_0, x_1) per pixel, and a coder
    codes the channels in order, each given those already coded.
    """

    logits: jax.Array  # [B, H, W, C, K]
    loc: jax.Array  # [B, H, W, C, K], levels, before the coupling shift
    scale: jax.Array  # [B, H, W, C, K], levels, > 0
    coef: jax.Array  # [B, H, W, C (C - 1) / 2, K], dimensionless (tanh of a raw output)


def pair_index(c: int, j: int) -> int:
    """Index of the coupling coefficient of channel c on channel j < c."""
    if not 0 <= j < c:
        raise ValueError(f"need 0 <= j < c, got c={c}, j={j}")
    return c * (c - 1) // 2 + j


def coupled_loc(loc: jax.Array, coef: jax.Array, x: jax.Array, *, channels_first: bool = False) -> jax.Array:
    """Component means after the coupling shift, given levels x: loc [B, H, W, C, K], coef
    [B, H, W, C (C - 1) / 2, K], x [B, H, W, C] -> [B, H, W, C, K] (any leading axes); with
    ``channels_first``, loc [C, K, ...], coef [C (C - 1) / 2, K, ...], x [C, ...] -> [C, K, ...]."""
    # The channel (pair) axis of loc and coef, and x's channel axis, which is also where a channel of x
    # gets a length-1 axis to broadcast against one of coef's [K, ...] or [..., K] slices.
    ch, xa = (0, 0) if channels_first else (-2, -1)
    c = loc.shape[ch]
    centred = x.astype(loc.dtype) - 127.5
    xs = [jnp.expand_dims(jax.lax.index_in_dim(centred, j, xa, keepdims=False), xa) for j in range(c - 1)]
    shifts = [jnp.zeros_like(jax.lax.index_in_dim(loc, 0, ch, keepdims=False))]
    for channel in range(1, c):
        shifts.append(sum(jax.lax.index_in_dim(coef, pair_index(channel, j), ch, keepdims=False) * xs[j]
                          for j in range(channel)))
    return loc + jnp.stack(shifts, axis=ch)


@struct.dataclass
class QuantizedMixture:
    """Integer form of :class:`CoupledMixture` (the integer decoder path):
    the entropy layer builds frequency tables from it with integer arithmetic
    only. With no coupling (``coef`` all 0) it is a plain mixture.
    """

    weight: jax.Array  # int32 [B, H, W, C, K], >= 0, max over K = 2^MIX_WEIGHT_BITS
    loc: jax.Array  # int32 [B, H, W, C, K], levels in units 2^-LOC_BITS, before the coupling shift
    inv_scale: jax.Array  # int32 [B, H, W, C, K], 1/scale in units 2^-INV_SCALE_BITS
    coef: jax.Array  # int32 [B, H, W, C (C - 1) / 2, K], units 2^-COEF_BITS


@struct.dataclass
class QuantizedLogistic:
    """Discretized logistic per subpixel with integer parameters (the integer
    decoder path, :mod:`irec_jax.models.integer`): the entropy layer turns
    them into frequency tables with integer arithmetic only.
    """

    loc: jax.Array  # int32 [B, H, W, C], levels in units of 2^-LOC_BITS (2^-11)
    inv_scale: jax.Array  # int32 [B, H, W, C], 1 / scale (per level) in units of 2^-INV_SCALE_BITS (2^-16)


PixelLikelihood = Logistic | MixtureOfLogistics | CoupledMixture | QuantizedLogistic | QuantizedMixture


def discretized_logistic_logpmf(x: jax.Array, loc: jax.Array, scale: jax.Array) -> jax.Array:
    """log P(bin x) in nats for a logistic(loc, scale) discretized to levels 0..255.

    ``x`` holds integer levels (any dtype), broadcast against ``loc``/``scale``.
    Exact and stable everywhere: for an interior bin with edges a > b (in
    standardized units), ``sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b)
    (1 - exp(b - a))``; the edge bins are a single ``log_sigmoid``.
    """
    xf = x.astype(loc.dtype)
    inv_s = 1.0 / scale
    upper = (xf + 0.5 - loc) * inv_s  # standardized upper edge
    lower = (xf - 0.5 - loc) * inv_s  # standardized lower edge
    log_cdf_upper = log_sigmoid(upper)  # bin 0: P = sigmoid(upper)
    log_sf_lower = log_sigmoid(-lower)  # bin 255: P = 1 - sigmoid(lower)
    interior = log_cdf_upper + log_sf_lower + jnp.log(-jnp.expm1(-inv_s))
    return jnp.where(x <= 0, log_cdf_upper, jnp.where(x >= NUM_LEVELS - 1, log_sf_lower, interior))


def log_prob(dist: PixelLikelihood, x: jax.Array, *, channels_first: bool = False) -> jax.Array:
    """log p(x) in nats per subpixel, shape ``x.shape``: x ``[B, H, W, C]`` (any leading axes)
    and mixture parameters ``[..., C, K]``; or, with ``channels_first``, x ``[C, ...]`` and
    mixture parameters ``[C, K, ...]``, where the pixels are the minor axes (XLA:CPU vectorizes
    this layout far better than a minor axis of K = 4: :func:`irec_jax.models.rvae.phase_major`)."""
    k = 1 if channels_first else -1  # the mixture component axis
    if isinstance(dist, Logistic):
        return discretized_logistic_logpmf(x, dist.loc, dist.scale)
    if isinstance(dist, MixtureOfLogistics):
        loc = dist.loc
    elif isinstance(dist, CoupledMixture):
        loc = coupled_loc(dist.loc, dist.coef, x, channels_first=channels_first)
    else:
        raise TypeError(f"unknown likelihood type {type(dist).__name__}")
    comp = discretized_logistic_logpmf(jnp.expand_dims(x, k), loc, dist.scale)
    return jax.nn.logsumexp(jax.nn.log_softmax(dist.logits, axis=k) + comp, axis=k)


def pmf_table(dist: PixelLikelihood) -> jax.Array:
    """Probabilities of all 256 levels, shape ``[..., 256]`` (sums to 1 on the last axis).

    Not for :class:`CoupledMixture`, whose channels depend on the levels
    before them (TypeError; :func:`mode` handles it)."""
    levels = jnp.arange(NUM_LEVELS)
    if isinstance(dist, Logistic):
        return jnp.exp(discretized_logistic_logpmf(levels, dist.loc[..., None], dist.scale[..., None]))
    if isinstance(dist, MixtureOfLogistics):
        comp = discretized_logistic_logpmf(levels, dist.loc[..., None], dist.scale[..., None])
        logw = jax.nn.log_softmax(dist.logits, axis=-1)[..., None]
        return jnp.exp(jax.nn.logsumexp(logw + comp, axis=-2))
    raise TypeError(f"unknown likelihood type {type(dist).__name__}")


def mode(dist: PixelLikelihood) -> jax.Array:
    """Most probable level per subpixel, int32 ``[B, H, W, C]`` (for previews);
    for :class:`CoupledMixture` channel by channel, each given the modes before it."""
    if not isinstance(dist, CoupledMixture):
        return jnp.argmax(pmf_table(dist), axis=-1).astype(jnp.int32)
    x = jnp.zeros(dist.loc.shape[:-1], jnp.int32)
    for ch in range(dist.loc.shape[-2]):
        loc = coupled_loc(dist.loc, dist.coef, x)[..., ch, :]
        channel = MixtureOfLogistics(dist.logits[..., ch, :], loc, dist.scale[..., ch, :])
        x = x.at[..., ch].set(jnp.argmax(pmf_table(channel), axis=-1).astype(jnp.int32))
    return x


def to_entropy_logistic(dist: Logistic) -> tuple[np.ndarray, np.ndarray]:
    """(loc, scale) as float64 numpy arrays ``[B, H, W, C]`` in 8-bit level units.

    Bins are centred on 0..255 with width 1; bins 0 and 255 take the tails
    (see the module docstring). The float32 -> float64 conversion is exact.
    """
    if not isinstance(dist, Logistic):
        raise TypeError(f"expected Logistic, got {type(dist).__name__}")
    return np.asarray(dist.loc, np.float64), np.asarray(dist.scale, np.float64)


def to_entropy_mixture(dist: MixtureOfLogistics) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights, loc, scale) as float64 numpy arrays ``[B, H, W, C, K]``.

    ``weights`` are softmax(logits) (sum to 1 over K, computed in float32 by
    JAX); loc/scale as in :func:`to_entropy_logistic`.
    """
    if not isinstance(dist, MixtureOfLogistics):
        raise TypeError(f"expected MixtureOfLogistics, got {type(dist).__name__}")
    weights = jax.nn.softmax(dist.logits, axis=-1)
    return (np.asarray(weights, np.float64), np.asarray(dist.loc, np.float64),
            np.asarray(dist.scale, np.float64))
