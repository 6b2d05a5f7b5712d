"""The benchmark's runner: every image of every set through every row, encoded, decoded and compared.

Per image × image row (:class:`Row`): ``bytes`` (the whole encoded file),
``bpd`` = 8·bytes/(H·W·C), ``exact`` (decoded == original, see
``same_image``), ``encode_s``, ``decode_s``, ``error`` (the exception, when
one was raised: the run goes on) and ``detail`` (how a decode differed); for
a codec whose encoder returns ``rows.Coded`` (iREC), also ``model_bytes`` /
``model_bpd`` (the model's own coding) and ``stored`` (the file fell back to
the stored mode). A
set row gives one row per set: the bytes of the whole set, bpd over all its
dimensions, times for the whole set, exact only if every image came back
exactly. The rows are the ones of ``irec_jax.benchmark.rows``; the sets those of
``irec_jax.benchmark.sets``.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from typing import Any, Callable, Sequence

import numpy as np

from irec_jax.benchmark.errors import EvalError, error_text
from irec_jax.benchmark.rows import Coded, row_description, row_kind
from irec_jax.benchmark.sets import ImageSet

__all__ = ["Row", "Results", "same_image", "timed", "run"]


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
    model_bytes: int | None = None  # rows of a codec with a fallback (iREC): the model's own coding's bytes
    model_bpd: float | None = None  # 8·model_bytes/dims
    stored: bool | None = None  # ... and whether the file is the fallback (stored mode); None for other codecs


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


def timed(fn: Callable[[], Any]) -> tuple[Any, float, BaseException | None]:
    """``(fn(), seconds, None)``, or ``(None, seconds, the exception)``: only an interrupt escapes."""
    t0 = time.perf_counter()
    try:
        out = fn()
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as e:  # also pyo3 PanicException (a BaseException) from Rust coders
        return None, time.perf_counter() - t0, e
    return out, time.perf_counter() - t0, None


def _image_base(codec: Any, img: np.ndarray, image_id: str, set_name: str) -> dict:
    h, w, c = img.shape
    return dict(image=image_id, set=set_name, codec=codec.name, kind="image", num_images=1,
                height=h, width=w, channels=c, dims=h * w * c)


def _file_bytes(data: Any) -> Any:
    """The file of an encoder's output: ``data``, or a ``Coded``'s ``data``."""
    return data.data if isinstance(data, Coded) else data


def _decoded_row(codec: Any, img: np.ndarray, base: dict, data: Any, enc_s: float, err,
                 stage: str = "encode") -> Row:
    """An image row from the encoder's output ``data`` (bytes or ``Coded``;
    or its error ``err`` at ``stage``): decoded, timed and compared with ``img``."""
    if isinstance(data, Coded):
        base = dict(base, model_bytes=data.model_bytes, model_bpd=8.0 * data.model_bytes / base["dims"],
                    stored=data.stored)
        data = data.data
    if err is None and not isinstance(data, (bytes, bytearray, memoryview)):
        err = TypeError(f"{stage} returned {type(data).__name__}, not bytes")
    if err is not None:
        return Row(**base, bytes=None, bpd=None, exact=False, encode_s=enc_s, decode_s=None,
                   error=error_text(err, stage))
    data = bytes(data)
    nbytes = len(data)
    bpd = 8.0 * nbytes / base["dims"]
    out, dec_s, err = timed(lambda: codec.decode(data))
    if err is not None:
        return Row(**base, bytes=nbytes, bpd=bpd, exact=False, encode_s=enc_s, decode_s=dec_s,
                   error=error_text(err, "decode"))
    exact, detail = same_image(img, out)
    return Row(**base, bytes=nbytes, bpd=bpd, exact=exact, encode_s=enc_s, decode_s=dec_s, error=None, detail=detail)


def _image_row(codec: Any, img: np.ndarray, image_id: str, set_name: str) -> Row:
    given = img.copy()  # a codec that writes into its input cannot spoil the comparison
    data, enc_s, err = timed(lambda: codec.encode(given))
    return _decoded_row(codec, img, _image_base(codec, img, image_id, set_name), data, enc_s, err)


def _batch_fn(codec: Any) -> Callable | None:
    """The codec's ``encode_batch(images) -> [bytes]`` (or a CodecRow's ``encode_batch_fn``), if any."""
    fn = getattr(codec, "encode_batch_fn", None) or getattr(codec, "encode_batch", None)
    return fn if callable(fn) else None


def _batch_rows(codec: Any, image_set: ImageSet, batch: int) -> list[Row]:
    """Image rows of a codec with ``encode_batch(images) -> [bytes]``: the
    set's images of one shape in batches of up to ``batch``, each batch
    timed as one call and its time split evenly over its images; every
    file is then decoded and compared on its own (``_image_row``'s fields).
    A failing batch fails each of its images with the batch's error."""
    rows: dict[int, Row] = {}
    by_shape: dict[tuple, list[int]] = {}
    for i, img in enumerate(image_set.images):
        by_shape.setdefault(img.shape, []).append(i)
    for idx in by_shape.values():
        for start in range(0, len(idx), batch):
            part = idx[start:start + batch]
            given = [image_set.images[i].copy() for i in part]
            datas, enc_s, err = timed(lambda: list(_batch_fn(codec)(given)))
            if err is None and len(datas) != len(part):
                err = TypeError(f"encode_batch returned {len(datas)} items for {len(part)} images")
            for j, i in enumerate(part):
                img = image_set.images[i]
                rows[i] = _decoded_row(codec, img, _image_base(codec, img, image_set.ids[i], image_set.name),
                                       None if err else datas[j], enc_s / len(part), err, "encode_batch")
    return [rows[i] for i in range(len(image_set))]


def _set_row(codec: Any, image_set: ImageSet) -> Row:
    shapes = {im.shape for im in image_set.images}
    h, w, c = shapes.pop() if len(shapes) == 1 else (0, 0, 0)
    dims = int(sum(im.size for im in image_set.images))
    base = dict(image=f"<set: {len(image_set)} images>", set=image_set.name, codec=codec.name, kind="set",
                num_images=len(image_set), height=h, width=w, channels=c, dims=dims)
    originals = [im.copy() for im in image_set.images]
    given = [im.copy() for im in originals]
    data, enc_s, err = timed(lambda: codec.encode_set(given))
    if err is None and not isinstance(data, (bytes, bytearray, memoryview)):
        err = TypeError(f"encode_set returned {type(data).__name__}, not bytes")
    if err is not None:
        return Row(**base, bytes=None, bpd=None, exact=False, encode_s=enc_s, decode_s=None,
                   error=error_text(err, "encode_set"))
    data = bytes(data)
    counted = len(data)
    count = getattr(codec, "count_fn", None)
    if callable(count):  # e.g. a marginal rate: bytes and dims beyond a first image
        counted, dims = count(originals, data)
        base["dims"] = dims
    bpd = 8.0 * counted / dims if dims else None
    out, dec_s, err = timed(lambda: list(codec.decode_set(data)))
    if err is not None:
        return Row(**base, bytes=counted, bpd=bpd, exact=False, encode_s=enc_s, decode_s=dec_s,
                   error=error_text(err, "decode_set"))
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


def run(sets: Sequence[ImageSet], codecs: Sequence[Any], progress: bool = True, warmup: bool = True,
        batch: int = 1) -> Results:
    """Code and decode every image of every set with every codec row; one failure never stops the run.

    ``warmup``: before timing an image row on a set, encode and decode the
    set's first image once untimed (imports, JIT compilation per shape); its
    wall time is kept in ``Results.warmup_s``. Set rows are never warmed up.
    ``batch`` > 1: image rows that have ``encode_batch`` (iREC) encode the
    set's images of one shape in batches of that many (``_batch_rows``; the
    warm-up is then one untimed batch per shape, every file decoded); the
    rest code image by image.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise EvalError(f"batch must be an integer >= 1, got {batch!r}")
    if not sets:
        raise EvalError("no image sets to evaluate")
    if not codecs:
        raise EvalError("no codec rows to evaluate")
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise EvalError(f"image set names must differ, got {names}")
    kinds = [row_kind(c) for c in codecs]
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
                elif batch > 1 and _batch_fn(codec) is not None:
                    if warmup and len(image_set):
                        shapes = {im.shape for im in image_set.images}
                        firsts = [[im for im in image_set.images if im.shape == sh][:batch] for sh in shapes]
                        _, secs, _ = timed(lambda: [codec.decode(bytes(_file_bytes(d))) for f in firsts
                                                    for d in _batch_fn(codec)([im.copy() for im in f])])
                        warm.setdefault(codec.name, {})[image_set.name] = secs
                    rows += _batch_rows(codec, image_set, batch)
                    bar.update(len(image_set))
                else:
                    if warmup and len(image_set):
                        first = image_set.images[0]
                        _, secs, _ = timed(lambda: codec.decode(bytes(_file_bytes(codec.encode(first.copy())))))
                        warm.setdefault(codec.name, {})[image_set.name] = secs
                    for img, image_id in zip(image_set.images, image_set.ids):
                        rows.append(_image_row(codec, img, image_id, image_set.name))
                        bar.update(1)
    return Results(tuple((s.name, len(s), s.source) for s in sets),
                   tuple((c.name, k, row_description(c)) for c, k in zip(codecs, kinds)),
                   tuple(rows), unavailable, started, time.perf_counter() - t0, warm)
