"""irec_jax: image compression with relative entropy coding (iREC) in JAX.

Subpackages:
  rec      -- the iREC coder core: Gaussian posterior/prior -> indices -> sample (JAX).
  entropy  -- indices, residuals and the .irec container as bytes (numpy + constriction).
  models   -- pure-function Flax VAEs with a layer-by-layer coding interface.
"""

from irec_jax.errors import FormatError

__all__ = ["FormatError", "__version__"]
__version__ = "0.1.0.dev0"
