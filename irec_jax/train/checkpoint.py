"""Orbax checkpoints of a ``TrainState`` plus JSON metadata (data position, config)."""

from __future__ import annotations

from typing import Any

import jax

from irec_jax.train.step import TrainState
from irec_jax.workdir import checkpoint_root  # the workdir layout's one owner


def manager(workdir: str, keep: int, async_save: bool = True):
    """A CheckpointManager over ``workdir/checkpoints`` keeping the last ``keep`` steps."""
    import orbax.checkpoint as ocp  # heavy; only in training

    if keep < 1:
        raise ValueError(f"config.train.keep_checkpoints must be >= 1, got {keep}")
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=async_save)
    return ocp.CheckpointManager(checkpoint_root(workdir), options=options)


def save(mngr, state: TrainState, meta: dict, force: bool = False) -> bool:
    """Save ``state`` and ``meta`` at ``state.step`` (returns whether a save started)."""
    import orbax.checkpoint as ocp

    step = int(jax.device_get(state.step))
    if mngr.latest_step() == step:
        return False
    return mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                   meta=ocp.args.JsonSave(meta)), force=force)


def restore_latest(mngr, abstract_state: TrainState) -> tuple[TrainState, dict] | None:
    """(state, meta) of the latest checkpoint with ``abstract_state``'s shardings, or None."""
    import orbax.checkpoint as ocp

    step = mngr.latest_step()
    if step is None:
        return None
    out = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state),
                                                     meta=ocp.args.JsonRestore()))
    return out["state"], dict(out["meta"])


def abstract_like(state_shapes: Any, sharding) -> Any:
    """ShapeDtypeStructs of ``state_shapes`` placed with ``sharding``."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state_shapes)
