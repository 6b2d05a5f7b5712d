"""irec_jax.metrics: PSNR, SSIM and MS-SSIM against values pinned from pytorch_msssim.

Images: scikit-image's astronaut.png (NASA, public domain) and chelsea.png,
crops of them (odd sizes exercise MS-SSIM's padded pooling), and distortions
that are pure integer/float64 numpy (a binomial blur, noise that is a fixed hash
of the pixel index, posterisation, inversion), so the pinned values cannot drift
with an RNG stream or a codec library.

The pins come from pytorch_msssim 1.0.0 (torch 2.14.1, scikit-image 0.26.0,
numpy 2.4.6) on float64 tensors: ``ms_ssim(X, Y, data_range=255)`` and
``ssim(X, Y, data_range=255)``, default arguments (``size_average=True``),
X, Y [1, C, H, W]; PSNR from ``skimage.metrics.peak_signal_noise_ratio(x, y,
data_range=255)``. Float64 keeps torch's float32 rounding out of the pins (on
float32 tensors pytorch_msssim moves by up to 2e-6 on these pairs); the float32
JAX metrics were within 1.1e-6 of them. To regenerate, in a virtualenv outside the
repository::

    python3 -m venv /tmp/msssim_venv
    /tmp/msssim_venv/bin/pip install torch pytorch_msssim==1.0.0 scikit-image jax==0.10.2 jaxlib==0.10.2 pytest
    PYTHONPATH=. /tmp/msssim_venv/bin/python tests/test_metrics.py   # from the repo root; prints _PINNED
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from skimage import data as skdata

from irec_jax import metrics

# Distance from the float64 pins that float32 JAX must keep (seen: at most 1.1e-6,
# on the inverted pair's SSIM). Dropping the float32 window's 3e-8 shortfall moves
# SSIM by up to 8e-6 here, and the odd-side pooling padding moves MS-SSIM by more.
_TOL = 4e-6


def _hash_noise(shape: tuple[int, ...], amplitude: int) -> np.ndarray:
    """int64 [shape] in [-amplitude, amplitude]: a SplitMix64-style hash of the flat pixel index."""
    i = np.arange(math.prod(shape), dtype=np.uint64)
    h = (i + np.uint64(0x9E3779B97F4A7C15)) * np.uint64(0xBF58476D1CE4E5B9)  # wraps mod 2^64
    h ^= h >> np.uint64(29)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(32)
    return (h % np.uint64(2 * amplitude + 1)).astype(np.int64).reshape(shape) - amplitude


def _binomial_blur(img: np.ndarray) -> np.ndarray:
    """uint8 like img [H, W(, C)]: separable [1, 4, 6, 4, 1] / 16 blur, edge-padded, rounded half to even."""
    taps = np.array([1, 4, 6, 4, 1]) / 16
    out = img.astype(np.float64)
    for axis in (0, 1):
        n = out.shape[axis]
        padded = np.pad(out, [(2, 2) if a == axis else (0, 0) for a in range(out.ndim)], mode="edge")
        out = sum(taps[t] * np.take(padded, np.arange(t, t + n), axis=axis) for t in range(5))
    return np.rint(out).astype(np.uint8)


def _add_clipped(img: np.ndarray, noise: np.ndarray) -> np.ndarray:
    return np.clip(img.astype(np.int64) + noise, 0, 255).astype(np.uint8)


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (reference, distorted) uint8 images, [H, W, 3] or [H, W]."""
    astro, cat = skdata.astronaut(), skdata.chelsea()  # [512, 512, 3], [300, 451, 3]
    crop = astro[100:301, 50:367]  # [201, 317, 3]: both sides odd
    gray = cat[7:188, 11:274, 1]  # [181, 263]
    return {
        "astronaut_blur": (astro, _binomial_blur(astro)),
        "astronaut_noise": (astro, _add_clipped(astro, _hash_noise(astro.shape, 20))),
        "chelsea_posterize": (cat, cat // 32 * 32 + 16),
        "crop201x317_blur_noise": (crop, _add_clipped(_binomial_blur(crop), _hash_noise(crop.shape, 12))),
        "crop201x317_inverted": (crop, 255 - crop),  # negative cs: relu makes MS-SSIM 0
        "gray181x263_noise": (gray, _add_clipped(gray, _hash_noise(gray.shape, 30))),
    }


# name -> (ms_ssim, ssim, psnr), from the script in __main__ below.
_PINNED = {
    "astronaut_blur": (0.9884992344039913, 0.9199276049218493, 29.318078358597592),
    "astronaut_noise": (0.937022529733546, 0.5685567937150076, 27.108650484035337),
    "chelsea_posterize": (0.9338897092038186, 0.7700447028196612, 28.723575538206326),
    "crop201x317_blur_noise": (0.9513705233420117, 0.6609506622663149, 27.028246392201567),
    "crop201x317_inverted": (0.0, -0.12801244551145896, 4.094939754700357),
    "gray181x263_noise": (0.9066149319741896, 0.4981833895712831, 23.217397687606606),
}


@pytest.fixture(scope="module")
def cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return _cases()


@pytest.mark.parametrize("name", sorted(_PINNED))
def test_matches_pytorch_msssim(cases, name):
    x, y = cases[name]
    want_ms, want_ssim, want_psnr = _PINNED[name]
    assert metrics.ms_ssim(x, y) == pytest.approx(want_ms, abs=_TOL)
    assert metrics.ssim(x, y) == pytest.approx(want_ssim, abs=_TOL)
    assert metrics.psnr(x, y) == pytest.approx(want_psnr, abs=1e-9)


def test_pins_cover_every_case(cases):
    assert set(_PINNED) == set(cases)


def test_identical_images_are_perfect(cases):
    x, _ = cases["crop201x317_blur_noise"]
    assert metrics.psnr(x, x.copy()) == math.inf
    assert metrics.ms_ssim(x, x.copy()) == 1.0
    assert metrics.ssim(x, x.copy()) == 1.0
    assert metrics.ms_ssim_db(metrics.ms_ssim(x, x.copy())) == math.inf


def test_psnr_of_a_known_mse():
    x = np.zeros((4, 4, 3), np.uint8)
    y = x.copy()
    y[:, :, 0] = 10  # 16 of 48 values off by 10: MSE = 1600 / 48
    assert metrics.psnr(x, y) == pytest.approx(10 * math.log10(255**2 * 48 / 1600), rel=1e-12)
    assert metrics.psnr(y, x) == metrics.psnr(x, y)
    ones = np.full((3, 5), 0.5)
    assert metrics.psnr(ones, ones + 0.1, max_value=1.0) == pytest.approx(20.0, rel=1e-12)  # MSE 0.01


def test_psnr_takes_grayscale(cases):
    x, y = cases["gray181x263_noise"]
    assert x.ndim == 2
    assert metrics.psnr(x, y) == metrics.psnr(x[..., None], y[..., None])
    assert 20 < metrics.psnr(x, y) < 30


@pytest.mark.parametrize("fn", [metrics.psnr, metrics.ssim, metrics.ms_ssim])
def test_mismatched_shapes_raise(fn):
    a = np.zeros((200, 200, 3), np.uint8)
    with pytest.raises(ValueError, match=r"\(200, 200, 3\).*\(200, 199, 3\)"):
        fn(a, a[:, :199])
    with pytest.raises(ValueError):
        fn(a, a[..., 0])


def test_too_small_for_ms_ssim_raises_with_the_shape():
    small = np.full((160, 400, 3), 128, np.uint8)
    with pytest.raises(ValueError, match=r"\(160, 400, 3\)"):
        metrics.ms_ssim(small, small)
    with pytest.raises(ValueError, match=r"\(300, 160\)"):
        metrics.ms_ssim(np.zeros((300, 160)), np.zeros((300, 160)))
    smallest = np.full((161, 161, 3), 128, np.uint8)
    assert metrics.ms_ssim(smallest, smallest) == 1.0  # 161 px is enough
    with pytest.raises(ValueError, match=r"\(10, 40\)"):
        metrics.ssim(np.zeros((10, 40)), np.zeros((10, 40)))


def test_ms_ssim_db():
    assert metrics.ms_ssim_db(0.9) == pytest.approx(10.0, rel=1e-12)
    assert metrics.ms_ssim_db(0.99) == pytest.approx(20.0, rel=1e-12)
    assert metrics.ms_ssim_db(1.0) == math.inf
    values = [metrics.ms_ssim_db(v) for v in np.linspace(0.0, 0.999999, 50)]
    assert values[0] == 0.0 and all(b > a for a, b in zip(values, values[1:]))
    with pytest.raises(ValueError):
        metrics.ms_ssim_db(math.nan)


def test_window_is_the_normalised_gaussian():
    g = metrics._gaussian_window().astype(np.float64)
    k = np.arange(11) - 5
    exact = np.exp(-(k**2) / (2 * 1.5**2))
    np.testing.assert_allclose(g, exact / exact.sum(), rtol=1e-6)
    assert g.sum() == pytest.approx(1 - 3.07e-8, abs=1e-9)  # torch's float32 taps, not quite 1


def test_pooling_pads_odd_sides_like_torch_avg_pool2d():
    # torch.nn.functional.avg_pool2d(x, 2, padding=[H % 2, W % 2]) on arange, printed from torch 2.14.1.
    x35 = jnp.arange(1.0, 16.0).reshape(1, 3, 5, 1)
    np.testing.assert_array_equal(metrics._avg_pool(x35)[0, ..., 0], [[0.25, 1.25, 2.25], [4.25, 10.0, 12.0]])
    x34 = jnp.arange(1.0, 13.0).reshape(1, 3, 4, 1)
    np.testing.assert_array_equal(metrics._avg_pool(x34)[0, ..., 0], [[0.75, 1.75], [7.5, 9.5]])


def test_channels_average_and_batch_is_per_image(cases):
    x, y = cases["crop201x317_blur_noise"]
    per_channel = [metrics.ms_ssim(x[..., c], y[..., c]) for c in range(3)]
    assert metrics.ms_ssim(x, y) == pytest.approx(np.mean(per_channel), abs=1e-6)
    assert max(per_channel) - min(per_channel) > 1e-4  # the channels do differ
    pairs = [cases["astronaut_blur"], cases["astronaut_noise"]]
    batch = metrics._ms_ssim_jax(*(jnp.asarray(np.stack(side), jnp.float32) for side in zip(*pairs)))
    assert batch.shape == (2, 3)
    np.testing.assert_allclose(np.mean(batch, axis=1), [_PINNED["astronaut_blur"][0], _PINNED["astronaut_noise"][0]],
                               atol=_TOL)


if __name__ == "__main__":
    # Regenerates _PINNED with pytorch_msssim (see the module docstring); needs torch.
    from importlib.metadata import version

    import pytorch_msssim
    import torch
    from skimage.metrics import peak_signal_noise_ratio

    def _tensor(img: np.ndarray) -> torch.Tensor:
        img = img if img.ndim == 3 else img[..., None]
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))[None].astype(np.float64))

    print(f"# pytorch_msssim {version('pytorch_msssim')}, torch {torch.__version__}")
    print("_PINNED = {")
    for name, (x, y) in _cases().items():
        ms = pytorch_msssim.ms_ssim(_tensor(x), _tensor(y), data_range=255).item()
        ss = pytorch_msssim.ssim(_tensor(x), _tensor(y), data_range=255).item()
        ps = float(peak_signal_noise_ratio(x, y, data_range=255))
        print(f'    "{name}": ({ms!r}, {ss!r}, {ps!r}),')
    print("}")
