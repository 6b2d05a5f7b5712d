"""Lossless image benchmark: codecs x image sets -> table, results.json, per-image rows, plots.

    python eval.py --suite quick                      # bundled 32x32 crops + 64x64 photos, every codec
    python eval.py --images DIR [--images NAME=DIR]   # folders of PNGs, one set each
    python eval.py --dataset cifar10 --split test --limit 100 [--data-dir DIR]   # prepared tfds data only
    python eval.py --suite quick --codecs PNG,JPEG-XL --out eval_out
    python eval.py --suite quick --effort best        # iREC's encoder at its "best" preset (fast|default|best)
    python eval.py --ablation [--grid default|full|coder] [--model PATH|default] [--images DIR] [--out DIR]
        # iREC over omega x (1+epsilon) x beams (x block_kl x final_choices x layer_choices):
        # ablation.json, ablation_table.txt, heatmaps
    python eval.py --ablation --omega 2,3 --one-plus-epsilon 1.0,1.2 --beams 1,10 --limit 2
    python eval.py --ablation --omega 3 --beams 20 --block-kl 50,200 --final-choices 1,20 --limit 2
    python eval.py --ablation --omega 6 --one-plus-epsilon 1.1 --beams 16 --final-choices 16 --layer-choices 1,16
    python eval.py --lossy --images DIR [--codecs JPEG-420,WebP,JPEG-XL] [--bd-anchor JPEG-420] --out DIR
        # classical lossy codecs swept over quality: compressai/<codec>.json, lossy_results.json,
        # lossy_rows.csv, lossy_table.txt, RD plots (PSNR / MS-SSIM dB vs bpp), BD table
    python eval.py --lossy --suite quick              # bundled 32x32 / 64x64 images: PSNR only
    python eval.py --lossy --lossy-model PATH [--lossy-model PATH2 ...] [--refine N] [--feedback N] [--effort fast]
        --images DIR --out DIR
        # plus iREC's curves, one rate point per lossy model (default: the bundled qualities):
        # "iREC" (real .irec files) and "iREC ideal" (an estimate: KL rate, one posterior sample),
        # BD of iREC against every classical codec, coded-vs-ideal gap per model; images under 64 px
        # on a side are left out of the iREC curves (the bundled 32x32 crops)
    python eval.py --ablation --lossy [--lossy-model PATH] [--grid default|small] [--refine N] [--feedback N|LIST]
        [--images DIR] --out DIR
        # lossy iREC over omega x (1+epsilon) x beams x final pick (1 or B): lossy_ablation.json,
        # lossy_ablation_table.txt (bpp, PSNR, dB gap to the ideal, seconds); default images: the
        # bundled 64x64 photos

A thin door to ``irec_jax.benchmark.suite.run_suite`` (rows: ``irec_jax.benchmark.rows``;
measurements: ``.runner``; output files: ``.report``); ``--ablation`` is a door to
``irec_jax.benchmark.ablation.ablate`` (default images: the first few bundled
32x32 crops; --images/--suite/--dataset/--limit pick others); ``--lossy`` is a door to
``irec_jax.benchmark.lossy_report.run_lossy_suite``; ``--ablation --lossy`` to
``irec_jax.benchmark.lossy_ablation.ablate``.
"""

from __future__ import annotations

import argparse
import sys


