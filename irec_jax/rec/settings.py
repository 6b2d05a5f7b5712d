"""Coder settings: Ω, ε, beams, seed, block formation, auxiliary schedule.

``RecSettings`` is ``irec_jax.settings.CoderSettings`` (the one settings
record the coder and the .irec container share); this module keeps the
coder's name for it.
"""

from irec_jax.settings import MAX_BEAMS, MAX_CANDIDATES, CoderSettings

RecSettings = CoderSettings

__all__ = ["MAX_BEAMS", "MAX_CANDIDATES", "RecSettings"]
