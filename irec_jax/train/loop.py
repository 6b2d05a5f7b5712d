"""``train_and_evaluate(config, workdir)``: the training loop around the pure train step.

Data parallel over all devices of all processes: a 1-D ``Mesh`` with axis
``"data"``; the batch is sharded over it (each process builds only its own
rows), the state is replicated. Checkpoints (orbax) every
``train.checkpoint_every`` steps, at the end and on SIGTERM/SIGINT; a run
resumes from the latest checkpoint in ``workdir``. Metrics go to
``workdir/metrics.jsonl`` (one JSON object per line), TensorBoard event files
under ``workdir/tensorboard/`` and a tqdm bar.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from irec_jax import data as data_lib
from irec_jax.train import checkpoint as ckpt
from irec_jax.train.objectives import make_objective
from irec_jax.train.step import TrainState, eval_step, init_state, make_optimizer, step_key, train_step


class TrainingInterrupted(Exception):
    """Raised after the checkpoint that a SIGTERM/SIGINT asked for has been written."""

    def __init__(self, signum: int, step: int):
        super().__init__(f"training stopped by signal {signum} after saving step {step}")
        self.signum, self.step = signum, step


def make_sources(data_cfg: Any, min_size: int = 0) -> tuple[data_lib.ImageSource, data_lib.ImageSource]:
    """(train, eval) sources of ``config.data``: name "folder" (train_dir, eval_dir) or a tfds name.

    Folders leave out images with a side below ``min_size`` (the crop size).
    """
    name = data_cfg.name
    if name == "folder":
        if not data_cfg.train_dir:
            raise ValueError("config.data.train_dir must name a folder of PNGs (--config.data.train_dir=DIR)")
        train = data_lib.PngFolder(data_cfg.train_dir, min_size=min_size)
        eval_ = data_lib.PngFolder(data_cfg.eval_dir, min_size=min_size) if data_cfg.eval_dir else train
        return train, eval_
    data_dir = data_cfg.get("tfds_data_dir", "") or None
    return (data_lib.tfds_source(name, "train", data_dir), data_lib.tfds_source(name, "test", data_dir))


class _SignalFlag:
    """Records SIGTERM/SIGINT instead of dying; restores the old handlers on exit."""

    def __init__(self):
        self.signum = 0
        self._old: dict[int, Any] = {}

    def __enter__(self):
        try:
            for s in (signal.SIGTERM, signal.SIGINT):
                self._old[s] = signal.signal(s, self._handle)
        except ValueError:  # not the main thread: no handlers
            pass
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def _write_jsonl(path: str, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


class _MetricsLog:
    """Appends each record to ``workdir/metrics.jsonl`` and writes its numbers as
    TensorBoard scalars under ``workdir/tensorboard/{train,eval}`` (tensorboardX;
    a per-layer list ``kl`` becomes ``kl/0``, ``kl/1``, ...)."""

    def __init__(self, workdir: str):
        from tensorboardX import SummaryWriter

        self.path = os.path.join(workdir, "metrics.jsonl")
        self._root = os.path.join(workdir, "tensorboard")
        self._writers: dict[str, Any] = {}
        self._new = SummaryWriter

    def write(self, record: dict) -> None:
        _write_jsonl(self.path, record)
        split, step = record["split"], int(record["step"])
        if split not in self._writers:
            self._writers[split] = self._new(os.path.join(self._root, split))
        tb = self._writers[split]
        for name, value in record.items():
            if name in ("split", "step"):
                continue
            tagged = [(f"{name}/{i}", v) for i, v in enumerate(value)] if isinstance(value, list) else [(name, value)]
            for tag, v in tagged:
                if isinstance(v, (int, float)):
                    tb.add_scalar(tag, v, step)
        tb.flush()

    def close(self) -> None:
        for tb in self._writers.values():
            tb.close()


def _truncate_jsonl(path: str, last_step: int) -> None:
    """Drop records of steps after ``last_step`` (logged by a run killed after its last checkpoint)."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= last_step]
    with open(path + ".tmp", "w") as f:
        f.writelines(lines)
    os.replace(path + ".tmp", path)


