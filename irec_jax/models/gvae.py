"""The two-level Gaussian VAE of the iREC paper's lossy experiments ("GVAE").

Ballé et al. 2018's hyperprior architecture with Gaussian posteriors at both
levels, trained without quantization (continuous latents, rate = KL), as in
the original iREC code (``rec/models/lossy/large_2_level_vae.py``). With
``N`` transform, ``M`` latent, ``H`` hyper and ``M2`` hyper-latent channels:

* analysis (encoder): 3 x (5x5 stride-2 conv to N, GDN), then a 5x5 stride-2
  conv to the level-1 posterior (loc, raw scale): M each at H/16 x W/16;
* hyper-analysis (encoder) from the level-1 posterior *mean*: 3x3 conv to H,
  ReLU, 5x5 stride-2 conv to H, ReLU, 5x5 stride-2 conv (no bias) to the
  level-2 posterior (loc, raw scale): M2 each at H/64 x W/64;
* level-2 ("top") prior: a learned (loc, raw scale) per channel, broadcast
  over positions;
* hyper-synthesis (decoder) from z2: 2 x (5x5 stride-2 transposed conv to H,
  ReLU), then a 3x3 conv to the level-1 prior (loc, raw scale);
* synthesis (decoder) from z1: 3 x (5x5 stride-2 transposed conv to N, IGDN),
  then a 5x5 stride-2 transposed conv to the image channels, in network units
  mapped to levels by :func:`likelihoods.to_levels` (0..255 nominally).

Every scale is ``latent_min_scale + softplus(raw + softplus^-1(1))``
(:func:`likelihoods.positive_scale`). The decoder side uses only convs,
transposed convs in :class:`rvae.SubpixelDeconv`'s layout, ReLU, IGDN and the
scale function, which an integer path can compute exactly (ReLU and IGDN
directly, the scale by table). Unlike the original code, the level-1
posterior here comes from the analysis heads alone (Ballé et al.'s
structure); the original also mixed the level-1 prior's statistics into it
with 1x1 convs.

Coding order (the layer-by-layer interface of
:mod:`irec_jax.models.interface`): layer 0 is z2 (the top), layer 1 is z1.
Instead of a pixel likelihood the model gives a reconstruction:
``reconstruct(params, state)`` is the float image [B, H, W, C] in 0..255
(clipped, not rounded) decoded from the state after both layers.

Images are integer arrays [B, H, W, C] of levels 0..255 with H, W >= 64. The
encoder edge-pads H and W up to multiples of 64 (``PAD_MULTIPLE``), so the
latents cover ceil(H/64) x ceil(W/64) level-2 positions (4x that per side
for level 1), and the reconstruction is cropped back to H x W.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from irec_jax.models import likelihoods as lik
from irec_jax.models.gdn import GDN
from irec_jax.models.gvae_config import GVAEConfig
from irec_jax.models.interface import Gaussian, Shape, gaussian_kl, sample_gaussian
from irec_jax.models.rvae import SubpixelDeconv

Params = Any  # nested dict of arrays; see GVAE.init
PAD_MULTIPLE = 64  # total downsampling from the image to the level-2 latents
NUM_LAYERS = 2


# ----------------------------------------------------------------------------
# Typed records.


@struct.dataclass
class GVAEActs:
    """Encoder-only posterior terms of both levels."""

    loc2: jax.Array  # [B, h2, w2, M2]
    raw2: jax.Array  # [B, h2, w2, M2]
    loc1: jax.Array  # [B, h1, w1, M]
    raw1: jax.Array  # [B, h1, w1, M]


@struct.dataclass
class GVAEState:
    """The latents fed so far (zeros before their layer) and the image size to decode to."""

    z2: jax.Array  # [B, h2, w2, M2]
    z1: jax.Array  # [B, h1, w1, M]
    image_hw: tuple[int, int] = struct.field(pytree_node=False)  # (H, W) of the image


@struct.dataclass
class GVAEOutput:
    """Result of the fused pass (training)."""

    reconstruction: jax.Array  # [B, H, W, C], float levels, not clipped
    kl: jax.Array  # [2, B], KL(q || p) in nats per layer (coding order: z2, z1), summed over h, w, c
    z2: jax.Array  # [B, h2, w2, M2], the posterior samples used
    z1: jax.Array  # [B, h1, w1, M]


# ----------------------------------------------------------------------------
# Linen modules (used only through init / apply).


def _conv(features: int, kernel: int, stride: int, name: str, use_bias: bool = True) -> nn.Conv:
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding="SAME", use_bias=use_bias,
                   name=name)


class _Analysis(nn.Module):
    cfg: GVAEConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:  # [B,H,W,C] -> 2 x [B,H/16,W/16,M]
        for i in range(3):
            x = GDN(name=f"gdn{i}")(_conv(self.cfg.transform_channels, 5, 2, f"conv{i}")(x))
        loc, raw = jnp.split(_conv(2 * self.cfg.latent_channels, 5, 2, "head")(x), 2, axis=-1)
        return loc, raw


class _HyperAnalysis(nn.Module):
    cfg: GVAEConfig

    @nn.compact
    def __call__(self, y: jax.Array) -> tuple[jax.Array, jax.Array]:  # [B,h,w,M] -> 2 x [B,h/4,w/4,M2]
        h = nn.relu(_conv(self.cfg.hyper_channels, 3, 1, "conv0")(y))
        h = nn.relu(_conv(self.cfg.hyper_channels, 5, 2, "conv1")(h))
        out = _conv(2 * self.cfg.hyper_latent_channels, 5, 2, "head", use_bias=False)(h)
        loc, raw = jnp.split(out, 2, axis=-1)
        return loc, raw


class _HyperSynthesis(nn.Module):
    cfg: GVAEConfig

    @nn.compact
    def __call__(self, z2: jax.Array) -> tuple[jax.Array, jax.Array]:  # [B,h,w,M2] -> 2 x [B,4h,4w,M]
        h = nn.relu(SubpixelDeconv(self.cfg.hyper_channels, name="deconv0")(z2))
        h = nn.relu(SubpixelDeconv(self.cfg.hyper_channels, name="deconv1")(h))
        loc, raw = jnp.split(_conv(2 * self.cfg.latent_channels, 3, 1, "head")(h), 2, axis=-1)
        return loc, raw


class _Synthesis(nn.Module):
    cfg: GVAEConfig

    @nn.compact
    def __call__(self, z1: jax.Array) -> jax.Array:  # [B,h,w,M] -> [B,16h,16w,C], network units
        h = z1
        for i in range(3):
            h = GDN(inverse=True, name=f"igdn{i}")(SubpixelDeconv(self.cfg.transform_channels, name=f"deconv{i}")(h))
        return SubpixelDeconv(self.cfg.image_channels, name="deconv3")(h)


# ----------------------------------------------------------------------------
# Pure functions (jitted with the config static).


def padded_hw(image_hw: tuple[int, int]) -> tuple[int, int]:
    """(H, W) rounded up to multiples of ``PAD_MULTIPLE``."""
    return tuple(-(-int(d) // PAD_MULTIPLE) * PAD_MULTIPLE for d in image_hw)


def _scale(cfg: GVAEConfig, raw: jax.Array) -> jax.Array:
    return lik.positive_scale(raw, cfg.latent_min_scale)


def _bottom_up(cfg: GVAEConfig, params: Params, x: jax.Array) -> GVAEActs:
    hp, wp = padded_hw(x.shape[1:3])
    x = jnp.pad(x, ((0, 0), (0, hp - x.shape[1]), (0, wp - x.shape[2]), (0, 0)), mode="edge")
    loc1, raw1 = _Analysis(cfg).apply({"params": params["analysis"]}, lik.to_network_input(x))
    loc2, raw2 = _HyperAnalysis(cfg).apply({"params": params["hyper_analysis"]}, loc1)
    return GVAEActs(loc2=loc2, raw2=raw2, loc1=loc1, raw1=raw1)


def _posterior(cfg: GVAEConfig, acts: GVAEActs, layer: int) -> Gaussian:
    loc, raw = (acts.loc2, acts.raw2) if layer == 0 else (acts.loc1, acts.raw1)
    return Gaussian(loc, _scale(cfg, raw))


def _prior(cfg: GVAEConfig, params: Params, state: GVAEState, layer: int) -> Gaussian:
    if layer == 0:
        top = params["top"]
        shape = state.z2.shape
        return Gaussian(jnp.broadcast_to(top["loc"], shape), jnp.broadcast_to(_scale(cfg, top["raw_scale"]), shape))
    loc, raw = _HyperSynthesis(cfg).apply({"params": params["hyper_synthesis"]}, state.z2)
    return Gaussian(loc, _scale(cfg, raw))


def _synthesis(cfg: GVAEConfig, params: Params, z1: jax.Array, image_hw: tuple[int, int]) -> jax.Array:
    """z1 [B, h1, w1, M] -> float levels [B, H, W, C], not clipped."""
    out = _Synthesis(cfg).apply({"params": params["synthesis"]}, z1)
    return lik.to_levels(out[:, :image_hw[0], :image_hw[1]])


_bottom_up_jit = jax.jit(_bottom_up, static_argnums=0)
_prior_jit = jax.jit(_prior, static_argnums=(0, 3))
_posterior_jit = jax.jit(_posterior, static_argnums=(0, 2))


@functools.partial(jax.jit, static_argnums=0)
def _reconstruct_jit(cfg: GVAEConfig, params: Params, state: GVAEState) -> jax.Array:
    return jnp.clip(_synthesis(cfg, params, state.z1, state.image_hw), 0.0, 255.0)


@functools.partial(jax.jit, static_argnums=0)
def _init_jit(cfg: GVAEConfig, key: jax.Array) -> Params:
    # Initializers draw from an "rbg" key derived from ``key`` (XLA:CPU compiles
    # threefry draws slowly; see rvae._init_jit). Shapes do not depend on the image size.
    rbg_key = jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl="rbg")
    k_a, k_ha, k_hs, k_s = jax.random.split(rbg_key, 4)
    x = jnp.zeros((1, PAD_MULTIPLE, PAD_MULTIPLE, cfg.image_channels), jnp.float32)
    y = jnp.zeros((1, 4, 4, cfg.latent_channels), jnp.float32)
    z2 = jnp.zeros((1, 1, 1, cfg.hyper_latent_channels), jnp.float32)
    return {
        "analysis": _Analysis(cfg).init(k_a, x)["params"],
        "hyper_analysis": _HyperAnalysis(cfg).init(k_ha, y)["params"],
        "top": {"loc": jnp.zeros((cfg.hyper_latent_channels,), jnp.float32),
                "raw_scale": jnp.zeros((cfg.hyper_latent_channels,), jnp.float32)},
        "hyper_synthesis": _HyperSynthesis(cfg).init(k_hs, z2)["params"],
        "synthesis": _Synthesis(cfg).init(k_s, y)["params"],
    }


def _forward(cfg: GVAEConfig, params: Params, x: jax.Array, key: jax.Array) -> GVAEOutput:
    acts = _bottom_up(cfg, params, x)
    state = GVAEState(z2=jnp.zeros_like(acts.loc2), z1=jnp.zeros_like(acts.loc1), image_hw=tuple(x.shape[1:3]))
    kls = []
    for layer in range(NUM_LAYERS):
        p, q = _prior(cfg, params, state, layer), _posterior(cfg, acts, layer)
        z = sample_gaussian(key, q, layer)
        kls.append(jnp.sum(gaussian_kl(q, p), axis=(1, 2, 3)))  # [B]
        state = state.replace(**{"z2" if layer == 0 else "z1": z})
    recon = _synthesis(cfg, params, state.z1, state.image_hw)
    return GVAEOutput(reconstruction=recon, kl=jnp.stack(kls), z2=state.z2, z1=state.z1)


# ----------------------------------------------------------------------------
# The model object.


@dataclasses.dataclass(frozen=True)
class GVAE:
    """Two-level Gaussian VAE for lossy compression, as pure functions of ``params``.

    Implements :class:`irec_jax.models.interface.HierarchicalVAE` with
    ``num_layers = 2`` (layer 0 = z2, layer 1 = z1), except that
    ``reconstruct`` (a float image) takes the place of ``likelihood``.
    Parameters are an explicit pytree::

        {"analysis": ..., "hyper_analysis": ..., "top": {"loc", "raw_scale": [M2]},
         "hyper_synthesis": ..., "synthesis": ...}

    Public methods validate their inputs (``ValueError`` quoting the shape) and
    call module-level jitted functions keyed on the config.
    """

    config: GVAEConfig

    @property
    def num_layers(self) -> int:
        return NUM_LAYERS

    # -- shapes and validation -------------------------------------------------

    def check_images(self, x: jax.Array) -> None:
        """Raise ValueError unless ``x`` is an integer [B, H, W, C_img] array with H, W >= 64."""
        shape = tuple(getattr(x, "shape", ()))
        self._check_image_shape(shape)
        dtype = getattr(x, "dtype", None)
        if dtype is None or not jnp.issubdtype(dtype, jnp.integer):
            raise ValueError(f"images must be integer levels 0..255, got dtype {dtype} with shape {shape}")

    def _check_image_shape(self, shape: Shape) -> None:
        c = self.config.image_channels
        if len(shape) != 4 or shape[-1] != c or shape[0] < 1:
            raise ValueError(f"images must have shape [B, H, W, {c}], got shape {shape}")
        if min(shape[1:3]) < PAD_MULTIPLE:
            raise ValueError(f"image height and width must be >= {PAD_MULTIPLE}, got shape {shape}")

    def latent_shapes(self, image_shape: Shape) -> tuple[Shape, Shape]:
        """``((B, h2, w2, M2), (B, h1, w1, M))`` in coding order: h2 = ceil(H/64), h1 = 4 h2 (same for w)."""
        image_shape = tuple(int(d) for d in image_shape)
        self._check_image_shape(image_shape)
        hp, wp = padded_hw(image_shape[1:3])
        b, cfg = image_shape[0], self.config
        return ((b, hp // 64, wp // 64, cfg.hyper_latent_channels), (b, hp // 16, wp // 16, cfg.latent_channels))

    def latent_shape(self, image_shape: Shape, layer: int) -> Shape:
        """Shape of layer ``layer``'s latent (see :meth:`latent_shapes`)."""
        self._check_layer(layer)
        return self.latent_shapes(image_shape)[layer]

    def _check_layer(self, layer: int) -> None:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer < NUM_LAYERS:
            raise ValueError(f"layer must be an int in [0, {NUM_LAYERS}), got {layer!r}")

    def _check_state(self, state: GVAEState) -> None:
        want = self.latent_shapes((state.z2.shape[0], *state.image_hw, self.config.image_channels))
        got = (tuple(state.z2.shape), tuple(state.z1.shape))
        if got != want:
            raise ValueError(f"state latents must have shapes {want} for images of size {state.image_hw}, "
                             f"got {got}")

    # -- parameters ------------------------------------------------------------

    def init(self, key: jax.Array, image_shape: Shape = (1, 64, 64, 3)) -> Params:
        """Random parameters (pure, jitted; shapes do not depend on ``image_shape``)."""
        self.latent_shapes(image_shape)
        return _init_jit(self.config, key)

    def param_count(self, params: Params | None = None) -> int:
        """Number of scalar parameters (from ``params``, or abstractly via eval_shape)."""
        if params is None:
            params = jax.eval_shape(self.init, jax.random.key(0))
        return sum(int(p.size) for p in jax.tree.leaves(params))

    # -- training --------------------------------------------------------------

    def forward(self, params: Params, x: jax.Array, key: jax.Array) -> GVAEOutput:
        """The fused pass: z2 = sample_gaussian(key, q2, 0), z1 = sample_gaussian(key, q1, 1),
        reparameterized; KL per layer and the (unclipped) reconstruction.

        Not jitted by itself (wrap the loss / train step in ``jax.jit``).
        """
        self.check_images(x)
        return _forward(self.config, params, x, key)

    # -- layer-by-layer coding interface -------------------------------------

    def bottom_up(self, params: Params, x: jax.Array) -> GVAEActs:
        """Encoder only: the posterior terms of both levels from images ``x`` [B, H, W, C_img]."""
        self.check_images(x)
        return _bottom_up_jit(self.config, params, x)

    def initial_state(self, params: Params, image_shape: Shape) -> GVAEState:
        """State before layer 0: zero latents of the shapes for ``image_shape``."""
        s2, s1 = self.latent_shapes(image_shape)
        return GVAEState(z2=jnp.zeros(s2, jnp.float32), z1=jnp.zeros(s1, jnp.float32),
                         image_hw=(int(image_shape[1]), int(image_shape[2])))

    def prior(self, params: Params, state: GVAEState, layer: int) -> Gaussian:
        """Layer 0: the learned top prior; layer 1: the hyper-synthesis of ``state.z2``."""
        self._check_layer(layer)
        self._check_state(state)
        return _prior_jit(self.config, params, state, int(layer))

    def posterior(self, params: Params, state: GVAEState, acts: GVAEActs, layer: int) -> Gaussian:
        """Posterior of layer ``layer`` (from the encoder's acts only; ``state`` is checked, not used)."""
        self._check_layer(layer)
        self._check_state(state)
        want = self.latent_shapes((state.z2.shape[0], *state.image_hw, self.config.image_channels))
        got = (tuple(acts.loc2.shape), tuple(acts.loc1.shape))
        if got != want:
            raise ValueError(f"encoder acts must have shapes {want}, got {got}")
        return _posterior_jit(self.config, acts, int(layer))

    def advance(self, params: Params, state: GVAEState, z: jax.Array, layer: int) -> GVAEState:
        """The state with latent ``z`` of layer ``layer`` fed in."""
        self._check_layer(layer)
        self._check_state(state)
        name = "z2" if layer == 0 else "z1"
        want = tuple(getattr(state, name).shape)
        if tuple(z.shape) != want:
            raise ValueError(f"z for layer {layer} must have shape {want}, got {tuple(z.shape)}")
        if not jnp.issubdtype(z.dtype, jnp.floating):
            raise ValueError(f"z must be floating point, got dtype {z.dtype} with shape {tuple(z.shape)}")
        return state.replace(**{name: jnp.asarray(z, jnp.float32)})

    def reconstruct(self, params: Params, state: GVAEState) -> jax.Array:
        """The decoded image after both layers: float [B, H, W, C] in 0..255 (clipped, not rounded)."""
        self._check_state(state)
        return _reconstruct_jit(self.config, params, state)

