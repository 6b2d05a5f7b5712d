"""Generalized divisive normalization (Ballé et al. 2016) and its inverse.

Per position, over channels ``i, j``::

    GDN:   y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)
    IGDN:  y_i = x_i * sqrt(beta_i + sum_j gamma_ij x_j^2)

``beta > 0`` and ``gamma >= 0`` are kept in range as in tensorflow-compression
and CompressAI: the stored parameter ``p`` maps to ``lower_bound(p, bound)^2 -
pedestal`` with ``pedestal = reparam_offset^2``, bounds ``sqrt(beta_min +
pedestal)`` for beta and ``reparam_offset`` for gamma, and a lower bound whose
gradient still flows when it pushes the parameter back into range. So
``beta >= beta_min`` and ``gamma >= 0`` exactly. Initial values: beta = 1,
gamma = ``gamma_init`` times the identity.

IGDN is the decoder-side nonlinearity of the lossy model: only squares, sums
and one square root of nonnegative values, which an integer path can compute
exactly (:func:`gdn_coefficients` gives it the effective beta and gamma).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def lower_bound(x: jax.Array, bound: float) -> jax.Array:
    """``max(x, bound)``; the gradient passes where ``x >= bound`` or where it pushes ``x`` up."""
    return jnp.maximum(x, bound)


def _lower_bound_fwd(x, bound):
    return jnp.maximum(x, bound), x


def _lower_bound_bwd(bound, x, g):
    passes = (x >= bound) | (g < 0)  # descent moves x by -g: g < 0 raises x towards the bound
    return (jnp.where(passes, g, jnp.zeros_like(g)),)


lower_bound.defvjp(_lower_bound_fwd, _lower_bound_bwd)


def gdn_coefficients(beta: jax.Array, gamma: jax.Array, beta_min: float = 1e-6,
                     reparam_offset: float = 2.0 ** -18) -> tuple[jax.Array, jax.Array]:
    """Stored parameters -> effective (beta [C] >= beta_min, gamma [C, C] >= 0), gamma indexed (i, j)."""
    pedestal = reparam_offset ** 2
    beta = jnp.square(lower_bound(beta, (beta_min + pedestal) ** 0.5)) - pedestal
    gamma = jnp.square(lower_bound(gamma, reparam_offset)) - pedestal
    return beta, gamma


def gdn(x: jax.Array, beta: jax.Array, gamma: jax.Array, inverse: bool = False) -> jax.Array:
    """GDN (or IGDN) of ``x`` [..., C] with effective ``beta`` [C] and ``gamma`` [C, C]."""
    norm = beta + jnp.einsum("...j,ij->...i", jnp.square(x), gamma)
    return x * jnp.sqrt(norm) if inverse else x * jax.lax.rsqrt(norm)


class GDN(nn.Module):
    """GDN over the last axis (``inverse=True``: IGDN); [..., C] -> [..., C].

    Parameters: ``beta`` [C] and ``gamma`` [C, C], stored reparameterized
    (see the module docstring; :func:`gdn_coefficients` gives the values used).
    """

    inverse: bool = False
    beta_min: float = 1e-6
    gamma_init: float = 0.1
    reparam_offset: float = 2.0 ** -18

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        pedestal = self.reparam_offset ** 2
        beta = self.param("beta", lambda _, s: jnp.full(s, (1.0 + pedestal) ** 0.5, jnp.float32), (c,))
        gamma = self.param("gamma", lambda _, s: jnp.sqrt(self.gamma_init * jnp.eye(s[0], dtype=jnp.float32)
                                                          + pedestal), (c, c))
        b, g = gdn_coefficients(beta, gamma, self.beta_min, self.reparam_offset)
        return gdn(x, b.astype(x.dtype), g.astype(x.dtype), self.inverse)
