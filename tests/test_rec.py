"""Tests of the iREC coder core (irec_jax.rec)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from irec_jax.benchmark.synthetic import gaussian_pair
from irec_jax.exact import tables as exact_tables
from irec_jax.rec import schedule as schedule_lib
from irec_jax.rec import (
    EqualSchedule,
    PowerLawSchedule,
    RecCode,
    RecSettings,
    block_count,
    decode,
    encode,
    encode_batch,
    encode_choices,
    encode_with_info,
    join_codes,
    kernels,
    kl_divergence,
    log_ratio,
    rng,
)
from irec_jax.rec.layout import layout as _layout


def check_round_trip(q_loc, q_scale, p_loc, p_scale, settings=RecSettings(), stream=0) -> RecCode:
    """Encode, decode, and require the decoder's sample to equal the encoder's bit for bit."""
    code, z_hat = encode(q_loc, q_scale, p_loc, p_scale, settings, stream=stream)
    assert z_hat.shape == np.shape(p_loc) and z_hat.dtype == np.float32
    assert np.all(np.isfinite(z_hat))
    z_dec = decode(code, p_loc, p_scale, settings, stream=stream)
    assert z_dec.tobytes() == z_hat.tobytes()
    assert code.indices.dtype == np.int64 and code.steps.dtype == np.int64
    assert code.indices.shape == (code.steps.sum(),)
    assert np.all((code.indices >= 0) & (code.indices < settings.num_candidates))
    return code


def make_pair(kind: str, dims: int, kl: float, seed: int):
    """q, p over ``dims`` dims with about ``kl`` nats of KL, in one of four regimes."""
    rs = np.random.default_rng(seed)
    p_loc = rs.normal(size=dims) * 0.5
    p_scale = np.exp(rs.normal(size=dims) * 0.3)
    if kind == "random":
        pair = gaussian_pair(dims, kl, seed)
        return pair.q_loc * p_scale + p_loc, pair.q_scale * p_scale, p_loc, p_scale
    if kind == "narrow":  # sigma_q << sigma_p: KL from the variance alone
        per_dim = kl / dims
        # 0.5 r^2 - log r - 0.5 = per_dim, solved for small r by fixed point.
        r = np.exp(-(per_dim + 0.5)) if per_dim > 0 else 1.0
        for _ in range(50):
            r = np.exp(-(per_dim + 0.5 - 0.5 * r * r))
        return p_loc.copy(), r * p_scale, p_loc, p_scale
    if kind == "equal":  # sigma_q = sigma_p: KL from the means alone
        shift = rs.choice([-1.0, 1.0], size=dims) * math.sqrt(2.0 * kl / dims)
        return p_loc + shift * p_scale, p_scale.copy(), p_loc, p_scale
    if kind == "tail":  # the posterior far in the prior's tail, on a few dims
        q_loc, q_scale = p_loc.copy(), p_scale.copy()
        hot = rs.choice(dims, size=min(dims, 4), replace=False)
        q_loc[hot] += math.sqrt(2.0 * kl / hot.size) * p_scale[hot]
        q_scale[hot] *= 0.5
        return q_loc, q_scale, p_loc, p_scale
    raise ValueError(kind)


# ---------------------------------------------------------------------------
# Round trips.

_PAIR_300 = gaussian_pair(300, 60.0, seed=5)  # tests share shapes to share compiles


@hsettings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["random", "narrow", "equal", "tail"]),
    dims=st.one_of(st.integers(1, 64), st.integers(65, 20_000)),
    kl=st.one_of(st.just(0.0), st.floats(0.0, 30.0), st.floats(30.0, 2000.0)),
    seed=st.integers(0, 2**32 - 1),
    beams=st.sampled_from([1, 3, 20]),
)
def test_round_trip_is_bit_exact(kind, dims, kl, seed, beams):
    q_loc, q_scale, p_loc, p_scale = make_pair(kind, dims, kl, seed % 1000)
    check_round_trip(q_loc, q_scale, p_loc, p_scale, RecSettings(beams=beams, seed=seed))


def test_round_trip_any_rank_and_dtype():
    pair = gaussian_pair(300, 60.0, seed=3)
    shape = (3, 4, 5, 5)
    args = [a.reshape(shape).astype(np.float32) for a in pair.args()]
    check_round_trip(*args)


def test_round_trip_with_other_schedule_and_epsilon():
    pair = gaussian_pair(300, 60.0, seed=4)
    for s in (RecSettings(schedule=EqualSchedule()), RecSettings(epsilon=0.0, beams=7, omega=2.0)):
        check_round_trip(*pair.args(), s)


def test_decode_needs_the_same_seed_and_stream():
    pair = _PAIR_300
    s = RecSettings(seed=11)
    code, z = encode(*pair.args(), s, stream=2)
    assert np.array_equal(decode(code, pair.p_loc, pair.p_scale, s, stream=2), z)
    assert not np.array_equal(decode(code, pair.p_loc, pair.p_scale, s, stream=3), z)
    assert not np.array_equal(decode(code, pair.p_loc, pair.p_scale, RecSettings(seed=12), stream=2), z)


def test_encoding_is_deterministic_and_seeded():
    pair = _PAIR_300
    c1, z1 = encode(*pair.args(), RecSettings(seed=1))
    c2, z2 = encode(*pair.args(), RecSettings(seed=1))
    c3, _ = encode(*pair.args(), RecSettings(seed=2))
    assert c1 == c2 and z1.tobytes() == z2.tobytes()
    assert c1 != c3


_ENCODE = """
import json, sys, numpy as np
from irec_jax.benchmark.synthetic import gaussian_pair
from irec_jax.rec import RecSettings, encode
pair = gaussian_pair(3000, 400.0, seed=7)
code, z = encode(*pair.args(), RecSettings(seed=99), stream=5)
json.dump({"steps": code.steps.tolist(), "indices": code.indices.tolist(), "n": code.num_candidates,
           "z": z.tobytes().hex()}, open(sys.argv[1], "w"))
