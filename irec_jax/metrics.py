"""Image quality metrics of the lossy benchmark: PSNR, SSIM and MS-SSIM on uint8-range images.

The definitions are CompressAI's: its evaluation calls pytorch_msssim's
``ms_ssim(x, y, data_range=255)`` (default arguments, ``size_average=True``)
and reports ``-10·log10(1 - ms_ssim)`` as MS-SSIM (dB). pytorch_msssim
(github.com/VainF/pytorch-msssim, ``pytorch_msssim/ssim.py``, checked at
version 1.0.0) defines:

- an 11-tap 1-D Gaussian window, σ = 1.5, normalised by its float32 sum,
  applied along H then W with VALID filtering (no padding), per channel;
- with C1 = (0.01·255)², C2 = (0.03·255)²,
  cs = (2σ_xy + C2) / (σ_x² + σ_y² + C2),
  ssim = (2μ_xμ_y + C1) / (μ_x² + μ_y² + C1) · cs, each averaged over the
  valid pixels of one channel of one image;
- MS-SSIM: five scales with weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333);
  relu(cs) at the first four, relu(ssim) at the last, their weighted product per
  image and channel, then the mean over images and channels. Between scales,
  ``avg_pool2d(kernel_size=2, padding=s % 2)`` per spatial side s: an odd side
  is padded with one zero at each end (zeros counted in the mean of 4) and the
  last padded pixel is dropped, so output[i] averages input[2i-1 : 2i+1];
- both image sides must exceed (11 - 1)·2⁴ = 160 px.

``ssim`` is pytorch_msssim's ``ssim`` (single scale, same window and
constants, no relu; sides under 11 px raise here, where pytorch_msssim skips
the filter with a warning). ``psnr`` is 10·log10(max_value² / MSE) over all
pixels and channels, in float64.

The SSIM statistics run as jitted JAX in float32 (static shapes: one trace per
image shape), rearranged but equal in exact arithmetic: moments about the
images' rounded mean (less cancellation in E[X²] - μ²) and μ1² + μ2² as
(μ1 - μ2)² + 2μ1μ2 (identical images give exactly 1). In float64 the same code
gives pytorch_msssim's float64 values to 1e-9; in float32 it stays within
1.1e-6 of them on the tests' photos (pytorch_msssim in float32: 2e-6).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

WIN_SIZE = 11
WIN_SIGMA = 1.5
K1, K2 = 0.01, 0.03
DATA_RANGE = 255.0
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# min(H, W) must exceed this: four halvings still leave the 11-tap window room.
MS_SSIM_MIN_SIDE = (WIN_SIZE - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1)


# pytorch_msssim's window exactly as torch computes it in float32 (exp(-k² / 2σ²),
# k = -5..5, divided by its float32 sum), centre tap last. The taps sum to
# 1 - 3.1e-8, which shifts σ² = E[X²] - μ² by ~6e-8·μ² and so SSIM by up to
# 8e-6 (MS-SSIM 1.5e-6) on the tests' photos: these taps are the definition.
_WINDOW_HALF = (0.0010283803567290306, 0.0075987582094967365, 0.036000773310661316,
                0.10936068743467331, 0.21300552785396576, 0.26601171493530273)


def _gaussian_window() -> np.ndarray:
    """float32 [WIN_SIZE]: pytorch_msssim's 11-tap Gaussian window, σ = 1.5."""
    return np.array(_WINDOW_HALF + _WINDOW_HALF[-2::-1], np.float32)


def _blur(x: jax.Array) -> jax.Array:
    """Separable VALID Gaussian filter of [..., H, W, C] over H and W: [..., H-10, W-10, C]."""
    g = _gaussian_window()
    for axis in (-3, -2):
        n = x.shape[axis] - WIN_SIZE + 1
        x = sum(float(g[k]) * jax.lax.slice_in_dim(x, k, k + n, axis=axis) for k in range(WIN_SIZE))
    return x


