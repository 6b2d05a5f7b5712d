"""Training: the skip-non-finite transform, the pure step, and train.py end to end.

End-to-end runs go through ``python train.py`` in subprocesses on a tiny RVAE
(2 layers, 8/4 channels, 16x16 crops, batch 8) that share one persistent
compilation cache, so only the first run of each program compiles.
Images: crops of scikit-image's astronaut.png (NASA, public domain).
"""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import skimage.data
from PIL import Image

from irec_jax.configs import small
from irec_jax.models import RVAE, RVAEConfig
from irec_jax.train import Elbo, init_state, make_optimizer, skip_nonfinite, step_key, train_step

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--config.model.num_layers=2", "--config.model.det_channels=8", "--config.model.stoch_channels=4",
        "--config.train.batch_size=8", "--config.train.crop_size=16", "--config.train.log_every=1",
        "--config.train.eval_every=1000", "--config.train.eval_examples=8",
        "--config.train.checkpoint_every=3", "--config.train.keep_checkpoints=2",
        "--config.train.progress_bar=False"]


# ---------------------------------------------------------------------------
# Pure pieces, in process.


def test_skip_nonfinite_zeroes_updates_and_keeps_inner_state():
    tx = skip_nonfinite(optax.adam(0.1))
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    upd, state = tx.update({"w": jnp.array([1.0, 2.0, 3.0])}, state, params)
    assert np.all(np.asarray(upd["w"]) != 0) and int(state.num_skipped) == 0
    inner_before = state.inner_state
    upd, state = tx.update({"w": jnp.array([1.0, jnp.nan, 3.0])}, state, params)
    np.testing.assert_array_equal(upd["w"], 0.0)
    assert int(state.num_skipped) == 1 and int(state.last_skipped) == 1
    for a, b in zip(jax.tree.leaves(inner_before), jax.tree.leaves(state.inner_state)):
        np.testing.assert_array_equal(a, b)
    upd, state = tx.update({"w": jnp.array([1.0, jnp.inf, 3.0])}, state, params)
    assert int(state.num_skipped) == 2
    upd, state = tx.update({"w": jnp.ones(3)}, state, params)
    assert int(state.num_skipped) == 2 and int(state.last_skipped) == 0
    assert np.all(np.isfinite(np.asarray(upd["w"])))


def test_optimizer_schedule_and_config_errors():
    cfg = small.get_config().train
    cfg.optimizer, cfg.learning_rate, cfg.lr_decay_steps, cfg.lr_decay_factor = "adamax", 1e-3, (2, 4), 0.3
    tx = make_optimizer(cfg)
    params = {"w": jnp.zeros(())}
    state = tx.init(params)
    steps = []
    for _ in range(6):  # Adamax's first step moves by exactly lr (sign of a constant gradient)
        upd, state = tx.update({"w": jnp.ones(())}, state, params)
        steps.append(-float(upd["w"]))
    np.testing.assert_allclose(steps, [1e-3, 1e-3, 3e-4, 3e-4, 9e-5, 9e-5], rtol=1e-5)
    cfg.optimizer = "sgd"
    with pytest.raises(ValueError, match="optimizer must be one of"):
        make_optimizer(cfg)


class _NaNOnNegativePixels(RVAE):
    """The RVAE, except that a batch holding a negative pixel gives a NaN likelihood (and gradients)."""

    def forward(self, params, x, key):
        out = super().forward(params, x, key)
        return out.replace(log_px=out.log_px * jnp.where(jnp.any(x < 0), jnp.nan, 1.0))


