"""The lossy two-level Gaussian VAE: GDN, the coding interface, the fused pass, its training.

Tiny models (8 channels) on 64x64 and 80x96 images. Images: crops of
scikit-image's astronaut.png (NASA, public domain) and random noise.
"""

import functools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
from PIL import Image

from irec_jax.configs import lossy_cpu, lossy_paper
from irec_jax.data import BatchSpec, PngFolder, train_batch
from irec_jax.models import GVAE, GVAEConfig, gaussian_kl, sample_gaussian
from irec_jax.models.gdn import GDN, gdn_coefficients
from irec_jax.train import RateDistortion, init_state, make_objective, make_optimizer, step_key, train_step

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = GVAEConfig(transform_channels=8, latent_channels=6, hyper_channels=8, hyper_latent_channels=4)


@pytest.fixture(scope="module")
def tiny():
    model = GVAE(TINY)
    return model, model.init(jax.random.key(0))


@pytest.fixture(scope="module")
def forward(tiny):
    return jax.jit(tiny[0].forward)


def _images(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 256, shape), jnp.int32)


# ---------------------------------------------------------------------------
# GDN / IGDN.


def test_gdn_and_igdn_match_the_formula():
    """y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2) (IGDN: times), against numpy, with the
    stored parameters mapped to beta >= beta_min and gamma >= 0."""
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 4)).astype(np.float32) * 3
    rng = np.random.default_rng(1)
    beta_p = rng.uniform(0.5, 2.0, 4).astype(np.float32)
    gamma_p = rng.uniform(-0.2, 0.6, (4, 4)).astype(np.float32)  # negative entries clamp to gamma = 0
    beta_p[0] = 0.0  # below the bound: beta = beta_min
    params = {"params": {"beta": beta_p, "gamma": gamma_p}}
    ped = 2.0 ** -36
    beta = np.maximum(beta_p.astype(np.float64), (1e-6 + ped) ** 0.5) ** 2 - ped
    gamma = np.maximum(gamma_p.astype(np.float64), 2.0 ** -18) ** 2 - ped
    norm = beta + np.einsum("bhwj,ij->bhwi", x.astype(np.float64) ** 2, gamma)
    np.testing.assert_allclose(GDN().apply(params, x), x / np.sqrt(norm), rtol=2e-5)
    np.testing.assert_allclose(GDN(inverse=True).apply(params, x), x * np.sqrt(norm), rtol=2e-5)
    b, g = gdn_coefficients(beta_p, gamma_p)
    assert float(b[0]) == pytest.approx(1e-6, rel=1e-3) and float(jnp.min(g)) >= 0.0
    # Initial values: beta = 1, gamma = 0.1 I.
    b0, g0 = gdn_coefficients(**GDN().init(jax.random.key(0), x)["params"])
    np.testing.assert_allclose(b0, 1.0, rtol=1e-6)
    np.testing.assert_allclose(g0, 0.1 * np.eye(4), atol=1e-7)


def test_gdn_lower_bound_lets_gradients_push_parameters_back_into_range():
    x = jnp.ones((1, 1, 1, 1))
    below = {"params": {"beta": jnp.array([-1.0]), "gamma": jnp.array([[-1.0]])}}
    # IGDN output grows with beta: minimizing -y pushes beta up (gradient flows), minimizing y cannot
    up = jax.grad(lambda p: -jnp.sum(GDN(inverse=True).apply(p, x)))(below)["params"]
    down = jax.grad(lambda p: jnp.sum(GDN(inverse=True).apply(p, x)))(below)["params"]
    assert float(up["beta"][0]) < 0 and float(up["gamma"][0, 0]) < 0
    assert float(down["beta"][0]) == 0 and float(down["gamma"][0, 0]) == 0


# ---------------------------------------------------------------------------
# The coding interface.


