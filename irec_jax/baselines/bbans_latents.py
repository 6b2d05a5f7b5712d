"""BB-ANS latent codec: one layer's latents as equal-prior-mass bins.

Each latent dimension of a layer is discretized into ``2**bits`` bins of
equal mass under the layer's conditional prior N(mu_p, sigma_p^2) (bin ``j``
is ``[mu_p + sigma_p t_j, mu_p + sigma_p t_{j+1})``, ``t_j = Phi^-1(j / 2**bits)``).
The prior over bins is uniform; the posterior over bins is q's CDF at the bin
edges, quantized to 24-bit integer frequencies (every bin >= 1). The latent
fed to the model is the bin's centre, integer arithmetic end to end
(:func:`latents`). Two codec pairs on an ANS stack (``irec_jax.entropy``):
``pop_posterior`` / ``push_posterior`` (q, the bits-back pair) and
``push_prior`` / ``pop_prior`` (uniform). See ``irec_jax.baselines.bbans``.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
from scipy import special

from irec_jax import entropy, rec
from irec_jax.entropy import tables
from irec_jax.exact.tables import NORMAL_BITS, normal_quantiles
from irec_jax.models.interface import Gaussian

TABLE_ENTRIES = 1 << 22  # latent dims per posterior-table chunk times 2**bits
_WHAT = "bbans latents"


@functools.lru_cache(maxsize=None)
def bin_edges(bits: int) -> np.ndarray:
    """Standard-normal inner edges of ``2**bits`` equal-mass bins: float64
    [2**bits - 1], Phi^-1(j / 2**bits) for j = 1 .. 2**bits - 1 (read-only)."""
    n = 1 << bits
    edges = special.ndtri(np.arange(1, n, dtype=np.float64) / n)
    edges.setflags(write=False)
    return edges


@functools.lru_cache(maxsize=None)
def bin_centres(bits: int) -> np.ndarray:
    """Standardized bin centres int32 [2**bits] in units 2^-16 (exact, from the
    shipped quantile table): Q[((2j + 1) << 16) >> (bits + 1)], i.e. Phi^-1 at
    about (j + 1/2) / 2**bits (read-only)."""
    j = np.arange(1 << bits, dtype=np.int64)
    centres = normal_quantiles()[((2 * j + 1) << NORMAL_BITS) >> (bits + 1)].astype(np.int32)
    centres.setflags(write=False)
    return centres


def latents(prior: Gaussian, bins: np.ndarray, bits: int) -> jnp.ndarray:
    """The bins' centres as the float32 z [1, h, w, Z] fed to the model: exactly
    what the iREC decoder forms for the standardized values (``rec.from_standard``)."""
    loc, scale = np.asarray(prior.loc), np.asarray(prior.scale)
    n = bin_centres(bits)[np.asarray(bins, np.int64)].reshape(loc.shape)
    return jnp.asarray(rec.from_standard(n, loc, scale))


def _flat64(g: Gaussian) -> tuple[np.ndarray, np.ndarray]:
    """(loc, scale) of a one-image Gaussian [1, h, w, Z] as float64 [D] (raster order)."""
    return np.asarray(g.loc, np.float64).reshape(-1), np.asarray(g.scale, np.float64).reshape(-1)


def chunks(n: int, bits: int) -> list[tuple[int, int]]:
    """(start, stop) of the posterior-table chunks over ``n`` latent dims."""
    rows = max(1, TABLE_ENTRIES >> bits)
    return [(s, min(n, s + rows)) for s in range(0, n, rows)]


def posterior_weights(post: Gaussian, prior: Gaussian, bits: int, start: int,
                      stop: int) -> np.ndarray:
    """Coder weights float32 [stop - start, 2**bits] of q over the prior's bins
    for latent dims ``start:stop`` (raster order)."""
    q_loc, q_scale = (a[start:stop] for a in _flat64(post))
    p_loc, p_scale = (a[start:stop] for a in _flat64(prior))
    edges = bin_edges(bits)
    n = 1 << bits
    cdf = np.empty((stop - start, n + 1))
    cdf[:, 0] = 0.0
    cdf[:, -1] = 1.0
    # (mu_p + sigma_p t - mu_q) / sigma_q, standardized under q
    u = cdf[:, 1:-1]
    np.multiply((p_scale / q_scale)[:, None], edges[None, :], out=u)
    u += ((p_loc - q_loc) / q_scale)[:, None]
    special.ndtr(u, out=u)
    # tables.freqs_from_cdf's quantizer; coder weights are frequency - 1, i.e.
    # the differences of the floored cumulative counts (no padding symbol: the
    # encoder pops these tables from arbitrary bits, so every symbol must be a bin).
    cum = tables.floor_cumulative(cdf, (1 << tables.PRECISION) - n)
    return np.diff(cum, axis=-1).astype(np.float32)


def pop_posterior(stack, post: Gaussian, prior: Gaussian, bits: int) -> np.ndarray:
    """Pops one bin per latent dim under q (the bits-back step): int32 [D]."""
    d = prior.loc.size
    bins = np.empty(d, np.int32)
    for start, stop in chunks(d, bits):
        bins[start:stop] = entropy.pop_categorical(
            stack, posterior_weights(post, prior, bits, start, stop), _WHAT)
    return bins


def push_posterior(stack, bins: np.ndarray, post: Gaussian, prior: Gaussian, bits: int) -> None:
    """Inverse of :func:`pop_posterior`: pushes ``bins`` back under q."""
    for start, stop in reversed(chunks(bins.shape[0], bits)):
        entropy.push_categorical(stack, bins[start:stop],
                                 posterior_weights(post, prior, bits, start, stop), _WHAT)


def push_prior(stack, bins: np.ndarray, bits: int) -> None:
    """Pushes ``bins`` int [D] under the uniform prior over ``2**bits`` bins."""
    entropy.push_uniform(stack, bins, 1 << bits)


def pop_prior(stack, d: int, bits: int) -> np.ndarray:
    """Inverse of :func:`push_prior`: ``d`` bins, int64 [d]."""
    return entropy.pop_uniform(stack, 1 << bits, d, _WHAT)
