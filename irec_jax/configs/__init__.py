"""Experiment configs: each module defines ``get_config() -> ml_collections.ConfigDict``.

``paper`` -- the published lossless RVAE (24 layers, 160/32 channels).
``small`` -- a few-layer CPU variant for tests and the bundled model.

``config.model`` feeds ``irec_jax.models.RVAEConfig.from_config``;
``config.train`` holds the optimizer and data settings of a training run.
"""
