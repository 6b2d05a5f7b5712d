"""The reference decoder: ``.irec`` files decoded in plain numpy integer arithmetic.

A second, independent implementation of the decoder path that
``irec_jax.codec.decompress`` runs in JAX, written to be read: it is the
normative decoder by example. No JAX anywhere (importing this module never
imports it); every value is an exact integer (numpy int64 / uint64 or Python
int), every step is spelled out, nothing is fast. It must agree bit for bit
with the JAX decoder on every file (``tests/test_reference.py``).

    pixels = decode(open("photo.irec", "rb").read())   # uint8 [H, W, C]

What it reuses rather than restates:

* ``irec_jax.entropy``: the container (which inflates a stored-mode
  file's scanlines; ``unfilter_rows`` restates PNG's unfilter), the index section, the residual
  (pixel) section under a ``QuantizedLogistic`` and the CRC -- already numpy
  + constriction with integer frequency tables;
* ``irec_jax.exact.tables``: the constant tables (normal quantiles, ELU,
  sigmoid via ``entropy``) and ``power_law_ratio`` (Decimal arithmetic);
* ``irec_jax.exact.units``: the fixed-point format constants.

What it restates from the JAX code: the integer ops (``exact.intops``), the
integer generative path of the RVAE (``models.integer``), and the iREC
reconstruction (``rec.coder.decode``, ``rec.kernels.reconstruct``,
``rec.rng``, ``rec.schedule``). Wherever the JAX decoder would wrap around in
int32, this one raises OverflowError instead of silently disagreeing.

Units: activations, the top-down state and latents are integers in units of
2^-10; iREC candidates and their sums in units of 2^-16; a scale factor is a
pair (mant, shift) meaning mant * 2^-shift.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from irec_jax import entropy
from irec_jax.assets import asset_path
from irec_jax.errors import FormatError
from irec_jax.exact import tables
from irec_jax.exact.units import (ACT_BITS, MIX_COUNT, MIX_STEP_BITS, MIX_WEIGHT_BITS, RAW_COUNT, RAW_MIN,
                                  RAW_STEP_BITS, REC_BITS, REC_LIMIT)

__all__ = ["decode", "unfilter_rows", "load_model", "mul_shift", "round_shift", "elu", "conv3x3", "deconv5x5s2",
           "threefry2x32", "one_candidate", "signs", "permutation", "power_law_variances",
           "step_scale", "reconstruct"]

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1
U32 = np.uint64(0xFFFFFFFF)  # uint32 arithmetic is done in uint64, masked
CONV_INPUT_LIMIT = 1 << 15  # conv inputs are clipped to [-2^15, 2^15 - 1]
STATE_LIMIT = 1 << 29  # the top-down state saturates at +-2^29 after every update
CHUNK_CHANNELS = 56  # a 3x3 layer sums its input channels in chunks of 56 (fan-in 504 <= 512)
LOC_LIMIT = 1 << 20  # prior locations and pixel locations are clipped to +-2^20 (units 2^-10)
MAX_STEPS_PER_BLOCK, MAX_TOTAL_STEPS = 1 << 16, 1 << 22
REC_TAG = 0x69524543  # "iREC"
HEADER_MODELS = asset_path("models", "header_models.json")  # the header's model ids, in order


def _int32(x: np.ndarray, what: str) -> np.ndarray:
    """x, after checking it fits int32 (where the JAX decoder would wrap around)."""
    if x.size and (x.min() < I32_MIN or x.max() > I32_MAX):
        raise OverflowError(f"{what} leaves int32: the JAX decoder wraps around here")
    return x


# ---------------------------------------------------------------------------
# Integer operations (irec_jax.exact.intops).


def mul_shift(a, mant, shift) -> np.ndarray:
    """round(a * mant / 2^shift), halves up: floor((a mant + 2^(shift-1)) / 2^shift),
    a mant for shift 0. The JAX op (``exact.intops.mul_shift``) computes this on
    stated per-use domains (shifts 9..46); here any a int32, mant in [0, 2^15],
    shift in [0, 46] is exact in int64 (|a mant| < 2^46)."""
    a, mant, shift = np.broadcast_arrays(*(np.asarray(v, np.int64) for v in (a, mant, shift)))
    _int32(a, "mul_shift input")
    if mant.size and (mant.min() < 0 or mant.max() > 1 << 15 or shift.min() < 0 or shift.max() > 46):
        raise ValueError("mul_shift: mant must be in [0, 2^15] and shift in [0, 46]")
    half = np.where(shift > 0, np.left_shift(1, np.maximum(shift - 1, 0)), 0)
    return _int32((a * mant + half) >> shift, "mul_shift result")


def round_shift(a, shift: int) -> np.ndarray:
    """round(a / 2^shift), halves up; shift >= 1. (JAX: a + 2^(shift-1) in int32.)"""
    a = np.asarray(a, np.int64)
    return _int32(a + (1 << (shift - 1)), "round_shift sum") >> shift


def elu(x) -> np.ndarray:
    """ELU in units of 2^-10: x for x >= 0, else -E[min(-x, 8191)], E the ELU table."""
    x = _int32(np.asarray(x, np.int64), "elu input")
    if x.size and x.min() == I32_MIN:  # JAX: -x wraps, the gather clamps: 0, not -1024
        raise OverflowError("elu of -2^31: the JAX decoder wraps around here")
    table = tables.elu_table().astype(np.int64)
    return np.where(x >= 0, x, -table[np.minimum(-np.minimum(x, 0), table.size - 1)])


def lookup(x, table: np.ndarray) -> np.ndarray:
    """A scale table indexed by a raw output x (units 2^-10) rounded to 2^-6 over [-20, 20)."""
    i = round_shift(x, ACT_BITS - RAW_STEP_BITS) - RAW_MIN
    return np.asarray(table, np.int64)[np.clip(i, 0, table.shape[0] - 1)]


def _rescaled_sum(x: np.ndarray, w: np.ndarray, mant, shift) -> np.ndarray:
    """[h, w, C] -> [h w, O]: for each chunk of CHUNK_CHANNELS consecutive input
    channels, the exact sum over the zero-padded 3x3 neighbourhood (rows of w
    ordered (dy, dx, c); inputs clipped to [-2^15, 2^15 - 1]) rescaled by
    mul_shift; the chunks' results added."""
    h, ww, c = x.shape
    if w.shape[0] != 9 * c:
        raise ValueError(f"conv weights {w.shape} do not fit {c} input channels")
    xp = np.pad(np.clip(x, -CONV_INPUT_LIMIT, CONV_INPUT_LIMIT - 1), ((1, 1), (1, 1), (0, 0)))
    taps = w.astype(np.int64).reshape(9, c, -1)
    out = 0
    for start in range(0, c, CHUNK_CHANNELS):
        stop = min(c, start + CHUNK_CHANNELS)
        cols = [xp[dy:dy + h, dx:dx + ww, start:stop] for dy in range(3) for dx in range(3)]
        patches = np.concatenate(cols, axis=-1).reshape(h * ww, 9 * (stop - start))
        acc = _int32(patches @ taps[:, start:stop].reshape(9 * (stop - start), -1), "conv sum")
        out = out + mul_shift(acc, mant, shift)  # numpy integer matmul is exact
    return _int32(out, "conv sum of chunks")