def test_forced_nan_batch_is_skipped_and_reported():
    model = _NaNOnNegativePixels(RVAEConfig(num_layers=1, det_channels=4, stoch_channels=2, predict_scale=True))
    cfg = small.get_config().train
    tx = make_optimizer(cfg)
    state = init_state(model, tx, 0, (2, 8, 8, 3))
    step = jax.jit(lambda s, b, r: train_step(Elbo(model, 0.1), tx, 0.9, s, b, r))
    good = jnp.asarray(np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)), jnp.int32)
    bad = good.at[0, 0, 0, 0].set(-1)

    s1, m1 = step(state, bad, step_key(state))
    assert not np.isfinite(float(m1["loss"]))
    assert int(m1["skipped"]) == 1 and int(m1["num_skipped"]) == 1
    for a, b in zip(jax.tree.leaves((state.params, state.ema_params, state.opt_state.inner_state)),
                    jax.tree.leaves((s1.params, s1.ema_params, s1.opt_state.inner_state))):
        np.testing.assert_array_equal(a, b)
    assert int(s1.step) == 1

    s2, m2 = step(s1, good, step_key(s1))
    assert np.isfinite(float(m2["loss"]))
    assert int(m2["skipped"]) == 0 and int(m2["num_skipped"]) == 1
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s2.params)))
    # EMA (0.9) moved a tenth of the way towards the new params
    a, e, p = (jax.tree.leaves(t)[0] for t in (s1.params, s2.ema_params, s2.params))
    np.testing.assert_allclose(e, 0.9 * a + 0.1 * p, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------
# train.py end to end, in subprocesses.


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    img = skimage.data.astronaut()
    for split, n, off in (("train", 12, 0), ("eval", 8, 300)):
        os.makedirs(root / split)
        for i in range(n):
            y, x = off + 32 * (i // 4), off + 40 * (i % 4)
            Image.fromarray(img[y:y + 24, x:x + 24]).save(root / split / f"{i:02d}.png")
    e = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(root / "jax_cache"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
             JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    e.pop("XLA_FLAGS", None)
    return root, e


def _cmd(root, workdir, num_steps, *extra):
    return [sys.executable, os.path.join(ROOT, "train.py"), "--config", os.path.join(ROOT, "irec_jax/configs/small.py"),
            "--workdir", str(workdir), f"--config.data.train_dir={root / 'train'}",
            f"--config.data.eval_dir={root / 'eval'}", f"--config.train.num_steps={num_steps}", *TINY, *extra]


def _run(cmd, env, timeout=240):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def _metrics(workdir, split="train"):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["split"] == split]


def _tensorboard_scalars(workdir, split):
    """{tag: {step: value}} read back from the TFRecord-framed event files."""
    import struct

    from tensorboardX.proto import event_pb2

    out: dict = {}
    d = os.path.join(workdir, "tensorboard", split)
    for name in sorted(os.listdir(d)):
        data = open(os.path.join(d, name), "rb").read()
        pos = 0
        while pos < len(data):
            (n,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + n])
            pos += 12 + n + 4
            for v in event.summary.value:
                out.setdefault(v.tag, {})[event.step] = v.simple_value
    return out


def _steps(workdir):
    d = os.path.join(workdir, "checkpoints")
    return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


def _start_and_signal(cmd, env, workdir, min_step, sig):
    """Start ``cmd``, wait for a finished checkpoint >= min_step, send ``sig``; returns (rc, stderr)."""
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (_steps(workdir) and _steps(workdir)[-1] >= min_step):
        if p.poll() is not None or time.time() > deadline:
            p.kill()
            raise AssertionError(f"no checkpoint >= {min_step}: rc={p.poll()} {p.communicate()[1][-3000:]}")
        time.sleep(0.05)
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    return p.returncode, err


def _restore(workdir, step):
    import warnings

    import orbax.checkpoint as ocp
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sharding info not provided")
        return ocp.PyTreeCheckpointer().restore(os.path.join(workdir, "checkpoints", str(step), "state"))


def test_sigkill_then_resume_equals_an_uninterrupted_run(env):
    root, e = env
    killed = root / "killed"
    rc, _ = _start_and_signal(_cmd(root, killed, 100_000), e, killed, 3, signal.SIGKILL)
    assert rc == -signal.SIGKILL
    reached = _steps(killed)[-1]
    with open(killed / "metrics.jsonl", "a") as f:  # as if it had logged a step after its last checkpoint
        f.write(json.dumps({"step": reached + 1, "split": "train", "loss": -1.0}) + "\n")
    n = reached + 4  # the resumed run goes on from `reached` to n

    _run(_cmd(root, killed, n), e)
    ref = root / "uninterrupted"
    _run(_cmd(root, ref, n), e)

    assert _steps(killed)[-1] == _steps(ref)[-1] == n
    assert len(_steps(ref)) == 2  # keep_checkpoints
    ref_train, res_train = _metrics(ref), _metrics(killed)
    assert [r["step"] for r in ref_train] == list(range(1, n + 1))
    assert [r["step"] for r in res_train] == list(range(1, n + 1))  # records after the checkpoint dropped
    assert res_train[-1]["loss"] == ref_train[-1]["loss"]  # exact
    assert res_train[-1]["num_skipped"] == 0
    (ref_eval,), (res_eval,) = _metrics(ref, "eval"), _metrics(killed, "eval")
    assert res_eval == ref_eval and len(ref_eval["kl"]) == 2 and ref_eval["step"] == n
    # The same numbers as TensorBoard scalars.
    tb_train, tb_eval = _tensorboard_scalars(ref, "train"), _tensorboard_scalars(ref, "eval")
    assert sorted(tb_train["loss"]) == list(range(1, n + 1))
    assert tb_train["loss"][n] == pytest.approx(ref_train[-1]["loss"], rel=1e-6)
    assert tb_eval["kl/1"][n] == pytest.approx(ref_eval["kl"][1], rel=1e-6)
    a, b = _restore(ref, n), _restore(killed, n)
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b) > 10
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(x, y)  # bit-exact params, EMA, optimizer state, step, rng
    assert int(a["step"]) == n
    from irec_jax.train import load_params
    ema = load_params(ref)  # small: EMA off, so the EMA params are the params
    for x, y in zip(jax.tree.leaves(ema), jax.tree.leaves(a["params"])):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(FileNotFoundError, match="no checkpoint of step 1 "):
        load_params(ref, step=1)

    # A finished run started again does nothing more.
    _run(_cmd(root, ref, n), e)
    assert _metrics(ref)[-1]["step"] == n and len(_metrics(ref)) == n


