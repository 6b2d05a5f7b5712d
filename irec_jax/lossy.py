"""The lossy image codec: a two-level Gaussian VAE's latents by iREC, nothing else.

``compress(image, quality=Q) -> bytes`` codes an RGB image with a lossy
model (a :class:`~irec_jax.models.gvae_integer.IntegerGVAE`): per tile, the
hyper-latent z2 is iREC-coded against the learned top prior, then z1 against
the prior the decoder computes from z2, and the decoder's integer synthesis
turns z1 into pixels. The file is the ``.irec`` container with the lossy flag
(``docs/format.md``): per tile one range-coded stream of both layers' step
counts and indices, and the CRC-32 of the reconstruction -- the encoder
decodes its own choice with the same integer arithmetic, so a reader on any
machine gets exactly those pixels and can check them.

Rate: the file's real bytes. Distortion: of the reconstruction the file
decodes to. The encoder knows the image, and uses it three times, none of
which the decoder sees:

* before coding, it refines the amortized posteriors for this tile
  (``refine`` Adam steps on their means and log scales against the model's
  own loss, beta D + KL: ``IntegerGVAE.refine``; the card's beta);
* it codes z1's blocks in parts and, before each part after the first,
  refines the posteriors of the dims still to code again with the coded
  dims in place (``feedback`` steps: error feedback, so that the rest make
  up for the coded dims' error);
* among the final beams of z1's search (each costs the same index bits) it
  keeps the one whose decoded tile is closest in squared error
  (``settings.final_choices`` of them).

Sizes: any H x W with both sides >= 64 (``MIN_SIDE``); tiles
(``tile``, 1024 by default, a multiple of 64) bound memory. An edge tile
narrower than 64 pixels is edge-padded to 64 before coding and cropped after.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import numpy as np

from irec_jax import entropy, imageio, modelzoo
from irec_jax.errors import FormatError, ImageError, ModelError
from irec_jax.modelzoo import CodecModel
from irec_jax.settings import preset

Progress = Callable[[int, int], None]
MIN_SIDE = 64  # the model's total downsampling: smaller images are refused


@dataclasses.dataclass(frozen=True)
class LossyReport:
    """What one lossy ``compress`` call wrote and what it cost.

    ``total_bytes`` (the file), ``bpp`` (8 total_bytes / (H W)), ``psnr``
    (dB, RGB, of the reconstruction the file decodes to, 0..255),
    ``mse``, ``index_bits`` (the streams' exact codelength of step counts and
    indices), ``kl_nats`` per layer (KL(q||p) of the posteriors coded, after
    any refinement, summed over tiles: what an ideal coder would spend, an
    estimate of the rate), ``encode_seconds``, ``refine_steps`` (the posterior
    refinement's Adam steps per tile; 0: the encoder's posteriors as they are), ``feedback_steps`` (the
    error feedback's steps per part of z1 after the first; 0: none).
    """

    shape: tuple[int, int, int]
    total_bytes: int
    header_bytes: int
    index_bits: float
    kl_nats: tuple[float, ...]
    mse: float
    psnr: float
    tiles: int
    encode_seconds: float
    model: str
    refine_steps: int = 0
    feedback_steps: int = 0

    @property
    def bpp(self) -> float:
        return 8.0 * self.total_bytes / (self.shape[0] * self.shape[1])

    @property
    def kl_bpp(self) -> float:
        """KL in bits per pixel: the rate an ideal relative entropy coder would reach (an estimate)."""
        return float(sum(self.kl_nats)) / np.log(2.0) / (self.shape[0] * self.shape[1])


# The encoder's search (2026-12-01; chosen on 4 training photos at the 4 bundled qualities, never the
# held-out ones): Omega = 5 nats per step (148 candidates) instead of the models' file default 4, with 20
# beams instead of the paper's 10: +0.22, +0.18, +0.09 and +0.07 dB at +0.2-0.4% bits, for about 1 s more of
# encode on a 768x512 photo (Omega 6: +0.02 dB more at the two lower rates, none at the higher, slower).
# The file records Omega 5 (4 header bytes). 64 beams since later on 2026-12-01: the search's time is mostly drawing
# the candidates, shared by all beams (z1 of a 768x512 training photo at quality 2: 6.8 s with 20 beams,
# 7.4 with 32, 8.2 with 40, 9.4 with 64), and with error feedback on, each step of beams bought more than
# refinement steps do for their time: on 2 training photos (motorcycle_left, graf3, 768x512 centre crops)
# at quality 2, against 20 beams and 50 refinement steps, 32 beams +0.05 dB, 40 +0.07, 64 +0.10, and 64
# with 40 refinement steps (REFINE_STEPS) +0.08 dB (quality 1 +0.10, quality 4 +0.06) at 0.0-0.2% fewer
# bits, in less time than before.
DEFAULT_BEAMS = 64
DEFAULT_OMEGA = 5.0
# The final beams of z1 compared by distortion (choice j takes every block's j-th best beam, so the later
# choices are worse in every block at once). With error feedback, on 4 training photos (2 whole at all 4
# qualities, 256x256 crops of 4 at quality 2) the search's best beam also decoded closest every time; 4
# instead of all 20 gave the same bytes 14% faster on a 768x512 crop.
FINAL_CHOICES = 4
# Posterior refinement per tile (Adam steps). Tuned on 4 training photos, never the held-out ones: coded
# BD-rate -22% at 25 steps, -25% at 50 (0.1-0.37 s a step on a 768x512 photo, by the day's machine); at 25
# steps, 20 beams instead of 10 bought -3.4% for more time than 25 more steps. 40 since later on 2026-12-01, with
# 64 beams (DEFAULT_BEAMS): with error feedback 50 -> 30 steps cost 0.05 dB at quality 2 (2 training
# photos), while the 20 -> 64 beams that the 10 steps' time pays for bought 0.10.
REFINE_STEPS = 40
# Error feedback (encoder only): z1's blocks are coded in FEEDBACK_CHUNKS parts; before each part after
# the first, the posteriors of the dims still to code are refined again (FEEDBACK_STEPS Adam steps) with
# the coded dims in place, so that they make up for the coded ones' error. Chosen on 256x256 centre crops
# of 4 training photos at quality 2 (never the held-out ones), against no feedback (step size 0.01,
# ``refine.FEEDBACK``): 4 parts x 10 steps +0.17 dB at -0.8% bits; 2 x 20 +0.16 dB at -0.2%; 8 x 5 +0.17
# dB at -1.6%; 16 x 3 +0.13 dB at -2.5%; 8 x 8 +0.19 dB at -1.7%; 4 x 20 +0.23 dB at -0.5% for twice the
# steps. On a 768x512 crop of a training photo 4 x 10 took 1.38x the encode time, 4 x 20 1.61x.
FEEDBACK_CHUNKS = 4
FEEDBACK_STEPS = 10
BLOCK_KL = 200.0  # nats per block, also for large tensors: fewer step counts and less rounding per nat


@dataclasses.dataclass(frozen=True)
class LossyEffort:
    """A lossy encoder preset (``effort=``; ``irec compress --quality Q --effort``): how hard the encoder
    works for a better file. Encoder only: a file records the Omega it was coded with, and every preset's
    files decode the same way. Explicit ``settings``, ``refine`` or ``feedback`` override it.

    Attributes:
      name: its name in ``EFFORTS``.
      refine: posterior refinement steps per tile (for models whose card names their beta, else 0).
      feedback: error feedback steps before each of z1's ``FEEDBACK_CHUNKS`` parts after the first
        (where the posteriors are refined).
      feedback_lr: the error feedback's Adam step size; None: ``refine.FEEDBACK``'s.
      beams: the search's beam width B.
      omega: nats per iREC step (epsilon 0: N = floor(exp(omega)) candidates a step).
      final_choices: z1's best final beams compared by distortion (1: the search's best).
    """

    name: str
    refine: int
    feedback: int
    beams: int
    omega: float
    final_choices: int
    feedback_lr: float | None = None

    def describe(self) -> str:
        """One line: what it sets, for help texts (without importing JAX: the CLI's parser calls it)."""
        size = "" if self.feedback_lr is None else f" of size {self.feedback_lr:g}"
        return (f"{self.refine} refinement steps, error feedback {FEEDBACK_CHUNKS - 1} x {self.feedback} "
                f"steps{size}, Omega {self.omega:g}, {self.beams} beams, best of {self.final_choices} by distortion")

    def feedback_schedule(self) -> Any:
        """The error feedback's Adam schedule (an ``irec_jax.models.refine.Schedule`` for
        ``IntegerGVAE.refine_rest``): ``refine.FEEDBACK``, at ``feedback_lr`` where the preset sets one."""
        from irec_jax.models import refine

        if self.feedback_lr is None:
            return refine.FEEDBACK
        return dataclasses.replace(refine.FEEDBACK, lr=self.feedback_lr)


# "fast" (2026-12-01, chosen on 768x512 centre crops of 2 training photos, graf3 and motorcycle_left, at
# qualities 1-3, never on the held-out ones; /tmp/s31/sweep*.py): Omega 3 (20 candidates a step) draws 7x
# fewer candidates per nat than Omega 5, and without refinement (16 beams) coded the same dB as Omega 4 and 5
# at quality 3 (-0.01) in 0.5x the time (at quality 1 Omega 4 was +0.11 dB for 1.13x the time); error
# feedback buys more per second than refinement does, and with it the search's best final beam also decodes
# closest (1 choice: the same bytes, about 1 s sooner). At quality 3 "default" gave 0.650 bpp at 30.88 dB in
# 51 s (warm); this preset (3 refinement steps, 3 x 2 feedback, 32 beams) 0.670 bpp at 30.48 dB in 7.5 s;
# 5 steps and 48 beams +0.09 dB at -0.8% bits for 1.3x the time (9.7 s, too near 10 s on this CPU); no
# refinement 30.38 dB at 0.684 bpp; 8 refinement steps instead of feedback 30.50 dB at 0.662 bpp but -0.37 dB
# from its own ideal (-0.25 with feedback). Its feedback's step size 0.03 since 2026-12-02 (refine.FEEDBACK's
# 0.01 was chosen for 10 steps a part; the same photos, qualities 1/2/3, /tmp/s32/lrsweep*.py): +0.04/+0.08/
# +0.08 dB at -0.9/-0.6/-0.6% bits, no more work; 0.05 -0.02 dB from 0.03, 0.08 -0.10 dB; 7 parts x 1 step
# no better. docs/models.md, "Encoder presets (lossy)".
EFFORTS = {e.name: e for e in (
    LossyEffort("fast", 3, 2, 32, 3.0, 1, feedback_lr=0.03),
    LossyEffort("default", REFINE_STEPS, FEEDBACK_STEPS, DEFAULT_BEAMS, DEFAULT_OMEGA, FINAL_CHOICES),
)}
DEFAULT_EFFORT = "default"


def check_effort(effort: "str | LossyEffort") -> LossyEffort:
    """The ``LossyEffort`` named ``effort`` (or ``effort`` itself), else ValueError listing the names."""
    return preset(effort, EFFORTS, LossyEffort, "lossy effort")


def lossy_settings(cm: CodecModel, settings: entropy.CoderSettings | None = None,
                   effort: "str | LossyEffort" = DEFAULT_EFFORT) -> entropy.CoderSettings:
    """``settings`` checked, or the model's file defaults (lossy models: Omega 4, epsilon 0) with the
    ``effort``'s Omega (default ``DEFAULT_OMEGA``), searched with its beams (``DEFAULT_BEAMS``), its best
    final beams (``FINAL_CHOICES``) compared by distortion at the end, in blocks of ``BLOCK_KL`` nats. Measured on
    kodim23 (768x512) with a mid-rate model at Omega 3: 50-nat blocks cost 1.066x the KL, 100: 1.034x,
    200: 1.019x, 400: 1.010x but 0.23 dB more distortion than 200. Omega 4 (54 candidates a step) instead
    of the paper's 3 (20): +0.15 dB for +0.5% bits at the same speed on the four held-out 768x512 photos
    (quality 2)."""
    from irec_jax.codec import coder_settings
    effort = check_effort(effort)
    if settings is None:
        settings = dataclasses.replace(cm.defaults, omega=effort.omega, beams=effort.beams,
                                       final_choices=effort.final_choices, block_kl=BLOCK_KL, min_block_kl=BLOCK_KL)
    settings = coder_settings(base=settings)
    if settings.layer_choices != 1:
        raise ValueError(f"invalid coder settings: layer_choices={settings.layer_choices} applies to the "
                         "lossless codec only (the lossy encoder compares z1's final beams by distortion: "
                         "final_choices)")
    return settings


def check_lossy_model(cm: CodecModel) -> CodecModel:
    """``cm`` if it is a lossy model, else ModelError saying what it is."""
    if not cm.lossy:
        raise ModelError(f"model {cm.name!r} is a lossless model; lossy coding needs a lossy model "
                         "(--quality Q, or a model trained with a lossy config)")
    return cm


def refine_steps(cm: CodecModel, refine: int | None, effort: "str | LossyEffort" = DEFAULT_EFFORT) -> int:
    """The posterior refinement steps per tile: ``refine`` checked (an int >= 0), or with None the
    ``effort``'s (default ``REFINE_STEPS``) for models whose card names the beta they were trained with,
    else 0. ModelError when steps are asked of a model without one."""
    effort = check_effort(effort)
    if refine is None:
        return effort.refine if cm.rate_distortion is not None else 0
    return _checked_steps(cm, refine, "refine")


def feedback_steps(cm: CodecModel, feedback: int | None, refine: int,
                   effort: "str | LossyEffort" = DEFAULT_EFFORT) -> int:
    """The error feedback's Adam steps per part of z1 (``FEEDBACK_CHUNKS`` parts): ``feedback`` checked
    (an int >= 0), or with None the ``effort``'s (default ``FEEDBACK_STEPS``) where the posteriors are
    refined (``refine`` > 0), else 0. ModelError when steps are asked of a model whose card does not name
    its beta."""
    effort = check_effort(effort)
    if feedback is None:
        return effort.feedback if refine else 0
    return _checked_steps(cm, feedback, "feedback")


def _checked_steps(cm: CodecModel, steps: int, name: str) -> int:
    """``steps`` of the encoder's Adam steps on the model's own loss (``refine`` or ``feedback``), checked:
    ValueError unless an int in 0..10000, ModelError for steps > 0 of a model whose card has no beta."""
    from irec_jax.codec import check_refine

    steps = check_refine(steps, name)
    if steps and cm.rate_distortion is None:
        raise ModelError(f"model {cm.name!r} does not say the beta it was trained with (its card has no "
                         f"'beta'), so its posteriors cannot be refined; use {name}=0 (--{name} 0)")
    return int(steps)


def _tile_refine(cm: CodecModel, tile_shape: tuple[int, ...], steps: int) -> int:
    """The refinement steps a tile of ``tile_shape`` gets: ``steps``, or 0 where its distortion is too
    small to measure (MS-SSIM needs both sides > 160)."""
    from irec_jax import metrics

    if steps and cm.rate_distortion[1] == "ms-ssim" and min(tile_shape[:2]) <= metrics.MS_SSIM_MIN_SIDE:
        return 0
    return steps


def _refined(cm: CodecModel, tile: np.ndarray, acts: Any, steps: int, index: int,
             on_step: Callable[[], None] | None = None) -> tuple | None:
    """The refined posteriors (q(z2), q(z1)) of one tile (uint8 [h, w, 3]), or None where it gets no
    steps (``_tile_refine``); ``on_step`` is called after each step."""
    import jax

    steps = _tile_refine(cm, tile.shape, steps)
    if not steps:
        return None
    beta, distortion = cm.rate_distortion
    key = jax.random.fold_in(jax.random.key(REFINE_KEY), index)
    return cm.model.refine(cm.params, tile[None], acts, beta=beta, distortion=distortion, steps=steps, key=key,
                           on_step=on_step)


def _pad_tile(tile: np.ndarray) -> np.ndarray:
    """uint8 [h, w, 3] edge-padded to at least MIN_SIDE on each side."""
    h, w, _ = tile.shape
    return np.pad(tile, ((0, max(0, MIN_SIDE - h)), (0, max(0, MIN_SIDE - w)), (0, 0)), mode="edge")


def _lossy_pixels(image: Any, tile: int) -> np.ndarray:
    """``image`` as uint8 [H, W, 3]; ImageError unless RGB with both sides >= MIN_SIDE, ValueError for a
    tile side the lossy models cannot take."""
    pixels = imageio.to_array(image)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ImageError(f"lossy coding takes RGB images; this one has shape {pixels.shape} "
                         "(grayscale is not supported by the lossy models)")
    h, w, _ = pixels.shape
    if min(h, w) < MIN_SIDE:
        raise ImageError(f"lossy coding needs both sides >= {MIN_SIDE} pixels; this image is {h} x {w}")
    if entropy.check_tile(tile) % MIN_SIDE:
        raise ValueError(f"lossy tiles must be a multiple of {MIN_SIDE} pixels, got {tile}")
    return pixels


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.square(a.astype(np.float64) - b.astype(np.float64))))