"""

_DECODE = """
import json, sys, numpy as np
from irec_jax.benchmark.synthetic import gaussian_pair
from irec_jax.rec import RecCode, RecSettings, decode
d = json.load(open(sys.argv[1]))
pair = gaussian_pair(3000, 400.0, seed=7)
code = RecCode(np.array(d["steps"]), np.array(d["indices"]), d["n"])
z = decode(code, pair.p_loc, pair.p_scale, RecSettings(seed=99), stream=5)
open(sys.argv[2], "w").write(z.tobytes().hex())
"""


@pytest.mark.parametrize("xla_flags", ["", "--xla_cpu_max_isa=SSE4_2", "--xla_cpu_max_isa=AVX2",
                                       "--xla_cpu_multi_thread_eigen=false"])
def test_decoding_in_another_process_is_bit_exact(tmp_path, xla_flags):
    """Encoded under XLA's default CPU code path, decoded in a fresh process on another one."""
    code_file, out_file = tmp_path / "code.json", tmp_path / "z.hex"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    subprocess.run([sys.executable, "-c", _ENCODE, str(code_file)], check=True, env=env)
    subprocess.run([sys.executable, "-c", _DECODE, str(code_file), str(out_file)], check=True,
                   env=dict(env, XLA_FLAGS=xla_flags))
    sent = json.loads(code_file.read_text())
    assert out_file.read_text() == sent["z"]
    # And this process agrees with both.
    pair = gaussian_pair(3000, 400.0, seed=7)
    code = RecCode(np.array(sent["steps"]), np.array(sent["indices"]), sent["n"])
    assert decode(code, pair.p_loc, pair.p_scale, RecSettings(seed=99), stream=5).tobytes().hex() == sent["z"]


# ---------------------------------------------------------------------------
# Codelength accounting and block formation.


