"""Entropy coding and the .irec file format (numpy + constriction, no JAX).

Integers and distributions in, bytes out, and back:
  indices   -- iREC step counts and candidate indices (uniform, table or
               adaptive index models).
  residual  -- 8-bit pixels under discretized logistic (mixture) likelihoods.
  container -- the .irec header, tiles (one coded stream each) and pixel CRC;
               or, in stored mode, PNG-filtered deflated pixels (``stored``).
  tables    -- the one quantizer from float64 CDFs to integer frequencies.
Every malformed input raises `irec_jax.FormatError`.

Coding onto a coder someone else owns (e.g. one range coder for a tile's
latents and pixels, ``new_queue()`` / ``finish_queue(q)`` -> bytes /
``open_queue(bytes, what)``; or one ANS stack shared by several models, as
bits-back coding does, ``new_stack()``), then ``push_layer`` / ``pop_layer``, ``push_pixels`` /
``pop_pixels``, ``push_categorical`` / ``pop_categorical`` and
``push_uniform`` / ``pop_uniform`` pairs; each pop returns what its push
wrote, and corrupt data raises FormatError.
"""

from irec_jax.entropy._coder import (finish as finish_queue, new_decoder as open_queue,
                                     new_encoder as new_queue, new_stack, pop_categorical, pop_uniform,
                                     push_categorical, push_uniform)
from irec_jax.entropy.container import (
    DEFAULT_TILE, MAGIC, READ_VERSIONS, VERSION, Container, Header, ModelRef, StoredImage, check_pixels, check_tile,
    is_lossy, is_stored, pack, pack_stored, param_hash, pixel_crc, tile_grid, unpack)
from irec_jax.entropy.stored import unfilter
from irec_jax.entropy.indices import (
    AdaptiveIndexModel, IndexModel, LayerIndices, TableIndexModel, UniformIndexModel,
    decode_indices, encode_indices, layer_bits, max_indices, pop_count, pop_layer, push_count, push_layer)
from irec_jax.entropy.residual import (
    FloatLogistic, FloatLogisticMixture, Likelihood, PixelTables, QuantizedLogistic, QuantizedMixture, coded_bits,
    decode_residual, encode_residual, pop_pixels, push_pixels, rescale_params, residual_bits)
from irec_jax.entropy.tables import PRECISION, freqs_from_cdf, freqs_from_pmf, table_bits
from irec_jax.errors import FormatError
from irec_jax.settings import CoderSettings

__all__ = [
    "DEFAULT_TILE", "MAGIC", "READ_VERSIONS", "VERSION", "PRECISION", "AdaptiveIndexModel", "CoderSettings", "coded_bits", "Container",
    "FloatLogistic", "FloatLogisticMixture", "FormatError", "Header", "IndexModel", "LayerIndices",
    "Likelihood", "ModelRef", "PixelTables", "QuantizedLogistic", "QuantizedMixture", "StoredImage",
    "TableIndexModel",
    "UniformIndexModel", "check_pixels", "check_tile", "layer_bits", "max_indices", "pop_count", "pop_layer",
    "push_count", "push_layer", "tile_grid", "decode_indices", "decode_residual", "encode_indices",
    "encode_residual", "finish_queue", "freqs_from_cdf", "freqs_from_pmf", "new_queue", "new_stack",
    "is_lossy", "is_stored", "open_queue", "pack", "pack_stored",
    "param_hash", "pixel_crc", "pop_categorical", "pop_pixels", "pop_uniform", "push_categorical",
    "push_pixels", "push_uniform", "rescale_params", "residual_bits", "table_bits", "unfilter", "unpack",
]
