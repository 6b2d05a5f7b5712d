"""Parameter counts and forward/backward step times of the RVAE configs.

Times one jitted ``value_and_grad`` of the negative ELBO (forward + backward,
no optimizer update) on random 8-bit images, after one warm-up call.

    python bench/model_bench.py                       # small @ 32x32x32x3, paper @ 8x32x32x3
    python bench/model_bench.py --config small --batch 32 --size 32 --repeats 20

Prints one JSON object per config. Timings depend on the machine and on what
else runs on it; take them under ``flock /tmp/irec-bench.lock`` on a shared box.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import time

import jax
import jax.numpy as jnp

from irec_jax.models import RVAE, RVAEConfig, negative_elbo


def bench(config_name: str, batch: int, size: int, repeats: int) -> dict:
    """Time forward/backward of ``config_name`` at batch [batch, size, size, 3]."""
    cfg = importlib.import_module(f"irec_jax.configs.{config_name}").get_config()
    model = RVAE(RVAEConfig.from_config(cfg.model))
    params = model.init(jax.random.key(0))
    x = jax.random.randint(jax.random.key(1), (batch, size, size, 3), 0, 256).astype(jnp.uint8)
    free_bits = float(cfg.train.free_bits)

    @jax.jit
    def step(params, x, key):
        return jax.value_and_grad(lambda p: negative_elbo(model, p, x, key, free_bits).loss)(params)

    t0 = time.perf_counter()
    jax.block_until_ready(step(params, x, jax.random.key(2)))
    first = time.perf_counter() - t0
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(step(params, x, jax.random.key(3 + i)))
        times.append(time.perf_counter() - t0)
    return {
        "config": config_name, "params": model.param_count(params),
        "batch_shape": [batch, size, size, 3], "first_call_s": round(first, 3),
        "step_s_median": round(statistics.median(times), 4), "step_s_min": round(min(times), 4),
        "repeats": repeats, "backend": jax.default_backend(), "devices": jax.device_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=["small", "paper"], action="append")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int)
    args = parser.parse_args()
    defaults = {"small": (32, 20), "paper": (8, 5)}
    for name in args.config or ["small", "paper"]:
        batch, repeats = defaults[name]
        print(json.dumps(bench(name, args.batch or batch, args.size, args.repeats or repeats)), flush=True)


if __name__ == "__main__":
    main()
