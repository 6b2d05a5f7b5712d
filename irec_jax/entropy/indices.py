"""Coding of iREC's per-block step counts and candidate indices.

Per latent layer the coder produces `steps` (K_b >= 1 steps for each of the
layer's blocks) and `indices` (one index in [0, N) per step, block-major).
``push_layer`` / ``pop_layer`` put one layer on a range coder shared with
whatever else the stream holds (the codec: all layers, then the pixels, in
one stream per tile). Format 5 (``docs/format.md`` §2):

  count(num_blocks); if num_blocks > 0: count(min K_b - 1), count(max - min)
  if max > min: each K_b - min under the adaptive model over [0, max - min]
    (``AdaptiveIndexModel()``: uniform for the first 16 blocks, then the
    blocks' own counts), or uniform where max - min >= ``ADAPTIVE_STEP_WIDTH``
  the layer's indices in order, under the index model over [0, N)

where count(v) is an Elias-delta code of v + 1: its bit length l in Elias
gamma (floor(log2 l) zero bits, then l's bits), then the l - 1 bits of v + 1
below its leading one (``push_count``): 1 bit for 0, 4 for 1 or 2, 10 for
31..62. Format 4 (still read: ``version=4``) coded l uniformly over 41
values (5.36 bits) and every K_b - min uniformly. ``encode_indices`` writes
all layers as a section of their own (a varint of the layer count and index
model kind, then the stream).

N (`num_candidates`) is not stored: the decoder derives it from the coder
settings in the container header.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence, Union

import numpy as np

from irec_jax.entropy import _bytes, _coder, tables
from irec_jax.entropy.container import VERSION
from irec_jax.errors import FormatError
from irec_jax.settings import MAX_CANDIDATES
_SLACK_BITS = 64  # what a stream's shortest end may leave implied, and word padding, in bits (format.md §4).


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


def _adaptive_freqs(counts: np.ndarray, model: AdaptiveIndexModel) -> np.ndarray:
    """Integer frequencies [N] (summing to 2^24) from integer counts [N] (KT + uniform mix)."""
    n = counts.shape[0]
    kt = (counts + 0.5) / (counts.sum() + 0.5 * n)
    mass = (1.0 - model.uniform_weight) * kt + model.uniform_weight / n
    return tables.freqs_from_pmf(mass)


def _code_indices(coder, symbols: np.ndarray | None, total: int, model: IndexModel,
                  num_candidates: int, decode: bool, what: str = "index section") -> np.ndarray | None:
    """Encodes `symbols` int32 [total] (decode=False) or decodes `total`
    symbols (decode=True) with `coder`, under `model`."""
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
        m = _coder.categorical(tables.coder_weights(_adaptive_freqs(counts, model)))
        if decode:
            chunk = _coder.guarded(what, lambda: coder.decode(m, stop - start))
            out[start:stop] = chunk
        else:
            chunk = symbols[start:stop]
            coder.encode(chunk, m)
        counts += np.bincount(chunk, minlength=num_candidates)
    return out


def push_count(coder, value: int) -> None:
    """Pushes an integer 0 <= value < 2^40 onto a range coder (format 5): the
    Elias-delta code of v = value + 1, one uniform bit at a time for its
    prefix -- the bit length l of v in Elias gamma: floor(log2 l) zeros, then
    l's bits from its leading one -- then the l - 1 bits of v below its
    leading one, in pieces of at most 24 bits, most significant first.
    2 floor(log2 l) + l bits: 1 for 0, 4 for 1..2, 5 for 3..6, 10 for 31..62."""
    value = int(value)
    if not 0 <= value < _COUNT_LIMIT:
        raise ValueError(f"count {value} out of range [0, 2^40)")
    v = value + 1
    length = v.bit_length()
    prefix = length.bit_length() - 1
    bits = [0] * prefix + [(length >> i) & 1 for i in range(prefix, -1, -1)]
    _coder.push_uniform(coder, np.array(bits), 2)
    for width, piece in _count_pieces(v, length):
        _coder.push_uniform(coder, np.array([piece]), 1 << width)


def pop_count(coder, what: str, *, version: int = VERSION) -> int:
    """Inverse of ``push_count`` (``version`` 4: of format 4's count, the bit
    length uniform over 41 values); FormatError(what...) on corrupt data."""
    if version == 4:
        length = int(_coder.pop_uniform(coder, _COUNT_LENGTHS, 1, what)[0]) + 1
    else:
        prefix = 0
        while not int(_coder.pop_uniform(coder, 2, 1, what)[0]):
            prefix += 1
            if prefix > _MAX_PREFIX:
                raise FormatError(f"{what}: corrupt count (more than {_MAX_PREFIX} leading zero bits)")
        length = 1
        for _ in range(prefix):
            length = (length << 1) | int(_coder.pop_uniform(coder, 2, 1, what)[0])
        if length > _COUNT_LENGTHS:
            raise FormatError(f"{what}: corrupt count ({length}-bit value, at most {_COUNT_LENGTHS})")
    v = 1
    for width, _ in _count_pieces(1 << (length - 1), length):
        v = (v << width) | int(_coder.pop_uniform(coder, 1 << width, 1, what)[0])
    return v - 1


_COUNT_LIMIT = 1 << 40
_COUNT_LENGTHS = 41  # bit lengths of count + 1: 1..41
_MAX_PREFIX = _COUNT_LENGTHS.bit_length() - 1  # Elias gamma zeros before a length <= 41
ADAPTIVE_STEP_WIDTH = 1 << 12  # step counts spread wider than this are coded uniformly (format 5)
_STEP_MODEL = AdaptiveIndexModel()


def _count_pieces(v: int, length: int) -> list[tuple[int, int]]:
    """(bits, value) pieces of the length - 1 bits of v below its leading one."""
    out, rest = [], length - 1
    while rest > 0:
        bits = min(24, rest)
        rest -= bits
        out.append((bits, (v >> rest) & ((1 << bits) - 1)))
    return out


def _check_layer(layer: LayerIndices, num_candidates: int, i: int) -> tuple[np.ndarray, np.ndarray]:
    steps = np.asarray(layer.steps)
    idx = np.asarray(layer.indices)
    if steps.ndim != 1 or idx.ndim != 1:
        raise ValueError(f"layer {i}: steps and indices must be 1-D, got {steps.shape} and {idx.shape}")
    if steps.size and (not np.issubdtype(steps.dtype, np.integer) or steps.min() < 1):
        raise ValueError(f"layer {i}: step counts must be integers >= 1")
    if steps.size >= _COUNT_LIMIT or (steps.size and steps.max() >= _COUNT_LIMIT):
        raise ValueError(f"layer {i}: too many blocks or steps")
    if idx.size != int(steps.sum()):
        raise ValueError(f"layer {i}: {idx.size} indices for {int(steps.sum())} steps")
    if idx.size and (idx.min() < 0 or idx.max() >= num_candidates):
        raise ValueError(f"layer {i}: indices must lie in [0, {num_candidates})")
    if steps.size and int(steps.max()) - int(steps.min()) >= MAX_CANDIDATES:
        raise ValueError(f"layer {i}: step counts span {int(steps.min())}..{int(steps.max())}, wider than 2**24")
    return steps.astype(np.int64), idx.astype(np.int32)


def _step_offsets_adaptive(width: int, version: int) -> bool:
    """Whether a layer's K_b - min K_b (over [0, width]) go under the adaptive model."""
    return version >= 5 and width < ADAPTIVE_STEP_WIDTH


