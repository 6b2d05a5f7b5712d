"""Deterministic, resumable, host-sharded batches from an ``ImageSource``.

The global training stream is a sequence of epochs; epoch ``e`` visits the
source in the order ``default_rng([seed, e]).permutation(n)``. Global batch
``s`` holds stream positions ``s*B .. s*B+B-1``; host ``h`` of ``H`` builds
rows ``h*B/H .. (h+1)*B/H - 1`` of it. Example ``p`` of the stream gets its
crop offset and flip from ``default_rng([seed, 1, p])``. So a batch depends on
(seed, s, host) only, and resuming needs only ``s``: the data position is the
number of global batches consumed, stored in the checkpoint.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Iterator

import numpy as np

from irec_jax.data.sources import ImageSource


@dataclasses.dataclass(frozen=True)
class BatchSpec:
    """Shape and augmentation of batches.

    global_batch: B over all hosts; must divide by ``num_hosts``.
    crop: square crop side (images must be at least that large).
    random_flip: flip left-right with probability 1/2 (training only).
    seed: shuffling and augmentation seed.
    host, num_hosts: this process and the process count.
    """

    global_batch: int
    crop: int
    random_flip: bool = True
    seed: int = 0
    host: int = 0
    num_hosts: int = 1

    def __post_init__(self):
        if self.global_batch < 1 or self.crop < 1:
            raise ValueError(f"global_batch and crop must be >= 1, got {self.global_batch}, {self.crop}")
        if not 0 <= self.host < self.num_hosts or self.global_batch % self.num_hosts:
            raise ValueError(f"global batch {self.global_batch} must divide over {self.num_hosts} hosts "
                             f"(host {self.host})")

    @property
    def host_batch(self) -> int:
        return self.global_batch // self.num_hosts


@lru_cache(maxsize=4)
def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def _crop(img: np.ndarray, size: int, rng: np.random.Generator | None, where: str) -> np.ndarray:
    h, w = img.shape[:2]
    if h < size or w < size:
        raise ValueError(f"{where}: image of shape {img.shape} is smaller than the {size}x{size} crop")
    if rng is None:  # centre crop
        y, x = (h - size) // 2, (w - size) // 2
    else:
        y, x = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
    return img[y:y + size, x:x + size]


def train_batch(source: ImageSource, spec: BatchSpec, step: int) -> np.ndarray:
    """This host's rows of global training batch ``step``: uint8 [B/H, crop, crop, C]."""
    n = len(source)
    start = step * spec.global_batch + spec.host * spec.host_batch
    out = []
    for pos in range(start, start + spec.host_batch):
        index = _permutation(spec.seed, pos // n, n)[pos % n]
        rng = np.random.default_rng([spec.seed, 1, pos])
        img = _crop(source[index], spec.crop, rng, f"training example {index}")
        if spec.random_flip and rng.integers(2):
            img = img[:, ::-1]
        out.append(img)
    return np.stack(out)


def num_eval_batches(source: ImageSource, spec: BatchSpec, max_examples: int = 0) -> int:
    """Full global batches in the first ``max_examples`` (0: all) examples of ``source``."""
    n = len(source) if max_examples <= 0 else min(max_examples, len(source))
    return n // spec.global_batch


def eval_batches(source: ImageSource, spec: BatchSpec, max_examples: int = 0) -> Iterator[np.ndarray]:
    """This host's rows of each full global batch of the source in order, centre-cropped.

    Raises ValueError when there is not a single full batch.
    """
    count = num_eval_batches(source, spec, max_examples)
    if count == 0:
        raise ValueError(f"evaluation set of {len(source)} images has no full batch of {spec.global_batch}")
    for b in range(count):
        start = b * spec.global_batch + spec.host * spec.host_batch
        yield np.stack([_crop(source[i], spec.crop, None, f"evaluation example {i}")
                        for i in range(start, start + spec.host_batch)])
