"""The lossless image codec: a hierarchical VAE's latents by iREC, pixels by range coding.

``compress(image) -> bytes`` walks the model's layers top-down: for each
layer it iREC-encodes a sample of the posterior against the prior
(``irec_jax.rec``, stream = layer index), then feeds the chosen sample --
exactly what the decoder will reconstruct -- into the top-down stream. The
pixels are then range coded under the likelihood given the chosen latents
(``irec_jax.entropy``). ``decompress`` mirrors it with the prior alone and
checks the CRC-32 of the result. The file layout is ``docs/format.md``; the
codec writes two sections: the iREC indices and the pixel residual.

Sizes: any H x W from 1 x 1 up. The model works at even sizes, so an odd
height or width is padded by repeating the last row/column before encoding;
the header stores the true size and only the true pixels are coded.
Grayscale images go through an RGB model as R = G = B, and only one
channel's pixels are coded (the model codes subpixels independently given
the latents, so this is exact).

Portability: everything the decoder computes is exact integer arithmetic
(the model's integer generative path, ``irec_jax.models.integer``; the
coder's integer reconstruction, ``irec_jax.rec``; integer frequency tables,
``irec_jax.entropy``), so a file decodes to the same pixels on every CPU code
path, GPU and TPU. The encoder's own float work (posteriors, the search)
never needs to be repeated.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import numpy as np

from irec_jax import entropy, imageio, modelzoo
from irec_jax.errors import FormatError, ImageError
from irec_jax.modelzoo import CodecModel
from irec_jax.settings import check_storable

Progress = Callable[[int, int], None]  # (steps done, total steps)


@dataclasses.dataclass(frozen=True)
class CodecReport:
    """What one ``compress`` call wrote and what it cost.

    Sizes are real bytes of the file: ``total_bytes`` = ``header_bytes`` (magic,
    header, section framing, CRC) + ``index_bytes`` + ``residual_bytes``.
    ``kl_nats`` [L]: KL(q || p) of each layer along the coded path;
    ``log_ratio_nats`` [L]: log q(z_hat)/p(z_hat) of the coded sample;
    ``index_bits_ideal``: sum over layers of K_b log2 N (uniform-code ideal);
    ``residual_bits_ideal``: -log2 p(x | z_hat) under the coder's own integer
    frequency tables (the codelength before the range coder's few bytes of
    flush; a figure, not bytes). Times in seconds, wall clock.
    """

    shape: tuple[int, int, int]
    total_bytes: int
    header_bytes: int
    index_bytes: int
    residual_bytes: int
    kl_nats: tuple[float, ...]
    log_ratio_nats: tuple[float, ...]
    index_bits_ideal: float
    residual_bits_ideal: float
    encode_seconds: float

    @property
    def num_dims(self) -> int:
        h, w, c = self.shape
        return h * w * c

    @property
    def bpd(self) -> float:
        """Bits per subpixel of the whole file."""
        return 8.0 * self.total_bytes / self.num_dims


def coder_settings(omega: float | None = None, epsilon: float | None = None,
                   beams: int | None = None, seed: int | None = None, *,
                   base: entropy.CoderSettings = entropy.CoderSettings()) -> entropy.CoderSettings:
    """``base`` with the given fields replaced; ValueError (naming the field) if
    invalid or if the file could not record it (a schedule other than the default)."""
    changes = {k: v for k, v in dict(omega=omega, epsilon=epsilon, beams=beams, seed=seed).items()
               if v is not None}
    return check_storable(dataclasses.replace(base, **changes))  # CoderSettings validates itself


def model_input(pixels: np.ndarray, image_channels: int) -> np.ndarray:
    """The codec's model input: uint8 [H, W, C] -> int32 [1, H', W', C_model] with H', W' even (edge padding)."""
    h, w, c = pixels.shape
    if c != image_channels:
        if c == 1 and image_channels == 3:
            pixels = np.repeat(pixels, 3, axis=-1)
        else:
            raise ImageError(f"the model codes {image_channels}-channel images; this image has {c}")
    x = np.pad(pixels, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return x[None].astype(np.int32)


def pixel_params(dist: Any, shape: tuple[int, int, int], index: int = 0) -> entropy.Likelihood:
    """Image ``index`` of the model's pixel likelihood, cropped to the true
    image, as entropy-layer parameters."""
    from irec_jax.models import Logistic, MixtureOfLogistics, QuantizedLogistic
    h, w, c = shape
    sl = (index, slice(0, h), slice(0, w), slice(0, c))
    if isinstance(dist, QuantizedLogistic):
        return entropy.QuantizedLogistic(np.asarray(dist.loc)[sl], np.asarray(dist.inv_scale)[sl])
    if isinstance(dist, Logistic):
        return entropy.FloatLogistic(np.asarray(dist.loc, np.float64)[sl], np.log(np.asarray(dist.scale, np.float64)[sl]))
    if isinstance(dist, MixtureOfLogistics):
        return entropy.FloatLogisticMixture(np.asarray(dist.logits, np.float64)[sl],
                                            np.asarray(dist.loc, np.float64)[sl],
                                            np.log(np.asarray(dist.scale, np.float64)[sl]))
    raise TypeError(f"unsupported pixel likelihood {type(dist).__name__}")


def _encode(pixels: np.ndarray, cm: CodecModel, settings: entropy.CoderSettings,
            progress: Progress | None) -> tuple[bytes, CodecReport]:
    import jax.numpy as jnp

    from irec_jax import rec

    t0 = time.perf_counter()
    model, params = cm.model, cm.params
    x = model_input(pixels, cm.image_channels)
    total = model.num_layers + 1
    if progress:
        progress(0, total)
    acts = model.bottom_up(params, jnp.asarray(x))
    state = model.initial_state(params, x.shape)
    layers, kls, ratios, ideal = [], [], [], 0.0
    for layer in range(model.num_layers):
        p = model.prior(params, state, layer)
        q = model.posterior(params, state, acts, layer)
        q_loc, q_scale = np.asarray(q.loc[0]), np.asarray(q.scale[0])
        p_loc, p_scale = np.asarray(p.loc[0]), np.asarray(p.scale[0])
        code, z = rec.encode(q_loc, q_scale, p_loc, p_scale, settings, stream=layer)
        layers.append(entropy.LayerIndices(code.steps, code.indices))
        kls.append(rec.kl_divergence(q_loc, q_scale, p_loc, p_scale))
        ratios.append(rec.log_ratio(z, q_loc, q_scale, p_loc, p_scale))
        ideal += code.ideal_bits
        state = model.advance(params, state, jnp.asarray(z)[None], layer)
        if progress:
            progress(layer + 1, total)
    lik = pixel_params(model.likelihood(params, state), pixels.shape)
    index_section = entropy.encode_indices(layers, settings.num_candidates)
    residual_section = entropy.encode_residual(pixels, lik)
    h, w, c = pixels.shape
    container = entropy.Container(entropy.Header(cm.ref, settings, h, w, c),
                                  (index_section, residual_section), entropy.pixel_crc(pixels))
    # Only the bundled models are written by position; any other by name + parameter hash,
    # so a reader that lacks it can say which model the file needs.
    data = entropy.pack(container, [m.ref for m in modelzoo.known_models()])
    if progress:
        progress(total, total)
    report = CodecReport(
        shape=(h, w, c), total_bytes=len(data),
        header_bytes=len(data) - len(index_section) - len(residual_section),
        index_bytes=len(index_section), residual_bytes=len(residual_section),
        kl_nats=tuple(float(k) for k in kls), log_ratio_nats=tuple(float(r) for r in ratios),
        index_bits_ideal=float(ideal), residual_bits_ideal=float(entropy.coded_bits(pixels, lik)),
        encode_seconds=time.perf_counter() - t0)
    return data, report


def compress_report(image: Any, *, model: "str | CodecModel" = "default",
                    settings: entropy.CoderSettings | None = None,
                    progress: Progress | None = None) -> tuple[bytes, CodecReport]:
    """``compress`` plus a ``CodecReport`` of the sizes, KLs and ideal codelengths."""
    cm = modelzoo.load_model(model)
    pixels = imageio.to_array(image)
    settings = cm.defaults if settings is None else coder_settings(base=settings)
    return _encode(pixels, cm, settings, progress)


def compress(image: Any, *, model: "str | CodecModel" = "default",
             settings: entropy.CoderSettings | None = None,
             progress: Progress | None = None) -> bytes:
    """Losslessly compresses an image to the bytes of an ``.irec`` file.

    Args:
      image: uint8 [H, W], [H, W, 1] or [H, W, 3] array, a PIL image or a
        path (modes as in ``irec_jax.imageio``: palette, 1-bit and opaque
        RGBA are converted without loss; transparency and 16-bit are refused).
      model: "default" (bundled), a model folder, a train.py workdir or a
        ``CodecModel``.
      settings: iREC settings (Omega, epsilon, beams, seed); None: the model's
        defaults (which the file then does not store).
      progress: called with (done, total) after each latent layer and at the end.

    Raises:
      ImageError for unsupported images, ModelError for unusable models,
      ValueError for invalid settings.
    """
    return compress_report(image, model=model, settings=settings, progress=progress)[0]


def _unpack(data: bytes, model: "str | CodecModel | None") -> tuple[entropy.Container, CodecModel]:
    extra = None if model is None else modelzoo.load_model(model)
    known = modelzoo.known_models(extra)
    container = entropy.unpack(bytes(data), [m.ref for m in known])
    cm = next(m for m in known if m.ref == container.header.model)
    return container, cm


def decompress(data: bytes, *, model: "str | CodecModel | None" = None,
               progress: Progress | None = None) -> np.ndarray:
    """The uint8 [H, W, C] pixels of an ``.irec`` file (C = 1 or 3), bit-exact.

    ``model``: needed only for files written with a model other than the
    bundled default (the header names the model and a hash of its weights).
    Raises FormatError for anything malformed, truncated or corrupt, or
    written with a model that is not available.
    """
    import jax.numpy as jnp

    from irec_jax import rec

    container, cm = _unpack(data, model)
    header = container.header
    if len(container.sections) != 2:
        raise FormatError(f"a lossless file has 2 sections, this one has {len(container.sections)}")
    model_, params = cm.model, cm.params
    settings = header.settings  # entropy.unpack refuses what the coder cannot decode
    layers = entropy.decode_indices(container.sections[0], settings.num_candidates)
    if len(layers) != model_.num_layers:
        raise FormatError(f"the index section has {len(layers)} layers; model {cm.name!r} "
                          f"has {model_.num_layers}")
    h, w, c = header.shape
    if c not in (1, cm.image_channels):
        raise FormatError(f"{c}-channel image cannot come from a {cm.image_channels}-channel model")
    shape = (1, h + h % 2, w + w % 2, cm.image_channels)
    total = model_.num_layers + 1
    if progress:
        progress(0, total)
    state = model_.initial_state(params, shape)
    for layer, li in enumerate(layers):
        p = model_.prior(params, state, layer)
        code = rec.RecCode(np.asarray(li.steps, np.int64), np.asarray(li.indices, np.int64),
                           settings.num_candidates)
        try:
            z = rec.decode(code, np.asarray(p.loc[0]), np.asarray(p.scale[0]), settings, stream=layer)
        except ValueError as e:
            raise FormatError(f"corrupt latent code in layer {layer}: {e}") from None
        state = model_.advance(params, state, jnp.asarray(z)[None], layer)
        if progress:
            progress(layer + 1, total)
    lik = pixel_params(model_.likelihood(params, state), (h, w, c))
    pixels = entropy.decode_residual(container.sections[1], lik)
    pixels = entropy.check_pixels(container, np.asarray(pixels, np.uint8).reshape(h, w, c))
    if progress:
        progress(total, total)
    return pixels


def read_info(data: bytes, *, model: "str | CodecModel | None" = None) -> dict:
    """Header fields and section sizes of an ``.irec`` file, without decoding pixels."""
    container, cm = _unpack(data, model)
    h = container.header
    sections = [len(s) for s in container.sections]
    dims = h.height * h.width * h.channels
    info = {
        "model": h.model.name, "model_hash": h.model.param_hash.hex(),
        "height": h.height, "width": h.width, "channels": h.channels,
        "omega": h.settings.omega, "epsilon": h.settings.epsilon, "beams": h.settings.beams,
        "seed": h.settings.seed, "candidates": h.settings.num_candidates,
        "total_bytes": len(data), "index_bytes": sections[0],
        "residual_bytes": sections[1] if len(sections) > 1 else 0,
        "header_bytes": len(data) - sum(sections), "bpd": 8.0 * len(data) / dims,
    }
    if len(sections) > 1:
        layers = entropy.decode_indices(container.sections[0], h.settings.num_candidates)
        info["blocks_per_layer"] = [int(li.steps.shape[0]) for li in layers]
        info["steps_per_layer"] = [int(np.sum(li.steps)) for li in layers]
    return info
