"""The compiled parts of the coder: beam search (encoder) and reconstruction
(decoder), each jitted once per padded shape and cached by ``jax.jit``.

Units: everything is standardized by the prior, x = (z - mu_p) / sigma_p, so a
block's prior is N(0, 1) per dimension and its posterior N(delta, r2) with
delta = (mu_q - mu_p) / sigma_p, r2 = (sigma_q / sigma_p)^2. After step k the
partial sum b_k has prior N(0, rho_k) and (marginally, under the posterior
of the auxiliary construction) N(rho_k delta, rho_k^2 r2 + rho_k (1 - rho_k)).

Exactness: candidates and partial sums are int32 in units of 2^-16 (the
quantile table, ``intops.mul_shift`` by the step's integer scale, a
saturating add), identical in the encoder's search and the decoder; the
encoder scores their exact float32 images (every value < 2^24). The
decoder's z = mu + sigma x is ``mul_shift`` again, in units 2^-ACT_BITS.

Both loops over steps are ``lax.while_loop``s that stop after the longest
block's last step, so the padded step length L only sizes buffers.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from irec_jax.exact import intops
from irec_jax.exact.units import ACT_BITS, REC_BITS, REC_LIMIT
from irec_jax.rec import rng

_UNIT = 2.0 ** -REC_BITS


def _beam_step(x, score, path, delta, r2, r2m1, positions, mant, shift, rho_k, omr_k, key, live_k, table, *,
               beams: int, num: int):
    """One auxiliary step of one block's beam search.

    Args:
      x: int32 [B, A] beams' partial sums (units 2^-16); score: [B] their
        scores (-inf: no beam); path: [B] uint32 hashes of their index paths.
      delta, r2, r2m1: [A] posterior mean, variance and variance - 1 (the
        last computed without cancellation); positions: [A] uint32 within-block
        dims. mant, shift: int32 scalars, the step's candidate scale;
        rho_k, omr_k: scalars rho_k, 1 - rho_k.
      key: [2] uint32 step key; live_k: bool, k < K_b (else pass through);
      table: int32 [65536] normal quantiles.

    Returns:
      (x, score, path, parent [B] int32, candidate [B] int32).
    """
    # The barrier keeps XLA from recomputing the hash and gather in every use of
    # the candidates inside mul_shift (measured 4x slower without it on CPU).
    n = lax.optimization_barrier(rng.all_candidates(key, num, positions, table))  # [N, A]
    a_int = intops.mul_shift(n, mant, shift, split=8)
    a = a_int.astype(jnp.float32) * _UNIT
    sign = rng.signs(rng.path_key(key, path), positions)  # [B, A] int32
    # Beam j's candidate i is sign_j * a_i. Score of the new partial sum
    # b = rho delta + y (log q(b) - log p(b) up to a constant):
    #   sum_d c2 y^2 + delta y,  c2 = 1/(2 rho) - 1/(2 v_q) = rho (r2 - 1) / (2 v_q),
    # exactly 0 on dims where q = p (padding included). With y = u_j + sign_j a_i:
    #   [c2 u^2 + delta u]_j + [c2 a^2]_i + <(2 c2 u + delta) sign_j, a_i>.
    v_q = rho_k * rho_k * r2 + rho_k * omr_k
    c2 = 0.5 * rho_k * r2m1 / v_q  # [A]
    u = x.astype(jnp.float32) * _UNIT - rho_k * delta  # [B, A]
    beam_term = jnp.sum((c2 * u + delta) * u, axis=1)  # [B]
    cand_term = jnp.sum(c2 * a * a, axis=1)  # [N]
    w = (2.0 * c2 * u + delta) * sign.astype(jnp.float32)  # [B, A]
    cross = jnp.matmul(w, a.T, precision=lax.Precision.HIGHEST)  # [B, N]
    total = beam_term[:, None] + cand_term[None, :] + cross
    total = jnp.where(jnp.isfinite(score)[:, None], total, -jnp.inf)
    top, flat = lax.top_k(total.reshape(-1), beams)
    parent = (flat // num).astype(jnp.int32)
    cand = (flat % num).astype(jnp.int32)
    new_x = jnp.clip(x[parent] + sign[parent] * a_int[cand], -REC_LIMIT, REC_LIMIT)
    new_path = rng.extend_path(key, path[parent], cand)
    return (
        jnp.where(live_k, new_x, x),
        jnp.where(live_k, top, score),
        jnp.where(live_k, new_path, path),
        jnp.where(live_k, parent, jnp.arange(beams, dtype=jnp.int32)),
        jnp.where(live_k, cand, 0),
    )


@functools.partial(jax.jit, static_argnames=("beams", "num", "phases"))
def search(
    key: jax.Array,  # [2] uint32 layer key
    block_ids: jax.Array,  # [nb] int32, each block's index within its tensor (step keys)
    delta: jax.Array,  # [nb, A] float32
    r2: jax.Array,  # [nb, A] float32
    r2m1: jax.Array,  # [nb, A] float32
    positions: jax.Array,  # [nb, A] uint32
    mant: jax.Array,  # [nb, L] int32, candidate scale mantissa
    shift: jax.Array,  # [nb, L] int32, candidate scale shift
    rho: jax.Array,  # [nb, L] float32
    omr: jax.Array,  # [nb, L] float32
    steps: jax.Array,  # [nb] int32
    table: jax.Array,  # [65536] int32 normal quantiles
    *,
    beams: int,
    num: int,
    phases: tuple[int, ...] | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Encoder: (paths int32 [B, nb, L], scores float32 [B, nb]): the index
    path of every block's final beams, best score first (entries at
    k >= steps[b] are 0 and not transmitted; a beam that never lived, when a
    block has fewer than B distinct paths, scores -inf). All blocks advance
    together, one step per iteration, until the longest block is done.

    The blocks may come from several tensors coded under one layer key (a
    batch): block j draws the candidates of block ``block_ids[j]`` of its
    tensor. Padding blocks have steps 0 and are never live.

    ``phases`` (static; default ``(nb,)``): decreasing row counts, the
    first nb. In phase p only rows [0, phases[p]) advance, and the phase ends
    once every row from phases[p + 1] on is done; with the blocks sorted by
    steps, longest first, a batch thus skips most iterations of its short
    blocks. (The scores of a row may round differently under other phases.)"""
    nb, length = mant.shape
    num_dims = delta.shape[1]
    phases = (nb,) if phases is None else tuple(phases)
    if phases[0] != nb or phases[-1] < 1 or any(b >= a for a, b in zip(phases, phases[1:])):
        raise ValueError(f"phases {phases} must be decreasing row counts >= 1 from nb = {nb}")
    keys = rng.block_step_keys(key, block_ids, length)  # [nb, L, 2]
    step = jax.vmap(functools.partial(_beam_step, table=table, beams=beams, num=num))

    def advance(rows, end, carry):  # rows [0, rows) until step `end`
        fixed = [a[:rows] for a in (delta, r2, r2m1, positions)]
        per_step = [a[:rows] for a in (mant, shift, rho, omr, keys)]
        live = steps[:rows]

        def body(c):
            k, x, score, path, parents, cands = c
            at = lambda a: lax.dynamic_index_in_dim(a, k, axis=1, keepdims=False)  # noqa: E731
            x, score, path, parent, cand = step(x, score, path, *fixed, *(at(a) for a in per_step), k < live)
            if rows == nb:
                parents = lax.dynamic_update_index_in_dim(parents, parent, k, axis=0)
                cands = lax.dynamic_update_index_in_dim(cands, cand, k, axis=0)
            else:  # rows past the prefix are done: their identity entries stay
                parents = lax.dynamic_update_slice(parents, parent[None], (k, 0, 0))
                cands = lax.dynamic_update_slice(cands, cand[None], (k, 0, 0))
            return k + 1, x, score, path, parents, cands

        return lax.while_loop(lambda c: c[0] < end, body, carry)

    score = jnp.full((nb, beams), -jnp.inf, jnp.float32).at[:, 0].set(0.0)
    carry = (
        jnp.int32(0),
        jnp.zeros((nb, beams, num_dims), jnp.int32),
        score,
        jnp.zeros((nb, beams), jnp.uint32),
        jnp.broadcast_to(jnp.arange(beams, dtype=jnp.int32), (length, nb, beams)),
        jnp.zeros((length, nb, beams), jnp.int32),
    )
    for p, rows in enumerate(phases):
        after = phases[p + 1] if p + 1 < len(phases) else 0
        end = jnp.max(steps[after:] if after else steps[:rows])
        k, x, last, path, parents, cands = advance(rows, end, carry)
        score = last if rows == nb else score.at[:rows].set(last)
        keep = after or rows
        carry = (k, x[:keep], last[:keep], path[:keep], parents, cands)

    # Backtrack from every final beam, best first; padded steps are identity.
    def back(beam, pc):
        parent, cand = pc  # [nb, B] each
        return jnp.take_along_axis(parent, beam, 1), jnp.take_along_axis(cand, beam, 1)

    order = jnp.argsort(-score, axis=1, stable=True).astype(jnp.int32)  # [nb, B]
    _, paths = lax.scan(back, order, (parents, cands), reverse=True)  # [L, nb, B]
    return jnp.transpose(paths, (2, 1, 0)), jnp.take_along_axis(score, order, 1).T


