"""Encoder-only posterior refinement, shared by the lossless RVAE and the lossy GVAE.

The amortized encoder network is a compromise over all images. For one image
the encoder can do better: a few Adam steps on the variational parameters
lower the model's own training loss for that image (negative ELBO, or
beta D + rate for a lossy model), through float copies of the integer
generative path. The coder then codes the refined posteriors; the decoder
never sees how they were found, so nothing it computes changes.

Each model defines its loss ``loss(theta, key)`` and jits one
:func:`adam_step` per call (XLA:CPU ran the same steps inside a
``fori_loop`` several times slower); :func:`run` drives the steps, passing
each its index, from which the model draws that step's noise.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

REFINE_LR = 0.02  # Adam's step size on the variational parameters
OPTIMIZER = optax.adam(REFINE_LR)


def adam_step(loss: Callable[[Any, jax.Array], jax.Array], theta: Any, opt_state: Any, key: jax.Array
              ) -> tuple[Any, Any]:
    """One Adam step of ``theta`` (any pytree) on ``loss(theta, key)``: (theta', opt_state')."""
    grads = jax.grad(loss)(theta, key)
    updates, opt_state = OPTIMIZER.update(grads, opt_state, theta)
    return optax.apply_updates(theta, updates), opt_state


def run(step: Callable[[Any, Any, jax.Array], tuple[Any, Any]], theta: Any, steps: int,
        on_step: Callable[[], None] | None = None) -> Any:
    """``steps`` calls of ``step(theta, opt_state, i)`` (i: int32 step index) from
    ``OPTIMIZER.init(theta)``; returns the final theta. ``on_step`` is called after each (progress)."""
    opt_state = OPTIMIZER.init(theta)
    for i in range(int(steps)):
        theta, opt_state = step(theta, opt_state, jnp.int32(i))
        if on_step:
            on_step()
    return theta
