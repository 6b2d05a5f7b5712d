"""Encoder-only posterior refinement, shared by the lossless RVAE and the lossy GVAE.

The amortized encoder network is a compromise over all images. For one image
the encoder can do better: a few Adam steps on the variational parameters
lower the model's own training loss for that image (negative ELBO, or
beta D + rate for a lossy model), through float copies of the integer
generative path. The coder then codes the refined posteriors; the decoder
never sees how they were found, so nothing it computes changes.

Each model defines its loss ``loss(theta, key)`` and its :class:`Schedule`,
and jits one :func:`adam_step` per call (XLA:CPU ran the same steps inside a
``fori_loop`` several times slower); :func:`run` drives the steps, passing
each its index, from which the model draws that step's noise, and its step
size.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Adam with momentum ``b1`` and a step size that decays along a half cosine from ``lr`` at the
    first step to ``final_fraction * lr`` at the end of the run (1: constant)."""

    lr: float
    final_fraction: float
    b1: float

    def learning_rate(self, i: int, steps: int) -> float:
        """The step size of step ``i`` of ``steps``."""
        decay = 0.5 * (1.0 + math.cos(math.pi * min(i, steps) / max(steps, 1)))
        return self.lr * (self.final_fraction + (1.0 - self.final_fraction) * decay)

    def optimizer(self) -> optax.GradientTransformation:
        """Adam's normalized direction (the step size is applied per step)."""
        return optax.scale_by_adam(b1=self.b1)


# The lossless RVAE: a short momentum and a decaying step, so that the last steps average out the
# one-sample noise of each gradient. Chosen on random 32x32 and 64x64 crops of the default model's
# training photos (negative ELBO, a 16-sample estimate), 50 steps: -2.55% and -2.53% against -2.07% and
# -2.10% with a constant 0.02 and momentum 0.9 (the schedule before 2026-12-01); 30 steps of it: -2.20%.
LOSSLESS = Schedule(lr=0.02, final_fraction=0.1, b1=0.5)
# The lossy GVAE (768x512 photos, beta D + rate): a constant 0.02 and momentum 0.9. The lossless
# schedule cost it bits and PSNR at all four bundled rate points on four training photos.
LOSSY = Schedule(lr=0.02, final_fraction=1.0, b1=0.9)
# The lossy GVAE's error feedback (``IntegerGVAE.refine_rest``): a few steps from refined posteriors, at
# half the step size. On 256x256 crops of 4 training photos at quality 2, 4 parts x 10 steps against none:
# 0.01 +0.17 dB at -0.8% bits; 0.02 +0.15 dB at -1.2%; 0.005 +0.13 dB at -0.5%; 0.05 +0.04 dB at -1.4%.
FEEDBACK = Schedule(lr=0.01, final_fraction=1.0, b1=0.9)


def adam_step(loss: Callable[[Any, jax.Array], jax.Array], schedule: Schedule, theta: Any, opt_state: Any,
              key: jax.Array, lr: jax.Array) -> tuple[Any, Any]:
    """One Adam step (``schedule``'s momentum) of size ``lr`` (float32 scalar) of ``theta`` (any
    pytree) on ``loss(theta, key)``: (theta', opt_state')."""
    grads = jax.grad(loss)(theta, key)
    direction, opt_state = schedule.optimizer().update(grads, opt_state, theta)
    return jax.tree.map(lambda t, d: t - lr * d, theta, direction), opt_state


def run(step: Callable[..., tuple[Any, Any]], schedule: Schedule, theta: Any, steps: int,
        on_step: Callable[[], None] | None = None) -> Any:
    """``steps`` calls of ``step(theta, opt_state, i, lr, schedule=schedule)`` (i: int32 step index,
    lr: float32 ``schedule.learning_rate(i, steps)``; the step passes ``schedule`` on to
    :func:`adam_step`) from Adam's initial state; returns the final theta. ``on_step`` is called
    after each (progress)."""
    opt_state = schedule.optimizer().init(theta)
    for i in range(int(steps)):
        lr = jnp.float32(schedule.learning_rate(i, steps))
        theta, opt_state = step(theta, opt_state, jnp.int32(i), lr, schedule=schedule)
        if on_step:
            on_step()
    return theta
