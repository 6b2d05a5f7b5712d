"""The RVAE with an integer generative path: what the decoder computes is exact.

The decoder repeats the generative half of the model (top-down stream,
priors, pixel likelihood) and must get the same bits as the encoder on any
CPU, GPU or TPU. Here that half is integer arithmetic
(:mod:`irec_jax.exact.intops`); the encoder-only half (bottom-up pass,
posteriors) stays float.

Integer form of a trained float RVAE (:func:`quantize`, deterministic: only
IEEE-exact float64 operations and Decimal tables):

* every top-down conv and the head's transposed conv: int8 weights per output
  channel (w_q = round(127 w / max|w_c|)), a rescale mant * 2^-shift
  (15-bit mantissa) folding max|w_c| / 127 and the residual scale 0.1, and an
  integer bias, all in activation units 2^-10 (``ACT_BITS``);
* ELU by table; the learned top state rounded to 2^-10;
* scales by tables indexed by the raw output rounded to 2^-6 over [-20, 20):
  latent scales as (mant, shift) with mant in [2^14, 2^15), pixel scales as
  1/s in units 2^-16, computed in Decimal from the float model's formula
  ``floor + init * softplus(raw + softplus^-1(1))``.

Outputs to the rest of the codec:

* ``prior``: a :class:`Gaussian` of float32 values that are exactly the
  integers loc * 2^-10 and mant * 2^-shift (the coder recovers them exactly);
* ``advance`` takes float32 latents on the 2^-10 grid (rounded if not);
* ``likelihood``: a :class:`QuantizedLogistic` (integer loc in 2^-11 levels,
  integer 1/scale in 2^-16 per level), or for ``likelihood = "coupled"`` a
  :class:`QuantizedMixture` (per component also an integer weight from the
  model's exp table of the logit gap, and coupling coefficients from its
  tanh table, 2^-14), that the entropy layer turns into frequency tables with
  integer arithmetic only.

Parameters (``params``)::

    {"encoder": {"stem", "up"}            float32, the float RVAE's bottom-up half
     "top": {"h": int32 [C]},
     "down": {"conv1" | "conv2": {"w": int8 [L, 9 Cin, O], "mant", "shift", "bias": int32 [L, O]}},
     "head": {"w": int8 [9 C, 4 O], "mant", "shift", "bias": int32 [O](, "raw": int32 [C_img])},
     "tables": {"latent_mant", "latent_shift", "pixel_inv"(, "coef"): int32 [RAW_COUNT]
                (, "mix_weight": int32 [MIX_COUNT])}}
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from irec_jax.exact import intops
from irec_jax.exact.units import (ACT_BITS, COEF_BITS, MIX_COUNT, MIX_STEP_BITS, MIX_WEIGHT_BITS, RAW_COUNT,
                                  RAW_MIN, RAW_STEP_BITS)
from irec_jax.models import likelihoods as lik
from irec_jax.models import refine, rvae
from irec_jax.models.interface import Gaussian, Shape, check_next_layer, gaussian_kl

Params = Any
_ACT = float(1 << ACT_BITS)
_LOC_LIMIT = 1 << 20  # prior locations are clipped to +-1024 (units 2^-10)
_STATE_LIMIT = 1 << 29  # the top-down state saturates at +-2^29 (units 2^-10)


@struct.dataclass
class IntState:
    """The integer top-down stream before stochastic layer ``layer``, with
    that layer's first conv already applied: ``prior``, ``posterior`` and
    ``advance`` of the layer all read ``feats`` instead of recomputing it
    (the conv is a third of the generative path's work)."""

    h: jax.Array  # int32 [B, h, w, C], units 2^-ACT_BITS
    feats: jax.Array  # int32 [B, h, w, 4 Z + C]: conv1 of ``layer`` on h ([B, h, w, 0] after the last layer)
    layer: int = struct.field(pytree_node=False, default=0)  # the next layer to code (num_layers: done)


# ----------------------------------------------------------------------------
# Conversion from float parameters.


def min_shift(in_channels: int) -> int:
    """The smallest rescale shift a 3x3 layer over ``in_channels`` may use:
    17 + ceil(log2(chunks)), so that its n chunks' rescaled sums (each below
    2^(46 - shift)) stay below 2^29; with a bias and a state below 2^29 no
    int32 of the decoder path can overflow."""
    n = len(intops.chunks(in_channels))
    return max(intops.MIN_SHIFT, 16 + (2 * n - 1).bit_length())


def _rescale(scale: np.ndarray, in_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """float64 scale factors [...] -> (mant, shift) int32 with mant * 2^-shift
    = scale to 15 significant bits (frexp and round: exact IEEE operations)."""
    frac, exp = np.frexp(scale)
    mant = np.round(frac * (1 << 15)).astype(np.int64)  # in [2^14, 2^15] (0 for scale 0)
    shift = (15 - exp).astype(np.int64)
    lowest = min_shift(in_channels)
    shift = np.where(mant == 0, lowest, shift)  # an all-zero channel
    if np.any((shift < lowest) | (shift > intops.MAX_SHIFT)):
        raise ValueError(f"a rescale factor is out of range (max {float(np.max(scale)):.3g}, "
                         f"min {float(np.min(scale[scale > 0], initial=1.0)):.3g})")
    return mant.astype(np.int32), shift.astype(np.int32)


def quantize_dense(w: np.ndarray, b: np.ndarray, extra: float, in_channels: int
                    ) -> dict[str, np.ndarray]:
    """Weights float [..., K, O] (per output channel over K), bias [..., O] ->
    int8 weights, (mant, shift) and int32 bias so that the float layer
    ``extra * (x @ w + b)`` in units 2^-10 becomes ``mul_shift(x @ w_q) + bias``."""
    w = np.asarray(w, np.float64)
    wmax = np.max(np.abs(w), axis=-2, keepdims=True)  # [..., 1, O]
    safe = np.where(wmax > 0, wmax, 1.0)
    w_q = np.round(w / safe * intops.WEIGHT_LIMIT)
    mant, shift = _rescale((wmax[..., 0, :] / intops.WEIGHT_LIMIT) * extra, in_channels)
    bias = np.round(np.asarray(b, np.float64) * extra * _ACT)
    return {"w": w_q.astype(np.int8), "mant": mant, "shift": shift, "bias": bias.astype(np.int32)}


def quantize(config: rvae.RVAEConfig, params: Params) -> Params:
    """The integer form of a float RVAE's parameters (deterministic on every machine).

    Raises ValueError for models the integer path cannot run exactly
    (mixture likelihoods, fan-in above ``intops.MAX_FAN_IN``, kernel sizes
    other than the RVAE's)."""
    from irec_jax.exact import tables

    if config.likelihood not in ("logistic", "coupled"):
        raise ValueError("the integer decoder path supports the 'logistic' and 'coupled' pixel likelihoods; "
                         f"this model uses {config.likelihood!r}")
    f64 = lambda a: np.asarray(a, np.float64)  # noqa: E731
    down = params["down"]
    num_layers = config.num_layers

    def conv3(p, extra):
        k = f64(p["kernel"])  # [L, 3, 3, Cin, O]
        if k.shape[1:3] != (3, 3):
            raise ValueError(f"expected 3x3 kernels, got {k.shape}")
        return quantize_dense(k.reshape(num_layers, -1, k.shape[-1]), f64(p["bias"]), extra, k.shape[3])

    kernel = f64(params["head"]["deconv"]["kernel"])
    if kernel.shape[:2] != (5, 5):
        raise ValueError(f"expected a 5x5 head kernel, got {kernel.shape}")
    head = quantize_dense(kernel.reshape(-1, kernel.shape[-1]), f64(params["head"]["deconv"]["bias"]), 1.0,
                           kernel.shape[2])
    # Quantize per output channel over the whole 5x5 kernel, then lay the int8
    # taps out in sub-pixel form (a pure rearrangement, zeros where no tap).
    head["w"] = rvae.subpixel_kernel(head["w"].reshape(kernel.shape)).astype(np.int8)
    if config.likelihood == "logistic" and not config.predict_scale:
        raw = f64(params["head"]["raw_scale"])
        head["raw"] = np.round(raw * _ACT).astype(np.int32)
    lat_mant, lat_shift, _ = tables.scale_table(repr(float(config.latent_min_scale)), "1.0", RAW_MIN,
                                                RAW_COUNT, RAW_STEP_BITS)
    _, _, pix_inv = tables.scale_table(repr(float(config.likelihood_min_scale)),
                                       repr(float(config.likelihood_init_scale)), RAW_MIN, RAW_COUNT,
                                       RAW_STEP_BITS)
    lookups = {"latent_mant": np.asarray(lat_mant, np.int32), "latent_shift": np.asarray(lat_shift, np.int32),
               "pixel_inv": np.asarray(pix_inv, np.int32)}
    if config.likelihood == "coupled":
        lookups["mix_weight"] = tables.exp_neg_table(MIX_COUNT, MIX_STEP_BITS, MIX_WEIGHT_BITS)
        lookups["coef"] = tables.tanh_table(RAW_MIN, RAW_COUNT, RAW_STEP_BITS, COEF_BITS)
    return {
        "encoder": {"stem": jax.tree.map(lambda a: np.asarray(a, np.float32), params["stem"]),
                    "up": jax.tree.map(lambda a: np.asarray(a, np.float32), params["up"])},
        "top": {"h": np.round(f64(params["top"]["h"]) * _ACT).astype(np.int32)},
        "down": {"conv1": conv3(down["conv1"], 1.0), "conv2": conv3(down["conv2"], config.residual_scale)},
        "head": head,
        "tables": lookups,
    }


def param_shapes(config: rvae.RVAEConfig) -> dict:
    """Expected {path: (shape, dtype)} of the integer params (for validating loaded files)."""
    c, z, n_l, ci = config.det_channels, config.stoch_channels, config.num_layers, config.image_channels
    enc = jax.eval_shape(lambda: rvae.RVAE(config).init(jax.random.key(0)))

    def dense(prefix, lead, k, o):
        return {f"{prefix}/w": (lead + (k, o), "int8"), **{f"{prefix}/{n}": (lead + (o,), "int32")
                                                           for n in ("mant", "shift", "bias")}}

    out = {f"encoder/{k}": (tuple(v.shape), "float32")
           for k, v in flat(jax.tree.map(lambda a: a, {"stem": enc["stem"], "up": enc["up"]})).items()}
    out["top/h"] = ((c,), "int32")
    out.update(dense("down/conv1", (n_l,), 9 * c, 4 * z + c))
    out.update(dense("down/conv2", (n_l,), 9 * (z + c), c))
    out.update(dense("head", (), 9 * c, config.head_channels))
    out["head/w"] = ((9 * c, 4 * config.head_channels), "int8")
    if config.likelihood == "logistic" and not config.predict_scale:
        out["head/raw"] = ((ci,), "int32")
    for name in ("latent_mant", "latent_shift", "pixel_inv"):
        out[f"tables/{name}"] = ((RAW_COUNT,), "int32")
    if config.likelihood == "coupled":
        out["tables/mix_weight"] = ((MIX_COUNT,), "int32")
        out["tables/coef"] = ((RAW_COUNT,), "int32")
    return out


def flat(tree: Any, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(flat(v, f"{prefix}{k}/"))
        return out
    return {prefix[:-1]: tree}


def check_shapes(want: dict, params: Params) -> dict:
    """The flat params ({path: array}) after checking them against ``want``
    ({path: (shape, dtype)}); ValueError naming the first mismatch."""
    flat_params = flat(params)
    got = {k: (tuple(np.shape(v)), str(np.asarray(v).dtype)) for k, v in flat_params.items()}
    if set(got) != set(want):
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        raise ValueError(f"integer parameters do not match the config: missing {missing[:3]}, "
                         f"unexpected {extra[:3]}")
    for k, spec in want.items():
        if got[k] != spec:
            raise ValueError(f"parameter {k}: expected shape/dtype {spec}, got {got[k]}")
    return flat_params


def check_range(flat_params: dict, name: str, lo: float, hi: float) -> None:
    """ValueError unless every value of parameter ``name`` lies in [lo, hi]."""
    v = np.asarray(flat_params[name])
    if v.size and (v.min() < lo or v.max() > hi):
        raise ValueError(f"parameter {name}: values must lie in [{lo}, {hi}], got [{v.min()}, {v.max()}]")


def check_dense(flat_params: dict, layer: str, in_channels: int) -> None:
    """The ranges ``quantize_dense`` guarantees for a layer over ``in_channels`` inputs."""
    check_range(flat_params, f"{layer}/w", -intops.WEIGHT_LIMIT, intops.WEIGHT_LIMIT)
    check_range(flat_params, f"{layer}/mant", 0, intops.MAX_MANT)
    check_range(flat_params, f"{layer}/shift", min_shift(in_channels), intops.MAX_SHIFT)
    check_range(flat_params, f"{layer}/bias", -(1 << 29), 1 << 29)


def check_tables(flat_params: dict) -> None:
    """The latent scale tables' ranges: scales mant 2^-shift in [2^-19, 64), the coder's range."""
    check_range(flat_params, "tables/latent_mant", 1 << 14, (1 << 15) - 1)
    check_range(flat_params, "tables/latent_shift", 9, 33)


def check_params(config: rvae.RVAEConfig, params: Params) -> None:
    """ValueError naming the first parameter whose shape, dtype or range is wrong."""
    flat_params = check_shapes(param_shapes(config), params)
    c, z = config.det_channels, config.stoch_channels
    for layer, cin in (("down/conv1", c), ("down/conv2", z + c), ("head", c)):
        check_dense(flat_params, layer, cin)
    check_range(flat_params, "top/h", -(1 << 29), 1 << 29)
    check_tables(flat_params)
    check_range(flat_params, "tables/pixel_inv", 0, (1 << 31) - 1)
    if config.likelihood == "coupled":
        check_range(flat_params, "tables/mix_weight", 0, 1 << MIX_WEIGHT_BITS)
        if int(np.asarray(flat_params["tables/mix_weight"])[0]) != 1 << MIX_WEIGHT_BITS:
            raise ValueError(f"parameter tables/mix_weight: entry 0 must be 2^{MIX_WEIGHT_BITS}")
        check_range(flat_params, "tables/coef", -(1 << COEF_BITS), 1 << COEF_BITS)


# ----------------------------------------------------------------------------
# The integer generative path (jitted, config static).


@functools.lru_cache(maxsize=1)
def _elu_table() -> jax.Array:
    """The ELU table as a device array, made once (not on every model call)."""
    from irec_jax.exact import tables
    return jnp.asarray(tables.elu_table())


def _pow2_neg(shift: jax.Array) -> jax.Array:
    """float32 2^-shift for int32 shift in [-126, 126], built from its bits (exact)."""
    return jax.lax.bitcast_convert_type(jnp.left_shift(127 - shift, 23), jnp.float32)


def _layer(stacked: Params, layer: jax.Array) -> Params:
    return jax.tree.map(lambda p: jax.lax.dynamic_index_in_dim(p, layer, keepdims=False), stacked)


def _conv(p: Params, x: jax.Array, elu_table: jax.Array) -> jax.Array:
    return intops.conv3x3(intops.elu(x, elu_table), p["w"].astype(jnp.float32), p["mant"], p["shift"],
                          p["bias"])


def _scale_lookup(raw: jax.Array, table: jax.Array) -> jax.Array:
    return intops.lookup(raw, table, drop_bits=ACT_BITS - RAW_STEP_BITS, offset=-RAW_MIN)


def _features(params: Params, h: jax.Array, layer: jax.Array, elu_table: jax.Array) -> jax.Array:
    return _conv(_layer(params["down"]["conv1"], layer), h, elu_table)


_features_jit = jax.jit(_features)


def prior_gaussian(loc: jax.Array, raw: jax.Array, tables: Params) -> Gaussian:
    """A latent prior from integer network outputs (units 2^-10): loc clipped to +-1024, the
    scale from the latent tables at raw rounded to 2^-6; float32 values that are exactly
    loc 2^-10 and mant 2^-shift (the coder recovers the integers)."""
    loc = jnp.clip(loc, -_LOC_LIMIT, _LOC_LIMIT)
    mant = _scale_lookup(raw, tables["latent_mant"])
    shift = _scale_lookup(raw, tables["latent_shift"])
    return Gaussian(loc.astype(jnp.float32) * (1.0 / _ACT), mant.astype(jnp.float32) * _pow2_neg(shift))


def _prior_from(cfg: rvae.RVAEConfig, params: Params, feats: jax.Array) -> Gaussian:
    z = cfg.stoch_channels
    return prior_gaussian(feats[..., :z], feats[..., z:2 * z], params["tables"])


_prior_jit = jax.jit(_prior_from, static_argnums=0)


@functools.partial(jax.jit, static_argnums=0)
def _posterior_jit(cfg, feats, acts: rvae.BottomUpActs, layer) -> Gaussian:
    z = cfg.stoch_channels
    feats = feats.astype(jnp.float32) * (1.0 / _ACT)
    q_loc = jax.lax.dynamic_index_in_dim(acts.loc, layer, keepdims=False)
    q_raw = jax.lax.dynamic_index_in_dim(acts.raw_scale, layer, keepdims=False)
    return Gaussian(feats[..., 2 * z:3 * z] + q_loc,
                    lik.positive_scale(feats[..., 3 * z:4 * z] + q_raw, cfg.latent_min_scale))


@functools.partial(jax.jit, static_argnums=(0, 6))
def _advance_jit(cfg, params, h, feats, z, layer, has_next: bool, elu_table) -> tuple[jax.Array, jax.Array]:
    """The next state h' and, when another layer follows, its conv1 features (else [B, h, w, 0])."""
    z_int = jnp.round(z.astype(jnp.float32) * _ACT).astype(jnp.int32)
    merged = jnp.concatenate([z_int, feats[..., 4 * cfg.stoch_channels:]], axis=-1)
    # Saturating, so the state is defined for any weights (real states stay below 2^12).
    h = jnp.clip(h + _conv(_layer(params["down"]["conv2"], layer), merged, elu_table), -_STATE_LIMIT,
                 _STATE_LIMIT)
    if not has_next:
        return h, jnp.zeros(h.shape[:-1] + (0,), jnp.int32)
    return h, _features(params, h, layer + 1, elu_table)


def _levels(loc: jax.Array) -> jax.Array:
    """Network-unit locations (2^-10) -> levels 127.5 + 127.5 u in units 2^-11: 255 (2^10 + loc)."""
    return 255 * (jnp.clip(loc, -(1 << 20), 1 << 20) + (1 << ACT_BITS))


def _mixture(cfg: rvae.RVAEConfig, params: Params, out: jax.Array) -> lik.QuantizedMixture:
    """Head outputs int32 [B, H, W, head_channels] (2^-10) -> the integer coupled mixture."""
    c, k = cfg.image_channels, cfg.num_mixtures
    main = out[..., :3 * c * k].reshape(out.shape[:-1] + (c, 3 * k))
    logits, loc, raw = main[..., :k], main[..., k:2 * k], main[..., 2 * k:]
    # Weight of a component: exp(-(max logit - logit)), the gap rounded to 2^-6, from the model's table.
    gap = jnp.max(logits, axis=-1, keepdims=True) - logits
    weight = intops.lookup(gap, params["tables"]["mix_weight"], drop_bits=ACT_BITS - MIX_STEP_BITS, offset=0)
    coef_raw = out[..., 3 * c * k:].reshape(out.shape[:-1] + (c * (c - 1) // 2, k))
    return lik.QuantizedMixture(weight=weight, loc=_levels(loc),
                                inv_scale=_scale_lookup(raw, params["tables"]["pixel_inv"]),
                                coef=_scale_lookup(coef_raw, params["tables"]["coef"]))


@functools.partial(jax.jit, static_argnums=0)
def _likelihood_jit(cfg, params, h, elu_table) -> lik.QuantizedLogistic | lik.QuantizedMixture:
    p = params["head"]
    out = intops.deconv5x5s2(intops.elu(h, elu_table), p["w"].astype(jnp.float32), p["mant"], p["shift"],
                             p["bias"])
    c = cfg.image_channels
    if cfg.likelihood == "coupled":
        return _mixture(cfg, params, out)
    if cfg.predict_scale:
        loc, raw = out[..., :c], out[..., c:]
    else:
        loc, raw = out, jnp.broadcast_to(p["raw"], out.shape)
    return lik.QuantizedLogistic(loc=_levels(loc), inv_scale=_scale_lookup(raw, params["tables"]["pixel_inv"]))


# ----------------------------------------------------------------------------
# Float copies of the integer layers (encoder only: differentiable, never what a file decodes to).


def dequantized(p: Params, phases: int = 1) -> tuple[jax.Array, jax.Array]:
    """Float (w [9 C, phases O], bias [O]) in real units of an integer layer (``quantize_dense``)."""
    scale = p["mant"].astype(jnp.float32) * jnp.exp2(-p["shift"].astype(jnp.float32))  # [O]
    return p["w"].astype(jnp.float32) * jnp.tile(scale, phases), p["bias"].astype(jnp.float32) / _ACT


def dequantized_conv3x3(p: Params, x: jax.Array) -> jax.Array:
    """Float 3x3 SAME conv with the integer layer's weights, x [B, H, W, C] in real units -> [B, H, W, O]."""
    w, bias = dequantized(p)
    return jax.lax.conv_general_dilated(x, w.reshape(3, 3, x.shape[-1], -1), (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias


def dequantized_deconv(p: Params, x: jax.Array) -> jax.Array:
    """Float 5x5 stride-2 transposed conv with the integer layer's weights, in real units."""
    return rvae.subpixel_conv(x, *dequantized(p, 4))  # columns (py, px, o)


def _refine_loss(cfg: rvae.RVAEConfig, params: Params, x: jax.Array, weight: jax.Array, keys: jax.Array,
                 acts: rvae.BottomUpActs, i: jax.Array) -> jax.Array:
    """The negative ELBO in nats (summed over images) of one reparameterized sample, through float32
    copies of the integer top-down path and likelihood: -sum(weight log p(x | z)) + sum_l KL(q_l || p_l).
    Image m's noise at step i comes from fold_in(keys[m], i) (the same alone or in a batch); the
    levels x and the ``weight`` that marks the subpixels the coder codes are [C, 4 B h w] in
    :func:`rvae.phase_major`'s layout, the one the likelihood is computed in."""
    z_ch, down = cfg.stoch_channels, params["down"]
    shape = acts.loc.shape[1:]
    h = jnp.broadcast_to(params["top"]["h"].astype(jnp.float32) / _ACT, (*shape[:3], cfg.det_channels))
    draws = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, i), (cfg.num_layers, *shape[1:])))(keys)
    kl = jnp.float32(0.0)
    for layer in range(cfg.num_layers):
        feats = dequantized_conv3x3(_layer(down["conv1"], layer), jax.nn.elu(h))
        prior = Gaussian(feats[..., :z_ch], lik.positive_scale(feats[..., z_ch:2 * z_ch], cfg.latent_min_scale))
        post = Gaussian(feats[..., 2 * z_ch:3 * z_ch] + acts.loc[layer],
                        lik.positive_scale(feats[..., 3 * z_ch:4 * z_ch] + acts.raw_scale[layer],
                                           cfg.latent_min_scale))
        z = post.loc + post.scale * draws[:, layer]
        kl = kl + jnp.sum(gaussian_kl(post, prior))
        merged = jnp.concatenate([z, feats[..., 4 * z_ch:]], axis=-1)
        h = h + dequantized_conv3x3(_layer(down["conv2"], layer), jax.nn.elu(merged))
    head = params["head"]
    raw = head["raw"].astype(jnp.float32) / _ACT if "raw" in head else None
    out = rvae.subpixel_conv_phase_major(jax.nn.elu(h), *dequantized(head, 4))  # weight columns (py, px, o)
    dist = rvae.head_likelihood(cfg, out, raw, channels_first=True)
    return kl - jnp.sum(weight * lik.log_prob(dist, x, channels_first=True))


@functools.partial(jax.jit, static_argnums=0, static_argnames="schedule")
def _refine_step_jit(cfg: rvae.RVAEConfig, params: Params, x: jax.Array, weight: jax.Array, keys: jax.Array,
                     acts: rvae.BottomUpActs, opt_state: Any, i: jax.Array, lr: jax.Array, *,
                     schedule: refine.Schedule) -> tuple:
    return refine.adam_step(functools.partial(_refine_loss, cfg, params, x, weight, keys), schedule, acts,
                            opt_state, i, lr)


@dataclasses.dataclass(frozen=True)
class IntegerRVAE:
    """The RVAE of ``config`` with the integer generative path (see module docstring).

    Implements :class:`irec_jax.models.interface.HierarchicalVAE` with
    integer parameters from :func:`quantize`. ``bottom_up`` and
    ``posterior`` (encoder only) are float; ``initial_state``, ``prior``,
    ``advance`` and ``likelihood`` are exact integer arithmetic.
    """

    config: rvae.RVAEConfig

    @functools.cached_property
    def _float(self) -> rvae.RVAE:
        return rvae.RVAE(self.config)

    @property
    def num_layers(self) -> int:
        return self.config.num_layers

    def check_images(self, x: jax.Array) -> None:
        self._float.check_images(x)

    def latent_shape(self, image_shape: Shape, layer: int = 0) -> Shape:
        return self._float.latent_shape(image_shape, layer)

    @staticmethod
    def _elu() -> jax.Array:
        return _elu_table()

    def _check(self, state: IntState, layer: int | None = None) -> None:
        if layer is not None:
            self._float._check_layer(layer)
            check_next_layer(state.layer, layer)
        shape = tuple(state.h.shape)
        if len(shape) != 4 or shape[-1] != self.config.det_channels or state.h.dtype != jnp.int32:
            raise ValueError(f"state.h must be int32 [B, h, w, {self.config.det_channels}], "
                             f"got {state.h.dtype} {shape}")

    def bottom_up(self, params: Params, x: jax.Array) -> rvae.BottomUpActs:
        """Encoder only (float): bottom-up terms [L, B, h, w, Z] of images x [B, H, W, C]."""
        return self._float.bottom_up(params["encoder"], x)

    def refine(self, params: Params, x: jax.Array, acts: rvae.BottomUpActs, *, steps: int, keys: jax.Array,
               weight: jax.Array | None = None, on_step: Callable[[], None] | None = None) -> rvae.BottomUpActs:
        """Encoder only: the bottom-up terms of images x [B, H, W, C] (``acts`` their ``bottom_up``)
        refined for these images.

        Each layer's posterior is the top-down terms plus the bottom-up ones (loc + loc, raw + raw);
        ``steps`` Adam steps (``refine.LOSSLESS``) on the bottom-up terms lower the negative ELBO of
        each image, one reparameterized sample per step, through float32 copies of the integer
        top-down path and likelihood. The posteriors keep their dependence on the layers above, so
        the coder, which forms them layer by layer from the coded latents, codes them unchanged.
        ``keys`` [B]: a PRNG key per image, so that an image draws the same noise alone as in a
        batch (Adam's updates are elementwise: a batch refines each image as if alone).
        ``weight`` [B, H, W, C] (default all ones) marks the subpixels that count (padding and the
        uncoded channels of a gray image do not); ``on_step`` is called after each step (progress)."""
        x = jnp.asarray(x, jnp.int32)
        weight = jnp.ones(x.shape, jnp.float32) if weight is None else jnp.asarray(weight, jnp.float32)
        if keys.shape[:1] != x.shape[:1]:
            raise ValueError(f"need one key per image ({x.shape[0]}), got keys of shape {keys.shape}")
        step = functools.partial(_refine_step_jit, self.config, params, rvae.phase_major(x), rvae.phase_major(weight),
                                 keys)
        return refine.run(step, refine.LOSSLESS, acts, steps, on_step)

    def initial_state(self, params: Params, image_shape: Shape) -> IntState:
        """The learned top state, int32 [B, h, w, C]."""
        b, h, w, _ = self.latent_shape(image_shape)
        top = jnp.broadcast_to(jnp.asarray(params["top"]["h"], jnp.int32), (b, h, w, self.config.det_channels))
        return IntState(h=top, feats=_features_jit(params, top, jnp.int32(0), self._elu()), layer=0)

    def prior(self, params: Params, state: IntState, layer: int) -> Gaussian:
        """Prior of ``layer``: float32 [B, h, w, Z] equal to loc_int 2^-10 and mant 2^-shift."""
        self._check(state, layer)
        return _prior_jit(self.config, params, state.feats)

    def posterior(self, params: Params, state: IntState, acts: rvae.BottomUpActs, layer: int) -> Gaussian:
        """Encoder only (float): posterior of ``layer``, [B, h, w, Z]."""
        self._check(state, layer)
        want = (self.config.num_layers, *state.h.shape[:3], self.config.stoch_channels)
        if tuple(acts.loc.shape) != want:
            raise ValueError(f"bottom-up acts must have shape {want}, got {tuple(acts.loc.shape)}")
        return _posterior_jit(self.config, state.feats, acts, jnp.int32(layer))

    def advance(self, params: Params, state: IntState, z: jax.Array, layer: int) -> IntState:
        """Feed latent z [B, h, w, Z] (float, rounded to the 2^-10 grid) into the stream."""
        self._check(state, layer)
        want = (*state.h.shape[:3], self.config.stoch_channels)
        if tuple(z.shape) != want:
            raise ValueError(f"z for layer {layer} must have shape {want}, got {tuple(z.shape)}")
        has_next = layer + 1 < self.config.num_layers
        h, feats = _advance_jit(self.config, params, state.h, state.feats, jnp.asarray(z), jnp.int32(layer),
                                has_next, self._elu())
        return IntState(h=h, feats=feats, layer=layer + 1)

    def likelihood(self, params: Params, state: IntState) -> lik.QuantizedLogistic | lik.QuantizedMixture:
        """Integer pixel likelihood [B, H, W, C_img(, K)]."""
        self._check(state)
        return _likelihood_jit(self.config, params, state.h, self._elu())
