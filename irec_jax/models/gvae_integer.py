"""The lossy GVAE with an integer decoder path: what the decoder computes is exact.

The decoder of a lossy file repeats the level-1 prior (hyper-synthesis of
z2) and the synthesis of z1 into pixels; both must give the same bits on
every CPU, GPU and TPU. Here they are integer arithmetic
(:mod:`irec_jax.exact.intops`), in activation units 2^-10 like the RVAE's
integer path (:mod:`irec_jax.models.integer`); the encoder's half (analysis,
hyper-analysis, posteriors) stays float.

Integer form of a trained float :class:`~irec_jax.models.gvae.GVAE`
(:func:`quantize`, deterministic: IEEE-exact float64 operations and Decimal
tables):

* every 5x5 stride-2 transposed conv (hyper-synthesis and synthesis) in
  sub-pixel layout, and the hyper-synthesis' 3x3 head: int8 weights per
  output channel with a (mant, shift) rescale and an integer bias
  (``integer.quantize_dense``);
* IGDN: gamma in units 2^-16 (below 256), beta in units 2^-20
  (``intops.inverse_gdn``);
* the top prior's location rounded to 2^-10, every scale by the latent scale
  tables indexed by the raw output rounded to 2^-6 (the RVAE's
  ``prior_gaussian``);
* pixels: round(127.5 + 127.5 u) clipped to 0..255, u the synthesis output.

Interface: the layer-by-layer one of :mod:`irec_jax.models.interface` with
``num_layers = 2`` (layer 0 = z2, layer 1 = z1) and ``reconstruct(params,
state) -> uint8 [B, H, W, C]`` in place of a pixel likelihood.

Parameters::

    {"encoder": {"analysis", "hyper_analysis"}       float32, the float GVAE's encoder half
     "top": {"loc", "raw": int32 [M2]},
     "hyper_synthesis": {"deconv0" | "deconv1": {"w": int8 [9 Cin, 4 O], "mant", "shift", "bias": int32 [O]},
                         "head": {"w": int8 [9 H, 2 M], ...}},
     "synthesis": {"deconv0".."deconv3": {...}, "igdn0".."igdn2": {"gamma": int32 [N, N], "beta": int32 [N]}},
     "tables": {"latent_mant", "latent_shift": int32 [RAW_COUNT]}}
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from irec_jax.exact import intops
from irec_jax.exact.units import ACT_BITS, GDN_GAMMA_BITS, GDN_NORM_BITS, RAW_COUNT, RAW_MIN, RAW_STEP_BITS
from irec_jax.models import gvae, integer, refine, rvae
from irec_jax.models.gvae_config import GVAEConfig
from irec_jax.models.interface import Gaussian, Shape, check_next_layer, gaussian_kl

Params = Any
_ACT = float(1 << ACT_BITS)
_Z_LIMIT = (1 << 15) - 1  # latents enter the transposed convs clipped to +-32 (2^-10 units)


@struct.dataclass
class IntGVAEState:
    """The latents decoded so far, on the 2^-10 grid (zeros before their layer)."""

    z2: jax.Array  # int32 [B, h2, w2, M2], units 2^-ACT_BITS
    z1: jax.Array  # int32 [B, h1, w1, M]
    image_hw: tuple[int, int] = struct.field(pytree_node=False)
    layer: int = struct.field(pytree_node=False, default=0)  # the next layer to code (2: done)


# ----------------------------------------------------------------------------
# Conversion from float parameters.


def _deconv(p: dict) -> dict[str, np.ndarray]:
    kernel = np.asarray(p["kernel"], np.float64)  # [5, 5, Cin, O]
    if kernel.shape[:2] != (5, 5):
        raise ValueError(f"expected a 5x5 transposed-conv kernel, got {kernel.shape}")
    out = integer.quantize_dense(kernel.reshape(-1, kernel.shape[-1]), p["bias"], 1.0, kernel.shape[2])
    out["w"] = rvae.subpixel_kernel(out["w"].reshape(kernel.shape)).astype(np.int8)
    return out


def _conv3(p: dict) -> dict[str, np.ndarray]:
    kernel = np.asarray(p["kernel"], np.float64)  # [3, 3, Cin, O]
    if kernel.shape[:2] != (3, 3):
        raise ValueError(f"expected a 3x3 conv kernel, got {kernel.shape}")
    return integer.quantize_dense(kernel.reshape(-1, kernel.shape[-1]), p["bias"], 1.0, kernel.shape[2])


def _igdn(p: dict) -> dict[str, np.ndarray]:
    from irec_jax.models.gdn import gdn_coefficients
    beta, gamma = (np.asarray(a, np.float64) for a in gdn_coefficients(jnp.asarray(p["beta"], jnp.float32),
                                                                        jnp.asarray(p["gamma"], jnp.float32)))
    if gamma.max(initial=0.0) >= 256.0 or beta.max(initial=0.0) >= 1 << (30 - GDN_NORM_BITS):
        raise ValueError(f"IGDN coefficients out of the integer range (max gamma {gamma.max():.3g} must be < 256, "
                         f"max beta {beta.max():.3g} < {1 << (30 - GDN_NORM_BITS)})")
    return {"gamma": np.round(gamma.T * (1 << GDN_GAMMA_BITS)).astype(np.int32),  # [j, i]: input j, output i
            "beta": np.round(beta * (1 << GDN_NORM_BITS)).astype(np.int32)}


def quantize(config: GVAEConfig, params: Params) -> Params:
    """The integer form of a float GVAE's parameters (deterministic on every machine).
    Raises ValueError for weights the integer path cannot represent."""
    from irec_jax.exact import tables

    f32 = lambda tree: jax.tree.map(lambda a: np.asarray(a, np.float32), tree)  # noqa: E731
    hs, syn = params["hyper_synthesis"], params["synthesis"]
    mant, shift, _ = tables.scale_table(repr(float(config.latent_min_scale)), "1.0", RAW_MIN, RAW_COUNT,
                                        RAW_STEP_BITS)
    return {
        "encoder": {"analysis": f32(params["analysis"]), "hyper_analysis": f32(params["hyper_analysis"])},
        "top": {k: np.round(np.asarray(params["top"][n], np.float64) * _ACT).astype(np.int32)
                for k, n in (("loc", "loc"), ("raw", "raw_scale"))},
        "hyper_synthesis": {"deconv0": _deconv(hs["deconv0"]), "deconv1": _deconv(hs["deconv1"]),
                            "head": _conv3(hs["head"])},
        "synthesis": {**{f"deconv{i}": _deconv(syn[f"deconv{i}"]) for i in range(4)},
                      **{f"igdn{i}": _igdn(syn[f"igdn{i}"]) for i in range(3)}},
        "tables": {"latent_mant": np.asarray(mant, np.int32), "latent_shift": np.asarray(shift, np.int32)},
    }


def param_shapes(config: GVAEConfig) -> dict:
    """Expected {path: (shape, dtype)} of the integer params (for validating loaded files)."""
    n, m, h, m2, c = (config.transform_channels, config.latent_channels, config.hyper_channels,
                      config.hyper_latent_channels, config.image_channels)
    enc = jax.eval_shape(lambda: gvae.GVAE(config).init(jax.random.key(0)))
    out = {f"encoder/{k}": (tuple(v.shape), "float32")
           for k, v in integer.flat({"analysis": enc["analysis"], "hyper_analysis": enc["hyper_analysis"]}).items()}
    out["top/loc"] = out["top/raw"] = ((m2,), "int32")

    def dense(prefix: str, k: int, o: int, cols: int) -> None:
        out[f"{prefix}/w"] = ((k, cols), "int8")
        out.update({f"{prefix}/{name}": ((o,), "int32") for name in ("mant", "shift", "bias")})

    dense("hyper_synthesis/deconv0", 9 * m2, h, 4 * h)
    dense("hyper_synthesis/deconv1", 9 * h, h, 4 * h)
    dense("hyper_synthesis/head", 9 * h, 2 * m, 2 * m)
    for i, (cin, o) in enumerate(((m, n), (n, n), (n, n), (n, c))):
        dense(f"synthesis/deconv{i}", 9 * cin, o, 4 * o)
    for i in range(3):
        out[f"synthesis/igdn{i}/gamma"] = ((n, n), "int32")
        out[f"synthesis/igdn{i}/beta"] = ((n,), "int32")
    out["tables/latent_mant"] = out["tables/latent_shift"] = ((RAW_COUNT,), "int32")
    return out


def check_params(config: GVAEConfig, params: Params) -> None:
    """ValueError naming the first parameter whose shape, dtype or range is wrong."""
    flat = integer.check_shapes(param_shapes(config), params)
    n, m, h, m2 = (config.transform_channels, config.latent_channels, config.hyper_channels,
                   config.hyper_latent_channels)
    layers = [("hyper_synthesis/deconv0", m2), ("hyper_synthesis/deconv1", h), ("hyper_synthesis/head", h),
              ("synthesis/deconv0", m)] + [(f"synthesis/deconv{i}", n) for i in (1, 2, 3)]
    for name, cin in layers:
        integer.check_dense(flat, name, cin)
    for i in range(3):
        integer.check_range(flat, f"synthesis/igdn{i}/gamma", 0, (1 << 24) - 1)
        integer.check_range(flat, f"synthesis/igdn{i}/beta", 0, (1 << 30) - 1)
    if n > 258:
        raise ValueError(f"IGDN over {n} channels is not exact (at most 258)")
    integer.check_range(flat, "top/loc", -(1 << 20), 1 << 20)
    integer.check_range(flat, "top/raw", -(1 << 29), 1 << 29)
    integer.check_tables(flat)


# ----------------------------------------------------------------------------
# The integer decoder path (jitted, config static).


def _deconv_apply(p: Params, x: jax.Array) -> jax.Array:
    return intops.deconv5x5s2(x, p["w"].astype(jnp.float32), p["mant"], p["shift"], p["bias"])


@functools.partial(jax.jit, static_argnums=(0, 2))
def _top_prior_jit(cfg: GVAEConfig, params: Params, shape: tuple[int, ...]) -> Gaussian:
    top = params["top"]
    loc, raw = (jnp.broadcast_to(jnp.asarray(a, jnp.int32), shape) for a in (top["loc"], top["raw"]))
    return integer.prior_gaussian(loc, raw, params["tables"])


@functools.partial(jax.jit, static_argnums=0)
def _level1_prior_jit(cfg: GVAEConfig, params: Params, z2: jax.Array) -> Gaussian:
    p = params["hyper_synthesis"]
    h = jnp.maximum(_deconv_apply(p["deconv0"], z2), 0)
    h = jnp.maximum(_deconv_apply(p["deconv1"], h), 0)
    head = p["head"]
    out = intops.conv3x3(h, head["w"].astype(jnp.float32), head["mant"], head["shift"], head["bias"])
    m = cfg.latent_channels
    return integer.prior_gaussian(out[..., :m], out[..., m:], params["tables"])


@functools.partial(jax.jit, static_argnums=(0, 3))
def _reconstruct_jit(cfg: GVAEConfig, params: Params, z1: jax.Array, image_hw: tuple[int, int]) -> jax.Array:
    p = params["synthesis"]
    h = z1
    for i in range(3):
        g = p[f"igdn{i}"]
        h = intops.inverse_gdn(_deconv_apply(p[f"deconv{i}"], h), g["gamma"], g["beta"])
    u = _deconv_apply(p["deconv3"], h)[:, :image_hw[0], :image_hw[1]]
    # 127.5 + 127.5 u/2^10 = (255 (u + 2^10)) / 2^11, rounded half up, then clipped.
    levels = 255 * (jnp.clip(u, -(1 << 20), 1 << 20) + (1 << ACT_BITS))
    return jnp.clip(intops.round_shift(levels, ACT_BITS + 1), 0, 255).astype(jnp.uint8)


def _to_grid(z: jax.Array) -> jax.Array:
    """Float latents -> int32 on the 2^-10 grid, clipped to +-(2^15 - 1): what the network is fed."""
    return jnp.clip(jnp.round(jnp.asarray(z, jnp.float32) * _ACT), -_Z_LIMIT, _Z_LIMIT).astype(jnp.int32)


def _level1_prior_float(cfg: GVAEConfig, params: Params, z2: jax.Array) -> Gaussian:
    """Encoder only: the hyper-synthesis in float32 with the integer weights, z2 [B, h2, w2, M2] in real
    units -> the level-1 prior; the scale by the float model's formula, not the tables (differentiable)."""
    p = params["hyper_synthesis"]
    h = jnp.maximum(integer.dequantized_deconv(p["deconv0"], z2), 0.0)
    h = jnp.maximum(integer.dequantized_deconv(p["deconv1"], h), 0.0)
    out = integer.dequantized_conv3x3(p["head"], h)
    m = cfg.latent_channels
    return Gaussian(out[..., :m], gvae._scale(cfg, out[..., m:]))