def _ssim_cs(x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(ssim, cs), each float32 [N, C]: per image and channel means over the valid pixels of x, y [N, H, W, C].

    Moments are taken about c, the mean of both images per channel rounded to an
    integer (less float32 cancellation in E[X²] - μ² than about 0; X - c exact). With the window's 2-D sum S (not
    quite 1): μ = E[X - c] + cS and Cov(X, Y) = E[(X-c)(Y-c)] - E[X-c]·E[Y-c]
    + (1 - S)·c·(E[X-c] + E[Y-c] + cS), the same values as moments about 0.
    """
    c1 = (K1 * DATA_RANGE) ** 2
    c2 = (K2 * DATA_RANGE) ** 2
    s = float(np.sum(_gaussian_window(), dtype=np.float64)) ** 2
    c = jnp.round(0.5 * (jnp.mean(x, axis=(1, 2), keepdims=True) + jnp.mean(y, axis=(1, 2), keepdims=True)))
    xc, yc = x - c, y - c
    m1, m2, exx, eyy, exy = _blur(jnp.stack([xc, yc, xc * xc, yc * yc, xc * yc]))

    def cov(e_ab: jax.Array, ma: jax.Array, mb: jax.Array) -> jax.Array:
        return e_ab - ma * mb + (1.0 - s) * c * (ma + mb + c * s)

    sigma1_sq, sigma2_sq, sigma12 = cov(exx, m1, m1), cov(eyy, m2, m2), cov(exy, m1, m2)
    mu1, mu2 = m1 + c * s, m2 + c * s
    cs_map = (2 * sigma12 + c2) / (sigma1_sq + sigma2_sq + c2)
    # μ1² + μ2² written as (μ1 - μ2)² + 2μ1μ2: exactly 1 for identical images.
    luminance = 2 * mu1 * mu2 + c1
    ssim_map = luminance / ((mu1 - mu2) ** 2 + luminance) * cs_map
    return jnp.mean(ssim_map, axis=(1, 2)), jnp.mean(cs_map, axis=(1, 2))


def _avg_pool(x: jax.Array) -> jax.Array:
    """torch ``avg_pool2d(x, 2, padding=s % 2)`` on [N, H, W, C]: [N, ceil(H/2), ceil(W/2), C]."""
    ph, pw = x.shape[1] % 2, x.shape[2] % 2
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1),
                                  ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    return total / 4.0


@jax.jit
def _ssim_jax(x: jax.Array, y: jax.Array) -> jax.Array:
    """SSIM per image and channel, float32 [N, C], of float32 x, y [N, H, W, C] in 0..255."""
    return _ssim_cs(x, y)[0]


@jax.jit
def _ms_ssim_jax(x: jax.Array, y: jax.Array) -> jax.Array:
    """MS-SSIM per image and channel, float32 [N, C], of float32 x, y [N, H, W, C] in 0..255
    (min(H, W) > MS_SSIM_MIN_SIDE; not checked here)."""
    terms = []
    for level in range(len(MS_SSIM_WEIGHTS)):
        ssim_pc, cs = _ssim_cs(x, y)
        if level < len(MS_SSIM_WEIGHTS) - 1:
            terms.append(jax.nn.relu(cs))
            x, y = _avg_pool(x), _avg_pool(y)
    terms.append(jax.nn.relu(ssim_pc))
    weights = jnp.asarray(MS_SSIM_WEIGHTS, jnp.float32)[:, None, None]
    return jnp.prod(jnp.stack(terms) ** weights, axis=0)


DISTORTIONS = ("mse", "ms-ssim")


def distortion(kind: str, x: jax.Array, y: jax.Array) -> jax.Array:
    """The distortion the lossy models train for (traceable): ``"mse"``, the mean squared error of
    float images x, y [B, H, W, C] on the 0..255 scale, or ``"ms-ssim"``, 255 (1 - MS-SSIM) with
    MS-SSIM averaged over images and channels (both sides > ``MS_SSIM_MIN_SIDE``, else ValueError)."""
    if kind == "mse":
        return jnp.mean(jnp.square(y - x))
    if kind != "ms-ssim":
        raise ValueError(f"distortion must be one of {DISTORTIONS}, got {kind!r}")
    if min(x.shape[1:3]) <= MS_SSIM_MIN_SIDE:
        raise ValueError(f"ms-ssim distortion needs images larger than {MS_SSIM_MIN_SIDE} px, "
                         f"got shape {tuple(x.shape)}")
    return 255.0 * (1.0 - jnp.mean(_ms_ssim_jax(x, y)))


def _image_pair(x: ArrayLike, y: ArrayLike, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """x, y as ``dtype`` arrays of one shape, [H, W] or [H, W, C]; ValueError otherwise."""
    a, b = np.asarray(x, dtype), np.asarray(y, dtype)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3) or a.size == 0:
        raise ValueError(f"expected a non-empty image [H, W] or [H, W, C], got shape {a.shape}")
    return a, b


def _batched(x: ArrayLike, y: ArrayLike, min_side: int, what: str) -> tuple[jax.Array, jax.Array]:
    """x, y [H, W, C] or [H, W] as float32 [1, H, W, C]; ValueError unless min(H, W) >= min_side."""
    a, b = _image_pair(x, y, np.float32)
    if min(a.shape[:2]) < min_side:
        raise ValueError(f"{what} needs both image sides >= {min_side} px, got shape {a.shape}")
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    return jnp.asarray(a[None]), jnp.asarray(b[None])


def psnr(x: ArrayLike, y: ArrayLike, max_value: float = 255.0) -> float:
    """PSNR in dB of images x, y [H, W, C] or [H, W] (uint8 range): 10·log10(max_value² / MSE),
    the MSE over all pixels and channels in float64; inf when x == y."""
    a, b = _image_pair(x, y, np.float64)
    mse = float(np.mean(np.square(a - b)))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(max_value**2 / mse)


def ssim(x: ArrayLike, y: ArrayLike) -> float:
    """Single-scale SSIM (pytorch_msssim ``ssim``, data_range 255) of x, y [H, W, C] or [H, W]
    in 0..255, averaged over channels; ValueError unless both sides are >= 11 px."""
    a, b = _batched(x, y, WIN_SIZE, "SSIM")
    return float(jnp.mean(_ssim_jax(a, b)))


def ms_ssim(x: ArrayLike, y: ArrayLike) -> float:
    """MS-SSIM (pytorch_msssim ``ms_ssim``, data_range 255, as CompressAI reports it) of x, y
    [H, W, C] or [H, W] in 0..255, averaged over channels; ValueError quoting the shape unless
    both sides are > 160 px."""
    a, b = _batched(x, y, MS_SSIM_MIN_SIDE + 1, "MS-SSIM (5 scales of an 11-tap window)")
    return float(jnp.mean(_ms_ssim_jax(a, b)))


def ms_ssim_db(value: float) -> float:
    """MS-SSIM in dB: -10·log10(1 - value); inf when value >= 1 (above 1 only by rounding)."""
    if math.isnan(value):
        raise ValueError("MS-SSIM is NaN")
    if value >= 1.0:
        return math.inf
    return -10.0 * math.log10(1.0 - value)
