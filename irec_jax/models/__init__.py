"""Pure-function Flax VAEs with a layer-by-layer coding interface.

``rvae``        -- the bidirectional ResNet VAE (lossless model of the paper).
``likelihoods`` -- discretized logistic / mixture pixel likelihoods (8-bit level units).
``integer``     -- the RVAE's integer generative path (exact on every backend) and its conversion.
``elbo``        -- negative ELBO in bits/dim with per-layer KL and free bits.
``interface``   -- the ``HierarchicalVAE`` protocol the codec drives, ``Gaussian``.
"""

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
    "Gaussian", "HierarchicalVAE", "gaussian_kl", "gaussian_log_prob", "sample_gaussian",
    "Logistic", "MixtureOfLogistics", "CoupledMixture", "QuantizedLogistic", "QuantizedMixture", "discretized_logistic_logpmf", "log_prob", "pmf_table",
    "to_entropy_logistic", "to_entropy_mixture",
    "ElboTerms", "elbo_terms", "negative_elbo",
]
