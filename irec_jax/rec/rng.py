"""Shared randomness of the iREC coder: counter-based, pure, decoder-reproducible.

Everything random is a Threefry-2x32 hash (20 rounds, bit-identical to JAX's
``threefry2x32`` primitive, written with jnp integer ops so that XLA fuses it
into the surrounding kernel: 3.5x faster than the primitive on CPU) of
integers that the decoder knows:

  layer key  = H((seed, TAG),   (stream, 0))         one per coded tensor
  step key   = H(layer key,     (block, step))       one per auxiliary step
  candidate  = Q[H(step key,   (i >> 1, t))[i & 1] >> 16]  candidate i, dimension t

so any single candidate of any step can be regenerated without drawing the
other N - 1: the encoder draws all N candidates of a step (for the dimensions it
scores), the decoder only the one it was sent. Candidates are shared by all
beams of a step, which turns beam scoring into one matrix product.

Nothing here depends on JAX's PRNG configuration (default implementation,
``jax_threefry_partitionable``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_TAG = np.uint32(0x69524543)  # "iREC"
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))  # Threefry-2x32 (Salmon et al. 2011)
_PARITY = np.uint32(0x1BD11BDA)


def _rotl(x: jax.Array, r: int) -> jax.Array:
    return lax.shift_left(x, jnp.uint32(r)) | lax.shift_right_logical(x, jnp.uint32(32 - r))


def _hash(key0: jax.Array, key1: jax.Array, x0: jax.Array, x1: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32 (20 rounds) of the counter pair (x0, x1) under key (key0, key1).

    All arguments uint32 and broadcastable; returns two uint32 arrays.
    """
    k0, k1 = jnp.asarray(key0, jnp.uint32), jnp.asarray(key1, jnp.uint32)
    x0, x1 = jnp.broadcast_arrays(jnp.asarray(x0, jnp.uint32), jnp.asarray(x1, jnp.uint32))
    ks = (k0, k1, k0 ^ k1 ^ _PARITY)
    x0, x1 = x0 + k0, x1 + k1
    for r in range(20):
        x0 = x0 + x1
        x1 = _rotl(x1, _ROTATIONS[(r // 4) % 2][r % 4]) ^ x0
        if r % 4 == 3:  # key injection after every 4 rounds
            i = r // 4 + 1
            x0 = x0 + ks[i % 3]
            x1 = x1 + ks[(i + 1) % 3] + jnp.uint32(i)
    return x0, x1


def layer_key(seed: jax.Array, stream: jax.Array) -> jax.Array:
    """uint32 [2]: the key of one coded tensor (``stream`` tells layers apart)."""
    y0, y1 = _hash(jnp.asarray(seed, jnp.uint32), jnp.asarray(_TAG), jnp.asarray(stream, jnp.uint32), jnp.uint32(0))
    return jnp.stack([y0, y1])


def step_keys(key: jax.Array, num_blocks: int, num_steps: int) -> jax.Array:
    """uint32 [num_blocks, num_steps, 2]: the key of every (block, step)."""
    return block_step_keys(key, jnp.arange(num_blocks, dtype=jnp.uint32), num_steps)


def block_step_keys(key: jax.Array, block_ids: jax.Array, num_steps: int) -> jax.Array:
    """uint32 [nb, num_steps, 2]: the step keys of the blocks ``block_ids``
    (int [nb], each block's index within its own tensor), so that blocks of
    several tensors coded under one layer key can share one array: row j is
    row ``block_ids[j]`` of ``step_keys(key, ...)``."""
    b = jnp.asarray(block_ids).astype(jnp.uint32)[:, None]
    k = jnp.arange(num_steps, dtype=jnp.uint32)[None, :]
    y0, y1 = _hash(key[0], key[1], b, k)
    return jnp.stack([y0, y1], axis=-1)


def _to_normal(bits: jax.Array, table: jax.Array) -> jax.Array:
    """uint32 -> int32 standard normal in units of 2^-16: the quantile table
    entry of the top 16 bits, ``table[bits >> 16]`` with table[i] =
    round(2^16 Phi^-1((i + 1/2) / 2^16)) (``irec_jax.exact.tables``), so
    every backend gives the same integer."""
    return table[lax.shift_right_logical(bits, jnp.uint32(16)).astype(jnp.int32)]


def all_candidates(key: jax.Array, num: int, positions: jax.Array, table: jax.Array) -> jax.Array:
    """int32 [num, P]: candidates 0..num-1 of one step at dimensions ``positions``
    (standard normals in units of 2^-16).

    Args:
      key: uint32 [2], the step key.
      num: N, candidates per step (static).
      positions: uint32 [P], within-block dimension indices t.
      table: int32 [65536], the normal quantile table.
    """
    pairs = (num + 1) // 2
    p = jnp.arange(pairs, dtype=jnp.uint32)[:, None]
    y0, y1 = _hash(key[0], key[1], p, positions[None, :])
    # Look up each word's candidates first, then interleave (2p, 2p + 1): the
    # same values, but XLA:CPU gathers from the interleaved words about 8x
    # slower (the search kernel took 1.7x the time). Taking four candidates
    # from the 16-bit halves of the two words halves the hashing but made
    # the lookups 6x slower on CPU (measured 2026-11-30).
    n = jnp.stack([_to_normal(y0, table), _to_normal(y1, table)], axis=1)
    return n.reshape(2 * pairs, positions.shape[0])[:num]


def one_candidate(key: jax.Array, index: jax.Array, positions: jax.Array, table: jax.Array) -> jax.Array:
    """int32 [P]: candidate ``index`` of one step at dimensions ``positions``;
    equal to ``all_candidates(key, N, positions, table)[index]``."""
    index = index.astype(jnp.uint32)
    y0, y1 = _hash(key[0], key[1], index >> 1, positions)
    return _to_normal(jnp.where((index & 1) == 0, y0, y1), table)


def path_key(key: jax.Array, path: jax.Array) -> jax.Array:
    """uint32 [...]: a beam's key for one step, from the step key [2] and the
    hash of the beam's index path so far ``path`` [...] (0 for the empty path)."""
    return _hash(key[0], key[1], path, jnp.uint32(0))[0]


def extend_path(key: jax.Array, path: jax.Array, index: jax.Array) -> jax.Array:
    """uint32 [...]: hash of the index path ``path`` extended by ``index`` at
    the step whose key is ``key`` [2]."""
    return _hash(key[0], key[1], path, index.astype(jnp.uint32) + jnp.uint32(1))[0]


def signs(beam_key: jax.Array, positions: jax.Array) -> jax.Array:
    """int32 [..., P] of +-1: a beam's random sign flip of every dimension.

    A candidate of a beam is ``signs * candidate``: still N(0, 1) i.i.d. over
    the candidates of the step, but a different direction for every beam, so
    the beams of a step search different candidates while sharing one draw of
    normals. Mixes beam_key [...] with the positions [P] by a 32-bit integer
    finalizer (murmur3's), cheap next to the Threefry of the normals.
    """
    x = beam_key[..., None] ^ (positions * jnp.uint32(0x9E3779B9))
    x = x ^ lax.shift_right_logical(x, jnp.uint32(16))
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ lax.shift_right_logical(x, jnp.uint32(13))
    x = x * jnp.uint32(0xC2B2AE35)
    x = x ^ lax.shift_right_logical(x, jnp.uint32(16))
    return 1 - 2 * lax.shift_right_logical(x, jnp.uint32(31)).astype(jnp.int32)


@functools.lru_cache(maxsize=8)
def permutation(seed: int, stream: int, size: int) -> np.ndarray:
    """int64 [size]: a seeded shuffle of range(size), pure integer arithmetic
    (splitmix64 keys, stable argsort), identical on every platform. Cached
    (the encoder and decoder of a tensor both need it); read-only."""
    with np.errstate(over="ignore"):
        base = _splitmix64(np.array([(seed << 32) | (stream & 0xFFFFFFFF)], dtype=np.uint64))
        keys = _splitmix64(np.arange(size, dtype=np.uint64) + base)
    perm = np.argsort(keys, kind="stable").astype(np.int64)
    perm.flags.writeable = False
    return perm


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))
