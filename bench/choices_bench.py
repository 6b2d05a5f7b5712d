"""What comparing final beams (``final_choices``, ``layer_choices``) buys at an effort preset.

Every latent layer's final beams cost the same index bits, so the encoder may
code any of them: ``final_choices`` compares the last layer's by the pixels'
exact codelength, ``layer_choices`` the other layers' by an estimate of the
rest of the file (``irec_jax.settings.CoderSettings``). For each setting in
``--choices`` (FINAL:LAYER pairs) this codes every crop with
``codec.compress_report`` at ``--effort``, the preset's other settings
unchanged, decodes it and checks the pixels, and prints per setting the mean
model coding (bytes, header included, and bits/dim), its change against the
first setting, and the median encode seconds (the median hides the first
call's compile).

Crops: ``--crops`` random ``--size`` x ``--size`` crops of the PNGs in
``--images`` that match ``--pattern`` (sorted per pattern, patterns in the
order given), drawn with ``numpy.random.default_rng(--seed)``: a file, then
a corner; files smaller than the crop are drawn past. Measure on training
photos, never on a held-out set you report (``docs/models.md``)::

    python bench/choices_bench.py --images /tmp/default_train_v3 --crops 16 --size 32 --seed 0
    python bench/choices_bench.py --images /tmp/default_train_v3 --crops 4 --size 64 --seed 1
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import statistics
import sys
import time

import numpy as np


def random_crops(folder: str, patterns: list[str], count: int, size: int, seed: int) -> list[np.ndarray]:
    """``count`` random ``size`` x ``size`` crops (uint8 [size, size, C]) of the images in ``folder``
    matching ``patterns``; SystemExit if none is large enough."""
    from irec_jax import imageio

    files = [f for p in patterns for f in sorted(glob.glob(os.path.join(folder, p)))]
    images = {}
    if not any(min(imageio.read_image(f).shape[:2]) >= size for f in files):
        sys.exit(f"choices_bench: no image in {folder} matching {','.join(patterns)} is at least {size}x{size}")
    rng, crops = np.random.default_rng(seed), []
    while len(crops) < count:
        f = files[rng.integers(len(files))]
        img = images.setdefault(f, imageio.read_image(f))
        if min(img.shape[:2]) < size:
            continue
        y, x = rng.integers(img.shape[0] - size + 1), rng.integers(img.shape[1] - size + 1)
        crops.append(img[y:y + size, x:x + size])
    return crops


def parse_choices(text: str) -> list[tuple[int, int]]:
    """"1:1,16:16" -> [(1, 1), (16, 16)]; SystemExit naming a bad entry."""
    out = []
    for item in text.split(","):
        try:
            final, layer = (int(v) for v in item.split(":"))
        except ValueError:
            sys.exit(f"choices_bench: --choices entries are FINAL:LAYER integer pairs, got {item!r}")
        out.append((final, layer))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", required=True, help="folder of PNG photos (training photos)")
    ap.add_argument("--pattern", default="*_x4.png,*_x8.png",
                    help="comma-separated file patterns in --images (default: the training folder's 1/4 and 1/8 scales)")
    ap.add_argument("--crops", type=int, default=16, help="how many crops")
    ap.add_argument("--size", type=int, default=32, help="crop side in pixels")
    ap.add_argument("--seed", type=int, default=0, help="seed of the crops' positions")
    ap.add_argument("--effort", default="best", help="the preset whose other settings are kept")
    ap.add_argument("--choices", default="1:1,16:1,16:16,64:64", help="FINAL:LAYER pairs to compare")
    args = ap.parse_args()

    from irec_jax import codec, modelzoo

    effort = codec.check_effort(args.effort)
    pairs = parse_choices(args.choices)
    cm = modelzoo.load_model("default")
    crops = random_crops(args.images, args.pattern.split(","), args.crops, args.size, args.seed)
    base = codec.effort_settings(cm, crops[0].shape, effort=effort)
    settings = [dataclasses.replace(base, final_choices=f, layer_choices=l) for f, l in pairs]
    sizes = np.zeros((len(pairs), len(crops)))
    seconds = np.zeros_like(sizes)
    for j, img in enumerate(crops):
        for i, s in enumerate(settings):
            t0 = time.perf_counter()
            data, rep = codec.compress_report(img, settings=s, effort=effort, fallback=False)
            seconds[i, j] = time.perf_counter() - t0
            if not np.array_equal(codec.decompress(data), img):
                sys.exit(f"choices_bench: crop {j} with choices {pairs[i]} did not decode exactly")
            sizes[i, j] = rep.model_bytes
        print(f"crop {j}: " + " ".join(f"{int(b)}" for b in sizes[:, j]), flush=True)
    dims = crops[0].size
    print(f"\n{len(crops)} crops of {args.size}x{args.size} from {args.images}, effort {effort.name}, "
          f"model {cm.name}; every file decoded exactly")
    print(f"{'final:layer':>12} {'bytes':>10} {'bits/dim':>9} {'change':>8} {'median s':>9}")
    for i, (f, l) in enumerate(pairs):
        mean = sizes[i].mean()
        print(f"{f:>6}:{l:<5} {mean:10.2f} {8 * mean / dims:9.4f} {mean / sizes[0].mean() - 1:+8.2%} "
              f"{statistics.median(seconds[i]):9.2f}")


if __name__ == "__main__":
    main()