def _closest(cm: CodecModel, zs: np.ndarray, tile: np.ndarray, padded_hw: tuple[int, int]) -> int:
    """Which of the candidate latents z1 [K, h1, w1, M] decodes closest to ``tile`` (uint8 [h, w, 3]) in
    squared error, by the float preview (the choice only; the file decodes exactly)."""
    import jax.numpy as jnp

    if len(zs) == 1:
        return 0
    h, w, _ = tile.shape
    preview = np.asarray(cm.model.preview(cm.params, jnp.asarray(zs), padded_hw))[:, :h, :w]
    return int(np.argmin(np.mean(np.square(preview - tile[None].astype(np.float32)), axis=(1, 2, 3))))


def _code_z1(cm: CodecModel, tile: np.ndarray, padded_hw: tuple[int, int], state: Any, dists: list[np.ndarray],
             settings: entropy.CoderSettings, feedback: int, schedule: Any, index: int,
             step: Callable[[], None]) -> tuple:
    """(code, z1 float32 [h1, w1, M], KL of the posteriors coded) of the last layer: its blocks in
    ``FEEDBACK_CHUNKS`` consecutive parts, the posteriors of the dims still to code refined again
    (``feedback`` steps of the Adam ``schedule``, None: ``refine.FEEDBACK``; ``IntegerGVAE.refine_rest``)
    before each part after the first; the last part's ``final_choices`` best beams compared by distortion.
    ``step`` is called FEEDBACK_CHUNKS - 1 times per step of feedback (fewer parts when z1 has fewer blocks:
    the steps left out are counted at the end)."""
    import jax

    from irec_jax import rec
    from irec_jax.models.interface import Gaussian
    from irec_jax.rec import layout as rec_layout

    layer = cm.model.num_layers - 1
    q_loc, q_scale, p_loc, p_scale = dists
    nb = rec.block_count(q_loc, q_scale, p_loc, p_scale, settings)
    parts = min(FEEDBACK_CHUNKS, nb)
    bounds = [c * nb // parts for c in range(parts + 1)]
    block = rec_layout.layout(q_loc.size, nb, settings.seed, layer).dim_blocks().reshape(q_loc.shape)
    beta, distortion = cm.rate_distortion
    key = jax.random.fold_in(jax.random.key(FEEDBACK_KEY), index)
    codes, z, kl = [], None, 0.0
    for c in range(parts):
        lo, hi = bounds[c], bounds[c + 1]
        if c:
            q = cm.model.refine_rest(cm.params, tile[None], state, Gaussian(q_loc[None], q_scale[None]),
                                     (block < lo)[None], z[None], beta=beta, distortion=distortion, steps=feedback,
                                     key=jax.random.fold_in(key, c), on_step=step, schedule=schedule)
            q_loc, q_scale = np.asarray(q.loc)[0], np.asarray(q.scale)[0]
        choices = settings.final_choices if c == parts - 1 else 1
        part, zs, info = rec.encode_choices(q_loc, q_scale, p_loc, p_scale, settings, stream=layer, choices=choices,
                                            num_blocks=nb, blocks=(lo, hi))
        if z is not None:  # the blocks coded before keep their values
            zs = np.where((block < lo)[None], z[None], zs)
        pick = _closest(cm, zs, tile, padded_hw)
        codes.append(part[pick])
        z, kl = zs[pick], kl + info.kl
    for _ in range((FEEDBACK_CHUNKS - parts) * feedback):
        step()
    return rec.join_codes(codes), z, kl


def _encode_tile(tile: np.ndarray, cm: CodecModel, settings: entropy.CoderSettings, kl: np.ndarray,
                 step: Callable[[], None], refine: int = 0, index: int = 0, feedback: int = 0,
                 schedule: Any = None) -> tuple[bytes, np.ndarray, float]:
    """(stream, reconstruction uint8 [h, w, 3], index bits) of tile number ``index``; ``schedule``: the
    error feedback's (``LossyEffort.feedback_schedule``; None: ``refine.FEEDBACK``)."""
    import jax.numpy as jnp

    from irec_jax import rec

    model, params = cm.model, cm.params
    h, w, _ = tile.shape
    padded = _pad_tile(tile)
    x = jnp.asarray(padded[None])
    acts = model.bottom_up(params, x)
    refined = _refined(cm, tile, acts, refine, index, step)
    feedback = _tile_refine(cm, tile.shape, feedback)
    state = model.initial_state(params, x.shape)
    queue = entropy.new_queue()
    num, bits = settings.num_candidates, 0.0
    recon = None
    for layer in range(model.num_layers):
        p = model.prior(params, state, layer)
        q = refined[layer] if refined else model.posterior(params, state, acts, layer)
        dists = [np.asarray(a)[0] for a in (q.loc, q.scale, p.loc, p.scale)]
        last = layer == model.num_layers - 1
        if last and feedback:
            code, z, layer_kl = _code_z1(cm, tile, padded.shape[:2], state, dists, settings, feedback, schedule,
                                         index, step)
        else:
            codes, zs, info = rec.encode_choices(*dists, settings, stream=layer,
                                                 choices=settings.final_choices if last else 1)
            pick = _closest(cm, zs, tile, padded.shape[:2])  # the best final beam by distortion
            code, z, layer_kl = codes[pick], zs[pick], info.kl
        state = model.advance(params, state, jnp.asarray(z)[None], layer)
        if last:
            recon = np.asarray(model.reconstruct(params, state))[0, :h, :w]
        li = entropy.LayerIndices(code.steps, code.indices)
        entropy.push_layer(queue, li, num, index=layer)
        bits += entropy.layer_bits(li, num)
        kl[layer] += layer_kl
        step()
    return entropy.finish_queue(queue), recon, bits


def compress_report(image: Any, *, quality: int | None = None, model: "str | CodecModel | None" = None,
                    settings: entropy.CoderSettings | None = None, tile: int = entropy.DEFAULT_TILE,
                    refine: int | None = None, feedback: int | None = None, progress: Progress | None = None,
                    effort: "str | LossyEffort" = DEFAULT_EFFORT) -> tuple[bytes, LossyReport]:
    """``compress`` plus a ``LossyReport`` (bytes, bpp, PSNR of the decoded image, KL)."""
    t0 = time.perf_counter()
    cm = check_lossy_model(modelzoo.lossy_model(quality, model))
    effort = check_effort(effort)
    refine = refine_steps(cm, refine, effort)
    feedback = feedback_steps(cm, feedback, refine, effort)
    pixels = _lossy_pixels(image, tile)
    h, w, c = pixels.shape
    settings = lossy_settings(cm, settings, effort)
    header = entropy.Header(cm.ref, settings, h, w, c, tile, lossy=True)
    grid = header.tiles()
    from irec_jax.codec import _steps_counter
    per_tile = lambda th, tw: (cm.model.num_layers + _tile_refine(cm, (th, tw), refine)  # noqa: E731
                               + (FEEDBACK_CHUNKS - 1) * _tile_refine(cm, (th, tw), feedback))
    step = _steps_counter(sum(per_tile(th, tw) for _, _, th, tw in grid), progress)
    kl = np.zeros(cm.model.num_layers)
    recon = np.empty_like(pixels)
    streams, bits = [], 0.0
    for i, (y, x, th, tw) in enumerate(grid):
        stream, out, b = _encode_tile(pixels[y:y + th, x:x + tw], cm, settings, kl, step, refine, i, feedback,
                                      effort.feedback_schedule())
        recon[y:y + th, x:x + tw] = out
        streams.append(stream)
        bits += b
    container = entropy.Container(header, tuple(streams), entropy.pixel_crc(recon))
    data = entropy.pack(container, [m.ref for m in modelzoo.known_models()])
    mse = _mse(recon, pixels)
    psnr = float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)
    stream_bytes = sum(map(len, streams))
    return data, LossyReport((h, w, c), len(data), len(data) - stream_bytes, bits, tuple(map(float, kl)), mse,
                             psnr, len(grid), time.perf_counter() - t0, cm.name, refine, feedback)