def _check_config(tcfg: Any) -> None:
    for name in ("num_steps", "batch_size", "crop_size", "log_every", "checkpoint_every", "keep_checkpoints"):
        if int(tcfg[name]) < 1:
            raise ValueError(f"config.train.{name} must be >= 1, got {tcfg[name]}")
    for name in ("eval_every", "eval_examples", "free_bits", "ema_decay"):
        if tcfg.get(name, 0) < 0:
            raise ValueError(f"config.train.{name} must be >= 0, got {tcfg[name]}")
    if tcfg.ema_decay >= 1:
        raise ValueError(f"config.train.ema_decay must be < 1, got {tcfg.ema_decay}")


def _to_python(metrics: dict) -> dict:
    out = {}
    for k, v in jax.device_get(metrics).items():
        v = np.asarray(v)
        out[k] = v.tolist() if v.ndim else (int(v) if np.issubdtype(v.dtype, np.integer) else float(v))
    return out


def evaluate(model: Any, params: Any, source: data_lib.ImageSource, spec: data_lib.BatchSpec,
             max_examples: int, eval_fn: Callable, to_global: Callable, key: jax.Array) -> dict:
    """Means of ``eval_fn``'s metrics over the eval batches (``model`` is not used)."""
    sums, n = None, 0
    for b, local in enumerate(data_lib.eval_batches(source, spec, max_examples)):
        m = eval_fn(params, to_global(local), jax.random.fold_in(key, b))
        sums = m if sums is None else jax.tree.map(jnp.add, sums, m)
        n += 1
    out = _to_python(jax.tree.map(lambda x: x / n, sums))
    out["examples"] = n * spec.global_batch
    return out


