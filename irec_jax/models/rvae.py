"""The bidirectional ResNet VAE ("RVAE") of Kingma et al. 2016 as used by HiLLoC / iREC.

Architecture (DESIGN.md §2), with ``C`` deterministic and ``Z`` stochastic
channels, all stochastic layers at ``H/2 x W/2``:

* stem: 5x5 stride-2 conv, image channels -> C;
* bottom-up, for each layer (bottom to top): ``a = conv3x3(elu(h))`` split
  into the bottom-up posterior terms (loc, raw scale: Z each) and C channels
  ``g``; ``h <- h + residual_scale * conv3x3(elu(g))``;
* top-down, starting from a learned ``h_top`` (so the top prior is learned),
  for each layer (top to bottom): ``conv3x3(elu(h))`` gives the prior (loc,
  raw scale), the top-down posterior terms (loc, raw scale) and C channels
  ``h_det``; the posterior adds the bottom-up and top-down terms (loc + loc,
  raw + raw); then ``h <- h + residual_scale * conv3x3(elu(concat(z, h_det)))``;
* head: ``elu`` then a 5x5 stride-2 transposed conv to the likelihood
  parameters (see :mod:`irec_jax.models.likelihoods`).

No IAF steps: posteriors are diagonal Gaussians, as iREC needs. Scales are
``min_scale + softplus(raw + softplus^-1(1))`` (:func:`positive_scale`), so
``scale > min_scale > 0`` everywhere.

Layer indices are in coding order: layer 0 is the top layer (coded first),
layer ``num_layers - 1`` the bottom one. Parameters of the layers are stacked
along a leading ``[num_layers]`` axis in that order, which lets the fused pass
``lax.scan`` over layers and lets each layer-by-layer function compile once
for all layers (the layer index is a traced int32). The fused scans are
fully unrolled: on XLA:CPU the gradient of a conv inside a rolled loop is
~20x slower than unrolled (measured here: 4.3 s vs 0.2 s for 4 layers).

Images are integer arrays ``[B, H, W, C_img]`` of levels 0..255 with even
``H`` and ``W``; everything else follows the pixel convention of
:mod:`irec_jax.models.likelihoods`.
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

from irec_jax.exact import intops
from irec_jax.models import likelihoods as lik
from irec_jax.models.interface import Gaussian, Shape, gaussian_kl, sample_gaussian
from irec_jax.models.rvae_config import RVAEConfig

Params = Any  # nested dict of arrays; see RVAE.init


# ----------------------------------------------------------------------------
# Typed records.


@struct.dataclass
class BottomUpActs:
    """Bottom-up posterior terms of every layer (coding order, layer 0 = top)."""

    loc: jax.Array  # [L, B, h, w, Z]
    raw_scale: jax.Array  # [L, B, h, w, Z]


@struct.dataclass
class TopDownState:
    """The top-down residual stream between stochastic layers."""

    h: jax.Array  # [B, h, w, C]


@struct.dataclass
class ForwardOutput:
    """Result of the fused pass (training)."""

    log_px: jax.Array  # [B], log p(x | z) in nats, summed over subpixels
    kl: jax.Array  # [L, B, Z], KL(q || p) in nats per layer and channel, summed over h, w
    z: jax.Array  # [L, B, h, w, Z], the posterior samples used
    likelihood: lik.PixelLikelihood  # pixel likelihood parameters, [B, H, W, C_img(, K)]


# ----------------------------------------------------------------------------
# Linen modules (used only through init / apply).


def _conv3(features: int, name: str) -> nn.Conv:
    return nn.Conv(features, (3, 3), padding="SAME", name=name)


class _Stem(nn.Module):
    cfg: RVAEConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, H, W, C_img] -> [B, H/2, W/2, C]
        return nn.Conv(self.cfg.det_channels, (5, 5), strides=(2, 2), padding="SAME", name="conv")(x)


class _UpLayer(nn.Module):
    cfg: RVAEConfig

    @nn.compact
    def __call__(self, h: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        z, c = self.cfg.stoch_channels, self.cfg.det_channels
        a = _conv3(2 * z + c, "conv1")(nn.elu(h))
        q_loc, q_raw, g = jnp.split(a, [z, 2 * z], axis=-1)
        g = _conv3(c, "conv2")(nn.elu(g))
        return h + self.cfg.residual_scale * g, (q_loc, q_raw)


class _DownLayer(nn.Module):
    cfg: RVAEConfig

    def setup(self):
        self.conv1 = _conv3(4 * self.cfg.stoch_channels + self.cfg.det_channels, "conv1")
        self.conv2 = _conv3(self.cfg.det_channels, "conv2")

    def features(self, h: jax.Array) -> tuple[jax.Array, ...]:
        """h [B,h,w,C] -> prior loc, prior raw, td-posterior loc, td-posterior raw ([..,Z]), h_det [..,C]."""
        z = self.cfg.stoch_channels
        a = self.conv1(nn.elu(h))
        return tuple(jnp.split(a, [z, 2 * z, 3 * z, 4 * z], axis=-1))

    def merge(self, h: jax.Array, h_det: jax.Array, z: jax.Array) -> jax.Array:
        """Residual update of the stream with the latent z [B,h,w,Z]."""
        g = self.conv2(nn.elu(jnp.concatenate([z, h_det], axis=-1)))
        return h + self.cfg.residual_scale * g

    def __call__(self, h: jax.Array, z: jax.Array) -> jax.Array:  # used by init only
        *_, h_det = self.features(h)
        return self.merge(h, h_det, z)


@functools.lru_cache(maxsize=None)
def deconv_taps(kernel_size: int = 5) -> np.ndarray:
    """int [2 (phase), 3 (offset dy + 1)] -> kernel tap ky of flax's 5x5 stride-2
    SAME ConvTranspose (-1: no tap), found by probing lax.conv_transpose with
    impulses (integer-valued, so the probe itself is exact). Cached: returns
    the same array object on every call (do not modify it)."""
    n = 8
    k = np.arange(1, kernel_size + 1, dtype=np.float32)  # tap t has value t + 1
    kern = np.zeros((kernel_size, 1, 1, 1), np.float32)
    kern[:, 0, 0, 0] = k
    taps = -np.ones((2, 3), np.int64)
    for src in range(2, n - 2):
        x = np.zeros((1, n, 1, 1), np.float32)
        x[0, src, 0, 0] = 1.0
        with jax.ensure_compile_time_eval():  # concrete even when first called inside a trace
            y = np.asarray(jax.lax.conv_transpose(jnp.asarray(x), jnp.asarray(kern), (2, 1), "SAME",
                                                  dimension_numbers=("NHWC", "HWIO", "NHWC")))[0, :, 0, 0]
        for out in np.nonzero(y)[0]:
            i, phase = divmod(int(out), 2)
            dy = src - i
            if not -1 <= dy <= 1:
                raise AssertionError(f"transposed conv tap outside the 3x3 window (dy={dy})")
            taps[phase, dy + 1] = int(round(float(y[out]))) - 1
    return taps


def subpixel_kernel(kernel):
    """flax ConvTranspose kernel [k, k, C, O] (numpy or JAX) -> [9 C, 4 O]: the
    5x5 stride-2 SAME transposed conv as a 3x3 conv to 4 O channels, rows
    ordered (dy, dx, c) and columns (phase y, phase x, o), zeros where no tap.
    The float head (``SubpixelDeconv``) and the integer head
    (``intops.deconv5x5s2``) both use this layout."""
    k, _, c, o = kernel.shape
    taps = deconv_taps(k)
    idx = np.where(taps >= 0, taps, k)  # [2, 3] taps into the kernel padded by one zero tap
    xp = np if isinstance(kernel, np.ndarray) else jnp
    padded = xp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))
    w = padded[idx[:, :, None, None], idx[None, None, :, :]]  # [py, dy, px, dx, C, O]
    return w.transpose(1, 3, 4, 0, 2, 5).reshape(9 * c, 4 * o)


class SubpixelDeconv(nn.Module):
    """flax's ``ConvTranspose(O, (5, 5), strides=(2, 2), padding="SAME")``,
    with the same parameters (kernel [5, 5, C, O], bias [O]) and initializers,
    computed as a 3x3 conv to 4 O channels and a depth-to-space: the same
    function (up to float rounding), and on XLA:CPU a gradient some 15x faster
    than the transposed conv's. The integer head (``intops.deconv5x5s2``) uses
    the same layout."""

    features: int
    kernel_size: int = 5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, h, w, C] -> [B, 2h, 2w, O]
        k, o = self.kernel_size, self.features
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, x.shape[-1], o))
        bias = self.param("bias", nn.initializers.zeros_init(), (o,))
        return subpixel_conv(x, subpixel_kernel(kernel).astype(x.dtype), bias)


def subpixel_conv(x: jax.Array, w: jax.Array, bias: jax.Array) -> jax.Array:
    """The 5x5 stride-2 transposed conv in float from its sub-pixel kernel: x [B, h, w, C],
    w [9 C, 4 O] (``subpixel_kernel``'s layout), bias [O] -> [B, 2h, 2w, O]."""
    c, o = x.shape[-1], bias.shape[0]
    y = jax.lax.conv_general_dilated(x, w.reshape(3, 3, c, 4 * o), (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    b, h, wd, _ = y.shape
    y = y.reshape(b, h, wd, 2, 2, o).transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * wd, o)
    return y + bias


def phase_major(a: jax.Array) -> jax.Array:
    """[B, 2h, 2w, C] -> [C, 4 B h w]: channels first, pixel (b, 2i + py, 2j + px) at
    position ((py 2 + px) B + b) h w + i w + j, the layout of :func:`subpixel_conv_phase_major`."""
    b, hh, ww, c = a.shape
    return a.reshape(b, hh // 2, 2, ww // 2, 2, c).transpose(5, 2, 4, 0, 1, 3).reshape(c, -1)


def subpixel_conv_phase_major(x: jax.Array, w: jax.Array, bias: jax.Array) -> jax.Array:
    """:func:`subpixel_conv` in the layout of :func:`phase_major`: x [B, h, w, C] -> [O, 4 B h w],
    one matmul of the weights with the 3x3 patches, the pixels on the minor axis. The encoder's
    posterior refinement computes its likelihood in this layout: on XLA:CPU a gradient step of
    16 images of 32x32 takes 30% less time than through [B, H, W, C, K] arrays."""
    c, o = x.shape[-1], bias.shape[0]
    w = w.reshape(9 * c, 4, o).transpose(0, 2, 1).reshape(9 * c, 4 * o)  # columns (o, py, px)
    y = jax.lax.dot_general(w, intops.patches3x3(x).reshape(-1, 9 * c), (((0,), (1,)), ((), ())))
    return y.reshape(o, -1) + bias[:, None]


def head_likelihood(cfg: RVAEConfig, out: jax.Array, raw_scale: jax.Array | None = None, *,
                    channels_first: bool = False) -> lik.PixelLikelihood:
    """The pixel likelihood [B, H, W, C_img(, K)] from the head's outputs ``out`` [B, H, W,
    head_channels] (float, network units); ``raw_scale`` [C_img] is the learned raw scale of a
    logistic likelihood without predicted scales. With ``channels_first``, ``out`` is
    [head_channels, ...] and the likelihood [C_img(, K), ...] (:func:`lik.log_prob`'s layouts)."""
    scale_fn = functools.partial(lik.positive_scale, floor=cfg.likelihood_min_scale,
                                 init=cfg.likelihood_init_scale)
    pixels = out.shape[1:] if channels_first else out.shape[:-1]

    def fields(a: jax.Array, *shape: int) -> jax.Array:  # split the head's channels into ``shape``
        return a.reshape(*shape, *pixels) if channels_first else a.reshape(*pixels, *shape)

    def channels(start: int, stop: int) -> jax.Array:
        return out[start:stop] if channels_first else out[..., start:stop]

    if cfg.likelihood in ("mixture", "coupled"):
        c, k = cfg.image_channels, cfg.num_mixtures
        logits, loc, raw = jnp.split(fields(channels(0, 3 * c * k), c, 3 * k), 3, axis=1 if channels_first else -1)
        if cfg.likelihood == "mixture":
            return lik.MixtureOfLogistics(logits=logits, loc=lik.to_levels(loc), scale=scale_fn(raw))
        coef = jnp.tanh(fields(channels(3 * c * k, cfg.head_channels), c * (c - 1) // 2, k))
        return lik.CoupledMixture(logits=logits, loc=lik.to_levels(loc), scale=scale_fn(raw), coef=coef)
    c = cfg.image_channels
    loc = channels(0, c)
    if cfg.predict_scale:
        raw = channels(c, 2 * c)
    else:
        raw = jnp.broadcast_to(raw_scale.reshape(c, *(1,) * len(pixels)) if channels_first else raw_scale, loc.shape)
    return lik.Logistic(loc=lik.to_levels(loc), scale=scale_fn(raw))


class _Head(nn.Module):
    cfg: RVAEConfig

    @nn.compact
    def __call__(self, h: jax.Array) -> lik.PixelLikelihood:  # [B,h,w,C] -> [B,2h,2w,C_img(,K)]
        cfg = self.cfg
        out = SubpixelDeconv(cfg.head_channels, name="deconv")(nn.elu(h))
        raw = None
        if cfg.likelihood == "logistic" and not cfg.predict_scale:
            raw = self.param("raw_scale", nn.initializers.zeros, (cfg.image_channels,))
        return head_likelihood(cfg, out, raw)


# ----------------------------------------------------------------------------
# Pure functions (jitted with the config static).


def _layer_params(stacked: Params, layer: jax.Array) -> Params:
    return jax.tree.map(lambda p: jax.lax.dynamic_index_in_dim(p, layer, keepdims=False), stacked)


def _prior_from(cfg: RVAEConfig, p_loc: jax.Array, p_raw: jax.Array) -> Gaussian:
    return Gaussian(p_loc, lik.positive_scale(p_raw, cfg.latent_min_scale))


def _posterior_from(cfg: RVAEConfig, r_loc, r_raw, q_loc, q_raw) -> Gaussian:
    return Gaussian(r_loc + q_loc, lik.positive_scale(r_raw + q_raw, cfg.latent_min_scale))


def _bottom_up(cfg: RVAEConfig, params: Params, x: jax.Array) -> BottomUpActs:
    h = _Stem(cfg).apply({"params": params["stem"]}, lik.to_network_input(x))

    def step(h, p):
        h, (q_loc, q_raw) = _UpLayer(cfg).apply({"params": p}, h)
        return h, (q_loc, q_raw)

    # Bottom layer (index L-1) first; outputs stay stacked in coding order.
    _, (q_loc, q_raw) = jax.lax.scan(step, h, params["up"], reverse=True, unroll=True)
    return BottomUpActs(loc=q_loc, raw_scale=q_raw)


def _initial_state(cfg: RVAEConfig, params: Params, latent_hw: tuple[int, int], batch: int) -> TopDownState:
    h = jnp.broadcast_to(params["top"]["h"], (batch, *latent_hw, cfg.det_channels))
    return TopDownState(h=h)


@functools.partial(jax.jit, static_argnums=0)
def _prior_jit(cfg: RVAEConfig, params: Params, state: TopDownState, layer: jax.Array) -> Gaussian:
    p_loc, p_raw, *_ = _DownLayer(cfg).apply(
        {"params": _layer_params(params["down"], layer)}, state.h, method="features")
    return _prior_from(cfg, p_loc, p_raw)


@functools.partial(jax.jit, static_argnums=0)
def _posterior_jit(cfg: RVAEConfig, params: Params, state: TopDownState, acts: BottomUpActs,
                   layer: jax.Array) -> Gaussian:
    _, _, r_loc, r_raw, _ = _DownLayer(cfg).apply(
        {"params": _layer_params(params["down"], layer)}, state.h, method="features")
    q_loc = jax.lax.dynamic_index_in_dim(acts.loc, layer, keepdims=False)
    q_raw = jax.lax.dynamic_index_in_dim(acts.raw_scale, layer, keepdims=False)
    return _posterior_from(cfg, r_loc, r_raw, q_loc, q_raw)


@functools.partial(jax.jit, static_argnums=0)
def _advance_jit(cfg: RVAEConfig, params: Params, state: TopDownState, z: jax.Array,
                 layer: jax.Array) -> TopDownState:
    module = _DownLayer(cfg)
    variables = {"params": _layer_params(params["down"], layer)}
    *_, h_det = module.apply(variables, state.h, method="features")
    return TopDownState(h=module.apply(variables, state.h, h_det, z, method="merge"))


@functools.partial(jax.jit, static_argnums=0)
def _likelihood_jit(cfg: RVAEConfig, params: Params, state: TopDownState) -> lik.PixelLikelihood:
    return _Head(cfg).apply({"params": params["head"]}, state.h)


_bottom_up_jit = jax.jit(_bottom_up, static_argnums=0)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _init_jit(cfg: RVAEConfig, key: jax.Array, image_shape: Shape) -> Params:
    # Kernel initializers draw from an "rbg" key derived from ``key``: XLA:CPU
    # compiles every threefry draw separately (~1-3 s each here), RngBitGenerator
    # in well under a second. Parameters stay a deterministic function of ``key``.
    b, h, w = image_shape[0], image_shape[1] // 2, image_shape[2] // 2
    rbg_key = jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl="rbg")
    k_stem, k_up, k_down, k_head = jax.random.split(rbg_key, 4)
    x = jnp.zeros(image_shape, jnp.float32)
    hs = jnp.zeros((b, h, w, cfg.det_channels), jnp.float32)
    zs = jnp.zeros((b, h, w, cfg.stoch_channels), jnp.float32)
    up_keys = jax.random.split(k_up, cfg.num_layers)
    down_keys = jax.random.split(k_down, cfg.num_layers)
    return {
        "stem": _Stem(cfg).init(k_stem, x)["params"],
        "up": jax.vmap(lambda k: _UpLayer(cfg).init(k, hs)["params"])(up_keys),
        "down": jax.vmap(lambda k: _DownLayer(cfg).init(k, hs, zs)["params"])(down_keys),
        "top": {"h": jnp.zeros((cfg.det_channels,), jnp.float32)},
        "head": _Head(cfg).init(k_head, hs)["params"],
    }


def _forward(cfg: RVAEConfig, params: Params, x: jax.Array, key: jax.Array) -> ForwardOutput:
    acts = _bottom_up(cfg, params, x)
    state = _initial_state(cfg, params, acts.loc.shape[2:4], x.shape[0])
    module = _DownLayer(cfg)
    # eps[l] = the standard normal of sample_gaussian(key, ., l), drawn for all
    # layers in one vmapped call (one threefry in the program: XLA:CPU takes
    # ~1.5 s to compile each unrolled one).
    # For threefry keys this equals the unbatched draw; rbg keys are not
    # vmap-invariant, so with them z differs from sample_gaussian's.
    unit = Gaussian(jnp.zeros_like(acts.loc[0]), jnp.ones_like(acts.loc[0]))
    eps = jax.vmap(lambda l: sample_gaussian(key, unit, l))(jnp.arange(cfg.num_layers))

    def step(h, xs):
        p, q_loc, q_raw, e = xs
        p_loc, p_raw, r_loc, r_raw, h_det = module.apply({"params": p}, h, method="features")
        prior = _prior_from(cfg, p_loc, p_raw)
        post = _posterior_from(cfg, r_loc, r_raw, q_loc, q_raw)
        z = post.loc + post.scale * e
        kl = jnp.sum(gaussian_kl(post, prior), axis=(1, 2))  # [B, Z]
        h = module.apply({"params": p}, h, h_det, z, method="merge")
        return h, (kl, z)

    h, (kl, z) = jax.lax.scan(step, state.h, (params["down"], acts.loc, acts.raw_scale, eps),
                              unroll=True)
    dist = _Head(cfg).apply({"params": params["head"]}, h)
    log_px = jnp.sum(lik.log_prob(dist, x), axis=(1, 2, 3))
    return ForwardOutput(log_px=log_px, kl=kl, z=z, likelihood=dist)


# ----------------------------------------------------------------------------
# The model object.


@dataclasses.dataclass(frozen=True)
class RVAE:
    """Bidirectional ResNet VAE as a set of pure functions of ``params``.

    Implements :class:`irec_jax.models.interface.HierarchicalVAE`. The object
    only holds the (hashable) config; parameters are an explicit pytree::

        {"stem": ..., "up": [L]-stacked, "down": [L]-stacked,
         "top": {"h": [C]}, "head": ...}

    All public methods validate their inputs (``ValueError`` quoting the
    offending shape) and call module-level jitted functions keyed on the
    config, so two ``RVAE`` objects with equal configs share compilations.
    """

    config: RVAEConfig

    @property
    def num_layers(self) -> int:
        return self.config.num_layers

    # -- shapes and validation -------------------------------------------------

    def check_images(self, x: jax.Array) -> None:
        """Raise ValueError unless ``x`` is an integer ``[B, H, W, C_img]`` array with even H, W."""
        shape = tuple(getattr(x, "shape", ()))
        dtype = getattr(x, "dtype", None)
        c = self.config.image_channels
        if len(shape) != 4 or shape[-1] != c or min(shape) < 1:
            raise ValueError(f"images must have shape [B, H, W, {c}], got shape {shape}")
        if shape[1] % 2 or shape[2] % 2:
            raise ValueError(f"image height and width must be even, got shape {shape}")
        if dtype is None or not jnp.issubdtype(dtype, jnp.integer):
            raise ValueError(f"images must be integer levels 0..255, got dtype {dtype} with shape {shape}")

    def latent_shape(self, image_shape: Shape, layer: int = 0) -> Shape:
        """``(B, H/2, W/2, Z)`` for any layer."""
        image_shape = tuple(image_shape)
        self._check_layer(layer)
        if len(image_shape) != 4 or image_shape[1] % 2 or image_shape[2] % 2:
            raise ValueError(f"image shape must be [B, H, W, C] with even H, W, got {image_shape}")
        b, hh, ww, _ = image_shape
        return (b, hh // 2, ww // 2, self.config.stoch_channels)

    def state_shape(self, image_shape: Shape) -> Shape:
        """``(B, H/2, W/2, C)`` of ``TopDownState.h``."""
        b, h, w, _ = self.latent_shape(image_shape)
        return (b, h, w, self.config.det_channels)

    def _check_layer(self, layer: int) -> None:
        if (isinstance(layer, bool) or not isinstance(layer, (int, np.integer))
                or not 0 <= layer < self.config.num_layers):
            raise ValueError(f"layer must be an int in [0, {self.config.num_layers}), got {layer!r}")

    def _check_state(self, state: TopDownState) -> None:
        shape = tuple(state.h.shape)
        if len(shape) != 4 or shape[-1] != self.config.det_channels:
            raise ValueError(f"state.h must have shape [B, h, w, {self.config.det_channels}], got {shape}")

    # -- parameters ------------------------------------------------------------

    def init(self, key: jax.Array, image_shape: Shape = (1, 32, 32, 3)) -> Params:
        """Random parameters (pure, jitted; shapes do not depend on ``image_shape``)."""
        self.latent_shape(image_shape)
        return _init_jit(self.config, key, tuple(int(d) for d in image_shape))

    def param_count(self, params: Params | None = None) -> int:
        """Number of scalar parameters (from ``params``, or abstractly via eval_shape)."""
        if params is None:
            params = jax.eval_shape(self.init, jax.random.key(0))
        return sum(int(p.size) for p in jax.tree.leaves(params))

    # -- training --------------------------------------------------------------

    def forward(self, params: Params, x: jax.Array, key: jax.Array) -> ForwardOutput:
        """The fused pass: posterior samples z_l = sample_gaussian(key, q_l, l) for all layers.

        (Exactly so for the default threefry keys; other key types give valid
        but different samples.)

        Not jitted by itself (wrap the loss / train step in ``jax.jit``).
        """
        self.check_images(x)
        return _forward(self.config, params, x, key)

    # -- layer-by-layer coding interface -------------------------------------

    def bottom_up(self, params: Params, x: jax.Array) -> BottomUpActs:
        """Encoder only: bottom-up terms ``[L, B, h, w, Z]`` from images ``x`` [B,H,W,C_img]."""
        self.check_images(x)
        return _bottom_up_jit(self.config, params, x)

    def initial_state(self, params: Params, image_shape: Shape) -> TopDownState:
        """State before layer 0: the learned ``h_top`` broadcast to ``[B, h, w, C]``."""
        b, h, w, _ = self.latent_shape(image_shape)
        return _initial_state(self.config, params, (h, w), b)

    def prior(self, params: Params, state: TopDownState, layer: int) -> Gaussian:
        """Prior N(loc, scale²) of layer ``layer``: [B, h, w, Z] each, scale > latent_min_scale."""
        self._check_layer(layer)
        self._check_state(state)
        return _prior_jit(self.config, params, state, jnp.int32(int(layer)))

    def posterior(self, params: Params, state: TopDownState, acts: BottomUpActs, layer: int) -> Gaussian:
        """Posterior of layer ``layer`` from the top-down state and bottom-up acts: [B, h, w, Z]."""
        self._check_layer(layer)
        self._check_state(state)
        want = (self.config.num_layers, *state.h.shape[:3], self.config.stoch_channels)
        if tuple(acts.loc.shape) != want or tuple(acts.raw_scale.shape) != want:
            raise ValueError(f"bottom-up acts must have shape {want}, got {tuple(acts.loc.shape)}")
        return _posterior_jit(self.config, params, state, acts, jnp.int32(int(layer)))

    def advance(self, params: Params, state: TopDownState, z: jax.Array, layer: int) -> TopDownState:
        """Feed latent ``z`` [B, h, w, Z] of layer ``layer`` into the top-down stream."""
        self._check_layer(layer)
        self._check_state(state)
        want = (*state.h.shape[:3], self.config.stoch_channels)
        if tuple(z.shape) != want:
            raise ValueError(f"z for layer {layer} must have shape {want}, got {tuple(z.shape)}")
        if not jnp.issubdtype(z.dtype, jnp.floating):
            raise ValueError(f"z must be floating point, got dtype {z.dtype} with shape {tuple(z.shape)}")
        return _advance_jit(self.config, params, state, z.astype(jnp.float32), jnp.int32(int(layer)))

    def likelihood(self, params: Params, state: TopDownState) -> lik.PixelLikelihood:
        """Pixel likelihood after the last layer: [B, H, W, C_img(, K)] in 8-bit level units."""
        self._check_state(state)
        return _likelihood_jit(self.config, params, state)
