"""The ``irec`` command line: compress, decompress and inspect ``.irec`` files.

    irec compress photo.png photo.irec [--model PATH] [--omega 3 --epsilon 0.2 --beams 20] [--no-fallback]
    irec compress photo.png photo.irec --quality Q      # lossy, with a bundled lossy model
    irec decompress photo.irec photo.png                # lossless or lossy files
    irec info photo.irec
    irec export-model TRAIN_WORKDIR MODEL_DIR

``compress`` writes the file in stored mode (PNG-filtered deflate, no
model) when that is smaller than the model's coding, and says so. With
``--quality Q`` (or ``--model`` naming a lossy model) it writes a lossy file
(``irec_jax.lossy``) and prints its bits per pixel and PSNR.

Outputs are written through a temporary file and renamed; an existing output
is never replaced without ``--force``. Any error prints one line to stderr
and exits with status 1 (2 for bad command-line usage).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

EXIT_ERROR = 1


def _progress_bar(quiet: bool, desc: str):
    """A (callback, close) pair showing a tqdm bar after the work has taken 1 s."""
    if quiet:
        return None, lambda: None
    from tqdm import tqdm
    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=desc, delay=1.0, leave=False, file=sys.stderr,
                       dynamic_ncols=True,
                       bar_format="{desc}: {percentage:3.0f}%|{bar}| {n}/{total} [{elapsed}]")
        bar.n = done
        bar.refresh()

    def close() -> None:
        if bar is not None:
            bar.close()
    return update, close


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory") from None


def _check_output(path: str, force: bool) -> None:
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory")
    if os.path.exists(path) and not force:
        raise FileExistsError(f"{path} exists (use --force to overwrite)")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{path}: folder {folder} does not exist")


def _encoder_work(report) -> str:
    """The summary line's tail for a LossyReport: ' (posteriors refined, N steps; error feedback, M steps
    a part)' with the parts that ran, '' for neither."""
    work = ([f"posteriors refined, {report.refine_steps} steps"] if report.refine_steps else []) + (
        [f"error feedback, {report.feedback_steps} steps a part"] if report.feedback_steps else [])
    return f" ({'; '.join(work)})" if work else ""


def _cmd_compress_lossy(args: argparse.Namespace, cm) -> None:
    from irec_jax import codec, imageio, lossy

    if args.no_fallback:
        raise ValueError("--no-fallback applies to lossless coding only (a lossy file has no stored mode)")
    effort = lossy.check_effort(args.effort or lossy.DEFAULT_EFFORT)
    refine = lossy.refine_steps(cm, args.refine, effort)
    feedback = lossy.feedback_steps(cm, args.feedback, refine, effort)
    pixels = imageio.read_image(args.input)
    settings = codec.coder_settings(args.omega, args.epsilon, args.beams, args.seed,
                                    base=lossy.lossy_settings(cm, effort=effort))
    update, close = _progress_bar(args.quiet, "compress")
    try:
        data, report = lossy.compress_report(pixels, model=cm, settings=settings, tile=args.tile, refine=refine,
                                             feedback=feedback, progress=update, effort=effort)
        if not args.no_verify:
            decoded = lossy.decompress(data, model=cm)  # checks the CRC of the encoder's own reconstruction
            if decoded.shape != pixels.shape:
                raise RuntimeError("verification failed: the file does not decode (nothing was written)")
    finally:
        close()
    imageio.write_atomic(args.output, data, force=args.force)
    if not args.quiet:
        h, w, c = report.shape
        print(f"{args.input} -> {args.output}: {w}x{h}x{c}, lossy ({cm.name}), {report.total_bytes:,} bytes, "
              f"{report.bpp:.4f} bits/pixel, PSNR {report.psnr:.2f} dB, {report.encode_seconds:.1f} s"
              + _encoder_work(report))