@pytest.mark.parametrize("dims,kl", [(1, 0.0), (1, 50.0), (10, 2.0), (8192, 1000.0), (5000, 3000.0)])
def test_codelength_accounting(dims, kl):
    s = RecSettings()
    pair = gaussian_pair(dims, kl, seed=8)
    code, _, info = encode_with_info(*pair.args(), s)
    assert code.ideal_bits == pytest.approx(code.num_steps * math.log2(s.num_candidates))
    assert info.kl == pytest.approx(pair.kl(), rel=1e-9, abs=1e-9)
    # Per-block step counts follow K_b = max(1, ceil(KL_b / omega)) on the decoder-known layout.
    lay = _layout(dims, code.num_blocks, s.seed, 0)
    kl_dim = np.asarray([kl_divergence(pair.q_loc[i], pair.q_scale[i], 0.0, 1.0) for i in range(dims)])
    block_kl = np.bincount(lay.block, weights=kl_dim[lay.perm], minlength=code.num_blocks)
    np.testing.assert_allclose(info.block_kl, block_kl, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(code.steps, np.maximum(np.ceil(block_kl / s.omega), 1))
    # Rounding costs under one step per block.
    assert kl / s.omega <= code.num_steps < kl / s.omega + code.num_blocks + 1e-9
    # Block count: a power of two, each block near block_kl nats when the KL allows.
    nb = code.num_blocks
    assert nb & (nb - 1) == 0 and 1 <= nb <= dims
    if kl >= s.block_kl and dims >= 2 * kl / s.block_kl:
        assert 0.70 * s.block_kl <= kl / nb <= 1.42 * s.block_kl


def test_blocks_partition_the_dimensions():
    lay = _layout(1001, 8, seed=3, stream=1)
    assert sorted(lay.perm.tolist()) == list(range(1001))
    sizes = np.bincount(lay.block)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == 1001
    assert len(set(lay.gather.tolist())) == 1001


def test_near_zero_kl_dims_cost_no_candidate_work():
    dense = gaussian_pair(8192, 1000.0, seed=9)
    sparse = gaussian_pair(8192, 1000.0, seed=9, inactive=0.9)
    _, _, info_d = encode_with_info(*dense.args())
    _, _, info_s = encode_with_info(*sparse.args())
    width = -(-8192 // info_s.scored_dims.size)
    assert info_s.scored_dims.max() <= 0.15 * width  # only the ~10% active dims are scored
    assert info_s.normals < 0.2 * info_d.normals
    # Pruned dims carry at most prune_fraction of each block's KL.
    assert info_d.scored_dims.min() >= 0.5 * width


# ---------------------------------------------------------------------------
# The search itself.


def test_small_tensors_search_with_wider_beams():
    """KL <= 16 block_kl: max(beams, small_beams) beams; larger tensors: beams (encoder only)."""
    small = gaussian_pair(64, 100.0, seed=3)
    large = gaussian_pair(256, 400.0, seed=4)
    s = RecSettings(beams=2, small_beams=8, block_kl=20.0, min_block_kl=20.0)
    for pair, beams in ((small, 8), (large, 2)):
        code, z, info = encode_with_info(*pair.args(), s)
        assert info.candidate_dims == info.normals * beams
        np.testing.assert_array_equal(decode(code, pair.p_loc, pair.p_scale, s), z)
    assert len(encode_choices(*small.args(), s, choices=8)[0]) == 8


def test_a_tensor_coded_in_parts_decodes_as_one():
    """Blocks searched in parts (q changed between them, the block count fixed) join into one code that
    decodes to each part's sample on its own blocks; the whole range is the one-call search."""
    pair = gaussian_pair(2048, 800.0, seed=12)
    s = RecSettings(block_kl=100.0, min_block_kl=100.0, beams=2)
    nb = block_count(*pair.args(), s)
    assert nb == encode(*pair.args(), s)[0].num_blocks == 8
    whole, z_whole, info = encode_choices(*pair.args(), s, choices=2)
    again, z_again, info_again = encode_choices(*pair.args(), s, choices=2, num_blocks=nb, blocks=(0, nb))
    assert [c == w for c, w in zip(again, whole)] == [True, True] and z_again.tobytes() == z_whole.tobytes()
    assert info_again.kl == pytest.approx(info.kl)
    blocks = _layout(2048, nb, s.seed, 3).dim_blocks()
    other = gaussian_pair(2048, 700.0, seed=13)  # the second part codes another posterior
    parts, z = [], np.zeros(2048, np.float32)
    for (lo, hi), q in (((0, 3), pair), ((3, 8), other)):
        codes, zs, part_info = encode_choices(q.q_loc, q.q_scale, pair.p_loc, pair.p_scale, s, stream=3,
                                              num_blocks=nb, blocks=(lo, hi))
        mine = (blocks >= lo) & (blocks < hi)
        np.testing.assert_array_equal(zs[0][~mine], np.round(pair.p_loc[~mine] * 1024) / 1024)  # prior mean
        assert codes[0].num_blocks == hi - lo and part_info.block_kl.shape == (hi - lo,)
        assert part_info.kl == pytest.approx(part_info.block_kl.sum())
        parts.append(codes[0])
        z[mine] = zs[0][mine]
    joined = join_codes(parts)
    assert joined.num_blocks == nb
    np.testing.assert_array_equal(decode(joined, pair.p_loc, pair.p_scale, s, stream=3), z)
    for kwargs, message in (({"num_blocks": 3}, "power of two"), ({"num_blocks": 4096}, "power of two"),
                            ({"blocks": (0, 2)}, "needs num_blocks"), ({"num_blocks": 8, "blocks": (2, 2)}, "lo < hi"),
                            ({"num_blocks": 8, "blocks": (0, 9)}, "hi <= num_blocks"),
                            ({"num_blocks": 8, "blocks": "ab"}, "pair of integers")):
        with pytest.raises(ValueError, match=message):
            encode_choices(*pair.args(), s, **kwargs)
    with pytest.raises(ValueError, match="at least one code"):
        join_codes([])


def test_one_beam_is_argmax_importance_sampling():
    """B = 1: each step keeps the candidate that maximizes log q/p of the partial sum."""
    s = RecSettings(beams=1, small_beams=1, prune_fraction=0.0, seed=21)
    dims = 40
    pair = gaussian_pair(dims, 30.0, seed=10)
    code, z = encode(*pair.args(), s)
    assert code.num_blocks == 1
    lay = _layout(dims, 1, s.seed, 0)
    delta = (pair.q_loc / pair.p_scale)[lay.perm].astype(np.float64)
    r2 = ((pair.q_scale / pair.p_scale) ** 2)[lay.perm]
    K = int(code.steps[0])
    var = schedule_lib.variances(s.schedule, np.array([K]), K)[0]
    mant, shift = schedule_lib.step_scales(var)
    s2 = np.ldexp(mant.astype(np.float64), -shift) ** 2
    frac = s2 / s2.sum()
    table = jnp.asarray(exact_tables.normal_quantiles())
    layer_key = rng.layer_key(jnp.uint32(s.seed), jnp.uint32(0))
    keys = np.asarray(rng.step_keys(layer_key, 1, K))[0]
    positions = jnp.arange(dims, dtype=jnp.uint32)
    x = np.zeros(dims, np.int64)  # the exact partial sum, units 2^-16
    path = jnp.zeros((), jnp.uint32)
    rho = 0.0
    for k in range(K):
        key = jnp.asarray(keys[k])
        sign = np.asarray(rng.signs(rng.path_key(key, path), positions), np.int64)
        cands = np.asarray(rng.all_candidates(key, s.num_candidates, positions, table), np.int64)
        scaled = (cands * int(mant[k]) + (1 << (int(shift[k]) - 1))) >> int(shift[k])  # mul_shift
        rho = 1.0 if k == K - 1 else rho + frac[k]
        b_int = x[None, :] + sign[None, :] * scaled
        b = b_int * 2.0**-16
        var_q = rho * rho * r2 + rho * (1.0 - rho)
        score = np.sum(-0.5 * (b - rho * delta) ** 2 / var_q - 0.5 * np.log(var_q) + 0.5 * b * b / rho, axis=1)
        chosen = int(code.indices[k])
        best = int(np.argmax(score))
        if chosen != best:  # only a float32 near-tie may differ
            assert score[best] - score[chosen] < 1e-3 * max(1.0, abs(score[best]))
        x = b_int[chosen]
        path = rng.extend_path(key, path, jnp.int32(chosen))
    # Decoded exactly: z = loc + round(x sigma) on the 2^-10 grid.
    z_ref = np.empty(dims)
    z_ref[lay.perm] = x * 2.0**-16
    np.testing.assert_allclose(z, z_ref * pair.p_scale + pair.p_loc, rtol=0, atol=2.0**-10 * 0.51 + 1e-4)
    assert np.all(np.round(z * 1024) == z * 1024)


def test_beams_give_a_sample_that_looks_like_the_posterior():
    pair = gaussian_pair(4096, 600.0, seed=12)
    code, z = encode(*pair.args(), RecSettings(beams=20))
    kl = pair.kl()
    err = (z - pair.q_loc) / pair.q_scale
    assert abs(err.mean()) < 0.05
    assert 0.85 < np.mean(err**2) < 1.15
    assert log_ratio(z, *pair.args()) > 0.85 * kl
    # Index bits: (1 + eps) KL plus under one step of rounding per block.
    assert code.ideal_bits / (kl / math.log(2)) < 1.2 * 1.03


def test_hash_is_threefry_2x32():
    from jax.extend.random import threefry2x32_p

    k0, k1 = jnp.uint32(0x13198A2E), jnp.uint32(0x03707344)
    x0 = jnp.arange(64, dtype=jnp.uint32) * jnp.uint32(2654435761)
    x1 = jnp.arange(64, dtype=jnp.uint32) ^ jnp.uint32(0xDEADBEEF)
    ref = threefry2x32_p.bind(*jnp.broadcast_arrays(k0, k1, x0, x1))
    got = rng._hash(k0, k1, x0, x1)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(ref))


def test_candidate_regeneration_matches_the_full_draw():
    table = jnp.asarray(exact_tables.normal_quantiles())
    key = rng.step_keys(rng.layer_key(jnp.uint32(5), jnp.uint32(1)), 2, 3)[1, 2]
    positions = jnp.asarray([0, 3, 7, 100, 4095], jnp.uint32)
    every = np.asarray(rng.all_candidates(key, 37, positions, table))
    assert every.shape == (37, 5) and every.dtype == np.int32
    for i in (0, 1, 17, 36):
        np.testing.assert_array_equal(np.asarray(rng.one_candidate(key, jnp.int32(i), positions, table)),
                                      every[i])
    # Standard normal draws (integers in units of 2^-16).
    many = np.asarray(rng.all_candidates(key, 200, jnp.arange(500, dtype=jnp.uint32), table)).ravel() * 2.0**-16
    assert abs(many.mean()) < 0.02 and abs(many.std() - 1.0) < 0.02
    assert abs(np.mean(many**4) - 3.0) < 0.1  # Gaussian kurtosis


def test_second_tensor_of_the_same_shape_does_not_recompile():
    s = RecSettings()
    encode(*gaussian_pair(2048, 300.0, seed=13).args(), s)
    before = kernels.search._cache_size(), kernels.reconstruct._cache_size()
    encode(*gaussian_pair(2048, 310.0, seed=14).args(), s)
    assert (kernels.search._cache_size(), kernels.reconstruct._cache_size()) == before


# ---------------------------------------------------------------------------
# Batches: M tensors of one shape in one search.

# Varied KL (hence block and step counts), one item of tiny KL, one of none.
_BATCH_KINDS = [("random", 150.0), ("narrow", 0.3), ("random", 400.0), ("equal", 40.0), ("tail", 20.0),
                ("random", 0.0), ("random", 260.0)]


def _batch(dims: int = 300, seed: int = 0, kinds=_BATCH_KINDS) -> list[np.ndarray]:
    pairs = [make_pair(kind, dims, kl, seed + i) for i, (kind, kl) in enumerate(kinds)]
    return [np.stack(arrays) for arrays in zip(*pairs)]


def test_batch_items_decode_alone_exactly():
    s = RecSettings(seed=3)
    args = _batch()
    codes, z, infos = encode_batch(*args, s, stream=4)
    assert z.shape == args[0].shape and z.dtype == np.float32 and len(codes) == len(infos) == len(args[0])
    assert len({c.num_blocks for c in codes}) > 1  # the items' blocks differ in count
    for m, (code, info) in enumerate(zip(codes, infos)):
        item = [a[m] for a in args]
        assert decode(code, item[2], item[3], s, stream=4).tobytes() == z[m].tobytes()
        # The single encoder's layout, steps and block count for this item alone.
        single, _, single_info = encode_with_info(*item, s, stream=4)
        np.testing.assert_array_equal(code.steps, single.steps)
        np.testing.assert_array_equal(code.steps, np.maximum(np.ceil(info.block_kl / s.omega), 1))
        np.testing.assert_array_equal(info.scored_dims, single_info.scored_dims)
        assert info.kl == single_info.kl and np.array_equal(info.block_kl, single_info.block_kl)
        assert np.all((code.indices >= 0) & (code.indices < s.num_candidates))
    assert codes[5].num_steps == codes[5].num_blocks == 1  # KL 0: one step, as encode sends


def test_batch_of_one_is_encode():
    s = RecSettings(seed=5, beams=3)
    args = _batch(kinds=[("random", 90.0)])
    (code,), z, (info,) = encode_batch(*args, s, stream=2)
    single, z1, info1 = encode_with_info(*(a[0] for a in args), s, stream=2)
    assert code == single and z[0].tobytes() == z1.tobytes() and info.padded_shape == info1.padded_shape


def test_batch_any_rank_and_dtype():
    args = [a.reshape(3, 3, 4, 5, 5).astype(np.float32) for a in _batch(kinds=_BATCH_KINDS[:3])]
    codes, z, _ = encode_batch(*args)
    assert z.shape == (3, 3, 4, 5, 5)
    for m in range(3):
        assert decode(codes[m], args[2][m], args[3][m]).tobytes() == z[m].tobytes()


def test_batch_rates_agree_with_single_encodes():
    """Same steps (index bits) as encoding each item alone; the samples' log q/p
    agree on average (codes may differ only where float32 scores near-tie)."""
    s = RecSettings(beams=5)
    args = _batch(seed=10)
    codes, z, _ = encode_batch(*args, s)
    single = [encode(*(a[m] for a in args), s) for m in range(len(codes))]
    assert sum(c.ideal_bits for c in codes) == sum(c.ideal_bits for c, _ in single)
    lr_batch = sum(log_ratio(z[m], *(a[m] for a in args)) for m in range(len(codes)))
    lr_single = sum(log_ratio(zs, *(a[m] for a in args)) for m, (_, zs) in enumerate(single))
    assert lr_batch == pytest.approx(lr_single, rel=0.03)
    assert sum(c == cs for c, (cs, _) in zip(codes, single)) >= len(codes) - 2


def test_batch_concatenates_block_keys():
    """Row j of block_step_keys is block block_ids[j]'s row of step_keys."""
    key = rng.layer_key(jnp.uint32(7), jnp.uint32(3))
    every = np.asarray(rng.step_keys(key, 4, 5))
    ids = jnp.asarray([2, 0, 3, 0, 1], jnp.int32)
    np.testing.assert_array_equal(np.asarray(rng.block_step_keys(key, ids, 5)), every[np.asarray(ids)])


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda a: [a.__setitem__(i, a[i][:0]) for i in range(4)], "leading axis"),
        (lambda a: [a.__setitem__(i, np.zeros(())) for i in range(4)], "leading axis"),
        (lambda a: a.__setitem__(1, a[1][:, :-1]), "q_scale shape"),
        (lambda a: a.__setitem__(2, a[2][:2]), "q_loc shape"),
        (lambda a: [a.__setitem__(i, a[i][:, :0]) for i in range(4)], "empty"),
        (lambda a: a[0].__setitem__((2, 5), np.nan), r"item 2: q_loc has non-finite"),
        (lambda a: a[1].__setitem__((1, 0), 0.0), r"item 1: q_scale must be > 0"),
        (lambda a: a[3].__setitem__((2, 7), -1.0), r"item 2: p_scale"),
        (lambda a: a[2].__setitem__((0, 1), np.inf), r"item 0: p_loc has non-finite"),
        (lambda a: a[0].__setitem__((2, 3), 1e200), r"item 2: KL.*too far"),
        (lambda a: a.__setitem__(0, np.full(a[0].shape, "x")), "real"),
    ],
)
def test_batch_bad_inputs_name_the_item(change, match):
    args = [np.zeros((3, 8)), np.ones((3, 8)), np.zeros((3, 8)), np.ones((3, 8))]
    change(args)
    with pytest.raises(ValueError, match=match):
        encode_batch(*args)
    if "item" in match:  # and encode names no item
        m = int(match.split()[1].rstrip(":"))
        with pytest.raises(ValueError) as e:
            encode(*(a[m] for a in args))
        assert "item" not in str(e.value)


