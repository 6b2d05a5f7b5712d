"""What tiles cost: file size and time of the lossless codec at several tile sides, and a big test image.

Every tile is coded on its own (``docs/format.md`` §1), which bounds memory
for any image size but loses the model's context at the seams and pays each
tile's step counts and range-coder flush. For every image this prints the
real file size at each tile side against the largest one, the warm encode
and decode seconds, and checks every decode bit for bit. Smaller tiles also
get larger latent blocks (the encoder's block target grows as a tensor's
KL shrinks, ``rec.layout.target_block_kl``), which saves rate; ``--block-kl``
fixes the block target so that the difference is the seams' cost alone.

    python bench/tile_bench.py --images DIR                 # e.g. sporco's 768x512 photos (held out)
    python bench/tile_bench.py --images DIR --tiles 1024,512,256 --json out.json
    python bench/tile_bench.py --images DIR --block-kl 50     # the seams alone, at one block size
    python bench/tile_bench.py --make-big big.png --size 4000x3000

``--make-big`` writes a large RGB PNG made by mirroring the lossless-origin
photos that ship with scikit-image (its content repeats: use it for time
and memory, e.g. ``/usr/bin/time -v irec compress big.png big.irec``, not
for rates).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import numpy as np


def make_big(path: str, size: str) -> None:
    """Writes a W x H RGB PNG tiled from mirrored scikit-image photos."""
    import skimage.data
    from PIL import Image

    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        sys.exit(f"tile_bench.py: error: --size must be WxH, got {size!r}")
    photos = [skimage.data.astronaut()[:400, :400], skimage.data.coffee()[:400, :400]]  # lossless-origin
    row = np.concatenate([photos[0], photos[1][:, ::-1], photos[0][::-1], photos[1][::-1, ::-1]], axis=1)
    reps = (-(-h // row.shape[0]), -(-w // row.shape[1]), 1)
    img = np.tile(np.concatenate([row, row[::-1]], axis=0), reps)[:h, :w]
    Image.fromarray(np.ascontiguousarray(img)).save(path)
    print(f"wrote {path}: {w}x{h} RGB, {os.path.getsize(path):,} bytes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default=None, help="folder of PNGs (recursive)")
    ap.add_argument("--tiles", default="1024,512,256", help="tile sides to compare, largest first")
    ap.add_argument("--model", default="default")
    ap.add_argument("--block-kl", type=float, default=None,
                    help="fix the target KL per block (block_kl = min_block_kl) so that only the seams differ "
                         "between tile sides (default: the model's rule, whose blocks grow in smaller tiles)")
    ap.add_argument("--json", default=None, help="write the rows to this JSON file")
    ap.add_argument("--make-big", default=None, metavar="PNG", help="write a big test image and exit")
    ap.add_argument("--size", default="4000x3000", help="WxH of --make-big")
    args = ap.parse_args()
    if args.make_big:
        make_big(args.make_big, args.size)
        return
    if not args.images:
        sys.exit("tile_bench.py: error: give --images DIR (or --make-big)")
    from irec_jax import codec, modelzoo
    from irec_jax.benchmark.errors import EvalError
    from irec_jax.benchmark.sets import load_png_folder

    try:
        tiles = [int(t) for t in args.tiles.split(",")]
        image_set = load_png_folder(args.images)
    except (ValueError, EvalError) as e:
        sys.exit(f"tile_bench.py: error: {e}")
    cm = modelzoo.load_model(args.model)
    settings = cm.defaults
    if args.block_kl is not None:
        try:
            settings = dataclasses.replace(settings, block_kl=args.block_kl, min_block_kl=args.block_kl)
        except ValueError as e:
            sys.exit(f"tile_bench.py: error: {e}")
    rows = []
    print(f"{'image':16s} {'size':>9s} " + " ".join(f"{'T=' + str(t):>16s}" for t in tiles)
          + "   (bytes, cost vs the first; enc s / dec s)")
    for name, img in zip(image_set.ids, image_set.images):
        row = {"image": os.path.basename(name), "shape": list(img.shape), "tiles": {}}
        for t in tiles:
            codec.decompress(codec.compress(img, model=cm, settings=settings, tile=t), model=cm)  # compiles
            t0 = time.perf_counter()
            data, rep = codec.compress_report(img, model=cm, settings=settings, tile=t)
            t1 = time.perf_counter()
            out = codec.decompress(data, model=cm)
            t2 = time.perf_counter()
            row["tiles"][t] = {"bytes": len(data), "tiles": rep.tiles, "bpd": rep.bpd, "encode_s": t1 - t0,
                               "decode_s": t2 - t1, "exact": bool(np.array_equal(out, img))}
        rows.append(row)
        first = row["tiles"][tiles[0]]["bytes"]
        cells = [f"{r['bytes']:>9,} {100 * (r['bytes'] / first - 1):+5.1f}%{'' if r['exact'] else ' INEXACT'}"
                 for r in row["tiles"].values()]
        times = "  ".join(f"{r['encode_s']:.1f}/{r['decode_s']:.1f}" for r in row["tiles"].values())
        print(f"{row['image']:16s} {img.shape[1]:>4d}x{img.shape[0]:<4d} " + " ".join(cells) + f"   {times}",
              flush=True)
    for t in tiles[1:]:
        cost = np.mean([r["tiles"][t]["bytes"] / r["tiles"][tiles[0]]["bytes"] - 1 for r in rows])
        print(f"mean seam cost of T={t} against T={tiles[0]}: {100 * cost:+.2f}% of the file")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": cm.name, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