def compress(image: Any, *, quality: int | None = None, model: "str | CodecModel | None" = None,
             settings: entropy.CoderSettings | None = None, tile: int = entropy.DEFAULT_TILE,
             refine: int | None = None, feedback: int | None = None, progress: Progress | None = None,
             effort: "str | LossyEffort" = DEFAULT_EFFORT) -> bytes:
    """Lossy-compresses an RGB image (both sides >= 64) to the bytes of an ``.irec`` file.

    Args:
      image: uint8 [H, W, 3] array, a PIL image or a path (``irec_jax.imageio``).
      quality: which bundled lossy model (``modelzoo.lossy_qualities()``; higher: more bytes, less
        distortion); None with no ``model``: the middle one.
      model: a lossy model folder, train.py workdir or ``CodecModel`` instead of ``quality``.
      settings: iREC settings; None: ``lossy_settings``' (the model's epsilon 0, the ``effort``'s Omega and
        beams, the closest of its best final beams by squared error, ``FINAL_CHOICES`` by default).
      tile: tile side (a multiple of 64; 1024 by default).
      refine: Adam steps that refine each tile's posteriors for this image before coding (encoder
        only; files decode the same way); None: the ``effort``'s if the model's card names its
        beta, else 0.
      feedback: Adam steps of the error feedback before each of z1's ``FEEDBACK_CHUNKS`` parts after
        the first (encoder only; ``IntegerGVAE.refine_rest``); None: the ``effort``'s where the
        posteriors are refined, else 0.
      progress: called with (done, total) after each refinement or feedback step and each latent layer
        of each tile.
      effort: the encoder preset (``EFFORTS``: "fast" or "default", or a ``LossyEffort``) that sets what
        ``settings``, ``refine`` and ``feedback`` leave as None.

    Raises:
      ImageError for unsupported images, ModelError for unusable models or qualities,
      ValueError for invalid settings.
    """
    return compress_report(image, quality=quality, model=model, settings=settings, tile=tile, refine=refine,
                           feedback=feedback, progress=progress, effort=effort)[0]


