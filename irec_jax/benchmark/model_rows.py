"""The model-based rows of the benchmark, all on one model: iREC and BB-ANS (``irec_jax.benchmark.rows`` rows).

* ``iREC``: ``irec_jax.compress`` / ``decompress``, the whole ``.irec`` file
  (the stored mode where it is smaller: what users get); each row also
  records the model's own coding's bytes and whether the file fell back
  (``rows.Coded``), which the tables report separately.
* ``BB-ANS single``: bits-back coding of one image per file (8-bit latent
  bins), its initial bits paid from the file, plus its shape header
  (``bbans.encode_file``).
* ``BB-ANS single 3b``: the same with 3-bit bins, the smallest single files
  BB-ANS reaches on this model (fewer initial bits, coarser latents).
* ``BB-ANS amortized``: the whole set chained on one stack (8-bit bins,
  ``bbans.encode_set_file``), total bytes over total dims (initial bits paid
  once per set).
* ``BB-ANS marginal``: the same chain, counting only what the images after
  the first add (chain bytes minus the first image's single file, over the
  other images' dims): the steady-state rate bits-back papers report.

Every byte of every file counts; the file framing is ``irec_jax.baselines.bbans``'s.
Models load lazily (on the first encode) so that ``--codecs PNG`` never pays for them.
"""

from __future__ import annotations

import dataclasses

from typing import Callable, Sequence

import numpy as np

from irec_jax.benchmark.rows import Coded, CodecRow, SetCodecRow, codec_row, set_codec_row

__all__ = ["irec_row", "bbans_rows", "model_rows"]


def _loader(model_spec: str | None) -> tuple[str, Callable]:
    from irec_jax import modelzoo

    spec = "default" if model_spec in (None, "default") else model_spec
    return spec, lambda: modelzoo.load_model(spec)  # cached by load_model


def irec_row(model_spec: str | None = "default", refine: int | None = None, effort: str = "default") -> CodecRow:
    """The iREC codec's row: whole ``.irec`` files of ``model_spec`` ("default", a model folder or a workdir),
    coded with the encoder preset ``effort`` (``codec.EFFORTS``), posteriors refined ``refine`` steps per
    tile (None: the effort's)."""
    from irec_jax import codec as irec

    spec, cm = _loader(model_spec)

    def coded(data: bytes, report: "irec.CodecReport") -> Coded:
        return Coded(data, report.model_bytes, report.stored)

    irec.check_refine(refine)  # bad values fail here, before any image
    preset = irec.check_effort(effort)
    refined = ("" if refine is None else f", posteriors refined {refine} steps" if refine
               else ", no posterior refinement")
    row = codec_row("iREC", lambda img: coded(*irec.compress_report(img, model=cm(), refine=refine, effort=preset)),
                    lambda b: irec.decompress(b, model=cm()),
                    f"iREC .irec files (stored mode where smaller), model {spec}, effort {preset.name} "
                    f"({preset.describe()}){refined}")
    return dataclasses.replace(
        row, encode_batch_fn=lambda images: [coded(*f) for f in irec.compress_batch(images, model=cm(),
                                                                                    refine=refine, effort=preset)])


def bbans_rows(model_spec: str | None = "default") -> list:
    """BB-ANS single (8-bit and 3-bit bins), amortized and marginal rows on ``model_spec``."""
    from irec_jax.baselines import bbans

    _, cm = _loader(model_spec)

    def single(bits: int) -> tuple[Callable, Callable]:
        def encode(img: np.ndarray) -> bytes:
            m = cm()
            return bbans.encode_file(m.model, m.params, img, bits)

        def decode(data: bytes) -> np.ndarray:
            m = cm()
            return bbans.decode_file(m.model, m.params, data, bits)

        return encode, decode

    def encode_set(images: Sequence[np.ndarray]) -> bytes:
        m = cm()
        return bbans.encode_set_file(m.model, m.params, list(images), bbans.DEFAULT_BITS)

    def decode_set(data: bytes) -> list[np.ndarray]:
        m = cm()
        return bbans.decode_set_file(m.model, m.params, data, bbans.DEFAULT_BITS)

    enc8, dec8 = single(bbans.DEFAULT_BITS)

    def marginal_count(images: Sequence[np.ndarray], data: bytes) -> tuple[int, int]:
        return len(data) - len(enc8(images[0])), int(sum(im.size for im in images[1:]))

    return [
        codec_row("BB-ANS single", enc8, dec8, "BB-ANS, one image per file, 8-bit latent bins"),
        codec_row("BB-ANS single 3b", *single(3), "BB-ANS, one image per file, 3-bit latent bins"),
        set_codec_row("BB-ANS amortized", encode_set, decode_set, "BB-ANS, the whole set on one stack"),
        set_codec_row("BB-ANS marginal", encode_set, decode_set,
                      "BB-ANS chain minus the first image's single file, over the other images",
                      count=marginal_count),
    ]


def model_rows(model_spec: str | None = "default", refine: int | None = None,
               effort: str = "default") -> list[CodecRow | SetCodecRow]:
    """The rows ``eval.py`` adds to the classical ones: iREC (``refine``: its posterior refinement steps,
    None: the ``effort``'s), then the BB-ANS rows, on one model."""
    return [irec_row(model_spec, refine, effort), *bbans_rows(model_spec)]