def train_and_evaluate(config: Any, workdir: str) -> dict:
    """Train ``config`` (see irec_jax/configs) in ``workdir``.

    Returns ``{"step": int, "state": TrainState, "train": {...}, "eval": {...}}``
    (the last logged metrics; "train"/"eval" absent if none were logged).
    Resumes from the latest checkpoint in ``workdir`` if there is one (and
    drops metrics.jsonl records logged after it).
    Raises TrainingInterrupted after saving when SIGTERM/SIGINT arrives.
    """
    tcfg, dcfg = config.train, config.data
    _check_config(tcfg)
    if config.get("distributed", False):
        jax.distributed.initialize()
    os.makedirs(workdir, exist_ok=True)
    devices = np.array(jax.devices())
    mesh = Mesh(devices, ("data",))
    batch_sharding = NamedSharding(mesh, P("data"))
    replicated = NamedSharding(mesh, P())
    for name in ("batch_size", "eval_batch_size"):
        if tcfg.get(name, 0) % len(devices):
            raise ValueError(f"config.train.{name} {tcfg[name]} must divide by the {len(devices)} devices")
    host, hosts = jax.process_index(), jax.process_count()
    is_main = host == 0

    objective = make_objective(config)  # the model and its loss, by config.model.kind
    model = objective.model
    tx = make_optimizer(tcfg)
    train_src, eval_src = make_sources(dcfg, min_size=int(tcfg.crop_size))
    for src in ((train_src,) if eval_src is train_src else (train_src, eval_src)) if is_main else ():
        if getattr(src, "skipped", ()):
            print(f"note: left out {len(src.skipped)} of {len(src.skipped) + len(src)} PNGs under {src.path!r} "
                  f"(smaller than the {tcfg.crop_size}x{tcfg.crop_size} crop)", file=sys.stderr)
    train_spec = data_lib.BatchSpec(tcfg.batch_size, tcfg.crop_size, bool(dcfg.random_flip),
                                    int(dcfg.get("seed", tcfg.seed)), host, hosts)
    eval_spec = data_lib.BatchSpec(tcfg.get("eval_batch_size", 0) or tcfg.batch_size, tcfg.crop_size,
                                   False, 0, host, hosts)
    image_shape = (tcfg.batch_size, tcfg.crop_size, tcfg.crop_size, config.model.image_channels)
    if int(tcfg.get("eval_every", 0)) and data_lib.num_eval_batches(
            eval_src, eval_spec, int(tcfg.eval_examples)) == 0:
        # Checked now, not at the first evaluation thousands of steps in.
        raise ValueError(f"evaluation set of {len(eval_src)} images has no full batch of "
                         f"{eval_spec.global_batch}; add images, lower "
                         "config.train.eval_batch_size, or set config.train.eval_every=0")

    init_fn = jax.jit(functools.partial(init_state, model, tx, int(tcfg.seed), image_shape),
                      out_shardings=replicated)
    step_fn = jax.jit(functools.partial(train_step, objective, tx, float(tcfg.ema_decay)),
                      in_shardings=(replicated, batch_sharding, replicated),
                      out_shardings=(replicated, replicated), donate_argnums=0)
    eval_fn = jax.jit(functools.partial(eval_step, objective),
                      in_shardings=(replicated, batch_sharding, replicated), out_shardings=replicated)
    key_fn = jax.jit(step_key, out_shardings=replicated)

    def to_global(local: np.ndarray) -> jax.Array:
        return jax.make_array_from_process_local_data(batch_sharding, local.astype(np.int32))

    mngr = ckpt.manager(workdir, int(tcfg.keep_checkpoints), bool(tcfg.get("async_checkpoint", True)))
    abstract = ckpt.abstract_like(jax.eval_shape(init_fn), replicated)
    restored = ckpt.restore_latest(mngr, abstract)
    if restored is None:
        state = init_fn()
        position = 0
    else:
        state, meta = restored
        position = int(meta["data_position"])
    start = int(jax.device_get(state.step))
    num_steps = int(tcfg.num_steps)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    log = None
    if is_main:
        _truncate_jsonl(metrics_path, start)
        log = _MetricsLog(workdir)

    def meta() -> dict:
        return {"data_position": position, "step": int(jax.device_get(state.step)),
                "config": json.loads(config.to_json_best_effort())}

    last: dict = {"step": start}
    eval_key = jax.random.fold_in(jax.random.key(int(tcfg.seed)), 2**31 - 1)
    bar = None
    if is_main and tcfg.get("progress_bar", True):
        from tqdm import tqdm
        bar = tqdm(total=num_steps, initial=start, dynamic_ncols=True, file=sys.stderr)
    # Batches are pure functions of their position: build the next few in a thread.
    prefetch = max(0, int(dcfg.get("prefetch", 2)))
    pool, pending = ThreadPoolExecutor(1, thread_name_prefix="irec-input"), {}
    end_position = position + max(0, num_steps - start)  # exclusive

    def host_batch(pos: int) -> np.ndarray:
        for p in range(pos, min(pos + prefetch + 1, end_position)):
            if p not in pending:
                pending[p] = pool.submit(data_lib.train_batch, train_src, train_spec, p)
        return pending.pop(pos).result()

    log_every, ckpt_every = int(tcfg.log_every), int(tcfg.checkpoint_every)
    eval_every = int(tcfg.get("eval_every", 0))
    try:
        with _SignalFlag() as flag:
            t_last, s_last = time.perf_counter(), start
            for step in range(start, num_steps):
                batch = to_global(host_batch(position))
                state, metrics = step_fn(state, batch, key_fn(state))
                position += 1
                done = step + 1
                if done % log_every == 0 or done == num_steps:
                    m = _to_python(metrics)
                    now = time.perf_counter()
                    m.update(step=done, split="train", steps_per_sec=(done - s_last) / (now - t_last))
                    t_last, s_last = now, done
                    last["train"] = m
                    if log is not None:
                        log.write(m)
                    if bar is not None:
                        bar.set_postfix(loss=f"{m['loss']:.3f}", **{k: f"{m[k]:.3f}" for k in objective.progress},
                                        it_s=f"{m['steps_per_sec']:.2f}", skipped=m["num_skipped"])
                if bar is not None:
                    bar.update(1)
                if eval_every and (done % eval_every == 0 or done == num_steps):
                    e = evaluate(model, state.ema_params, eval_src, eval_spec, int(tcfg.eval_examples),
                                 eval_fn, to_global, eval_key)
                    e.update(step=done, split="eval")
                    last["eval"] = e
                    if log is not None:
                        log.write(e)
                if done % ckpt_every == 0:
                    ckpt.save(mngr, state, meta())
                signum = flag.signum
                if hosts > 1:
                    from jax.experimental import multihost_utils
                    signum = int(np.max(multihost_utils.process_allgather(np.int32(signum))))
                if signum:
                    ckpt.save(mngr, state, meta(), force=True)
                    mngr.wait_until_finished()
                    raise TrainingInterrupted(signum, done)
        ckpt.save(mngr, state, meta(), force=True)
        mngr.wait_until_finished()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
        if log is not None:
            log.close()
        mngr.close()
    last["step"] = int(jax.device_get(state.step))
    last["state"] = state
    return last