def parse_args(argv=None) -> argparse.Namespace:
    from irec_jax.codec import EFFORTS

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 1)[1])
    p.add_argument("--suite", choices=["quick"], help="bundled held-out images: crops32 and photos64")
    p.add_argument("--images", action="append", default=[], metavar="[NAME=]DIR",
                   help="a folder of PNGs (recursive) as one image set; repeatable")
    p.add_argument("--dataset", help="a prepared tfds dataset: cifar10, imagenet32 (never downloaded)")
    p.add_argument("--split", default="test", help="tfds split (default test; imagenet32's is validation)")
    p.add_argument("--data-dir", default=None, help="tfds data dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    p.add_argument("--limit", type=int, default=None, help="first N images of each folder / dataset")
    p.add_argument("--model", default="default", help="model for the model-based rows: 'default' or a PATH")
    p.add_argument("--codecs", default=None,
                   help="comma-separated subset of codec rows, e.g. PNG,WebP,JPEG-XL (default: all)")
    p.add_argument("--out", default="eval_out", help="output folder (default eval_out/)")
    p.add_argument("--batch", type=int, default=32,
                   help="iREC encodes images of one shape in batches of this many (one compiled program per "
                        "batch shape; per-image encode time = batch time / batch size); 1 codes image by image")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-warmup", action="store_true",
                   help="time the first image of each set too (default: one untimed warm-up encode/decode)")
    a = p.add_argument_group("ablation (--ablation)")
    a.add_argument("--ablation", action="store_true",
                   help="run the iREC ablation over omega, 1+epsilon, beams, block_kl, final_choices and "
                        "layer_choices instead of the codec benchmark")
    a.add_argument("--grid", choices=["default", "full", "coder", "small"], default=None,
                   help="default: omega 2,3,4 x 1+eps 1.0,1.2 x B 1,10,20 on 4 crops (~4 min on 2 CPU cores); "
                        "full: the paper's omega 2..6 x 1+eps 1.0,1.1,1.2,1.5 x B 1,10,50 on 8 crops (~1 h); "
                        "coder: the encoder's knobs at omega 3, B 20: 1+eps 1.0,1.1,1.2 x block_kl 50,200 x "
                        "final_choices 1,20 x layer_choices 1,20 on 4 crops (~3 min). block_kl, final_choices and "
                        "layer_choices default to the coder's (200, 1, 1) where a grid does not vary them. With --lossy: default: omega 2,3,4 x "
                        "1+eps 1.0,1.1,1.2 x B 1,10,20, each B with final_choices 1 and B (45 points); small: "
                        "omega 3 x 1+eps 1.0,1.2 x B 4 x final_choices 1,4 (4 points)")
    a.add_argument("--omega", default=None, metavar="LIST", help="override the grid's omegas, e.g. 2,3,4")
    a.add_argument("--one-plus-epsilon", default=None, metavar="LIST",
                   help="override the grid's 1+epsilon values, e.g. 1.0,1.2")
    a.add_argument("--beams", default=None, metavar="LIST", help="override the grid's beam widths, e.g. 1,10")
    a.add_argument("--block-kl", default=None, metavar="LIST",
                   help="override the grid's block_kl values (target nats per block, each >= every omega), "
                        "e.g. 50,100,200")
    a.add_argument("--final-choices", default=None, metavar="LIST",
                   help="override the grid's final_choices (last-layer beams compared by the pixels' codelength, "
                        "each <= every beam width), e.g. 1,20")
    a.add_argument("--layer-choices", default=None, metavar="LIST",
                   help="override the grid's layer_choices (every other layer's final beams compared by an estimate "
                        "of the rest of the file, each <= every beam width), e.g. 1,16")
    a.add_argument("--mc-samples", type=int, default=None,
                   help="posterior samples per image for the Monte Carlo ELBO (default 16)")
    a.add_argument("--seed", type=int, default=0, help="coder seed (shared randomness) and MC seed (default 0)")
    lo = p.add_argument_group("lossy (--lossy)")
    lo.add_argument("--lossy", action="store_true",
                    help="the lossy benchmark instead: classical codecs swept over quality (JPEG 4:2:0 / 4:4:4, WebP, "
                         "JPEG 2000, AVIF, JPEG XL, HEVC 4:4:4); bpp from real bytes, PSNR and MS-SSIM (images over "
                         "160 px) of the decoded images, BD figures; --codecs picks among these; plus iREC's curves "
                         "over the lossy models (--lossy-model). With --ablation: the lossy iREC ablation")
    lo.add_argument("--lossy-model", action="append", default=[], metavar="PATH",
                    help="a lossy model folder or train.py workdir for iREC's curves, one rate point each (points "
                         "ordered by measured bpp); repeatable (default: the bundled lossy qualities). With "
                         "--ablation: the one model to ablate")
    lo.add_argument("--bd-anchor", default=None, metavar="CODEC",
                    help="the curve every other one is compared with in the BD table (default JPEG-420)")
    p.add_argument("--refine", type=int, default=None, metavar="N",
                   help="posterior refinement steps per tile for iREC's files (and, with --lossy, its ideal); "
                        "default: the codec's (lossless: 50 on images up to 128x128, 0 above; lossy: the "
                        "effort's, 40 by default, for models whose card names their beta); 0: off")
    p.add_argument("--feedback", default=None, metavar="N",
                   help="lossy: the coder's error feedback steps before each of z1's parts after the first "
                        "(irec_jax.lossy.FEEDBACK_CHUNKS parts; default: the codec's, 10 where posteriors are "
                        "refined); 0: off. With --ablation --lossy a list is an axis of the grid, e.g. 0,10")
    p.add_argument("--effort", choices=tuple(EFFORTS), default=None,
                   help="the encoder preset for iREC's files (irec_jax.codec.EFFORTS; with --lossy "
                        "irec_jax.lossy.EFFORTS: fast or default; default: default)")
    return p.parse_args(argv)


