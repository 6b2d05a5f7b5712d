"""RVAE: shapes, parameter counts, fused vs layer-by-layer ELBO, determinism, input checks."""

import contextlib
import functools
import io
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from irec_jax.configs import paper, small
from irec_jax.models import (RVAE, CoupledMixture, ElboTerms, ForwardOutput, Gaussian, Logistic, MixtureOfLogistics,
                             RVAEConfig, TopDownState, elbo_terms, gaussian_kl, log_prob, negative_elbo,
                             sample_gaussian)

IMAGE_SHAPE = (2, 16, 16, 3)


def _expected_param_count(cfg: RVAEConfig) -> int:
    """Closed-form count of the architecture in rvae.py's docstring."""
    c, z, ci = cfg.det_channels, cfg.stoch_channels, cfg.image_channels
    stem = 25 * ci * c + c
    up = 9 * c * (2 * z + c) + (2 * z + c) + 9 * c * c + c
    down = 9 * c * (4 * z + c) + (4 * z + c) + 9 * (z + c) * c + c
    head = 25 * c * cfg.head_channels + cfg.head_channels
    if cfg.likelihood == "logistic" and not cfg.predict_scale:
        head += ci  # learned per-channel scale
    return stem + cfg.num_layers * (up + down) + c + head


def _images(shape=IMAGE_SHAPE, seed=0) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).integers(0, 256, shape), jnp.uint8)


@pytest.fixture(scope="module")
def small_model():
    model = RVAE(RVAEConfig.from_config(small.get_config().model))
    return model, model.init(jax.random.key(0))


@functools.lru_cache(maxsize=None)
def _jit_forward(model: RVAE):
    """One jitted fused pass per model config, shared by the tests (compiles once)."""
    return jax.jit(model.forward)


def _tree_bytes(tree) -> bytes:
    return b"".join(np.asarray(a).tobytes() for a in jax.tree.leaves(tree))


# ----------------------------------------------------------------------------
# Shapes and parameter counts.


def test_param_counts_small_and_paper(small_model):
    model, params = small_model
    assert model.param_count(params) == _expected_param_count(model.config) == 219_942
    kernels = np.asarray(params["down"]["conv1"]["kernel"])  # [L, 3, 3, C, 4Z + C]
    assert kernels.shape[0] == model.num_layers and not np.array_equal(kernels[0], kernels[1])
    paper_model = RVAE(RVAEConfig.from_config(paper.get_config().model))
    abstract = jax.eval_shape(paper_model.init, jax.random.key(0))  # no allocation, no compile
    n = sum(int(a.size) for a in jax.tree.leaves(abstract))
    assert n == paper_model.param_count() == _expected_param_count(paper_model.config) == 29_904_134
    assert abstract["up"]["conv1"]["kernel"].shape == (24, 3, 3, 160, 2 * 32 + 160)
    assert abstract["down"]["conv1"]["kernel"].shape == (24, 3, 3, 160, 4 * 32 + 160)
    assert abstract["down"]["conv2"]["kernel"].shape == (24, 3, 3, 32 + 160, 160)
    assert abstract["top"]["h"].shape == (160,)
    assert abstract["head"]["raw_scale"].shape == (3,)


def test_mixture_model_shapes_and_param_count():
    cfg = RVAEConfig(num_layers=2, det_channels=8, stoch_channels=2, likelihood="mixture", num_mixtures=3)
    model = RVAE(cfg)
    assert model.param_count() == _expected_param_count(cfg)
    params = jax.eval_shape(model.init, jax.random.key(0))
    out = jax.eval_shape(model.forward, params, jax.ShapeDtypeStruct(IMAGE_SHAPE, jnp.uint8), jax.random.key(0))
    assert isinstance(out.likelihood, MixtureOfLogistics)
    assert out.likelihood.logits.shape == out.likelihood.loc.shape == IMAGE_SHAPE + (3,)
    assert out.kl.shape == (2, 2, 2) and out.log_px.shape == (2,)


def test_coupled_model_shapes_and_param_count():
    cfg = RVAEConfig(num_layers=2, det_channels=8, stoch_channels=2, likelihood="coupled", num_mixtures=3)
    model = RVAE(cfg)
    assert cfg.head_channels == (9 + 3) * 3
    assert model.param_count() == _expected_param_count(cfg)
    params = jax.eval_shape(model.init, jax.random.key(0))
    out = jax.eval_shape(model.forward, params, jax.ShapeDtypeStruct(IMAGE_SHAPE, jnp.uint8), jax.random.key(0))
    assert isinstance(out.likelihood, CoupledMixture)
    assert out.likelihood.logits.shape == out.likelihood.loc.shape == IMAGE_SHAPE + (3,)
    assert out.likelihood.coef.shape == IMAGE_SHAPE[:3] + (3, 3)