def push_layer(coder, layer: LayerIndices, num_candidates: int,
               model: IndexModel = UniformIndexModel(), *, index: int = 0) -> None:
    """Pushes one latent layer's step counts and indices onto a range coder
    (format 5):

      count(num_blocks); if num_blocks > 0: count(min K_b - 1), count(max K_b - min K_b)
      if max > min: each K_b - min over [0, max - min], adaptive (uniform if that is
        ``ADAPTIVE_STEP_WIDTH`` or wider)
      the indices, under the index model over [0, N)

    (``push_count`` codes the counts). ``index`` names the layer in errors.
    """
    _check_model(model, num_candidates)
    steps, idx = _check_layer(layer, num_candidates, index)
    push_count(coder, steps.size)
    if steps.size:
        lo, hi = int(steps.min()), int(steps.max())
        push_count(coder, lo - 1)
        push_count(coder, hi - lo)
        if hi > lo:
            offsets = (steps - lo).astype(np.int32)
            if _step_offsets_adaptive(hi - lo, VERSION):
                _code_indices(coder, offsets, offsets.size, _STEP_MODEL, hi - lo + 1, decode=False)
            else:
                _coder.push_uniform(coder, offsets, hi - lo + 1)
    if idx.size:
        _code_indices(coder, idx, idx.size, model, num_candidates, decode=False)


