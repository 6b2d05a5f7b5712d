"""Batched iREC encoding: M latent tensors of one shape in one search (``rec.encode_batch``)
against M ``rec.encode`` calls, on the latents of 32x32 images under the default model.

Images: the bundled held-out 32x32 crops and 32x32 crops of the bundled 64x64
photos, under the 8 flips/rotations of the square (distinct images, so
distinct latents), repeated if more are needed. Each layer's posteriors and
priors come from the model as ``codec._encode`` gets them (the state advanced
by the batch's own samples), computed once for all images; both coders then
code the same tensors.

Timing is warm, all in one run: the singles after one untimed pass over all
tensors (which compiles every shape they need), each batch after one untimed
call on the same tensors ("cold s": mostly compilation, except for the
largest M, which computing the latents already ran); then M single
encodes and one batch encode of the same M tensors alternate ``--repeats``
times and the best of each is kept. Prints seconds per tensor per layer and
in total (and tensors/s), the speedup batch over single, whether every batch
item decodes alone exactly to its z, how many codes equal the single
encoder's (a near-tie in float32 scoring may differ), and the batch's index
bits and log q/p over the single encoder's.

    python bench/rec_batch_bench.py                 # M = 1, 8, 32, 128 (a few minutes on 2 CPU cores)
    python bench/rec_batch_bench.py --sizes 1 8 --repeats 1
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np


def images(count: int) -> np.ndarray:
    """uint8 [count, 32, 32, 3]: distinct held-out 32x32 images (bundled crops, photo crops, their 8 symmetries)."""
    from irec_jax.benchmark.sets import bundled_sets

    base = []
    for s in bundled_sets():
        for img in s.images:
            h, w = img.shape[:2]
            base += [img[i:i + 32, j:j + 32] for i in range(0, h - 31, 32) for j in range(0, w - 31, 32)]
    base = [b.reshape(32, 32, -1) for b in base]
    base = [b if b.shape[-1] == 3 else np.repeat(b[..., :1], 3, axis=-1) for b in base]
    out = [np.rot90(b[:, ::-1] if flip else b, rot) for flip in (0, 1) for rot in range(4) for b in base]
    return np.stack([out[i % len(out)] for i in range(count)]).astype(np.uint8)


def latents(cm, pixels: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """Per layer (q_loc, q_scale, p_loc, p_scale) float [M, *S] of images [M, H, W, 3] (the state
    advanced by ``encode_batch``'s samples, as ``codec._encode`` does one image at a time)."""
    import jax.numpy as jnp

    from irec_jax import codec, rec

    model, params = cm.model, cm.params
    x = np.concatenate([codec.model_input(p, cm.image_channels) for p in pixels])
    acts = model.bottom_up(params, jnp.asarray(x))
    state = model.initial_state(params, x.shape)
    out = []
    for layer in range(model.num_layers):
        p = model.prior(params, state, layer)
        q = model.posterior(params, state, acts, layer)
        arrays = tuple(np.asarray(a) for a in (q.loc, q.scale, p.loc, p.scale))
        out.append(arrays)
        _, z, _ = rec.encode_batch(*arrays, cm.defaults, stream=layer)
        state = model.advance(params, state, jnp.asarray(z), layer)
    return out


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 32, 128], help="batch sizes M")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each (best is kept)")
    args = ap.parse_args()

    import jax

    from irec_jax import modelzoo, rec

    cm = modelzoo.load_model("default")
    settings = cm.defaults
    top = max(args.sizes)
    layers = latents(cm, images(top))
    print(f"# {platform.processor() or platform.machine()}, jax {jax.__version__} on {jax.default_backend()}, "
          f"{settings}")
    print(f"# {top} images 32x32; latent shape {layers[0][0].shape[1:]} per layer; "
          f"KL/tensor (nats) per layer: {', '.join(f'{np.mean(_kls(a)):.0f}' for a in layers)}")

    # One untimed pass of single encodes over all tensors compiles every shape they need; its
    # codes are the reference for the batches' rates.
    ref = [[rec.encode(*(a[m] for a in arrays), settings, stream=layer) for m in range(top)]
           for layer, arrays in enumerate(layers)]

    print(f"{'M':>4} {'layer':>5} {'single s/t':>11} {'batch s/t':>10} {'speedup':>8} {'cold s':>7} "
          f"{'exact':>6} {'same code':>10} {'bits b/s':>9} {'logqp b/s':>10}")
    for size in args.sizes:
        total_s = total_b = 0.0
        for layer, arrays in enumerate(layers):
            part = tuple(a[:size] for a in arrays)
            t = time.perf_counter()
            codes, z, _ = rec.encode_batch(*part, settings, stream=layer)  # untimed: compiles
            cold = time.perf_counter() - t
            # Singles and batch alternate, so that both see the same machine load.
            t_s, t_b = [], []
            for _ in range(args.repeats):
                t_s.append(_timed(lambda: [rec.encode(*(a[m] for a in part), settings, stream=layer)
                                           for m in range(size)]))
                t_b.append(_timed(lambda: rec.encode_batch(*part, settings, stream=layer)))
            t_s, t_b = min(t_s) / size, min(t_b) / size
            total_s, total_b = total_s + t_s, total_b + t_b
            # Every item decodes alone to its z; rates against the single encoder's codes.
            exact = all(np.array_equal(rec.decode(codes[m], part[2][m], part[3][m], settings, stream=layer), z[m])
                        for m in range(size))
            one = ref[layer][:size]
            same = sum(c == r[0] for c, r in zip(codes, one))
            bits = sum(c.ideal_bits for c in codes) / sum(r[0].ideal_bits for r in one)
            ratio = lambda zs: sum(rec.log_ratio(zs[m], *(a[m] for a in part)) for m in range(size))  # noqa: E731
            lr = ratio(z) / ratio([r[1] for r in one])
            print(f"{size:4d} {layer:5d} {t_s:11.4f} {t_b:10.4f} {t_s / t_b:7.2f}x "
                  f"{cold:7.2f} {str(exact):>6} {same:5d}/{size:<4d} {bits:9.4f} {lr:10.4f}")
        n = len(layers)
        print(f"{size:4d} {'all':>5} {total_s:11.4f} {total_b:10.4f} {total_s / total_b:7.2f}x   "
              f"tensors/s: single {n / total_s:.1f}, batch {n / total_b:.1f} "
              f"(images/s: {1 / total_s:.1f}, {1 / total_b:.1f})", flush=True)


def _kls(arrays) -> list[float]:
    from irec_jax import rec

    return [rec.kl_divergence(*(a[m] for a in arrays)) for m in range(arrays[0].shape[0])]


if __name__ == "__main__":
    main()