def _synthesis_float(cfg: GVAEConfig, params: Params, z1: jax.Array, image_hw: tuple[int, int]) -> jax.Array:
    """Encoder only: the synthesis in float32 with the integer weights, z1 [K, h1, w1, M] in real units ->
    float levels [K, H, W, C] clipped to 0..255 (differentiable)."""
    p = params["synthesis"]
    h = z1
    for i in range(3):
        g = p[f"igdn{i}"]
        h = integer.dequantized_deconv(p[f"deconv{i}"], h)
        gamma = g["gamma"].astype(jnp.float32) / (1 << GDN_GAMMA_BITS)
        h = h * jnp.sqrt(g["beta"].astype(jnp.float32) / (1 << GDN_NORM_BITS) + jnp.square(h) @ gamma)
    u = integer.dequantized_deconv(p["deconv3"], h)[:, :image_hw[0], :image_hw[1]]
    return jnp.clip(127.5 + 127.5 * u, 0.0, 255.0)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _preview_jit(cfg: GVAEConfig, params: Params, z1: jax.Array, image_hw: tuple[int, int]) -> jax.Array:
    return _synthesis_float(cfg, params, z1.astype(jnp.float32) / _ACT, image_hw)


def _refine_loss(cfg: GVAEConfig, params: Params, x: jax.Array, top: Gaussian, distortion: str, beta: jax.Array,
                 theta: tuple, key: jax.Array) -> jax.Array:
    """beta D + (KL(q2 || top) + KL(q1 || p(z1 | z2))) / (H W ln 2) of one reparameterized sample, as in
    training; theta = ((loc2, log scale2), (loc1, log scale1))."""
    from irec_jax import metrics  # the owner of the distortion measures

    (m2, l2), (m1, l1) = theta
    k2, k1 = jax.random.split(key)
    q2, q1 = Gaussian(m2, jnp.exp(l2)), Gaussian(m1, jnp.exp(l1))
    z2 = q2.loc + q2.scale * jax.random.normal(k2, m2.shape)
    z1 = q1.loc + q1.scale * jax.random.normal(k1, m1.shape)
    kl = jnp.sum(gaussian_kl(q2, top)) + jnp.sum(gaussian_kl(q1, _level1_prior_float(cfg, params, z2)))
    recon = _synthesis_float(cfg, params, z1, tuple(x.shape[1:3]))
    return beta * metrics.distortion(distortion, x, recon) + kl / (x.shape[1] * x.shape[2] * math.log(2.0))


