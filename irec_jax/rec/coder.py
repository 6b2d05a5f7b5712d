"""Public API of the iREC coder: ``encode`` and ``decode`` of one latent tensor.

The encoder sees the posterior q = N(q_loc, q_scale^2) and the prior
p = N(p_loc, p_scale^2) of a tensor of any shape; the decoder sees only the
prior. Both agree on everything else through the settings:

1. Layout. The D dimensions are shuffled with a seeded permutation and cut into
   nb blocks of equal size (sizes differ by at most one). The encoder picks nb,
   the power of two nearest KL / block_kl, and sends it implicitly as the
   number of step counts.
2. Steps. Block b is coded in K_b = max(1, ceil(KL_b / omega)) auxiliary steps
   of N = floor(exp(omega (1 + epsilon))) shared candidates each.
3. Search. The encoder runs a B-beam search per block (all blocks at once,
   vmapped; all steps in one ``lax.while_loop``), scoring only the dimensions that
   carry KL, and sends the best beam's index path.
4. Reconstruction. z = mu_p + sigma_p * sum_k s_k * sign_k * candidate_k in
   exact integer arithmetic (``docs/rec.md``): candidates from a fixed table
   of normal quantiles, integer step scales s_k, the prior quantized to
   mu_p in units 2^-10 and sigma_p to a 15-bit mantissa. One jitted function,
   which the encoder also uses for the sample it returns, so decoding gives
   the same z on every machine. z is returned as float32, exactly
   z_int * 2^-10.

Compiled shapes depend on the tensor size, the block count (a power of two)
and two sizes per octave of buffers and scored dims, so images of one shape
reuse the compiled functions.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax.numpy as jnp
import numpy as np

from irec_jax.exact.units import ACT_BITS
from irec_jax.rec import kernels, rng
from irec_jax.rec import layout as layout_lib
from irec_jax.rec.layout import bucket, buffer_steps, layout
from irec_jax.rec import schedule as schedule_lib
from irec_jax.rec.settings import RecSettings

MAX_STEPS_PER_BLOCK = 1 << 16
MAX_TOTAL_STEPS = 1 << 22
MAX_DIMS = (1 << 31) - 1
_MIN_R2 = 1e-30  # posterior/prior variance ratio floor for scoring only
LOC_LIMIT = 1 << 23  # |prior loc| < 2^23 * 2^-10 = 8192
SCALE_RANGE = (2.0 ** -19, 2.0 ** 6)  # prior scales must lie in [2^-19, 64): shifts 9..33


@dataclasses.dataclass(frozen=True, eq=False)
class RecCode:
    """What the decoder needs besides the prior and the settings.

    Attributes:
      steps: int64 [nb], auxiliary steps K_b >= 1 of each block.
      indices: int64 [sum(steps)], the chosen candidate of every step, block
        by block, each in [0, num_candidates).
      num_candidates: N, candidates per step.
    """

    steps: np.ndarray
    indices: np.ndarray
    num_candidates: int

    @property
    def num_blocks(self) -> int:
        return int(self.steps.shape[0])

    @property
    def num_steps(self) -> int:
        return int(self.steps.sum())

    @property
    def ideal_bits(self) -> float:
        """sum_b K_b * log2 N: the index codelength under a uniform code
        (an ideal figure; the entropy layer writes the real bytes)."""
        return self.num_steps * math.log2(self.num_candidates)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RecCode)
            and self.num_candidates == other.num_candidates
            and np.array_equal(self.steps, other.steps)
            and np.array_equal(self.indices, other.indices)
        )

    __hash__ = None  # type: ignore[assignment]


@dataclasses.dataclass(frozen=True, eq=False)
class EncodeInfo:
    """What the encoder did (diagnostics; nothing here is transmitted).

    Attributes:
      kl: KL(q || p) of the whole tensor, nats.
      block_kl: float64 [nb], KL of each block, nats.
      scored_dims: int64 [nb], dimensions of each block that the search scored
        (the rest carried at most prune_fraction of the block's KL).
      normals: normals drawn by the search, sum_b K_b * N * scored_b (unpadded).
      candidate_dims: beam x candidate x dimension scores evaluated,
        beams * normals (unpadded).
      padded_shape: (blocks, steps, scored dims) of the compiled search.
    """

    kl: float
    block_kl: np.ndarray
    scored_dims: np.ndarray
    normals: int
    candidate_dims: int
    padded_shape: tuple[int, int, int]


# ---------------------------------------------------------------------------
# Validation and per-dimension statistics (float64 numpy).


def _as_float(name: str, value: np.ndarray) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be a real array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite values (shape {arr.shape})")
    return arr


def _check_prior(p_loc, p_scale) -> tuple[np.ndarray, np.ndarray]:
    """Validated prior, quantized to the decoder's grid (float64 [S] each):
    loc to a multiple of 2^-10, scale to a 15-bit mantissa times a power of
    two. Values from the integer models are on the grid already."""
    p_loc = _as_float("p_loc", p_loc)
    p_scale = _as_float("p_scale", p_scale)
    if p_loc.shape != p_scale.shape:
        raise ValueError(f"p_loc shape {p_loc.shape} != p_scale shape {p_scale.shape}")
    if p_loc.size == 0:
        raise ValueError(f"cannot code an empty tensor (shape {p_loc.shape})")
    if p_loc.size > MAX_DIMS:
        raise ValueError(f"tensor of shape {p_loc.shape} has more than {MAX_DIMS} dimensions")
    loc_int, mant, shift = _prior_ints(p_loc, p_scale)
    return loc_int * 2.0 ** -ACT_BITS, np.ldexp(mant.astype(np.float64), -shift)


def _prior_ints(p_loc: np.ndarray, p_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(loc int32, mant int32, shift int32) of a prior: loc = round(p_loc 2^10),
    scale = frexp mantissa rounded to 15 bits (exact IEEE float64 operations)."""
    loc = np.round(p_loc * (1 << ACT_BITS))
    if not np.all(np.abs(loc) < LOC_LIMIT):
        raise ValueError(f"|p_loc| must be < {LOC_LIMIT >> ACT_BITS} everywhere (shape {p_loc.shape})")
    if not np.all((p_scale >= SCALE_RANGE[0]) & (p_scale < SCALE_RANGE[1])):
        raise ValueError(f"p_scale must be in [2^-19, 64) everywhere (shape {p_scale.shape})")
    frac, exp = np.frexp(p_scale)
    mant = np.round(frac * (1 << 15))  # [2^14, 2^15]; 2^15 at most for scale < 2^6 - tiny
    return loc.astype(np.int32), mant.astype(np.int32), (15 - exp).astype(np.int32)


def _standardize(q_loc, q_scale, p_loc, p_scale) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (delta, log_r) float64 [D] and the per-dimension KL(q || p) in nats."""
    with np.errstate(over="ignore"):  # an overflowing KL is reported by the caller
        delta = (q_loc - p_loc) / p_scale
        log_r = np.log(q_scale) - np.log(p_scale)
        kl = 0.5 * np.expm1(2.0 * log_r) - log_r + 0.5 * delta * delta
    return delta, log_r, np.maximum(kl, 0.0)


def kl_divergence(q_loc, q_scale, p_loc, p_scale) -> float:
    """KL(q || p) in nats, summed over all dimensions (float64)."""
    p_loc, p_scale = _check_prior(p_loc, p_scale)
    q_loc, q_scale = _as_float("q_loc", q_loc), _as_float("q_scale", q_scale)
    return float(_standardize(q_loc, q_scale, p_loc, p_scale)[2].sum())


def log_ratio(z, q_loc, q_scale, p_loc, p_scale) -> float:
    """log q(z) - log p(z) in nats, summed over all dimensions (float64).
    Its expectation under z ~ q is the KL."""
    z, q_loc, q_scale = (np.asarray(a, np.float64) for a in (z, q_loc, q_scale))
    p_loc, p_scale = (np.asarray(a, np.float64) for a in (p_loc, p_scale))
    uq = (z - q_loc) / q_scale
    up = (z - p_loc) / p_scale
    return float(np.sum(0.5 * (up * up - uq * uq) + np.log(p_scale) - np.log(q_scale)))


def _schedule(settings: RecSettings, steps: np.ndarray, length: int):
    """Per block and step [nb, L]: the candidate scale (mant, shift) int32 and,
    for scoring, rho_k and 1 - rho_k float32 from the quantized scales'
    variances (0 scale past each block's last step)."""
    var = schedule_lib.variances(settings.schedule, steps, length)
    mant, shift = schedule_lib.step_scales(var)
    s2 = np.ldexp(mant.astype(np.float64), -shift) ** 2 * (var > 0)
    rho = np.cumsum(s2, axis=1) / np.maximum(s2.sum(axis=1, keepdims=True), 1e-300)
    rho = np.minimum(rho, 1.0)
    omr = np.maximum(1.0 - rho, 0.0)
    last = np.arange(length)[None, :] == (steps[:, None] - 1)
    rho = np.where(last, 1.0, rho)
    omr = np.where(last, 0.0, omr)
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    return mant, shift, f32(rho), f32(omr)


@functools.lru_cache(maxsize=1)
def _layer_key_jit():
    import jax
    return jax.jit(rng.layer_key)


@functools.lru_cache(maxsize=1)
def _normal_table():
    from irec_jax.exact import tables
    return jnp.asarray(tables.normal_quantiles())


def _layer_key(settings: RecSettings, stream: int):
    return _layer_key_jit()(np.uint32(settings.seed), np.uint32(stream))


def _check_stream(stream: int) -> int:
    if isinstance(stream, bool) or not isinstance(stream, (int, np.integer)) or not 0 <= stream < 2**32:
        raise ValueError(f"stream={stream!r} must be an integer in [0, 2^32)")
    return int(stream)


# ---------------------------------------------------------------------------
# Encoder and decoder.


def encode(
    q_loc,
    q_scale,
    p_loc,
    p_scale,
    settings: RecSettings = RecSettings(),
    *,
    stream: int = 0,
) -> tuple[RecCode, np.ndarray]:
    """Codes a sample of q = N(q_loc, q_scale^2) under p = N(p_loc, p_scale^2).

    Args:
      q_loc, q_scale, p_loc, p_scale: real arrays of one shape S (any rank,
        at least one element); scales > 0, all finite.
      settings: coder settings; the decoder must use the same seed and schedule.
      stream: integer in [0, 2^32) that tells apart tensors coded with the same
        settings (e.g. the layer index of a hierarchical VAE).

    Returns:
      (code, z_hat): the code to transmit and float32 z_hat [S], exactly what
      ``decode(code, p_loc, p_scale, settings, stream=stream)`` returns.
    """
    code, z_hat, _ = encode_with_info(q_loc, q_scale, p_loc, p_scale, settings, stream=stream)
    return code, z_hat


def encode_with_info(
    q_loc,
    q_scale,
    p_loc,
    p_scale,
    settings: RecSettings = RecSettings(),
    *,
    stream: int = 0,
) -> tuple[RecCode, np.ndarray, EncodeInfo]:
    """``encode`` that also returns an EncodeInfo of what the search did."""
    stream = _check_stream(stream)
    p_loc, p_scale = _check_prior(p_loc, p_scale)
    q_loc, q_scale = _as_float("q_loc", q_loc), _as_float("q_scale", q_scale)
    for name, arr in (("q_loc", q_loc), ("q_scale", q_scale)):
        if arr.shape != p_loc.shape:
            raise ValueError(f"{name} shape {arr.shape} != p_loc shape {p_loc.shape}")
    if not np.all(q_scale > 0):
        raise ValueError(f"q_scale must be > 0 everywhere (shape {q_scale.shape})")

    delta, log_r, kl = _standardize(q_loc.ravel(), q_scale.ravel(), p_loc.ravel(), p_scale.ravel())
    size = delta.shape[0]
    total_kl = float(kl.sum())
    if not math.isfinite(total_kl) or total_kl / settings.omega > MAX_TOTAL_STEPS:
        raise ValueError(
            f"KL(q||p) = {total_kl:.4g} nats needs more than {MAX_TOTAL_STEPS} steps of "
            f"omega = {settings.omega} nats; the posterior is too far from the prior"
        )
    num_blocks = layout_lib.num_blocks(total_kl, size, settings.block_kl)
    lay = layout(size, num_blocks, settings.seed, stream)

    # Per-block KL and steps.
    kl_perm = kl[lay.perm]
    block_kl = np.bincount(lay.block, weights=kl_perm, minlength=num_blocks)
    steps = np.maximum(np.ceil(block_kl / settings.omega), 1).astype(np.int64)
    if steps.max() > MAX_STEPS_PER_BLOCK:
        raise ValueError(
            f"a block needs {int(steps.max())} steps (> {MAX_STEPS_PER_BLOCK}): "
            f"KL is concentrated on too few dimensions for omega = {settings.omega}"
        )

    # Dimensions scored by the search: drop the smallest-KL ones of each block
    # while their summed KL stays <= prune_fraction * KL_b.
    width = lay.width
    mat = np.full((num_blocks, width), -1.0)
    mat[lay.block, lay.pos] = kl_perm
    order = np.argsort(mat, axis=1, kind="stable")  # padding (-1) first
    srt = np.take_along_axis(mat, order, axis=1)
    budget = settings.prune_fraction * block_kl
    keep = (np.cumsum(np.maximum(srt, 0.0), axis=1) > budget[:, None]) & (srt >= 0)
    scored_dims = keep.sum(axis=1).astype(np.int64)
    scored = min(bucket(int(scored_dims.max())), width)
    cols, keep = order[:, -scored:], keep[:, -scored:]  # kept dims are a suffix
    dim = np.zeros((num_blocks, width), np.int64)
    dim[lay.block, lay.pos] = lay.perm
    dims = np.take_along_axis(dim, cols, axis=1)
    r2 = np.exp(2.0 * log_r)
    blk = {
        "delta": np.where(keep, delta[dims], 0.0),
        "r2": np.where(keep, np.maximum(r2[dims], _MIN_R2), 1.0),
        "r2m1": np.where(keep, np.expm1(2.0 * log_r[dims]), 0.0),
    }
    blk = {k: v.astype(np.float32) for k, v in blk.items()}
    positions = np.where(keep, cols, 0).astype(np.uint32)

    length = buffer_steps(steps, settings.block_kl, settings.omega)
    mant, shift, rho, omr = _schedule(settings, steps, length)
    chosen = kernels.search(
        _layer_key(settings, stream),
        blk["delta"],
        blk["r2"],
        blk["r2m1"],
        positions,
        mant,
        shift,
        rho,
        omr,
        steps.astype(np.int32),
        _normal_table(),
        beams=settings.beams,
        num=settings.num_candidates,
    )
    chosen = np.asarray(chosen)
    live = np.arange(length)[None, :] < steps[:, None]
    code = RecCode(steps=steps, indices=chosen[live].astype(np.int64), num_candidates=settings.num_candidates)
    normals = int(np.sum(steps * scored_dims)) * settings.num_candidates
    info = EncodeInfo(
        kl=total_kl,
        block_kl=block_kl,
        scored_dims=scored_dims,
        normals=normals,
        candidate_dims=normals * settings.beams,
        padded_shape=(num_blocks, length, scored),
    )
    return code, decode(code, p_loc, p_scale, settings, stream=stream), info


def decode(code: RecCode, p_loc, p_scale, settings: RecSettings = RecSettings(), *, stream: int = 0) -> np.ndarray:
    """Reconstructs the encoder's sample from its code and the prior.

    Args:
      code: the encoder's RecCode.
      p_loc, p_scale: the prior, real arrays of one shape S, as the encoder saw.
      settings, stream: as given to ``encode``.

    Returns:
      float32 z_hat [S], bit-identical to the encoder's.
    """
    stream = _check_stream(stream)
    p_loc, p_scale = _check_prior(p_loc, p_scale)
    steps, indices = _check_code(code, settings, p_loc.size)
    lay = layout(p_loc.size, steps.shape[0], settings.seed, stream)
    length = buffer_steps(steps, settings.block_kl, settings.omega)
    idx = np.zeros((lay.num_blocks, length), np.int32)
    idx[np.arange(length)[None, :] < steps[:, None]] = indices
    mant, shift, _, _ = _schedule(settings, steps, length)
    loc_int, p_mant, p_shift = _prior_ints(p_loc.ravel(), p_scale.ravel())
    # Pad D (and the block width) to a bucket so that tensors of similar
    # sizes share one compiled decoder; padded entries are sliced off.
    size, padded = p_loc.size, bucket(p_loc.size)
    pad = lambda a, fill: np.concatenate([a, np.full(padded - size, fill, a.dtype)])  # noqa: E731
    z = kernels.reconstruct(
        _layer_key(settings, stream),
        idx,
        mant,
        shift,
        steps.astype(np.int32),
        pad(lay.gather, 0),
        pad(loc_int, 0),
        pad(p_mant, 1 << 14),
        pad(p_shift, 14),
        _normal_table(),
        width=lay.stride,
    )
    z = np.asarray(z)[:size].reshape(p_loc.shape)
    return (z.astype(np.float64) * 2.0 ** -ACT_BITS).astype(np.float32)


def from_standard(x: np.ndarray, p_loc, p_scale) -> np.ndarray:
    """z = mu_p + sigma_p x exactly as the decoder forms it, for standardized
    integer values x (int [S], units 2^-16, |x| <= 2^24 - 1) under the prior
    (float [S], quantized as in ``decode``). Returns float32 z [S] on the 2^-10
    grid. (The BB-ANS baseline places its latent bins with it.)"""
    p_loc, p_scale = _check_prior(p_loc, p_scale)
    x = np.asarray(x)
    if x.shape != p_loc.shape or x.dtype.kind not in "iu" or (x.size and np.abs(x).max() >= 1 << 24):
        raise ValueError(f"x must be integers |x| < 2^24 of shape {p_loc.shape}, got {x.dtype} {x.shape}")
    loc_int, mant, shift = _prior_ints(p_loc.ravel(), p_scale.ravel())
    z = np.asarray(kernels.affine_jit(x.ravel().astype(np.int32), loc_int, mant, shift))
    return (z.astype(np.float64) * 2.0 ** -ACT_BITS).astype(np.float32).reshape(p_loc.shape)


def _check_code(code: RecCode, settings: RecSettings, size: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(code, RecCode):
        raise ValueError(f"expected a RecCode, got {type(code).__name__}")
    if code.num_candidates != settings.num_candidates:
        raise ValueError(
            f"code has {code.num_candidates} candidates per step but the settings give "
            f"{settings.num_candidates} (omega={settings.omega}, epsilon={settings.epsilon})"
        )
    steps = np.asarray(code.steps)
    indices = np.asarray(code.indices)
    if steps.ndim != 1 or indices.ndim != 1 or steps.dtype.kind not in "iu" or indices.dtype.kind not in "iu":
        raise ValueError(f"code steps/indices must be 1-d integer arrays, got {steps.shape}/{indices.shape}")
    if not 1 <= steps.shape[0] <= size:
        raise ValueError(f"code has {steps.shape[0]} blocks; a tensor of {size} dims takes 1..{size}")
    if steps.min() < 1 or steps.max() > MAX_STEPS_PER_BLOCK:
        raise ValueError(f"block step counts must be in [1, {MAX_STEPS_PER_BLOCK}]")
    if int(steps.sum()) > MAX_TOTAL_STEPS:
        raise ValueError(f"code has {int(steps.sum())} steps, more than {MAX_TOTAL_STEPS}")
    if int(steps.sum()) != indices.shape[0]:
        raise ValueError(f"code has {indices.shape[0]} indices for {int(steps.sum())} steps")
    if indices.size and (indices.min() < 0 or indices.max() >= code.num_candidates):
        raise ValueError(f"code indices must be in [0, {code.num_candidates})")
    return steps.astype(np.int64), indices.astype(np.int64)