IDEAL_KEY = 0  # the fixed key of ``ideal_report``'s posterior sample
REFINE_KEY = 1  # the fixed key of the refinement's samples (folded with the tile's index)
FEEDBACK_KEY = 2  # the fixed key of the error feedback's samples (folded with the tile's index and part)


def ideal_report(image: Any, *, quality: int | None = None, model: "str | CodecModel | None" = None,
                 tile: int = entropy.DEFAULT_TILE, refine: int = 0) -> tuple[float, np.ndarray]:
    """What an ideal relative entropy coder would give (an estimate; no file): (bits, decoded uint8 [H, W, 3]).

    Per tile (the codec's tiling and edge padding), bits = KL(q(z2)||p(z2)) + KL(q(z1|z2)||p(z1|z2)) in bits,
    the model's float posteriors against its *integer* priors, and the decoded tile is the integer synthesis
    (``reconstruct``) of one posterior sample drawn layer by layer (z2 first, then z1 given that sample's
    prior) with ``sample_gaussian(jax.random.key(IDEAL_KEY), q, layer)``: the same key in every tile.
    With ``refine`` steps, the posteriors are the encoder's refined ones (``compress``'s ``refine``):
    by default (0) they are the model's own, its ideal curve.
    ``compress_report``'s arguments and errors; the rate is ``bits / (H W)`` bits per pixel.
    """
    import jax
    import jax.numpy as jnp

    from irec_jax.models.interface import gaussian_kl, sample_gaussian

    cm = check_lossy_model(modelzoo.lossy_model(quality, model))
    refine = refine_steps(cm, refine)
    pixels = _lossy_pixels(image, tile)
    h, w, _ = pixels.shape
    model_, params = cm.model, cm.params
    key = jax.random.key(IDEAL_KEY)
    nats, out = 0.0, np.empty_like(pixels)
    for i, (y, x, th, tw) in enumerate(entropy.tile_grid(h, w, tile)):
        padded = jnp.asarray(_pad_tile(pixels[y:y + th, x:x + tw])[None])
        acts = model_.bottom_up(params, padded)
        refined = _refined(cm, pixels[y:y + th, x:x + tw], acts, refine, i)
        state = model_.initial_state(params, padded.shape)
        for layer in range(model_.num_layers):
            p = model_.prior(params, state, layer)
            q = refined[layer] if refined else model_.posterior(params, state, acts, layer)
            nats += float(np.sum(np.asarray(gaussian_kl(q, p), np.float64)))
            state = model_.advance(params, state, sample_gaussian(key, q, layer), layer)
        out[y:y + th, x:x + tw] = np.asarray(model_.reconstruct(params, state))[0, :th, :tw]
    return nats / np.log(2.0), out


