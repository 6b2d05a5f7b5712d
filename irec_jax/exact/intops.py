"""Integer operations of the decoder path, in JAX, exact on every backend.

Everything here is int32 arithmetic (adds, multiplies, shifts, compares,
gathers), which XLA defines bit for bit on every CPU, GPU and TPU, plus one
float32 matrix product whose operands are small integers: products of an
8-bit weight (|w| <= 127) and an 8-bit digit (0..255 or -128..127), summed
over at most ``MAX_FAN_IN`` terms, so every partial sum is an integer below
2^24 and no summation order, FMA, TF32 or bf16 pass can round it.

Fixed-point units (format constants, ``docs/format.md``):

* activations, the top-down state and latents: integers in units of
  2^-``ACT_BITS``;
* a positive scale factor is a pair (mant, shift) meaning mant * 2^-shift,
  0 <= mant <= 2^15, applied by :func:`mul_shift`.

The numpy reference decoder (``irec_jax.reference``) implements the same
functions independently with Python integers; tests check they agree.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from irec_jax.exact.units import ACT_BITS, GDN_GAMMA_BITS, GDN_NORM_BITS, GDN_SQUARE_BITS

CONV_INPUT_LIMIT = 1 << 15  # conv inputs are clipped to [-2^15, 2^15 - 1] (two 8-bit digits)
WEIGHT_LIMIT = 127  # |integer weight| <= 127
MAX_FAN_IN = 512  # 255 * 127 * 512 < 2^24: every partial sum of one digit is exact in float32
CHUNK_CHANNELS = MAX_FAN_IN // 9  # a 3x3 layer sums input channels in chunks of 56 (fan-in 504)
MAX_MANT = 1 << 15  # mul_shift multiplier range [0, 2^15]
MIN_SHIFT, MAX_SHIFT = 17, 46  # conv rescale shifts (mul_shift with split 16)


def _i32(x) -> jax.Array:
    return jnp.asarray(x, jnp.int32)


def mul_shift(a: jax.Array, mant: jax.Array, shift: jax.Array, split: int = 16) -> jax.Array:
    """round(a * mant / 2^shift), halves rounded up, exactly, in int32 ops.

    Equals ``floor((a * mant + 2^(shift-1)) / 2^shift)`` in exact integer
    arithmetic. With a = hi 2^split + lo (lo in [0, 2^split)) it is computed as
    ``(hi * mant + ((lo * mant) >> split) + 2^(shift-1-split)) >> (shift - split)``
    (nested floors), so no intermediate exceeds 32 bits when the caller keeps
    to its domain (int32 args, broadcastable; ``split`` static):

      shift > split, 0 <= mant <= 2^15, lo * mant < 2^31, and
      |hi| * mant + 2^(shift-1-split) + 2^15 < 2^31.

    The codec's uses: conv rescales (|a| < 2^31, split 16, shift 17..46), iREC
    step scales (|a| < 2^19, split 8, shift 9..38) and z = mu + sigma x
    (|a| < 2^24, split 9, shift 15..39).
    """
    a, mant, shift = _i32(a), _i32(mant), _i32(shift)
    hi = jnp.right_shift(a, split)  # arithmetic: floor(a / 2^split)
    lo = a & ((1 << split) - 1)
    y = hi * mant + jnp.right_shift(lo * mant, split) + jnp.left_shift(jnp.int32(1), shift - (split + 1))
    return jnp.right_shift(y, shift - split)


def round_shift(a: jax.Array, shift: int) -> jax.Array:
    """round(a / 2^shift), halves up: floor((a + 2^(shift-1)) / 2^shift); int32, shift >= 1."""
    a = _i32(a)
    return jnp.right_shift(a + jnp.int32(1 << (shift - 1)), shift)


def elu(x: jax.Array, table: jax.Array) -> jax.Array:
    """ELU in units of 2^-ACT_BITS: x for x >= 0, else -table[min(-x, len - 1)].

    ``table`` is ``irec_jax.exact.tables.elu_table()`` (int32 [8192]:
    round(1024 (1 - exp(-i / 1024)))).
    """
    x = _i32(x)
    neg = table[jnp.minimum(-jnp.minimum(x, 0), table.shape[0] - 1)]
    return jnp.where(x >= 0, x, -neg)


def lookup(x: jax.Array, table: jax.Array, *, drop_bits: int, offset: int) -> jax.Array:
    """table[clip(round(x / 2^drop_bits) + offset, 0, len - 1)]: a table indexed
    by a coarsened activation (e.g. a scale from its raw network output)."""
    i = round_shift(x, drop_bits) + jnp.int32(offset)
    return table[jnp.clip(i, 0, table.shape[0] - 1)]


def patches3x3(x: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, H, W, 9 C]: the 3x3 neighbourhood of every position
    (zero padding), ordered (dy, dx, c) row-major, by slicing only."""
    b, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = [xp[:, dy:dy + h, dx:dx + w, :] for dy in range(3) for dx in range(3)]
    return jnp.concatenate(cols, axis=-1)


