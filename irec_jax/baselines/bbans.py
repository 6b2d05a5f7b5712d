"""Bits-back coding with ANS (BB-ANS / HiLLoC style) of a hierarchical VAE.

The baseline iREC is compared against: the same model, the same pixel
tables, a different way of paying for the latents.

The model. The codec's own: an ``IntegerRVAE`` (``irec_jax.models.integer``)
with integer parameters, i.e. ``cm = modelzoo.load_model(...)`` and
``(cm.model, cm.params)``. Its priors and pixel likelihood are exact integer
arithmetic; its bottom-up pass and posteriors are float (encoder side).

Latents. Each latent dimension of layer ``l`` is discretized into ``2**bits``
bins of equal mass under that layer's conditional prior N(mu_p, sigma_p^2):
bin ``j`` is ``[mu_p + sigma_p t_j, mu_p + sigma_p t_{j+1})`` with
``t_j = Phi^-1(j / 2**bits)``. The latent fed to the model is the bin's
centre, placed exactly as the iREC decoder places its samples: the
standardized value ``n_j = Q[((2j + 1) << 16) >> (bits + 1)]`` (Q =
``irec_jax.exact.tables.normal_quantiles()``, int32 in units 2^-16, so
``n_j`` is Phi^-1 at about ``(j + 1/2) / 2**bits``), then
``z_j = rec.from_standard(n_j, mu_p, sigma_p)`` (integer affine map onto the
decoder's 2^-10 grid). The centres are therefore integer arithmetic end to
end, identical on every machine. The prior over bins is uniform (``bits``
bits per dimension); the posterior over bins is q's CDF at the bin edges
(float64, ``scipy.special.ndtr``/``ndtri``), quantized by
``irec_jax.entropy.tables.floor_cumulative`` to 24-bit integer frequencies
(every bin >= 1).

Stack order (constriction ``AnsCoder``; "pop" = ``decode``, "push" =
``encode_reverse``). Encoder, per image::

    pop q(j_0 | x), advance, pop q(j_1 | j_0, x), ..., pop q(j_{L-1} | ...)
    push x under p(x | z)             (the residual coder's two-level tables)
    push j_{L-1}, ..., push j_0        (uniform over 2**bits)

The decoder runs the exact reverse: pop j_0 ... j_{L-1} (top layer first,
each prior from the layers above), pop x, then push the posterior bins back,
bottom layer first, which restores the bits the encoder popped. Within a
layer, latent dims go in raster order ``[h, w, Z]`` (in chunks of at most
``2**22 / 2**bits`` dims for the posterior tables); pixels in the chunks,
order and integer two-level tables of :class:`irec_jax.entropy.PixelTables`
(the codec's residual tables, from the model's ``QuantizedLogistic``).

Initial bits, honestly paid. constriction's ``AnsCoder`` pops symbol 0 from
an empty stack without consuming anything (its state is 0): measured here,
``AnsCoder().decode(Categorical, w)`` returns zeros and the stack stays
empty. Coding from a truly empty stack would therefore pick the extreme
left bin of every latent (not a posterior sample) at no cost. Instead the
encoder starts on a fixed pseudo-random stack (SplitMix64 words,
:func:`_seed_stream`) deep enough for every pop, and afterwards strips the
bottom words of the stack that no pop ever reached. What remains is the
file: the decoder needs nothing else (it never reads below the encoder's
lowest point). The seed bits the first image pops buy no credit: they are
the "initial bits", and the single-image file costs about
``-log2 p(x | z) + bits * D_latent`` bits, the HiLLoC single-image figure.
After decoding, the stack left over must equal the top of the seed stream;
a mismatch raises ``FormatError`` (a free integrity check: wrong bytes,
wrong ``bits``, wrong shape or wrong parameters all end up there).

A sequence is chained on one stack, image 0 first; later images pop bits the
earlier ones pushed (the bits-back saving). The decoder pops them in reverse
(last image first). A single image is a sequence of one.

Bytes: the stack's uint32 words, bottom first, little-endian, trailing zero
bytes dropped. No header: the decoder is given the image shapes and
``bits``. Grayscale (C = 1) works with a model built for 1 image channel.

Portability. Everything that determines the pixels of the *last* image of a
file (the uniform latent pops, the bin centres, the integer model's priors
and likelihood, the pixel tables) is exact integer arithmetic. The posterior
tables are not: the decoder recomputes q (float bottom-up pass and
posteriors) to push the popped bits back, and those pushes are what the
earlier images of a sequence, and the final initial-bits check, read. Same
machine and jax/jaxlib build: bit-exact (tested). Across machines whose float
results differ, a sequence's earlier images, and the check, can fail
(FormatError or wrong pixels); a bits-back file is a baseline's measurement,
not an archival format.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Sequence

import constriction
import jax.numpy as jnp
import numpy as np
from scipy import special

from irec_jax import entropy, rec
from irec_jax.entropy import _coder, residual, tables
from irec_jax.errors import FormatError
from irec_jax.exact.tables import NORMAL_BITS, normal_quantiles
from irec_jax.models import likelihoods as lik
from irec_jax.models.integer import IntegerRVAE
from irec_jax.models.interface import Gaussian

DEFAULT_BITS = 8
"""Default: ``2**8`` bins per latent dim. Measured (``bench/bbans_bench.py``,
small model at 4,000 steps, bundled photos): the marginal (post-initial-bits)
rate is flat within noise (+-0.01 bpd) from 6 to 12 bits and 1.5-3.5% worse at
3-4 bits; 8 keeps two bits of headroom over 6 for posteriors that are narrower
or further in the prior's tails, at a quarter of the table work of 10 bits and
~2.7 bpd less single-image cost per 2 bits saved (each bit costs one bit per
latent dim in the initial bits). Single images alone are smallest at 2-3 bits."""
MIN_BITS, MAX_BITS = 1, 16
_TABLE_ENTRIES = 1 << 22  # latent dims per posterior-table chunk times 2**bits
_POP_BITS_MAX = tables.PRECISION  # one pop consumes at most 24 bits (every frequency >= 1)
_SEED_KEY = 0x1E7C_BB05_A115_0001  # SplitMix64 seed of the initial-bits stream (format constant)

ImageShape = tuple[int, int, int]


# ----------------------------------------------------------------------------
# Inputs.


def _check_bits(bits: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not (
            MIN_BITS <= bits <= MAX_BITS):
        raise ValueError(f"bits must be an int in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")
    return int(bits)


def _check_model(model: Any) -> None:
    if not isinstance(model, IntegerRVAE):
        raise TypeError("BB-ANS codes with the codec's integer model (modelzoo.load_model(...): "
                        f"its .model and .params), got {type(model).__name__}")


def _check_shape(model: IntegerRVAE, shape: Sequence[int]) -> ImageShape:
    _check_model(model)
    try:
        shape = tuple(int(d) for d in shape)
    except (TypeError, ValueError) as err:
        raise ValueError(f"image shape must be (H, W, C), got {shape!r}") from err
    c = model.config.image_channels
    if len(shape) != 3 or shape[2] != c or min(shape) < 1:
        raise ValueError(f"image shape must be (H, W, {c}) for this model, got {shape}")
    if shape[0] % 2 or shape[1] % 2:
        raise ValueError(f"image height and width must be even, got shape {shape}")
    return shape


def _check_image(model: IntegerRVAE, image: Any) -> np.ndarray:
    """An image as uint8 [H, W, C]; ValueError quoting the shape otherwise."""
    arr = np.asarray(image)
    _check_shape(model, arr.shape)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"image must hold integer levels 0..255, got dtype {arr.dtype} "
                         f"with shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError(f"image levels must be in 0..255, got {arr.min()}..{arr.max()} "
                         f"with shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _latent_dims(model: IntegerRVAE, shape: ImageShape) -> int:
    """Latent dims of one layer for one image of ``shape``."""
    return math.prod(model.latent_shape((1, *shape), 0))


# ----------------------------------------------------------------------------
# The initial-bits stream and bytes.


def _seed_stream(n: int) -> np.ndarray:
    """The first ``n`` words (uint32 [n]) of the initial-bits stream (SplitMix64,
    low then high half of each output). Word 0 (the top of the stack) is odd, so
    the stack never ends in a zero word."""
    m = (n + 1) // 2
    with np.errstate(over="ignore"):
        z = np.uint64(_SEED_KEY) + np.arange(1, m + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    words = z.astype("<u8").view("<u4").astype(np.uint32)[:n]
    if n:
        words[0] |= np.uint32(1)
    return words


def _seed_stack(n: int) -> np.ndarray:
    """A stack of ``n`` seed words, bottom first: its top is stream word 0."""
    return np.ascontiguousarray(_seed_stream(n)[::-1])


def _to_bytes(words: np.ndarray) -> bytes:
    return np.asarray(words, dtype="<u4").tobytes().rstrip(b"\0")


def _from_bytes(data: bytes) -> np.ndarray:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    data += b"\0" * (-len(data) % 4)
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


# ----------------------------------------------------------------------------
# Latent bins.


@functools.lru_cache(maxsize=None)
def _bin_edges(bits: int) -> np.ndarray:
    """Standard-normal inner edges of ``2**bits`` equal-mass bins: float64
    [2**bits - 1], Phi^-1(j / 2**bits) for j = 1 .. 2**bits - 1 (read-only)."""
    n = 1 << bits
    edges = special.ndtri(np.arange(1, n, dtype=np.float64) / n)
    edges.setflags(write=False)
    return edges


@functools.lru_cache(maxsize=None)
def _bin_centres(bits: int) -> np.ndarray:
    """Standardized bin centres int32 [2**bits] in units 2^-16 (exact, from the
    shipped quantile table): Q[((2j + 1) << 16) >> (bits + 1)], i.e. Phi^-1 at
    about (j + 1/2) / 2**bits (read-only)."""
    j = np.arange(1 << bits, dtype=np.int64)
    centres = normal_quantiles()[((2 * j + 1) << NORMAL_BITS) >> (bits + 1)].astype(np.int32)
    centres.setflags(write=False)
    return centres


def _flat64(g: Gaussian) -> tuple[np.ndarray, np.ndarray]:
    """(loc, scale) of a one-image Gaussian [1, h, w, Z] as float64 [D] (raster order)."""
    return np.asarray(g.loc, np.float64).reshape(-1), np.asarray(g.scale, np.float64).reshape(-1)


def _latents(prior: Gaussian, bins: np.ndarray, bits: int) -> jnp.ndarray:
    """The bins' centres as the float32 z [1, h, w, Z] fed to the model: exactly
    what the iREC decoder forms for the standardized values (``rec.from_standard``)."""
    loc, scale = np.asarray(prior.loc), np.asarray(prior.scale)
    n = _bin_centres(bits)[np.asarray(bins, np.int64)].reshape(loc.shape)
    return jnp.asarray(rec.from_standard(n, loc, scale))


def _latent_chunks(n: int, bits: int) -> list[tuple[int, int]]:
    rows = max(1, _TABLE_ENTRIES >> bits)
    return [(s, min(n, s + rows)) for s in range(0, n, rows)]


def _posterior_weights(post: Gaussian, prior: Gaussian, bits: int, start: int,
                       stop: int) -> np.ndarray:
    """Coder weights float32 [stop - start, 2**bits] of q over the prior's bins
    for latent dims ``start:stop`` (raster order)."""
    q_loc, q_scale = (a[start:stop] for a in _flat64(post))
    p_loc, p_scale = (a[start:stop] for a in _flat64(prior))
    edges = _bin_edges(bits)
    n = 1 << bits
    cdf = np.empty((stop - start, n + 1))
    cdf[:, 0] = 0.0
    cdf[:, -1] = 1.0
    # (mu_p + sigma_p t - mu_q) / sigma_q, standardized under q
    u = cdf[:, 1:-1]
    np.multiply((p_scale / q_scale)[:, None], edges[None, :], out=u)
    u += ((p_loc - q_loc) / q_scale)[:, None]
    special.ndtr(u, out=u)
    # tables.freqs_from_cdf's quantizer; coder weights are frequency - 1, i.e.
    # the differences of the floored cumulative counts (no padding symbol: the
    # encoder pops these tables from arbitrary bits, so every symbol must be a bin).
    cum = tables.floor_cumulative(cdf, (1 << tables.PRECISION) - n)
    return np.diff(cum, axis=-1).astype(np.float32)


# ----------------------------------------------------------------------------
# Pixels (the codec's integer residual tables, on the ANS stack).


def _pixel_tables(dist: Any) -> entropy.PixelTables:
    """The integer model's likelihood for one image [1, H, W, C] as the codec's
    pixel tables (the conversion ``irec_jax.codec`` makes, uncropped)."""
    if not isinstance(dist, lik.QuantizedLogistic):
        raise TypeError(f"BB-ANS codes pixels under the integer model's QuantizedLogistic, "
                        f"got {type(dist).__name__}")
    return entropy.PixelTables(entropy.QuantizedLogistic(np.asarray(dist.loc)[0],
                                                         np.asarray(dist.inv_scale)[0]))


def _push_pixels(coder, family, pixels: np.ndarray, pt: entropy.PixelTables) -> None:
    x = pixels.reshape(-1).astype(np.int64)
    for start, stop in reversed(list(pt.chunks())):
        group, offset = np.divmod(x[start:stop], residual.GROUP)
        w1, cdf1 = pt.groups(start, stop)
        coder.encode_reverse(offset.astype(np.int32), family, pt.offsets(start, stop, cdf1, group))
        coder.encode_reverse(group.astype(np.int32), family, w1)


def _pop_level(coder, family, weights: np.ndarray) -> np.ndarray:
    symbols = _coder.guarded("bbans pixels", lambda: coder.decode(family, weights))
    if symbols.size and symbols.max() >= residual.GROUP:
        raise FormatError("bbans pixels: corrupt coded data (decoded the padding symbol)")
    return symbols.astype(np.int64)


def _pop_pixels(coder, family, pt: entropy.PixelTables) -> np.ndarray:
    out = np.empty(pt.size, np.uint8)
    for start, stop in pt.chunks():
        w1, cdf1 = pt.groups(start, stop)
        group = _pop_level(coder, family, w1)
        offset = _pop_level(coder, family, pt.offsets(start, stop, cdf1, group))
        out[start:stop] = group * residual.GROUP + offset
    return out.reshape(pt.shape)


# ----------------------------------------------------------------------------
# One image on a shared stack.


def _encode_onto(coder, model: IntegerRVAE, params: Any, image: np.ndarray, bits: int) -> int:
    """Codes ``image`` uint8 [H, W, C] onto ``coder``; returns the number of
    bottom words of the stack its pops left untouched."""
    family = _coder.categorical_family()
    x = jnp.asarray(image[None].astype(np.int32))  # as the codec feeds it
    acts = model.bottom_up(params, x)
    state = model.initial_state(params, x.shape)
    chosen = []
    for layer in range(model.num_layers):
        prior = model.prior(params, state, layer)
        post = model.posterior(params, state, acts, layer)
        d = prior.loc.size
        bins = np.empty(d, np.int32)
        for start, stop in _latent_chunks(d, bits):
            w = _posterior_weights(post, prior, bits, start, stop)
            bins[start:stop] = coder.decode(family, w)
        state = model.advance(params, state, _latents(prior, bins, bits), layer)
        chosen.append(bins)
    untouched = coder.num_words() - 2  # below the two words of the ANS head
    _push_pixels(coder, family, image, _pixel_tables(model.likelihood(params, state)))
    uniform = constriction.stream.model.Uniform(1 << bits)
    for bins in reversed(chosen):
        coder.encode_reverse(bins, uniform)
    return untouched


def _decode_from(coder, model: IntegerRVAE, params: Any, shape: ImageShape, bits: int) -> np.ndarray:
    """Pops one image of ``shape`` off ``coder`` and pushes its posterior bits back."""
    family = _coder.categorical_family()
    uniform = constriction.stream.model.Uniform(1 << bits)
    state = model.initial_state(params, (1, *shape))
    d = _latent_dims(model, shape)
    states, priors, chosen = [], [], []
    for layer in range(model.num_layers):
        prior = model.prior(params, state, layer)
        bins = _coder.guarded("bbans latents", lambda: coder.decode(uniform, d))
        states.append(state)
        priors.append(prior)
        chosen.append(bins)
        state = model.advance(params, state, _latents(prior, bins, bits), layer)
    pixels = _pop_pixels(coder, family, _pixel_tables(model.likelihood(params, state)))
    acts = model.bottom_up(params, jnp.asarray(pixels[None].astype(np.int32)))
    for layer in reversed(range(model.num_layers)):
        post = model.posterior(params, states[layer], acts, layer)
        for start, stop in reversed(_latent_chunks(d, bits)):
            w = _posterior_weights(post, priors[layer], bits, start, stop)
            sym = np.ascontiguousarray(chosen[layer][start:stop], dtype=np.int32)
            _coder.guarded("bbans latents", lambda: coder.encode_reverse(sym, family, w))
    return pixels


# ----------------------------------------------------------------------------
# Public API.


def _encode(model: IntegerRVAE, params: Any, images: Sequence[Any], bits: int) -> tuple[bytes, list[int]]:
    """The chained stack's bytes and, after each image, the file size in words."""
    bits = _check_bits(bits)
    if isinstance(images, np.ndarray) and images.ndim == 3:
        raise ValueError(f"images must be a sequence of [H, W, C] images, got one array of "
                         f"shape {images.shape} (use bbans_encode_single)")
    imgs = [_check_image(model, im) for im in images]
    if not imgs:
        raise ValueError("images must hold at least one image")
    pops = model.num_layers * sum(_latent_dims(model, im.shape) for im in imgs)
    n_seed = -(-pops * _POP_BITS_MAX // 32) + 4
    seed = _seed_stack(n_seed)
    coder = constriction.stream.stack.AnsCoder(seed)
    lowest, sizes = n_seed, []
    for im in imgs:
        lowest = min(lowest, _encode_onto(coder, model, params, im, bits))
        sizes.append(coder.num_words() - lowest)
    final = coder.get_compressed()
    if lowest < 0 or not np.array_equal(final[:lowest], seed[:lowest]):
        raise RuntimeError("bbans: the initial-bits stack was too shallow (internal error)")
    return _to_bytes(final[lowest:]), sizes


def bbans_encode_sequence(model: IntegerRVAE, params: Any, images: Sequence[Any], *,
                          bits: int = DEFAULT_BITS) -> bytes:
    """Codes ``images`` (each uint8 [H_i, W_i, C], H_i and W_i even) on one ANS stack.

    Image 0 is pushed first and pays the initial bits; each later image pops
    bits the earlier ones pushed. Returns the whole stack as bytes (no header).
    Raises ValueError for a bad image, an empty sequence or bad ``bits``.
    """
    return _encode(model, params, images, bits)[0]


def bbans_decode_sequence(model: IntegerRVAE, params: Any, data: bytes, shapes: Sequence[Sequence[int]],
                          *, bits: int = DEFAULT_BITS) -> list[np.ndarray]:
    """Inverse of :func:`bbans_encode_sequence`: a list of uint8 [H_i, W_i, C] in
    the encoder's order, given the images' ``shapes`` [(H_i, W_i, C)] and ``bits``.

    Raises ValueError for bad shapes/bits and ``irec_jax.FormatError`` for data
    that does not decode back to the initial-bits stack (corrupt or truncated
    bytes, or the wrong shapes, bits or parameters).
    """
    bits = _check_bits(bits)
    shapes = [_check_shape(model, s) for s in shapes]
    if not shapes:
        raise ValueError("shapes must hold at least one image shape")
    words = _from_bytes(data)
    coder = _coder.guarded("bbans stream", lambda: constriction.stream.stack.AnsCoder(words))
    out: list[np.ndarray] = [None] * len(shapes)  # type: ignore[list-item]
    for i in reversed(range(len(shapes))):
        out[i] = _decode_from(coder, model, params, shapes[i], bits)
    rest = coder.get_compressed()
    # The encoder never strips the two head words, so at least two remain.
    if rest.shape[0] < 2 or not np.array_equal(rest, _seed_stack(rest.shape[0])):
        raise FormatError("bbans stream: corrupt coded data (decoding did not end on the "
                          "initial bits; wrong bytes, shapes, bits or model parameters)")
    return out


def bbans_encode_single(model: IntegerRVAE, params: Any, image: Any, *, bits: int = DEFAULT_BITS) -> bytes:
    """Codes one image uint8 [H, W, C] (H, W even) from an empty stack; the file
    pays its initial bits (about ``bits`` per latent dim). Returns bytes."""
    arr = np.asarray(image)
    if arr.ndim != 3:
        raise ValueError(f"image must have shape [H, W, C], got shape {arr.shape}")
    return _encode(model, params, [arr], bits)[0]


def bbans_decode_single(model: IntegerRVAE, params: Any, data: bytes, shape: Sequence[int], *,
                        bits: int = DEFAULT_BITS) -> np.ndarray:
    """Inverse of :func:`bbans_encode_single`: uint8 [H, W, C] of ``shape``.
    Raises FormatError for corrupt data (see :func:`bbans_decode_sequence`)."""
    return bbans_decode_sequence(model, params, data, [shape], bits=bits)[0]


@dataclasses.dataclass(frozen=True)
class BbansRates:
    """Rates from real coded bytes, for images of ``dims`` = H*W*C each.

    single_bytes[i]: image i coded alone (initial bits paid).
    sequence_bytes: all images chained on one stack, in order.
    prefix_bytes[i]: the chained stack's size after image i (in whole 4-byte
      words: the file, up to <= 3 trailing zero bytes, had the sequence ended there).
    """

    bits: int
    dims: tuple[int, ...]
    single_bytes: tuple[int, ...]
    sequence_bytes: int
    prefix_bytes: tuple[int, ...]

    @property
    def single_bpd(self) -> float:
        """Bits/dim of the images coded one by one (total bytes over total dims)."""
        return 8.0 * sum(self.single_bytes) / sum(self.dims)

    @property
    def amortized_bpd(self) -> float:
        """Bits/dim of the chained sequence: its bytes over all its dims."""
        return 8.0 * self.sequence_bytes / sum(self.dims)

    @property
    def marginal_bpd(self) -> float | None:
        """Bits/dim of images 1.. on top of image 0 (chained bytes minus image 0's
        single file, over the other images' dims); None for one image."""
        if len(self.dims) < 2:
            return None
        return 8.0 * (self.sequence_bytes - self.single_bytes[0]) / sum(self.dims[1:])


def bbans_rates(model: IntegerRVAE, params: Any, images: Sequence[Any], *, bits: int = DEFAULT_BITS,
                verify: bool = False) -> BbansRates:
    """Codes each image alone and all of them chained; returns :class:`BbansRates`.

    ``verify=True`` also decodes every file and raises RuntimeError unless each
    round trip is bit-exact (doubles the time).
    """
    imgs = [_check_image(model, im) for im in images]
    singles = [_encode(model, params, [im], bits)[0] for im in imgs]
    seq, sizes = _encode(model, params, imgs, bits)
    if verify:
        shapes = [im.shape for im in imgs]
        decoded = [bbans_decode_single(model, params, s, im.shape, bits=bits)
                   for s, im in zip(singles, imgs)]
        decoded_seq = bbans_decode_sequence(model, params, seq, shapes, bits=bits)
        for i, im in enumerate(imgs):
            if not (np.array_equal(decoded[i], im) and np.array_equal(decoded_seq[i], im)):
                raise RuntimeError(f"bbans: image {i} did not round-trip")
    return BbansRates(bits=_check_bits(bits), dims=tuple(im.size for im in imgs),
                      single_bytes=tuple(len(s) for s in singles), sequence_bytes=len(seq),
                      prefix_bytes=tuple(4 * s for s in sizes))