def decode_container(container: entropy.Container, cm: CodecModel, progress: Progress | None = None
                     ) -> np.ndarray:
    """uint8 [H, W, 3] reconstruction of a parsed lossy container, CRC checked."""
    from irec_jax.codec import _steps_counter, decode_latents

    header = container.header
    if not cm.lossy:
        raise FormatError(f"the file is flagged lossy but names the lossless model {cm.name!r} (corrupt file)")
    h, w, c = header.shape
    if c != 3:
        raise FormatError(f"a lossy file must have 3 channels, this one declares {c}")
    grid = header.tiles()
    step = _steps_counter(len(grid) * cm.model.num_layers, progress)
    model, params, settings = cm.model, cm.params, header.settings
    out = np.empty((h, w, c), np.uint8)
    for i, ((y, x, th, tw), stream) in enumerate(zip(grid, container.sections)):
        _, state = decode_latents(stream, cm, settings, (1, max(th, MIN_SIDE), max(tw, MIN_SIDE), 3), f"tile {i}",
                                  step, header.version)
        out[y:y + th, x:x + tw] = np.asarray(model.reconstruct(params, state))[0, :th, :tw]
    return entropy.check_pixels(container, out)


def decompress(data: bytes, *, model: "str | CodecModel | None" = None,
               progress: Progress | None = None) -> np.ndarray:
    """The uint8 [H, W, 3] reconstruction stored in a lossy ``.irec`` file, exactly as the encoder
    decoded it (CRC checked). ``irec_jax.codec.decompress`` reads lossy files too."""
    from irec_jax.codec import _unpack

    container, cm = _unpack(bytes(data), model)
    if not container.header.lossy:
        raise FormatError("not a lossy file (use irec_jax.codec.decompress)")
    return decode_container(container, cm, progress)
