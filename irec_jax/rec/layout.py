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


def buffer_steps(steps: np.ndarray, block_kl: float, omega: float) -> int:
    """Padded step length L >= max K_b. The loops stop at max K_b, so L only
    sizes buffers: it covers twice the target block KL so that it (and the
    compiled shape) rarely changes between images."""
    return bucket(max(int(steps.max()), math.ceil(2.0 * block_kl / omega)))


def num_blocks(total_kl: float, size: int, block_kl: float) -> int:
    """The encoder's block count: the power of two nearest (in log) to
    KL / block_kl, so each block holds 0.71 to 1.41 block_kl nats and a layer
    shape only ever compiles for a few block counts; at most size."""
    ratio = max(total_kl / block_kl, 1.0)
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
