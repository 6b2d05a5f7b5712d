"""Image sets of the benchmark and their loaders: PNG folders, the bundled images, prepared tfds data.

Every image is uint8 ``[H, W, C]`` (C = 1 or 3), read through
``irec_jax.imageio`` under its mode policy (the codec's own): gray stays
C = 1, RGB C = 3, palettes are expanded (to gray when every colour in use is
gray), fully opaque alpha is dropped, and an image with real transparency,
16-bit or another mode is refused (``EvalError`` naming the file).
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Callable, Iterable, Sequence

from irec_jax import imageio
from irec_jax.benchmark.errors import EvalError, error_text
from irec_jax.errors import ImageError

__all__ = ["ImageSet", "first_images", "read_png", "load_png_folder", "bundled_sets", "SUITES", "tfds_prepared_dir",
           "tfds_set", "load_sets", "progress_bar"]


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """A named list of uint8 ``[H, W, C]`` images (C = 1 or 3) with an id per image."""

    name: str
    images: tuple  # of np.ndarray uint8 [H, W, C]
    ids: tuple  # of str, one per image
    source: str = ""

    def __post_init__(self):
        if len(self.images) != len(self.ids):
            raise ValueError(f"set {self.name!r}: {len(self.images)} images but {len(self.ids)} ids")

    def __len__(self) -> int:
        return len(self.images)


def first_images(image_set: ImageSet, limit: int | None) -> ImageSet:
    """``image_set`` cut to its first ``limit`` images (all of them for None)."""
    return dataclasses.replace(image_set, images=image_set.images[:limit], ids=image_set.ids[:limit])


def progress_bar(it: Iterable, enabled: bool, **kw):
    """``it`` behind a tqdm bar (no bar when not ``enabled``)."""
    from tqdm.auto import tqdm

    return tqdm(it, disable=not enabled, **kw)


def read_png(path: str):
    """One image file as uint8 ``[H, W, C]`` under ``irec_jax.imageio``'s policy; EvalError if refused."""
    try:
        return imageio.read_image(path)
    except ImageError as e:
        raise EvalError(str(e)) from None


def load_png_folder(path: str, name: str | None = None, limit: int | None = None,
                    progress: bool = False) -> ImageSet:
    """Every ``*.png`` under ``path`` (recursively, sorted by relative path) as one set.

    ``name`` defaults to the folder's name; the images follow ``irec_jax.imageio``'s policy.
    """
    if not os.path.isdir(path):
        raise EvalError(f"image folder {path!r} does not exist or is not a directory")
    files = sorted(p for p in glob.glob(os.path.join(path, "**", "*"), recursive=True)
                   if p.lower().endswith(".png") and os.path.isfile(p))
    if not files:
        raise EvalError(f"no *.png files under {path!r}")
    if limit is not None:
        files = files[:limit]
    images = tuple(read_png(f) for f in progress_bar(files, progress, desc=f"loading {path}", leave=False))
    ids = tuple(os.path.relpath(f, path) for f in files)
    name = name or os.path.basename(os.path.normpath(os.path.abspath(path))) or "images"
    return ImageSet(name, images, ids, f"PNG folder {os.path.abspath(path)} (irec_jax.imageio policy: "
                                       "opaque alpha dropped, palettes expanded)")


def bundled_sets() -> list[ImageSet]:
    """The held-out images that ship in ``irec_jax/assets/images``: "crops32" (32×32) and "photos64" (64×64)."""
    from irec_jax.assets import asset_path, bundled_images

    sets = []
    for kind, name in (("crops", "crops32"), ("photos", "photos64")):
        files = bundled_images(kind)
        if not files:
            raise EvalError(f"no bundled {kind} images under {asset_path('images')}")
        sets.append(ImageSet(name, tuple(read_png(f) for f in files), tuple(os.path.basename(f) for f in files),
                             f"bundled {kind} ({asset_path('images', 'README.md')}: sources and licences)"))
    return sets


SUITES: dict[str, Callable[[], list[ImageSet]]] = {"quick": bundled_sets}


