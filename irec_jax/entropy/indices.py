"""Coding of iREC's per-block step counts and candidate indices.

Per latent layer the coder produces `steps` (K_b >= 1 steps for each of the
layer's blocks) and `indices` (one index in [0, N) per step, block-major).
The index section stores, for all layers of an image:

  varint  (num_layers << 2) | index_model_kind      0 uniform, 1 table, 2 adaptive
  per layer:
    varint  num_blocks
    if num_blocks > 0: varint (min K_b) - 1, varint (max K_b) - (min K_b)
  range-coded payload, to the end of the section:
    for each layer with max > min: K_b - min, uniform over [0, max - min]
    all indices of all layers in order, under the index model over [0, N)

N (`num_candidates`) is not stored: the decoder derives it from the coder
settings in the container header.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence, Union

import numpy as np

from irec_jax.entropy import _bytes, _coder, tables
from irec_jax.errors import FormatError
from irec_jax.settings import MAX_CANDIDATES
_SLACK_BITS = 64  # range coder flush and word padding, in bits.


@dataclasses.dataclass(frozen=True)
class LayerIndices:
    """The iREC coder's output for one latent layer.

    steps: int64 [num_blocks], the step count K_b >= 1 of each block.
    indices: int64 [sum(steps)], the chosen candidate of each step, block-major,
      each in [0, num_candidates).
    """

    steps: np.ndarray
    indices: np.ndarray


@dataclasses.dataclass(frozen=True)
class UniformIndexModel:
    """Every index uniform over [0, N): optimal when indices come from an
    argmax over i.i.d. candidates (the default)."""


@dataclasses.dataclass(frozen=True)
class TableIndexModel:
    """A fixed (e.g. learned) distribution over the N indices.

    probs: float [N] >= 0, unnormalized; quantized with `tables.freqs_from_pmf`.
    """

    probs: np.ndarray


@dataclasses.dataclass(frozen=True)
class AdaptiveIndexModel:
    """Adaptive counts (KT estimator), refreshed as symbols are coded.

    The table is refreshed after 16, 32, 64, ... symbols, then every
    `max_refresh` symbols, and mixes `uniform_weight` of the uniform
    distribution into the counts (which bounds the cost of surprises and the
    number of symbols a byte can hold).
    """

    max_refresh: int = 4096
    uniform_weight: float = 1.0 / 32.0


IndexModel = Union[UniformIndexModel, TableIndexModel, AdaptiveIndexModel]
_KIND = {UniformIndexModel: 0, TableIndexModel: 1, AdaptiveIndexModel: 2}
_KIND_NAME = {0: "uniform", 1: "table", 2: "adaptive"}


def _check_model(model: IndexModel, num_candidates: int) -> None:
    if type(model) not in _KIND:
        raise TypeError(f"unsupported index model {type(model).__name__}")
    if not 2 <= num_candidates <= MAX_CANDIDATES:
        raise ValueError(f"num_candidates must be in [2, 2**24], got {num_candidates}")
    if isinstance(model, TableIndexModel) and np.shape(model.probs) != (num_candidates,):
        raise ValueError(
            f"table model has {np.shape(model.probs)} probs, expected ({num_candidates},)")
    if isinstance(model, AdaptiveIndexModel) and not (
            model.max_refresh >= 1 and 0.0 < model.uniform_weight <= 1.0):
        raise ValueError(f"invalid adaptive model settings {model}")


def _min_bits_per_index(model: IndexModel, num_candidates: int) -> float:
    """A lower bound on the bits any one index costs under `model`."""
    top = 1 << tables.PRECISION
    if isinstance(model, UniformIndexModel):
        p_max = (top // num_candidates + 1) / top
    elif isinstance(model, TableIndexModel):
        p_max = float(tables.freqs_from_pmf(model.probs).max()) / top
    else:
        w = model.uniform_weight
        p_max = (1.0 - w) + w / num_candidates + 2.0 / top
    return -math.log2(min(1.0, p_max))


def _adaptive_refreshes(total: int, max_refresh: int) -> list[tuple[int, int]]:
    """[start, stop) spans coded with one table: 16, 16, 32, 64, ... capped."""
    spans, start = [], 0
    while start < total:
        size = min(max(16, start), max_refresh)
        spans.append((start, min(total, start + size)))
        start += size
    return spans


def _adaptive_table(counts: np.ndarray, model: AdaptiveIndexModel) -> np.ndarray:
    """float32 coder weights [N] from integer counts [N] (KT + uniform mix)."""
    n = counts.shape[0]
    kt = (counts + 0.5) / (counts.sum() + 0.5 * n)
    mass = (1.0 - model.uniform_weight) * kt + model.uniform_weight / n
    return tables.coder_weights(tables.freqs_from_pmf(mass))


def _code_indices(coder, symbols: np.ndarray | None, total: int, model: IndexModel,
                  num_candidates: int, decode: bool) -> np.ndarray | None:
    """Encodes `symbols` int32 [total] (decode=False) or decodes `total`
    symbols (decode=True) with `coder`, under `model`."""
    what = "index section"
    if isinstance(model, UniformIndexModel):
        m = _coder.uniform(num_candidates)
        if decode:
            return _coder.guarded(what, lambda: coder.decode(m, total))
        coder.encode(symbols, m)
        return None
    if isinstance(model, TableIndexModel):
        m = _coder.categorical(tables.coder_weights(tables.freqs_from_pmf(model.probs)))
        if decode:
            return _coder.guarded(what, lambda: coder.decode(m, total))
        coder.encode(symbols, m)
        return None
    counts = np.zeros(num_candidates, np.int64)
    out = np.empty(total, np.int32) if decode else None
    for start, stop in _adaptive_refreshes(total, model.max_refresh):
        m = _coder.categorical(_adaptive_table(counts, model))
        if decode:
            chunk = _coder.guarded(what, lambda: coder.decode(m, stop - start))
            out[start:stop] = chunk
        else:
            chunk = symbols[start:stop]
            coder.encode(chunk, m)
        counts += np.bincount(chunk, minlength=num_candidates)
    return out


def encode_indices(layers: Sequence[LayerIndices], num_candidates: int,
                   model: IndexModel = UniformIndexModel()) -> bytes:
    """Codes the step counts and indices of all latent layers of one image.

    Args:
      layers: one `LayerIndices` per latent layer, in coding order.
      num_candidates: N, the number of candidates per step (2..2**24).
      model: the index distribution (default: uniform over N).

    Returns:
      The index section (layout in the module docstring).
    """
    _check_model(model, num_candidates)
    head = bytearray()
    _bytes.put_uvarint(head, (len(layers) << 2) | _KIND[type(model)])
    encoder = _coder.new_encoder()
    all_indices = []
    for i, layer in enumerate(layers):
        steps = np.asarray(layer.steps)
        idx = np.asarray(layer.indices)
        if steps.ndim != 1 or idx.ndim != 1:
            raise ValueError(f"layer {i}: steps and indices must be 1-D, got "
                             f"{steps.shape} and {idx.shape}")
        if steps.size and (steps.min() < 1 or not np.issubdtype(steps.dtype, np.integer)):
            raise ValueError(f"layer {i}: step counts must be integers >= 1")
        if idx.size != int(steps.sum()):
            raise ValueError(f"layer {i}: {idx.size} indices for {int(steps.sum())} steps")
        if idx.size and (idx.min() < 0 or idx.max() >= num_candidates):
            raise ValueError(f"layer {i}: indices must lie in [0, {num_candidates})")
        _bytes.put_uvarint(head, steps.size)
        if steps.size:
            lo, hi = int(steps.min()), int(steps.max())
            if hi - lo >= MAX_CANDIDATES:
                raise ValueError(f"layer {i}: step counts span {lo}..{hi}, wider than 2**24")
            _bytes.put_uvarint(head, lo - 1)
            _bytes.put_uvarint(head, hi - lo)
            if hi > lo:
                encoder.encode((steps - lo).astype(np.int32), _coder.uniform(hi - lo + 1))
        all_indices.append(idx.astype(np.int32))
    symbols = np.concatenate(all_indices) if all_indices else np.zeros(0, np.int32)
    if symbols.size:
        _code_indices(encoder, symbols, symbols.size, model, num_candidates, decode=False)
    return bytes(head) + _coder.finish(encoder)


def decode_indices(data: bytes, num_candidates: int,
                   model: IndexModel = UniformIndexModel()) -> list[LayerIndices]:
    """Inverse of `encode_indices`; raises FormatError on malformed input.

    Every count is checked against what the section's length can hold before
    anything is allocated or decoded.
    """
    _check_model(model, num_candidates)
    reader = _bytes.Reader(data, "index section")
    head = reader.uvarint("layer count", 1 << 40)
    num_layers, kind = head >> 2, head & 3
    if kind != _KIND[type(model)]:
        raise FormatError(
            f"index section was written with the {_KIND_NAME.get(kind, f'unknown ({kind})')} "
            f"index model, the reader uses the {_KIND_NAME[_KIND[type(model)]]} one")
    if num_layers > reader.remaining:
        raise FormatError(f"index section: {num_layers} layers declared, "
                          f"only {reader.remaining} bytes follow")
    headers = []
    for i in range(num_layers):
        blocks = reader.uvarint(f"layer {i} block count", 1 << 40)
        lo = width = 0
        if blocks:
            lo = reader.uvarint(f"layer {i} min steps", 1 << 40) + 1
            width = reader.uvarint(f"layer {i} step range", MAX_CANDIDATES - 1)
        headers.append((blocks, lo, width))
    payload_bits = 8 * reader.remaining + _SLACK_BITS
    max_indices = int(payload_bits / _min_bits_per_index(model, num_candidates))
    if sum(b for b, _, _ in headers) > max_indices or any(
            b and lo + w > max_indices for b, lo, w in headers):
        raise FormatError(
            f"index section: declared blocks/steps exceed what {reader.remaining} "
            f"payload bytes can hold (at most {max_indices} indices)")
    decoder = _coder.new_decoder(reader.rest(), "index section")
    all_steps = []
    for blocks, lo, width in headers:
        if width:
            offsets = _coder.guarded("index section", lambda: decoder.decode(
                _coder.uniform(width + 1), blocks))
            all_steps.append(offsets.astype(np.int64) + lo)
        else:
            all_steps.append(np.full(blocks, lo, np.int64))
    approx_total = sum(float(s.sum(dtype=np.float64)) for s in all_steps)
    total = int(sum(int(s.sum()) for s in all_steps)) if approx_total <= max_indices else -1
    if total < 0:
        total = math.ceil(approx_total)
    if total > max_indices:
        raise FormatError(f"index section: {total} indices declared, the payload "
                          f"holds at most {max_indices}")
    symbols = np.zeros(0, np.int32)
    if total:
        symbols = _code_indices(decoder, None, total, model, num_candidates, decode=True)
    out, start = [], 0
    for steps in all_steps:
        stop = start + int(steps.sum())
        out.append(LayerIndices(steps, symbols[start:stop].astype(np.int64)))
        start = stop
    return out