def test_head_deconv_is_flax_conv_transpose():
    """The head's sub-pixel transposed conv has flax ConvTranspose's parameters,
    initial values and outputs (it only computes them faster)."""
    import flax.linen as nn
    from irec_jax.models import rvae
    h = jax.random.normal(jax.random.key(0), (2, 5, 7, 6))
    ref, new = nn.ConvTranspose(4, (5, 5), strides=(2, 2), padding="SAME"), rvae.SubpixelDeconv(4)
    p_ref, p_new = ref.init(jax.random.key(1), h), new.init(jax.random.key(1), h)
    for a, b in zip(jax.tree.leaves(p_ref), jax.tree.leaves(p_new)):
        np.testing.assert_array_equal(a, b)
    p = jax.tree.map(lambda a: a + jax.random.normal(jax.random.key(2), a.shape), p_ref)
    np.testing.assert_allclose(new.apply(p, h), ref.apply(p, h), atol=1e-5)


def test_fused_and_interface_shapes(small_model):
    model, params = small_model
    cfg = model.config
    x = _images()
    out = _jit_forward(model)(params, x, jax.random.key(1))
    L, B, Z = cfg.num_layers, IMAGE_SHAPE[0], cfg.stoch_channels
    assert out.log_px.shape == (B,)
    assert out.kl.shape == (L, B, Z)
    assert out.z.shape == (L, B, 8, 8, Z)
    assert isinstance(out.likelihood, Logistic)
    assert out.likelihood.loc.shape == out.likelihood.scale.shape == IMAGE_SHAPE
    acts = model.bottom_up(params, x)
    assert acts.loc.shape == acts.raw_scale.shape == (L, B, 8, 8, Z)
    state = model.initial_state(params, x.shape)
    assert state.h.shape == model.state_shape(x.shape) == (B, 8, 8, cfg.det_channels)
    for layer in range(L):
        assert model.latent_shape(x.shape, layer) == (B, 8, 8, Z)
        p = model.prior(params, state, layer)
        q = model.posterior(params, state, acts, layer)
        for g in (p, q):
            assert g.loc.shape == g.scale.shape == (B, 8, 8, Z)
            assert float(jnp.min(g.scale)) > cfg.latent_min_scale
        loc, scale = p  # unpacks as (loc, scale)
        assert loc is p.loc and scale is p.scale
        state = model.advance(params, state, q.loc, layer)
    assert model.likelihood(params, state).loc.shape == IMAGE_SHAPE


# ----------------------------------------------------------------------------
# Fused pass == layer-by-layer pass.


def _layer_by_layer_nelbo(model, params, x, key):
    """Negative ELBO (bits/dim) through the coding interface, z_l = sample_gaussian(key, q_l, l)."""
    acts = model.bottom_up(params, x)
    state = model.initial_state(params, x.shape)
    kls, zs = [], []
    for layer in range(model.num_layers):
        p = model.prior(params, state, layer)
        q = model.posterior(params, state, acts, layer)
        z = sample_gaussian(key, q, layer)
        kls.append(jnp.sum(gaussian_kl(q, p), axis=(1, 2)))
        zs.append(z)
        state = model.advance(params, state, z, layer)
    dist = model.likelihood(params, state)
    out = ForwardOutput(log_px=jnp.sum(log_prob(dist, x), axis=(1, 2, 3)), kl=jnp.stack(kls),
                        z=jnp.stack(zs), likelihood=dist)
    return out, elbo_terms(out, x.shape)


def test_layer_by_layer_equals_fused_elbo(small_model):
    model, params = small_model
    x = _images(seed=1)
    key = jax.random.key(7)
    fused_out = _jit_forward(model)(params, x, key)
    fused = elbo_terms(fused_out, x.shape)
    seq_out, seq = _layer_by_layer_nelbo(model, params, x, key)
    np.testing.assert_allclose(np.asarray(seq_out.z), np.asarray(fused_out.z), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(seq.kl), np.asarray(fused.kl), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(seq.recon), float(fused.recon), rtol=1e-5)
    np.testing.assert_allclose(float(seq.nelbo), float(fused.nelbo), rtol=1e-5)
    assert float(jnp.sum(fused.kl)) > 0  # the layers carry information: the check is not vacuous
    # A different sample gives a different ELBO (the comparison would catch a mix-up of keys).
    other = elbo_terms(_jit_forward(model)(params, x, jax.random.fold_in(key, 1)), x.shape)
    assert float(other.nelbo) != float(fused.nelbo)


