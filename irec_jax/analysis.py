"""Analysis of a codec model on an image: its negative ELBO, the rate iREC aims at.

Estimates, not bytes (``irec_jax.codec`` writes the bytes). One Monte Carlo
estimate serves the codec benchmark, the ablation and the BB-ANS benchmark::

    from irec_jax import analysis
    est = analysis.estimate_elbo(pixels)                  # ElboEstimate, bits
    recon, kl = analysis.elbo_samples(pixels, cm, 16)     # per-sample bits [S], [S]

(``irec_jax.models.negative_elbo`` is the training objective in bits/dim
over a batch, on the float model.)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from irec_jax import codec, entropy, imageio, modelzoo
from irec_jax.modelzoo import CodecModel


@dataclasses.dataclass(frozen=True)
class ElboEstimate:
    """Monte Carlo negative ELBO of one image, in bits (an estimate, not bytes).

    ``kl_bits``: sum over layers of KL(q || p), analytic given the sampled
    parents; ``recon_bits``: -log2 p(x | z) of the true pixels; both averaged
    over ``samples`` posterior samples. ``stderr_bits``: standard error of
    ``total_bits`` over the samples.
    """

    total_bits: float
    kl_bits: float
    recon_bits: float
    stderr_bits: float
    samples: int


def elbo_samples(pixels: np.ndarray, cm: CodecModel, samples: int, seed: int = 0, refine: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo terms of the negative ELBO of uint8 ``pixels`` [H, W, C] under
    the codec model (its integer decoder path, as the codec codes it):
    (recon_bits [S], kl_bits [S]), one entry per posterior sample.

    recon: -log2 p(x | z) of the true pixels under the coder's integer
    frequency tables; kl: sum over layers of KL(q || p) (analytic, given the
    sampled parents). z_l ~ q_l from ``sample_gaussian(key(seed), q_l, l)``,
    put on the decoder's 2^-10 grid by the model. All S samples run as one
    batch. ``refine``: the posteriors refined as the codec refines a
    one-tile image's (``codec.refine_acts``, that many steps; 0: the
    encoder network's own).
    """
    import jax
    import jax.numpy as jnp

    from irec_jax.models import gaussian_kl, sample_gaussian

    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    shape = pixels.shape
    model, params = cm.model, cm.params
    x1 = codec.model_input(pixels, cm.image_channels)
    acts = codec.refine_acts(cm, x1, [pixels], model.bottom_up(params, jnp.asarray(x1)), refine, [0])
    acts = jax.tree.map(lambda a: jnp.repeat(a, samples, axis=1), acts)  # [L, S, h, w, Z]
    x = np.repeat(x1, samples, axis=0)
    state = model.initial_state(params, x.shape)
    key = jax.random.key(seed)
    kl = np.zeros(samples)
    for layer in range(model.num_layers):
        p = model.prior(params, state, layer)
        q = model.posterior(params, state, acts, layer)
        kl += np.asarray(jnp.sum(gaussian_kl(q, p), axis=(1, 2, 3)), np.float64)
        state = model.advance(params, state, sample_gaussian(key, q, layer), layer)
    dist = model.likelihood(params, state)
    recon = np.array([entropy.coded_bits(pixels, codec.pixel_params(dist, shape, i)) for i in range(samples)])
    return recon, kl / np.log(2.0)


def estimate_elbo(image: Any, *, model: "str | CodecModel" = "default", samples: int = 8,
                  seed: int = 0, refine: int = 0) -> ElboEstimate:
    """The model's negative ELBO of ``image`` in bits, as the codec sees it
    (same padding, same channels, the integer decoder path; ``elbo_samples``);
    ``refine`` > 0: of the posteriors refined that many steps, as the codec
    codes them (an image of one tile)."""
    cm = modelzoo.load_model(model)
    recon, kl = elbo_samples(imageio.to_array(image), cm, samples, seed, refine)
    total = recon + kl
    stderr = float(total.std(ddof=1) / np.sqrt(samples)) if samples > 1 else float("nan")
    return ElboEstimate(float(total.mean()), float(kl.mean()), float(recon.mean()), stderr, samples)
