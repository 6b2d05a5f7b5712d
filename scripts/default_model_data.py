"""Build the training folder of the bundled default model from images that ship in packages.

The bundled model (``irec_jax/assets/models/default``) is trained on random
32x32 crops of lossless-origin RGB photos that ship inside packages, at full
size and box-downscaled by 2, 4 and 8 (so the model also sees the detail
density of small whole photos). Each image is written as
``<source>_<stem>_x<f>.png`` (f = 1, 2, 4, 8). Sources:

* ``skimage``: scikit-image ``skimage/data/`` (PyPI ``scikit-image``; the
  installed package is used unless ``--skimage DIR`` is given; checked with
  0.26.0 and 0.14.5, whose files are identical):

  - astronaut (NASA, public domain);
  - coffee (CC0, Rachel Michetti);
  - chelsea (CC0, Stefan van der Walt; "No copyright restrictions" in
    ``skimage.data.chelsea``'s docstring);
  - motorcycle_left, motorcycle_right (Middlebury 2014 stereo benchmark,
    Scharstein et al., as redistributed by scikit-image, a BSD-3-Clause
    project; no separate licence stated).

  To use a downloaded copy instead of the installed one::

      pip download scikit-image==0.26.0 --no-deps -d /tmp/dataprobe/pip
      unzip -q /tmp/dataprobe/pip/scikit_image-0.26.0-*.whl -d /tmp/dataprobe/pip/scikit_image
      # then: --skimage /tmp/dataprobe/pip/scikit_image/skimage/data

* ``opencv``: Debian ``opencv-doc`` (4.6.0+dfsg-12), ``examples/data/``:
  graf1, graf3 (Oxford affine-covariant features set), rubberwhale1,
  rubberwhale2 (Middlebury optical-flow "RubberWhale" frames 10 and 11: two
  frames of one scene, nearly the same photo), smarties. Licence: the
  package's blanket Apache-2.0 / BSD-3-Clause (``/usr/share/doc/opencv-doc/
  copyright``; no per-image statement). Get them without installing::

      mkdir -p /tmp/dataprobe && cd /tmp/dataprobe
      apt-get download opencv-doc && dpkg-deb -x opencv-doc_*.deb ocv
      # then: --opencv-doc /tmp/dataprobe/ocv/usr/share/doc/opencv-doc/examples/data

Every image was checked for JPEG history (8x8 luma blockiness, max over the 8
grid offsets / median, all <= 1.05; chroma detail relative to luma after a
2x2 box blur, all >= 0.28 versus ~0.2 for re-saved 4:2:0 JPEGs), transparency
and grayscale. Looked at and left out: skimage ihc (chroma 0.25), scipy's
face.dat and matplotlib 2.0.2's grace_hopper.png (clear JPEG history),
opencv-doc pic4, reg/home and dnn_superres/butterfly (JPEG signs), and
everything else found there or in Debian wallpaper / paint packages
(synthetic, grayscale, transparent or JPEG files). opencv-doc's chicky_512
has transparency.

The images the benchmarks report rates on (sporco's kodim23, monarch, sail,
tulips, and the crops of them bundled in ``irec_jax/assets/images``) are never
used here, nor anything Kodak-derived, nor Debian's libjxl-testdata. Usage::

    python scripts/default_model_data.py --out /tmp/default_train_v3 \
        --opencv-doc /tmp/dataprobe/ocv/usr/share/doc/opencv-doc/examples/data

The script refuses to run (before writing anything) if a listed file is
missing.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from PIL import Image

SKIMAGE = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png")
OPENCV = ("graf1.png", "graf3.png", "rubberwhale1.png", "rubberwhale2.png", "smarties.png")


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
    ap.add_argument("--skimage", default="",
                    help="scikit-image skimage/data folder (default: the installed package's)")
    ap.add_argument("--opencv-doc", required=True,
                    help="Debian opencv-doc examples/data folder (extracted with dpkg-deb -x)")
    args = ap.parse_args()
    skdir = args.skimage
    if not skdir:
        import skimage

        skdir = os.path.join(os.path.dirname(skimage.__file__), "data")
    sources = [("skimage", os.path.join(skdir, f)) for f in SKIMAGE]
    sources += [("opencv", os.path.join(args.opencv_doc, f)) for f in OPENCV]
    missing = [path for _, path in sources if not os.path.isfile(path)]
    if missing:
        raise SystemExit("missing source images (see this script's docstring for how to fetch them):\n  "
                         + "\n  ".join(missing))
    os.makedirs(args.out, exist_ok=True)
    for source, path in sources:
        img = load_rgb(path)
        stem = os.path.splitext(os.path.basename(path))[0]
        for factor in (1, 2, 4, 8):
            out = img if factor == 1 else box_downscale(img, factor)
            name = f"{source}_{stem}_x{factor}.png"
            Image.fromarray(out).save(os.path.join(args.out, name))
            print(f"{name} {out.shape}")


if __name__ == "__main__":
    main()