# ---------------------------------------------------------------------------
# Schedules.


def test_power_law_follows_the_published_recurrence():
    K, e = 7, PowerLawSchedule().exponent
    remaining, expect = 1.0, []
    for k in range(K):
        r = (K - k) ** (-e)
        expect.append(r * remaining)
        remaining -= r * remaining
    var = schedule_lib.variances(PowerLawSchedule(), np.array([K, 2]), 9)
    assert var.dtype == np.int64
    np.testing.assert_allclose(var[0, :K] / 2.0**30, expect, rtol=1e-7)
    assert np.all(var[0, K:] == 0) and var[1, 2:].sum() == 0
    assert np.all(var.sum(axis=1) == 1 << 30)  # exactly, in integers


@pytest.mark.parametrize("schedule", [PowerLawSchedule(), PowerLawSchedule(0.5), EqualSchedule()])
def test_schedules_are_positive_and_sum_to_one(schedule):
    steps = np.array([1, 2, 5, 64])
    var = schedule_lib.variances(schedule, steps, 64)
    live = np.arange(64)[None, :] < steps[:, None]
    assert np.all(var[live] > 0) and np.all(var[~live] == 0)
    assert np.all(var.sum(axis=1) == 1 << 30)
    f = schedule_lib.fractions(schedule, steps, 64)
    np.testing.assert_allclose(f.sum(axis=1), 1.0, rtol=1e-12)