def _cmd_compress(args: argparse.Namespace) -> None:
    from irec_jax import codec, entropy, imageio, modelzoo

    _check_output(args.output, args.force)
    if args.quality is not None:  # a bundled lossy model; --model with it is refused there
        cm = modelzoo.lossy_model(args.quality, None if args.model == "default" else args.model)
    else:
        cm = modelzoo.load_model(args.model)
    if cm.lossy:
        return _cmd_compress_lossy(args, cm)
    if args.feedback is not None:
        raise ValueError("--feedback applies to lossy coding only (--quality Q or a lossy --model)")
    codec.check_refine(args.refine)
    effort = codec.check_effort(args.effort or codec.DEFAULT_EFFORT)
    tile = entropy.check_tile(args.tile)
    pixels = imageio.read_image(args.input)
    settings = codec.coder_settings(args.omega, args.epsilon, args.beams, args.seed,
                                    base=codec.effort_settings(cm, pixels.shape, tile, effort))
    update, close = _progress_bar(args.quiet, "compress")
    try:
        data, report = codec.compress_report(pixels, model=cm, settings=settings, tile=tile, progress=update,
                                             fallback=not args.no_fallback, refine=args.refine, effort=effort)
        if not args.no_verify:
            decoded = codec.decompress(data, model=cm)
            if decoded.shape != pixels.shape or not (decoded == pixels).all():
                raise RuntimeError("verification failed: the file does not decode to the input "
                                   "(nothing was written; please report this)")
    finally:
        close()
    imageio.write_atomic(args.output, data, force=args.force)
    if not args.quiet and report.stored:
        h, w, c = report.shape
        print(f"{args.input} -> {args.output}: {w}x{h}x{c}, {report.total_bytes:,} bytes, "
              f"{report.bpd:.3f} bits/dim, written in stored mode (PNG-filtered deflate, no model) "
              f"because the model's coding was larger ({report.model_bytes:,} bytes, "
              f"{report.model_bpd:.3f} bits/dim), {report.encode_seconds:.1f} s")
    elif not args.quiet:
        h, w, c = report.shape
        print(f"{args.input} -> {args.output}: {w}x{h}x{c}, {report.total_bytes:,} bytes, "
              f"{report.bpd:.3f} bits/dim (latent indices {report.index_bits / 8:,.0f} B, "
              f"residual {report.residual_bits / 8:,.0f} B, header {report.header_bytes} B"
              f"{f', {report.tiles} tiles' if report.tiles > 1 else ''}), {report.encode_seconds:.1f} s"
              + (f" (posteriors refined, {report.refine_steps} steps)" if report.refine_steps else ""))


def _cmd_decompress(args: argparse.Namespace) -> None:
    from irec_jax import codec, entropy, imageio

    _check_output(args.output, args.force)
    data = _read_bytes(args.input)
    update, close = _progress_bar(args.quiet, "decompress")
    try:
        pixels = codec.decompress(data, model=args.model, progress=update)
    finally:
        close()
    imageio.write_image(args.output, pixels, force=args.force)
    if not args.quiet:
        h, w, c = pixels.shape
        what = "the encoder's reconstruction" if entropy.is_lossy(data) else "bit-exact"
        print(f"{args.input} -> {args.output}: {w}x{h}x{c}, {what} (CRC-32 checked)")


def _cmd_info(args: argparse.Namespace) -> None:
    from irec_jax import codec

    info = codec.read_info(_read_bytes(args.input), model=args.model)
    if args.json:
        print(json.dumps(info, indent=2))
        return
    print(f"{args.input}: .irec version {info['format_version']}, {info['width']}x{info['height']}x{info['channels']}, "
          f"{info['total_bytes']:,} bytes, {info['bpd']:.4f} bits/dim")
    if info["mode"] == "stored":
        print("  mode        stored (PNG-filtered scanlines through deflate; no model)")
        print(f"  sizes       header {info['header_bytes']} B, deflate payload {info['stream_bytes']:,} B")
        print("  filters     " + ", ".join(f"{name} {n}" for name, n in zip(
            ("None", "Sub", "Up", "Average", "Paeth"), info["filters"])) + " rows")
        return
    if info["mode"] == "lossy":
        print(f"  mode        lossy (iREC latents only), {info['bpp']:.4f} bits/pixel")
    else:
        print("  mode        model (iREC latents, range-coded pixels)")
    print(f"  model       {info['model']} (params {info['model_hash']})")
    print(f"  coder       omega {info['omega']:g}, epsilon {info['epsilon']:g}, "
          f"seed {info['seed']}, {info['candidates']} candidates/step")
    print(f"  sizes       header {info['header_bytes']} B, coded streams {info['stream_bytes']:,} B "
          f"in {info['tiles']} tile{'s' if info['tiles'] > 1 else ''} of up to {info['tile']}x{info['tile']}")
    print(f"  layers      blocks {info['blocks_per_layer']}, steps {info['steps_per_layer']}")


def _cmd_export(args: argparse.Namespace) -> None:
    from irec_jax import modelzoo

    if os.path.exists(os.path.join(args.output, "model.json")) and not args.force:
        raise FileExistsError(f"{args.output} already holds a model (use --force to overwrite)")
    cm = modelzoo.load_model(args.workdir)
    modelzoo.export_model(cm, args.output, name=args.name or cm.name)
    if not args.quiet:
        print(f"{args.workdir} -> {args.output}: model {args.name or cm.name!r}, "
              f"params {cm.ref.param_hash.hex()}")