def conv3x3(x, w, mant, shift, bias) -> np.ndarray:
    """3x3 SAME conv (cross-correlation): int [h, w, C] -> [h, w, O], the
    chunks' mul_shift(sum w x, mant, shift) + bias per output channel."""
    h, ww, _ = x.shape
    y = _rescaled_sum(x, w, mant, shift) + bias
    return _int32(y, "conv output").reshape(h, ww, -1)


def deconv5x5s2(x, w, mant, shift, bias) -> np.ndarray:
    """5x5 stride-2 SAME transposed conv in sub-pixel form: int [h, w, C] ->
    [2h, 2w, O]; output (2i + py, 2j + px) is column group (py, px) of a 3x3
    correlation around (i, j) (w is [9 C, 4 O], columns ordered (py, px, o))."""
    h, ww, _ = x.shape
    o = np.shape(bias)[0]
    y = _rescaled_sum(x, w, np.tile(mant, 4), np.tile(shift, 4)).reshape(h * ww, 4, o) + bias
    y = _int32(y, "deconv output").reshape(h, ww, 2, 2, o).transpose(0, 2, 1, 3, 4)
    return y.reshape(2 * h, 2 * ww, o)


# ---------------------------------------------------------------------------
# Shared randomness (irec_jax.rec.rng): Threefry-2x32, signs, the permutation.

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = 0x1BD11BDA


