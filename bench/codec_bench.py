"""The lossless codec on real images: file size split by section, against the model's ELBO and classical codecs.

For every image (by default the bundled held-out 32x32 crops and 64x64
photos, none of them in the default model's training set):

* bits/dim of the whole .irec file (real bytes), split into the header
  (magic, header, tile lengths, CRC: real bytes) and, within the coded
  streams, the exact codelengths of the latent step counts and indices and
  of the pixel residual, and the range coders' flush (the rest of the
  stream bytes: how each stream ends, a few bits; below zero where its last
  symbols are implied by the zero padding, docs/format.md section 4);
* the model's negative ELBO of the same image (Monte Carlo over posterior
  samples: an estimate, shown with its standard error) and file / ELBO,
  and where the encoder refines the posteriors (``--refine``; by default on
  images up to 128x128) the same estimate of the refined posteriors it codes
  ("rnelbo") and file / that: the coder's own overhead. A file may fall
  below the network's ELBO: refinement finds a better posterior for the image;
* PNG, WebP lossless and JPEG XL lossless of the same image, in the same run,
  each decoded and checked;
* encode and decode seconds, warm (one untimed round trip per image size
  first, which is mostly JIT compilation), and the bit-exact check.

    python bench/codec_bench.py                      # bundled images, default model
    python bench/codec_bench.py --images DIR --model PATH --json out.json
    python bench/codec_bench.py --refine 0           # the encoder network's posteriors as they are
    python bench/codec_bench.py --effort best        # the encoder's "best" preset (codec.EFFORTS)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np


def _load(args) -> list[tuple[str, np.ndarray]]:
    from irec_jax.benchmark.errors import EvalError
    from irec_jax.benchmark.sets import bundled_sets, load_png_folder

    try:
        sets = [load_png_folder(args.images, limit=args.limit or None)] if args.images else bundled_sets()
    except EvalError as e:
        sys.exit(f"codec_bench.py: error: {e}")
    return [(os.path.basename(i), img) for s in sets for i, img in zip(s.ids, s.images)][: args.limit or None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default", help="'default', a model folder or a train.py workdir")
    ap.add_argument("--images", default=None, help="folder of PNGs, recursive (default: the bundled images)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images")
    ap.add_argument("--samples", type=int, default=16, help="posterior samples for the ELBO estimate")
    ap.add_argument("--omega", type=float, default=None)
    ap.add_argument("--epsilon", type=float, default=None)
    ap.add_argument("--beams", type=int, default=None)
    ap.add_argument("--refine", type=int, default=None,
                    help="posterior refinement steps (default: the codec's, codec.REFINE_STEPS on images up to "
                         "codec.REFINE_PIXELS pixels; 0: off)")
    ap.add_argument("--effort", default="default", help="the encoder preset: fast, default or best (codec.EFFORTS); "
                    "--omega/--epsilon/--beams/--refine override it")
    ap.add_argument("--json", default=None, help="write the rows to this JSON file")
    args = ap.parse_args()

    import jax
    from tqdm import tqdm

    from irec_jax import analysis, codec, modelzoo
    from irec_jax.benchmark.classical import classical_codecs

    cm = modelzoo.load_model(args.model)
    try:
        codec.check_refine(args.refine)
        effort = codec.check_effort(args.effort)
    except ValueError as e:
        sys.exit(f"codec_bench.py: error: {e}")

    def settings_for(img):
        return codec.coder_settings(args.omega, args.epsilon, args.beams,
                                    base=codec.effort_settings(cm, img.shape, effort=effort))

    classical = classical_codecs(["PNG", "WebP", "JPEG-XL"])
    images = _load(args)
    warmed: set = set()
    rows = []
    for name, img in tqdm(images, desc="images", file=sys.stderr):
        settings = settings_for(img)
        if img.shape not in warmed:  # compile for this size outside the timings
            codec.decompress(codec.compress(img, model=cm, settings=settings, refine=args.refine, effort=effort),
                             model=cm)
            warmed.add(img.shape)
        data, rep = codec.compress_report(img, model=cm, settings=settings, refine=args.refine, effort=effort)
        t0 = time.perf_counter()
        out = codec.decompress(data, model=cm)
        dec_s = time.perf_counter() - t0
        elbo = analysis.estimate_elbo(img, model=cm, samples=args.samples)
        # the refined posteriors' ELBO (what the coder codes), where the file's tile was refined
        relbo = (analysis.estimate_elbo(img, model=cm, samples=args.samples, refine=rep.refine_steps)
                 if rep.refine_steps and rep.tiles == 1 else elbo)
        dims = img.size
        row = {
            "image": name, "shape": list(img.shape), "bytes": len(data),
            "omega": settings.omega, "epsilon": settings.epsilon, "beams": settings.beams,
            "bpd": 8 * len(data) / dims, "stored": rep.stored, "model_bytes": rep.model_bytes,
            "model_bpd": rep.model_bpd, "stored_bpd": 8 * rep.stored_bytes / dims,
            "header_bpd": 8 * rep.header_bytes / dims,
            "index_bpd": rep.index_bits / dims, "residual_bpd": rep.residual_bits / dims,
            "flush_bpd": rep.flush_bits / dims,
            "kl_bpd": sum(rep.kl_nats) / np.log(2) / dims,
            "elbo_bpd": elbo.total_bits / dims, "elbo_stderr_bpd": elbo.stderr_bits / dims,
            "over_elbo": 8 * len(data) / elbo.total_bits, "model_over_elbo": 8 * rep.model_bytes / elbo.total_bits,
            "refine_steps": rep.refine_steps, "refined_elbo_bpd": relbo.total_bits / dims,
            "model_over_refined_elbo": 8 * rep.model_bytes / relbo.total_bits,
            "exact": bool(np.array_equal(out, img)),
            "encode_s": rep.encode_seconds, "decode_s": dec_s,
        }
        for c in classical:
            b = c.encode(img)
            ok = np.array_equal(np.asarray(c.decode(b)).reshape(img.shape), img)
            row[c.name] = 8 * len(b) / dims if ok else float("nan")
        rows.append(row)

    names = [c.name for c in classical]
    head = (f"{'image':22s} {'bpd':>7s} {'model':>6s} {'hdr':>5s} {'index':>6s} {'resid':>6s} {'flush':>6s} {'nelbo':>6s} "
            f"{'/elbo':>6s} {'rnelbo':>6s} {'/relbo':>6s} " + " ".join(f"{n:>7s}" for n in names) + f" {'enc s':>6s} {'dec s':>6s} exact")
    coders = sorted({(r["omega"], r["epsilon"], r["beams"]) for r in rows})
    print(f"Lossless iREC codec, model {cm.name} ({cm.ref.param_hash.hex()}), effort {effort.name}, "
          + ", ".join(f"Omega {o:g} eps {e:g} B {b}" for o, e, b in coders)
          + f"; jax {jax.__version__} on {jax.default_backend()}, {platform.machine()}")
    print(head)
    for r in rows:
        print(f"{r['image']:22s} {r['bpd']:6.3f}{'s' if r['stored'] else ' '} {r['model_bpd']:6.3f} "
              f"{r['header_bpd']:5.3f} {r['index_bpd']:6.3f} "
              f"{r['residual_bpd']:6.3f} {r['flush_bpd']:6.3f} {r['elbo_bpd']:6.3f} {r['over_elbo']:6.3f} "
              f"{r['refined_elbo_bpd']:6.3f} {r['model_over_refined_elbo']:6.3f} "
              + " ".join(f"{r[n]:7.3f}" for n in names)
              + f" {r['encode_s']:6.2f} {r['decode_s']:6.2f} {'yes' if r['exact'] else 'NO'}")
    for label, sel in (("mean 32x32", lambda r: r["shape"][:2] == [32, 32]),
                       ("mean 64x64", lambda r: r["shape"][:2] == [64, 64]), ("mean all", lambda r: True)):
        group = [r for r in rows if sel(r)]
        if not group:
            continue
        m = {k: float(np.mean([r[k] for r in group]))
             for k in ("bpd", "model_bpd", "header_bpd", "index_bpd", "residual_bpd", "flush_bpd", "elbo_bpd", "over_elbo",
                       "refined_elbo_bpd", "model_over_refined_elbo", "encode_s", "decode_s", *names)}
        print(f"{label:22s} {m['bpd']:6.3f}  {m['model_bpd']:6.3f} {m['header_bpd']:5.3f} {m['index_bpd']:6.3f} "
              f"{m['residual_bpd']:6.3f} {m['flush_bpd']:6.3f} {m['elbo_bpd']:6.3f} {m['over_elbo']:6.3f} "
              f"{m['refined_elbo_bpd']:6.3f} {m['model_over_refined_elbo']:6.3f} "
              + " ".join(f"{m[n]:7.3f}" for n in names)
              + f" {m['encode_s']:6.2f} {m['decode_s']:6.2f} "
              + f"{sum(r['exact'] for r in group)}/{len(group)}, {sum(r['stored'] for r in group)} stored")
    print("bpd: 8 x file bytes / (H W C), s = the file fell back to the stored mode (PNG-filtered deflate, "
          "smaller than the model's coding); model: the model's own coding = header bytes + the streams' "
          "exact codelengths of latent indices (with step counts) and residual + flush; "
          "nelbo: the model's negative ELBO,\n"
          f"a {args.samples}-sample Monte Carlo estimate (mean standard error "
          f"{np.mean([r['elbo_stderr_bpd'] for r in rows]):.3f} bpd) of the encoder network's posteriors; "
          "/elbo: file bits over it; rnelbo: the same of the posteriors the coder codes, refined for the image "
          f"({max((r['refine_steps'] for r in rows), default=0)} Adam steps; = nelbo where not refined);\n"
          "/relbo: the model's coding over rnelbo (the coder's own overhead); "
          "PNG/WebP/JPEG-XL: lossless files of the same image, decoded and checked.")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"model": cm.name, "model_hash": cm.ref.param_hash.hex(), "rows": rows,
                       "num_stored": sum(r["stored"] for r in rows)}, f, indent=1)


if __name__ == "__main__":
    main()
