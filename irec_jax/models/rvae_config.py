"""Hyperparameters of the bidirectional ResNet VAE (:mod:`irec_jax.models.rvae`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from irec_jax.models import hparams


@dataclasses.dataclass(frozen=True)
class RVAEConfig:
    """Hyperparameters of :class:`RVAE` (hashable: it is a static jit argument).

    Attributes:
      num_layers: number of stochastic layers L.
      det_channels: deterministic channels C of the residual stream.
      stoch_channels: latent channels Z per stochastic layer.
      residual_scale: the 0.1 in ``h + 0.1 * f(h)``.
      latent_min_scale: floor of prior and posterior scales.
      image_channels: channels of the input image (3 for RGB).
      likelihood: ``"logistic"``, ``"mixture"`` (K logistics per subpixel) or
        ``"coupled"`` (K logistics per subpixel, each channel's component
        means shifted linearly by the channels before it, as in PixelCNN++).
      num_mixtures: K for ``"mixture"`` and ``"coupled"`` (at most 16).
      predict_scale: for ``"logistic"``, predict a scale per subpixel (else a
        learned scale per colour channel, as published); mixtures always
        predict their scales.
      likelihood_min_scale: floor of the pixel scale, in 8-bit levels.
      likelihood_init_scale: pixel scale (levels) at raw output 0.
    """

    num_layers: int = 24
    det_channels: int = 160
    stoch_channels: int = 32
    residual_scale: float = 0.1
    latent_min_scale: float = 1e-3
    image_channels: int = 3
    likelihood: str = "logistic"
    num_mixtures: int = 5
    predict_scale: bool = False
    likelihood_min_scale: float = 0.05
    likelihood_init_scale: float = 8.0

    def __post_init__(self):
        if self.likelihood not in ("logistic", "mixture", "coupled"):
            raise ValueError(f"likelihood must be 'logistic', 'mixture' or 'coupled', got {self.likelihood!r}")
        if self.num_mixtures > 16:
            raise ValueError(f"num_mixtures must be <= 16, got {self.num_mixtures}")
        for name in ("num_layers", "det_channels", "stoch_channels", "image_channels", "num_mixtures"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.latent_min_scale > 0 and self.likelihood_min_scale > 0):
            raise ValueError("min scales must be > 0")

    @classmethod
    def from_config(cls, cfg: Any) -> "RVAEConfig":
        """From a mapping or ``ml_collections.ConfigDict`` (e.g. ``get_config().model``);
        a ``kind`` entry must be ``"rvae"`` (see :func:`irec_jax.models.hparams.from_config`)."""
        return hparams.from_config(cls, cfg, "rvae")

    @property
    def head_channels(self) -> int:
        """Output channels of the transposed-conv head."""
        c = self.image_channels
        if self.likelihood == "mixture":
            return 3 * c * self.num_mixtures
        if self.likelihood == "coupled":
            return (3 * c + c * (c - 1) // 2) * self.num_mixtures
        return 2 * c if self.predict_scale else c
