"""Where the dimensions of a coded tensor go: the seeded shuffle, the blocks,
and the padded buffer sizes that let tensors of similar size share one
compiled program. Shared by encoder and decoder (numpy)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from irec_jax.rec import rng


def bucket(n: int) -> int:
    """Smallest size (4 + j) * 2^k >= n, j in 0..3: pads scored-dim and
    buffer sizes to four sizes per octave (at most 25% padding), so that
    similar images reuse one compiled function."""
    n = max(int(n), 1)
    if n <= 4:
        return n
    e = (n - 1).bit_length() - 3
    return -(-n // (1 << e)) << e


def buffer_steps(steps: np.ndarray, expected: float | None = None) -> int:
    """Padded step length L >= max K_b. The loops stop at max K_b, so L only
    sizes buffers: it covers twice ``expected``, the typical step count of a
    block (the encoder's target block KL / omega; by default the blocks'
    mean step count rounded up to a power of two, which a decoder can
    compute), so that L, and the compiled shape, rarely changes between
    images of one size."""
    if expected is None:
        live = steps[steps > 0]
        mean = float(live.mean()) if live.size else 1.0
        expected = float(1 << max(0, math.ceil(math.log2(mean))))
    return bucket(max(int(steps.max()), math.ceil(2.0 * expected)))


LARGE_TENSOR_BLOCKS = 16.0  # blocks start to shrink past this many block_kl of KL


def target_block_kl(total_kl: float, block_kl: float, min_block_kl: float) -> float:
    """The encoder's target KL per block for a tensor of ``total_kl`` nats:
    ``block_kl`` up to 16 block_kl of KL, then block_kl sqrt(16 block_kl / KL)
    down to ``min(min_block_kl, block_kl)``. Larger blocks waste less to the
    per-block step counts and rounding; smaller ones cost less search work
    per nat: the search work (steps ~ KL, times the dims of a block) of a
    large tensor grows as sqrt(KL) rather than as KL until the floor."""
    floor = min(min_block_kl, block_kl)
    if total_kl <= LARGE_TENSOR_BLOCKS * block_kl:
        return block_kl
    return max(floor, block_kl * math.sqrt(LARGE_TENSOR_BLOCKS * block_kl / total_kl))


def search_beams(total_kl: float, beams: int, small_beams: int, block_kl: float) -> int:
    """The encoder's beam width for a tensor of ``total_kl`` nats: ``beams``,
    widened to ``small_beams`` for small tensors (KL <= 16 block_kl), whose
    search is cheap."""
    return beams if total_kl > LARGE_TENSOR_BLOCKS * block_kl else max(beams, small_beams)


def num_blocks(total_kl: float, size: int, block_kl: float, min_block_kl: float | None = None) -> int:
    """The encoder's block count: the power of two nearest (in log) to
    KL / target (``target_block_kl``), so each block holds 0.71 to 1.41 of the
    target and a layer shape only ever compiles for a few block counts; at
    most size."""
    target = target_block_kl(total_kl, block_kl, block_kl if min_block_kl is None else min_block_kl)
    ratio = max(total_kl / target, 1.0)
    nb = 1 << int(round(math.log2(ratio)))
    return min(nb, 1 << (size.bit_length() - 1))


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where every dimension of a coded tensor goes: its block and position."""

    num_blocks: int  # nb
    width: int  # W = ceil(D / nb), the largest block
    stride: int  # W padded to a bucket: the decoder's block buffer width
    perm: np.ndarray  # int64 [D], dims in block order
    block: np.ndarray  # int64 [D], block of perm[j]
    pos: np.ndarray  # int64 [D], within-block position of perm[j]
    gather: np.ndarray  # int32 [D], flat index into [nb, stride] of each dimension

    def dim_blocks(self) -> np.ndarray:
        """int64 [D]: the block of each dimension, in the tensor's own (flat) order."""
        out = np.empty_like(self.block)
        out[self.perm] = self.block
        return out


def layout(size: int, num_blocks: int, seed: int, stream: int) -> Layout:
    """The decoder-known layout of ``size`` dims in ``num_blocks`` blocks
    (``docs/rec.md``, Layout): a seeded shuffle cut into near-equal blocks."""
    perm = rng.permutation(seed, stream, size)
    sizes = size // num_blocks + (np.arange(num_blocks) < size % num_blocks)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    block = np.repeat(np.arange(num_blocks), sizes)
    pos = np.arange(size) - starts[block]
    width = int(sizes.max())
    stride = bucket(width)
    gather = np.empty(size, np.int64)
    gather[perm] = block * stride + pos
    return Layout(num_blocks, width, stride, perm, block, pos, gather.astype(np.int32))
