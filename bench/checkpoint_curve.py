"""Negative ELBO of a training run's checkpoints on the bundled held-out sets and on held-in crops.

For every checkpoint step in ``--checkpoints`` (a ``train.py`` workdir's
``checkpoints/`` folder, or a copy of the checkpoints it kept over time: it
keeps only the newest few), the integer model of that checkpoint's EMA
weights is evaluated like the codec sees it (``analysis.estimate_elbo``,
a Monte Carlo estimate): mean bits/dim on the bundled 32x32 crops and
64x64 photos, and on fixed 32x32 crops of the training photos (``--held-in``,
the ``*_x2.png`` files of the training folder, two crops each) to show the
gap between what the model was trained on and what it was not.

    python bench/checkpoint_curve.py --checkpoints /tmp/photos_ckpts \
        --held-in /tmp/default_train_v3 --steps 10000,20000,60000

Prints one JSON line per checkpoint.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoints", required=True, help="folder of checkpoint step folders (train.py layout)")
    ap.add_argument("--held-in", default="", help="training PNG folder (its *_x2.png give the held-in crops)")
    ap.add_argument("--steps", default="", help="comma-separated steps (default: all)")
    ap.add_argument("--samples", type=int, default=4, help="posterior samples per image")
    args = ap.parse_args()

    from irec_jax import analysis, imageio, modelzoo
    from irec_jax.benchmark.sets import bundled_sets

    found = sorted(int(os.path.basename(d)) for d in glob.glob(os.path.join(args.checkpoints, "*"))
                   if os.path.basename(d).isdigit())
    steps = [s for s in found if not args.steps or str(s) in args.steps.split(",")]
    if not steps:
        sys.exit(f"checkpoint_curve.py: error: no checkpoints {args.steps or ''} under {args.checkpoints!r}")
    sets = {s.name: s.images for s in bundled_sets()}
    if args.held_in:
        rng = np.random.default_rng(0)
        crops = []
        for f in sorted(glob.glob(os.path.join(args.held_in, "*_x2.png"))):
            im = imageio.read_image(f)
            for _ in range(2):
                y, x = rng.integers(0, im.shape[0] - 32), rng.integers(0, im.shape[1] - 32)
                crops.append(im[y:y + 32, x:x + 32])
        sets["held_in_crops32"] = crops
    with tempfile.TemporaryDirectory() as tmp:
        for step in steps:
            workdir = os.path.join(tmp, str(step))  # a workdir holding just this checkpoint
            os.makedirs(os.path.join(workdir, "checkpoints"))
            os.symlink(os.path.abspath(os.path.join(args.checkpoints, str(step))),
                       os.path.join(workdir, "checkpoints", str(step)))
            cm = modelzoo.load_model(workdir)
            row = {"step": step}
            for name, images in sets.items():
                bits = [analysis.estimate_elbo(im, model=cm, samples=args.samples).total_bits / im.size
                        for im in images]
                row[name] = round(float(np.mean(bits)), 4)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