@pytest.mark.parametrize("hw", [(64, 64), (80, 96)])
def test_interface_shapes_and_ranges(tiny, hw):
    model, params = tiny
    shape = (2, *hw, 3)
    x = _images(shape)
    s2, s1 = model.latent_shapes(shape)
    h2, w2 = -(-hw[0] // 64), -(-hw[1] // 64)
    assert s2 == (2, h2, w2, 4) and s1 == (2, 4 * h2, 4 * w2, 6)
    assert model.latent_shape(shape, 0) == s2 and model.num_layers == 2
    acts = model.bottom_up(params, x)
    state = model.initial_state(params, shape)
    for layer, want in enumerate((s2, s1)):
        p, q = model.prior(params, state, layer), model.posterior(params, state, acts, layer)
        for g in (p, q):
            assert g.loc.shape == g.scale.shape == want
            assert float(jnp.min(g.scale)) > TINY.latent_min_scale
        state = model.advance(params, state, q.loc, layer)
    img = model.reconstruct(params, state)
    assert img.shape == shape and img.dtype == jnp.float32
    assert 0.0 <= float(jnp.min(img)) and float(jnp.max(img)) <= 255.0


def test_encoder_edge_pads_to_a_multiple_of_64_and_the_decoder_crops(tiny):
    model, params = tiny
    x = _images((1, 80, 96, 3))
    padded = jnp.pad(x, ((0, 0), (0, 48), (0, 32), (0, 0)), mode="edge")
    acts = model.bottom_up(params, x)
    for a, b in zip(jax.tree.leaves(acts), jax.tree.leaves(model.bottom_up(params, padded))):
        np.testing.assert_array_equal(a, b)
    small, big = model.initial_state(params, x.shape), model.initial_state(params, padded.shape)
    for layer in range(2):
        z = model.posterior(params, small, acts, layer).loc
        small, big = model.advance(params, small, z, layer), model.advance(params, big, z, layer)
    np.testing.assert_array_equal(model.reconstruct(params, small), model.reconstruct(params, big)[:, :80, :96])


def test_forward_kl_equals_the_layer_by_layer_kl_with_the_same_z(tiny, forward):
    model, params = tiny
    x = _images((2, 80, 96, 3), seed=1)
    key = jax.random.key(7)
    out = forward(params, x, key)
    assert out.kl.shape == (2, 2) and out.reconstruction.shape == x.shape
    acts, state = model.bottom_up(params, x), model.initial_state(params, x.shape)
    kls = []
    for layer, z in enumerate((out.z2, out.z1)):
        p, q = model.prior(params, state, layer), model.posterior(params, state, acts, layer)
        np.testing.assert_allclose(sample_gaussian(key, q, layer), z, rtol=1e-5, atol=1e-5)
        kls.append(jnp.sum(gaussian_kl(q, p), axis=(1, 2, 3)))
        state = model.advance(params, state, z, layer)
    np.testing.assert_allclose(out.kl, jnp.stack(kls), rtol=1e-4)
    assert float(jnp.min(out.kl)) > 0
    np.testing.assert_allclose(model.reconstruct(params, state), jnp.clip(out.reconstruction, 0, 255), atol=1e-3)


def test_inputs_it_cannot_take_raise_with_the_shape(tiny):
    model, params = tiny
    with pytest.raises(ValueError, match=r"must be >= 64, got shape \(1, 48, 64, 3\)"):
        model.bottom_up(params, _images((1, 48, 64, 3)))
    with pytest.raises(ValueError, match=r"\(1, 64, 64\)"):
        model.latent_shapes((1, 64, 64))
    with pytest.raises(ValueError, match="integer levels"):
        model.forward(params, jnp.zeros((1, 64, 64, 3)), jax.random.key(0))
    state = model.initial_state(params, (1, 64, 64, 3))
    with pytest.raises(ValueError, match="layer must be an int in"):
        model.prior(params, state, 2)
    with pytest.raises(ValueError, match=r"must have shape \(1, 1, 1, 4\), got \(1, 4, 4, 6\)"):
        model.advance(params, state, jnp.zeros((1, 4, 4, 6)), 0)
    with pytest.raises(ValueError, match="unknown GVAE config fields"):
        GVAEConfig.from_config({"kind": "gvae", "depth": 3})


def test_parameters_are_strongly_typed_float32(tiny):
    """No weak types: the train step's output state has the input's types (no second compilation)."""
    _, params = tiny
    assert all(a.dtype == jnp.float32 and not a.weak_type for a in jax.tree.leaves(params))


def test_paper_and_cpu_sizes():
    assert GVAE(GVAEConfig.from_config(lossy_paper.get_config().model)).param_count() == 9_711_979
    assert GVAE(GVAEConfig.from_config(lossy_cpu.get_config().model)).param_count() == 1_123_235


# ---------------------------------------------------------------------------
# Training.


@pytest.fixture(scope="module")
def png_folder(tmp_path_factory):
    """Eight 96x96 crops of astronaut and one 40x40 image (smaller than the crops)."""
    d = tmp_path_factory.mktemp("lossy_pngs")
    img = skimage.data.astronaut()
    for i in range(8):
        y, x = 50 * (i // 4) + 100, 90 * (i % 4) + 60
        Image.fromarray(img[y:y + 96, x:x + 96]).save(d / f"{i:02d}.png")
    Image.fromarray(img[:40, :40]).save(d / "tiny.png")
    return d


def test_rate_distortion_loss_decreases(png_folder):
    cfg = lossy_cpu.get_config()
    cfg.train.learning_rate = 3e-3
    objective = RateDistortion(GVAE(TINY), beta=0.01)
    tx = make_optimizer(cfg.train)
    src = PngFolder(str(png_folder), min_size=64)
    assert len(src) == 8 and len(src.skipped) == 1
    spec = BatchSpec(4, 64, seed=0)
    state = init_state(objective.model, tx, 0, (4, 64, 64, 3))
    step = jax.jit(functools.partial(train_step, objective, tx, 0.0))
    losses = []
    for s in range(24):
        state, m = step(state, jnp.asarray(train_batch(src, spec, s), jnp.int32), step_key(state))
        losses.append(float(m["loss"]))
    assert set(m) >= {"loss", "bpp", "kl", "distortion", "mse", "psnr", "grad_norm", "num_skipped"}
    assert m["kl"].shape == (2,) and int(m["num_skipped"]) == 0
    np.testing.assert_allclose(float(m["loss"]), 0.01 * float(m["distortion"]) + float(m["bpp"]), rtol=1e-5)
    assert float(m["psnr"]) == pytest.approx(10 * np.log10(255 ** 2 / float(m["mse"])), abs=1.0)
    assert np.mean(losses[-4:]) < 0.7 * np.mean(losses[:4]), losses


def test_ms_ssim_distortion_is_the_benchmark_ms_ssim(tiny):
    from irec_jax import metrics
    model, params = tiny
    x = skimage.data.astronaut()[100:292, 150:342].astype(np.float32)  # [192, 192, 3]
    y = np.clip(x + np.random.default_rng(0).normal(0, 20, x.shape), 0, 255).astype(np.float32)
    objective = RateDistortion(model, beta=0.03, distortion="ms-ssim")
    d = float(metrics.distortion("ms-ssim", jnp.asarray(x[None]), jnp.asarray(y[None])))
    assert d == pytest.approx(255.0 * (1.0 - metrics.ms_ssim(x, y)), rel=1e-5) and d > 1.0
    key = jax.random.key(5)
    batch = jnp.asarray(x[None], jnp.int32)
    (loss, m), grads = jax.jit(jax.value_and_grad(objective.loss, has_aux=True))(params, batch, key)
    assert float(loss) == pytest.approx(0.03 * float(m["distortion"]) + float(m["bpp"]), rel=1e-5)
    assert 0 < float(m["distortion"]) < 255
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    with pytest.raises(ValueError, match="larger than 160 px"):
        objective.loss(params, _images((1, 128, 128, 3)), key)


def test_objective_is_picked_by_model_kind():
    cfg = lossy_cpu.get_config()
    cfg.train.beta = 0.003
    obj = make_objective(cfg)
    assert isinstance(obj, RateDistortion) and obj.beta == 0.003 and obj.distortion == "mse"
    assert obj.model.config.transform_channels == 64
    cfg.train.distortion = "l1"
    with pytest.raises(ValueError, match="distortion must be one of"):
        make_objective(cfg)
    cfg.model.kind = "vqvae"
    with pytest.raises(ValueError, match="kind must be 'rvae' or 'gvae'"):
        make_objective(cfg)
    for module in (lossy_cpu, lossy_paper):
        doc = module.__doc__
        assert "python train.py" in doc and "--config.train.beta=" in doc
        assert all(b in doc for b in ("0.001, 0.003, 0.01, 0.03, 0.05", "0.003, 0.01, 0.03, 0.08"))


def test_train_py_trains_checkpoints_and_resumes_the_lossy_model(png_folder, tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT,
               JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")
    env.pop("XLA_FLAGS", None)
    workdir = tmp_path / "work"

    def run(num_steps):
        cmd = [sys.executable, os.path.join(ROOT, "train.py"),
               "--config", os.path.join(ROOT, "irec_jax/configs/lossy_cpu.py"), "--workdir", str(workdir),
               f"--config.data.train_dir={png_folder}", f"--config.train.num_steps={num_steps}",
               "--config.model.transform_channels=8", "--config.model.latent_channels=6",
               "--config.model.hyper_channels=8", "--config.model.hyper_latent_channels=4",
               "--config.train.batch_size=2", "--config.train.crop_size=64", "--config.train.log_every=1",
               "--config.train.checkpoint_every=2", "--config.train.beta=0.05",
               "--config.train.eval_every=3", "--config.train.eval_examples=4",
               "--config.train.progress_bar=False"]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
        assert p.returncode == 0, p.stderr[-3000:]
        return p

    first = run(2)
    assert "left out 1 of 9 PNGs" in first.stderr
    assert sorted(int(n) for n in os.listdir(workdir / "checkpoints") if n.isdigit()) == [2]
    metrics = workdir / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    marked = dict(json.loads(lines[0]), resumed_marker=1)  # kept only if the next run resumes at step 2
    metrics.write_text("\n".join([json.dumps(marked)] + lines[1:]) + "\n")
    run(4)
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4] and train[0].get("resumed_marker") == 1
    for r in train:
        assert {"bpp", "mse", "psnr", "distortion", "loss"} <= set(r) and len(r["kl"]) == 2
        assert r["loss"] == pytest.approx(0.05 * r["distortion"] + r["bpp"], rel=1e-5)
    evals = [r for r in records if r["split"] == "eval"]
    assert [r["step"] for r in evals] == [2, 3, 4]  # every 3 steps and at the end of each run
    assert all(r["examples"] == 4 and 0 < r["psnr"] < 60 and len(r["kl"]) == 2 for r in evals)
    assert sorted(int(n) for n in os.listdir(workdir / "checkpoints") if n.isdigit()) == [2, 4]
    meta = json.load(open(next((workdir / "checkpoints" / "4" / "meta").iterdir())))
    assert meta["config"]["model"]["kind"] == "gvae" and meta["config"]["train"]["beta"] == 0.05