def test_eight_devices_match_one_device_and_sigterm_saves(env):
    root, e = env
    one = root / "one_device"
    _run(_cmd(root, one, 4, "--config.train.eval_every=0"), e)
    eight = root / "eight_devices"
    e8 = dict(e, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    rc, err = _start_and_signal(_cmd(root, eight, 100_000, "--config.train.eval_every=0"), e8, eight, 4,
                                signal.SIGTERM)
    assert rc == 128 + signal.SIGTERM, err[-3000:]
    assert "stopped by signal 15" in err
    last = _metrics(eight)[-1]["step"]
    assert _steps(eight)[-1] == last  # saved at the step it stopped at
    l1 = [r["loss"] for r in _metrics(one)]
    l8 = [r["loss"] for r in _metrics(eight)[:4]]
    np.testing.assert_allclose(l8, l1, rtol=2e-5)
    assert l1[0] != l1[-1]


_MOCK_RUN = """
import json, sys
import tensorflow_datasets as tfds
from irec_jax.configs import small
from irec_jax.train import train_and_evaluate
cfg = small.get_config()
cfg.model.num_layers, cfg.model.det_channels, cfg.model.stoch_channels = 2, 8, 4
cfg.train.batch_size, cfg.train.crop_size, cfg.train.num_steps = 8, 16, 1
cfg.train.eval_every, cfg.train.eval_examples, cfg.train.progress_bar = 1, 16, False
cfg.data.name = "cifar10"
with tfds.testing.mock_data(num_examples=20):
    out = train_and_evaluate(cfg, sys.argv[1])
print(json.dumps({"step": out["step"], "train": out["train"], "eval": out["eval"]}))
"""


def test_one_step_over_tfds_mock_data(env):
    root, e = env
    p = _run([sys.executable, "-c", _MOCK_RUN, str(root / "mock")], e)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["step"] == 1 and out["train"]["step"] == 1
    assert np.isfinite(out["train"]["loss"]) and out["train"]["num_skipped"] == 0
    assert out["eval"]["examples"] == 16 and len(out["eval"]["kl"]) == 2
    assert 4.0 < out["eval"]["nelbo"] < 30.0  # uniform noise under an untrained model
    assert _steps(root / "mock") == [1]


def test_bad_data_config_fails_with_a_clear_error(env):
    root, e = env
    p = subprocess.run(_cmd(root, root / "bad", 1, f"--config.data.train_dir={root / 'nowhere'}"),
                       env=e, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "does not exist or is not a directory" in p.stderr


@pytest.mark.parametrize("name, data, bpd", [("paper", "cifar10", None), ("cifar10", "cifar10", "3.55"),
                                              ("imagenet32", "imagenet32", "4.18"), ("small", "folder", None)])
def test_configs_build_a_model_and_an_optimizer(name, data, bpd):
    import importlib
    module = importlib.import_module(f"irec_jax.configs.{name}")
    cfg = module.get_config()
    assert cfg.data.name == data
    RVAEConfig.from_config(cfg.model)
    make_optimizer(cfg.train)
    if bpd:
        assert bpd in module.__doc__ and "python train.py" in module.__doc__


def test_bad_train_config_is_rejected_before_any_work(tmp_path):
    from irec_jax.train import train_and_evaluate
    cfg = small.get_config()
    cfg.train.checkpoint_every = 0
    with pytest.raises(ValueError, match="checkpoint_every must be >= 1"):
        train_and_evaluate(cfg, str(tmp_path))
    cfg = small.get_config()
    with pytest.raises(ValueError, match="train_dir must name a folder"):
        train_and_evaluate(cfg, str(tmp_path))


def test_too_small_eval_set_is_refused_before_training(tmp_path):
    """An evaluation folder without one full batch fails at startup, not at the first evaluation."""
    from irec_jax.train import train_and_evaluate

    for name in ("train", "eval"):
        (tmp_path / name).mkdir()
    img = skimage.data.astronaut()[:64, :64]
    Image.fromarray(img).save(tmp_path / "train" / "a.png")
    Image.fromarray(img).save(tmp_path / "eval" / "a.png")
    cfg = small.get_config()
    cfg.data.train_dir, cfg.data.eval_dir = str(tmp_path / "train"), str(tmp_path / "eval")
    cfg.train.eval_every, cfg.train.batch_size, cfg.train.progress_bar = 5, 4, False
    workdir = tmp_path / "work"
    with pytest.raises(ValueError, match="no full batch of 4.*eval_every=0"):
        train_and_evaluate(cfg, str(workdir))
    assert not (workdir / "checkpoints").exists() or not os.listdir(workdir / "checkpoints")
