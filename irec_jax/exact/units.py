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