@functools.partial(jax.jit, static_argnums=(0, 4), static_argnames="schedule")
def _refine_step_jit(cfg: GVAEConfig, params: Params, x: jax.Array, top: Gaussian, distortion: str,
                     beta: jax.Array, key: jax.Array, theta: tuple, opt_state: Any, i: jax.Array,
                     lr: jax.Array, *, schedule: refine.Schedule) -> tuple:
    return refine.adam_step(functools.partial(_refine_loss, cfg, params, x, top, distortion, beta), schedule,
                            theta, opt_state, jax.random.fold_in(key, i), lr)


def _refine_rest_loss(cfg: GVAEConfig, params: Params, x: jax.Array, prior: Gaussian, fixed: jax.Array,
                      z_fixed: jax.Array, distortion: str, beta: jax.Array, theta: tuple, key: jax.Array) -> jax.Array:
    """``_refine_loss`` of q(z1) alone, z2 decoded (``prior`` its level-1 prior): the dims where ``fixed``
    (bool [1, h1, w1, M]) are ``z_fixed``, the rest one sample of N(loc, exp(log scale)^2); theta =
    (loc, log scale) [1, h1, w1, M]; the KL counts the rest only."""
    from irec_jax import metrics  # the owner of the distortion measures

    m, ls = theta
    q = Gaussian(m, jnp.exp(ls))
    z1 = jnp.where(fixed, z_fixed, q.loc + q.scale * jax.random.normal(key, m.shape))
    kl = jnp.sum(jnp.where(fixed, 0.0, gaussian_kl(q, prior)))
    recon = _synthesis_float(cfg, params, z1, tuple(x.shape[1:3]))
    return beta * metrics.distortion(distortion, x, recon) + kl / (x.shape[1] * x.shape[2] * math.log(2.0))


