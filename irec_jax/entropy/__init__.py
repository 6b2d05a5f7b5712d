"""Entropy coding and the .irec file format (numpy + constriction, no JAX).

Integers and distributions in, bytes out, and back:
  indices   -- iREC step counts and candidate indices (uniform, table or
               adaptive index models).
  residual  -- 8-bit pixels under discretized logistic (mixture) likelihoods.
  container -- the .irec header, sections and pixel CRC.
  tables    -- the one quantizer from float64 CDFs to integer frequencies.
Every malformed input raises `irec_jax.FormatError`.
"""

from irec_jax.entropy.container import (
    MAGIC, VERSION, CoderSettings, Container, Header, ModelRef, check_pixels,
    num_candidates, pack, param_hash, pixel_crc, unpack)
from irec_jax.entropy.indices import (
    AdaptiveIndexModel, IndexModel, LayerIndices, TableIndexModel, UniformIndexModel,
    decode_indices, encode_indices)
from irec_jax.entropy.residual import (
    Likelihood, Logistic, LogisticMixture, PixelTables, QuantizedLogistic, decode_residual,
    coded_bits, encode_residual, rescale_params, residual_bits)
from irec_jax.entropy.tables import PRECISION, freqs_from_cdf, freqs_from_pmf, table_bits
from irec_jax.errors import FormatError

__all__ = [
    "MAGIC", "VERSION", "PRECISION", "AdaptiveIndexModel", "CoderSettings", "coded_bits", "Container",
    "FormatError", "Header", "IndexModel", "LayerIndices", "Likelihood", "Logistic",
    "LogisticMixture", "ModelRef", "PixelTables", "QuantizedLogistic", "TableIndexModel", "UniformIndexModel", "check_pixels",
    "decode_indices", "decode_residual", "encode_indices", "encode_residual",
    "freqs_from_cdf", "freqs_from_pmf", "num_candidates", "pack", "param_hash", "pixel_crc",
    "rescale_params", "residual_bits", "table_bits", "unpack",
]
