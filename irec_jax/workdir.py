"""The layout of a ``train.py`` workdir, read and written in one place.

    WORKDIR/checkpoints/STEP/state   orbax PyTree of the TrainState (params, ema_params, ...)
    WORKDIR/checkpoints/STEP/meta    JSON: {"config": {...}, data position, ...}
    WORKDIR/metrics.jsonl, WORKDIR/tensorboard/

Training (``irec_jax.train``) writes it; the model zoo reads finished
workdirs through here without importing the training library. orbax is
imported only when parameters are actually read.
"""

from __future__ import annotations

import json
import os
from typing import Any

CHECKPOINTS = "checkpoints"
_META_FILES = ("metadata", "meta.json", "metadata.json")  # orbax JsonSave names, by version


def checkpoint_root(workdir: str) -> str:
    """``WORKDIR/checkpoints`` (absolute)."""
    return os.path.join(os.path.abspath(workdir), CHECKPOINTS)


def checkpoint_steps(workdir: str) -> list[int]:
    """Steps with a checkpoint, ascending (empty if none)."""
    root = checkpoint_root(workdir)
    return sorted(int(n) for n in os.listdir(root) if n.isdigit()) if os.path.isdir(root) else []


def _step(workdir: str, step: int | None) -> int:
    steps = checkpoint_steps(workdir)
    if not steps:
        raise FileNotFoundError(f"no checkpoints in {checkpoint_root(workdir)!r}")
    step = steps[-1] if step is None else int(step)
    if step not in steps:
        raise FileNotFoundError(f"no checkpoint of step {step} in {checkpoint_root(workdir)!r} (have {steps})")
    return step


def load_meta(workdir: str, step: int | None = None) -> dict:
    """The JSON metadata stored with checkpoint ``step`` (None: the latest)."""
    root = os.path.join(checkpoint_root(workdir), str(_step(workdir, step)), "meta")
    for name in _META_FILES:
        path = os.path.join(root, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                return json.load(f)
    raise FileNotFoundError(f"checkpoint {root!r} has no metadata file")


def load_params(workdir: str, step: int | None = None, ema: bool = True) -> Any:
    """Parameters (numpy pytree) of checkpoint ``step`` (None: the latest).

    ``ema`` picks the EMA parameters (for evaluation and export) over the raw ones.
    """
    import warnings

    import orbax.checkpoint as ocp

    path = os.path.join(checkpoint_root(workdir), str(_step(workdir, step)), "state")
    with warnings.catch_warnings():  # restoring to numpy: sharding info is not needed
        warnings.filterwarnings("ignore", "Sharding info not provided")
        state = ocp.PyTreeCheckpointer().restore(path)
    return state["ema_params" if ema else "params"]