def _digits(a: jax.Array) -> jax.Array:
    """int32 [...] clipped to [-2^15, 2^15) -> float32 [2, ...] digits (a & 255,
    a >> 8) with a = 256 hi + lo, lo in [0, 255] and hi in [-128, 127]."""
    a = jnp.clip(_i32(a), -CONV_INPUT_LIMIT, CONV_INPUT_LIMIT - 1)
    return jnp.stack([a & 255, jnp.right_shift(a, 8)]).astype(jnp.float32)


def _recombine(out: jax.Array) -> jax.Array:
    """float32 [2, ...] integer digit results -> int32 256 hi + lo."""
    out = out.astype(jnp.int32)
    return out[1] * 256 + out[0]


def exact_matmul(a: jax.Array, w: jax.Array) -> jax.Array:
    """Exact int32 [N, O] = a [N, K] (int32, clipped to [-2^15, 2^15)) @ w [K, O]
    (float32 holding integers in [-127, 127]), K <= MAX_FAN_IN.

    a = 256 hi + lo with lo in [0, 255], hi in [-128, 127]; both digits go
    through one float32 product (at HIGHEST precision, so no backend drops
    bits), each partial sum an integer below 2^24, then recombine in int32.
    """
    if a.shape[-1] > MAX_FAN_IN:
        raise ValueError(f"fan-in {a.shape[-1]} > {MAX_FAN_IN}: not exact in float32")
    return _recombine(jnp.matmul(_digits(a), w, precision=lax.Precision.HIGHEST,
                                 preferred_element_type=jnp.float32))


def correlate3x3(x: jax.Array, w: jax.Array, method: str | None = None) -> jax.Array:
    """Exact int32 [B, H, W, O]: the 3x3 SAME cross-correlation of x int32
    [B, H, W, C] (clipped to [-2^15, 2^15)) with integer weights w float32
    [9 C, O] (rows ordered (dy, dx, c), |w| <= 127, 9 C <= MAX_FAN_IN).

    Two implementations with the same exact result: on CPU, XLA's float32
    convolution of the two digit planes (Eigen's patch-and-contract kernels:
    multiply-adds only, every partial sum an integer below 2^24, 4x faster
    here); on other backends, explicit 3x3 patches and a matmul, because GPU
    convolution libraries may pick Winograd or FFT algorithms whose
    intermediates are not integers. ``method`` ("conv" or "matmul") overrides
    the choice (tests compare the two).
    """
    b, h, ww, c = x.shape
    if 9 * c > MAX_FAN_IN:
        raise ValueError(f"fan-in {9 * c} > {MAX_FAN_IN}: not exact in float32")
    o = w.shape[-1]
    method = method or ("conv" if jax.default_backend() == "cpu" else "matmul")
    if method == "conv":
        d = _digits(x).reshape(2 * b, h, ww, c)
        out = lax.conv_general_dilated(d, w.reshape(3, 3, c, o), (1, 1), "SAME",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                       precision=lax.Precision.HIGHEST,
                                       preferred_element_type=jnp.float32)
        return _recombine(out.reshape(2, b, h, ww, o))
    return exact_matmul(patches3x3(x).reshape(b * h * ww, 9 * c), w).reshape(b, h, ww, o)


