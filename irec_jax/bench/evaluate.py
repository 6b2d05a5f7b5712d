"""The lossless image benchmark behind ``eval.py``: image sets × codec rows → table, JSON, plots.

A run codes every image of every named :class:`ImageSet` with every codec
row and decodes it back. Two kinds of row:

- **image rows**: anything with ``name``, ``encode(img) -> bytes`` and
  ``decode(bytes) -> img`` (img uint8 ``[H, W, C]``), e.g. the classical
  codecs of ``irec_jax.bench.classical`` or ``codec_row(name, enc, dec)``
  around any pair of functions (the iREC single-image codec).
- **set rows**: amortized coders whose bytes are for a whole sequence of
  images: ``name``, ``encode_set(images) -> bytes``,
  ``decode_set(bytes) -> images`` (BB-ANS amortized); ``set_codec_row``.

Optional attributes a row may have: ``description`` (str), ``version``
(str), ``unavailable`` (None, or why the row cannot run here: it is then
recorded, not run).

Per image × image row: ``bytes`` (the whole encoded file), ``bpd`` =
8·bytes/(H·W·C), ``exact`` (decoded == original, see ``same_image``),
``encode_s``, ``decode_s``, ``error`` (the exception, when one was raised:
the run goes on) and ``detail`` (how a decode differed). A set row gives one
row per set: the bytes of the whole set, bpd over all its dimensions, times
for the whole set, exact only if every image came back exactly.

Outputs (``write_outputs``): ``results.json`` (CompressAI's results schema,
adapted to lossless: ``bpd`` for ``bpp``/``psnr``; see ``to_json``),
``compressai/<codec>.json`` (one file per codec, the schema proper),
``rows.csv``, ``table.txt`` and PNG plots (``irec_jax.bench.plots``).
``format_table`` prints the Table-1-shaped summary: codecs × sets, cells =
mean of per-image bpd.

Extension points for the lead: ``extra_codecs(model_spec)`` returns the
model-based rows (iREC, BB-ANS) that ``eval.py`` adds to the classical ones;
an ablation is ``run(sets, rows)`` over variant rows (e.g. one iREC row per
Ω/ε/B setting, each with its own name) followed by ``write_outputs``.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import glob
import json
import math
import os
import platform
import re
import sys
import time
from typing import Any, Callable, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from irec_jax.bench import classical

__all__ = [
    "EvalError", "ImageCodec", "SetCodec", "FunctionCodec", "FunctionSetCodec", "codec_row", "set_codec_row",
    "ImageSet", "Row", "Cell", "Results", "EvalSpec",
    "load_png_folder", "bundled_sets", "tfds_set", "tfds_prepared_dir", "SUITES",
    "extra_codecs", "build_codecs", "same_image", "run", "summarize", "format_table", "to_json",
    "write_outputs", "load_sets", "evaluate",
]


class EvalError(Exception):
    """Bad input to the benchmark (missing folder, unknown codec, dataset not prepared): one clear line."""


# --- codec rows -----------------------------------------------------------------------------------

@runtime_checkable
class ImageCodec(Protocol):
    """A single-image row."""

    name: str

    def encode(self, img: np.ndarray) -> bytes: ...

    def decode(self, data: bytes) -> np.ndarray: ...


@runtime_checkable
class SetCodec(Protocol):
    """A set-level row: one byte string for a whole sequence of images (amortized coders)."""

    name: str

    def encode_set(self, images: Sequence[np.ndarray]) -> bytes: ...

    def decode_set(self, data: bytes) -> Sequence[np.ndarray]: ...


@dataclasses.dataclass(frozen=True)
class FunctionCodec:
    """An image row from two functions: ``encode(img uint8 [H, W, C]) -> bytes``, ``decode(bytes) -> img``."""

    name: str
    encode_fn: Callable[[np.ndarray], bytes]
    decode_fn: Callable[[bytes], np.ndarray]
    description: str = ""
    unavailable: str | None = None

    def encode(self, img: np.ndarray) -> bytes:
        return self.encode_fn(img)

    def decode(self, data: bytes) -> np.ndarray:
        return self.decode_fn(data)


@dataclasses.dataclass(frozen=True)
class FunctionSetCodec:
    """A set row from two functions: ``encode_set(images) -> bytes``, ``decode_set(bytes) -> images``."""

    name: str
    encode_set_fn: Callable[[Sequence[np.ndarray]], bytes]
    decode_set_fn: Callable[[bytes], Sequence[np.ndarray]]
    description: str = ""
    unavailable: str | None = None
    # Optional (images, data) -> (bytes counted, dims counted), e.g. a marginal rate.
    count_fn: Callable[[Sequence[np.ndarray], bytes], tuple[int, int]] | None = None

    def encode_set(self, images: Sequence[np.ndarray]) -> bytes:
        return self.encode_set_fn(images)

    def decode_set(self, data: bytes) -> Sequence[np.ndarray]:
        return self.decode_set_fn(data)


def codec_row(name: str, encode: Callable[[np.ndarray], bytes], decode: Callable[[bytes], np.ndarray],
              description: str = "", unavailable: str | None = None) -> FunctionCodec:
    """Wrap an ``(encode, decode)`` pair of single-image functions as a benchmark row."""
    return FunctionCodec(name, encode, decode, description, unavailable)


def set_codec_row(name: str, encode_set: Callable[[Sequence[np.ndarray]], bytes],
                  decode_set: Callable[[bytes], Sequence[np.ndarray]], description: str = "",
                  unavailable: str | None = None) -> FunctionSetCodec:
    """Wrap an ``(encode_set, decode_set)`` pair of whole-set functions as a benchmark row."""
    return FunctionSetCodec(name, encode_set, decode_set, description, unavailable)


def _kind(codec: Any) -> str:
    if callable(getattr(codec, "encode_set", None)) and callable(getattr(codec, "decode_set", None)):
        return "set"
    if callable(getattr(codec, "encode", None)) and callable(getattr(codec, "decode", None)):
        return "image"
    raise TypeError(f"codec row {codec!r} has neither encode/decode nor encode_set/decode_set")


def _describe(codec: Any) -> str:
    parts = [str(getattr(codec, "description", "") or "")]
    version = getattr(codec, "version", "")
    if version and not callable(version):
        parts.append(str(version))
    return "; ".join(p for p in parts if p)


def extra_codecs(model_spec: str | None) -> list:
    """The model-based rows that ``eval.py`` adds to the classical codecs, all on one model.

    ``model_spec`` is ``eval.py --model``: "default" (the bundled model), a
    model folder or a train.py workdir. Rows:

    * ``iREC``: ``irec_jax.compress`` / ``decompress``, the whole ``.irec`` file.
    * ``BB-ANS single``: bits-back coding of one image per file (8-bit latent
      bins), its initial bits paid from the file, plus a 5-byte shape header.
    * ``BB-ANS single 3b``: the same with 3-bit bins, the smallest single
      files BB-ANS reaches on this model (fewer initial bits, coarser latents).
    * ``BB-ANS amortized``: the whole set chained on one stack (8-bit bins),
      total bytes over total dims (initial bits paid once per set).
    * ``BB-ANS marginal``: the same chain, counting only what the images after
      the first add (chain bytes minus the first image's single file, over the
      other images' dims): the steady-state rate bits-back papers report.

    Models load lazily (on the first encode) so that ``--codecs PNG`` never pays for them.
    """
    import struct

    from irec_jax import codec as irec
    from irec_jax import modelzoo
    from irec_jax.baselines import bbans

    spec = "default" if model_spec in (None, "default") else model_spec
    cm = lambda: modelzoo.load_model(spec)  # noqa: E731 (cached by load_model)
    shape_fmt = ">HHB"

    def single(bits: int):
        def enc(img):
            m = cm()
            return struct.pack(shape_fmt, *img.shape) + bbans.bbans_encode_single(
                m.model, m.params, img, bits=bits)

        def dec(data):
            m = cm()
            shape = struct.unpack(shape_fmt, data[:5])
            return bbans.bbans_decode_single(m.model, m.params, data[5:], shape, bits=bits)
        return enc, dec

    def enc_set(images):
        m = cm()
        head = struct.pack(">I", len(images)) + b"".join(struct.pack(shape_fmt, *im.shape) for im in images)
        return head + bbans.bbans_encode_sequence(m.model, m.params, list(images), bits=bbans.DEFAULT_BITS)

    def dec_set(data):
        m = cm()
        (n,) = struct.unpack(">I", data[:4])
        shapes = [struct.unpack(shape_fmt, data[4 + 5 * i:9 + 5 * i]) for i in range(n)]
        return bbans.bbans_decode_sequence(m.model, m.params, data[4 + 5 * n:], shapes,
                                           bits=bbans.DEFAULT_BITS)

    enc8, dec8 = single(bbans.DEFAULT_BITS)
    enc3, dec3 = single(3)

    def marginal_count(images, data):
        first = len(enc8(images[0]))
        return len(data) - first, int(sum(im.size for im in images[1:]))

    marginal = FunctionSetCodec("BB-ANS marginal", enc_set, dec_set,
                                "BB-ANS chain minus the first image's single file, over the other images",
                                count_fn=marginal_count)
    return [
        codec_row("iREC", lambda img: irec.compress(img, model=cm()),
                  lambda b: irec.decompress(b, model=cm()), f"iREC .irec files, model {spec}"),
        codec_row("BB-ANS single", enc8, dec8, "BB-ANS, one image per file, 8-bit latent bins"),
        codec_row("BB-ANS single 3b", enc3, dec3, "BB-ANS, one image per file, 3-bit latent bins"),
        set_codec_row("BB-ANS amortized", enc_set, dec_set, "BB-ANS, the whole set on one stack"),
        marginal,
    ]


def build_codecs(names: Sequence[str] | None = None, model_spec: str | None = "default") -> list:
    """Classical rows plus ``extra_codecs(model_spec)``; ``names`` (case-insensitive) picks and orders them."""
    rows = list(classical.classical_codecs())
    try:
        extra = list(extra_codecs(model_spec))
    except Exception as e:
        wanted = None if names is None else {n.lower() for n in names}
        if wanted is None or not wanted <= {c.name.lower() for c in rows}:
            raise EvalError(f"cannot build the model codec rows for --model {model_spec!r}: "
                            f"{type(e).__name__}: {e}") from e
        extra = []
    rows += extra
    by_name: dict[str, Any] = {}
    for c in rows:
        if c.name.lower() in by_name:
            raise EvalError(f"two codec rows are named {c.name!r}")
        by_name[c.name.lower()] = c
    if names is None:
        return rows
    unknown = [n for n in names if n.lower() not in by_name]
    if unknown:
        raise EvalError(f"unknown codec(s) {', '.join(unknown)}; known: {', '.join(c.name for c in rows)}")
    return [by_name[n.lower()] for n in dict.fromkeys(names)]


# --- image sets -----------------------------------------------------------------------------------

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


def _read_png(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        mode = im.mode
        if mode in ("L", "RGB"):
            img = np.asarray(im)
        elif mode in ("1", "LA"):
            img = np.asarray(im.convert("L"))
        elif mode in ("P", "PA", "RGBA"):
            img = np.asarray(im.convert("RGB"))
        else:
            raise EvalError(f"{path}: PNG mode {mode!r} is not 8-bit gray or RGB (16-bit and others unsupported)")
    return classical.as_hwc(img)


def load_png_folder(path: str, name: str | None = None, limit: int | None = None,
                    progress: bool = False) -> ImageSet:
    """Every ``*.png`` under ``path`` (recursively, sorted by relative path) as one set.

    8-bit gray stays C = 1, RGB C = 3; alpha is dropped and palettes expanded
    (the set's ``source`` says so). ``name`` defaults to the folder's name.
    """
    if not os.path.isdir(path):
        raise EvalError(f"image folder {path!r} does not exist or is not a directory")
    files = sorted(p for p in glob.glob(os.path.join(path, "**", "*"), recursive=True)
                   if p.lower().endswith(".png") and os.path.isfile(p))
    if not files:
        raise EvalError(f"no *.png files under {path!r}")
    if limit is not None:
        files = files[:limit]
    images = tuple(_read_png(f) for f in _progress(files, progress, desc=f"loading {path}", leave=False))
    ids = tuple(os.path.relpath(f, path) for f in files)
    name = name or os.path.basename(os.path.normpath(os.path.abspath(path))) or "images"
    return ImageSet(name, images, ids, f"PNG folder {os.path.abspath(path)} (alpha dropped, palettes expanded)")


def bundled_sets() -> list[ImageSet]:
    """The held-out images that ship in ``irec_jax/assets/images``: "crops32" (32×32) and "photos64" (64×64)."""
    from irec_jax.assets import asset_path, bundled_images

    sets = []
    for kind, name in (("crops", "crops32"), ("photos", "photos64")):
        files = bundled_images(kind)
        if not files:
            raise EvalError(f"no bundled {kind} images under {asset_path('images')}")
        sets.append(ImageSet(name, tuple(_read_png(f) for f in files), tuple(os.path.basename(f) for f in files),
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
                        f"{_error('tfds', e)}") from e
    n = len(src) if limit is None else min(limit, len(src))
    images = []
    for i in _progress(range(n), progress, desc=f"loading {name}/{split}", leave=False):
        images.append(classical.as_hwc(src[i]))
    return ImageSet(f"{name}-{split}", tuple(images), tuple(f"{name}/{split}/{i}" for i in range(n)),
                    f"tfds {tfds_name} split {split!r} from {root}, first {n} images")


def _progress(it: Iterable, enabled: bool, **kw):
    from tqdm.auto import tqdm

    return tqdm(it, disable=not enabled, **kw)


# --- one run --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Row:
    """One coded image (image rows) or one coded set (set rows, ``image`` = "<set: N images>")."""

    image: str
    set: str
    codec: str
    kind: str  # "image" | "set"
    num_images: int
    height: int  # 0 for a set row over images of different sizes
    width: int
    channels: int
    dims: int  # H·W·C summed over the row's images
    bytes: int | None  # the whole encoded file; None when encode failed
    bpd: float | None  # 8·bytes/dims
    exact: bool  # decoded == original (False when anything failed)
    encode_s: float | None
    decode_s: float | None
    error: str | None  # the exception (or "unavailable: ..."); the run went on
    detail: str | None = None  # how a decode differed from the original


def same_image(original: np.ndarray, decoded: Any) -> tuple[bool, str | None]:
    """Whether ``decoded`` is ``original`` bit for bit, and if not, how it differs.

    ``[H, W]`` counts as ``[H, W, 1]``; a gray original may come back as RGB
    with three equal channels (formats without a gray mode). Nothing else is
    forgiven: dtype, shape and every value must match.
    """
    original = np.asarray(original)
    decoded = np.asarray(decoded)
    if decoded.ndim == 2:
        decoded = decoded[..., None]
    if decoded.dtype != original.dtype:
        return False, f"dtype {decoded.dtype} != {original.dtype}"
    if (original.ndim == 3 and original.shape[2] == 1 and decoded.ndim == 3 and decoded.shape[2] == 3
            and decoded.shape[:2] == original.shape[:2]
            and np.array_equal(decoded[..., 0], decoded[..., 1]) and np.array_equal(decoded[..., 0], decoded[..., 2])):
        decoded = decoded[..., :1]
    if decoded.shape != original.shape:
        return False, f"shape {decoded.shape} != {original.shape}"
    diff = decoded.astype(np.int64) - original.astype(np.int64)
    bad = int(np.count_nonzero(diff))
    if bad:
        return False, f"{bad} of {diff.size} values differ, max |diff| {int(np.abs(diff).max())}"
    return True, None


def _error(stage: str, e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{stage}: {type(e).__name__}" + (f": {msg}" if msg else "")


def _guard(fn: Callable[[], Any]) -> tuple[Any, float, BaseException | None]:
    t0 = time.perf_counter()
    try:
        out = fn()
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as e:  # also pyo3 PanicException (a BaseException) from Rust coders
        return None, time.perf_counter() - t0, e
    return out, time.perf_counter() - t0, None


def _image_row(codec: Any, img: np.ndarray, image_id: str, set_name: str) -> Row:
    h, w, c = img.shape
    dims = h * w * c
    base = dict(image=image_id, set=set_name, codec=codec.name, kind="image", num_images=1,
                height=h, width=w, channels=c, dims=dims)
    given = img.copy()  # a codec that writes into its input cannot spoil the comparison
    data, enc_s, err = _guard(lambda: codec.encode(given))
    if err is None and not isinstance(data, (bytes, bytearray, memoryview)):
        err = TypeError(f"encode returned {type(data).__name__}, not bytes")
    if err is not None:
        return Row(**base, bytes=None, bpd=None, exact=False, encode_s=enc_s, decode_s=None, error=_error("encode", err))
    data = bytes(data)
    nbytes = len(data)
    bpd = 8.0 * nbytes / dims
    out, dec_s, err = _guard(lambda: codec.decode(data))
    if err is not None:
        return Row(**base, bytes=nbytes, bpd=bpd, exact=False, encode_s=enc_s, decode_s=dec_s,
                   error=_error("decode", err))
    exact, detail = same_image(img, out)
    return Row(**base, bytes=nbytes, bpd=bpd, exact=exact, encode_s=enc_s, decode_s=dec_s, error=None, detail=detail)


def _set_row(codec: Any, image_set: ImageSet) -> Row:
    shapes = {im.shape for im in image_set.images}
    h, w, c = shapes.pop() if len(shapes) == 1 else (0, 0, 0)
    dims = int(sum(im.size for im in image_set.images))
    base = dict(image=f"<set: {len(image_set)} images>", set=image_set.name, codec=codec.name, kind="set",
                num_images=len(image_set), height=h, width=w, channels=c, dims=dims)
    originals = [im.copy() for im in image_set.images]
    given = [im.copy() for im in originals]
    data, enc_s, err = _guard(lambda: codec.encode_set(given))
    if err is None and not isinstance(data, (bytes, bytearray, memoryview)):
        err = TypeError(f"encode_set returned {type(data).__name__}, not bytes")
    if err is not None:
        return Row(**base, bytes=None, bpd=None, exact=False, encode_s=enc_s, decode_s=None,
                   error=_error("encode_set", err))
    data = bytes(data)
    counted = len(data)
    count = getattr(codec, "count_fn", None)
    if callable(count):  # e.g. a marginal rate: bytes and dims beyond a first image
        counted, dims = count(originals, data)
        base["dims"] = dims
    bpd = 8.0 * counted / dims if dims else None
    out, dec_s, err = _guard(lambda: list(codec.decode_set(data)))
    if err is not None:
        return Row(**base, bytes=counted, bpd=bpd, exact=False, encode_s=enc_s, decode_s=dec_s,
                   error=_error("decode_set", err))
    if len(out) != len(originals):
        return Row(**base, bytes=counted, bpd=bpd, exact=False, encode_s=enc_s, decode_s=dec_s, error=None,
                   detail=f"decode_set returned {len(out)} images, expected {len(originals)}")
    wrong = [(i, d) for i, (a, b) in enumerate(zip(originals, out)) for ok, d in [same_image(a, b)] if not ok]
    detail = None
    if wrong:
        detail = f"{len(wrong)} of {len(out)} images differ (first: #{wrong[0][0]}, {wrong[0][1]})"
    return Row(**base, bytes=counted, bpd=bpd, exact=not wrong, encode_s=enc_s, decode_s=dec_s, error=None,
               detail=detail)


@dataclasses.dataclass(frozen=True)
class Results:
    """What ``run`` measured: ``rows`` in (set, codec, image) order, plus what the sets and codecs were."""

    sets: tuple  # of (name, num_images, source)
    codecs: tuple  # of (name, kind, description)
    rows: tuple  # of Row
    unavailable: dict  # codec name -> reason, for rows that could not run here
    started: str  # UTC ISO time
    wall_s: float
    warmup_s: dict = dataclasses.field(default_factory=dict)  # codec -> set -> untimed warm-up seconds


def run(sets: Sequence[ImageSet], codecs: Sequence[Any], progress: bool = True, warmup: bool = True) -> Results:
    """Code and decode every image of every set with every codec row; one failure never stops the run.

    ``warmup``: before timing an image row on a set, encode and decode the
    set's first image once untimed (imports, JIT compilation per shape); its
    wall time is kept in ``Results.warmup_s``. Set rows are never warmed up.
    """
    if not sets:
        raise EvalError("no image sets to evaluate")
    if not codecs:
        raise EvalError("no codec rows to evaluate")
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise EvalError(f"image set names must differ, got {names}")
    kinds = [_kind(c) for c in codecs]
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    unavailable = {}
    for c in codecs:
        reason = getattr(c, "unavailable", None)
        if reason:
            unavailable[c.name] = str(reason)
    rows: list[Row] = []
    warm: dict[str, dict[str, float]] = {}
    from tqdm.auto import tqdm

    for image_set in sets:
        with tqdm(total=len(image_set) * len(codecs), desc=image_set.name, leave=False,
                  disable=not progress) as bar:
            for codec, kind in zip(codecs, kinds):
                bar.set_postfix_str(codec.name, refresh=False)
                if codec.name in unavailable:
                    err = f"unavailable: {unavailable[codec.name]}"
                    if kind == "set":
                        rows.append(Row(f"<set: {len(image_set)} images>", image_set.name, codec.name, kind,
                                        len(image_set), 0, 0, 0, int(sum(im.size for im in image_set.images)),
                                        None, None, False, None, None, err))
                    else:
                        rows += [Row(i, image_set.name, codec.name, kind, 1, *im.shape, im.size, None, None,
                                     False, None, None, err) for i, im in zip(image_set.ids, image_set.images)]
                    bar.update(len(image_set))
                elif kind == "set":
                    rows.append(_set_row(codec, image_set))
                    bar.update(len(image_set))
                else:
                    if warmup and len(image_set):
                        first = image_set.images[0]
                        _, secs, _ = _guard(lambda: codec.decode(bytes(codec.encode(first.copy()))))
                        warm.setdefault(codec.name, {})[image_set.name] = secs
                    for img, image_id in zip(image_set.images, image_set.ids):
                        rows.append(_image_row(codec, img, image_id, image_set.name))
                        bar.update(1)
    return Results(tuple((s.name, len(s), s.source) for s in sets),
                   tuple((c.name, k, _describe(c)) for c, k in zip(codecs, kinds)),
                   tuple(rows), unavailable, started, time.perf_counter() - t0, warm)


# --- summaries ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Cell:
    """One codec on one set. ``mean_bpd``: mean of per-image bpd over images that did not fail
    (inexact ones included, and counted); ``total_bpd``: 8·Σbytes/Σdims over the same images.
    For set rows both are the whole set's bpd. Times are seconds per image."""

    codec: str
    set: str
    kind: str
    num_images: int
    num_failed: int
    num_inexact: int
    mean_bpd: float | None
    total_bpd: float | None
    encoding_time: float | None
    decoding_time: float | None
    unavailable: str | None


def summarize(results: Results) -> list[Cell]:
    """One ``Cell`` per (codec, set), codecs in run order, sets in run order."""
    cells = []
    for codec, kind, _ in results.codecs:
        for set_name, n, _ in results.sets:
            rows = [r for r in results.rows if r.codec == codec and r.set == set_name]
            ok = [r for r in rows if r.error is None]
            failed = len(rows) - len(ok) if kind == "image" else (n if rows and rows[0].error else 0)
            inexact = sum(1 for r in ok if not r.exact)
            if kind == "set" and inexact:
                inexact = n
            mean_bpd = float(np.mean([r.bpd for r in ok])) if ok else None
            dims = sum(r.dims for r in ok)
            total_bpd = 8.0 * sum(r.bytes for r in ok) / dims if ok and dims else None
            imgs = sum(r.num_images for r in ok)
            enc = sum(r.encode_s for r in ok) / imgs if imgs else None
            dec = sum(r.decode_s for r in ok) / imgs if imgs else None
            cells.append(Cell(codec, set_name, kind, n, failed, inexact, mean_bpd, total_bpd, enc, dec,
                              results.unavailable.get(codec)))
    return cells


def _cell_text(cell: Cell, value: float | None) -> str:
    if cell.unavailable:
        return "n/a"
    if value is None:
        return "FAILED"
    text = f"{value:.3f}"
    marks = []
    if cell.num_inexact:
        marks.append(f"x{cell.num_inexact}")
    if cell.num_failed:
        marks.append(f"!{cell.num_failed}")
    if cell.kind == "set":
        marks.append("set")
    return text + (f" ({','.join(marks)})" if marks else "")


def _grid(title: str, results: Results, cells: list[Cell], fmt: Callable[[Cell], str]) -> str:
    by = {(c.codec, c.set): c for c in cells}
    header = ["codec"] + [f"{name} ({n})" for name, n, _ in results.sets]
    body = [[codec] + [fmt(by[codec, s]) for s, _, _ in results.sets] for codec, _, _ in results.codecs]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    line = lambda r: "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
    rule = "-" * len(line(header))
    return "\n".join([title, rule, line(header), rule] + [line(r) for r in body] + [rule])


def format_table(results: Results, cells: list[Cell] | None = None) -> str:
    """Table 1 of the paper, shaped: rows = codecs, columns = sets (image count in brackets).

    Three grids: mean of per-image bpd (the headline), bpd of the total bytes,
    and mean encode/decode milliseconds per image; then a legend and any
    unavailable or failing rows with their reasons.
    """
    cells = summarize(results) if cells is None else cells
    parts = [
        _grid("Lossless rate: mean of per-image bits/dim (bpd = 8 * file bytes / (H*W*C), every byte counted)",
              results, cells, lambda c: _cell_text(c, c.mean_bpd)),
        _grid("Lossless rate: total-bytes bits/dim (8 * sum bytes / sum H*W*C)",
              results, cells, lambda c: _cell_text(c, c.total_bpd)),
        _grid("Time per image, ms: encode / decode (wall clock)", results, cells,
              lambda c: "n/a" if c.unavailable or c.encoding_time is None else
              f"{1e3 * c.encoding_time:.1f} / {1e3 * c.decoding_time:.1f}"),
        "legend: xN = N images decoded inexactly (rate still counted), !N = N images failed (left out of the "
        "mean), (set) = set-level coder: bytes of the whole set, n/a = codec unavailable here, FAILED = "
        "every image failed",
    ]
    for name, reason in results.unavailable.items():
        parts.append(f"unavailable: {name}: {reason}")
    seen = set()
    for r in results.rows:
        if (r.error and not r.error.startswith("unavailable")) or (r.error is None and not r.exact):
            key = (r.codec, r.set)
            if key not in seen:
                seen.add(key)
                parts.append(f"{'error' if r.error else 'inexact'}: {r.codec} on {r.set}/{r.image}: "
                             f"{r.error or r.detail}")
    return "\n".join(parts)


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _environment(results: Results) -> dict:
    import PIL

    env = {"python": sys.version.split()[0], "platform": platform.platform(), "numpy": np.__version__,
           "Pillow": PIL.__version__, "cpu_count": os.cpu_count()}
    try:
        import imagecodecs

        env["imagecodecs"] = imagecodecs.__version__
    except ImportError:
        env["imagecodecs"] = None
    return env


def to_json(results: Results, cells: list[Cell] | None = None) -> dict:
    """``results.json``: CompressAI's ``{"name", "description", "results": {metric: [...]}}``, lossless.

    ``results`` holds parallel lists, one entry per (codec, set) pair (where
    CompressAI has one per quality point): ``codec``, ``set``, ``bpd`` (mean
    of per-image bpd), ``bpd_total``, ``encoding_time`` / ``decoding_time``
    (mean seconds per image), ``num_images``, ``num_failed``, ``num_inexact``.
    ``codecs`` holds one CompressAI entry per codec (lists over ``set``),
    ``rows`` the per-image rows, ``sets`` and ``environment`` the context.
    """
    cells = summarize(results) if cells is None else cells
    flat: dict[str, list] = {k: [] for k in ("codec", "set", "bpd", "bpd_total", "encoding_time", "decoding_time",
                                             "num_images", "num_failed", "num_inexact")}
    for c in cells:
        for k, v in (("codec", c.codec), ("set", c.set), ("bpd", _num(c.mean_bpd)), ("bpd_total", _num(c.total_bpd)),
                     ("encoding_time", _num(c.encoding_time)), ("decoding_time", _num(c.decoding_time)),
                     ("num_images", c.num_images), ("num_failed", c.num_failed), ("num_inexact", c.num_inexact)):
            flat[k].append(v)
    per_codec = {}
    for name, kind, description in results.codecs:
        mine = [c for c in cells if c.codec == name]
        desc = description + ("" if kind == "image" else "; set-level (amortized) coder: bpd of the whole set")
        if name in results.unavailable:
            desc += f"; unavailable here: {results.unavailable[name]}"
        per_codec[name] = {
            "name": name,
            "description": desc,
            "results": {
                "set": [c.set for c in mine],
                "bpd": [_num(c.mean_bpd) for c in mine],
                "bpd_total": [_num(c.total_bpd) for c in mine],
                "encoding_time": [_num(c.encoding_time) for c in mine],
                "decoding_time": [_num(c.decoding_time) for c in mine],
                "num_images": [c.num_images for c in mine],
                "num_failed": [c.num_failed for c in mine],
                "num_inexact": [c.num_inexact for c in mine],
            },
        }
    return {
        "name": "irec_jax lossless benchmark",
        "description": ("Lossless compression of 8-bit images. bpd = 8 * whole-file bytes / (H*W*C); 'bpd' is the "
                        "mean of per-image bpd over images that did not fail, 'bpd_total' the bpd of the summed "
                        "bytes; times are mean wall-clock seconds per image; every image is decoded and compared "
                        f"bit for bit. Started {results.started} UTC, {results.wall_s:.1f} s."),
        "results": flat,
        "codecs": per_codec,
        "sets": [{"name": n, "num_images": k, "source": s} for n, k, s in results.sets],
        "rows": [dataclasses.asdict(r) for r in results.rows],
        "unavailable": dict(results.unavailable),
        "warmup_s": results.warmup_s,
        "environment": _environment(results),
    }


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "codec"


def write_outputs(results: Results, out_dir: str, plots: bool = True) -> dict[str, str]:
    """Write results.json, compressai/<codec>.json, rows.csv, table.txt and the plots; return their paths."""
    os.makedirs(out_dir, exist_ok=True)
    cells = summarize(results)
    doc = to_json(results, cells)
    paths = {"results": os.path.join(out_dir, "results.json"), "rows": os.path.join(out_dir, "rows.csv"),
             "table": os.path.join(out_dir, "table.txt")}
    with open(paths["results"], "w") as f:
        json.dump(doc, f, indent=2)
    os.makedirs(os.path.join(out_dir, "compressai"), exist_ok=True)
    for name, entry in doc["codecs"].items():
        p = os.path.join(out_dir, "compressai", f"{_slug(name)}.json")
        with open(p, "w") as f:
            json.dump(entry, f, indent=2)
        paths[f"compressai:{name}"] = p
    fields = [f.name for f in dataclasses.fields(Row)]
    with open(paths["rows"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in results.rows:
            writer.writerow(dataclasses.asdict(r))
    with open(paths["table"], "w") as f:
        f.write(format_table(results, cells) + "\n")
    if plots:
        from irec_jax.bench import plots as plotting

        paths.update(plotting.plot_all(results, cells, out_dir))
    return paths


# --- the eval.py entry point ----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class EvalSpec:
    """What ``eval.py`` asks for. Sets: the suite's, one per ``images`` folder ("DIR" or "NAME=DIR"),
    and the tfds ``dataset``; ``limit`` keeps the first N images of each folder/dataset."""

    suite: str | None = None
    images: tuple = ()
    dataset: str | None = None
    split: str = "test"
    limit: int | None = None
    data_dir: str | None = None
    model: str = "default"
    codecs: tuple | None = None
    out: str = "eval_out"
    progress: bool = True
    plots: bool = True
    warmup: bool = True


def load_sets(spec: EvalSpec) -> list[ImageSet]:
    """The image sets ``spec`` names; ``EvalError`` for a bad suite, folder or dataset."""
    if spec.limit is not None and spec.limit < 1:
        raise EvalError(f"--limit must be at least 1, got {spec.limit}")
    sets: list[ImageSet] = []
    if spec.suite is not None:
        if spec.suite not in SUITES:
            raise EvalError(f"unknown suite {spec.suite!r}; known: {', '.join(SUITES)}")
        sets += SUITES[spec.suite]()
    for item in spec.images:
        name, sep, path = item.partition("=")
        if not sep or os.path.isdir(item):
            name, path = None, item
        sets.append(load_png_folder(path, name, spec.limit, spec.progress))
    if spec.dataset is not None:
        sets.append(tfds_set(spec.dataset, spec.split, spec.limit, spec.data_dir, spec.progress))
    if not sets:
        raise EvalError("nothing to evaluate: give --suite quick, --images DIR or --dataset NAME")
    seen: dict[str, int] = {}
    unique = []
    for s in sets:
        seen[s.name] = seen.get(s.name, 0) + 1
        unique.append(s if seen[s.name] == 1 else dataclasses.replace(s, name=f"{s.name}-{seen[s.name]}"))
    return unique


def evaluate(spec: EvalSpec, echo: Callable[[str], None] = print) -> tuple[Results, dict[str, str]]:
    """Load the sets, build the rows, run, write the outputs to ``spec.out`` and echo the table."""
    codecs = build_codecs(spec.codecs, spec.model)  # before loading: an unknown codec fails fast
    sets = load_sets(spec)
    results = run(sets, codecs, progress=spec.progress, warmup=spec.warmup)
    paths = write_outputs(results, spec.out, plots=spec.plots)
    echo(format_table(results))
    echo(f"{sum(len(s) for s in sets)} images x {len(codecs)} codecs in {results.wall_s:.1f} s; "
         f"wrote {os.path.abspath(spec.out)}/ (results.json, rows.csv, table.txt, compressai/, plots)")
    return results, paths