def _tfds_data_dir(data_dir: str | None) -> str:
    return os.path.expanduser(data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets")


def tfds_prepared_dir(name: str, data_dir: str | None = None) -> str | None:
    """The folder of a prepared tfds dataset (``DATA_DIR/NAME[/CONFIG]/VERSION`` with its
    ``dataset_info.json``), newest version first, or None. Looks at the disk only: no tfds import."""
    from irec_jax.data.sources import TFDS_NAMES

    root = os.path.join(_tfds_data_dir(data_dir), *TFDS_NAMES.get(name, name).split("/"))
    found = sorted(glob.glob(os.path.join(root, "*", "dataset_info.json")), reverse=True)
    return os.path.dirname(found[0]) if found else None


def tfds_set(name: str, split: str = "test", limit: int | None = None, data_dir: str | None = None,
             progress: bool = True) -> ImageSet:
    """The first ``limit`` images of a prepared tfds dataset ("cifar10", "imagenet32" or a tfds name).

    Never downloads: when the prepared data is not on disk it raises
    ``EvalError`` at once (before tensorflow_datasets is even imported),
    naming the folder and the command that prepares it.
    """
    from irec_jax.data.sources import TFDS_NAMES, tfds_source

    tfds_name = TFDS_NAMES.get(name, name)
    root = _tfds_data_dir(data_dir)
    if tfds_prepared_dir(name, data_dir) is None:
        raise EvalError(f"tfds dataset {tfds_name!r} is not prepared under {root!r} (eval never downloads); "
                        f"prepare it on a machine with network: `tfds build {tfds_name} "
                        f"--file_format=array_record --data_dir={root}`, or pass --data-dir")
    try:
        src = tfds_source(name, split, root)
    except FileNotFoundError as e:
        raise EvalError(str(e)) from e
    except Exception as e:  # e.g. a damaged dataset_info.json: tfds raises AssertionError
        raise EvalError(f"cannot read tfds dataset {tfds_name!r} split {split!r} from {root!r}: "
                        f"{error_text(e, 'tfds')}") from e
    n = len(src) if limit is None else min(limit, len(src))
    images = []
    for i in progress_bar(range(n), progress, desc=f"loading {name}/{split}", leave=False):
        try:
            images.append(imageio.to_array(src[i]))
        except ImageError as e:
            raise EvalError(f"{name}/{split}/{i}: {e}") from None
    return ImageSet(f"{name}-{split}", tuple(images), tuple(f"{name}/{split}/{i}" for i in range(n)),
                    f"tfds {tfds_name} split {split!r} from {root}, first {n} images")


def load_sets(suite: str | None = None, images: Sequence[str] = (), dataset: str | None = None,
              split: str = "test", limit: int | None = None, data_dir: str | None = None,
              progress: bool = True) -> list[ImageSet]:
    """The suite's sets, one per ``images`` folder ("DIR" or "NAME=DIR") and the tfds ``dataset``;
    ``limit`` keeps the first N images of each folder/dataset. Repeated names get "-2", "-3", ...
    ``EvalError`` for a bad suite, folder or dataset, or when nothing is named."""
    if limit is not None and limit < 1:
        raise EvalError(f"--limit must be at least 1, got {limit}")
    sets: list[ImageSet] = []
    if suite is not None:
        if suite not in SUITES:
            raise EvalError(f"unknown suite {suite!r}; known: {', '.join(SUITES)}")
        sets += SUITES[suite]()
    for item in images:
        name, sep, path = item.partition("=")
        if not sep or os.path.isdir(item):
            name, path = None, item
        sets.append(load_png_folder(path, name, limit, progress))
    if dataset is not None:
        sets.append(tfds_set(dataset, split, limit, data_dir, progress))
    if not sets:
        raise EvalError("nothing to evaluate: give --suite quick, --images DIR or --dataset NAME")
    seen: dict[str, int] = {}
    unique = []
    for s in sets:
        seen[s.name] = seen.get(s.name, 0) + 1
        unique.append(s if seen[s.name] == 1 else dataclasses.replace(s, name=f"{s.name}-{seen[s.name]}"))
    return unique
