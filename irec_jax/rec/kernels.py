"""The compiled parts of the coder: beam search (encoder) and reconstruction
(decoder). Both are jitted once per padded shape and cached by ``jax.jit``.

Units: everything is standardized by the prior, x = (z - mu_p) / sigma_p, so a
block's prior is N(0, 1) per dimension and its posterior N(delta, r2) with
delta = (mu_q - mu_p) / sigma_p, r2 = (sigma_q / sigma_p)^2. After step k the
partial sum b_k has prior N(0, rho_k) and (marginally, under the posterior
of the auxiliary construction) N(rho_k * delta, rho_k^2 r2 + rho_k (1 - rho_k)).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from irec_jax.rec import rng


def _block_search(
    delta: jax.Array,  # [A] float32, posterior mean of the scored dims
    r2: jax.Array,  # [A] float32, posterior variance of the scored dims
    r2m1: jax.Array,  # [A] float32, r2 - 1 (computed without cancellation)
    positions: jax.Array,  # [A] uint32, within-block dim index of the scored dims
    scale: jax.Array,  # [L] float32, sqrt(f_k): std of step k's candidates (0 past K_b)
    rho: jax.Array,  # [L] float32, cumulative variance fraction after step k
    omr: jax.Array,  # [L] float32, 1 - rho (computed without cancellation)
    keys: jax.Array,  # [L, 2] uint32, step keys
    live: jax.Array,  # [L] bool, k < K_b
    *,
    beams: int,
    num: int,
) -> jax.Array:
    """Beam search over the steps of one block; returns int32 [L] indices of
    the best final beam (0 on padded steps)."""
    num_dims = delta.shape[0]

    def step(carry, inputs):
        x, score, path = carry  # [B, A] beam sums, [B] scores, [B] index-path hashes
        s, rho_k, omr_k, key, live_k = inputs
        a = s * rng.all_candidates(key, num, positions)  # [N, A], shared draw
        sign = rng.signs(rng.path_key(key, path), positions)  # [B, A]
        # Beam j's candidate i is sign_j * a_i. Score of the new partial sum
        # b = rho*delta + y (log q(b) - log p(b) up to a constant):
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
        parent = flat // num
        cand = flat % num
        new_x = x[parent] + sign[parent] * a[cand]
        new_path = rng.extend_path(key, path[parent], cand)
        keep = jnp.arange(beams, dtype=parent.dtype)
        x = jnp.where(live_k, new_x, x)
        score = jnp.where(live_k, top, score)
        path = jnp.where(live_k, new_path, path)
        parent = jnp.where(live_k, parent, keep)
        cand = jnp.where(live_k, cand, 0)
        return (x, score, path), (parent.astype(jnp.int32), cand.astype(jnp.int32))

    x0 = jnp.zeros((beams, num_dims), jnp.float32)
    score0 = jnp.full((beams,), -jnp.inf, jnp.float32).at[0].set(0.0)
    path0 = jnp.zeros((beams,), jnp.uint32)
    (_, score, _), (parents, cands) = lax.scan(step, (x0, score0, path0), (scale, rho, omr, keys, live))

    def back(beam, pc):
        parent, cand = pc
        return parent[beam], cand[beam]

    best = jnp.argmax(score).astype(jnp.int32)
    _, path = lax.scan(back, best, (parents, cands), reverse=True)
    return path


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
    (entries at k >= steps[b] are 0 and not transmitted)."""
    nb, length = scale.shape
    keys = rng.step_keys(key, nb, length)
    live = jnp.arange(length)[None, :] < steps[:, None]
    fn = functools.partial(_block_search, beams=beams, num=num)
    return jax.vmap(fn)(delta, r2, r2m1, positions, scale, rho, omr, keys, live)


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
    chosen candidate of each step (and the signs of the path that chose it). Work O(L * nb * W) = O(steps * D)."""
    nb, length = scale.shape
    keys = rng.step_keys(key, nb, length)
    positions = jnp.arange(width, dtype=jnp.uint32)

    def block(keys_b, idx_b, scale_b, steps_b):
        def step(carry, inp):
            acc, path = carry
            key, idx, s, live = inp
            cand = rng.signs(rng.path_key(key, path), positions) * rng.one_candidate(key, idx, positions)
            path = jnp.where(live, rng.extend_path(key, path, idx), path)
            return (acc + s * cand, path), None

        live = jnp.arange(length) < steps_b
        init = (jnp.zeros(positions.shape, jnp.float32), jnp.uint32(0))
        (acc, _), _ = lax.scan(step, init, (keys_b, idx_b, scale_b, live))
        return acc

    x = jax.vmap(block)(keys, indices, scale, steps)  # [nb, W]
    return p_loc + p_scale * x.reshape(-1)[gather]
