"""Measure train.py: steps/s of a config on 1 and on 8 fake CPU devices; SIGKILL + resume.

Data: scikit-image's lossless-origin photos astronaut.png (NASA, public
domain), coffee.png (CC0) and motorcycle_left.png (Middlebury 2014), copied
to a temporary PNG folder (random 32x32 crops and flips).

    flock /tmp/irec-bench.lock python bench/train_bench.py --steps 150 --kill-after 100 --resume-to 200

Prints one JSON object: steps/s per device count (median over the log
intervals after the first, which holds compilation), and for the kill test the
step each run reached, their final losses and whether every checkpointed
array (params, EMA, optimizer state, step, rng) is bit-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = ("astronaut.png", "coffee.png", "motorcycle_left.png")


def _cmd(config: str, data: str, workdir: str, steps: int, *extra: str) -> list[str]:
    return [sys.executable, os.path.join(ROOT, "train.py"), "--config", config, "--workdir", workdir,
            f"--config.data.train_dir={data}", f"--config.train.num_steps={steps}",
            "--config.train.eval_every=0", "--config.train.progress_bar=False", *extra]


def _train_records(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["split"] == "train"]


def _ckpt_steps(workdir: str) -> list[int]:
    d = os.path.join(workdir, "checkpoints")
    return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=os.path.join(ROOT, "irec_jax/configs/small.py"))
    ap.add_argument("--steps", type=int, default=150, help="steps of each speed run")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--kill-after", type=int, default=100, help="SIGKILL once a checkpoint >= this exists")
    ap.add_argument("--resume-to", type=int, default=200, help="final step of the resumed and reference runs")
    args = ap.parse_args()

    import skimage.data
    tmp = tempfile.mkdtemp(prefix="irec-train-bench-")
    data = os.path.join(tmp, "photos")
    os.makedirs(data)
    for n in PHOTOS:
        shutil.copy(os.path.join(os.path.dirname(skimage.data.__file__), n), os.path.join(data, n))
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=os.path.join(tmp, "jax_cache"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", PYTHONPATH=ROOT)
    env.pop("XLA_FLAGS", None)
    result: dict = {"config": args.config, "speed": {}}

    for devices in (1, 8):
        e = dict(env, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
        w = os.path.join(tmp, f"speed{devices}")
        subprocess.run(_cmd(args.config, data, w, args.steps, f"--config.train.log_every={args.log_every}"),
                       env=e, check=True, capture_output=True)
        rates = [r["steps_per_sec"] for r in _train_records(w)[1:]]
        result["speed"][f"{devices}_devices"] = {"steps_per_sec": float(np.median(rates)), "intervals": rates}

    every = ["--config.train.checkpoint_every=50", "--config.train.log_every=10"]
    killed, ref = os.path.join(tmp, "killed"), os.path.join(tmp, "reference")
    p = subprocess.Popen(_cmd(args.config, data, killed, 10**6, *every), env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (_ckpt_steps(killed) and _ckpt_steps(killed)[-1] >= args.kill_after):
        if p.poll() is not None:
            raise SystemExit(f"training exited early with {p.returncode}")
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    killed_at = {"latest_checkpoint": _ckpt_steps(killed)[-1], "last_logged_step": _train_records(killed)[-1]["step"]}
    subprocess.run(_cmd(args.config, data, killed, args.resume_to, *every), env=env, check=True, capture_output=True)
    subprocess.run(_cmd(args.config, data, ref, args.resume_to, *every), env=env, check=True, capture_output=True)

    import jax
    import orbax.checkpoint as ocp
    a, b = (ocp.PyTreeCheckpointer().restore(os.path.join(w, "checkpoints", str(args.resume_to), "state"))
            for w in (ref, killed))
    same = all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    result["kill_resume"] = {
        "killed_at": killed_at, "resumed_final_step": _train_records(killed)[-1]["step"],
        "reference_final_step": _train_records(ref)[-1]["step"],
        "resumed_final_loss": _train_records(killed)[-1]["loss"],
        "reference_final_loss": _train_records(ref)[-1]["loss"],
        "checkpoint_arrays_bit_identical": bool(same), "num_arrays": len(jax.tree.leaves(a))}
    print(json.dumps(result, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
