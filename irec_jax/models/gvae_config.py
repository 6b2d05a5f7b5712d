"""Hyperparameters of the two-level Gaussian VAE for lossy compression (:mod:`irec_jax.models.gvae`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from irec_jax.models import hparams


@dataclasses.dataclass(frozen=True)
class GVAEConfig:
    """Hyperparameters of :class:`GVAE` (hashable: it is a static jit argument).

    Attributes:
      transform_channels: N, channels of the analysis and synthesis transforms.
      latent_channels: M, channels of the level-1 latent z1 (H/16 x W/16).
      hyper_channels: channels of the hyper-analysis and hyper-synthesis transforms.
      hyper_latent_channels: channels of the level-2 latent z2 (H/64 x W/64).
      latent_min_scale: floor of every prior and posterior scale.
      image_channels: channels of the images (3 for RGB).
    """

    transform_channels: int = 196
    latent_channels: int = 196
    hyper_channels: int = 128
    hyper_latent_channels: int = 128
    latent_min_scale: float = 1e-3
    image_channels: int = 3

    def __post_init__(self):
        for name in ("transform_channels", "latent_channels", "hyper_channels", "hyper_latent_channels",
                     "image_channels"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.latent_min_scale > 0:
            raise ValueError(f"latent_min_scale must be > 0, got {self.latent_min_scale}")

    @classmethod
    def from_config(cls, cfg: Any) -> "GVAEConfig":
        """From a mapping or ``ml_collections.ConfigDict`` (e.g. ``get_config().model``);
        a ``kind`` entry must be ``"gvae"`` (see :func:`irec_jax.models.hparams.from_config`)."""
        return hparams.from_config(cls, cfg, "gvae")
