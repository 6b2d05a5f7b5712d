"""Fixed-point units of the decoder path (format constants; ``docs/format.md``).

No JAX here: the entropy layer (numpy only) and the JAX model both read them.
"""

ACT_BITS = 10
"""Activations, the top-down state and latents z are integers in units of 2^-10."""

LOC_BITS = 11
"""Pixel likelihood locations are integers in units of 2^-11 of an 8-bit level."""

INV_SCALE_BITS = 16
"""Pixel likelihood inverse scales 1/s (s in levels) are integers in units of 2^-16."""

RAW_STEP_BITS = 6
"""Scale tables are indexed by a raw network output rounded to units of 2^-6."""

RAW_MIN, RAW_COUNT = -20 << RAW_STEP_BITS, 40 << RAW_STEP_BITS
"""Scale tables cover raw outputs [-20, 20) in steps of 2^-6 (indices clipped)."""

REC_BITS = 16
"""iREC candidates and their standardized sums are integers in units of 2^-16."""

REC_LIMIT = (1 << 24) - 1
"""Standardized sums are clipped to [-REC_LIMIT, REC_LIMIT] after every step."""

MIX_WEIGHT_BITS = 16
"""Mixture weights are integers in units of 2^-16 of the largest component's weight."""

MIX_STEP_BITS = 6
"""Mixture weights come from a table indexed by (max logit - logit) rounded to units of 2^-6."""

MIX_COUNT = 16 << MIX_STEP_BITS
"""The weight table covers logit gaps [0, 16) (a larger gap weighs what the last entry does)."""

MIX_SHIFT = 20
"""A mixture CDF is sum_k weight_k * sigmoid-table value, shifted right by 20 (below 2^32 for K <= 16)."""

COEF_BITS = 14
"""Channel coupling coefficients (in [-1, 1]) are integers in units of 2^-14."""

GDN_SQUARE_BITS = 14
"""Inverse GDN squares its inputs (clipped to |x| < 32) into integers in units of 2^-14 (below 2^24)."""

GDN_GAMMA_BITS = 16
"""Inverse GDN's gamma (>= 0, below 256) and beta are integers in units of 2^-16 and 2^-20."""

GDN_NORM_BITS = 20
"""Inverse GDN's norm beta + sum gamma x^2 is an integer in units of 2^-20, saturating below 2^30 (1024)."""
