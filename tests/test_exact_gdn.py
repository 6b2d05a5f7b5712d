"""The integer inverse GDN of the lossy decoder path against Python integers."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from irec_jax.exact import intops
from irec_jax.exact.units import ACT_BITS, GDN_GAMMA_BITS, GDN_NORM_BITS, GDN_SQUARE_BITS


def test_isqrt_is_floor_sqrt_everywhere_it_is_defined():
    rng = np.random.default_rng(0)
    n = np.concatenate([np.arange(0, 70_000), rng.integers(0, 2**31 - 1, 100_000),
                        [2**31 - 1, 46340**2, 46340**2 - 1, 46339**2, 2**30 - 1, 2**24 + 1]]).astype(np.int32)
    got = np.asarray(intops.isqrt(jnp.asarray(n)))
    assert np.array_equal(got, [math.isqrt(int(v)) for v in n])


def _inverse_gdn_reference(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """The definition in Python integers: docs/format.md, the lossy synthesis."""
    c = x.shape[-1]
    flat = x.reshape(-1, c)
    out = np.zeros(flat.shape, np.int64)
    drop = GDN_SQUARE_BITS + GDN_GAMMA_BITS - GDN_NORM_BITS
    for n in range(flat.shape[0]):
        sq = [min(max(int(v), -32767), 32767) ** 2 >> (2 * ACT_BITS - GDN_SQUARE_BITS) for v in flat[n]]
        for o in range(c):
            norm = min(min(sum(s * int(gamma[j, o]) for j, s in enumerate(sq)) >> drop, 2**30) + int(beta[o]),
                       2**30 - 1)
            v = min(max(int(flat[n, o]), -(1 << 23)), (1 << 23) - 1)
            out[n, o] = (v * math.isqrt(norm) + (1 << (ACT_BITS - 1))) >> ACT_BITS
    return out.reshape(x.shape)


@pytest.mark.parametrize("scale", [1 << 10, 40_000, 1 << 24])
def test_inverse_gdn_matches_python_integers(scale):
    rng = np.random.default_rng(scale)
    c = 24
    x = rng.integers(-scale, scale, (2, 3, 5, c)).astype(np.int32)
    x[0, 0, 0] = 0
    gamma = rng.integers(0, 1 << 24 if scale == 1 << 10 else 1 << 17, (c, c)).astype(np.int32)
    gamma[:, :4] = rng.integers(0, 64, (c, 4))  # small gammas: the beta-dominated regime
    beta = rng.integers(0, 1 << 24, c).astype(np.int32)
    got = np.asarray(intops.inverse_gdn(jnp.asarray(x), jnp.asarray(gamma), jnp.asarray(beta)))
    assert np.array_equal(got, _inverse_gdn_reference(x, gamma, beta))


def test_inverse_gdn_approximates_the_float_formula():
    rng = np.random.default_rng(3)
    c = 8
    xf = rng.normal(0, 2, (1, 4, 4, c))
    gf = rng.uniform(0, 0.2, (c, c))
    bf = rng.uniform(0.5, 1.5, c)
    want = xf * np.sqrt(bf + np.einsum("...j,jo->...o", xf**2, gf))
    got = intops.inverse_gdn(jnp.asarray(np.round(xf * 2**ACT_BITS).astype(np.int32)),
                             jnp.asarray(np.round(gf * 2**GDN_GAMMA_BITS).astype(np.int32)),
                             jnp.asarray(np.round(bf * 2**GDN_NORM_BITS).astype(np.int32)))
    err = np.abs(np.asarray(got) / 2**ACT_BITS - want)
    assert np.all(err < 1e-3 * np.abs(want) + 4 * 2.0**-ACT_BITS)  # the inputs rounded to 2^-10, times the root


def test_gdn_norm_refuses_too_many_channels():
    with pytest.raises(ValueError, match="259 channels"):
        intops.gdn_norm(jnp.zeros((1, 259), jnp.int32), jnp.zeros((259, 2), jnp.int32), jnp.zeros(2, jnp.int32))


@pytest.mark.parametrize("a,b", [(1 << 16, 1 << 14), ((1 << 16) - 1, 1 << 14), (1 << 20, 1 << 10),
                                 ((1 << 24) - 1, (1 << 24) - 1), (3, 5)])
@pytest.mark.parametrize("beta", [0, 5, (1 << 30) - 1])
def test_gdn_norm_saturates_exactly_at_the_edges(a, b, beta):
    """Sums around 2^40 (the norm's 2^30 after the 10-bit drop), where a digit's term alone saturates."""
    got = intops.gdn_norm(jnp.asarray([[a, 7]], jnp.int32), jnp.asarray([[b], [1]], jnp.int32),
                          jnp.asarray([beta], jnp.int32))
    assert int(np.asarray(got)[0, 0]) == min(min((a * b + 7) >> 10, 2**30) + beta, 2**30 - 1)