def chunks(channels: int) -> list[tuple[int, int]]:
    """(start, stop) of the input-channel chunks of a 3x3 layer: consecutive
    runs of CHUNK_CHANNELS (the last shorter), each summed exactly on its own."""
    return [(c, min(channels, c + CHUNK_CHANNELS)) for c in range(0, channels, CHUNK_CHANNELS)]


def _rescaled_sum(x: jax.Array, w: jax.Array, mant: jax.Array, shift: jax.Array) -> jax.Array:
    """sum over the input-channel chunks k of mul_shift(correlate3x3(x_k, w_k), mant, shift):
    int32 [B, H, W, O'] for w float32 [9 C, O'] (rows ordered (dy, dx, c)).
    One chunk (C <= 56) is the exact sum rescaled once; wider layers rescale
    each chunk, which keeps every int32 below 2^31 (the conversion requires
    shift >= 17 + ceil(log2(chunks)): the sum stays below 2^29)."""
    c = x.shape[-1]
    taps = w.reshape(9, c, -1)
    out = None
    for start, stop in chunks(c):
        part = correlate3x3(x[..., start:stop], taps[:, start:stop].reshape(9 * (stop - start), -1))
        part = mul_shift(part, mant, shift)
        out = part if out is None else out + part
    return out


def conv3x3(x: jax.Array, w: jax.Array, mant: jax.Array, shift: jax.Array, bias: jax.Array) -> jax.Array:
    """Integer 3x3 SAME convolution (cross-correlation, as ``flax.linen.Conv``).

    Args:
      x: int32 [B, H, W, C] activations (units 2^-ACT_BITS).
      w: float32 [9 C, O] integer weights, rows ordered (dy, dx, c).
      mant, shift: int32 [O], the per-channel rescale mant * 2^-shift.
      bias: int32 [O], units 2^-ACT_BITS.

    Returns:
      int32 [B, H, W, O]: sum over chunks of mul_shift(sum w x, mant, shift), + bias.
    """
    return _rescaled_sum(x, w, mant, shift) + bias


def deconv5x5s2(x: jax.Array, w: jax.Array, mant: jax.Array, shift: jax.Array, bias: jax.Array) -> jax.Array:
    """Integer 5x5 stride-2 SAME transposed convolution (as
    ``flax.linen.ConvTranspose``), by its sub-pixel form: output pixel
    (2i + py, 2j + px) is a 3x3 correlation of the input around (i, j) with the
    taps of phase (py, px).

    Args:
      x: int32 [B, h, w, C]. w: float32 [9 C, 4 O] integer weights (columns
        ordered (py, px, o)); mant, shift, bias: int32 [O].

    Returns:
      int32 [B, 2h, 2w, O].
    """
    b, h, ww, _ = x.shape
    o = bias.shape[0]
    mant4, shift4 = jnp.tile(mant, 4), jnp.tile(shift, 4)  # columns ordered (py, px, o)
    y = _rescaled_sum(x, w, mant4, shift4).reshape(b, h, ww, 4, o) + bias
    y = y.reshape(b, h, ww, 2, 2, o).transpose(0, 1, 3, 2, 4, 5)
    return y.reshape(b, 2 * h, 2 * ww, o)


_ISQRT_MAX = 46340  # floor(sqrt(2^31 - 1))


def isqrt(n: jax.Array) -> jax.Array:
    """floor(sqrt(n)) exactly, for int32 n in [0, 2^31): a float32 estimate
    (off by at most one: float32(n) and sqrt are within a few ulps on any
    backend) corrected twice each way in int32, so the result does not
    depend on how a backend rounds its square root."""
    n = _i32(n)
    r = jnp.clip(jnp.floor(jnp.sqrt(n.astype(jnp.float32))).astype(jnp.int32), 0, _ISQRT_MAX)
    for _ in range(2):
        r = jnp.where(r * r > n, r - 1, r)
    for _ in range(2):
        up = jnp.minimum(r + 1, _ISQRT_MAX)
        r = jnp.where((r < _ISQRT_MAX) & (up * up <= n), up, r)
    return r


def _byte_digits(a: jax.Array, n: int) -> jax.Array:
    """int32 [...] in [0, 2^(8 n)) -> float32 [n, ...] base-256 digits, least significant first."""
    return jnp.stack([jnp.right_shift(a, 8 * k) & 255 for k in range(n)]).astype(jnp.float32)