def threefry2x32(k0, k1, x0, x1) -> tuple[np.ndarray, np.ndarray]:
    """Threefry-2x32, 20 rounds, of counters (x0, x1) under key (k0, k1); all
    uint32 values (any integer arrays, broadcast), returns two uint64 arrays < 2^32."""
    k0, k1, x0, x1 = np.broadcast_arrays(*(np.asarray(v, np.uint64) & U32 for v in (k0, k1, x0, x1)))
    ks = (k0, k1, k0 ^ k1 ^ np.uint64(_PARITY))
    x0, x1 = (x0 + k0) & U32, (x1 + k1) & U32
    for r in range(20):
        rot = np.uint64(_ROTATIONS[(r // 4) % 2][r % 4])
        x0 = (x0 + x1) & U32
        x1 = (((x1 << rot) | (x1 >> (np.uint64(32) - rot))) & U32) ^ x0
        if r % 4 == 3:  # key injection after every 4 rounds
            i = r // 4 + 1
            x0 = (x0 + ks[i % 3]) & U32
            x1 = (x1 + ks[(i + 1) % 3] + np.uint64(i)) & U32
    return x0, x1


def one_candidate(step_key: tuple, index, positions) -> np.ndarray:
    """Candidate ``index`` of a step at within-block ``positions``: a standard
    normal in units 2^-16, Q[H(step key; index >> 1, t)[index & 1] >> 16]."""
    index = np.asarray(index, np.uint64)
    y0, y1 = threefry2x32(step_key[0], step_key[1], index >> np.uint64(1), positions)
    bits = np.where((index & np.uint64(1)) == 0, y0, y1)
    return tables.normal_quantiles().astype(np.int64)[(bits >> np.uint64(16)).astype(np.int64)]


def signs(beam_key, positions) -> np.ndarray:
    """+-1 per position: murmur3's finalizer of beam_key ^ (t * 0x9E3779B9), top bit."""
    x = np.asarray(beam_key, np.uint64) ^ ((np.asarray(positions, np.uint64) * np.uint64(0x9E3779B9)) & U32)
    x = x ^ (x >> np.uint64(16))
    x = (x * np.uint64(0x85EBCA6B)) & U32
    x = x ^ (x >> np.uint64(13))
    x = (x * np.uint64(0xC2B2AE35)) & U32
    x = x ^ (x >> np.uint64(16))
    return 1 - 2 * (x >> np.uint64(31)).astype(np.int64)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # uint64 wrap-around is intended
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def permutation(seed: int, stream: int, size: int) -> np.ndarray:
    """The layout's shuffle of range(size): argsort of splitmix64(d + splitmix64(seed 2^32 + stream))
    (the keys are distinct: splitmix64 is a bijection)."""
    base = _splitmix64(np.array([(seed << 32) | stream], np.uint64))
    with np.errstate(over="ignore"):
        keys = _splitmix64(np.arange(size, dtype=np.uint64) + base)
    return np.argsort(keys, kind="stable")


# ---------------------------------------------------------------------------
# The iREC reconstruction of one latent tensor (irec_jax.rec.coder.decode).


def power_law_variances(k: int) -> list[int]:
    """The power-law schedule's step variances of a K-step block (sum 2^30):
    V_i = floor(R r_{K-i} / 2^30), R -= V_i, the last step takes the rest."""
    rest, out = 1 << 30, []
    for i in range(k - 1):
        v = (rest * tables.power_law_ratio(k - i, tables.POWER_LAW_EXPONENT)) >> 30
        out.append(v)
        rest -= v
    return out + [rest]


def step_scale(v: int) -> tuple[int, int]:
    """sqrt(V / 2^30) truncated to a 15-bit (mant, shift): t = isqrt(V 2^30),
    b = bit length of t, (t >> (b - 15), 45 - b); (0, 30) for V = 0."""
    t = math.isqrt(v << 30)
    if t == 0:
        return 0, 30
    b = t.bit_length()
    return t >> (b - 15), 45 - b


def reconstruct(steps: np.ndarray, indices: np.ndarray, loc: np.ndarray, mant: np.ndarray,
                shift: np.ndarray, seed: int, stream: int) -> np.ndarray:
    """z [D] (units 2^-10) of one coded tensor from its step counts [nb], indices,
    and prior loc (2^-10), scale mant 2^-shift, all int [D] in row-major order."""
    size, nb = loc.size, steps.size
    perm = permutation(seed, stream, size)
    sizes = size // nb + (np.arange(nb) < size % nb)  # block b takes the next sizes[b] of perm
    block = np.repeat(np.arange(nb), sizes)
    pos = np.arange(size) - (np.cumsum(sizes) - sizes)[block]
    positions = np.arange(int(sizes.max()))
    first = np.cumsum(steps) - steps  # where each block's indices start
    scales = {int(k): [step_scale(v) for v in power_law_variances(int(k))] for k in np.unique(steps)}
    layer_key = threefry2x32(seed, REC_TAG, stream, 0)
    acc = np.zeros((nb, positions.size), np.int64)  # standardized sums, units 2^-16
    path = np.zeros(nb, np.uint64)  # hash of each block's index path so far
    for k in range(int(steps.max())):
        b = np.flatnonzero(k < steps)  # blocks still live at step k
        s0, s1 = threefry2x32(layer_key[0], layer_key[1], b, k)  # step keys
        idx = indices[first[b] + k]
        m, s = np.array([scales[int(kb)][k] for kb in steps[b]], np.int64).T
        cand = one_candidate((s0[:, None], s1[:, None]), idx[:, None], positions[None, :])
        beam = threefry2x32(s0, s1, path[b], 0)[0]
        cand = signs(beam[:, None], positions[None, :]) * mul_shift(cand, m[:, None], s[:, None])
        acc[b] = np.clip(acc[b] + cand, -REC_LIMIT, REC_LIMIT)
        path[b] = threefry2x32(s0, s1, path[b], idx + 1)[0]
    x = np.empty(size, np.int64)
    x[perm] = acc[block, pos]
    # z = mu + sigma x: x (2^-16) times mant 2^-shift, in units 2^-10.
    return np.clip(loc + mul_shift(x, mant, shift + (REC_BITS - ACT_BITS)), -REC_LIMIT, REC_LIMIT)


def _check_code(steps: np.ndarray, indices: np.ndarray, size: int, num: int) -> None:
    """FormatError unless the layer's code is one the JAX decoder accepts."""
    if not 1 <= steps.size <= size:
        raise FormatError(f"corrupt latent code: {steps.size} blocks for {size} dims")
    if steps.min() < 1 or steps.max() > MAX_STEPS_PER_BLOCK or steps.sum() > MAX_TOTAL_STEPS:
        raise FormatError("corrupt latent code: step counts out of range")
    if indices.size != steps.sum() or (indices.size and (indices.min() < 0 or indices.max() >= num)):
        raise FormatError("corrupt latent code: indices do not match the step counts")


# ---------------------------------------------------------------------------
# The model: params.npz (integer form, model format version 2) and its generative path.


def _header_models() -> list[dict]:
    """The models of the header's ids (``header_models.json``, in order): the lossless ones
    loaded (``load_model``), the lossy ones as their name and hash only (config None)."""
    with open(HEADER_MODELS, encoding="utf-8") as f:
        entries = json.load(f)["models"]
    out = []
    for e in entries:
        path = asset_path("models", e["folder"])
        with open(os.path.join(path, "model.json"), encoding="utf-8") as f:
            lossy = json.load(f).get("config", {}).get("kind") == "gvae"
        if lossy:
            ref = entropy.ModelRef(e["name"], bytes.fromhex(e["hash"]), entropy.CoderSettings())
            out.append({"ref": ref, "config": None, "params": None})
        else:
            out.append(load_model(path))
    return out


def load_model(model_dir: str) -> dict:
    """{"ref": entropy.ModelRef, "config": dict, "params": {key: array}} of a model folder."""
    with open(os.path.join(model_dir, "model.json"), encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("format") != "irec-model" or meta.get("version") != 2:
        raise ValueError(f"{model_dir}: the reference decoder reads integer models (format "
                         f"version 2) only, got {meta.get('format')!r} version {meta.get('version')!r}")
    with np.load(os.path.join(model_dir, "params.npz"), allow_pickle=False) as npz:
        params = {k: npz[k] for k in npz.files}
    # The header names a model by a hash of its sorted flattened parameters (as modelzoo does).
    ref = entropy.ModelRef(str(meta["name"]), entropy.param_hash([params[k] for k in sorted(params)]),
                           entropy.CoderSettings(**meta.get("defaults", {})))
    cfg = meta["config"]
    likelihood = cfg.get("likelihood", "logistic")
    if likelihood not in ("logistic", "coupled"):
        raise ValueError(f"unsupported pixel likelihood {likelihood!r} (logistic or coupled only)")
    c, z, n = cfg["det_channels"], cfg["stoch_channels"], cfg["num_layers"]
    ci, k = cfg["image_channels"], cfg.get("num_mixtures", 5)
    if likelihood == "coupled":
        heads = (3 * ci + ci * (ci - 1) // 2) * k
    else:
        heads = ci * (2 if cfg["predict_scale"] else 1)
    want = {"top/h": (c,), "down/conv1/w": (n, 9 * c, 4 * z + c), "down/conv2/w": (n, 9 * (z + c), c),
            "head/w": (9 * c, 4 * heads), **{f"tables/{t}": (RAW_COUNT,) for t in
                                             ("latent_mant", "latent_shift", "pixel_inv")}}
    for name, lead, o in (("down/conv1", (n,), 4 * z + c), ("down/conv2", (n,), c), ("head", (), heads)):
        want.update({f"{name}/{p}": lead + (o,) for p in ("mant", "shift", "bias")})
    if likelihood == "coupled":
        want.update({"tables/mix_weight": (MIX_COUNT,), "tables/coef": (RAW_COUNT,)})
    elif not cfg["predict_scale"]:
        want["head/raw"] = (cfg["image_channels"],)
    for key, shape in want.items():
        if key not in params or params[key].shape != shape or params[key].dtype.kind not in "iu":
            raise ValueError(f"{model_dir}: parameter {key} missing or not integer {shape}")
    mant = params["tables/latent_mant"]
    if mant.min() < 1 << 14 or mant.max() >= 1 << 15:
        raise ValueError(f"{model_dir}: latent scale mantissas outside [2^14, 2^15)")
    if likelihood == "coupled" and (params["tables/mix_weight"][0] != 1 << MIX_WEIGHT_BITS
                                    or params["tables/mix_weight"].min() < 0):
        raise ValueError(f"{model_dir}: the mixture weight table must start at 2^{MIX_WEIGHT_BITS}")
    return {"ref": ref, "config": cfg, "params": {k: v.astype(np.int64) for k, v in params.items()}}


def _layer(p: dict, name: str, layer: int | None = None) -> tuple:
    take = (lambda a: a) if layer is None else (lambda a: a[layer])
    return tuple(take(p[f"{name}/{k}"]) for k in ("w", "mant", "shift", "bias"))


def _prior(feats: np.ndarray, p: dict, z: int) -> tuple:
    """Prior of a layer from conv1's features: loc (2^-10), scale mant 2^-shift."""
    loc = np.clip(feats[..., :z], -LOC_LIMIT, LOC_LIMIT)
    mant = lookup(feats[..., z:2 * z], p["tables/latent_mant"])
    shift = lookup(feats[..., z:2 * z], p["tables/latent_shift"])
    # The JAX coder checks the prior scale lies in [2^-19, 64): with mant in
    # [2^14, 2^15), exactly shift in [9, 33].
    if shift.min() < 9 or shift.max() > 33:
        raise FormatError("corrupt latent code: prior scale outside [2^-19, 64)")
    return loc, mant, shift


def _likelihood(h: np.ndarray, p: dict, cfg: dict, shape: tuple[int, int, int]) -> entropy.Likelihood:
    """Pixel likelihood of the tile's ``shape`` (h, w, c), cropped from the
    model's [H', W', C_img]: locations in units 2^-11 of a level, 1/scale in
    units 2^-16 (and, coupled, mixture weights and coefficients 2^-14)."""
    out = deconv5x5s2(elu(h), *_layer(p, "head"))
    c = cfg["image_channels"]
    rows, cols, keep = shape
    if cfg.get("likelihood", "logistic") == "coupled":
        k = cfg.get("num_mixtures", 5)
        main = out[..., :3 * c * k].reshape(out.shape[:-1] + (c, 3 * k))[:rows, :cols, :keep]
        logits, loc, raw = main[..., :k], main[..., k:2 * k], main[..., 2 * k:]
        gap = logits.max(axis=-1, keepdims=True) - logits  # weight = exp(-gap), the gap rounded to 2^-6
        idx = round_shift(gap, ACT_BITS - MIX_STEP_BITS)
        weight = p["tables/mix_weight"][np.clip(idx, 0, MIX_COUNT - 1)]
        coef = out[..., 3 * c * k:].reshape(out.shape[:-1] + (c * (c - 1) // 2, k))
        return entropy.QuantizedMixture(weight, 255 * (np.clip(loc, -LOC_LIMIT, LOC_LIMIT) + (1 << ACT_BITS)),
                                        lookup(raw, p["tables/pixel_inv"]),
                                        lookup(coef[:rows, :cols, :keep * (keep - 1) // 2], p["tables/coef"]))
    out = out[:rows, :cols]
    if cfg["predict_scale"]:
        loc, raw = out[..., :keep], out[..., c:c + keep]
    else:
        loc = out[..., :keep]
        raw = np.broadcast_to(p["head/raw"][:keep], loc.shape)
    # level = 127.5 + 127.5 loc 2^-10, in units 2^-11: 255 (loc + 2^10).
    loc = 255 * (np.clip(loc, -LOC_LIMIT, LOC_LIMIT) + (1 << ACT_BITS))
    return entropy.QuantizedLogistic(loc, lookup(raw, p["tables/pixel_inv"]))


# ---------------------------------------------------------------------------
# The decoder.


def decode(data: bytes, model_dir: str | None = None) -> np.ndarray:
    """The uint8 [H, W, C] pixels of an ``.irec`` file (lossless, format 6, 5 or 4), model-coded or stored.

    ``model_dir``: a model folder (``model.json`` + ``params.npz``, integer form)
    for files written with a model other than the bundled default. Raises
    FormatError for malformed or corrupt files, ValueError for models this
    decoder does not implement.
    """
    if entropy.is_lossy(bytes(data)):
        raise ValueError("this reference decoder implements the lossless format only; decode lossy files "
                         "with irec_jax.codec.decompress")
    # 1. Container. The reader's model list: the header's model ids in order, then model_dir.
    models = _header_models()
    if model_dir is not None:
        extra = load_model(os.path.abspath(model_dir))
        if all(extra["ref"] != m["ref"] for m in models):
            models.append(extra)
    container = entropy.unpack(bytes(data), [m["ref"] for m in models])
    if isinstance(container, entropy.StoredImage):  # stored mode: PNG scanlines, no model
        return entropy.check_pixels(container, unfilter_rows(container.scanlines, container.channels))
    header = container.header
    model = next(m for m in models if m["ref"] == header.model)
    if model["config"] is None:
        raise FormatError(f"a lossless file cannot name the lossy model {header.model.name!r} (corrupt file)")
    cfg = model["config"]
    settings = header.settings
    h, w, c = header.shape
    if c not in (1, cfg["image_channels"]):
        raise FormatError(f"{c}-channel image cannot come from a {cfg['image_channels']}-channel model")

    # 2. Tiles, raster order, each decoded on its own from its one range-coded stream.
    pixels = np.empty((h, w, c), np.uint8)
    for i, ((y, x, th, tw), stream) in enumerate(zip(header.tiles(), container.sections)):
        pixels[y:y + th, x:x + tw] = _decode_tile(stream, model, settings, (th, tw, c), f"tile {i}", header.version)
    return entropy.check_pixels(container, pixels)


def unfilter_rows(scanlines: np.ndarray, bpp: int) -> np.ndarray:
    """uint8 [H, W, bpp] pixels from PNG scanlines uint8 [H, 1 + W bpp] (the
    container checked their length and filter types), row by row as PNG
    defines them: a = the byte bpp to the left, b = the byte above, c = the
    byte above a (0 outside the image); the filtered byte plus the
    prediction, mod 256. Filter 0: 0; 1 Sub: a; 2 Up: b; 3 Average:
    floor((a + b) / 2); 4 Paeth: whichever of a, b, c is closest to
    a + b - c (ties: a, then b)."""
    h, n = scanlines.shape
    out = np.zeros((h, n - 1), np.int64)
    above = np.zeros(n - 1, np.int64)
    for y in range(h):
        kind, row = int(scanlines[y, 0]), scanlines[y, 1:].astype(np.int64)
        if kind in (0, 2):  # no dependence on the row's own bytes
            out[y] = (row + (above if kind == 2 else 0)) % 256
        else:
            cur = out[y]
            for i in range(n - 1):
                a = cur[i - bpp] if i >= bpp else 0
                b, c = above[i], (above[i - bpp] if i >= bpp else 0)
                if kind == 1:
                    pred = a
                elif kind == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                cur[i] = (row[i] + pred) % 256
        above = out[y]
    return out.reshape(h, -1, bpp).astype(np.uint8)


def _decode_tile(stream: bytes, model: dict, settings: entropy.CoderSettings,
                 shape: tuple[int, int, int], what: str, version: int) -> np.ndarray:
    """uint8 [th, tw, c] pixels of one tile's stream (format ``version``: 4 and 5 differ only in
    how ``entropy.pop_layer`` reads the step counts)."""
    cfg, p = model["config"], model["params"]
    num = settings.num_candidates  # the container checked the settings' limits
    h, w, c = shape
    queue = entropy.open_queue(stream, what)

    # 3. Every layer's step counts and indices come first in the stream.
    bound = entropy.max_indices(len(stream), num)
    layers = [entropy.pop_layer(queue, num, max_indices=bound, what=f"{what}, layer {i}", version=version)
              for i in range(cfg["num_layers"])]

    # 4. Top-down: the model runs at even sizes (odd sides padded), latents at half size.
    z = cfg["stoch_channels"]
    state = np.broadcast_to(p["top/h"], ((h + 1) // 2, (w + 1) // 2, cfg["det_channels"]))
    for layer, li in enumerate(layers):
        feats = conv3x3(elu(state), *_layer(p, "down/conv1", layer))
        loc, mant, shift = _prior(feats, p, z)
        steps, indices = np.asarray(li.steps, np.int64), np.asarray(li.indices, np.int64)
        _check_code(steps, indices, loc.size, num)
        latent = reconstruct(steps, indices, loc.ravel(), mant.ravel(), shift.ravel(),
                             settings.seed, layer).reshape(loc.shape)
        merged = np.concatenate([latent, feats[..., 4 * z:]], axis=-1)
        state = np.clip(state + conv3x3(elu(merged), *_layer(p, "down/conv2", layer)), -STATE_LIMIT, STATE_LIMIT)

    # 5. Pixels: the likelihood cropped to the true tile (grayscale: channel 0), then the residual.
    lik = _likelihood(state, p, cfg, (h, w, c))
    return np.asarray(entropy.pop_pixels(queue, lik, what), np.uint8).reshape(h, w, c)
