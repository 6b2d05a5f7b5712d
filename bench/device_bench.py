"""Codec speed on whatever JAX runs on (CPU here, the GPU in scripts/gpu_check.sh).

Prints, on the default JAX backend, warm wall-clock times of:

* one W x H photo through ``codec.compress`` / ``codec.decompress``
  (default 768 x 512, tiled from the bundled 64x64 photos: content repeats,
  so its rate means nothing; a time only), checked bit-exact;
* batches of the bundled 32x32 crops through ``codec.compress_batch``
  (images/s, each file decoded and checked) against one image at a time,
  with the codec's default posterior refinement (``codec.REFINE_STEPS``
  steps on such small images) and without it (``refine=0``), in the same run.

    python bench/device_bench.py                 # ~1 minute on this CPU
    python bench/device_bench.py --size 768x512 --batch 32 --repeats 2
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="768x512", help="WxH of the photo")
    ap.add_argument("--batch", type=int, default=32, help="images per compress_batch call")
    ap.add_argument("--repeats", type=int, default=2, help="timed repeats (best is shown)")
    args = ap.parse_args()
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        sys.exit(f"device_bench.py: error: --size must be WxH, got {args.size!r}")
    if args.batch < 1 or args.repeats < 1:
        sys.exit("device_bench.py: error: --batch and --repeats must be >= 1")

    import jax

    from irec_jax import codec, imageio, modelzoo
    from irec_jax.assets import bundled_images

    cm = modelzoo.load_model()
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")

    def best(fn):
        fn()  # warm-up: compiles
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return out, min(times)

    photos = [imageio.read_image(p) for p in bundled_images("photos")]
    tile = np.concatenate([np.concatenate(photos, axis=1), np.concatenate(photos[::-1], axis=1)], axis=0)
    img = np.tile(tile, (-(-h // tile.shape[0]), -(-w // tile.shape[1]), 1))[:h, :w]
    data, enc = best(lambda: codec.compress(img, model=cm))
    out, dec = best(lambda: codec.decompress(data, model=cm))
    print(f"{w}x{h} photo: encode {enc:.2f} s, decode {dec:.2f} s, {8 * len(data) / img.size:.3f} bpd, "
          f"exact {np.array_equal(out, img)}")

    crops = [imageio.read_image(p) for p in bundled_images("crops")]
    images = (crops * (-(-args.batch // len(crops))))[:args.batch]
    for refine, label in ((None, "refined (default)"), (0, "not refined")):
        files, t_batch = best(lambda: codec.compress_batch(images, model=cm, refine=refine))
        _, t_single = best(lambda: [codec.compress(im, model=cm, refine=refine) for im in images])
        exact = all(np.array_equal(codec.decompress(d, model=cm), im) for (d, _), im in zip(files, images))
        bpd = 8 * sum(len(d) for d, _ in files) / sum(im.size for im in images)
        print(f"{len(images)} images 32x32, {label}: batch {len(images) / t_batch:.1f} images/s, one at a time "
              f"{len(images) / t_single:.1f} images/s, {bpd:.3f} bpd, exact {exact}")


if __name__ == "__main__":
    main()
