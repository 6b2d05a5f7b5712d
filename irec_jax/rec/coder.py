"""Public API of the iREC coder: ``encode`` and ``decode`` of one latent tensor
(``encode_batch``: of M tensors of one shape at once).

The encoder sees the posterior q = N(q_loc, q_scale^2) and the prior
p = N(p_loc, p_scale^2) of a tensor of any shape; the decoder sees only the
prior. Both agree on everything else through the settings:

1. Layout. The D dimensions are shuffled with a seeded permutation and cut into
   nb blocks of equal size (sizes differ by at most one). The encoder picks nb,
   the power of two nearest KL / target (``layout.target_block_kl``: block_kl,
   smaller for large tensors), and sends it implicitly as the
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

Batches. ``encode_batch`` codes M tensors of one shape, each exactly as
``encode`` would lay it out, count its steps and key its candidates, with all
their blocks in one search (block ids tell each block's keys) and one
reconstruction. Block counts are padded to four sizes per octave as above.
Each item's code decodes alone; only float32 near-ties in the scoring may
pick other indices than ``encode``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

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
_MIN_PHASE_ROWS = 4  # a batch's search halves its rows down to this many (kernels.search phases)


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
    codes, z, info = encode_choices(q_loc, q_scale, p_loc, p_scale, settings, stream=stream, choices=1)
    return codes[0], z[0], info


def encode_choices(
    q_loc,
    q_scale,
    p_loc,
    p_scale,
    settings: RecSettings = RecSettings(),
    *,
    stream: int = 0,
    choices: int = 1,
    num_blocks: int | None = None,
    blocks: tuple[int, int] | None = None,
) -> tuple[list[RecCode], np.ndarray, EncodeInfo]:
    """The encoder's ``choices`` best codes (at most its beam width,
    ``layout.search_beams``), for a caller that picks among them (e.g. by
    what the rest of the file costs).

    Every choice has the same step counts, so the same index bits; choice j
    takes each block's j-th best final beam of the search (choice 0 is what
    ``encode`` sends). Returns (codes, z_hat float32 [count, S], info), each
    z_hat[j] exactly what ``decode(codes[j], ...)`` returns.

    A caller that codes the tensor in parts (changing q between them) fixes
    ``num_blocks`` (a power of two, e.g. ``block_count`` of the first q) and
    searches ``blocks`` = (lo, hi) only: the codes are then those blocks'
    alone (``join_codes`` puts the parts together; the whole decodes as
    ``decode`` does, each block exactly as searched here), z_hat holds their
    dims' samples and the prior's mean (what zero steps decode to) elsewhere,
    and info describes the searched blocks (its kl: their KL).
    """
    if isinstance(choices, bool) or not isinstance(choices, (int, np.integer)) or choices < 1:
        raise ValueError(f"choices={choices!r} must be an integer >= 1")
    stream = _check_stream(stream)
    q_loc, q_scale, p_loc, p_scale = _check_pair(q_loc, q_scale, p_loc, p_scale)
    shape = p_loc.shape
    num_blocks, blocks = _check_blocks(p_loc.size, num_blocks, blocks)
    (plan,), (info,), paths, scores = _search(
        *(a.reshape(1, -1) for a in (q_loc, q_scale, p_loc, p_scale)), settings, stream, where=lambda m: "",
        num_blocks=num_blocks, block_range=blocks)
    count = min(choices, paths.shape[0])
    codes = [_code(plan, paths, scores, j, settings, blocks) for j in range(count)]
    prior = _prior_ints(p_loc.ravel(), p_scale.ravel())
    full = lambda c: c.steps if blocks is None else _pad_steps(c.steps, blocks, plan.lay.num_blocks)  # noqa: E731
    z = _reconstruct([(full(c), c.indices, plan.lay, prior) for c in codes], settings, stream)
    return codes, z.reshape((count,) + shape), info


def block_count(q_loc, q_scale, p_loc, p_scale, settings: RecSettings = RecSettings()) -> int:
    """The number of blocks ``encode`` cuts this tensor into (a power of two)."""
    q_loc, q_scale, p_loc, p_scale = _check_pair(q_loc, q_scale, p_loc, p_scale)
    kl = float(_standardize(q_loc.ravel(), q_scale.ravel(), p_loc.ravel(), p_scale.ravel())[2].sum())
    return layout_lib.num_blocks(kl, p_loc.size, settings.block_kl, settings.min_block_kl)


def join_codes(parts) -> RecCode:
    """One tensor's code from the codes of consecutive block ranges (``encode_choices``'s ``blocks``),
    in block order."""
    parts = list(parts)
    if not parts or len({c.num_candidates for c in parts}) != 1:
        raise ValueError("join_codes needs at least one code, all with the same number of candidates")
    return RecCode(steps=np.concatenate([c.steps for c in parts]),
                   indices=np.concatenate([c.indices for c in parts]), num_candidates=parts[0].num_candidates)


def _check_blocks(size: int, num_blocks, blocks) -> tuple[int | None, tuple[int, int] | None]:
    """Validated ``encode_choices`` num_blocks (a power of two, at most the largest power of two <= size)
    and blocks ((lo, hi), 0 <= lo < hi <= num_blocks; needs num_blocks)."""
    if num_blocks is not None:
        most = 1 << (size.bit_length() - 1)
        if (isinstance(num_blocks, bool) or not isinstance(num_blocks, (int, np.integer)) or num_blocks < 1
                or num_blocks & (num_blocks - 1) or num_blocks > most):
            raise ValueError(f"num_blocks={num_blocks!r} must be a power of two from 1 to {most}")
        num_blocks = int(num_blocks)
    if blocks is None:
        return num_blocks, None
    if num_blocks is None:
        raise ValueError("blocks=(lo, hi) needs num_blocks")
    try:
        lo, hi = (int(v) for v in blocks)
    except (TypeError, ValueError):
        raise ValueError(f"blocks={blocks!r} must be a pair of integers (lo, hi)") from None
    if not 0 <= lo < hi <= num_blocks:
        raise ValueError(f"blocks={blocks!r} must satisfy 0 <= lo < hi <= num_blocks = {num_blocks}")
    return num_blocks, (lo, hi)


def _pad_steps(steps: np.ndarray, blocks: tuple[int, int], num_blocks: int) -> np.ndarray:
    """int64 [num_blocks]: ``steps`` of blocks lo..hi-1, zero elsewhere."""
    out = np.zeros(num_blocks, np.int64)
    out[blocks[0]:blocks[1]] = steps
    return out


def encode_batch(
    q_loc,
    q_scale,
    p_loc,
    p_scale,
    settings: RecSettings = RecSettings(),
    *,
    stream: int = 0,
) -> tuple[list[RecCode], np.ndarray, list[EncodeInfo]]:
    """``encode`` of M tensors of one shape S in one compiled search and one
    reconstruction: one program per batch shape, for accelerators that one
    small tensor (e.g. the latents of a 32x32 image) cannot fill. On a
    2-core CPU it runs at about the speed of M ``encode`` calls
    (``bench/rec_batch_bench.py``).

    Args:
      q_loc, q_scale, p_loc, p_scale: real arrays of one shape [M, *S],
        M >= 1, S with at least one element; scales > 0, all finite.
      settings, stream: as for ``encode``; every item is coded under this
        stream (item m is *not* told apart from item m' by the keys: each
        item's code stands alone, decoded with this same stream).

    Returns:
      (codes, z_hat, infos): M codes, float32 z_hat [M, *S] with z_hat[m]
      exactly ``decode(codes[m], p_loc[m], p_scale[m], settings,
      stream=stream)``, and M EncodeInfos (``padded_shape`` is the batch's
      search shape, all items' blocks together).

    Item m gets the layout, block count, step counts, keys, pruning and
    search that ``encode`` would give it alone, so the same index bits
    (``code.steps``), except that the batch searches with the widest beam
    width any of its items gets alone (``layout.search_beams``: small
    tensors get ``small_beams``). Its blocks are scored in a wider padded search, whose
    float32 sums may round differently, so in a rare near-tie of two
    candidates the chosen indices (and z_hat) can differ from ``encode``'s;
    either is a valid code of the same rate in expectation.

    Raises ValueError for bad shapes or values (naming the first bad item).
    """
    stream = _check_stream(stream)
    q_loc, q_scale, p_loc, p_scale = _check_batch(q_loc, q_scale, p_loc, p_scale)
    shape = p_loc.shape
    flat = [a.reshape(shape[0], -1) for a in (q_loc, q_scale, p_loc, p_scale)]
    blocks, infos, paths, scores = _search(*flat, settings, stream, where=lambda m: f"item {m}: ")
    codes = [_code(b, paths, scores, 0, settings) for b in blocks]
    priors = _prior_ints(flat[2], flat[3])
    z = _reconstruct([(c.steps, c.indices, b.lay, tuple(a[m] for a in priors))
                      for m, (c, b) in enumerate(zip(codes, blocks))], settings, stream)
    return codes, z.reshape(shape), infos


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
    prior = _prior_ints(p_loc.ravel(), p_scale.ravel())
    return _reconstruct([(steps, indices, lay, prior)], settings, stream).reshape(p_loc.shape)


# ---------------------------------------------------------------------------
# The shared encoder path: M tensors (M = 1 for ``encode``) in one search.


def _check_pair(q_loc, q_scale, p_loc, p_scale) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated q_loc, q_scale, p_loc, p_scale float64 [S] (the prior quantized)."""
    p_loc, p_scale = _check_prior(p_loc, p_scale)
    q_loc, q_scale = _as_float("q_loc", q_loc), _as_float("q_scale", q_scale)
    for name, arr in (("q_loc", q_loc), ("q_scale", q_scale)):
        if arr.shape != p_loc.shape:
            raise ValueError(f"{name} shape {arr.shape} != p_loc shape {p_loc.shape}")
    if not np.all(q_scale > 0):
        raise ValueError(f"q_scale must be > 0 everywhere (shape {q_scale.shape})")
    return q_loc, q_scale, p_loc, p_scale


def _check_batch(q_loc, q_scale, p_loc, p_scale) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``_check_pair`` of a batch [M, *S]: shapes checked for the batch, values
    for all items at once; a bad value is re-checked item by item to name it."""
    arrays = {"q_loc": q_loc, "q_scale": q_scale, "p_loc": p_loc, "p_scale": p_scale}
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    shape = arrays["p_loc"].shape
    for name, arr in arrays.items():
        if arr.dtype.kind not in "fiu":
            raise ValueError(f"{name} must be a real array, got dtype {arr.dtype}")
        if arr.shape != shape:
            raise ValueError(f"{name} shape {arr.shape} != p_loc shape {shape}")
    if len(shape) < 1 or shape[0] < 1:
        raise ValueError(f"a batch needs a leading axis of M >= 1 tensors, got shape {shape}")
    size = math.prod(shape[1:])
    if size == 0:
        raise ValueError(f"cannot code an empty tensor (batch shape {shape})")
    if shape[0] * size > MAX_DIMS:
        raise ValueError(f"a batch of shape {shape} has more than {MAX_DIMS} dimensions; split it")
    try:
        return _check_pair(*arrays.values())
    except ValueError:
        for m in range(shape[0]):
            try:
                _check_pair(*(a[m] for a in arrays.values()))
            except ValueError as e:
                raise ValueError(f"item {m}: {e}") from None
        raise


@dataclasses.dataclass(frozen=True)
class _Blocks:
    """One tensor's blocks as the search sees them.

    ``order``/``dims`` list each block's within-block positions and their
    tensor dimensions by ascending KL (positions past the block's end first),
    ``keep`` the scored ones (a suffix), all [nb, width]."""

    lay: layout_lib.Layout
    kl: float
    block_kl: np.ndarray  # float64 [nb]
    steps: np.ndarray  # int64 [nb]
    scored_dims: np.ndarray  # int64 [nb]
    order: np.ndarray  # int64 [nb, width]
    dims: np.ndarray  # int64 [nb, width]
    keep: np.ndarray  # bool [nb, width]
    offset: int  # the first row of the batch's block axis


def _plan(kl: np.ndarray, settings: RecSettings, stream: int, layouts: dict, offset: int, where: str,
          num_blocks: int | None = None) -> _Blocks:
    """Blocks, steps and scored dims of one tensor from its KL float64 [D]
    (``layouts``: Layouts of this size by block count, filled as needed) in
    ``num_blocks`` blocks (None: the encoder's count, ``layout.num_blocks``)."""
    size = kl.shape[0]
    total_kl = float(kl.sum())
    if not math.isfinite(total_kl) or total_kl / settings.omega > MAX_TOTAL_STEPS:
        raise ValueError(
            f"{where}KL(q||p) = {total_kl:.4g} nats needs more than {MAX_TOTAL_STEPS} steps of "
            f"omega = {settings.omega} nats; the posterior is too far from the prior"
        )
    if num_blocks is None:
        num_blocks = layout_lib.num_blocks(total_kl, size, settings.block_kl, settings.min_block_kl)
    if num_blocks not in layouts:
        layouts[num_blocks] = layout(size, num_blocks, settings.seed, stream)
    lay = layouts[num_blocks]

    # Per-block KL and steps.
    kl_perm = kl[lay.perm]
    block_kl = np.bincount(lay.block, weights=kl_perm, minlength=num_blocks)
    steps = np.maximum(np.ceil(block_kl / settings.omega), 1).astype(np.int64)
    if steps.max() > MAX_STEPS_PER_BLOCK:
        raise ValueError(
            f"{where}a block needs {int(steps.max())} steps (> {MAX_STEPS_PER_BLOCK}): "
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
    dim = np.zeros((num_blocks, width), np.int64)
    dim[lay.block, lay.pos] = lay.perm
    return _Blocks(lay, total_kl, block_kl, steps, keep.sum(axis=1).astype(np.int64), order,
                   np.take_along_axis(dim, order, axis=1), keep, offset)


def _search_rows(b: _Blocks, delta: np.ndarray, log_r: np.ndarray, r2: np.ndarray, scored: int):
    """One tensor's search inputs [nb, scored]: delta, r2, r2m1 float32 and
    positions uint32 of its ``scored`` largest-KL dims per block (unscored
    ones, and columns past a narrow block's width on the left, are q = p:
    they add exactly 0 to every score)."""
    take = min(scored, b.lay.width)
    cols, keep, dims = b.order[:, -take:], b.keep[:, -take:], b.dims[:, -take:]
    rows = (
        np.where(keep, delta[dims], 0.0),
        np.where(keep, np.maximum(r2[dims], _MIN_R2), 1.0),
        np.where(keep, np.expm1(2.0 * log_r[dims]), 0.0),
    )
    rows = [a.astype(np.float32) for a in rows] + [np.where(keep, cols, 0).astype(np.uint32)]
    if take < scored:
        pad = ((0, 0), (scored - take, 0))
        rows = [np.pad(a, pad, constant_values=fill) for a, fill in zip(rows, (0, 1, 0, 0))]
    return rows


def _search(q_loc, q_scale, p_loc, p_scale, settings: RecSettings, stream: int, *, where: Callable[[int], str],
            num_blocks: int | None = None, block_range: tuple[int, int] | None = None):
    """The beam search of M validated tensors (float64 [M, D] each, the prior
    quantized), all blocks in one ``kernels.search`` call. ``where(m)``
    prefixes error messages about item m. One tensor (M = 1) may be cut into
    ``num_blocks`` blocks and search only blocks lo <= b < hi of them
    (``block_range``; its rows are then those blocks, keyed as in the whole).

    Returns (blocks, infos) per item and the search's paths int32 [B, nb', L]
    and scores float32 [B, nb'] (nb' >= the items' (searched) blocks in all, padded)."""
    delta, log_r, kl = _standardize(q_loc, q_scale, p_loc, p_scale)
    layouts: dict[int, layout_lib.Layout] = {}
    blocks = []
    for m in range(kl.shape[0]):
        offset = blocks[-1].offset + blocks[-1].lay.num_blocks if blocks else 0
        blocks.append(_plan(kl[m], settings, stream, layouts, offset, where(m), num_blocks))
    nb = blocks[-1].offset + blocks[-1].lay.num_blocks
    lo, hi = block_range or (0, nb)
    padded = bucket(hi - lo)  # the block count of one tensor is a power of two: no padding
    if padded * max(b.lay.stride for b in blocks) > MAX_DIMS:
        raise ValueError(f"{kl.shape[0]} tensors of {kl.shape[1]} dimensions are too many for one batch; split it")
    scored = min(bucket(max(int(b.scored_dims[lo:hi].max()) if block_range else int(b.scored_dims.max())
                            for b in blocks)), max(b.lay.width for b in blocks))
    r2 = np.exp(2.0 * log_r)
    rows = [_search_rows(b, delta[m], log_r[m], r2[m], scored) for m, b in enumerate(blocks)]
    fills = (0, 1, 0, 0)
    rows = [_pad_rows(np.concatenate(col)[lo:hi], padded, fill) for col, fill in zip(zip(*rows), fills)]
    steps = _pad_rows(np.concatenate([b.steps for b in blocks])[lo:hi], padded, 0)
    ids = _pad_rows(np.concatenate([np.arange(b.lay.num_blocks) for b in blocks])[lo:hi], padded, 0)

    expected = max(layout_lib.target_block_kl(b.kl, settings.block_kl, settings.min_block_kl)
                   for b in blocks) / settings.omega
    # Small tensors search with wider beams; a batch with the widest any of its items gets.
    beams = max(layout_lib.search_beams(b.kl, settings.beams, settings.small_beams, settings.block_kl)
                for b in blocks)
    length = buffer_steps(steps, expected)
    mant, shift, rho, omr = _schedule(settings, steps, length)
    # A batch sorts its blocks by steps, longest first, and runs the search in
    # phases of halving row counts, so that short blocks stop early (about 20%
    # less time). One tensor keeps its block order and one phase.
    batch = len(blocks) > 1
    order = np.argsort(-steps, kind="stable") if batch else slice(None)
    phases = tuple(padded >> p for p in range(padded.bit_length()) if p == 0 or padded >> p >= _MIN_PHASE_ROWS)
    paths, scores = kernels.search(
        _layer_key(settings, stream),
        ids[order].astype(np.int32),
        *(a[order] for a in rows),
        mant[order],
        shift[order],
        rho[order],
        omr[order],
        steps[order].astype(np.int32),
        _normal_table(),
        beams=beams,
        num=settings.num_candidates,
        phases=phases if batch else None,
    )
    paths, scores = np.asarray(paths), np.asarray(scores)
    if batch:
        unsorted = np.empty_like(order)
        unsorted[order] = np.arange(padded)
        paths, scores = paths[:, unsorted], scores[:, unsorted]
    infos = []
    for b in blocks:
        sel = slice(lo, hi) if block_range else slice(None)
        normals = int(np.sum(b.steps[sel] * b.scored_dims[sel])) * settings.num_candidates
        kl_searched = float(b.block_kl[sel].sum()) if block_range else b.kl
        infos.append(EncodeInfo(kl=kl_searched, block_kl=b.block_kl[sel], scored_dims=b.scored_dims[sel],
                                normals=normals, candidate_dims=normals * beams, padded_shape=(padded, length, scored)))
    return blocks, infos, paths, scores


def _pad_rows(a: np.ndarray, rows: int, fill) -> np.ndarray:
    """``a`` [n, ...] padded with ``fill`` to [rows, ...] (itself if n == rows)."""
    if a.shape[0] == rows:
        return a
    return np.concatenate([a, np.full((rows - a.shape[0],) + a.shape[1:], fill, a.dtype)])


def _code(b: _Blocks, paths: np.ndarray, scores: np.ndarray, choice: int, settings: RecSettings,
          block_range: tuple[int, int] | None = None) -> RecCode:
    """The code of one tensor's blocks (those of ``block_range`` where the
    search ran on them alone) from the search's paths [B, nb', L] and scores
    [B, nb']: choice j takes every block's j-th best beam (the best where
    fewer than j + 1 lived)."""
    if block_range:
        rows, steps = np.arange(block_range[1] - block_range[0]), b.steps[block_range[0]:block_range[1]]
    else:
        rows, steps = np.arange(b.offset, b.offset + b.lay.num_blocks), b.steps
    beam = np.where(np.isfinite(scores[choice, rows]), choice, 0)
    live = np.arange(paths.shape[2])[None, :] < steps[:, None]
    indices = paths[beam, rows][live].astype(np.int64)
    return RecCode(steps=steps, indices=indices, num_candidates=settings.num_candidates)


def _reconstruct(entries: list[tuple], settings: RecSettings, stream: int) -> np.ndarray:
    """float32 [E, D]: the samples of E codes of tensors of D dims in one
    ``kernels.reconstruct`` call, entry e = (steps int64 [nb_e], indices int64
    [sum steps], its Layout, its prior (loc, mant, shift) int32 [D]). All
    blocks share one buffer [nb', W] (W the widest block's stride); every
    value is an integer, so the result does not depend on what is batched."""
    steps = np.concatenate([e[0] for e in entries])
    rows = bucket(steps.shape[0])
    steps = _pad_rows(steps, rows, 0)
    ids = _pad_rows(np.concatenate([np.arange(e[2].num_blocks) for e in entries]), rows, 0)
    length = buffer_steps(steps)
    idx = np.zeros((rows, length), np.int32)
    idx[np.arange(length)[None, :] < steps[:, None]] = np.concatenate([e[1] for e in entries])
    mant, shift, _, _ = _schedule(settings, steps, length)
    width = max(e[2].stride for e in entries)
    gathers, offset = [], 0
    for _, _, lay, _ in entries:
        if offset == 0 and width == lay.stride:
            gathers.append(lay.gather)
        else:
            g = np.empty(lay.perm.shape[0], np.int64)
            g[lay.perm] = (offset + lay.block) * width + lay.pos
            gathers.append(g.astype(np.int32))
        offset += lay.num_blocks
    # Pad D (and the block width) to a bucket so that tensors of similar
    # sizes share one compiled decoder; padded entries are sliced off.
    size = sum(g.shape[0] for g in gathers)
    padded = bucket(size)
    pad = lambda parts, fill: _pad_rows(np.concatenate(parts), padded, fill)  # noqa: E731
    z = kernels.reconstruct(
        _layer_key(settings, stream),
        ids.astype(np.int32),
        idx,
        mant,
        shift,
        steps.astype(np.int32),
        pad(gathers, 0),
        pad([e[3][0] for e in entries], 0),
        pad([e[3][1] for e in entries], 1 << 14),
        pad([e[3][2] for e in entries], 14),
        _normal_table(),
        width=width,
    )
    z = np.asarray(z)[:size].reshape(len(entries), -1)
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
