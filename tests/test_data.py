"""Input pipeline: deterministic, resumable, host-sharded batches; PNG folders; tfds (offline).

Images: crops of scikit-image's astronaut.png (NASA, public domain).
"""

import os

import numpy as np
import pytest
import skimage.data
from PIL import Image

from irec_jax.data import BatchSpec, PngFolder, eval_batches, num_eval_batches, tfds_source, train_batch


@pytest.fixture(scope="module")
def png_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pngs")
    img = skimage.data.astronaut()
    for i in range(6):
        Image.fromarray(img[40 * i:40 * i + 24, 60 * i:60 * i + 20]).save(d / f"{i:02d}.png")
    return str(d)


def test_png_folder_reads_sorted_uint8(png_dir):
    src = PngFolder(png_dir)
    assert len(src) == 6
    img = skimage.data.astronaut()
    np.testing.assert_array_equal(src[2], img[80:104, 120:140])
    assert src[0].dtype == np.uint8 and src[0].shape == (24, 20, 3)


def test_png_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PngFolder(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="no \\*.png"):
        PngFolder(str(tmp_path))


def test_png_folder_skips_images_below_min_size(tmp_path):
    img = skimage.data.astronaut()
    for name, (h, w) in {"a": (40, 32), "b": (31, 64), "c": (32, 32)}.items():
        Image.fromarray(img[:h, :w]).save(tmp_path / f"{name}.png")
    src = PngFolder(str(tmp_path), min_size=32)
    assert [os.path.basename(f) for f in src.files] == ["a.png", "c.png"]
    assert [os.path.basename(f) for f in src.skipped] == ["b.png"]
    assert src[1].shape == (32, 32, 3)
    assert len(PngFolder(str(tmp_path))) == 3 and PngFolder(str(tmp_path)).skipped == ()
    with pytest.raises(ValueError, match="all 3 PNGs .* smaller than 41x41"):
        PngFolder(str(tmp_path), min_size=41)


def test_train_batches_are_a_pure_function_of_seed_and_step(png_dir):
    src = PngFolder(png_dir)
    spec = BatchSpec(global_batch=4, crop=16, seed=3)
    a = train_batch(src, spec, 5)
    assert a.shape == (4, 16, 16, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, train_batch(PngFolder(png_dir), spec, 5))  # resumable: step only
    assert not np.array_equal(a, train_batch(src, spec, 6))
    assert not np.array_equal(a, train_batch(src, BatchSpec(4, 16, seed=4), 5))


def test_hosts_build_disjoint_rows_of_the_global_batch(png_dir):
    src = PngFolder(png_dir)
    full = train_batch(src, BatchSpec(6, 16, seed=1), 7)
    parts = [train_batch(src, BatchSpec(6, 16, seed=1, host=h, num_hosts=3), 7) for h in range(3)]
    np.testing.assert_array_equal(np.concatenate(parts), full)
    with pytest.raises(ValueError, match="divide"):
        BatchSpec(4, 16, host=0, num_hosts=3)


def test_each_epoch_visits_every_image_once(png_dir):
    src = PngFolder(png_dir)
    spec = BatchSpec(global_batch=3, crop=20, random_flip=False, seed=0)  # crop = full width
    rows = np.concatenate([train_batch(src, spec, s) for s in range(4)])  # 2 epochs of 6
    whole = {src[i][:, :20].tobytes() for i in range(6)}
    for epoch in (rows[:6], rows[6:]):
        # every image exactly once (crop offsets vary in height only)
        found = [[i for i in range(6) if any(np.array_equal(r, src[i][y:y + 20]) for y in range(5))]
                 for r in epoch]
        assert sorted(f[0] for f in found) == list(range(6)), found
    assert len(whole) == 6


def test_flips_happen_and_are_deterministic(png_dir):
    src = PngFolder(png_dir)
    spec = BatchSpec(global_batch=6, crop=20, random_flip=True, seed=0)
    batch = train_batch(src, spec, 0)
    flipped = sum(not any(np.array_equal(r, src[i][y:y + 20]) for i in range(6) for y in range(5))
                  for r in batch)
    assert 0 < flipped < 6


def test_eval_batches_centre_crop_in_order(png_dir):
    src = PngFolder(png_dir)
    spec = BatchSpec(global_batch=4, crop=16, random_flip=False)
    assert num_eval_batches(src, spec) == 1
    (b,) = list(eval_batches(src, spec))
    np.testing.assert_array_equal(b[1], src[1][4:20, 2:18])
    with pytest.raises(ValueError, match="no full batch"):
        list(eval_batches(src, BatchSpec(8, 16)))
    with pytest.raises(ValueError, match="smaller than the 32x32 crop"):
        list(eval_batches(src, BatchSpec(2, 32)))


def test_tfds_source_over_mock_data():
    import tensorflow_datasets as tfds
    with tfds.testing.mock_data(num_examples=5):
        src = tfds_source("cifar10", "test")
        assert len(src) == 5
        assert src[0].shape == (32, 32, 3) and src[0].dtype == np.uint8
        batch = train_batch(src, BatchSpec(4, 16), 0)
        assert batch.shape == (4, 16, 16, 3)


def test_tfds_source_not_prepared_fails_fast_without_download(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    def no_download(*args, **kwargs):
        raise AssertionError("tfds_source started a download")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_download)
    for name in ("cifar10", "imagenet32"):
        with pytest.raises(FileNotFoundError, match="not prepared"):
            tfds_source(name, "train", str(tmp_path))
    assert not os.path.exists(tmp_path / "downloads")


def test_imagenet32_test_split_is_tfds_validation():
    import tensorflow_datasets as tfds
    with tfds.testing.mock_data(num_examples=3):
        src = tfds_source("imagenet32", "test")
        assert src.records.dataset_info.full_name.startswith("downsampled_imagenet/32x32")
        assert src.records.split == "validation"
        assert len(src) == 3 and src[0].dtype == np.uint8 and src[0].shape[-1] == 3
