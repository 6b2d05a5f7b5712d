"""Model hyperparameter records from experiment configs: one rule for every model kind."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def from_config(cls: type[T], cfg: Any, kind: str) -> T:
    """``cls(**cfg)`` from a mapping or ``ml_collections.ConfigDict`` (e.g. ``get_config().model``).

    A ``kind`` entry (the key that picks the model, see
    ``irec_jax.train.objectives``) must be ``kind`` and is dropped; fields
    ``cls`` does not have raise ValueError.
    """
    d = dict(cfg.items()) if hasattr(cfg, "items") else dict(cfg)
    got = d.pop("kind", kind)
    if got != kind:
        raise ValueError(f"model kind {got!r} is not {kind!r}")
    unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"unknown {kind.upper()} config fields {unknown}")
    return cls(**d)
