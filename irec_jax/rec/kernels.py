"""The compiled parts of the coder: beam search (encoder) and reconstruction
(decoder), each jitted once per padded shape and cached by ``jax.jit``.

Units: everything is standardized by the prior, x = (z - mu_p) / sigma_p, so a
block's prior is N(0, 1) per dimension and its posterior N(delta, r2) with
delta = (mu_q - mu_p) / sigma_p, r2 = (sigma_q / sigma_p)^2. After step k the
partial sum b_k has prior N(0, rho_k) and (marginally, under the posterior
of the auxiliary construction) N(rho_k delta, rho_k^2 r2 + rho_k (1 - rho_k)).

Both loops over steps are ``lax.while_loop``s that stop after the longest
block's last step, so the padded step length L only sizes buffers.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from irec_jax.rec import rng


def _beam_step(x, score, path, delta, r2, r2m1, positions, s, rho_k, omr_k, key, live_k, *, beams: int, num: int):
    """One auxiliary step of one block's beam search.

    Args:
      x: [B, A] beams' partial sums; score: [B] their scores (-inf: no beam);
      path: [B] uint32 hashes of their index paths.
      delta, r2, r2m1: [A] posterior mean, variance and variance - 1 (the
        last computed without cancellation); positions: [A] uint32 within-block
        dims. s, rho_k, omr_k: scalars, candidate std sqrt(f_k), rho_k, 1 - rho_k.
      key: [2] uint32 step key; live_k: bool, k < K_b (else pass through).

    Returns:
      (x, score, path, parent [B] int32, candidate [B] int32).
    """
    a = s * rng.all_candidates(key, num, positions)  # [N, A], shared draw
    sign = rng.signs(rng.path_key(key, path), positions)  # [B, A]
    # Beam j's candidate i is sign_j * a_i. Score of the new partial sum
    # b = rho delta + y (log q(b) - log p(b) up to a constant):
    #   sum_d c2 y^2 + delta y,  c2 = 1/(2 rho) - 1/(2 v_q) = rho (r2 - 1) / (2 v_q),
    # exactly 0 on dims where q = p (padding included). With y = u_j + sign_j a_i:
    #   [c2 u^2 + delta u]_j + [c2 a^2]_i + <(2 c2 u + delta) sign_j, a_i>.
    v_q = rho_k * rho_k * r2 + rho_k * omr_k
    c2 = 0.5 * rho_k * r2m1 / v_q  # [A]
    u = x - rho_k * delta  # [B, A]
    beam_term = jnp.sum((c2 * u + delta) * u, axis=1)  # [B]
    cand_term = jnp.sum(c2 * a * a, axis=1)  # [N]
    w = (2.0 * c2 * u + delta) * sign  # [B, A]
    cross = jnp.matmul(w, a.T, precision=lax.Precision.HIGHEST)  # [B, N]
    total = beam_term[:, None] + cand_term[None, :] + cross
    total = jnp.where(jnp.isfinite(score)[:, None], total, -jnp.inf)
    top, flat = lax.top_k(total.reshape(-1), beams)
    parent = (flat // num).astype(jnp.int32)
    cand = (flat % num).astype(jnp.int32)
    new_x = x[parent] + sign[parent] * a[cand]
    new_path = rng.extend_path(key, path[parent], cand)
    return (
        jnp.where(live_k, new_x, x),
        jnp.where(live_k, top, score),
        jnp.where(live_k, new_path, path),
        jnp.where(live_k, parent, jnp.arange(beams, dtype=jnp.int32)),
        jnp.where(live_k, cand, 0),
    )


@functools.partial(jax.jit, static_argnames=("beams", "num"))
def search(
    key: jax.Array,  # [2] uint32 layer key
    delta: jax.Array,  # [nb, A] float32
    r2: jax.Array,  # [nb, A] float32
    r2m1: jax.Array,  # [nb, A] float32
    positions: jax.Array,  # [nb, A] uint32
    scale: jax.Array,  # [nb, L] float32
    rho: jax.Array,  # [nb, L] float32
    omr: jax.Array,  # [nb, L] float32
    steps: jax.Array,  # [nb] int32
    *,
    beams: int,
    num: int,
) -> jax.Array:
    """Encoder: int32 [nb, L] chosen candidate index of every block and step
    (entries at k >= steps[b] are 0 and not transmitted). All blocks advance
    together, one step per iteration, until the longest block is done."""
    nb, length = scale.shape
    num_dims = delta.shape[1]
    keys = rng.step_keys(key, nb, length)  # [nb, L, 2]
    step = jax.vmap(functools.partial(_beam_step, beams=beams, num=num))

    def body(carry):
        k, x, score, path, parents, cands = carry
        at = lambda a: lax.dynamic_index_in_dim(a, k, axis=1, keepdims=False)  # noqa: E731
        x, score, path, parent, cand = step(
            x, score, path, delta, r2, r2m1, positions, at(scale), at(rho), at(omr), at(keys), k < steps
        )
        parents = lax.dynamic_update_index_in_dim(parents, parent, k, axis=0)
        cands = lax.dynamic_update_index_in_dim(cands, cand, k, axis=0)
        return k + 1, x, score, path, parents, cands

    init = (
        jnp.int32(0),
        jnp.zeros((nb, beams, num_dims), jnp.float32),
        jnp.full((nb, beams), -jnp.inf, jnp.float32).at[:, 0].set(0.0),
        jnp.zeros((nb, beams), jnp.uint32),
        jnp.broadcast_to(jnp.arange(beams, dtype=jnp.int32), (length, nb, beams)),
        jnp.zeros((length, nb, beams), jnp.int32),
    )
    _, _, score, _, parents, cands = lax.while_loop(lambda c: c[0] < jnp.max(steps), body, init)

    # Backtrack from each block's best final beam; padded steps are identity.
    def back(beam, pc):
        parent, cand = pc  # [nb, B] each
        return jnp.take_along_axis(parent, beam[:, None], 1)[:, 0], jnp.take_along_axis(cand, beam[:, None], 1)[:, 0]

    best = jnp.argmax(score, axis=1).astype(jnp.int32)  # [nb]
    _, path = lax.scan(back, best, (parents, cands), reverse=True)  # [L, nb]
    return path.T


@functools.partial(jax.jit, static_argnames=("width",))
def reconstruct(
    key: jax.Array,  # [2] uint32 layer key
    indices: jax.Array,  # [nb, L] int32
    scale: jax.Array,  # [nb, L] float32, 0 past each block's last step
    steps: jax.Array,  # [nb] int32
    gather: jax.Array,  # [D] int32, flat index into [nb, W] of each dimension
    p_loc: jax.Array,  # [D] float32
    p_scale: jax.Array,  # [D] float32
    *,
    width: int,  # W, padded block width
) -> jax.Array:
    """Decoder (and the encoder's final sample): float32 [D] z = mu_p +
    sigma_p * sum_k sqrt(f_k) * sign_k * candidate_k, regenerating only the
    chosen candidate of each step (and the signs of the path that chose it).
    Work O(max_b K_b * nb * W) = O(steps * D)."""
    nb, length = scale.shape
    keys = rng.step_keys(key, nb, length)  # [nb, L, 2]
    positions = jnp.arange(width, dtype=jnp.uint32)

    def one(acc, path, key, idx, s, live):  # one block: [W], scalar path
        cand = rng.signs(rng.path_key(key, path), positions) * rng.one_candidate(key, idx, positions)
        return acc + s * cand, jnp.where(live, rng.extend_path(key, path, idx), path)

    step = jax.vmap(one)

    def body(carry):
        k, acc, path = carry
        at = lambda a: lax.dynamic_index_in_dim(a, k, axis=1, keepdims=False)  # noqa: E731
        acc, path = step(acc, path, at(keys), at(indices), at(scale), k < steps)
        return k + 1, acc, path

    init = (jnp.int32(0), jnp.zeros((nb, width), jnp.float32), jnp.zeros((nb,), jnp.uint32))
    _, x, _ = lax.while_loop(lambda c: c[0] < jnp.max(steps), body, init)
    return p_loc + p_scale * x.reshape(-1)[gather]