def _cmd_models(args: argparse.Namespace) -> None:
    from irec_jax import modelzoo

    for cm in modelzoo.known_models():
        card = cm.card
        if cm.lossy:
            q = cm.name
            print(f"lossy     {q:28s} {card.get('description', '')}")
        else:
            print(f"lossless  {cm.name:28s} {card.get('description', '')}")
    print("lossy qualities: " + (", ".join(map(str, modelzoo.lossy_qualities())) or "none bundled"))


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    from irec_jax import codec, lossy
    from irec_jax.settings import CoderSettings

    coder = CoderSettings()
    side = int(codec.REFINE_PIXELS ** 0.5)
    parser = argparse.ArgumentParser(
        prog="irec", description="Lossless and lossy image compression by relative entropy coding (iREC).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, model_help: str) -> None:
        p.add_argument("--model", default=None, help=model_help)
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")

    c = sub.add_parser("compress", help="image file (PNG, ...) -> .irec")
    c.add_argument("input")
    c.add_argument("output")
    common(c, "'default' (bundled), a model folder or a train.py workdir (default: default); "
              "a lossy model writes a lossy file")
    c.add_argument("--quality", type=int, default=None,
                   help="lossy: the bundled lossy model of this quality (see `irec models`); higher: "
                        "more bits, less distortion")
    fast = lossy.EFFORTS["fast"]
    c.add_argument("--omega", type=_float, help=f"nats per iREC step (default {coder.omega:g}, lossy "
                                                f"{lossy.DEFAULT_OMEGA:g}; --effort fast: lossy {fast.omega:g}; "
                                                "--effort best: more)")
    c.add_argument("--epsilon", type=_float, help=f"candidate oversampling (default {coder.epsilon:g}; lossy 0)")
    c.add_argument("--beams", type=int,
                   help=f"beam width B of the encoder's search (default {coder.beams}, lossy "
                        f"{lossy.DEFAULT_BEAMS}, --effort fast {fast.beams}; small latent tensors use at least "
                        f"{coder.small_beams})")
    c.add_argument("--seed", type=int, help="shared-randomness seed (default 0)")
    c.add_argument("--refine", type=int, default=None,
                   help="Adam steps refining each tile's posteriors for this image before coding "
                        "(0: off; more: smaller files, slower encode; default: lossy "
                        f"{lossy.REFINE_STEPS} ({fast.refine} at --effort fast), "
                        f"lossless {codec.REFINE_STEPS} on tiles of at most {side}x{side} pixels, 0 on larger ones)")
    c.add_argument("--feedback", type=int, default=None,
                   help=f"lossy: Adam steps refining the posteriors of z1's dims still to code before each of "
                        f"its {lossy.FEEDBACK_CHUNKS} parts after the first, with the coded ones in place "
                        f"(0: off; default {lossy.FEEDBACK_STEPS} where posteriors are refined, --effort fast "
                        f"{fast.feedback})")
    c.add_argument("--effort", choices=tuple(codec.EFFORTS), default=None,
                   help="how hard the encoder works, default 'default'. Lossless: 'best' takes several "
                        "times the encode time for files about 1-2%% smaller (" +
                        "; ".join(f"{e.name}: {e.describe()}" for e in codec.EFFORTS.values()) +
                        "). Lossy: 'fast' takes about a fifth of the time for files about 26%% larger at equal "
                        "PSNR (" + "; ".join(f"{e.name}: {e.describe()}" for e in lossy.EFFORTS.values()) +
                        "). --omega/--epsilon/--beams/--refine/--feedback override it")
    c.add_argument("--tile", type=int, default=1024,
                   help="code the image as independent TILE x TILE tiles (even; default 1024): bounds memory")
    c.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    c.add_argument("--no-verify", action="store_true",
                   help="skip decoding the result to check it before writing")
    c.add_argument("--no-fallback", action="store_true",
                   help="always write the model's coding, even where the stored mode "
                        "(PNG-filtered deflate) would be smaller")
    c.set_defaults(func=_cmd_compress)

    d = sub.add_parser("decompress", help=".irec -> image file (PNG unless the extension says)")
    d.add_argument("input")
    d.add_argument("output")
    common(d, "the model folder or workdir the file was written with (not needed for the default)")
    d.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    d.set_defaults(func=_cmd_decompress)

    i = sub.add_parser("info", help="header, sizes and bits/dim of an .irec file")
    i.add_argument("input")
    i.add_argument("--model", default=None, help="model folder, for files of a non-default model")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=_cmd_info)

    m = sub.add_parser("models", help="the bundled models (lossless default, lossy qualities)")
    m.set_defaults(func=_cmd_models)

    e = sub.add_parser("export-model", help="train.py workdir -> model folder for --model")
    e.add_argument("workdir")
    e.add_argument("output")
    e.add_argument("--name", default=None, help="model name written to files (default: workdir@step)")
    e.add_argument("-q", "--quiet", action="store_true")
    e.add_argument("-f", "--force", action="store_true")
    e.set_defaults(func=_cmd_export)
    return parser


def _enable_compile_cache() -> None:
    """Keep JAX's compiled programs between runs (a cold ``irec`` run is mostly compilation).

    ``$IREC_CACHE_DIR`` (default ``~/.cache/irec_jax/xla``); ``IREC_NO_CACHE=1``
    turns it off; an explicit ``JAX_COMPILATION_CACHE_DIR`` wins. Cached
    programs are the same programs, so the bytes written do not change.
    """
    if os.environ.get("IREC_NO_CACHE") == "1" or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    path = os.environ.get("IREC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "irec_jax", "xla")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return
    import jax
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``irec`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    _enable_compile_cache()
    if getattr(args, "model", None) is None and args.command == "compress":
        args.model = "default"
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("irec: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as e:  # FormatError, ImageError, ModelError are ValueErrors
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"irec: error: {msg}", file=sys.stderr)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
