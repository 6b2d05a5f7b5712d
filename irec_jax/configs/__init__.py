"""Experiment configs: each module defines ``get_config() -> ml_collections.ConfigDict``.

``paper`` -- the published lossless RVAE (24 layers, 160/32 channels).
``small`` -- a few-layer CPU variant for tests and the bundled model.
``lossy_paper`` -- the paper's lossy two-level Gaussian VAE (196/128 channels).
``lossy_cpu``   -- its CPU variant (64/48 channels, 256x256 crops).

``config.model.kind`` picks the model ("rvae" when absent, or "gvae") and
its config record (``RVAEConfig`` / ``GVAEConfig.from_config``);
``config.train`` holds the optimizer, loss and data settings of a training run.
"""
