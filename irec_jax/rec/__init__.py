"""The iREC coder core: Gaussian posterior and prior -> a few indices -> sample.

    code, z_hat = encode(q_loc, q_scale, p_loc, p_scale, RecSettings())
    z_hat2 = decode(code, p_loc, p_scale, RecSettings())   # == z_hat, bit for bit
"""

from irec_jax.rec.coder import (EncodeInfo, RecCode, block_count, decode, encode, encode_batch, encode_choices,
                                encode_with_info, from_standard, join_codes, kl_divergence, log_ratio)
from irec_jax.rec.schedule import AuxSchedule, EqualSchedule
from irec_jax.rec.settings import RecSettings
from irec_jax.settings import PowerLawSchedule

__all__ = [
    "AuxSchedule",
    "EncodeInfo",
    "EqualSchedule",
    "PowerLawSchedule",
    "RecCode",
    "RecSettings",
    "block_count",
    "decode",
    "encode",
    "encode_batch",
    "encode_choices",
    "encode_with_info",
    "from_standard",
    "join_codes",
    "kl_divergence",
    "log_ratio",
]
