"""Build the training folder of the bundled default model from images that ship in packages.

The bundled model (``irec_jax/assets/models/default``) was trained on random
32x32 crops of lossless-origin RGB photos that ship inside installed packages,
at full size and box-downscaled by 2, 4 and 8 (so the model also sees the detail
density of small whole photos):

* scikit-image ``skimage/data/``: astronaut, coffee, motorcycle_left,
  motorcycle_right (public domain / CC0, see skimage's data README);
* Debian ``opencv-doc`` ``examples/data/``: graf1, graf3, rubberwhale1,
  smarties (Apache-2.0 and BSD-3-Clause). Get them without
  installing the package::

      apt-get download opencv-doc && dpkg-deb -x opencv-doc_*.deb /tmp/ocv

The images the benchmarks report rates on (sporco's kodim23, monarch, sail,
tulips, and the crops of them bundled in ``irec_jax/assets/images``) are never
used here. Usage::

    python scripts/default_model_data.py --out /tmp/default_train \
        --opencv-doc /tmp/ocv/usr/share/doc/opencv-doc/examples/data
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from PIL import Image

SKIMAGE = ("astronaut.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png")
OPENCV = ("graf1.png", "graf3.png", "rubberwhale1.png", "smarties.png")


def box_downscale(img: np.ndarray, factor: int) -> np.ndarray:
    """uint8 [H, W, C] -> uint8 [H//f, W//f, C], the rounded mean of each f x f box."""
    h, w = img.shape[0] // factor * factor, img.shape[1] // factor * factor
    x = img[:h, :w].astype(np.float64).reshape(h // factor, factor, w // factor, factor, -1)
    return np.floor(x.mean(axis=(1, 3)) + 0.5).astype(np.uint8)


def load_rgb(path: str) -> np.ndarray:
    """An RGB uint8 [H, W, 3] array; refuses images whose alpha is not fully opaque."""
    with Image.open(path) as im:
        if im.mode == "RGBA":
            alpha = np.asarray(im)[..., 3]
            if alpha.min() != 255:
                raise ValueError(f"{path}: has transparency")
        return np.asarray(im.convert("RGB"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder to write the training PNGs to")
    ap.add_argument("--opencv-doc", default="", help="opencv-doc examples/data folder (optional)")
    args = ap.parse_args()
    import skimage

    sources = [os.path.join(os.path.dirname(skimage.__file__), "data", f) for f in SKIMAGE]
    if args.opencv_doc:
        sources += [os.path.join(args.opencv_doc, f) for f in OPENCV]
    os.makedirs(args.out, exist_ok=True)
    for path in sources:
        img = load_rgb(path)
        stem = os.path.splitext(os.path.basename(path))[0]
        for factor in (1, 2, 4, 8):
            out = img if factor == 1 else box_downscale(img, factor)
            Image.fromarray(out).save(os.path.join(args.out, f"{stem}_x{factor}.png"))
            print(f"{stem}_x{factor}.png {out.shape}")


if __name__ == "__main__":
    main()