def test_step_scales_are_truncated_square_roots():
    var = np.array([1 << 30, 1 << 28, 12345678, 3, 0])
    mant, shift = schedule_lib.step_scales(var)
    assert np.all((mant[:-1] >= 1 << 14) & (mant[:-1] < 1 << 15)) and mant[-1] == 0
    s = np.ldexp(mant.astype(np.float64), -shift)
    exact = np.sqrt(var / 2.0**30)
    assert np.all(s <= exact) and np.all(exact - s <= np.maximum(exact * 2.0**-14, 2.0**-30))
    assert s[0] == 1.0 and s[1] == 0.5


# ---------------------------------------------------------------------------
# Validation.


@pytest.mark.parametrize(
    "field,value",
    [
        ("omega", 0.0),
        ("omega", -1.0),
        ("omega", float("nan")),
        ("omega", 40.0),
        ("omega", 0.5),  # exp(0.6) -> 1 candidate
        ("epsilon", -0.1),
        ("epsilon", float("inf")),
        ("beams", 0),
        ("beams", 2.5),
        ("beams", True),
        ("block_kl", 1.0),
        ("prune_fraction", 1.0),
        ("prune_fraction", -0.1),
        ("seed", -1),
        ("seed", 2**32),
        ("schedule", "power"),
    ],
)
def test_invalid_settings_name_the_setting(field, value):
    with pytest.raises(ValueError, match=field):
        RecSettings(**{field: value})


