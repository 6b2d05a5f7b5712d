"""Files that ship inside the package: the bundled default model and held-out test images."""

from __future__ import annotations

import os

_ROOT = os.path.dirname(os.path.abspath(__file__))


def asset_path(*parts: str) -> str:
    """Absolute path of a file or folder under ``irec_jax/assets``."""
    return os.path.join(_ROOT, *parts)


def bundled_images(kind: str = "all") -> list[str]:
    """Sorted paths of the bundled held-out PNGs.

    kind: "crops" (32x32 crops of full-size photos), "photos" (64x64 downscaled
    photos) or "all". See ``irec_jax/assets/images/README.md`` for sources and licences.
    """
    if kind not in ("all", "crops", "photos"):
        raise ValueError(f"kind must be 'all', 'crops' or 'photos', got {kind!r}")
    folder = asset_path("images")
    names = sorted(n for n in os.listdir(folder) if n.endswith(".png"))
    if kind == "crops":
        names = [n for n in names if n.endswith("_32.png")]
    elif kind == "photos":
        names = [n for n in names if n.endswith("_64.png")]
    return [os.path.join(folder, n) for n in names]
