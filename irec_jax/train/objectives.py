"""Training objectives: the one place that picks the model, its loss and its evaluation per model kind.

``make_objective(config)`` reads ``config.model.kind``:

* ``"rvae"`` (the default when absent): the lossless RVAE, negative ELBO in
  bits/dim with ``config.train.free_bits`` (:class:`Elbo`);
* ``"gvae"``: the lossy two-level Gaussian VAE, ``beta * D + rate`` with the
  rate = KL in bits per pixel (:class:`RateDistortion`).

An objective is a frozen (hashable) record holding the model and the loss
settings; ``loss(params, batch, rng) -> (loss, metrics)`` is what the train
step differentiates and ``evaluate(params, batch, rng) -> metrics`` what
evaluation averages. ``progress`` names the metrics the progress bar shows.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Protocol

import jax
import jax.numpy as jnp

from irec_jax.metrics import DISTORTIONS, distortion
from irec_jax.models import GVAE, RVAE, GVAEConfig, RVAEConfig, negative_elbo

Params = Any


class Objective(Protocol):
    model: Any  # has init(key, image_shape)
    progress: ClassVar[tuple[str, ...]]

    def loss(self, params: Params, batch: jax.Array, rng: jax.Array) -> tuple[jax.Array, dict]: ...

    def evaluate(self, params: Params, batch: jax.Array, rng: jax.Array) -> dict: ...


@dataclasses.dataclass(frozen=True)
class Elbo:
    """Negative ELBO (bits/dim) with free bits; metrics loss, nelbo, recon, kl [L]."""

    model: RVAE
    free_bits: float = 0.0
    progress: ClassVar[tuple[str, ...]] = ("nelbo",)

    def loss(self, params: Params, batch: jax.Array, rng: jax.Array) -> tuple[jax.Array, dict]:
        t = negative_elbo(self.model, params, batch, rng, self.free_bits)
        return t.loss, {"loss": t.loss, "nelbo": t.nelbo, "recon": t.recon, "kl": t.kl}

    def evaluate(self, params: Params, batch: jax.Array, rng: jax.Array) -> dict:
        t = negative_elbo(self.model, params, batch, rng, 0.0)
        return {"nelbo": t.nelbo, "recon": t.recon, "kl": t.kl}


def psnr(mse: jax.Array) -> jax.Array:
    """PSNR in dB of 8-bit images from their MSE (level units)."""
    return 10.0 * jnp.log10(255.0 ** 2 / jnp.maximum(mse, 1e-10))


@dataclasses.dataclass(frozen=True)
class RateDistortion:
    """``beta * D + (KL_1 + KL_2) / (H W ln 2)``, batch means, one posterior sample per image.

    D is the MSE of the (unclipped) reconstruction on the 0..255 scale, or
    ``255 (1 - MS-SSIM)`` for ``distortion = "ms-ssim"``. Metrics: loss;
    bpp (the rate: KL in bits per pixel) and kl [2] (per layer, coding order
    z2, z1, bits per pixel); distortion (D); mse and psnr (mean over images)
    of the 8-bit image a decoder would output (clipped to 0..255 and rounded).
    """

    model: GVAE
    beta: float
    distortion: str = "mse"
    progress: ClassVar[tuple[str, ...]] = ("bpp", "psnr")

    def __post_init__(self):
        if self.distortion not in DISTORTIONS:
            raise ValueError(f"config.train.distortion must be one of {DISTORTIONS}, got {self.distortion!r}")
        if not self.beta > 0:
            raise ValueError(f"config.train.beta must be > 0, got {self.beta}")

    def terms(self, params: Params, batch: jax.Array, rng: jax.Array) -> dict:
        out = self.model.forward(params, batch, rng)
        x = batch.astype(jnp.float32)
        kl = jnp.mean(out.kl, axis=1) / (batch.shape[1] * batch.shape[2] * math.log(2.0))  # [2] bits/pixel
        d = distortion(self.distortion, x, out.reconstruction)
        decoded = jnp.round(jnp.clip(out.reconstruction, 0.0, 255.0))
        mse = jnp.mean(jnp.square(decoded - x), axis=(1, 2, 3))  # [B]
        bpp = jnp.sum(kl)
        return {"loss": self.beta * d + bpp, "bpp": bpp, "kl": kl, "distortion": d, "mse": jnp.mean(mse),
                "psnr": jnp.mean(psnr(mse))}

    def loss(self, params: Params, batch: jax.Array, rng: jax.Array) -> tuple[jax.Array, dict]:
        m = self.terms(params, batch, rng)
        return m["loss"], m

    def evaluate(self, params: Params, batch: jax.Array, rng: jax.Array) -> dict:
        return self.terms(params, batch, rng)


def make_objective(config: Any) -> Objective:
    """The objective (with its model) that ``config`` (see irec_jax/configs) trains."""
    kind = config.model.get("kind", "rvae")
    tcfg = config.train
    if kind == "rvae":
        return Elbo(RVAE(RVAEConfig.from_config(config.model)), float(tcfg.free_bits))
    if kind == "gvae":
        return RateDistortion(GVAE(GVAEConfig.from_config(config.model)), float(tcfg.beta),
                              str(tcfg.get("distortion", "mse")))
    raise ValueError(f"config.model.kind must be 'rvae' or 'gvae', got {kind!r}")
