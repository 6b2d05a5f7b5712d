"""The layer-by-layer coding interface shared by all hierarchical VAEs.

A model codes its latents as an ordered list of stochastic layers,
``layer = 0 .. num_layers - 1`` in *coding order* (layer 0 is coded first; for
a top-down VAE it is the top layer). The encoder and decoder drive the model
through the same pure functions:

    acts  = model.bottom_up(params, x)                    # encoder only
    state = model.initial_state(params, x.shape)          # both sides
    for layer in range(model.num_layers):
        p = model.prior(params, state, layer)             # both sides
        q = model.posterior(params, state, acts, layer)   # encoder only
        z = ...                                           # chosen by the coder
        state = model.advance(params, state, z, layer)    # both sides
    lik = model.likelihood(params, state)                 # both sides

Each of these is a separately jitted pure function, so identical inputs give
bit-identical outputs on the encoder and decoder side of the same machine and
software stack. ``prior`` and ``posterior`` return :class:`Gaussian` records
with ``scale > 0`` everywhere.
"""

from __future__ import annotations

from typing import Any, Iterator, Protocol

import jax
import jax.numpy as jnp
from flax import struct

Shape = tuple[int, ...]


@struct.dataclass
class Gaussian:
    """A diagonal Gaussian N(loc, scale**2), elementwise.

    ``loc`` and ``scale`` share one shape (``[B, h, w, c]`` for a latent
    layer); ``scale > 0`` everywhere. Unpacks as ``loc, scale = gaussian``.
    """

    loc: jax.Array  # [B, h, w, c]
    scale: jax.Array  # [B, h, w, c], > 0

    def __iter__(self) -> Iterator[jax.Array]:
        return iter((self.loc, self.scale))


def check_next_layer(state_layer: int, layer: int) -> None:
    """ValueError unless ``layer`` is the one a state before ``state_layer`` codes next (layers are
    coded in order, each advanced once)."""
    if layer != state_layer:
        raise ValueError(f"this state is before layer {state_layer}, not layer {layer} "
                         "(layers are coded in order, each advance once)")


def gaussian_kl(q: Gaussian, p: Gaussian) -> jax.Array:
    """KL(q || p) in nats, elementwise (same shape as ``q.loc``)."""
    ratio = q.scale / p.scale
    diff = (q.loc - p.loc) / p.scale
    return 0.5 * (jnp.square(ratio) + jnp.square(diff) - 1.0) - jnp.log(ratio)


def gaussian_log_prob(g: Gaussian, z: jax.Array) -> jax.Array:
    """log N(z; loc, scale**2) in nats, elementwise."""
    u = (z - g.loc) / g.scale
    return -0.5 * jnp.square(u) - jnp.log(g.scale) - 0.5 * jnp.log(2.0 * jnp.pi)


def sample_gaussian(key: jax.Array, g: Gaussian, layer: int | jax.Array) -> jax.Array:
    """A reparameterized sample loc + scale * eps with eps from fold_in(key, layer).

    The fused training pass and the layer-by-layer interface use this same
    rule, so both draw the same z for the same (key, layer).
    """
    eps = jax.random.normal(jax.random.fold_in(key, layer), g.loc.shape, g.loc.dtype)
    return g.loc + g.scale * eps


class HierarchicalVAE(Protocol):
    """What the iREC codec needs from a model (see the module docstring).

    ``image_shape`` is ``(B, H, W, C)``; images are integer arrays with
    values 0..255. Implementations raise ``ValueError`` quoting the shape for
    inputs they cannot take.
    """

    @property
    def num_layers(self) -> int: ...

    def latent_shape(self, image_shape: Shape, layer: int) -> Shape:
        """Shape ``(B, h, w, c)`` of layer ``layer``'s latent for images of ``image_shape``."""

    def bottom_up(self, params: Any, x: jax.Array) -> Any:
        """Encoder-only activations that ``posterior`` needs, from images ``x``."""

    def initial_state(self, params: Any, image_shape: Shape) -> Any:
        """Top-down state before layer 0 (a function of the image shape only)."""

    def prior(self, params: Any, state: Any, layer: int) -> Gaussian:
        """Prior of layer ``layer`` given the top-down state."""

    def posterior(self, params: Any, state: Any, acts: Any, layer: int) -> Gaussian:
        """Posterior of layer ``layer`` given the top-down state and bottom-up acts."""

    def advance(self, params: Any, state: Any, z: jax.Array, layer: int) -> Any:
        """Top-down state after feeding latent ``z`` of layer ``layer``."""

    def likelihood(self, params: Any, state: Any) -> Any:
        """Likelihood parameters of the pixels given the state after the last layer."""
