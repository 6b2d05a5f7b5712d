"""Lossy image codecs swept over a setting, measured per image, averaged into rate–distortion curves.

A lossy codec (:class:`LossyCodec`) is a ``name``, its ``settings`` (quality
values, compression ratios, distances; later iREC's rate points or models)
and either

- a real pair ``encode(img uint8 [H, W, 3], setting) -> bytes`` /
  ``decode(bytes) -> img uint8 [H, W, 3]``: the rate is ``8 * len(bytes) / (H*W)``
  bits per pixel, every header byte counted; or
- ``estimate(img, setting) -> Estimate``: no file, the bits come from a model
  (e.g. iREC's ideal rate, the KL), with the reconstruction they would buy.
  Rows and curves of such a codec carry ``estimate = True``.

``run_lossy`` codes, decodes and scores every image at every setting
(:class:`LossyRow`: bpp, PSNR, MS-SSIM, seconds; ``irec_jax.metrics`` on the
decoded uint8 image); ``curves`` averages the rows the way CompressAI does
(per setting: mean bpp, mean per-image metric) into :class:`Curve` records.
``classical_lossy_codecs`` are the classical sweeps (module table below);
``irec_lossy_codecs`` iREC's curves over lossy models, one rate point per
model: ``iREC`` (real ``.irec`` files of ``irec_jax.lossy``, decoded by
``irec_jax.codec.decompress``, which checks the CRC of the encoder's own
reconstruction), ``iREC ideal`` (an estimate: ``irec_jax.lossy.ideal_report``
of the posteriors the coder codes, refined as ``compress`` refines them: the
KL an ideal relative entropy coder would spend and the decode of one
posterior sample) and, for models whose posteriors are refined, ``iREC ideal
(no refinement)`` (the same of the encoder network's own posteriors); images
under 64 px on a side are left out of all, with a note. Reports, BD figures
and plots live in ``irec_jax.benchmark.lossy_report``.

Classical sweeps (chosen to span about 0.1–2.5 bpp on 500×500 photos):

=========  ====================================================================
JPEG-420   Pillow (libjpeg) quality 3..90, 4:2:0 chroma (``subsampling=2``)
JPEG-444   Pillow (libjpeg) quality 3..85, 4:4:4 chroma (``subsampling=0``)
WebP       Pillow (libwebp) lossy, quality 0..92, method 6
JPEG2000   Pillow (OpenJPEG) 9/7 wavelet + ICT, ``quality_mode="rates"``, compression
           ratio 240..9.6 against 24 bpp (target 0.1..2.5 bpp), J2K codestream
AVIF-444   Pillow (libavif) quality 0..88, 4:4:4, speed 6 (imagecodecs when Pillow lacks AVIF)
JPEG-XL    imagecodecs (libjxl) distance 20..0.8, effort 7, bare codestream
HEVC-444   pillow-heif (libheif + x265) HEIF quality 10..65, chroma 4:4:4
=========  ====================================================================
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import time
from typing import Any, Callable, Collection, Sequence

import numpy as np

from irec_jax.benchmark.errors import EvalError, error_text
from irec_jax.benchmark.rows import row_description, select_by_name
from irec_jax.benchmark.runner import timed
from irec_jax.benchmark.sets import ImageSet, progress_bar

__all__ = ["Estimate", "LossyCodec", "LossyRow", "LossyResults", "Curve", "LOSSY_NAMES", "IREC", "IREC_IDEAL",
           "IREC_IDEAL_AMORTIZED", "IREC_CURVES",
           "classical_lossy_codecs", "irec_lossy_codecs", "unavailable_reason", "run_lossy", "curves"]


@dataclasses.dataclass(frozen=True)
class Estimate:
    """What an estimate-only codec gives instead of a file: ``bits`` for the whole image (a model's
    figure, e.g. iREC's ideal rate) and the reconstruction ``decoded`` uint8 [H, W, 3] it stands for."""

    bits: float
    decoded: np.ndarray  # uint8 [H, W, 3]


@dataclasses.dataclass(frozen=True)
class LossyCodec:
    """A lossy codec swept over ``settings``: ``encode_fn``/``decode_fn`` (real files) or ``estimate_fn``.

    ``setting_name`` says what a setting is ("quality", "ratio", "distance",
    "model"); ``reason`` is why the codec cannot run here when known up front
    (else ``unavailable_reason`` probes it); ``library() -> str`` names the library.
    ``skip(img) -> str | None``: why an image is left out (not coded, not a
    failure; ``run_lossy`` notes it once), None to code it. ``order_by_bpp``:
    the curve lists its points by measured bpp, not in settings order (settings
    that are models, whose rates are not known before the run).
    """

    name: str
    settings: tuple  # [S] in sweep order
    encode_fn: Callable[[np.ndarray, Any], bytes] | None = dataclasses.field(default=None, compare=False)
    decode_fn: Callable[[bytes], np.ndarray] | None = dataclasses.field(default=None, compare=False)
    estimate_fn: Callable[[np.ndarray, Any], Estimate] | None = dataclasses.field(default=None, compare=False)
    description: str = ""
    setting_name: str = "quality"
    reason: str | None = None
    library: Callable[[], str] | None = dataclasses.field(default=None, compare=False)
    skip: Callable[[np.ndarray], str | None] | None = dataclasses.field(default=None, compare=False)
    order_by_bpp: bool = False

    def __post_init__(self):
        if not self.settings:
            raise ValueError(f"lossy codec {self.name!r} has no settings")
        real = self.encode_fn is not None and self.decode_fn is not None
        if real == (self.estimate_fn is not None) or (self.encode_fn is None) != (self.decode_fn is None):
            raise ValueError(f"lossy codec {self.name!r} needs encode_fn and decode_fn, or estimate_fn alone")

    @property
    def estimate(self) -> bool:
        """True when the rate is a model's estimate (no bytes are written)."""
        return self.estimate_fn is not None

    def encode(self, img: np.ndarray, setting: Any) -> bytes:
        return bytes(self.encode_fn(img, setting))

    def decode(self, data: bytes) -> np.ndarray:
        return self.decode_fn(data)

    def left_out(self, img: np.ndarray) -> str | None:
        """Why ``img`` is not coded by this codec, or None."""
        return self.skip(img) if self.skip is not None else None

    @property
    def version(self) -> str:
        """The library's name and version (asked only of codecs that run: ``unavailable_reason`` is None)."""
        return self.library() if self.library is not None else ""


def _probe_image() -> np.ndarray:
    """A smooth 64×72 RGB gradient with seeded noise (uint8 [64, 72, 3]; the lossy models' minimum side)."""
    yy, xx = np.mgrid[0:64, 0:72]
    base = np.stack([yy * 4, xx * 3, (yy + xx) * 2], -1)
    noise = np.random.default_rng(2024).integers(-8, 9, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _check_decoded(out: Any, shape: tuple) -> np.ndarray:
    """``out`` as an array if it is uint8 of ``shape``; else ValueError quoting what came back."""
    out = np.asarray(out)
    if out.dtype != np.uint8 or out.shape != tuple(shape):
        raise ValueError(f"decoded to shape {out.shape} dtype {out.dtype}, expected {tuple(shape)} uint8")
    return out


def unavailable_reason(codec: LossyCodec) -> str | None:
    """None if ``codec`` can run here, else why not in one line. Real codecs are probed with a round trip
    of a small image at their first and last setting; estimate codecs report only their ``reason``."""
    if codec.reason or codec.estimate:
        return codec.reason
    img = _probe_image()
    for setting in dict.fromkeys((codec.settings[0], codec.settings[-1])):
        try:
            _check_decoded(codec.decode(codec.encode(img.copy(), setting)), img.shape)
        except ImportError as e:
            return f"library not installed ({e})"
        except Exception as e:
            return f"probe at {codec.setting_name} {setting}: {error_text(e)}"
    return None


# --- the classical codecs -------------------------------------------------------------------------

def _pillow_encoder(fmt: str, feature: str, options: Callable[[Any], dict],
                    **fixed: Any) -> Callable[[np.ndarray, Any], bytes]:
    """``(img, setting) -> bytes`` saving through Pillow's ``fmt`` writer with ``fixed`` options plus
    ``options(setting)``; ImportError when this Pillow is built without ``feature``."""

    def encode(img: np.ndarray, setting: Any) -> bytes:
        from PIL import Image, features

        if not features.check(feature):
            raise ImportError(f"this Pillow is built without {feature} support")
        buf = io.BytesIO()
        Image.fromarray(img, mode="RGB").save(buf, format=fmt, **fixed, **options(setting))
        return buf.getvalue()

    return encode


def _pillow_decoder(fmt: str) -> Callable[[bytes], np.ndarray]:
    """``bytes -> uint8 [H, W, 3]`` through Pillow, refusing a file of another format or mode."""

    def decode(data: bytes) -> np.ndarray:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            if im.format != fmt:
                raise ValueError(f"not a {fmt} file (Pillow reads it as {im.format})")
            if im.mode != "RGB":
                raise ValueError(f"{fmt} file decodes to Pillow mode {im.mode!r}, expected 'RGB'")
            return np.asarray(im)

    return decode


def _pillow_version(feature: str) -> Callable[[], str]:
    def version() -> str:
        import PIL
        from PIL import features

        return f"Pillow {PIL.__version__}, {feature} {features.version(feature)}"

    return version


def _avif_encode(img: np.ndarray, quality: int) -> bytes:
    from PIL import features

    if features.check("avif"):
        return _pillow_encoder("AVIF", "avif", lambda q: {"quality": q}, subsampling="4:4:4", speed=6)(img, quality)
    import imagecodecs  # fallback: a Pillow without libavif

    return imagecodecs.avif_encode(img, level=quality, speed=6, pixelformat=imagecodecs.AVIF.PIXEL_FORMAT.YUV444)


def _avif_decode(data: bytes) -> np.ndarray:
    from PIL import features

    if features.check("avif"):
        return _pillow_decoder("AVIF")(data)
    import imagecodecs

    return imagecodecs.avif_decode(data)


def _avif_version() -> str:
    from PIL import features

    if features.check("avif"):
        return _pillow_version("avif")()
    import imagecodecs

    return f"{imagecodecs.avif_version()} (imagecodecs {imagecodecs.__version__}; Pillow lacks AVIF)"


def _jxl_encode(img: np.ndarray, distance: float) -> bytes:
    import imagecodecs

    return imagecodecs.jpegxl_encode(img, distance=float(distance), effort=7)


def _jxl_decode(data: bytes) -> np.ndarray:
    import imagecodecs

    return imagecodecs.jpegxl_decode(data)


def _jxl_version() -> str:
    import imagecodecs

    return f"{imagecodecs.jpegxl_version()} (imagecodecs {imagecodecs.__version__})"


def _heif_encode(img: np.ndarray, quality: int) -> bytes:
    import pillow_heif

    heif = pillow_heif.from_bytes(mode="RGB", size=(img.shape[1], img.shape[0]), data=img.tobytes())
    buf = io.BytesIO()
    heif.save(buf, quality=int(quality), chroma=444)
    return buf.getvalue()


def _heif_decode(data: bytes) -> np.ndarray:
    import pillow_heif

    heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
    if heif.mode != "RGB":
        raise ValueError(f"HEIF file decodes to mode {heif.mode!r}, expected 'RGB'")
    return np.asarray(heif)


def _heif_version() -> str:
    import pillow_heif

    info = pillow_heif.libheif_info()
    return f"pillow-heif {pillow_heif.__version__}, libheif {info.get('libheif')}, {info.get('HEIF')}"


def _all_lossy_codecs() -> tuple[LossyCodec, ...]:
    return (
        LossyCodec("JPEG-420", (3, 5, 8, 12, 20, 30, 45, 60, 75, 85, 90),
                   _pillow_encoder("JPEG", "jpg", lambda q: {"quality": q, "subsampling": 2}), _pillow_decoder("JPEG"),
                   description="JPEG (Pillow/libjpeg), 4:2:0 chroma, standard tables", library=_pillow_version("jpg")),
        LossyCodec("JPEG-444", (3, 5, 8, 12, 20, 30, 45, 60, 75, 85),
                   _pillow_encoder("JPEG", "jpg", lambda q: {"quality": q, "subsampling": 0}), _pillow_decoder("JPEG"),
                   description="JPEG (Pillow/libjpeg), 4:4:4 chroma, standard tables", library=_pillow_version("jpg")),
        LossyCodec("WebP", (0, 5, 10, 20, 35, 50, 65, 75, 85, 92),
                   _pillow_encoder("WEBP", "webp", lambda q: {"quality": q}, lossless=False, method=6),
                   _pillow_decoder("WEBP"), description="WebP lossy (Pillow/libwebp), method 6",
                   library=_pillow_version("webp")),
        LossyCodec("JPEG2000", (240, 160, 100, 70, 48, 32, 24, 16, 12, 9.6),
                   _pillow_encoder("JPEG2000", "jpg_2000", lambda r: {"quality_layers": [float(r)]},
                                   quality_mode="rates", irreversible=True, mct=1, no_jp2=True),
                   _pillow_decoder("JPEG2000"),
                   description="JPEG 2000 (Pillow/OpenJPEG), 9/7 wavelet + ICT, one layer at compression ratio "
                               "`ratio` against 24 bpp, J2K codestream",
                   setting_name="ratio", library=_pillow_version("jpg_2000")),
        LossyCodec("AVIF-444", (0, 10, 20, 30, 40, 50, 60, 70, 80, 88), _avif_encode, _avif_decode,
                   description="AVIF (Pillow/libavif, default AV1 encoder), 4:4:4, speed 6", library=_avif_version),
        LossyCodec("JPEG-XL", (20, 14, 10, 7, 5, 3.5, 2.5, 1.8, 1.2, 0.8), _jxl_encode, _jxl_decode,
                   description="JPEG XL (imagecodecs/libjxl) VarDCT, Butteraugli distance sweep, effort 7, "
                               "bare codestream", setting_name="distance", library=_jxl_version),
        LossyCodec("HEVC-444", (10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65), _heif_encode, _heif_decode,
                   description="HEVC in HEIF (pillow-heif: libheif + x265), chroma 4:4:4 (BPG-like)",
                   library=_heif_version),
    )


LOSSY_NAMES = ("JPEG-420", "JPEG-444", "WebP", "JPEG2000", "AVIF-444", "JPEG-XL", "HEVC-444")


def classical_lossy_codecs(names: Sequence[str] | None = None) -> list[LossyCodec]:
    """The classical lossy sweeps (all, or ``names`` in that order, case-insensitive; EvalError for unknown)."""
    return select_by_name(_all_lossy_codecs(), names, "lossy", EvalError)


# --- iREC ---------------------------------------------------------------------------------------------

IREC, IREC_IDEAL, IREC_IDEAL_AMORTIZED = "iREC", "iREC ideal", "iREC ideal (no refinement)"
IREC_CURVES = (IREC, IREC_IDEAL, IREC_IDEAL_AMORTIZED)


def _load_lossy_models(models: Sequence[str]) -> list:
    """``CodecModel``s of ``models`` (lossy model folders or train.py workdirs), or of the bundled qualities
    when ``models`` is empty; EvalError naming a model that cannot be loaded or is not lossy."""
    from irec_jax import lossy, modelzoo

    if not models:
        try:
            return [modelzoo.lossy_model(q) for q in modelzoo.lossy_qualities()]
        except ValueError as e:  # ModelError
            raise EvalError(f"bundled lossy model: {e}") from None
    out = []
    for spec in models:
        try:
            out.append(lossy.check_lossy_model(modelzoo.load_model(spec)))
        except ValueError as e:
            raise EvalError(f"--lossy-model {spec}: {e}") from None
    return out


def _labels(models: Sequence) -> dict:
    """{label: CodecModel}: each model's name, "-2", "-3", ... after a repeated one."""
    out: dict = {}
    for cm in models:
        label, k = cm.name, 2
        while label in out:
            label, k = f"{cm.name}-{k}", k + 1
        out[label] = cm
    return out


def _too_small(img: np.ndarray) -> str | None:
    from irec_jax.lossy import MIN_SIDE

    if min(img.shape[:2]) < MIN_SIDE:
        return f"smaller than {MIN_SIDE} px on a side: the lossy models need both sides >= {MIN_SIDE}"
    return None


def irec_lossy_codecs(models: Sequence[str] = (), refine: int | None = None, feedback: int | None = None,
                      effort: str = "default") -> tuple[list[LossyCodec], str | None]:
    """``([iREC, iREC ideal(, iREC ideal (no refinement))], None)`` over ``models`` (lossy model folders or
    train.py workdirs; none: the bundled qualities), one rate point per model (settings: the models' names,
    points ordered by measured bpp), or ``([], why)`` when there is no lossy model. EvalError for a model
    that cannot be used.

    ``iREC``: ``irec_jax.lossy.compress`` with the encoder preset ``effort`` (``irec_jax.lossy.EFFORTS``;
    EvalError for another name) over the model's defaults; the decoder finds the model
    the file's header names among these and decodes with ``irec_jax.codec.decompress`` (CRC of the
    encoder's reconstruction checked). ``iREC ideal``: ``irec_jax.lossy.ideal_report`` (an estimate) of the
    posteriors ``compress`` codes (refined as it refines them); ``iREC ideal (no refinement)``, when some
    model's posteriors are refined: the same estimate of the encoder network's own posteriors. ``refine``:
    the refinement steps of every model (``irec_jax.lossy.refine_steps``; None: each model's default);
    ``feedback``: the coder's error feedback steps (``irec_jax.lossy.feedback_steps``; None: its default).
    """
    from irec_jax import codec, entropy, lossy, modelzoo

    try:
        preset = lossy.check_effort(effort)
    except ValueError as e:
        raise EvalError(f"--effort: {e}") from None
    loaded = _load_lossy_models(models)
    if not loaded:
        return [], "iREC curves skipped: this installation has no bundled lossy model and no --lossy-model was given"
    by_label = _labels(loaded)
    by_ref = {cm.ref: cm for cm in loaded}

    def decode(data: bytes) -> np.ndarray:
        refs = [m.ref for m in modelzoo.known_models()] + list(by_ref)
        named = entropy.unpack(data, refs).header.model  # which of the models wrote it
        return codec.decompress(data, model=by_ref.get(named))

    try:
        steps = {label: lossy.refine_steps(cm, refine, preset) for label, cm in by_label.items()}
    except ValueError as e:  # also ModelError
        raise EvalError(f"--refine: {e}") from None
    try:
        fed = {label: lossy.feedback_steps(cm, feedback, steps[label], preset) for label, cm in by_label.items()}
    except ValueError as e:  # also ModelError
        raise EvalError(f"--feedback: {e}") from None
    refined = ", ".join(f"{label} {n}" for label, n in steps.items())
    feedback_text = ", ".join(f"{label} {n}" for label, n in fed.items())
    settings = lossy.lossy_settings(loaded[0], effort=preset)
    models_text = ", ".join(f"{label} ({cm.ref.param_hash.hex()})" for label, cm in by_label.items())
    common = dict(settings=tuple(by_label), setting_name="model", skip=_too_small, order_by_bpp=True)
    coded = LossyCodec(IREC, encode_fn=lambda img, label: lossy.compress(img, model=by_label[label],
                                                                         refine=steps[label], feedback=fed[label],
                                                                         effort=preset),
                       decode_fn=decode,
                       description=(f"iREC lossy .irec files (irec_jax.lossy, effort {preset.name}: "
                                    f"omega {settings.omega:g}, epsilon {settings.epsilon:g}, "
                                    f"{settings.beams} beams, {settings.block_kl:g}-nat blocks, best of "
                                    f"{settings.final_choices} final beams by "
                                    f"squared error, posteriors refined per tile: {refined} steps, error "
                                    f"feedback before each of z1's {lossy.FEEDBACK_CHUNKS} parts after the first: "
                                    f"{feedback_text} steps of size {preset.feedback_schedule().lr:g}), "
                                    f"decoded by irec_jax.codec.decompress; models {models_text}"),
                       **common)
    what = ("rate = KL(q||p) of both latent layers against the model's integer priors (what an ideal relative "
            "entropy coder would spend), distortion of the integer synthesis of one posterior sample (fixed key; "
            f"irec_jax.lossy.ideal_report); models {models_text}")
    ideal = LossyCodec(IREC_IDEAL,
                       estimate_fn=lambda img, label: Estimate(*lossy.ideal_report(img, model=by_label[label],
                                                                                   refine=steps[label])),
                       description=f"iREC ideal of the posteriors the coder codes (refinement steps: {refined}): "
                                   + what, **common)
    if not any(steps.values()):
        return [coded, ideal], None
    amortized = LossyCodec(IREC_IDEAL_AMORTIZED,
                           estimate_fn=lambda img, label: Estimate(*lossy.ideal_report(img, model=by_label[label])),
                           description="iREC ideal of the encoder network's own posteriors (no refinement): "
                                       + what, **common)
    return [coded, ideal, amortized], None


# --- measuring --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class LossyRow:
    """One image coded at one setting. ``bytes`` is None for estimates (``bpp`` is then the estimate)
    and for failed encodes; metrics are of the decoded uint8 image against the original."""

    image: str
    set: str
    codec: str
    setting: Any
    height: int
    width: int
    estimate: bool
    bytes: int | None
    bpp: float | None  # 8·bytes/(H·W), or the estimate's bits/(H·W)
    psnr: float | None  # dB, RGB
    ms_ssim: float | None  # None when the image is too small for MS-SSIM (or on failure)
    ms_ssim_db: float | None  # -10·log10(1 - ms_ssim)
    encode_s: float | None  # encode (or estimate) wall seconds
    decode_s: float | None  # None for estimates
    error: str | None  # the exception; the run went on


@dataclasses.dataclass(frozen=True)
class LossyResults:
    """What ``run_lossy`` measured: ``rows`` in (codec, set, image, setting) order."""

    sets: tuple  # of (name, num_images, source)
    codecs: tuple  # of LossyCodec, run order (unavailable ones included)
    rows: tuple  # of LossyRow
    unavailable: dict  # codec name -> reason (not run)
    notes: tuple  # of str: said once each in the report (e.g. why MS-SSIM is null)
    started: str  # UTC ISO time
    wall_s: float


def _scores(original: np.ndarray, decoded: np.ndarray) -> tuple[float, float | None, float | None, str | None]:
    """(PSNR, MS-SSIM, MS-SSIM dB, why MS-SSIM is None) of uint8 [H, W, 3] images."""
    from irec_jax import metrics

    psnr = float(metrics.psnr(original, decoded))
    try:
        ms = float(metrics.ms_ssim(original, decoded))
    except ValueError as e:  # too small for MS-SSIM's five scales
        return psnr, None, None, str(e)
    return psnr, ms, float(metrics.ms_ssim_db(ms)), None


def _measure(codec: LossyCodec, img: np.ndarray, setting: Any) -> tuple[dict, str | None]:
    """Row fields of ``codec`` on ``img`` [H, W, 3] at ``setting``, and why MS-SSIM is missing (if so)."""
    h, w, _ = img.shape
    out: dict = dict(bytes=None, bpp=None, psnr=None, ms_ssim=None, ms_ssim_db=None, decode_s=None, error=None)
    given = img.copy()  # a codec that writes into its input cannot spoil the comparison
    if codec.estimate:
        est, out["encode_s"], err = timed(lambda: codec.estimate_fn(given, setting))
        stage = "estimate"
        if err is None:
            try:
                decoded = _check_decoded(est.decoded, img.shape)
                out["bpp"] = float(est.bits) / (h * w)
            except Exception as e:  # not an Estimate, or a wrong reconstruction
                err = e
    else:
        data, out["encode_s"], err = timed(lambda: codec.encode(given, setting))
        stage = "encode"
        if err is None:
            out["bytes"] = len(data)
            out["bpp"] = 8.0 * len(data) / (h * w)
            decoded, out["decode_s"], err = timed(lambda: _check_decoded(codec.decode(data), img.shape))
            stage = "decode"
    if err is not None:
        out["error"] = error_text(err, stage)
        return out, None
    scores, _, err = timed(lambda: _scores(img, decoded))
    if err is not None:
        out["error"] = error_text(err, "metrics")
        return out, None
    out["psnr"], out["ms_ssim"], out["ms_ssim_db"], why = scores
    return out, why


def _rgb_only(sets: Sequence[ImageSet]) -> None:
    for s in sets:
        for img, image_id in zip(s.images, s.ids):
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                kind = "grayscale" if img.ndim == 2 or img.shape[2] == 1 else f"shape {img.shape} {img.dtype}"
                raise EvalError(f"{s.name}/{image_id}: {kind} image; the lossy benchmark scores RGB images "
                                "(uint8 [H, W, 3]) only: convert it to RGB or leave it out")


def _left_out(sets: Sequence[ImageSet], codecs: Sequence[LossyCodec], total: int) -> tuple[dict, list[str]]:
    """({codec name: {(set, image id)} it leaves out}, one note per reason naming the codecs and images)."""
    out: dict = {c.name: set() for c in codecs}
    by_reason: dict = {}  # reason -> {codec names: None}, [(set, id)]
    for c in codecs:
        for s in sets:
            for img, image_id in zip(s.images, s.ids):
                why = c.left_out(img)
                if why is not None:
                    out[c.name].add((s.name, image_id))
                    names, images = by_reason.setdefault(why, ({}, {}))
                    names[c.name] = None
                    images[(s.name, image_id)] = None
    notes = []
    for why, (names, images) in by_reason.items():
        first = [f"{s}/{i}" for s, i in list(images)[:3]]
        more = ", ..." if len(images) > 3 else ""
        notes.append(f"{' and '.join(names)}: left out {len(images)} of {total} images, {why} "
                     f"({', '.join(first)}{more})")
    return out, notes


def run_lossy(sets: Sequence[ImageSet], codecs: Sequence[LossyCodec], progress: bool = True,
              warmup: bool = True) -> LossyResults:
    """Every image of every set through every codec at every setting; one failure never stops the run.

    Images must be uint8 [H, W, 3] (EvalError naming the first that is not).
    ``warmup``: one untimed round trip of the first image per codec (imports,
    library start-up) before timing. Codecs that cannot run here are
    recorded in ``unavailable`` with their reason, not run. Images a codec
    leaves out (``LossyCodec.skip``) get no row and one note per reason; a
    codec that leaves out every image is unavailable.
    """
    if not sets or not any(len(s) for s in sets):
        raise EvalError("no images to evaluate")
    if not codecs:
        raise EvalError("no lossy codecs to evaluate")
    names = [c.name for c in codecs]
    if len(set(names)) != len(names):
        raise EvalError(f"lossy codec names must differ, got {names}")
    _rgb_only(sets)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    total = sum(len(s) for s in sets)
    left_out, skip_notes = _left_out(sets, codecs, total)
    first = next(img for s in sets for img in s.images)
    unavailable = {c.name: f"every image left out ({c.left_out(first)})" for c in codecs
                   if len(left_out[c.name]) == total}
    unavailable.update({c.name: r for c in codecs if c.name not in unavailable for r in [unavailable_reason(c)] if r})
    runnable = [c for c in codecs if c.name not in unavailable]
    tasks = [(c, s, img, image_id, setting) for c in runnable for s in sets
             for img, image_id in zip(s.images, s.ids) if (s.name, image_id) not in left_out[c.name]
             for setting in c.settings]
    if warmup:
        for c in runnable:
            first = next(img for s in sets for img, i in zip(s.images, s.ids) if (s.name, i) not in left_out[c.name])
            timed(lambda: _measure(c, first, c.settings[len(c.settings) // 2]))
    rows, no_ms_ssim = [], {}
    for c, s, img, image_id, setting in progress_bar(tasks, progress, desc="lossy", leave=False):
        fields, why = _measure(c, img, setting)
        if why is not None:
            no_ms_ssim.setdefault((s.name, image_id), why)
        rows.append(LossyRow(image_id, s.name, c.name, setting, img.shape[0], img.shape[1], c.estimate, **fields))
    notes = tuple(skip_notes) + (() if not no_ms_ssim else (
        f"MS-SSIM is null for {len(no_ms_ssim)} of {total} images, scored by PSNR only (irec_jax.metrics: "
        f"{next(iter(no_ms_ssim.values()))})",))
    return LossyResults(tuple((s.name, len(s), s.source) for s in sets), tuple(codecs), tuple(rows),
                        unavailable, notes, started, time.perf_counter() - t0)


# --- curves -----------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Curve:
    """A rate–distortion curve, one point per setting (CompressAI's averaging: mean over images of bpp and
    of each per-image metric; ``ms_ssim_db`` is the dB of the mean MS-SSIM, as CompressAI plots it).

    A point's values are None when no image succeeded at it; ``ms_ssim`` is None unless every image
    that succeeded has one. ``source`` is set for published curves (measured elsewhere).
    """

    name: str
    description: str
    setting_name: str
    settings: tuple  # [S]
    bpp: tuple  # [S]
    psnr: tuple  # [S] dB
    ms_ssim: tuple  # [S]
    ms_ssim_db: tuple  # [S]
    encoding_time: tuple  # [S] mean seconds per image
    decoding_time: tuple  # [S] mean seconds per image; None for estimates
    num_images: tuple  # [S] images averaged
    num_failed: tuple  # [S] images left out (their coding failed)
    estimate: bool = False
    source: dict | None = None


def _mean(values: Sequence[float | None]) -> float | None:
    return float(np.mean(values)) if values and all(v is not None for v in values) else None


def _db(ms_ssim: float | None) -> float | None:
    if ms_ssim is None:
        return None
    from irec_jax import metrics

    return float(metrics.ms_ssim_db(ms_ssim))


def curves(results: LossyResults, images: Collection | None = None) -> list[Curve]:
    """One ``Curve`` per codec that ran, in run order, pooling every image of every set (or only ``images``,
    (set, image id) pairs: a curve over the images another codec coded). Points in settings order, or by
    bpp (unfinished points last) for a codec that asks for it (``order_by_bpp``)."""
    out = []
    for c in results.codecs:
        if c.name in results.unavailable:
            continue
        mine = [r for r in results.rows if r.codec == c.name and (images is None or (r.set, r.image) in images)]
        points = []
        for setting in c.settings:
            rows = [r for r in mine if r.setting == setting]
            ok = [r for r in rows if r.error is None]
            ms = _mean([r.ms_ssim for r in ok])
            points.append((setting, _mean([r.bpp for r in ok]), _mean([r.psnr for r in ok]), ms, _db(ms),
                           _mean([r.encode_s for r in ok]), None if c.estimate else _mean([r.decode_s for r in ok]),
                           len(ok), len(rows) - len(ok)))
        if c.order_by_bpp:
            points.sort(key=lambda p: (p[1] is None, p[1] or 0.0))
        cols = list(zip(*points))
        out.append(Curve(c.name, row_description(c), c.setting_name, *map(tuple, cols), estimate=c.estimate))
    return out