def gdn_norm(sq: jax.Array, gamma: jax.Array, beta: jax.Array) -> jax.Array:
    """min(beta + (sq @ gamma) >> (GDN_SQUARE_BITS + GDN_GAMMA_BITS - GDN_NORM_BITS), 2^30 - 1), exactly.

    Args:
      sq: int32 [N, C] in [0, 2^24) (squares, units 2^-GDN_SQUARE_BITS).
      gamma: int32 [C, O] in [0, 2^24) (units 2^-GDN_GAMMA_BITS: gamma below 256), C <= 258.
      beta: int32 [O] in [0, 2^30) (units 2^-GDN_NORM_BITS).

    Every operand is non-negative, so the product is summed digit by digit:
    the 3 base-256 digits of sq times the 3 of gamma in one float32 matrix
    product, each entry an integer sum below 255 * 255 * 258 < 2^24 (exact in
    any order), recombined by digit weight 2^(8k) with nested floor shifts and
    saturation in int32. Returns int32 [N, O] in [0, 2^30).
    """
    if gamma.shape[0] > 258:
        raise ValueError(f"gdn_norm: {gamma.shape[0]} channels > 258: not exact in float32")
    drop = GDN_SQUARE_BITS + GDN_GAMMA_BITS - GDN_NORM_BITS
    assert drop == 10, "the recombination below is written for a 10-bit drop"
    n, o = sq.shape[0], gamma.shape[1]
    g = _byte_digits(gamma, 3)  # [3, C, O]
    r = jnp.matmul(_byte_digits(sq, 3).reshape(3 * n, -1), jnp.concatenate(list(g), axis=1),
                   precision=lax.Precision.HIGHEST, preferred_element_type=jnp.float32)
    r = r.astype(jnp.int32).reshape(3, n, 3, o)  # [sq digit a, N, gamma digit b, O], weight 2^(8 (a + b))
    weight = [sum(r[a, :, k - a] for a in range(3) if 0 <= k - a < 3) for k in range(5)]  # each < 2^26
    top = (1 << 30) - 1  # the saturation value; two of them still add up below 2^31
    out = jnp.right_shift(jnp.right_shift(weight[0], 8) + weight[1], 2)  # floor((w0 + 2^8 w1) / 2^10)
    for k in range(2, 5):  # + 2^(8k - 10) w_k, saturated (all terms are >= 0, so saturation is exact)
        up = 8 * k - 10
        out = jnp.minimum(out + jnp.minimum(weight[k], (top >> up) + 1) * (1 << up), top)  # <= 2^31 - 1
    return jnp.minimum(out + jnp.minimum(_i32(beta), top), top)


def inverse_gdn(x: jax.Array, gamma: jax.Array, beta: jax.Array) -> jax.Array:
    """Integer inverse GDN, y_i = x_i sqrt(beta_i + sum_j gamma_ji x_j^2).

    Args:
      x: int32 [B, H, W, C] activations (units 2^-ACT_BITS).
      gamma: int32 [C, C] (units 2^-GDN_GAMMA_BITS, >= 0); beta: int32 [C] (units 2^-GDN_NORM_BITS).

    x is clipped to |x| < 32 for the squares (x^2 >> 6: units 2^-14), the
    norm taken by ``gdn_norm``, its square root exactly in units 2^-ACT_BITS
    (``isqrt``; GDN_NORM_BITS = 2 ACT_BITS), and y = round(x r / 2^ACT_BITS)
    with x clipped to |x| < 2^23. Returns int32 [B, H, W, C].
    """
    assert GDN_NORM_BITS == 2 * ACT_BITS
    x = _i32(x)
    b, h, ww, c = x.shape
    xc = jnp.clip(x, -CONV_INPUT_LIMIT + 1, CONV_INPUT_LIMIT - 1)
    sq = jnp.right_shift(xc * xc, 2 * ACT_BITS - GDN_SQUARE_BITS)
    r = isqrt(gdn_norm(sq.reshape(-1, c), _i32(gamma), beta)).reshape(b, h, ww, c)
    return mul_shift(jnp.clip(x, -(1 << 23), (1 << 23) - 1), r, ACT_BITS, split=8)
