"""Random-access image sources: ``len(src)`` and ``src[i] -> uint8 [H, W, C]``."""

from __future__ import annotations

import os
from typing import Any, Protocol, Sequence

import numpy as np

# tfds names of the datasets the paper trains on; the test split of ImageNet32
# is tfds' "validation" split, as in the original code.
TFDS_NAMES = {"cifar10": "cifar10", "imagenet32": "downsampled_imagenet/32x32"}
TFDS_TEST_SPLIT = {"cifar10": "test", "imagenet32": "validation"}


class ImageSource(Protocol):
    """What the pipeline reads: a finite, indexable set of uint8 [H, W, C] images."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> np.ndarray: ...


class PngFolder:
    """Every ``*.png`` under ``path`` (recursively, sorted), decoded on first use and kept.

    ``channels`` = 3 drops alpha and repeats grayscale. Images with a side
    below ``min_size`` are left out (listed in ``skipped``; only their headers
    are read); others smaller than the crop the pipeline asks for raise a
    ValueError then.
    """

    def __init__(self, path: str, channels: int = 3, min_size: int = 0):
        if not path or not os.path.isdir(path):
            raise FileNotFoundError(f"PNG folder {path!r} does not exist or is not a directory")
        files = sorted(os.path.join(root, f) for root, _, names in os.walk(path)
                       for f in names if f.lower().endswith(".png"))
        if not files:
            raise FileNotFoundError(f"no *.png files under {path!r}")
        skipped = [f for f in files if min_size > 0 and min(_png_size(f)) < min_size]
        if len(skipped) == len(files):
            raise ValueError(f"all {len(files)} PNGs under {path!r} are smaller than {min_size}x{min_size}")
        self.skipped = tuple(skipped)
        files = [f for f in files if f not in self.skipped]
        self.path, self.files, self.channels = path, files, channels
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> np.ndarray:
        index = int(index)
        if index not in self._cache:
            from PIL import Image  # Pillow: only when a folder is read
            with Image.open(self.files[index]) as im:
                img = np.asarray(im.convert("RGB" if self.channels == 3 else "L"))
            if img.ndim == 2:
                img = img[..., None]
            if img.dtype != np.uint8:
                raise ValueError(f"{self.files[index]}: expected 8-bit PNG, got dtype {img.dtype}")
            self._cache[index] = np.ascontiguousarray(img)
        return self._cache[index]


def _png_size(path: str) -> tuple[int, int]:
    """(width, height) from the file's header (nothing decoded)."""
    from PIL import Image

    with Image.open(path) as im:
        return im.size


class RecordImages:
    """The ``key`` field of each record of a random-access record source (e.g. tfds)."""

    def __init__(self, records: Sequence[Any], key: str = "image"):
        self.records, self.key = records, key

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> np.ndarray:
        return np.asarray(self.records[int(index)][self.key], dtype=np.uint8)


def tfds_source(name: str, split: str, data_dir: str | None = None) -> RecordImages:
    """``tfds.data_source`` (array_record, no TensorFlow) images of a prepared dataset.

    ``name`` is a key of ``TFDS_NAMES`` ("cifar10", "imagenet32") or any tfds
    name; ``split`` "train" or "test" ("test" maps to ImageNet32's validation
    split). Never downloads: raises FileNotFoundError at once, naming the
    directory and the command that prepares it, when the data is not there.
    """
    import tensorflow_datasets as tfds  # heavy; only here

    tfds_name = TFDS_NAMES.get(name, name)
    if split == "test":
        split = TFDS_TEST_SPLIT.get(name, "test")
    try:
        records = tfds.data_source(tfds_name, split=split, data_dir=data_dir or None, download=False)
    except Exception as e:  # not prepared, or prepared as tfrecord (data_source needs array_record)
        builder = tfds.builder(tfds_name, data_dir=data_dir or None)
        if not builder.is_prepared():
            raise FileNotFoundError(
                f"tfds dataset {tfds_name!r} is not prepared under {builder.data_dir!r}; prepare it on a "
                f"machine with network: `tfds build {tfds_name} --file_format=array_record "
                f"--data_dir=...`") from e
        raise FileNotFoundError(f"tfds dataset {tfds_name!r} split {split!r} in {builder.data_dir!r} "
                                f"cannot be read by tfds.data_source: {e}") from e
    return RecordImages(records, "image")
