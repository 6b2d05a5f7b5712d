"""irec_jax: image compression with relative entropy coding (iREC) in JAX.

    import irec_jax
    data = irec_jax.compress("photo.png")      # bytes of an .irec file (bundled model)
    pixels = irec_jax.decompress(data)         # uint8 [H, W, C], bit-exact

Subpackages:
  rec      -- the iREC coder core: Gaussian posterior/prior -> indices -> sample (JAX).
  entropy  -- indices, residuals and the .irec container as bytes (numpy + constriction).
  models   -- pure-function Flax VAEs with a layer-by-layer coding interface.
  exact    -- the integer arithmetic and constant tables encoder and decoder share.
Modules: codec (compress / decompress), analysis (ELBO estimates), modelzoo
(models), reference (a numpy-only decoder), cli (the irec command).

``compress`` and ``decompress`` are imported on first use: ``import irec_jax``
loads neither JAX nor the model.
"""

from irec_jax.errors import FormatError, ImageError, ModelError

__all__ = ["FormatError", "ImageError", "ModelError", "compress", "decompress", "__version__"]
__version__ = "0.1.0.dev0"


def __getattr__(name: str):
    if name in ("compress", "decompress"):
        from irec_jax import codec
        return getattr(codec, name)
    raise AttributeError(f"module 'irec_jax' has no attribute {name!r}")