def test_elbo_terms_and_free_bits():
    # Two layers, one image, three channels; 4x4x3 image -> 48 dims.
    kl = jnp.array([[[0.05, 1.0, 0.0]], [[2.0, 0.2, 0.01]]])  # [L=2, B=1, Z=3] nats
    out = ForwardOutput(log_px=jnp.array([-100.0]), kl=kl, z=jnp.zeros((2, 1, 2, 2, 3)),
                        likelihood=Logistic(jnp.zeros((1, 4, 4, 3)), jnp.ones((1, 4, 4, 3))))
    to_bpd = 1.0 / (48 * np.log(2.0))
    t = elbo_terms(out, (1, 4, 4, 3))
    np.testing.assert_allclose(np.asarray(t.kl), np.array([1.05, 2.21]) * to_bpd, rtol=1e-6)
    np.testing.assert_allclose(float(t.recon), 100.0 * to_bpd, rtol=1e-6)
    np.testing.assert_allclose(float(t.loss), float(t.nelbo), rtol=1e-7)
    fb = elbo_terms(out, (1, 4, 4, 3), free_bits=0.1)
    np.testing.assert_allclose(float(fb.nelbo), float(t.nelbo), rtol=1e-7)  # reported ELBO unchanged
    clamped = 0.1 + 1.0 + 0.1 + 2.0 + 0.2 + 0.1
    np.testing.assert_allclose(float(fb.loss), (100.0 + clamped) * to_bpd, rtol=1e-6)
    with pytest.raises(ValueError, match="free_bits"):
        elbo_terms(out, (1, 4, 4, 3), free_bits=-1.0)


def test_negative_elbo_is_differentiable(small_model):
    model, params = small_model
    x = _images()
    key = jax.random.key(0, impl="rbg")
    grads = jax.jit(jax.grad(lambda p: negative_elbo(model, p, x, key, 0.1).loss))(params)
    leaves = jax.tree.leaves(grads)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in leaves)
    assert np.any(np.asarray(grads["top"]["h"]) != 0) and np.any(np.asarray(grads["up"]["conv1"]["kernel"]) != 0)


# ----------------------------------------------------------------------------
# Determinism of the decoder-side functions.


def _encode_decode_views(model, params, x, key):
    """Run the encoder (with posteriors) and a decoder (priors only) and return both views."""
    acts = model.bottom_up(params, x)
    enc_state = model.initial_state(params, x.shape)
    enc, zs = [], []
    for layer in range(model.num_layers):
        p = model.prior(params, enc_state, layer)
        q = model.posterior(params, enc_state, acts, layer)
        z = sample_gaussian(key, q, layer)
        enc.append((p, enc_state))
        zs.append(z)
        enc_state = model.advance(params, enc_state, z, layer)
    enc_lik = model.likelihood(params, enc_state)
    dec_state = model.initial_state(params, x.shape)
    dec = []
    for layer, z in enumerate(zs):
        dec.append((model.prior(params, dec_state, layer), dec_state))
        dec_state = model.advance(params, dec_state, z, layer)
    return (enc, enc_lik), (dec, model.likelihood(params, dec_state))


def test_decoder_reproduces_encoder_bit_exactly(small_model):
    model, params = small_model
    x = _images(seed=2)
    enc, dec = _encode_decode_views(model, params, x, jax.random.key(3))
    assert _tree_bytes(enc) == _tree_bytes(dec)
    # A second, independently built model object with an equal config agrees too.
    twin = RVAE(RVAEConfig.from_config(small.get_config().model))
    again = _encode_decode_views(twin, params, x, jax.random.key(3))[1]
    assert _tree_bytes(again) == _tree_bytes(dec)
    # ... and a different z changes the decoder's view (the comparison is not vacuous).
    other = _encode_decode_views(model, params, x, jax.random.key(4))[1]
    assert _tree_bytes(other) != _tree_bytes(dec)


