"""The pure train step, its optimizer and state.

``make_optimizer(cfg)``: skip_nonfinite(clip_by_global_norm -> Adam/Adamax
with the published step schedule). ``train_step(objective, tx, ema_decay,
state, batch, rng) -> (state, metrics)``: partial-apply the first three
(static) arguments and jit; with a batch sharded over devices, jit adds the
gradient all-reduce. The objective (:mod:`irec_jax.train.objectives`) holds
the model and its loss.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from irec_jax.train.objectives import Objective

Params = Any


@struct.dataclass
class TrainState:
    """Everything a run needs to continue (all arrays: checkpointable as one pytree)."""

    step: jax.Array  # [] int32, train steps taken
    params: Params
    ema_params: Params  # EMA of params (evaluation and export); = params when decay is 0
    opt_state: optax.OptState
    rng: jax.Array  # [2] uint32 threefry key data; step s uses fold_in(rng, s)


class SkipNonFiniteState(NamedTuple):
    inner_state: optax.OptState
    num_skipped: jax.Array  # [] int32, updates skipped so far
    last_skipped: jax.Array  # [] int32, 1 if the latest update was skipped


def skip_nonfinite(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """Apply ``inner`` unless the gradients or its updates hold a NaN/inf.

    A skipped step returns zero updates and keeps ``inner``'s state (so Adam
    moments and the schedule's count do not advance); ``num_skipped`` and
    ``last_skipped`` in the state count skips.
    """

    def init(params):
        zero = jnp.zeros([], jnp.int32)
        return SkipNonFiniteState(inner.init(params), zero, zero)

    def update(updates, state, params=None):
        new_updates, new_inner = inner.update(updates, state.inner_state, params)
        leaves = jax.tree.leaves(updates) + jax.tree.leaves(new_updates)
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))
        new_updates = jax.tree.map(lambda u: jnp.where(finite, u, jnp.zeros_like(u)), new_updates)
        new_inner = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new_inner, state.inner_state)
        skipped = jnp.logical_not(finite).astype(jnp.int32)
        return new_updates, SkipNonFiniteState(new_inner, state.num_skipped + skipped, skipped)

    return optax.GradientTransformation(init, update)


def learning_rate_schedule(cfg: Any) -> optax.Schedule:
    """Piecewise constant: ``learning_rate`` times ``lr_decay_factor`` at each of ``lr_decay_steps``."""
    return optax.piecewise_constant_schedule(
        float(cfg.learning_rate), {int(s): float(cfg.lr_decay_factor) for s in cfg.lr_decay_steps})


def make_optimizer(cfg: Any) -> optax.GradientTransformation:
    """From ``config.train``: skip_nonfinite(chain(clip_by_global_norm(grad_clip), adam|adamax(schedule)))."""
    opts = {"adam": optax.adam, "adamax": optax.adamax}
    if cfg.optimizer not in opts:
        raise ValueError(f"config.train.optimizer must be one of {sorted(opts)}, got {cfg.optimizer!r}")
    chain = [opts[cfg.optimizer](learning_rate_schedule(cfg))]
    if cfg.get("grad_clip", 0) and cfg.grad_clip > 0:
        chain.insert(0, optax.clip_by_global_norm(float(cfg.grad_clip)))
    return skip_nonfinite(optax.chain(*chain))


def init_state(model: Any, tx: optax.GradientTransformation, seed: int,
               image_shape: tuple[int, ...]) -> TrainState:
    """Fresh state from ``seed`` (jittable; ``model`` (with ``init(key, image_shape)``), ``tx``,
    ``image_shape`` static)."""
    key = jax.random.key(seed)
    k_init, k_run = jax.random.split(key)
    params = model.init(k_init, image_shape)
    return TrainState(step=jnp.zeros([], jnp.int32), params=params, ema_params=params,
                      opt_state=tx.init(params), rng=jax.random.key_data(k_run))


def step_key(state: TrainState) -> jax.Array:
    """The key of the state's next step: fold_in(rng, step)."""
    return jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)


def train_step(objective: Objective, tx: optax.GradientTransformation, ema_decay: float,
               state: TrainState, batch: jax.Array, rng: jax.Array) -> tuple[TrainState, dict]:
    """One optimizer step on integer images ``batch`` [B, H, W, C] with key ``rng``.

    Metrics: the objective's (loss and its terms) plus grad_norm, skipped
    (this step, 0/1) and num_skipped (total).
    """
    (_, metrics), grads = jax.value_and_grad(objective.loss, has_aux=True)(state.params, batch, rng)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    if ema_decay > 0:
        ema = jax.tree.map(lambda e, p: ema_decay * e + (1.0 - ema_decay) * p, state.ema_params, params)
    else:
        ema = params
    metrics = dict(metrics, grad_norm=optax.tree.norm(grads), skipped=opt_state.last_skipped,
                   num_skipped=opt_state.num_skipped)
    new_state = state.replace(step=state.step + 1, params=params, ema_params=ema, opt_state=opt_state)
    return new_state, metrics


def eval_step(objective: Objective, params: Params, batch: jax.Array, rng: jax.Array) -> dict:
    """The objective's evaluation metrics (batch means, no free bits) of ``batch`` under ``params``."""
    return objective.evaluate(params, batch, rng)
