"""Discretized logistic / mixture likelihoods: normalization, edge bins, exactness."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit
from hypothesis import given, settings
from hypothesis import strategies as st

from irec_jax.models import likelihoods as lik


def _reference_pmf(loc: float, scale: float) -> np.ndarray:
    """float64 reference: CDF differences with the tails folded into bins 0 and 255."""
    edges = (np.arange(-0.5, 256.0, 1.0) - loc) / scale
    cdf = expit(edges)
    cdf[0], cdf[-1] = 0.0, 1.0
    return np.diff(cdf)


@settings(max_examples=60, deadline=None)
@given(loc=st.floats(-2000.0, 2300.0), log_scale=st.floats(math.log(1e-3), math.log(1e4)))
def test_pmf_is_normalized_and_finite_for_extreme_params(loc, log_scale):
    dist = lik.Logistic(loc=jnp.float32(loc), scale=jnp.float32(math.exp(log_scale)))
    logp = lik.log_prob(dist, jnp.arange(256))
    assert np.all(np.isfinite(np.asarray(logp)))
    total = float(jnp.sum(jnp.exp(logp)))
    assert abs(total - 1.0) < 1e-4, total


@pytest.mark.parametrize("loc,scale", [(0.0, 1.0), (127.3, 4.0), (255.0, 0.3), (40.0, 60.0), (-3.0, 2.0)])
def test_pmf_matches_float64_reference_including_edge_tails(loc, scale):
    got = np.asarray(lik.pmf_table(lik.Logistic(loc=jnp.float32(loc), scale=jnp.float32(scale))), np.float64)
    want = _reference_pmf(loc, scale)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-7)
    # The edge bins hold the tails: bin 0 = P(X < 0.5), bin 255 = P(X >= 254.5).
    assert got[0] == pytest.approx(expit((0.5 - loc) / scale), rel=1e-4, abs=1e-12)
    assert got[255] == pytest.approx(expit((loc - 254.5) / scale), rel=1e-4, abs=1e-12)


def test_log_prob_gradients_are_finite_at_extremes():
    x = jnp.array([0, 1, 128, 254, 255])

    def f(loc, raw):
        return jnp.sum(lik.discretized_logistic_logpmf(x, loc, lik.positive_scale(raw, 0.05)))

    for loc, raw in [(-1e4, -30.0), (1e4, 30.0), (127.5, -30.0), (0.0, 0.0)]:
        g = jax.grad(f, argnums=(0, 1))(jnp.full(5, loc), jnp.full(5, raw))
        assert all(np.all(np.isfinite(np.asarray(a))) for a in g), (loc, raw, g)


def test_positive_scale_floor_and_init():
    raw = jnp.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    s = np.asarray(lik.positive_scale(raw, floor=1e-3, init=2.0))
    assert np.all(s >= 1e-3) and np.all(np.isfinite(s)) and np.all(np.diff(s) >= 0)
    assert s[2] == pytest.approx(1e-3 + 2.0, rel=1e-6)


def test_mixture_with_one_component_equals_logistic_and_is_normalized():
    rng = np.random.default_rng(0)
    shape = (2, 3, 4, 3)
    loc = jnp.asarray(rng.uniform(-20, 280, shape), jnp.float32)
    scale = jnp.asarray(rng.uniform(0.1, 30, shape), jnp.float32)
    x = jnp.asarray(rng.integers(0, 256, shape))
    single = lik.log_prob(lik.Logistic(loc, scale), x)
    mix1 = lik.log_prob(lik.MixtureOfLogistics(jnp.zeros(shape + (1,)), loc[..., None], scale[..., None]), x)
    np.testing.assert_allclose(np.asarray(mix1), np.asarray(single), rtol=1e-5, atol=1e-5)

    k = 4
    mix = lik.MixtureOfLogistics(logits=jnp.asarray(rng.normal(size=shape + (k,)), jnp.float32),
                                 loc=jnp.asarray(rng.uniform(-20, 280, shape + (k,)), jnp.float32),
                                 scale=jnp.asarray(rng.uniform(0.1, 30, shape + (k,)), jnp.float32))
    table = np.asarray(lik.pmf_table(mix), np.float64)
    assert table.shape == shape + (256,)
    np.testing.assert_allclose(table.sum(-1), 1.0, atol=1e-4)
    picked = np.take_along_axis(table, np.asarray(x)[..., None], -1)[..., 0]
    np.testing.assert_allclose(np.log(picked), np.asarray(lik.log_prob(mix, x)), rtol=1e-4, atol=1e-4)
    w, l, s = lik.to_entropy_mixture(mix)
    assert w.dtype == np.float64 and w.shape == shape + (k,)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)


def test_entropy_params_are_exact_float64_level_units():
    loc = jnp.array([[[[0.25, 127.5, 300.0]]]], jnp.float32)
    scale = jnp.array([[[[0.05, 1.0, 80.0]]]], jnp.float32)
    el, es = lik.to_entropy_logistic(lik.Logistic(loc, scale))
    assert el.dtype == np.float64 and es.dtype == np.float64 and el.shape == (1, 1, 1, 3)
    np.testing.assert_array_equal(el, np.asarray(loc, np.float64))
    np.testing.assert_array_equal(es, np.asarray(scale, np.float64))
    with pytest.raises(TypeError):
        lik.to_entropy_logistic(lik.MixtureOfLogistics(loc[..., None], loc[..., None], scale[..., None]))


def test_network_input_range():
    x = jnp.array([0, 255, 128], jnp.uint8)
    np.testing.assert_allclose(np.asarray(lik.to_network_input(x)), [-1.0, 1.0, 0.5 / 127.5], atol=1e-7)


def test_coupled_mixture_is_a_chain_of_normalized_conditionals():
    """Channel 1 given channel 0 (and 2 given 0 and 1) is a mixture at the
    shifted means that sums to one over its 256 levels; channel 0 ignores coupling."""
    rng = np.random.default_rng(5)
    k = 3
    shape = (1, 1, 1, 3, k)
    dist = lik.CoupledMixture(logits=jnp.asarray(rng.normal(size=shape), jnp.float32),
                              loc=jnp.asarray(rng.uniform(20, 230, shape), jnp.float32),
                              scale=jnp.asarray(rng.uniform(0.5, 9, shape), jnp.float32),
                              coef=jnp.asarray(rng.uniform(-1, 1, (1, 1, 1, 3, k)), jnp.float32))
    levels = jnp.arange(256)
    x0, x1, x2 = 200, 31, 77
    for ch in range(3):
        x = jnp.tile(jnp.asarray([x0, x1, x2]), (256, 1)).at[:, ch].set(levels).reshape(256, 1, 1, 3)
        d = jax.tree.map(lambda a: jnp.broadcast_to(a, (256,) + a.shape[1:]), dist)
        lp = lik.log_prob(d, x)[:, 0, 0, ch]
        np.testing.assert_allclose(float(jnp.sum(jnp.exp(lp))), 1.0, rtol=1e-5)
        shift = sum(dist.coef[0, 0, 0, lik.pair_index(ch, j)] * ([x0, x1, x2][j] - 127.5) for j in range(ch))
        plain = lik.MixtureOfLogistics(dist.logits[..., ch, :], dist.loc[..., ch, :] + shift,
                                       dist.scale[..., ch, :])
        want = lik.pmf_table(plain)[0, 0, 0]
        np.testing.assert_allclose(np.exp(np.asarray(lp)), np.asarray(want), rtol=1e-4, atol=1e-9)


def test_coupled_mixture_mode_and_pair_index():
    shape = (2, 3, 4, 3, 2)
    dist = lik.CoupledMixture(logits=jnp.zeros(shape), loc=jnp.full(shape, 100.0), scale=jnp.ones(shape),
                              coef=jnp.full((2, 3, 4, 3, 2), 0.5))
    m = lik.mode(dist)
    assert m.shape == (2, 3, 4, 3)
    # channel 1 = 100 + 0.5 (100 - 127.5); channel 2 = 100 + 0.5 (100 - 127.5) + 0.5 (m1 - 127.5)
    m1 = 100 + 0.5 * (100 - 127.5)
    assert int(m[0, 0, 0, 0]) == 100 and abs(int(m[0, 0, 0, 1]) - m1) <= 0.5
    assert abs(int(m[0, 0, 0, 2]) - (m1 + 0.5 * (int(m[0, 0, 0, 1]) - 127.5))) <= 0.5
    assert [lik.pair_index(c, j) for c in range(3) for j in range(c)] == [0, 1, 2]
    with pytest.raises(ValueError):
        lik.pair_index(1, 1)
    with pytest.raises(TypeError):
        lik.pmf_table(dist)


def test_softplus_is_jax_softplus_with_the_exact_derivative():
    x = np.concatenate([np.linspace(-120, 120, 48001, dtype=np.float32),
                        np.float32([0.0, -0.0, 1e-30, -1e-30, 88.7, -103.9, 3e38, -3e38, np.inf, -np.inf])])
    got, want = np.asarray(jax.jit(lik.softplus)(x)), np.asarray(jax.jit(jax.nn.softplus)(x))
    np.testing.assert_array_equal(got, want)  # bit for bit, the infinities included
    grad = np.asarray(jax.vmap(jax.grad(lik.softplus))(jnp.asarray(x[:-2])))
    np.testing.assert_allclose(grad, expit(x[:-2].astype(np.float64)), rtol=1e-6,
                               atol=np.finfo(np.float32).tiny)  # XLA flushes subnormals to 0
    assert float(jax.grad(lik.softplus)(0.0)) == 0.5  # max and |x| alone would differentiate to 0 here
    np.testing.assert_array_equal(np.asarray(lik.log_sigmoid(x)), np.asarray(jax.nn.log_sigmoid(x)))


@pytest.mark.parametrize("kind", ["logistic", "mixture", "coupled"])
def test_channels_first_layout_gives_the_same_log_prob(kind):
    """log_prob with the channels first ([C, K, pixels]) equals the channels-last one, moved."""
    rng = np.random.default_rng(7)
    pixels, k = (2, 5, 6), 4
    x = np.where(rng.random((*pixels, 3)) < 0.1, 255, rng.integers(0, 256, (*pixels, 3)))
    x[0, 0, 0] = 0  # both edge bins occur
    f = lambda *s: jnp.asarray(rng.normal(size=(*pixels, *s)), jnp.float32)
    if kind == "logistic":
        last = lik.Logistic(loc=120 + 60 * f(3), scale=jnp.exp(f(3)) + 0.1)
    elif kind == "mixture":
        last = lik.MixtureOfLogistics(logits=f(3, k), loc=120 + 60 * f(3, k), scale=jnp.exp(f(3, k)) + 0.1)
    else:
        last = lik.CoupledMixture(logits=f(3, k), loc=120 + 60 * f(3, k), scale=jnp.exp(f(3, k)) + 0.1,
                                  coef=jnp.tanh(f(3, k)))
    extra = 1 if kind == "logistic" else 2
    first = jax.tree.map(lambda a: jnp.moveaxis(a, tuple(range(3, 3 + extra)), tuple(range(extra))), last)
    want = np.moveaxis(np.asarray(lik.log_prob(last, x)), -1, 0)
    got = np.asarray(lik.log_prob(first, jnp.moveaxis(x, -1, 0), channels_first=True))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