# The ablation's grid axes, as argparse dests (--omega, --one-plus-epsilon, --beams, --block-kl, --final-choices,
# --layer-choices).
AXES = ("omega", "one_plus_epsilon", "beams", "block_kl", "final_choices", "layer_choices")


# The lossy ablation's axes (it pairs every B with final_choices 1 and B itself).
LOSSY_AXES = ("omega", "one_plus_epsilon", "beams")


def _ablation(args: argparse.Namespace) -> int:
    from irec_jax.benchmark import ablation, lossy_ablation
    from irec_jax.benchmark.errors import EvalError
    from irec_jax.benchmark.sets import load_sets

    try:
        if args.codecs is not None:
            raise EvalError("--codecs does not apply to --ablation (it codes with iREC only)")
        if not 0 <= args.seed < 2**32:
            raise EvalError(f"--seed must be in [0, 2^32), got {args.seed}")
        if args.lossy:
            refused = [f for f, v in (("--block-kl", args.block_kl), ("--final-choices", args.final_choices),
                                      ("--layer-choices", args.layer_choices), ("--mc-samples", args.mc_samples),
                                      ("--bd-anchor", args.bd_anchor))
                       if v is not None]
            if refused:
                raise EvalError(f"{', '.join(refused)} do(es) not apply to the lossy ablation (it compares "
                                "final_choices 1 and B itself)")
            if len(args.lossy_model) > 1:
                raise EvalError(f"the lossy ablation takes one --lossy-model, got {len(args.lossy_model)}")
        study, names = (lossy_ablation, LOSSY_AXES + ("feedback",)) if args.lossy else (ablation, AXES)
        grid_name = args.grid or "default"
        if grid_name not in study.GRIDS:
            raise EvalError(f"--grid {grid_name} is not a {'lossy' if args.lossy else 'lossless'} ablation grid "
                            f"(known: {', '.join(study.GRIDS)})")
        axes = dict(study.GRIDS[grid_name])
        for axis in names:
            text = getattr(args, axis)
            if text is not None:
                axes[axis] = ablation.parse_axis(text, axis)
        custom = any(getattr(args, a) is not None for a in names)
        make = lossy_ablation.make_lossy_grid if args.lossy else ablation.make_grid
        grid = make(**axes, name=f"{grid_name} (modified)" if custom else grid_name, seed=args.seed)
        mc = ablation.DEFAULT_MC_SAMPLES if args.mc_samples is None else args.mc_samples
        if mc < 2:
            raise EvalError(f"--mc-samples must be at least 2, got {mc}")
        if args.suite or args.images or args.dataset:
            sets = load_sets(args.suite, tuple(args.images), args.dataset, args.split, args.limit, args.data_dir,
                             progress=not args.no_progress)
        else:
            limit = args.limit if args.lossy or args.limit is not None else ablation.DEFAULT_LIMIT[grid_name]
            if limit is not None and limit < 1:
                raise EvalError(f"--limit must be at least 1, got {limit}")
            sets = study.default_sets(limit)
        common = dict(seed=args.seed, progress=not args.no_progress, warmup=not args.no_warmup)
        if args.lossy:
            lossy_ablation.ablate(grid, sets, args.lossy_model[0] if args.lossy_model else None, args.out,
                                  refine=args.refine, **common)
        else:
            ablation.ablate(grid, sets, args.model, args.out, mc_samples=mc, plots=not args.no_plots, **common)
    except EvalError as e:
        print(f"eval.py: error: {e}", file=sys.stderr)
        return 2
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    for flag, given in (("--bd-anchor", args.bd_anchor is not None), ("--lossy-model", bool(args.lossy_model))):
        if given and not args.lossy:
            print(f"eval.py: error: {flag} only applies with --lossy", file=sys.stderr)
            return 2
    if args.ablation and args.effort is not None:
        print("eval.py: error: --effort does not apply to --ablation (it sets the coder's grid itself)", file=sys.stderr)
        return 2
    if args.ablation and not args.lossy and args.refine is not None:
        print("eval.py: error: --refine applies to the lossless benchmark and to both lossy ones, not to the "
              "lossless ablation (a study of the coder on the encoder network's posteriors: never refined)",
              file=sys.stderr)
        return 2
    if args.feedback is not None and not args.lossy:
        print("eval.py: error: --feedback applies to the lossy benchmark and ablation only", file=sys.stderr)
        return 2
    if args.ablation:
        return _ablation(args)
    if args.feedback is not None:
        try:
            args.feedback = int(args.feedback)
        except ValueError:
            print(f"eval.py: error: --feedback {args.feedback!r}: give a number of steps (a list only with "
                  "--ablation --lossy)", file=sys.stderr)
            return 2
    flags = [("--grid", args.grid)] + [("--" + axis.replace("_", "-"), getattr(args, axis)) for axis in AXES]
    flags += [("--mc-samples", args.mc_samples)]
    used = [f for f, v in flags if v is not None]
    if used:
        print(f"eval.py: error: {', '.join(used)} only apply with --ablation", file=sys.stderr)
        return 2
    lossless_only = [f for f, used in (("--model", args.model != "default"), ("--batch", args.batch != 32)) if used]
    if args.lossy and lossless_only:
        print(f"eval.py: error: --lossy does not use {', '.join(lossless_only)} (lossless benchmark only)",
              file=sys.stderr)
        return 2
    from irec_jax.benchmark.errors import EvalError
    from irec_jax.benchmark.suite import EvalSpec, run_suite

    codecs = None
    if args.codecs is not None:
        codecs = tuple(c.strip() for c in args.codecs.split(",") if c.strip())
        if not codecs:
            print("eval.py: error: --codecs names no codec", file=sys.stderr)
            return 2
    spec = EvalSpec(suite=args.suite, images=tuple(args.images), dataset=args.dataset, split=args.split,
                    limit=args.limit, data_dir=args.data_dir, model=args.model, codecs=codecs, out=args.out,
                    progress=not args.no_progress, plots=not args.no_plots,
                    warmup=not args.no_warmup, batch=args.batch, refine=args.refine,
                    effort=args.effort or "default")
    try:
        if args.lossy:
            from irec_jax.benchmark.lossy_report import run_lossy_suite

            run_lossy_suite(spec, anchor=args.bd_anchor or "JPEG-420", lossy_models=tuple(args.lossy_model),
                            refine=args.refine, feedback=args.feedback)
        else:
            run_suite(spec)
    except EvalError as e:
        print(f"eval.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
