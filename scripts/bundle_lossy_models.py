"""Export trained lossy GVAE workdirs as the bundled lossy models ``irec_jax/assets/models/lossy-q<Q>``.

Each ``--model Q=WORKDIR`` becomes quality Q (higher: more bits, less
distortion): its latest checkpoint's EMA weights in integer form
(``modelzoo.export_model``), with the lossy coder defaults (``modelzoo.LOSSY_DEFAULTS``:
Omega 4, epsilon 0) and a model card built from the workdir itself
(config, beta, steps, wall-clock training time from ``metrics.jsonl``, the
last logged training rate and PSNR) plus what ``--card KEY=VALUE`` adds.
Usage (the commands that made the bundled models are in ``docs/models.md``)::

    python scripts/bundle_lossy_models.py --model 1=/tmp/lossy/b0.003 --model 2=/tmp/lossy/b0.01 \\
        --card training_data="scripts/default_model_data.py (13 images >= 256 px)"
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys


def _metrics(workdir: str) -> list[dict]:
    path = os.path.join(workdir, "metrics.jsonl")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def card_for(workdir: str, quality: int, extra: dict) -> dict:
    """The model card of a lossy workdir: what it is, how it was trained, what it measured in training."""
    from irec_jax import workdir as layout

    step = layout.checkpoint_steps(workdir)[-1]
    config = layout.load_meta(workdir, step).get("config", {})
    train = [m for m in _metrics(workdir) if m.get("split") == "train" and m.get("step", 0) <= step]
    seconds = sum(10.0 / m["steps_per_sec"] for m in train if m.get("steps_per_sec"))  # logged every 10 steps
    tcfg = config.get("train", {})
    last = train[-10:]
    mean = lambda k: sum(m[k] for m in last) / max(1, len(last))  # noqa: E731
    return {
        "description": f"Bundled lossy model, quality {quality}: the CPU-sized two-level Gaussian VAE "
                       f"(irec_jax/configs/lossy_cpu.py) trained for MSE with beta {tcfg.get('beta')}; "
                       "see docs/models.md.",
        "config": "irec_jax/configs/lossy_cpu.py",
        "beta": tcfg.get("beta"), "distortion": tcfg.get("distortion"), "steps": step,
        "batch": tcfg.get("batch_size"), "crop": tcfg.get("crop_size"),
        "train_time": f"about {seconds / 60:.0f} minutes of logged training steps on a shared 2-core CPU",
        "train_rate_estimate_bpp": round(mean("bpp"), 4), "train_psnr": round(mean("psnr"), 2),
        "weights": f"EMA {tcfg.get('ema_decay')}", "docs": "docs/models.md", **extra,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, metavar="Q=WORKDIR")
    parser.add_argument("--card", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default=None, help="models folder (default: the package's assets/models)")
    parser.add_argument("--version", type=int, default=1,
                        help="the models' version, in their names gvae-mse-cpu-q<Q>-v<VERSION>: bump it whenever "
                             "the weights change (files name the model they were written with)")
    args = parser.parse_args(argv)

    from irec_jax import modelzoo
    from irec_jax.assets import asset_path

    extra = dict(kv.split("=", 1) for kv in args.card)
    out_root = args.out or asset_path("models")
    for spec in args.model:
        q, _, workdir = spec.partition("=")
        if not q.isdigit() or not workdir:
            parser.error(f"--model takes Q=WORKDIR, got {spec!r}")
        cm = modelzoo.load_model(workdir)
        if not cm.lossy:
            parser.error(f"{workdir} is not a lossy model")
        cm = dataclasses.replace(cm, defaults=modelzoo.LOSSY_DEFAULTS)
        folder = os.path.join(out_root, f"{modelzoo.LOSSY_PREFIX}{int(q)}")
        name = f"gvae-mse-cpu-q{int(q)}-v{args.version}"
        modelzoo.export_model(cm, folder, name=name, card=card_for(workdir, int(q), extra))
        print(f"{workdir} -> {folder}: {name}, params {cm.ref.param_hash.hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
