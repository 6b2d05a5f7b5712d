"""Bits-back coding with ANS (BB-ANS / HiLLoC style) of a hierarchical VAE.

The baseline iREC is compared against: the same model, the same pixel
tables, a different way of paying for the latents.

The model. The codec's own: an ``IntegerRVAE`` (``irec_jax.models.integer``)
with integer parameters, i.e. ``cm = modelzoo.load_model(...)`` and
``(cm.model, cm.params)``. Its priors and pixel likelihood are exact integer
arithmetic; its bottom-up pass and posteriors are float (encoder side).

Latents (``bbans_latents``). Each latent dimension of layer ``l`` is
discretized into ``2**bits`` bins of equal mass under that layer's conditional prior N(mu_p, sigma_p^2):
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

Stack order: model codecs composed on one ANS stack (``irec_jax.entropy``'s
push/pop pairs; :func:`image_codec` is the whole of bits-back). Encoder, per
image::

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

Initial bits, honestly paid (``bbans_stack``). constriction's ``AnsCoder``
pops symbol 0 from an empty stack without consuming anything (its state is
0): measured here, ``AnsCoder().decode(Categorical, w)`` returns zeros and
the stack stays empty. Coding from a truly empty stack would therefore pick the extreme
left bin of every latent (not a posterior sample) at no cost. Instead the
encoder starts on a fixed pseudo-random stack (SplitMix64 words,
``bbans_stack.seed_stream``) deep enough for every pop, and afterwards
strips the bottom words of the stack that no pop ever reached. What remains is the
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
``bits``. The file functions (:func:`encode_file`, :func:`encode_set_file`)
prepend the shapes: ``>HHB`` (H, W, C) before one image's bytes; for a set,
``>I`` count, one ``>HHB`` per image, then the sequence's bytes. Grayscale
(C = 1) works with a model built for 1 image channel.

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
import math
import struct
from typing import Any, Callable, Sequence

import jax.numpy as jnp
import numpy as np

from irec_jax import entropy
from irec_jax.baselines import bbans_latents as latent_codec
from irec_jax.baselines import bbans_stack
from irec_jax.errors import FormatError
from irec_jax.codec import pixel_params
from irec_jax.models.integer import IntegerRVAE

DEFAULT_BITS = 8
"""Default: ``2**8`` bins per latent dim. Measured (``bench/bbans_bench.py``,
small model at 4,000 steps, bundled photos): the marginal (post-initial-bits)
rate is flat within noise (+-0.01 bpd) from 6 to 12 bits and 1.5-3.5% worse at
3-4 bits; 8 keeps two bits of headroom over 6 for posteriors that are narrower
or further in the prior's tails, at a quarter of the table work of 10 bits and
~2.7 bpd less single-image cost per 2 bits saved (each bit costs one bit per
latent dim in the initial bits). Single images alone are smallest at 2-3 bits."""
MIN_BITS, MAX_BITS = 1, 16
SHAPE_FORMAT = ">HHB"  # (H, W, C) of an image in the file framing
COUNT_FORMAT = ">I"  # images in a set file

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
# Bits-back: model codecs composed on one stack.


@dataclasses.dataclass(frozen=True)
class Codec:
    """A (push, pop) pair over one ANS stack, craystack's shape:
    ``push(stack, value)``, then ``pop(stack)`` returns ``value``."""

    push: Callable[[Any, Any], None]
    pop: Callable[[Any], Any]


def image_codec(model: IntegerRVAE, params: Any, shape: ImageShape, bits: int,
                after_pops: Callable[[], None] = lambda: None) -> Codec:
    """BB-ANS of one image uint8 ``shape`` under the hierarchical VAE.
    ``after_pops`` runs when the encoder has popped all it will pop."""

    def push(stack, image: np.ndarray) -> None:
        x = jnp.asarray(image[None].astype(np.int32))  # as the codec feeds it
        acts, state, chosen = model.bottom_up(params, x), model.initial_state(params, x.shape), []
        for layer in range(model.num_layers):  # pop z_l ~ q(z_l | z_<l, x): the bits back
            prior = model.prior(params, state, layer)
            post = model.posterior(params, state, acts, layer)
            chosen.append(latent_codec.pop_posterior(stack, post, prior, bits))
            state = model.advance(params, state, latent_codec.latents(prior, chosen[-1], bits), layer)
        after_pops()
        entropy.push_pixels(stack, image, pixel_params(model.likelihood(params, state), shape))
        for bins in reversed(chosen):  # push z_l under the uniform prior over bins
            latent_codec.push_prior(stack, bins, bits)

    def pop(stack) -> np.ndarray:
        state, d, seen = model.initial_state(params, (1, *shape)), _latent_dims(model, shape), []
        for layer in range(model.num_layers):  # pop z_l ~ p(z_l | z_<l), top layer first
            prior = model.prior(params, state, layer)
            bins = latent_codec.pop_prior(stack, d, bits)
            seen.append((state, prior, bins))
            state = model.advance(params, state, latent_codec.latents(prior, bins, bits), layer)
        lik_x = pixel_params(model.likelihood(params, state), shape)
        image = entropy.pop_pixels(stack, lik_x, "bbans pixels")
        acts = model.bottom_up(params, jnp.asarray(image[None].astype(np.int32)))
        for layer in reversed(range(model.num_layers)):  # push the bits back under q
            state, prior, bins = seen[layer]
            latent_codec.push_posterior(stack, bins, model.posterior(params, state, acts, layer),
                                        prior, bits)
        return image

    return Codec(push, pop)


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
    seeded = bbans_stack.SeededStack(model.num_layers * sum(_latent_dims(model, im.shape) for im in imgs))
    sizes = []
    for im in imgs:
        image_codec(model, params, im.shape, bits, seeded.note_lowest).push(seeded.stack, im)
        sizes.append(seeded.size_words())
    return seeded.finish(), sizes


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
    stack = bbans_stack.open_stack(data)
    out: list[np.ndarray] = [None] * len(shapes)  # type: ignore[list-item]
    for i in reversed(range(len(shapes))):  # last image on top
        out[i] = image_codec(model, params, shapes[i], bits).pop(stack)
    bbans_stack.check_end(stack)
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


# ----------------------------------------------------------------------------
# Files: the shapes framed in front of the stack's bytes.


def _pack_shape(shape: Sequence[int]) -> bytes:
    if len(shape) != 3 or not (0 <= shape[0] < 1 << 16 and 0 <= shape[1] < 1 << 16 and 0 <= shape[2] < 256):
        raise ValueError(f"image shape {tuple(shape)} does not fit the file's (H, W, C) "
                         "header (H, W < 65536, C < 256)")
    return struct.pack(SHAPE_FORMAT, *shape)


def _unpack_shapes(data: bytes, start: int, count: int) -> list[ImageShape]:
    size = struct.calcsize(SHAPE_FORMAT)
    end = start + size * count
    if len(data) < end:
        raise FormatError(f"bbans file: truncated header ({len(data)} bytes, the {count} image "
                          f"shape(s) need {end})")
    return [struct.unpack_from(SHAPE_FORMAT, data, start + size * i) for i in range(count)]


def _file_shapes(model: IntegerRVAE, shapes: list[ImageShape]) -> list[ImageShape]:
    try:
        return [_check_shape(model, s) for s in shapes]
    except ValueError as err:
        raise FormatError(f"bbans file: header declares a shape this model cannot decode ({err})") from None


def encode_file(model: IntegerRVAE, params: Any, image: Any, bits: int = DEFAULT_BITS) -> bytes:
    """One image as a file: its (H, W, C) as ``>HHB``, then
    :func:`bbans_encode_single`'s bytes."""
    arr = np.asarray(image)
    if arr.ndim != 3:
        raise ValueError(f"image must have shape [H, W, C], got shape {arr.shape}")
    return _pack_shape(arr.shape) + bbans_encode_single(model, params, arr, bits=bits)


