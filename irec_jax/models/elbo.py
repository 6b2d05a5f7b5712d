"""Training objective: the negative ELBO in bits per dimension, with free bits.

bits/dim = nats / (H * W * C_img * ln 2): the reconstruction term is exactly
the codelength of the 8-bit pixels given z under the discretized likelihood,
and the KL of each layer is the rate iREC pays for it (up to coder overhead).

Free bits (Kingma et al. 2016, ``kl_min``) act per layer and per latent
channel: the KL of channel c of layer l, summed over spatial positions and
averaged over the batch, enters the *objective* as ``max(KL_lc, free_bits)``
(nats). The reported negative ELBO never includes them.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

from irec_jax.models.rvae import RVAE, ForwardOutput, Params


@struct.dataclass
class ElboTerms:
    """Batch-averaged terms, all in bits per dimension."""

    loss: jax.Array  # [], the objective to minimize (recon + KL with free bits)
    nelbo: jax.Array  # [], negative ELBO = recon + sum(kl)
    recon: jax.Array  # [], -log p(x | z)
    kl: jax.Array  # [L], KL(q || p) per layer


def elbo_terms(out: ForwardOutput, image_shape: tuple[int, ...], free_bits: float = 0.0) -> ElboTerms:
    """Negative ELBO terms from a fused pass over images of ``image_shape`` [B, H, W, C]."""
    if len(image_shape) != 4:
        raise ValueError(f"image shape must be [B, H, W, C], got {tuple(image_shape)}")
    if free_bits < 0:
        raise ValueError(f"free_bits must be >= 0 nats, got {free_bits}")
    dims = image_shape[1] * image_shape[2] * image_shape[3]
    to_bpd = 1.0 / (dims * math.log(2.0))
    recon = -jnp.mean(out.log_px) * to_bpd
    kl_lc = jnp.mean(out.kl, axis=1)  # [L, Z] nats per image
    kl = jnp.sum(kl_lc, axis=-1) * to_bpd  # [L]
    kl_obj = jnp.sum(jnp.maximum(kl_lc, free_bits)) * to_bpd if free_bits > 0 else jnp.sum(kl)
    return ElboTerms(loss=recon + kl_obj, nelbo=recon + jnp.sum(kl), recon=recon, kl=kl)


def negative_elbo(model: RVAE, params: Params, x: jax.Array, key: jax.Array,
                  free_bits: float = 0.0) -> ElboTerms:
    """Negative ELBO of integer images ``x`` [B, H, W, C] (one posterior sample per image).

    Pure and jittable (``model`` and ``free_bits`` must be static):
    ``jax.grad(lambda p: negative_elbo(model, p, x, key).loss)(params)``.
    """
    out = model.forward(params, x, key)
    return elbo_terms(out, x.shape, free_bits)
