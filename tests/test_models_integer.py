"""The integer generative path: exact primitives, the conversion, agreement with the float model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from irec_jax import imageio, modelzoo
from irec_jax.assets import bundled_images
from irec_jax.exact import intops
from irec_jax.exact import tables as exact_tables
from irec_jax.models import RVAE, RVAEConfig, integer, likelihoods, rvae

SMALL = RVAEConfig(num_layers=2, det_channels=8, stoch_channels=4, predict_scale=True)


def _round_mul_shift(a, m, s) -> np.ndarray:
    """The definition, in Python integers: floor((a m + 2^(s-1)) / 2^s)."""
    return np.array([(int(x) * int(y) + ((1 << (int(z) - 1)) if z else 0)) >> int(z)
                     for x, y, z in zip(a, m, s)], dtype=object)


@pytest.mark.parametrize("split, a_bits, shifts", [(16, 31, (17, 46)), (8, 19, (9, 38)), (9, 24, (15, 39))])
def test_mul_shift_is_exact_rounding_on_its_domains(split, a_bits, shifts):
    """The three uses (conv rescale, iREC step scale, z = mu + sigma x), extremes included."""
    rng = np.random.default_rng(split)
    lim = 1 << a_bits
    a = np.concatenate([rng.integers(-lim + 1, lim, 6000), [lim - 1, -lim + 1, 0, -1, 1, (1 << split) - 1]])
    m = np.concatenate([rng.integers(0, 2**15 + 1, a.size - 4), [0, 1, 2**14, 2**15]])
    s = rng.integers(shifts[0], shifts[1] + 1, a.size)
    s[-6:] = [shifts[0], shifts[1], shifts[0], shifts[0], shifts[1], shifts[0]]
    want = _round_mul_shift(a, m, s).astype(np.int64)
    got = np.asarray(jax.jit(intops.mul_shift, static_argnums=3)(
        a.astype(np.int32), m.astype(np.int32), s.astype(np.int32), split))
    np.testing.assert_array_equal(got.astype(np.int64), want)


def test_exact_matmul_equals_integer_matmul_at_the_bounds():
    rng = np.random.default_rng(1)
    k = intops.MAX_FAN_IN
    a = rng.integers(-2**15, 2**15, (64, k))
    a[0] = 2**15 - 1  # the largest sums the digit split must keep exact
    a[1] = -2**15
    w = rng.integers(-127, 128, (k, 16))
    w[:, 0] = 127
    w[:, 1] = -127
    got = np.asarray(intops.exact_matmul(jnp.asarray(a, jnp.int32), jnp.asarray(w, jnp.float32)))
    np.testing.assert_array_equal(got, a @ w)
    with pytest.raises(ValueError, match="fan-in"):
        intops.exact_matmul(jnp.zeros((1, k + 1), jnp.int32), jnp.zeros((k + 1, 1), jnp.float32))


def test_both_correlation_methods_are_exact_and_agree():
    """CPU convolution and patches @ matmul give the exact integer correlation at the bounds."""
    rng = np.random.default_rng(4)
    c = intops.MAX_FAN_IN // 9
    x = rng.integers(-2**15, 2**15, (2, 7, 6, c))
    x[0, :, :, :] = 2**15 - 1  # the largest digit sums
    w = rng.integers(-127, 128, (9 * c, 5))
    w[:, 0] = 127
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    want = sum(xp[:, dy:dy + 7, dx:dx + 6, :] @ w.reshape(3, 3, c, 5)[dy, dx] for dy in range(3) for dx in range(3))
    for method in ("conv", "matmul"):
        got = intops.correlate3x3(jnp.asarray(x, jnp.int32), jnp.asarray(w, jnp.float32), method=method)
        np.testing.assert_array_equal(np.asarray(got), want)


def test_elu_and_lookup_follow_their_tables():
    table = jnp.asarray(exact_tables.elu_table())
    x = jnp.asarray([-100000, -8192, -8191, -1024, -1, 0, 1, 5000], jnp.int32)
    got = np.asarray(intops.elu(x, table))
    e = np.asarray(exact_tables.elu_table())
    np.testing.assert_array_equal(got, [-1024, -1024, -e[8191], -e[1024], -e[1], 0, 1, 5000])
    np.testing.assert_allclose(got[3] / 1024, np.expm1(-1.0), atol=1e-3)
    tab = jnp.arange(10, dtype=jnp.int32) * 7
    # index = round(x / 2^4) + 2, clipped.
    np.testing.assert_array_equal(np.asarray(intops.lookup(jnp.asarray([-1000, -40, 8, 24, 1000]), tab,
                                                           drop_bits=4, offset=2)), [0, 0, 21, 28, 63])


def test_subpixel_deconv_equals_flax_conv_transpose():
    """The integer head's sub-pixel layout reproduces flax's 5x5 stride-2 SAME ConvTranspose."""
    rng = np.random.default_rng(2)
    kernel = rng.integers(-127, 128, (5, 5, 3, 2)).astype(np.float32)
    x = rng.integers(-300, 300, (1, 5, 6, 3))
    ref = jax.lax.conv_transpose(jnp.asarray(x, jnp.float32), jnp.asarray(kernel), (2, 2), "SAME",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    w = jnp.asarray(rvae.subpixel_kernel(kernel.astype(np.float64)), jnp.float32)
    mant, shift = jnp.full(2, 1 << 14, jnp.int32), jnp.full(2, 17, jnp.int32)  # rescale by 1/8
    got = intops.deconv5x5s2(jnp.asarray(x, jnp.int32), w, mant, shift, jnp.zeros(2, jnp.int32))
    np.testing.assert_array_equal(np.asarray(got), (np.asarray(ref).astype(np.int64) + 4) >> 3)


def test_conversion_is_deterministic_and_validated():
    params = RVAE(SMALL).init(jax.random.key(0))
    a, b = integer.quantize(SMALL, params), integer.quantize(SMALL, params)
    for (ka, va), (kb, vb) in zip(sorted(integer.flat(a).items()), sorted(integer.flat(b).items())):
        assert ka == kb and np.array_equal(va, vb)
    integer.check_params(SMALL, a)
    assert a["down"]["conv1"]["w"].dtype == np.int8 and np.abs(a["down"]["conv1"]["w"]).max() <= 127
    bad = integer.flat(a)
    bad["top/h"] = bad["top/h"][:-1]
    with pytest.raises(ValueError, match="top/h"):
        integer.check_params(SMALL, modelzoo._unflatten(bad))
    with pytest.raises(ValueError, match="logistic"):
        integer.quantize(RVAEConfig(num_layers=1, det_channels=8, stoch_channels=4, likelihood="mixture"),
                         RVAE(RVAEConfig(num_layers=1, det_channels=8, stoch_channels=4,
                                         likelihood="mixture")).init(jax.random.key(0)))


@pytest.mark.parametrize("predict_scale", [True, False])
def test_integer_path_tracks_the_float_model(predict_scale):
    """Same latents in, nearly the same priors and likelihood out; priors exactly on the grid."""
    cfg = RVAEConfig(num_layers=2, det_channels=8, stoch_channels=4, predict_scale=predict_scale)
    fm = RVAE(cfg)
    params = fm.init(jax.random.key(3))
    ip = integer.quantize(cfg, params)
    im = integer.IntegerRVAE(cfg)
    x = jnp.asarray(imageio.read_image(bundled_images("crops")[0])[None].astype(np.int32))
    sf, si = fm.initial_state(params, x.shape), im.initial_state(ip, x.shape)
    for layer in range(cfg.num_layers):
        pf, pi = fm.prior(params, sf, layer), im.prior(ip, si, layer)
        loc = np.asarray(pi.loc)
        assert np.array_equal(np.round(loc * 1024), loc * 1024)
        frac, _ = np.frexp(np.asarray(pi.scale))
        assert np.array_equal(np.round(frac * 2**15), frac * 2**15)
        np.testing.assert_allclose(pi.loc, pf.loc, atol=0.05)
        np.testing.assert_allclose(pi.scale, pf.scale, rtol=0.05)
        z = pf.loc + pf.scale * jax.random.normal(jax.random.key(layer), pf.loc.shape)
        sf, si = fm.advance(params, sf, z, layer), im.advance(ip, si, z, layer)
        assert si.h.dtype == jnp.int32
    lf, li = fm.likelihood(params, sf), im.likelihood(ip, si)
    np.testing.assert_allclose(np.asarray(li.loc) / 2048, lf.loc, atol=1.0)
    np.testing.assert_allclose(65536 / np.asarray(li.inv_scale), lf.scale, rtol=0.05)


def test_bundled_model_is_integer_and_its_path_is_deterministic():
    cm = modelzoo.load_model()
    assert cm.name == "rvae-coupled-photos-v3" and cm.config.likelihood == "coupled"
    integer.check_params(cm.config, cm.params)
    x = jnp.asarray(imageio.read_image(bundled_images("crops")[1])[None].astype(np.int32))
    m = cm.model
    runs = []
    for _ in range(2):
        state = m.initial_state(cm.params, x.shape)
        for layer in range(m.num_layers):
            state = m.advance(cm.params, state, m.prior(cm.params, state, layer).loc, layer)
        runs.append([np.asarray(a) for a in jax.tree.leaves(m.likelihood(cm.params, state))])
    assert len(runs[0]) == 4 and all(a.dtype == np.int32 for a in runs[0])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_wide_layers_sum_their_channel_chunks_exactly():
    """Fan-in above 512 (e.g. the paper's 160 channels): each chunk of 56 input
    channels is summed exactly and rescaled, then the chunks are added."""
    rng = np.random.default_rng(5)
    c, o = 130, 7  # chunks of 56, 56, 18
    x = rng.integers(-2**15, 2**15, (1, 5, 4, c))
    w = rng.integers(-127, 128, (9 * c, o))
    mant, shift = rng.integers(2**14, 2**15, o), np.full(o, integer.min_shift(c))
    bias = rng.integers(-1000, 1000, o)
    got = intops.conv3x3(*(jnp.asarray(a, jnp.int32) for a in (x,)), jnp.asarray(w, jnp.float32),
                         jnp.asarray(mant, jnp.int32), jnp.asarray(shift, jnp.int32), jnp.asarray(bias, jnp.int32))
    xp = np.pad(x[0], ((1, 1), (1, 1), (0, 0)))
    want = bias.astype(object)
    for start, stop in intops.chunks(c):
        acc = sum(xp[dy:dy + 5, dx:dx + 4, start:stop] @ w.reshape(3, 3, c, o)[dy, dx, start:stop]
                  for dy in range(3) for dx in range(3))
        want = want + np.vectorize(lambda a, m, s: (int(a) * int(m) + (1 << (int(s) - 1))) >> int(s),
                                   otypes=[object])(acc, mant, shift)
    np.testing.assert_array_equal(np.asarray(got)[0], want.astype(np.int64))
    assert [integer.min_shift(k) for k in (56, 57, 112, 113, 224)] == [17, 18, 18, 19, 19]


def test_wide_model_round_trips_and_the_reference_agrees(tmp_path):
    """A model wider than one channel chunk (64 channels: fan-in 576 and 612)
    converts, codes losslessly, and the numpy reference decodes its files."""
    from irec_jax import codec, reference
    cfg = RVAEConfig(num_layers=2, det_channels=64, stoch_channels=4, predict_scale=True)
    params = integer.quantize(cfg, RVAE(cfg).init(jax.random.key(6)))
    cm = modelzoo.CodecModel("wide-test", cfg, params)
    modelzoo.export_model(cm, str(tmp_path))
    img = imageio.read_image(bundled_images("crops")[2])[:18, :22]
    data = codec.compress(img, model=cm)
    np.testing.assert_array_equal(codec.decompress(data, model=cm), img)
    np.testing.assert_array_equal(reference.decode(data, str(tmp_path)), img)


COUPLED = RVAEConfig(num_layers=2, det_channels=8, stoch_channels=4, likelihood="coupled", num_mixtures=3)


def _coupled_params(seed: int = 3):
    """A coupled model whose head is scaled up and biased, so weights and coefficients vary."""
    params = RVAE(COUPLED).init(jax.random.key(seed))
    head = params["head"]["deconv"]
    head["kernel"] = head["kernel"] * 40
    head["bias"] = jax.random.normal(jax.random.key(seed + 1), head["bias"].shape)
    return params


def test_integer_coupled_mixture_tracks_the_float_model():
    """The integer mixture (weights from the exp table, tanh table coefficients)
    codes a photo within 1% of the float model's -log2 p on the same latents."""
    from irec_jax import codec, entropy
    from irec_jax.models import likelihoods as lik
    params = _coupled_params()
    ip = integer.quantize(COUPLED, params)
    integer.check_params(COUPLED, ip)
    fm, im = RVAE(COUPLED), integer.IntegerRVAE(COUPLED)
    img = imageio.read_image(bundled_images("crops")[0])
    x = jnp.asarray(img[None].astype(np.int32))
    sf, si = fm.initial_state(params, x.shape), im.initial_state(ip, x.shape)
    for layer in range(COUPLED.num_layers):
        z = im.prior(ip, si, layer).loc
        sf, si = fm.advance(params, sf, z, layer), im.advance(ip, si, z, layer)
    dist_f, dist_i = fm.likelihood(params, sf), im.likelihood(ip, si)
    assert isinstance(dist_i, lik.QuantizedMixture) and dist_i.weight.shape == dist_f.loc.shape
    w = np.asarray(dist_i.weight)
    assert w.max(axis=-1).min() == 1 << 16 and w.min() >= 0 and np.abs(np.asarray(dist_i.coef)).max() > 0
    float_bits = -float(jnp.sum(lik.log_prob(dist_f, x))) / np.log(2)
    int_bits = entropy.coded_bits(img, codec.pixel_params(dist_i, img.shape))
    assert abs(int_bits / float_bits - 1) < 0.01, (int_bits, float_bits)


def test_coupled_tables_are_validated():
    ip = integer.quantize(COUPLED, _coupled_params())
    assert set(ip["tables"]) == {"latent_mant", "latent_shift", "pixel_inv", "mix_weight", "coef"}
    bad = integer.flat(ip)
    bad["tables/mix_weight"] = bad["tables/mix_weight"].copy()
    bad["tables/mix_weight"][0] = 5
    with pytest.raises(ValueError, match="mix_weight"):
        integer.check_params(COUPLED, modelzoo._unflatten(bad))
    bad = integer.flat(ip)
    bad["tables/coef"] = bad["tables/coef"] * 4
    with pytest.raises(ValueError, match="tables/coef"):
        integer.check_params(COUPLED, modelzoo._unflatten(bad))


def test_coupled_model_round_trips_and_the_reference_decoder_agrees(tmp_path):
    """A coupled-mixture model folder: RGB and grayscale files decode exactly
    with the JAX codec and with the numpy reference decoder."""
    from irec_jax import codec, reference
    cm = modelzoo.CodecModel("coupled-test", COUPLED, integer.quantize(COUPLED, _coupled_params()))
    folder = modelzoo.export_model(cm, str(tmp_path / "model"))
    img = imageio.read_image(bundled_images("crops")[1])[3:28, 1:30]
    for image in (img, img[..., 1:2]):
        data = codec.compress(image, model=folder)
        np.testing.assert_array_equal(codec.decompress(data, model=folder), image)
        np.testing.assert_array_equal(reference.decode(data, model_dir=folder), image)


# ---------------------------------------------------------------------------
# Posterior refinement (encoder only) through the float copy of the integer path.


def _crop_input(i: int = 0):
    from irec_jax import codec
    img = imageio.read_image(bundled_images("crops")[i])
    return img, jnp.asarray(codec.model_input(img, 3))


def test_refinement_lowers_the_integer_models_negative_elbo():
    """The float copy that refinement differentiates tracks the integer path (its loss at the network's
    posteriors is within 2% of the integer path's Monte Carlo -ELBO), and 50 steps lower that -ELBO."""
    from irec_jax import analysis
    cm = modelzoo.load_model()
    img, x = _crop_input()
    before = sum(analysis.elbo_samples(img, cm, 16))
    after = sum(analysis.elbo_samples(img, cm, 16, refine=50))
    acts = cm.model.bottom_up(cm.params, x)
    keys = jnp.stack([jax.random.key(5)])
    levels, weight = rvae.phase_major(x), rvae.phase_major(jnp.ones(x.shape))
    float_bits = np.mean([integer._refine_loss(cm.config, cm.params, levels, weight, keys, acts, jnp.int32(i))
                          for i in range(16)]) / np.log(2)
    assert abs(float_bits / before.mean() - 1) < 0.02, (float_bits, before.mean())
    assert after.mean() < 0.98 * before.mean(), (after.mean(), before.mean())


def test_refinement_schedules_decay_from_their_first_step_size_to_their_last():
    """The lossless schedule starts at its lr and decays monotonically to final_fraction * lr at the end;
    the lossy one is constant; a run of 0 or 1 steps is defined."""
    from irec_jax.models import refine
    s = refine.LOSSLESS
    rates = [s.learning_rate(i, 50) for i in range(51)]
    assert rates[0] == s.lr and abs(rates[-1] - s.final_fraction * s.lr) < 1e-12
    assert all(a > b for a, b in zip(rates, rates[1:])) and s.final_fraction < 1
    assert {refine.LOSSY.learning_rate(i, 50) for i in range(50)} == {refine.LOSSY.lr}
    assert s.learning_rate(0, 0) == s.lr and s.learning_rate(0, 1) == s.lr


def test_refinement_of_a_batch_refines_each_image_as_if_alone():
    """Adam is elementwise and each image draws from its own key: a batch gives each image's refinement
    alone (to float rounding); the weight mask keeps masked subpixels out of the loss."""
    cm = modelzoo.load_model()
    (_, x0), (_, x1) = _crop_input(0), _crop_input(1)
    k0, k1 = jax.random.key(1), jax.random.key(2)
    model, params = cm.model, cm.params
    both = model.refine(params, jnp.concatenate([x0, x1]), model.bottom_up(params, jnp.concatenate([x0, x1])),
                        steps=5, keys=jnp.stack([k0, k1]))
    alone = model.refine(params, x1, model.bottom_up(params, x1), steps=5, keys=jnp.stack([k1]))
    np.testing.assert_allclose(both.loc[:, 1], alone.loc[:, 0], atol=1e-4)
    acts = model.bottom_up(params, x0)
    weight = jnp.ones(x0.shape).at[:, :, 16:].set(0.0)  # the right half does not count
    masked = model.refine(params, x0, acts, steps=5, keys=jnp.stack([k0]), weight=weight)
    other = model.refine(params, x0.at[:, :, 16:].set(255 - x0[:, :, 16:]), acts, steps=5, keys=jnp.stack([k0]),
                         weight=weight)
    np.testing.assert_allclose(masked.loc, other.loc, atol=1e-5)
    full = model.refine(params, x0, acts, steps=5, keys=jnp.stack([k0]))
    assert float(jnp.max(jnp.abs(full.loc - masked.loc))) > 1e-3
    with pytest.raises(ValueError, match="one key per image"):
        model.refine(params, x0, acts, steps=1, keys=jnp.stack([k0, k1]))


@pytest.mark.parametrize("likelihood", ["coupled", "logistic"])
def test_head_in_the_phase_major_layout_equals_the_image_layout(likelihood):
    """The refinement's head (one matmul, channels first, pixels in phase-major order) gives the
    likelihood of subpixel_conv + head_likelihood, moved into that layout."""
    cfg = RVAEConfig(num_layers=1, det_channels=8, stoch_channels=4, likelihood=likelihood, num_mixtures=3)
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.normal(size=(2, 3, 5, 8)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(9 * 8, 4 * cfg.head_channels)) * 0.1, jnp.float32)
    bias = jnp.asarray(rng.normal(size=cfg.head_channels), jnp.float32)
    raw = jnp.asarray(rng.normal(size=3), jnp.float32)
    out = rvae.subpixel_conv_phase_major(x, w, bias)
    np.testing.assert_allclose(np.asarray(out), np.asarray(rvae.phase_major(rvae.subpixel_conv(x, w, bias))),
                               rtol=1e-5, atol=1e-5)
    first = rvae.head_likelihood(cfg, out, raw, channels_first=True)
    last = rvae.head_likelihood(cfg, rvae.subpixel_conv(x, w, bias), raw)
    levels = jnp.asarray(rng.integers(0, 256, (2, 6, 10, 3)))
    np.testing.assert_allclose(np.asarray(likelihoods.log_prob(first, rvae.phase_major(levels), channels_first=True)),
                               np.asarray(rvae.phase_major(likelihoods.log_prob(last, levels))), rtol=1e-5, atol=1e-5)