@functools.partial(jax.jit, static_argnames=("width",))
def reconstruct(
    key: jax.Array,  # [2] uint32 layer key
    block_ids: jax.Array,  # [nb] int32, each block's index within its tensor (step keys)
    indices: jax.Array,  # [nb, L] int32
    mant: jax.Array,  # [nb, L] int32, candidate scale mantissa
    shift: jax.Array,  # [nb, L] int32, candidate scale shift
    steps: jax.Array,  # [nb] int32
    gather: jax.Array,  # [D] int32, flat index into [nb, W] of each output dimension
    p_loc: jax.Array,  # [D] int32, units 2^-ACT_BITS
    p_mant: jax.Array,  # [D] int32, prior scale mantissa
    p_shift: jax.Array,  # [D] int32, prior scale shift
    table: jax.Array,  # [65536] int32 normal quantiles
    *,
    width: int,  # W, padded block width
) -> jax.Array:
    """Decoder (and the encoder's final sample): int32 [D] z in units of
    2^-ACT_BITS, z = mu_p + mul_shift(x, sigma_p) with the standardized sum
    x = sum_k sign_k * mul_shift(candidate_k, s_k) (int32, units 2^-16,
    saturated to +-REC_LIMIT after every step), regenerating only the chosen
    candidate of each step (and the signs of the path that chose it).
    Work O(max_b K_b * nb * W) = O(steps * D). As in ``search``, the blocks
    may be those of several tensors (``block_ids``; D then covers them all)."""
    nb, length = mant.shape
    keys = rng.block_step_keys(key, block_ids, length)  # [nb, L, 2]
    positions = jnp.arange(width, dtype=jnp.uint32)

    def one(acc, path, key, idx, m, s, live):  # one block: [W], scalar path
        n = lax.optimization_barrier(rng.one_candidate(key, idx, positions, table))  # see _beam_step
        cand = rng.signs(rng.path_key(key, path), positions) * intops.mul_shift(n, m, s, split=8)
        acc = jnp.where(live, jnp.clip(acc + cand, -REC_LIMIT, REC_LIMIT), acc)
        return acc, jnp.where(live, rng.extend_path(key, path, idx), path)

    step = jax.vmap(one)

    def body(carry):
        k, acc, path = carry
        at = lambda a: lax.dynamic_index_in_dim(a, k, axis=1, keepdims=False)  # noqa: E731
        acc, path = step(acc, path, at(keys), at(indices), at(mant), at(shift), k < steps)
        return k + 1, acc, path

    init = (jnp.int32(0), jnp.zeros((nb, width), jnp.int32), jnp.zeros((nb,), jnp.uint32))
    _, x, _ = lax.while_loop(lambda c: c[0] < jnp.max(steps), body, init)
    # x (2^-16) * sigma (mant 2^-shift) in units 2^-ACT_BITS.
    return affine(x.reshape(-1)[gather], p_loc, p_mant, p_shift)


def affine(x: jax.Array, p_loc: jax.Array, p_mant: jax.Array, p_shift: jax.Array) -> jax.Array:
    """int32 z = clip(p_loc + mul_shift(x, p_mant, p_shift + 6), +-REC_LIMIT) in
    units 2^-ACT_BITS from standardized x in units 2^-16 (all int32 [D]).
    |x sigma| < 2^24 (2^-16) * 64 stays below 2^24 in 2^-10, and the clip keeps
    z 2^-10 exact in float32."""
    z = p_loc + intops.mul_shift(x, p_mant, p_shift + (REC_BITS - ACT_BITS), split=9)
    return jnp.clip(z, -REC_LIMIT, REC_LIMIT)


affine_jit = jax.jit(affine)
