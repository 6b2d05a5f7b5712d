"""BB-ANS (HiLLoC-style bits-back) baseline on the bundled held-out photos:
single-image and amortized bits/dim from real bytes, against the model's
negative ELBO, for a sweep of the latent discretization ``bits`` (2**bits
equal-prior-mass bins per latent dim).

Images: ``irec_jax/assets/images`` (sporco photos, see its README), the
eight 32x32 crops and the four 64x64 downscaled photos; each group is also
chained into one sequence (in sorted file-name order) for the amortized rate.
"marginal" is the chained bytes minus the first image's single file, over the
other images' dims: the rate once the initial bits are paid. With
``--repeats R`` the marginal comes from the group chained R times over (each
pass pops different bits, so different latents: a lower-noise estimate of the
expected marginal rate); single and amortized always use one pass.
"-ELBO" averages ``--elbo-samples`` posterior samples per image of the codec's
integer model (``irec_jax.analysis.elbo_samples``: the model BB-ANS and iREC
code with, recon under the coder's integer pixel tables). ``--random-init``:
a random float init converted to the integer form
(``irec_jax.models.integer.quantize``), as a sanity floor.

Run:  flock /tmp/irec-bench.lock python bench/bbans_bench.py [--model default|PATH]
      [--bits 2,4,6,8,10,12,14] [--repeats 1] [--elbo-samples 8] [--random-init]
      [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import jax
import numpy as np
from PIL import Image

import irec_jax.assets
from irec_jax import analysis, modelzoo
from irec_jax.baselines import (DEFAULT_BITS, bbans_decode_sequence, bbans_decode_single,
                                bbans_encode_sequence, bbans_encode_single, bbans_rates)


def load_groups() -> dict[str, list[np.ndarray]]:
    root = pathlib.Path(irec_jax.assets.__file__).parent / "images"
    groups: dict[str, list[np.ndarray]] = {"32x32": [], "64x64": []}
    for path in sorted(root.glob("*.png")):
        img = np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)
        groups[f"{img.shape[1]}x{img.shape[0]}"].append(img)
    return groups


def mean_nelbo(cm: modelzoo.CodecModel, images, samples: int) -> tuple[float, float, float]:
    """(-ELBO, recon, KL) bits/dim of ``cm``'s integer model, averaged over images
    and posterior samples (``analysis.elbo_samples``, seed 1234 + image index)."""
    rows = []
    for i, img in enumerate(images):
        recon, kl = analysis.elbo_samples(img, cm, samples, seed=1234 + i)
        rows.extend(zip((recon + kl) / img.size, recon / img.size, kl / img.size))
    return tuple(float(v) for v in np.mean(rows, axis=0))


def random_init_model(cm: modelzoo.CodecModel, seed: int = 0) -> modelzoo.CodecModel:
    """``cm``'s architecture with random float parameters, in integer form."""
    from irec_jax.models import RVAE
    from irec_jax.models.integer import quantize

    params = jax.tree.map(np.asarray, RVAE(cm.config).init(jax.random.key(seed)))
    return modelzoo.CodecModel(f"random-init-{seed}", cm.config, quantize(cm.config, params))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default",
                        help="'default' (bundled), a model folder or a train.py workdir")
    parser.add_argument("--random-init", action="store_true", help="random parameters, no checkpoint")
    parser.add_argument("--bits", default="2,4,6,8,10,12,14")
    parser.add_argument("--elbo-samples", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    cm = modelzoo.load_model(args.model)
    if args.random_init:
        cm, source = random_init_model(cm), "random init (integer form)"
    else:
        source = f"{cm.name} ({cm.ref.param_hash.hex()})"
    model, params = cm.model, cm.params
    print(f"model: {source}; jax {jax.__version__}, {jax.devices()[0].platform}")
    groups = load_groups()
    sweep = [int(b) for b in args.bits.split(",")]
    out = []
    for name, images in groups.items():
        nelbo, recon, kl = mean_nelbo(cm, images, args.elbo_samples)
        print(f"\n{name}: {len(images)} images; -ELBO {nelbo:.3f} bpd (recon {recon:.3f} + KL {kl:.3f}),"
              f" {args.elbo_samples} samples each")
        # Round trip and timing at the default bits (after a warm-up for compilation).
        bbans_encode_single(model, params, images[0], bits=DEFAULT_BITS)
        t0 = time.perf_counter()
        singles = [bbans_encode_single(model, params, im, bits=DEFAULT_BITS) for im in images]
        t_enc = (time.perf_counter() - t0) / len(images)
        t0 = time.perf_counter()
        ok = all(np.array_equal(bbans_decode_single(model, params, s, im.shape, bits=DEFAULT_BITS), im)
                 for s, im in zip(singles, images))
        t_dec = (time.perf_counter() - t0) / len(images)
        print(f"  bits={DEFAULT_BITS}: round trip {'bit-exact' if ok else 'FAILED'};"
              f" encode {t_enc:.3f} s/image, decode {t_dec:.3f} s/image")
        print(f"  {'bits':>4} {'single':>8} {'amortized':>9} {'marginal':>8} {'marg/-ELBO':>10}"
              f" {'seq bytes':>9} {'enc s':>6}")
        for bits in sweep:
            t0 = time.perf_counter()
            r = bbans_rates(model, params, images, bits=bits)
            dt = time.perf_counter() - t0
            marginal = r.marginal_bpd
            if args.repeats > 1:
                chain = bbans_encode_sequence(model, params, images * args.repeats, bits=bits)
                rest_dims = sum(im.size for im in images) * args.repeats - images[0].size
                marginal = 8.0 * (len(chain) - r.single_bytes[0]) / rest_dims
            if bits == DEFAULT_BITS:
                data = bbans_encode_sequence(model, params, images, bits=bits)
                seq = bbans_decode_sequence(model, params, data, [im.shape for im in images], bits=bits)
                ok = ok and all(np.array_equal(a, b) for a, b in zip(seq, images))
            print(f"  {bits:>4} {r.single_bpd:8.3f} {r.amortized_bpd:9.3f} {marginal:8.3f}"
                  f" {marginal / nelbo:10.3f} {r.sequence_bytes:9d} {dt:6.2f}")
            out.append({"group": name, "bits": bits, "single_bpd": r.single_bpd,
                        "amortized_bpd": r.amortized_bpd, "marginal_bpd": marginal,
                        "repeats": args.repeats,
                        "nelbo_bpd": nelbo, "recon_bpd": recon, "kl_bpd": kl,
                        "single_bytes": list(r.single_bytes), "sequence_bytes": r.sequence_bytes})
        if not ok:
            print("ROUND TRIP FAILED", file=sys.stderr)
            sys.exit(1)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