@functools.partial(jax.jit, static_argnums=(0, 6), static_argnames="schedule")
def _refine_rest_step_jit(cfg: GVAEConfig, params: Params, x: jax.Array, prior: Gaussian, fixed: jax.Array,
                          z_fixed: jax.Array, distortion: str, beta: jax.Array, key: jax.Array, theta: tuple,
                          opt_state: Any, i: jax.Array, lr: jax.Array, *, schedule: refine.Schedule) -> tuple:
    loss = functools.partial(_refine_rest_loss, cfg, params, x, prior, fixed, z_fixed, distortion, beta)
    return refine.adam_step(loss, schedule, theta, opt_state, jax.random.fold_in(key, i), lr)


@dataclasses.dataclass(frozen=True)
class IntegerGVAE:
    """The GVAE of ``config`` with the integer decoder path (see module docstring).

    ``bottom_up`` and ``posterior`` (encoder only) are float; ``initial_state``,
    ``prior``, ``advance`` and ``reconstruct`` are exact integer arithmetic.
    """

    config: GVAEConfig

    @functools.cached_property
    def _float(self) -> gvae.GVAE:
        return gvae.GVAE(self.config)

    @property
    def num_layers(self) -> int:
        return gvae.NUM_LAYERS

    def check_images(self, x: jax.Array) -> None:
        self._float.check_images(x)

    def latent_shape(self, image_shape: Shape, layer: int = 0) -> Shape:
        return self._float.latent_shape(image_shape, layer)

    def _check(self, state: IntGVAEState, layer: int | None = None) -> None:
        if layer is not None:
            self._float._check_layer(layer)
            check_next_layer(state.layer, layer)
        want = self._float.latent_shapes((state.z2.shape[0], *state.image_hw, self.config.image_channels))
        got = (tuple(state.z2.shape), tuple(state.z1.shape))
        if got != want or state.z1.dtype != jnp.int32:
            raise ValueError(f"state latents must be int32 of shapes {want}, got {state.z1.dtype} {got}")

    def bottom_up(self, params: Params, x: jax.Array) -> gvae.GVAEActs:
        """Encoder only (float): posterior terms of images x [B, H, W, C]."""
        return self._float.bottom_up(params["encoder"], x)

    def initial_state(self, params: Params, image_shape: Shape) -> IntGVAEState:
        """Zero latents for images of ``image_shape`` [B, H, W, C]."""
        s2, s1 = self._float.latent_shapes(image_shape)
        return IntGVAEState(z2=jnp.zeros(s2, jnp.int32), z1=jnp.zeros(s1, jnp.int32),
                            image_hw=(int(image_shape[1]), int(image_shape[2])), layer=0)

    def prior(self, params: Params, state: IntGVAEState, layer: int) -> Gaussian:
        """Layer 0: the top prior; layer 1: the hyper-synthesis of z2. Float32 values that are exactly
        loc_int 2^-10 and mant 2^-shift."""
        self._check(state, layer)
        if layer == 0:
            return _top_prior_jit(self.config, params, tuple(state.z2.shape))
        return _level1_prior_jit(self.config, params, state.z2)

    def posterior(self, params: Params, state: IntGVAEState, acts: gvae.GVAEActs, layer: int) -> Gaussian:
        """Encoder only (float): the posterior of ``layer`` from the encoder's acts."""
        self._check(state, layer)
        return gvae._posterior_jit(self.config, acts, int(layer))

    def advance(self, params: Params, state: IntGVAEState, z: jax.Array, layer: int) -> IntGVAEState:
        """Feed latent z (float, rounded to the 2^-10 grid and clipped to +-32) of ``layer``."""
        self._check(state, layer)
        name = "z2" if layer == 0 else "z1"
        want = tuple(getattr(state, name).shape)
        if tuple(z.shape) != want:
            raise ValueError(f"z for layer {layer} must have shape {want}, got {tuple(z.shape)}")
        return state.replace(**{name: _to_grid(z), "layer": layer + 1})

    def preview(self, params: Params, z1: jax.Array, image_hw: tuple[int, int]) -> jax.Array:
        """Encoder only: the synthesis of candidate latents z1 [K, h1, w1, M] (float, put on the grid
        as ``advance`` does; or int32 already on it) in float32 with the integer weights: float
        [K, H, W, C] levels, within a level or so of ``reconstruct`` and many times faster; for
        ranking candidates, never for what a file decodes to."""
        z1 = jnp.asarray(z1)
        return _preview_jit(self.config, params, z1 if z1.dtype == jnp.int32 else _to_grid(z1), tuple(image_hw))

    def refine(self, params: Params, x: jax.Array, acts: gvae.GVAEActs, *, beta: float,
               distortion: str = "mse", steps: int, key: jax.Array,
               on_step: Callable[[], None] | None = None) -> tuple[Gaussian, Gaussian]:
        """Encoder only: the posteriors (q(z2), q(z1)) of image x [1, H, W, C] (``acts`` its
        ``bottom_up``, maybe of an edge-padded copy) refined for this image.

        ``steps`` Adam steps (``refine.LOSSY``) on their means and log scales lower the model's training
        loss for this one image, beta D + (KL(q2 || top prior) + KL(q1 || p(z1 | z2))) / (H W ln 2), one
        reparameterized sample per step (``key``), through float32 copies of the integer hyper-synthesis
        and synthesis (``_level1_prior_float``, ``_synthesis_float``). The amortized encoder is a
        compromise over all images; this closes part of its gap. Nothing the decoder computes changes:
        the coder codes whatever posterior it is given."""
        q2, q1 = (gvae._posterior_jit(self.config, acts, layer) for layer in range(self.num_layers))
        top = _top_prior_jit(self.config, params, tuple(q2.loc.shape))
        x = jnp.asarray(x, jnp.float32)
        theta = tuple((q.loc, jnp.log(q.scale)) for q in (q2, q1))
        step = functools.partial(_refine_step_jit, self.config, params, x, top, str(distortion), jnp.float32(beta),
                                 key)
        theta = refine.run(step, refine.LOSSY, theta, steps, on_step)
        return tuple(Gaussian(m, jnp.exp(ls)) for m, ls in theta)

    def refine_rest(self, params: Params, x: jax.Array, state: IntGVAEState, q1: Gaussian, fixed: jax.Array,
                    z_fixed: jax.Array, *, beta: float, distortion: str = "mse", steps: int, key: jax.Array,
                    on_step: Callable[[], None] | None = None,
                    schedule: "refine.Schedule | None" = None) -> Gaussian:
        """Encoder only: q(z1) refined again for image x [1, H, W, C] once some of z1 is coded.

        ``state`` is after z2 (its level-1 prior is the one z1 is coded against); the dims where
        ``fixed`` (bool [1, h1, w1, M]) are already coded as ``z_fixed`` (float, same shape); ``q1`` the
        posterior so far. ``steps`` Adam steps (``schedule``; by default ``refine.FEEDBACK``) on the means
        and log scales of the other dims lower beta D + KL(q1 || p(z1 | z2)) of theirs / (H W ln 2) with
        the coded values in place, so that the dims still to code make up for the coded ones' error (which
        a sample of q1 would not). The fixed dims of the result are ``q1``'s."""
        self._check(state, 1)
        p = self.prior(params, state, 1)
        fixed, z_fixed = jnp.asarray(fixed, bool), jnp.asarray(z_fixed, jnp.float32)
        theta = (jnp.asarray(q1.loc, jnp.float32), jnp.log(jnp.asarray(q1.scale, jnp.float32)))
        step = functools.partial(_refine_rest_step_jit, self.config, params, jnp.asarray(x, jnp.float32),
                                 Gaussian(p.loc.astype(jnp.float32), p.scale.astype(jnp.float32)), fixed, z_fixed,
                                 str(distortion), jnp.float32(beta), key)
        m, ls = refine.run(step, schedule or refine.FEEDBACK, theta, steps, on_step)
        return Gaussian(jnp.where(fixed, q1.loc, m), jnp.where(fixed, q1.scale, jnp.exp(ls)))

    def reconstruct(self, params: Params, state: IntGVAEState) -> jax.Array:
        """The decoded image after both layers: uint8 [B, H, W, C]."""
        self._check(state)
        if state.layer != self.num_layers:
            raise ValueError(f"reconstruct needs both layers decoded, this state is before layer {state.layer}")
        return _reconstruct_jit(self.config, params, state.z1, state.image_hw)
