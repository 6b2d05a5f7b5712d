"""Train the ``small`` RVAE on CPU for a fixed wall-clock budget; report the held-in ELBO.

Data: random 32x32 crops of scikit-image's lossless-origin RGB photos
astronaut.png (NASA, public domain), coffee.png (Rachel Michetti, CC0) and
motorcycle_left.png (Middlebury stereo 2014, redistributed by scikit-image).
The held-in evaluation set is 256 fixed crops of the same photos; the
negative ELBO on it is averaged over 4 posterior samples per crop.

    flock /tmp/irec-bench.lock python bench/train_small.py --minutes 10

Prints a JSON line per evaluation and a final JSON summary. This is a
measurement script, not the training entry point (checkpoints, EMA and
sharding belong to train.py).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import skimage.data
import skimage.io

from irec_jax.configs import small
from irec_jax.data import BatchSpec, train_batch
from irec_jax.models import RVAE, RVAEConfig, negative_elbo
from irec_jax.train import make_optimizer

PHOTOS = ("astronaut.png", "coffee.png", "motorcycle_left.png")


def load_photos() -> list[np.ndarray]:
    """The training photos as uint8 [H, W, 3] arrays (shipped inside scikit-image)."""
    root = os.path.dirname(skimage.data.__file__)
    return [np.ascontiguousarray(skimage.io.imread(os.path.join(root, n))[..., :3]) for n in PHOTOS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--eval-every-s", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    cfg = small.get_config()
    model = RVAE(RVAEConfig.from_config(cfg.model))
    opt = make_optimizer(cfg.train)
    free_bits = float(cfg.train.free_bits)
    photos = load_photos()  # a list of arrays is an ImageSource
    crop = int(cfg.train.crop_size)
    train_spec = BatchSpec(global_batch=int(cfg.train.batch_size), crop=crop, random_flip=False, seed=args.seed)
    eval_x = jnp.asarray(train_batch(photos, BatchSpec(global_batch=256, crop=crop, seed=12345), 0))

    @jax.jit
    def train_step(params, opt_state, x, key):
        grad_fn = jax.value_and_grad(lambda p: negative_elbo(model, p, x, key, free_bits).loss)
        loss, grads = grad_fn(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    @jax.jit
    def eval_nelbo(params, key):
        keys = jax.random.split(key, 4)
        return jnp.mean(jax.vmap(lambda k: negative_elbo(model, params, eval_x, k).nelbo)(keys))

    key = jax.random.key(args.seed)
    params = model.init(jax.random.fold_in(key, 0))
    opt_state = opt.init(params)
    eval_key = jax.random.key(999)
    start = time.perf_counter()
    nelbo0 = float(eval_nelbo(params, eval_key))
    print(json.dumps({"step": 0, "elapsed_s": round(time.perf_counter() - start, 1), "nelbo_bpd": nelbo0}),
          flush=True)
    budget = 60.0 * args.minutes
    step, next_eval, losses = 0, args.eval_every_s, []
    while time.perf_counter() - start < budget:
        x = jnp.asarray(train_batch(photos, train_spec, step))
        params, opt_state, loss = train_step(params, opt_state, x, jax.random.fold_in(key, step + 1))
        losses.append(float(loss))
        step += 1
        if time.perf_counter() - start >= next_eval:
            next_eval += args.eval_every_s
            print(json.dumps({"step": step, "elapsed_s": round(time.perf_counter() - start, 1),
                              "train_loss_bpd": float(np.mean(losses[-50:])),
                              "nelbo_bpd": float(eval_nelbo(params, eval_key))}), flush=True)
    elapsed = time.perf_counter() - start
    nelbo = float(eval_nelbo(params, eval_key))
    print(json.dumps({"final": True, "config": "small", "params": model.param_count(params),
                      "steps": step, "batch": [cfg.train.batch_size, cfg.train.crop_size,
                                               cfg.train.crop_size, 3],
                      "train_s": round(elapsed, 1), "nelbo_bpd_initial": nelbo0,
                      "nelbo_bpd_held_in": nelbo}), flush=True)


if __name__ == "__main__":
    main()
