"""The lossless image codec: a hierarchical VAE's latents by iREC, pixels by range coding.

``compress(image) -> bytes`` walks the model's layers top-down: for each
layer it iREC-encodes a sample of the posterior against the prior
(``irec_jax.rec``, stream = layer index), then feeds the chosen sample --
exactly what the decoder will reconstruct -- into the top-down stream. The
pixels are then range coded under the likelihood given the chosen latents
(``irec_jax.entropy``). ``decompress`` mirrors it with the prior alone and
checks the CRC-32 of the result. The file layout is ``docs/format.md``: the
image is cut into tiles (``tile``, 1024 x 1024 pixels by default), each coded
on its own as one range-coded stream holding every layer's step counts and
indices, then the pixels.

Safety net: every call codes with the model first, then also writes the
image in **stored mode** (PNG-filtered scanlines through deflate, no model,
``irec_jax.entropy.stored``); if that is strictly smaller, the file is the
stored one (flagged in the header; ``fallback=False`` keeps the model's
file). So a file is never larger than a simple PNG-style coder makes it, and
``CodecReport`` still says what the model's coding cost.

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
import threading
import time
from typing import Any, Callable, Sequence

import numpy as np

from irec_jax import entropy, imageio, modelzoo, parallel
from irec_jax.errors import FormatError, ImageError, ModelError
from irec_jax.modelzoo import CodecModel
from irec_jax.settings import check_storable, preset

Progress = Callable[[int, int], None]  # (steps done, total steps)


@dataclasses.dataclass(frozen=True)
class CodecReport:
    """What one ``compress`` call wrote and what it cost.

    The file: ``total_bytes`` (its length, whichever mode it is in), ``bpd``,
    ``stored`` (True: it is the stored-mode file, because that was strictly
    smaller than the model's coding and fallback was on), ``encode_seconds``
    (wall clock of the whole call, both codings). The two codings:
    ``model_bytes`` (the model's file) and ``stored_bytes`` (the stored-mode
    file); ``total_bytes`` is one of them.

    Every other field describes the **model's** coding, whether or not it was
    written: ``model_bytes`` = ``header_bytes`` (magic, header, tile
    lengths, CRC) + ``stream_bytes`` (the tiles' coded streams). Within the
    streams, exact codelengths in bits (what the range coder writes, but for
    how each tile's stream ends, about a byte; figures, not bytes):
    ``index_bits`` (step counts and candidate indices of every layer) and
    ``residual_bits`` (-log2 p(x | z_hat) under the coder's integer tables).
    ``index_bits_ideal``: sum over layers and tiles of K_b log2 N (the
    indices alone). ``kl_nats`` [L]: KL(q || p) of each layer along the coded
    path, summed over tiles; ``log_ratio_nats`` [L]: log q(z_hat)/p(z_hat)
    of the coded sample. ``tiles``: how many tiles the image was cut into.
    ``refine_steps``: the posterior refinement's Adam steps (the most any
    tile had; 0: the encoder network's posteriors as they are).
    Times in seconds, wall clock.
    """

    shape: tuple[int, int, int]
    total_bytes: int
    header_bytes: int
    stream_bytes: int
    index_bits: float
    residual_bits: float
    kl_nats: tuple[float, ...]
    log_ratio_nats: tuple[float, ...]
    index_bits_ideal: float
    tiles: int
    encode_seconds: float
    stored: bool = False
    model_bytes: int = 0
    stored_bytes: int = 0
    refine_steps: int = 0

    @property
    def num_dims(self) -> int:
        h, w, c = self.shape
        return h * w * c

    @property
    def bpd(self) -> float:
        """Bits per subpixel of the whole file (stored mode included)."""
        return 8.0 * self.total_bytes / self.num_dims

    @property
    def model_bpd(self) -> float:
        """Bits per subpixel of the model's coding (its whole file), written or not."""
        return 8.0 * self.model_bytes / self.num_dims

    @property
    def flush_bits(self) -> float:
        """Stream bits beyond the exact codelengths: how the tiles' range-coded streams end (a few
        bits each, below zero where a stream's last symbols are implied by its zero padding)."""
        return 8.0 * self.stream_bytes - self.index_bits - self.residual_bits


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
    from irec_jax.models import Logistic, MixtureOfLogistics, QuantizedLogistic, QuantizedMixture
    h, w, c = shape
    sl = (index, slice(0, h), slice(0, w), slice(0, c))
    if isinstance(dist, QuantizedLogistic):
        return entropy.QuantizedLogistic(np.asarray(dist.loc)[sl], np.asarray(dist.inv_scale)[sl])
    if isinstance(dist, QuantizedMixture):  # a grayscale image keeps channel 0 and no coupling
        pairs = (index, slice(0, h), slice(0, w), slice(0, c * (c - 1) // 2))
        return entropy.QuantizedMixture(np.asarray(dist.weight)[sl], np.asarray(dist.loc)[sl],
                                        np.asarray(dist.inv_scale)[sl], np.asarray(dist.coef)[pairs])
    if isinstance(dist, Logistic):
        return entropy.FloatLogistic(np.asarray(dist.loc, np.float64)[sl], np.log(np.asarray(dist.scale, np.float64)[sl]))
    if isinstance(dist, MixtureOfLogistics):
        return entropy.FloatLogisticMixture(np.asarray(dist.logits, np.float64)[sl],
                                            np.asarray(dist.loc, np.float64)[sl],
                                            np.log(np.asarray(dist.scale, np.float64)[sl]))
    raise TypeError(f"unsupported pixel likelihood {type(dist).__name__}")


# Posterior refinement (encoder only): Adam steps per tile on the bottom-up terms of the posteriors,
# against the tile's own negative ELBO (``IntegerRVAE.refine``). By default only on tiles of at most
# REFINE_PIXELS pixels, where it costs about 0.2-2 s; on a 500x500 photo a step costs about 0.5 s here.
REFINE_STEPS = 50  # 30: held-out 64x64 files 0.45% larger (docs/models.md, the refinement's schedule)
REFINE_PIXELS = 128 * 128
REFINE_KEY = 1  # the fixed key of the refinement's samples (folded with the tile's index)


def check_refine(refine: int | None, name: str = "refine") -> int | None:
    """``refine`` if it is None or an int number of refinement steps in 0..10000 (lossless and lossy; the
    lossy error feedback's too), else ValueError naming it as ``name``."""
    if refine is not None and (isinstance(refine, bool) or not isinstance(refine, (int, np.integer))
                               or not 0 <= refine <= 10_000):
        raise ValueError(f"{name} must be an integer number of steps in 0..10000, got {refine!r}")
    return None if refine is None else int(refine)


@dataclasses.dataclass(frozen=True)
class Effort:
    """An encoder preset: how hard ``compress`` works for a smaller file (``effort=``;
    ``irec compress --effort``). Decoding does not depend on it: the file records the Omega and
    epsilon it picks (where they differ from the model's defaults); the rest steers the encoder.

    Attributes:
      name: its name in ``EFFORTS``.
      refine: refinement steps of a tile of at most ``REFINE_PIXELS`` pixels, and of a larger one.
      small, large: ``CoderSettings`` fields set over the model's defaults for an image whose
        tiles are small (its first tile has at most ``REFINE_PIXELS`` pixels) or large.
    """

    name: str
    refine: tuple[int, int]
    small: tuple[tuple[str, Any], ...] = ()
    large: tuple[tuple[str, Any], ...] = ()

    def is_small(self, tile_shape: tuple[int, ...]) -> bool:
        """Whether a tile of ``tile_shape`` (h, w, ...) gets the small-image fields and steps."""
        return tile_shape[0] * tile_shape[1] <= REFINE_PIXELS

    def refine_steps(self, tile_shape: tuple[int, ...]) -> int:
        """Refinement steps of a tile of ``tile_shape`` (h, w, ...)."""
        return self.refine[0] if self.is_small(tile_shape) else self.refine[1]

    def describe(self) -> str:
        """One line: what it sets, for help texts."""
        side = int(REFINE_PIXELS ** 0.5)
        fields = ["".join(f", {k} {v:g}" for k, v in f) for f in (self.small, self.large)]
        return (f"images up to {side}x{side}: {self.refine[0]} refinement steps{fields[0]}; "
                f"larger: {self.refine[1]}{fields[1]}")

    def settings(self, base: entropy.CoderSettings, tile_shape: tuple[int, ...]) -> entropy.CoderSettings:
        """``base`` (the model's defaults) with this preset's fields for an image whose first tile
        has ``tile_shape`` (h, w, ...)."""
        return dataclasses.replace(base, **dict(self.small if self.is_small(tile_shape) else self.large))


# "best": Omega = 6 nats per step with epsilon = 0.1 (N = 735 candidates) leaves 0.6 nats of slack a
# step, as Omega = 3 with epsilon = 0.2 does, but over twice the nats: index bits 1.1 x KL instead of
# 1.2 x, for about 10x the search work per nat (about 2x the encode time of a 32x32 image, 4.5x in a
# batch; large images, where the search dominates, get Omega = 4, epsilon = 0.15 and 32 beams).
# Small images also pick each latent layer's code among 16 final beams by what the rest of the file
# costs (final_choices, layer_choices: -0.5% on 32x32 crops, -0.2% on 64x64, for about 1.3x the time).
# Chosen on crops of the default model's training photos (docs/models.md, "Encoder presets"), never
# on the held-out sets.
EFFORTS = {e.name: e for e in (
    Effort("fast", (0, 0)),
    Effort("default", (REFINE_STEPS, 0)),
    Effort("best", (150, 20),
           small=(("omega", 6.0), ("epsilon", 0.1), ("final_choices", 16), ("layer_choices", 16)),
           large=(("omega", 4.0), ("epsilon", 0.15), ("beams", 32))),
)}
DEFAULT_EFFORT = "default"


def check_effort(effort: "str | Effort") -> Effort:
    """The ``Effort`` named ``effort`` (or ``effort`` itself), else ValueError listing the names."""
    return preset(effort, EFFORTS, Effort)


def refine_steps(refine: int | None, tile_shape: tuple[int, ...], effort: "str | Effort" = DEFAULT_EFFORT) -> int:
    """The refinement steps of a tile of ``tile_shape`` (h, w, ...): ``refine`` checked
    (``check_refine``), or with None the ``effort``'s (default: ``REFINE_STEPS`` for tiles of at
    most ``REFINE_PIXELS`` pixels, else 0)."""
    if check_refine(refine) is None:
        return check_effort(effort).refine_steps(tile_shape)
    return int(refine)


def refine_acts(cm: CodecModel, x: np.ndarray, tiles: Sequence[np.ndarray], acts: Any, steps: int,
                indices: Sequence[int], on_step: Callable[[], None] | None = None) -> Any:
    """The bottom-up terms of the model inputs x [M, H', W', C_model] of ``tiles`` refined for them
    (``IntegerRVAE.refine``); tile m's samples come from fold_in(REFINE_KEY, indices[m]);
    ``on_step`` is called after each step."""
    import jax

    if not steps:
        return acts
    weight = np.zeros(x.shape, np.float32)  # the subpixels the coder codes: no padding, gray: channel 0
    for m, t in enumerate(tiles):
        weight[m, :t.shape[0], :t.shape[1], :t.shape[2]] = 1.0
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(REFINE_KEY),
                                                           np.asarray(indices, np.uint32))
    return cm.model.refine(cm.params, x, acts, steps=steps, keys=keys, weight=weight, on_step=on_step)


@dataclasses.dataclass
class _TileStats:
    """Running sums of what the tiles' encoders did (CodecReport fields)."""

    kl: np.ndarray
    ratio: np.ndarray
    index_bits: float = 0.0
    index_ideal: float = 0.0
    residual_bits: float = 0.0

    @classmethod
    def empty(cls, layers: int) -> "_TileStats":
        return cls(np.zeros(layers), np.zeros(layers))

    def report(self, shape: tuple[int, int, int], data: bytes, stream_bytes: int, tiles: int,
               seconds: float) -> "CodecReport":
        """The CodecReport of the file ``data`` whose tile streams hold ``stream_bytes``."""
        return CodecReport(
            shape=shape, total_bytes=len(data), header_bytes=len(data) - stream_bytes,
            stream_bytes=stream_bytes, index_bits=float(self.index_bits),
            residual_bits=float(self.residual_bits), kl_nats=tuple(float(k) for k in self.kl),
            log_ratio_nats=tuple(float(r) for r in self.ratio), index_bits_ideal=float(self.index_ideal),
            tiles=tiles, encode_seconds=seconds, model_bytes=len(data))


def _encode_tiles(tiles: Sequence[np.ndarray], cm: CodecModel, settings: entropy.CoderSettings,
                  stats: Sequence[_TileStats], step: Callable[[], None], refine: int = 0,
                  indices: Sequence[int] | None = None) -> list[bytes]:
    """The coded streams of M tiles of one shape (uint8 [h, w, c] each): the
    model runs on all of them, their posteriors are refined (``refine`` steps,
    each calling ``step``; ``indices``: the tiles' indices in their images,
    default all 0) and each
    layer is searched for all at once (``rec.encode_batch``; for M = 1
    exactly ``rec.encode``). A stream holds every latent layer
    (``entropy.push_layer``), then the pixels (``entropy.push_pixels``), on
    one range coder. ``stats[m]`` accumulates tile m's codelengths;
    ``final_choices`` or ``layer_choices`` > 1 (``_choose``) needs M = 1."""
    import jax.numpy as jnp

    from irec_jax import rec

    model, params = cm.model, cm.params
    x = np.concatenate([model_input(t, cm.image_channels) for t in tiles])
    acts = refine_acts(cm, x, tiles, model.bottom_up(params, jnp.asarray(x)), refine,
                       [0] * len(tiles) if indices is None else indices, step)
    state = model.initial_state(params, x.shape)
    queues = [entropy.new_queue() for _ in tiles]
    num = settings.num_candidates
    for layer in range(model.num_layers):
        p = model.prior(params, state, layer)
        q = model.posterior(params, state, acts, layer)
        dists = [np.asarray(a) for a in (q.loc, q.scale, p.loc, p.scale)]
        if _choices(settings, layer, model.num_layers) > 1:
            code, z, state, info = _choose(tiles[0], cm, settings, state, acts, [d[0] for d in dists], layer)
            codes, z, infos = [code], z[None], [info]
        else:
            codes, z, infos = rec.encode_batch(*dists, settings, stream=layer)
            state = model.advance(params, state, jnp.asarray(z), layer)
        for m, (code, info) in enumerate(zip(codes, infos)):
            li = entropy.LayerIndices(code.steps, code.indices)
            entropy.push_layer(queues[m], li, num, index=layer)
            stats[m].index_bits += entropy.layer_bits(li, num)
            stats[m].index_ideal += code.ideal_bits
            stats[m].kl[layer] += info.kl
            stats[m].ratio[layer] += rec.log_ratio(z[m], *(d[m] for d in dists))
        step()
    dist = model.likelihood(params, state)
    for m, t in enumerate(tiles):
        stats[m].residual_bits += entropy.push_pixels(queues[m], t, pixel_params(dist, t.shape, index=m))
    return [entropy.finish_queue(queue) for queue in queues]


def _choices(settings: entropy.CoderSettings, layer: int, num_layers: int) -> int:
    """How many final beams of latent ``layer`` (of ``num_layers``) the encoder compares:
    ``final_choices`` for the last layer, ``layer_choices`` for the others."""
    return settings.final_choices if layer == num_layers - 1 else settings.layer_choices


LOOKAHEAD_PIXELS = 1 << 18  # pixels a lookahead pass runs at once (choices x tile): bounds its memory


def _choose(pixels: np.ndarray, cm: CodecModel, settings: entropy.CoderSettings, state: Any, acts: Any,
            dists: Sequence[np.ndarray], layer: int) -> tuple[Any, np.ndarray, Any, Any]:
    """Latent ``layer``'s code among the search's best final beams (``_choices`` of them; all cost
    this layer's index bits) that leads to the smallest rest of the file (``_rest_bits``): exact
    for the last layer, an estimate for the others. ``pixels``: uint8 [h, w, c], the tile;
    ``state``, ``acts``: the model's, batch 1; ``dists``: the layer's (q loc, q scale, p loc,
    p scale), unbatched. Returns (code, z, the state after it, the search's EncodeInfo)."""
    import jax
    import jax.numpy as jnp

    from irec_jax import rec

    model, params = cm.model, cm.params
    count = _choices(settings, layer, model.num_layers)
    codes, zs, info = rec.encode_choices(*dists, settings, stream=layer, choices=count)
    chunk = max(1, LOOKAHEAD_PIXELS // (pixels.shape[0] * pixels.shape[1]))
    best = (np.inf, 0, state)  # (bits, choice, the state after it): only the best state is kept
    for start in range(0, len(codes), chunk):
        z = jnp.asarray(zs[start:start + chunk])
        states = model.advance(params, jax.tree.map(lambda a: jnp.repeat(a, len(z), axis=0), state), z, layer)
        bits = _rest_bits(pixels, cm, states, acts, layer, settings.epsilon)
        k = int(np.argmin(bits))
        if bits[k] < best[0]:
            best = (bits[k], start + k, jax.tree.map(lambda a: a[k:k + 1], states))
    _, j, after = best
    return codes[j], zs[j], after, info


def _rest_bits(pixels: np.ndarray, cm: CodecModel, states: Any, acts: Any, layer: int,
               epsilon: float) -> list[float]:
    """What the file costs after latent ``layer``, in bits, for each of a batch of model
    ``states`` [n] that coded it (``acts``: the bottom-up terms, batch 1): the later layers'
    (1 + epsilon) KL(q || p) / ln 2 (what their indices cost, about), each layer advanced by its
    posterior mean, then the exact codelength of ``pixels`` [h, w, c] at the end of that path.
    After the last layer: the exact codelength alone."""
    import jax
    import jax.numpy as jnp

    from irec_jax.models.interface import gaussian_kl

    model, params = cm.model, cm.params
    n = int(states.h.shape[0])
    acts = jax.tree.map(lambda a: jnp.repeat(a, n, axis=1), acts)  # [L, B, ...]: batch on axis 1
    bits = np.zeros(n)
    for later in range(layer + 1, model.num_layers):
        p, q = model.prior(params, states, later), model.posterior(params, states, acts, later)
        bits += (1.0 + epsilon) * np.asarray(gaussian_kl(q, p), np.float64).reshape(n, -1).sum(1) / np.log(2.0)
        states = model.advance(params, states, q.loc, later)
    dist = model.likelihood(params, states)
    return [float(b) + entropy.coded_bits(pixels, pixel_params(dist, pixels.shape, index=m))
            for m, b in enumerate(bits)]


def _pack(header: entropy.Header, streams: Sequence[bytes], pixels: np.ndarray) -> bytes:
    """The file's bytes. Only the bundled models are written by position; any
    other by name + parameter hash, so a reader that lacks it can say which
    model the file needs."""
    container = entropy.Container(header, tuple(streams), entropy.pixel_crc(pixels))
    return entropy.pack(container, [m.ref for m in modelzoo.known_models()])


def _with_fallback(pixels: np.ndarray, data: bytes, report: CodecReport, fallback: bool,
                   t0: float) -> tuple[bytes, CodecReport]:
    """The file to write and its report, given the model's file ``data`` of
    uint8 ``pixels`` [H, W, C]: the stored-mode file instead if ``fallback``
    and it is strictly smaller. ``t0``: when the call started."""
    stored = entropy.pack_stored(pixels)
    use = fallback and len(stored) < len(data)
    out = stored if use else data
    return out, dataclasses.replace(report, total_bytes=len(out), stored=use, model_bytes=len(data),
                                    stored_bytes=len(stored), encode_seconds=time.perf_counter() - t0)


def _steps_counter(total: int, progress: Progress | None) -> Callable[[], None]:
    """A ``step()`` that counts one more of ``total`` and calls ``progress`` (from any thread)."""
    done, lock = [0], threading.Lock()

    def step() -> None:
        with lock:
            done[0] += 1
            if progress:
                progress(done[0], total)

    if progress:
        progress(0, total)
    return step


def _encode(pixels: np.ndarray, cm: CodecModel, settings: entropy.CoderSettings, tile: int,
            progress: Progress | None, refine: int | None, effort: Effort) -> tuple[bytes, CodecReport]:
    t0 = time.perf_counter()
    h, w, c = pixels.shape
    header = entropy.Header(cm.ref, settings, h, w, c, entropy.check_tile(tile))
    grid = header.tiles()
    layers = cm.model.num_layers
    streams, steps = [], [refine_steps(refine, (th, tw), effort) for _, _, th, tw in grid]
    step = _steps_counter(len(grid) * (layers + 1) + sum(steps), progress)
    stats = _TileStats.empty(layers)
    for i, (y, x, th, tw) in enumerate(grid):
        streams += _encode_tiles([pixels[y:y + th, x:x + tw]], cm, settings, [stats], step, steps[i], [i])
        step()
    data = _pack(header, streams, pixels)
    report = stats.report((h, w, c), data, sum(map(len, streams)), len(grid), time.perf_counter() - t0)
    return data, dataclasses.replace(report, refine_steps=max(steps))


def effort_settings(cm: CodecModel, shape: tuple[int, ...], tile: int = entropy.DEFAULT_TILE,
                    effort: "str | Effort" = DEFAULT_EFFORT) -> entropy.CoderSettings:
    """The coder settings ``compress`` uses for an image of ``shape`` (H, W, ...) cut into
    ``tile`` x ``tile`` tiles when given none: ``cm``'s defaults with the ``effort``'s fields
    (``Effort.settings``) for the size of its first tile."""
    return check_effort(effort).settings(cm.defaults, (min(shape[0], tile), min(shape[1], tile)))


def _lossless_model(model: "str | CodecModel") -> CodecModel:
    cm = modelzoo.load_model(model)
    if cm.lossy:
        raise ModelError(f"model {cm.name!r} is a lossy model; the lossless codec needs a lossless one "
                         "(for lossy coding use irec_jax.lossy, or `irec compress --quality Q`)")
    return cm


def compress_report(image: Any, *, model: "str | CodecModel" = "default",
                    settings: entropy.CoderSettings | None = None, tile: int = entropy.DEFAULT_TILE,
                    progress: Progress | None = None, fallback: bool = True,
                    refine: int | None = None, effort: "str | Effort" = DEFAULT_EFFORT) -> tuple[bytes, CodecReport]:
    """``compress`` plus a ``CodecReport`` of the sizes, KLs and codelengths
    (of the model's coding, and which file was written)."""
    t0 = time.perf_counter()
    cm = _lossless_model(model)
    check_refine(refine)  # bad values fail before any work
    effort = check_effort(effort)
    tile = entropy.check_tile(tile)
    pixels = imageio.to_array(image)
    settings = (effort_settings(cm, pixels.shape, tile, effort) if settings is None
                else coder_settings(base=settings))
    data, report = _encode(pixels, cm, settings, tile, progress, refine, effort)
    return _with_fallback(pixels, data, report, fallback, t0)


BATCH_GROUP_MIN = 8  # images per thread at least: smaller groups lose more to overheads than threads win


def batch_groups(count: int, min_group: int = BATCH_GROUP_MIN) -> int:
    """How many groups ``compress_batch`` codes ``count`` images in, each on its own thread: on the
    CPU backend one per usable core (``parallel.usable_cores``), each of at least ``min_group``
    images; elsewhere 1 (one program fills an accelerator better)."""
    import jax

    if jax.default_backend() != "cpu":
        return 1
    return max(1, min(parallel.usable_cores(), count // min_group))


def compress_batch(images: Sequence[Any], *, model: "str | CodecModel" = "default",
                   settings: entropy.CoderSettings | None = None,
                   progress: Progress | None = None, fallback: bool = True,
                   refine: int | None = None, effort: "str | Effort" = DEFAULT_EFFORT) -> list[tuple[bytes, CodecReport]]:
    """``compress_report`` of many images of one shape in one pass: the model
    runs on the whole batch and every latent layer is searched for all
    images at once (``rec.encode_batch``), one compiled program per batch
    shape. Meant for datasets of small images and for accelerators, which
    one small image cannot fill. On the CPU backend the batch is split into
    one group per core (``batch_groups``), each coded on its own thread,
    since XLA:CPU runs such small programs on about one core. Every file
    stands alone (``decompress``);
    each is what ``compress`` writes for its image (refined with the same
    samples), except where the batch's float sums round differently (in
    the refinement, or a near-tie of two candidates): then it is another
    valid file of about the same size, and it decodes exactly.

    Args:
      images: a non-empty sequence of images of one shape (as ``compress``
        takes them), each at most one tile (1024 x 1024).
      model, settings, fallback, refine, effort: as for ``compress``. Settings that compare final
        beams (``final_choices`` or ``layer_choices`` > 1, as ``effort="best"`` sets for small images)
        code each image in its own pass, on the groups' threads.
      progress: called with (done, total) after each refinement step and each latent layer.

    Returns:
      (data, report) per image; ``report.encode_seconds`` is the batch's
      wall clock (the model's coding and every stored-mode coding) divided
      by the number of images.
    """
    t0 = time.perf_counter()
    cm = _lossless_model(model)
    check_refine(refine)  # bad values fail before any work
    effort = check_effort(effort)
    pixels = [imageio.to_array(im) for im in images]
    if not pixels:
        raise ValueError("compress_batch needs at least one image")
    shape = pixels[0].shape
    if any(p.shape != shape for p in pixels):
        raise ImageError(f"compress_batch codes images of one shape; got {sorted({p.shape for p in pixels})}")
    h, w, c = shape
    if max(h, w) > entropy.DEFAULT_TILE:
        raise ImageError(f"compress_batch codes images of at most {entropy.DEFAULT_TILE} x "
                         f"{entropy.DEFAULT_TILE} pixels (one tile); this one is {h} x {w}: use compress")
    settings = effort_settings(cm, shape, effort=effort) if settings is None else coder_settings(base=settings)
    steps = refine_steps(refine, shape, effort)
    # Comparing final beams (final_choices, layer_choices) runs the model per image: each group
    # then codes its images one by one, so a group of one image is worth its thread.
    one_by_one = max(settings.final_choices, settings.layer_choices) > 1
    count = batch_groups(len(pixels), min_group=1) if one_by_one else batch_groups(len(pixels))
    edges = np.linspace(0, len(pixels), count + 1).round().astype(int)
    groups = list(zip(edges[:-1], edges[1:]))
    passes = len(pixels) if one_by_one else len(groups)
    step = _steps_counter(passes * (cm.model.num_layers + steps) + 1, progress)
    stats = [_TileStats.empty(cm.model.num_layers) for _ in pixels]

    def encode_group(group: tuple[int, int]) -> list[bytes]:
        parts = [(i, i + 1) for i in range(*group)] if one_by_one else [group]
        return [s for a, b in parts for s in _encode_tiles(pixels[a:b], cm, settings, stats[a:b], step, steps)]

    streams = [s for part in parallel.map_threads(encode_group, groups, name="irec-batch") for s in part]
    files = [_pack(entropy.Header(cm.ref, settings, h, w, c), (st,), px) for st, px in zip(streams, pixels)]
    step()
    out = [_with_fallback(px, data, dataclasses.replace(st.report(shape, data, len(stream), 1, 0.0),
                                                        refine_steps=steps), fallback, t0)
           for px, data, stream, st in zip(pixels, files, streams, stats)]
    seconds = (time.perf_counter() - t0) / len(pixels)
    return [(data, dataclasses.replace(rep, encode_seconds=seconds)) for data, rep in out]


def compress(image: Any, *, model: "str | CodecModel" = "default",
             settings: entropy.CoderSettings | None = None, tile: int = entropy.DEFAULT_TILE,
             progress: Progress | None = None, fallback: bool = True, refine: int | None = None,
             effort: "str | Effort" = DEFAULT_EFFORT) -> bytes:
    """Losslessly compresses an image to the bytes of an ``.irec`` file.

    Args:
      image: uint8 [H, W], [H, W, 1] or [H, W, 3] array, a PIL image or a
        path (modes as in ``irec_jax.imageio``: palette, 1-bit and opaque
        RGBA are converted without loss; transparency and 16-bit are refused).
      model: "default" (bundled), a model folder, a train.py workdir or a
        ``CodecModel``.
      settings: iREC settings (Omega, epsilon, beams, seed, ...); None: the
        model's defaults as ``effort`` sets them (``effort_settings``). The
        file stores Omega, epsilon and seed where they differ from the
        model's defaults; the rest only steer the encoder.
      tile: tile side T (even, >= 2): the image is coded as independent
        T x T tiles, which bounds memory and time per tile; the default
        (1024) leaves photos up to a megapixel whole. The file stores T if
        it is not the default.
      progress: called with (done, total) after each refinement step and
        each latent layer of each tile, and after each tile.
      fallback: if the stored mode (PNG-filtered deflate, no model) is
        strictly smaller than the model's coding, write it instead (the
        model still codes the image first; ``compress_report`` says both
        sizes). False: always the model's file.
      refine: Adam steps that refine each tile's posteriors for this image
        before coding (encoder only: float work whose result the file
        carries, so the decoder never repeats it; the bytes may differ
        between machines, every one decodes exactly). None: the ``effort``'s
        (default: ``REFINE_STEPS`` for tiles of at most ``REFINE_PIXELS``
        pixels, 0 above); 0: off.
      effort: "fast" (no refinement), "default" or "best" (``EFFORTS``: more
        refinement, and Omega = 6 / epsilon = 0.1 and 16 final beams compared per
        layer on small images, Omega = 4 /
        epsilon = 0.15 and 32 beams on large ones; several times the encode
        time for about 1-2% smaller files). It fills in what ``settings``
        and ``refine`` leave as None.

    Raises:
      ImageError for unsupported images, ModelError for unusable models,
      ValueError for invalid settings.
    """
    return compress_report(image, model=model, settings=settings, tile=tile, progress=progress,
                           fallback=fallback, refine=refine, effort=effort)[0]


def _unpack(data: bytes, model: "str | CodecModel | None") -> tuple[entropy.Container, CodecModel]:
    """The container of a model-coded file and its model (stored-mode files: ``entropy.unpack``)."""
    extra = None if model is None else modelzoo.load_model(model)
    known = modelzoo.known_models(extra)
    container = entropy.unpack(bytes(data), [m.ref for m in known])
    cm = next(m for m in known if m.ref == container.header.model)
    return container, cm


def decompress(data: bytes, *, model: "str | CodecModel | None" = None,
               progress: Progress | None = None) -> np.ndarray:
    """The uint8 [H, W, C] pixels of an ``.irec`` file (C = 1 or 3), bit-exact;
    for a lossy file (``irec_jax.lossy``) the reconstruction its encoder decoded.

    ``model``: needed only for files written with a model other than the
    bundled default (the header names the model and a hash of its weights);
    stored-mode files need none (``model`` is then ignored).
    Raises FormatError for anything malformed, truncated or corrupt, or
    written with a model that is not available.
    """
    data = bytes(data)
    if entropy.is_stored(data):
        return _decode_stored(data)
    container, cm = _unpack(data, model)
    header = container.header
    if header.lossy:
        from irec_jax import lossy
        return lossy.decode_container(container, cm, progress)
    if cm.lossy:
        raise FormatError(f"a lossless file cannot name the lossy model {cm.name!r} (corrupt file)")
    h, w, c = header.shape
    if c not in (1, cm.image_channels):
        raise FormatError(f"{c}-channel image cannot come from a {cm.image_channels}-channel model")
    grid = header.tiles()
    step = _steps_counter(len(grid) * (cm.model.num_layers + 1), progress)
    pixels = np.empty((h, w, c), np.uint8)
    for i, ((y, x, th, tw), stream) in enumerate(zip(grid, container.sections)):
        pixels[y:y + th, x:x + tw] = _decode_tile(stream, cm, header.settings, (th, tw, c), f"tile {i}", step,
                                                  header.version)
        step()
    return entropy.check_pixels(container, pixels)


def _decode_stored(data: bytes) -> np.ndarray:
    """uint8 [H, W, C] pixels of a stored-mode file, CRC checked."""
    stored = entropy.unpack(data, [])
    return entropy.check_pixels(stored, entropy.unfilter(stored.scanlines, stored.shape))


def _decode_layers(queue, stream: bytes, cm: CodecModel, settings: entropy.CoderSettings,
                   what: str, version: int = entropy.VERSION) -> list[entropy.LayerIndices]:
    """Pops every latent layer's step counts and indices off a tile's stream (of format ``version``)."""
    num = settings.num_candidates
    bound = entropy.max_indices(len(stream), num)
    out = []
    for layer in range(cm.model.num_layers):
        out.append(entropy.pop_layer(queue, num, max_indices=bound, what=f"{what}, layer {layer}", version=version))
    return out


def decode_latents(stream: bytes, cm: CodecModel, settings: entropy.CoderSettings, image_shape: tuple[int, ...],
                   what: str, step: Callable[[], None], version: int = entropy.VERSION) -> tuple[Any, Any]:
    """Pops a tile's latent layers off its stream and runs the model's decoder
    path through them: (the range decoder, positioned after the layers; the
    model state after the last layer). ``image_shape`` [1, H, W, C] is what
    the encoder gave ``initial_state``; ``version`` the file's format. The lossless and lossy codecs share it."""
    import jax.numpy as jnp

    from irec_jax import rec

    model, params = cm.model, cm.params
    queue = entropy.open_queue(stream, what)
    layers = _decode_layers(queue, stream, cm, settings, what, version)  # the stream holds them first
    state = model.initial_state(params, image_shape)
    for layer, li in enumerate(layers):
        p = model.prior(params, state, layer)
        code = rec.RecCode(li.steps, li.indices, settings.num_candidates)
        try:
            z = rec.decode(code, np.asarray(p.loc[0]), np.asarray(p.scale[0]), settings, stream=layer)
        except ValueError as e:
            raise FormatError(f"{what}: corrupt latent code in layer {layer} (corrupt or truncated "
                              f"file): {e}") from None
        state = model.advance(params, state, jnp.asarray(z)[None], layer)
        step()
    return queue, state


def _decode_tile(stream: bytes, cm: CodecModel, settings: entropy.CoderSettings,
                 shape: tuple[int, int, int], what: str, step: Callable[[], None],
                 version: int = entropy.VERSION) -> np.ndarray:
    """uint8 [th, tw, c] pixels of one tile's coded stream (``_encode_tile``) of format ``version``."""
    th, tw, c = shape
    queue, state = decode_latents(stream, cm, settings, (1, th + th % 2, tw + tw % 2, cm.image_channels), what,
                                  step, version)
    lik = pixel_params(cm.model.likelihood(cm.params, state), shape)
    return np.asarray(entropy.pop_pixels(queue, lik, what), np.uint8).reshape(shape)


def read_info(data: bytes, *, model: "str | CodecModel | None" = None) -> dict:
    """Header fields and stream sizes of an ``.irec`` file, and the latent
    code's block and step counts per layer (summed over tiles), without
    running the model. ``mode``: "model", or "stored" (PNG-filtered deflate:
    no model, settings or tiles; ``filters`` counts the rows of each PNG
    filter type None, Sub, Up, Average, Paeth)."""
    data = bytes(data)
    if entropy.is_stored(data):
        stored = entropy.unpack(data, [])
        return {
            "mode": "stored", "format_version": data[2], "model": None, "model_hash": None,
            "height": stored.height, "width": stored.width, "channels": stored.channels,
            "total_bytes": len(data), "stream_bytes": stored.payload_bytes,
            "header_bytes": len(data) - stored.payload_bytes,
            "bpd": 8.0 * len(data) / (stored.height * stored.width * stored.channels),
            "filters": np.bincount(stored.scanlines[:, 0], minlength=5).tolist(),
        }
    container, cm = _unpack(data, model)
    h = container.header
    if h.lossy != cm.lossy:
        raise FormatError(f"the file's lossy flag ({h.lossy}) does not match its model {cm.name!r} (corrupt file)")
    dims = h.height * h.width * h.channels
    streams = sum(len(s) for s in container.sections)
    blocks = np.zeros(cm.model.num_layers, np.int64)
    steps = np.zeros(cm.model.num_layers, np.int64)
    for i, stream in enumerate(container.sections):
        queue = entropy.open_queue(stream, f"tile {i}")
        for layer, li in enumerate(_decode_layers(queue, stream, cm, h.settings, f"tile {i}", h.version)):
            blocks[layer] += li.steps.shape[0]
            steps[layer] += int(li.steps.sum())
    return {
        "mode": "lossy" if h.lossy else "model", "format_version": h.version, "model": h.model.name, "model_hash": h.model.param_hash.hex(),
        "height": h.height, "width": h.width, "channels": h.channels, "tile": h.tile,
        "tiles": len(container.sections),
        "omega": h.settings.omega, "epsilon": h.settings.epsilon, "seed": h.settings.seed, "candidates": h.settings.num_candidates,
        "total_bytes": len(data), "stream_bytes": streams, "header_bytes": len(data) - streams,
        "bpd": 8.0 * len(data) / dims, "bpp": 8.0 * len(data) / (h.height * h.width),
        "blocks_per_layer": blocks.tolist(), "steps_per_layer": steps.tolist(),
    }
