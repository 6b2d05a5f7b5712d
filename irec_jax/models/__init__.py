"""Pure-function Flax VAEs with a layer-by-layer coding interface.

``rvae``        -- the bidirectional ResNet VAE (lossless model of the paper).
``gvae``        -- the two-level Gaussian VAE with GDN transforms (lossy model of the paper).
``gdn``         -- GDN / IGDN.
``likelihoods`` -- discretized logistic / mixture pixel likelihoods (8-bit level units).
``integer``     -- the RVAE's integer generative path (exact on every backend) and its conversion.
``elbo``        -- negative ELBO in bits/dim with per-layer KL and free bits.
``interface``   -- the ``HierarchicalVAE`` protocol the codec drives, ``Gaussian``.
``hparams``     -- config records (``RVAEConfig``, ``GVAEConfig``) from experiment configs.
"""

from irec_jax.models.gvae import GVAE, GVAEActs, GVAEConfig, GVAEOutput, GVAEState
from irec_jax.models.elbo import ElboTerms, elbo_terms, negative_elbo
from irec_jax.models.interface import (Gaussian, HierarchicalVAE, gaussian_kl, gaussian_log_prob,
                                       sample_gaussian)
from irec_jax.models.likelihoods import (CoupledMixture, Logistic, MixtureOfLogistics, QuantizedLogistic,
                                         QuantizedMixture,
                                         discretized_logistic_logpmf, log_prob, pmf_table,
                                         to_entropy_logistic, to_entropy_mixture)
from irec_jax.models.rvae import RVAE, BottomUpActs, ForwardOutput, RVAEConfig, TopDownState

__all__ = [
    "RVAE", "RVAEConfig", "BottomUpActs", "TopDownState", "ForwardOutput",
    "GVAE", "GVAEConfig", "GVAEActs", "GVAEState", "GVAEOutput",
    "Gaussian", "HierarchicalVAE", "gaussian_kl", "gaussian_log_prob", "sample_gaussian",
    "Logistic", "MixtureOfLogistics", "CoupledMixture", "QuantizedLogistic", "QuantizedMixture", "discretized_logistic_logpmf", "log_prob", "pmf_table",
    "to_entropy_logistic", "to_entropy_mixture",
    "ElboTerms", "elbo_terms", "negative_elbo",
]
