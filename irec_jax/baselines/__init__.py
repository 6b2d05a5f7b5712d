"""Baseline coders the benchmark compares iREC against.

  bbans -- bits-back coding with ANS (BB-ANS / HiLLoC style) of the same
           hierarchical VAE, single images and chained sequences, as raw
           stacks or framed files (``bbans.encode_file``, ``bbans.encode_set_file``).
           Its latent codec is ``bbans_latents``, its initial bits ``bbans_stack``.
"""

from irec_jax.baselines import bbans
from irec_jax.baselines.bbans import (DEFAULT_BITS, BbansRates, bbans_decode_sequence,
                                      bbans_decode_single, bbans_encode_sequence,
                                      bbans_encode_single, bbans_rates)

__all__ = [
    "DEFAULT_BITS", "BbansRates", "bbans", "bbans_decode_sequence", "bbans_decode_single",
    "bbans_encode_sequence", "bbans_encode_single", "bbans_rates",
]