def test_num_candidates():
    assert RecSettings().num_candidates == 36  # floor(exp(3.6))
    assert RecSettings(epsilon=0.0).num_candidates == 20  # floor(exp(3))


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda a: a.__setitem__(0, np.array([np.nan, 0.0, 0.0])), "non-finite"),
        (lambda a: a.__setitem__(1, np.array([1.0, 0.0, 1.0])), "q_scale"),
        (lambda a: a.__setitem__(3, np.array([1.0, -1.0, 1.0])), "p_scale"),
        (lambda a: a.__setitem__(2, np.array([0.0, np.inf, 0.0])), "non-finite"),
        (lambda a: a.__setitem__(0, np.zeros(4)), "shape"),
        (lambda a: [a.__setitem__(i, np.zeros(0) + (i % 2)) for i in range(4)], "empty"),
        (lambda a: a.__setitem__(0, np.array(["a", "b", "c"])), "real"),
        (lambda a: a.__setitem__(0, np.array([1e200, 0.0, 0.0])), "too far"),
    ],
)
def test_bad_inputs_raise_value_error(change, match):
    args = [np.zeros(3), np.ones(3), np.zeros(3), np.ones(3)]
    change(args)
    with pytest.raises(ValueError, match=match):
        encode(*args)


def test_bad_codes_raise_value_error():
    pair = _PAIR_300
    s = RecSettings()
    code, _ = encode(*pair.args(), s)
    p = (pair.p_loc, pair.p_scale)
    bad = [
        (RecCode(code.steps, code.indices[:-1], code.num_candidates), "indices for"),
        (RecCode(code.steps, code.indices + 36, code.num_candidates), r"in \[0, 36\)"),
        (RecCode(code.steps, code.indices, 20), "candidates"),
        (RecCode(code.steps * 0, code.indices[:0], code.num_candidates), "step counts"),
        (RecCode(np.ones(301, np.int64), np.zeros(301, np.int64), 36), "blocks"),
        (RecCode(np.full(65, 1 << 16), np.zeros(65 << 16, np.int64), 36), "more than"),
        ("not a code", "RecCode"),
    ]
    for c, match in bad:
        with pytest.raises(ValueError, match=match):
            decode(c, *p, s)
    with pytest.raises(ValueError, match="stream"):
        decode(code, *p, s, stream=-1)
    with pytest.raises(ValueError, match="shape"):
        decode(code, pair.p_loc, pair.p_scale[:-1], s)


def test_normals_come_from_the_quantile_table_and_are_symmetric():
    """Candidates are table entries of the top 16 hash bits: integers, finite, antisymmetric."""
    from irec_jax.rec import rng
    table = jnp.asarray(exact_tables.normal_quantiles())
    bits = jnp.array([0, 0xFF, 0xFFFFFFFF, 0xFFFF0000, 0x7FFFFFFF, 0x80000000], jnp.uint32)
    n = np.asarray(rng._to_normal(bits, table))
    assert n.dtype == np.int32
    assert n[0] == -n[2] and n[1] == n[0] and n[3] == n[2] and n[4] == -n[5]
    assert 4.3 < n[2] * 2.0**-16 < 4.4