def decode_file(model: IntegerRVAE, params: Any, data: bytes, bits: int = DEFAULT_BITS) -> np.ndarray:
    """Inverse of :func:`encode_file`: uint8 [H, W, C]. FormatError for a
    truncated or corrupt file."""
    data = bytes(data)
    (shape,) = _file_shapes(model, _unpack_shapes(data, 0, 1))
    return bbans_decode_single(model, params, data[struct.calcsize(SHAPE_FORMAT):], shape, bits=bits)


def encode_set_file(model: IntegerRVAE, params: Any, images: Sequence[Any], bits: int = DEFAULT_BITS) -> bytes:
    """Images chained on one stack as a file: the count as ``>I``, each image's
    (H, W, C) as ``>HHB``, then :func:`bbans_encode_sequence`'s bytes."""
    payload = bbans_encode_sequence(model, params, images, bits=bits)  # validates the images
    head = struct.pack(COUNT_FORMAT, len(images)) + b"".join(
        _pack_shape(np.shape(im)) for im in images)
    return head + payload


def decode_set_file(model: IntegerRVAE, params: Any, data: bytes, bits: int = DEFAULT_BITS) -> list[np.ndarray]:
    """Inverse of :func:`encode_set_file`: the images, in order. FormatError
    for a truncated or corrupt file."""
    data = bytes(data)
    start = struct.calcsize(COUNT_FORMAT)
    if len(data) < start:
        raise FormatError(f"bbans file: truncated header ({len(data)} bytes, the image count needs {start})")
    (count,) = struct.unpack_from(COUNT_FORMAT, data)
    if count < 1:
        raise FormatError("bbans file: the header declares no images")
    shapes = _file_shapes(model, _unpack_shapes(data, start, count))
    return bbans_decode_sequence(model, params, data[start + struct.calcsize(SHAPE_FORMAT) * count:],
                                 shapes, bits=bits)
