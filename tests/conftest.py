"""Fixtures shared by test files: a tiny random-weight lossy model (the lossy codec's and the lossy
benchmark's tests), built once per session."""

from __future__ import annotations

import pytest

from irec_jax.models.gvae_config import GVAEConfig

TINY_GVAE = GVAEConfig(transform_channels=16, latent_channels=12, hyper_channels=8, hyper_latent_channels=6)


@pytest.fixture(scope="session")
def tiny_gvae_config() -> GVAEConfig:
    """The tiny GVAE's config (16 transform, 12 latent, 8 hyper, 6 hyper-latent channels)."""
    return TINY_GVAE


@pytest.fixture(scope="session")
def tiny_gvae_params(tiny_gvae_config):
    """Its float parameters, random (key 1)."""
    import jax

    from irec_jax.models import gvae
    return gvae.GVAE(tiny_gvae_config).init(jax.random.key(1))


@pytest.fixture(scope="session")
def lossy_model_dir(tmp_path_factory, tiny_gvae_config, tiny_gvae_params) -> str:
    """A tiny random-weight lossy model folder (what `irec export-model` writes), named gvae-tiny-test."""
    from irec_jax import entropy, modelzoo
    from irec_jax.models import gvae_integer
    cm = modelzoo.CodecModel("gvae-tiny-test", tiny_gvae_config,
                             gvae_integer.quantize(tiny_gvae_config, tiny_gvae_params),
                             entropy.CoderSettings(omega=3.0, epsilon=0.0))
    return modelzoo.export_model(cm, str(tmp_path_factory.mktemp("lossy") / "model"))


@pytest.fixture(scope="session")
def refinable_model_dir(tiny_gvae_config, tiny_gvae_params, tmp_path_factory) -> str:
    """The tiny random-weight lossy model with a card that names its beta (what refinement and error feedback
    need), named gvae-tiny-beta."""
    from irec_jax import entropy, modelzoo
    from irec_jax.models import gvae_integer
    params = gvae_integer.quantize(tiny_gvae_config, tiny_gvae_params)
    cm = modelzoo.CodecModel("gvae-tiny-beta", tiny_gvae_config, params, entropy.CoderSettings(omega=3.0, epsilon=0.0),
                             {"beta": 0.01, "distortion": "mse"})
    return modelzoo.export_model(cm, str(tmp_path_factory.mktemp("lossy_beta") / "model"))