def pop_layer(coder, num_candidates: int, model: IndexModel = UniformIndexModel(), *,
              max_indices: int, what: str = "index data", version: int = VERSION) -> LayerIndices:
    """Inverse of ``push_layer`` (``version`` 4: of format 4's, whose counts
    and step offsets were uniform). ``max_indices`` bounds the blocks and steps
    a layer may declare (what the payload can hold): anything larger is a
    FormatError before it is allocated or decoded."""
    _check_model(model, num_candidates)
    blocks = pop_count(coder, what, version=version)
    if blocks > max_indices:
        raise FormatError(f"{what}: {blocks} blocks declared, the payload holds at most {max_indices} indices "
                          "(corrupt or truncated data)")
    if not blocks:
        return LayerIndices(np.zeros(0, np.int64), np.zeros(0, np.int64))
    lo = pop_count(coder, what, version=version) + 1
    width = pop_count(coder, what, version=version)
    if lo + width > max_indices or width >= MAX_CANDIDATES:
        raise FormatError(f"{what}: step counts {lo}..{lo + width} exceed what the payload can hold "
                          f"({max_indices} indices; corrupt or truncated data)")
    steps = np.full(blocks, lo, np.int64)
    if width and _step_offsets_adaptive(width, version):
        steps += _code_indices(coder, None, blocks, _STEP_MODEL, width + 1, decode=True, what=what)
    elif width:
        steps += _coder.pop_uniform(coder, width + 1, blocks, what)
    total = int(steps.sum())
    if total > max_indices:
        raise FormatError(f"{what}: {total} indices declared, the payload holds at most {max_indices} "
                          "(corrupt or truncated data)")
    symbols = np.zeros(0, np.int64)
    if total:
        symbols = _code_indices(coder, None, total, model, num_candidates, decode=True, what=what).astype(np.int64)
    return LayerIndices(steps, symbols)


def layer_bits(layer: LayerIndices, num_candidates: int) -> float:
    """The exact codelength in bits of ``push_layer`` with the uniform index
    model (what the range coder writes for it, less its share of the flush)."""
    steps, idx = _check_layer(layer, num_candidates, 0)
    bits = _count_bits(steps.size)
    if steps.size:
        lo, hi = int(steps.min()), int(steps.max())
        bits += _count_bits(lo - 1) + _count_bits(hi - lo)
        if _step_offsets_adaptive(hi - lo, VERSION):
            bits += _adaptive_bits(steps - lo, hi - lo + 1, _STEP_MODEL)
        else:
            bits += steps.size * math.log2(hi - lo + 1)
    return bits + idx.size * math.log2(num_candidates)


def _count_bits(value: int) -> float:
    """``push_count``'s bits for ``value``."""
    length = (value + 1).bit_length()
    return 2 * (length.bit_length() - 1) + length


def _adaptive_bits(symbols: np.ndarray, num: int, model: AdaptiveIndexModel) -> float:
    """The exact codelength in bits of int [m] ``symbols`` over [0, num) under the adaptive model."""
    counts, bits = np.zeros(num, np.int64), 0.0
    for start, stop in _adaptive_refreshes(symbols.size, model.max_refresh):
        chunk = symbols[start:stop]
        bits += tables.table_bits(_adaptive_freqs(counts, model), chunk)
        counts += np.bincount(chunk, minlength=num)
    return bits


def max_indices(payload_bytes: int, num_candidates: int, model: IndexModel = UniformIndexModel()) -> int:
    """The most indices (or blocks) a payload of this many bytes can hold
    under ``model``: a bound for ``pop_layer``."""
    bits = 8 * payload_bytes + _SLACK_BITS
    return int(bits / _min_bits_per_index(model, num_candidates))


def encode_indices(layers: Sequence[LayerIndices], num_candidates: int,
                   model: IndexModel = UniformIndexModel()) -> bytes:
    """Codes the step counts and indices of all latent layers of one image as
    a section of its own: varint (num_layers << 2) | index_model_kind
    (0 uniform, 1 table, 2 adaptive), then one range-coded stream of
    ``push_layer`` for each layer. (The codec puts the layers on the same
    stream as the pixels instead.)"""
    _check_model(model, num_candidates)
    head = bytearray()
    _bytes.put_uvarint(head, (len(layers) << 2) | _KIND[type(model)])
    encoder = _coder.new_encoder()
    for i, layer in enumerate(layers):
        push_layer(encoder, layer, num_candidates, model, index=i)
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
    bound = max_indices(reader.remaining, num_candidates, model)
    if num_layers > 8 * reader.remaining + _SLACK_BITS:  # an empty layer takes > 5 bits
        raise FormatError(f"index section: {num_layers} layers declared, "
                          f"only {reader.remaining} bytes follow")
    decoder = _coder.new_decoder(reader.rest(), "index section")
    out, total = [], 0
    for i in range(num_layers):
        layer = pop_layer(decoder, num_candidates, model, max_indices=bound - total, what="index section")
        total += layer.indices.size
        out.append(layer)
    return out