_SUBPROCESS_SCRIPT = textwrap.dedent("""
    import hashlib, sys
    import jax, jax.numpy as jnp, numpy as np
    from irec_jax.configs import small
    from irec_jax.models import RVAE, RVAEConfig
    model = RVAE(RVAEConfig.from_config(small.get_config().model))
    params = model.init(jax.random.key(0))
    shape = (1, 16, 16, 3)
    state = model.initial_state(params, shape)
    rng = np.random.default_rng(11)
    digest = hashlib.sha256()
    for layer in range(model.num_layers):
        p = model.prior(params, state, layer)
        digest.update(np.asarray(p.loc).tobytes()); digest.update(np.asarray(p.scale).tobytes())
        z = jnp.asarray(rng.standard_normal(model.latent_shape(shape, layer)), jnp.float32)
        state = model.advance(params, state, z, layer)
        digest.update(np.asarray(state.h).tobytes())
    dist = model.likelihood(params, state)
    digest.update(np.asarray(dist.loc).tobytes()); digest.update(np.asarray(dist.scale).tobytes())
    print(digest.hexdigest())
""")


def test_prior_and_advance_are_deterministic_across_processes():
    env = dict(os.environ)
    env.setdefault("JAX_PLATFORMS", "cpu")
    child = subprocess.run([sys.executable, "-c", _SUBPROCESS_SCRIPT], capture_output=True, text=True,
                           env=env, check=True, timeout=300).stdout.strip()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(_SUBPROCESS_SCRIPT, "<determinism>", "exec"), {})
    assert len(child) == 64
    assert child == buf.getvalue().strip()


# ----------------------------------------------------------------------------
# Input validation.


@pytest.mark.parametrize("shape,dtype,match", [
    ((16, 16, 3), jnp.uint8, r"\(16, 16, 3\)"),
    ((1, 15, 16, 3), jnp.uint8, r"even.*\(1, 15, 16, 3\)"),
    ((1, 16, 16, 4), jnp.uint8, r"\(1, 16, 16, 4\)"),
    ((1, 16, 16, 3), jnp.float32, r"float32.*\(1, 16, 16, 3\)"),
    ((0, 16, 16, 3), jnp.uint8, r"\(0, 16, 16, 3\)"),
])
def test_bad_images_raise_value_error_quoting_shape(small_model, shape, dtype, match):
    model, params = small_model
    x = jnp.zeros(shape, dtype)
    for fn in (lambda: model.bottom_up(params, x), lambda: model.forward(params, x, jax.random.key(0)),
               lambda: negative_elbo(model, params, x, jax.random.key(0))):
        with pytest.raises(ValueError, match=match):
            fn()


def test_bad_interface_arguments_raise_value_error(small_model):
    model, params = small_model
    state = model.initial_state(params, IMAGE_SHAPE)
    with pytest.raises(ValueError, match=r"\(2, 8, 8, 8\).*\(2, 8, 8, 7\)"):
        model.advance(params, state, jnp.zeros((2, 8, 8, 7)), 0)
    with pytest.raises(ValueError, match=r"int32.*\(2, 8, 8, 8\)"):
        model.advance(params, state, jnp.zeros((2, 8, 8, 8), jnp.int32), 0)
    with pytest.raises(ValueError, match="layer"):
        model.prior(params, state, model.num_layers)
    with pytest.raises(ValueError, match="layer"):
        model.prior(params, state, -1)
    with pytest.raises(ValueError, match=r"\(2, 8, 8, 5\)"):
        model.prior(params, TopDownState(h=jnp.zeros((2, 8, 8, 5))), 0)
    acts = model.bottom_up(params, _images((1, 16, 16, 3)))
    with pytest.raises(ValueError, match=r"\(4, 1, 8, 8, 8\)"):
        model.posterior(params, state, acts, 0)  # acts for batch 1, state for batch 2
    with pytest.raises(ValueError, match=r"\(2, 15, 16, 3\)"):
        model.initial_state(params, (2, 15, 16, 3))
    with pytest.raises(ValueError, match="unknown RVAE config fields"):
        RVAEConfig.from_config({"num_layers": 2, "depth": 3})
    with pytest.raises(ValueError, match="likelihood"):
        RVAEConfig(likelihood="gaussian")
    # numpy integer layer indices are accepted and give the same arrays as Python ints.
    a = model.prior(params, state, np.int64(1))
    b = model.prior(params, state, 1)
    assert _tree_bytes(a) == _tree_bytes(b)
    assert isinstance(a, Gaussian) and not isinstance(a, ElboTerms)
