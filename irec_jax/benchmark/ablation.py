"""The paper's ablation of the iREC coder over Ω, 1+ε and B, and the encoder's
own knobs block_kl, final_choices and layer_choices: ``python eval.py --ablation``.

Every grid point (Ω nats per step, 1+ε candidate oversampling, B beams; N =
floor(exp(Ω(1+ε))) candidates per step; ``block_kl``, the target KL per
block in nats; ``final_choices``, how many of the last latent layer's
final beams the encoder compares by the exact codelength of the pixels,
keeping the smallest file; ``layer_choices``, how many of every other
layer's final beams it compares by an estimate of what the rest of the file
costs, ``codec._rest_bits``) codes every image with the real codec
(``irec_jax.codec.compress_report``, the model's file: no stored-mode
fallback and no posterior refinement, since the study is of the coder on
the encoder network's posteriors, which the Monte Carlo estimates below
sample too), decodes it back (``codec.decompress``)
and checks the pixels bit for bit. block_kl and the choices steer only the
encoder (files do not store them; they default to ``CoderSettings()``'s, 200
nats, 1 and 1): smaller blocks mean less search work per block but more side
information (one step count per block) and more rounding of K_b = ⌈KL_b/Ω⌉,
seen in ``coding_overhead``; more final choices can only lower
``residual_bits`` (the search's own pick is always among them, and every
choice costs the same index bits), at one likelihood pass each, seen in
``residual_overhead`` and ``encode_s``; layer choices move bits between
the later layers' indices and the pixels, seen in ``total_overhead``. A
point needs block_kl >= Ω and final_choices, layer_choices <= B. Per image
and point it reports, from the *real* byte counts of the file:

- ``coding_overhead`` = index_bits / KL bits, index_bits the exact
  codelength of the step counts and indices in the file's streams
  (``CodecReport.index_bits``), KL = Σ_l KL(q_l‖p_l) along the coded path
  (``CodecReport.kl_nats``); ``coding_overhead_ideal`` = index_bits_ideal
  (Σ_b K_b log2 N, the indices alone) / KL bits.
- ``residual_overhead`` = residual_bits (−log2 p(x|ẑ), the exact codelength
  of the pixels under the coder's integer tables) / E_q[−log2 p(x|z)].
  The stream bytes hold both codelengths plus how each tile's range-coded
  stream ends (a few bits either way), which ``total_overhead`` counts. The
  expectation is a **Monte Carlo estimate** (S posterior samples through the codec's
  integer model, ``irec_jax.analysis.elbo_samples``, with −log2 p(x|z)
  under the same integer tables; the standard error is reported).
- ``total_overhead`` = 8·total_bytes / negative-ELBO bits, with the negative
  ELBO = E_q[Σ_l KL_l + (−log2 p(x|z))] estimated by the same S samples (MC,
  standard error reported). Every byte of the file (header included) counts.
- ``bpd`` = 8·total_bytes / (H·W·C), ``encode_s`` (the codec's own wall clock
  of a call that compiled nothing: the first call of each setting is an
  untimed warm-up, and an image that makes JAX compile a new padded shape is
  coded a second time for its timing, ``retimed``), ``decode_s`` (likewise),
  ``exact`` (decoded == original).

All overheads are ratios: 1.00 = no overhead, 1.18 = +18%. Rows and points
also carry ``index_bits`` and ``residual_bits`` (the two exact codelengths)
and the point's ``block_kl``, ``final_choices`` and ``layer_choices``.

A point's aggregates are means over the images that did not fail (inexact
ones included and counted). A failing point or image is recorded with its
error and the run goes on.

Outputs (``write_outputs``): ``ablation.json`` (see ``to_json``),
``ablation_table.txt`` and Ω × (1+ε) heatmaps (one PNG per metric, one
panel per B, block_kl, final_choices and layer_choices):
``ablation_total_overhead.png``, ``ablation_coding_overhead.png``,
``ablation_residual_overhead.png``, ``ablation_encode_s.png``.

Images: the model must see them as they are, so they need even H and W and
the model's channel count (RGB); the bundled 32×32 crops and 64×64 photos
qualify.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import time
from typing import Any, Callable, Sequence

import numpy as np

from irec_jax.benchmark.ablation_grid import (DEFAULT_LIMIT, DEFAULT_MC_SAMPLES, GRIDS, AblationResult, Grid,
                                          GridPoint, ImageStats, make_grid, named_grid, parse_axis)
from irec_jax.benchmark.ablation_report import format_table, to_json, write_outputs
from irec_jax.benchmark.errors import EvalError, error_text
from irec_jax.benchmark.runner import same_image
from irec_jax.benchmark.sets import ImageSet, bundled_sets, first_images

__all__ = [
    "GRIDS", "DEFAULT_LIMIT", "DEFAULT_MC_SAMPLES", "GridPoint", "Grid", "make_grid", "named_grid", "parse_axis",
    "ImageStats", "mc_elbo", "ablation_images", "default_sets", "AblationResult", "run", "to_json",
    "format_table", "write_outputs", "ablate",
]


# --- images and the Monte Carlo ELBO --------------------------------------------------------------

def mc_elbo(cm, img: np.ndarray, samples: int = DEFAULT_MC_SAMPLES, seed: int = 0,
            set_name: str = "", image_id: str = "") -> ImageStats:
    """Monte Carlo E_q[−log2 p(x|z)] and −ELBO of ``img`` (uint8 [H, W, C], even H, W) under
    ``cm``'s integer model, the one the codec codes with (``analysis.elbo_samples``: recon under
    the coder's integer pixel tables, latents on the decoder's 2^-10 grid)."""
    from irec_jax import analysis

    if samples < 2:
        raise EvalError(f"--mc-samples must be at least 2 (for a standard error), got {samples}")
    recon, kl = (np.asarray(a, np.float64)
                 for a in analysis.elbo_samples(np.asarray(img, np.uint8), cm, int(samples), seed))
    nelbo = recon + kl
    se = lambda a: float(np.std(a, ddof=1) / math.sqrt(len(a)))  # noqa: E731
    return ImageStats(set_name, image_id, tuple(int(s) for s in img.shape), int(samples),
                      float(recon.mean()), se(recon), float(nelbo.mean()), se(nelbo),
                      float(kl.mean()), se(kl))


def ablation_images(sets: Sequence[ImageSet], image_channels: int) -> list[tuple[str, str, np.ndarray]]:
    """(set, id, image) for every image; EvalError for one the model cannot take as it is."""
    out = []
    for s in sets:
        for img, image_id in zip(s.images, s.ids):
            h, w, c = img.shape
            if h % 2 or w % 2 or c != image_channels:
                raise EvalError(f"{s.name}/{image_id} is {h}x{w}x{c}; the ablation needs even height and width "
                                f"and {image_channels} channels (the MC ELBO runs the model on the image as is)")
            out.append((s.name, image_id, img))
    if not out:
        raise EvalError("no images for the ablation")
    return out


def default_sets(limit: int) -> list[ImageSet]:
    """The first ``limit`` bundled 32x32 crops, as one set "crops32"."""
    return [first_images(bundled_sets()[0], limit)]


# --- one run --------------------------------------------------------------------------------------

def _ratio(num: float, den: float) -> float | None:
    ok = math.isfinite(num) and math.isfinite(den) and den > 0
    return float(num / den) if ok else None


def _row(point: GridPoint, stats: ImageStats, rep, exact: bool, detail: str | None, decode_s: float) -> dict:
    kl_bits = float(sum(rep.kl_nats) / math.log(2.0))
    index_bits, residual_bits, total_bits = rep.index_bits, rep.residual_bits, 8 * rep.total_bytes
    residual = _ratio(residual_bits, stats.eq_recon_bits)
    total = _ratio(total_bits, stats.nelbo_bits)
    # The ratio's standard error from its MC denominator alone: ratio * se(den) / den.
    residual_se = None if residual is None else residual * stats.eq_recon_bits_se / stats.eq_recon_bits
    total_se = None if total is None else total * stats.nelbo_bits_se / stats.nelbo_bits
    return {
        "set": stats.set, "image": stats.image, "height": stats.shape[0], "width": stats.shape[1],
        "channels": stats.shape[2], "dims": stats.dims,
        "omega": point.omega, "one_plus_epsilon": point.one_plus_epsilon, "epsilon": point.epsilon,
        "beams": point.beams, "num_candidates": point.num_candidates,
        "block_kl": point.block_kl, "final_choices": point.final_choices, "layer_choices": point.layer_choices,
        "total_bytes": rep.total_bytes, "header_bytes": rep.header_bytes, "stream_bytes": rep.stream_bytes,
        "index_bits": float(rep.index_bits), "residual_bits": float(rep.residual_bits),
        "kl_bits": kl_bits, "kl_bits_per_layer": [float(k / math.log(2.0)) for k in rep.kl_nats],
        "log_ratio_bits": float(sum(rep.log_ratio_nats) / math.log(2.0)),
        "index_bits_ideal": float(rep.index_bits_ideal),
        "eq_recon_bits": stats.eq_recon_bits, "nelbo_bits": stats.nelbo_bits,
        "coding_overhead": _ratio(index_bits, kl_bits),
        "coding_overhead_ideal": _ratio(rep.index_bits_ideal, kl_bits),
        "residual_overhead": residual,
        "residual_overhead_mc_se": residual_se,
        "total_overhead": total,
        "total_overhead_mc_se": total_se,
        "bpd": 8.0 * rep.total_bytes / stats.dims,
        "encode_s": float(rep.encode_seconds), "decode_s": float(decode_s),
        "exact": bool(exact), "detail": detail, "error": None,
    }


def _failed_row(point: GridPoint, stats: ImageStats, error: str) -> dict:
    return {"set": stats.set, "image": stats.image, "height": stats.shape[0], "width": stats.shape[1],
            "channels": stats.shape[2], "dims": stats.dims, "omega": point.omega,
            "one_plus_epsilon": point.one_plus_epsilon, "epsilon": point.epsilon, "beams": point.beams,
            "num_candidates": point.num_candidates, "block_kl": point.block_kl,
            "final_choices": point.final_choices, "layer_choices": point.layer_choices, "exact": False,
            "error": error}


# Per-point aggregates: means over the images that did not fail.
AGGREGATES = ("total_overhead", "coding_overhead", "coding_overhead_ideal", "residual_overhead",
              "bpd", "encode_s", "decode_s", "total_bytes", "index_bits", "residual_bits", "kl_bits")


def _aggregate(point: GridPoint, rows: list[dict], num_images: int, warmup_s: float | None,
               error: str | None) -> dict:
    ok = [r for r in rows if r.get("error") is None]
    agg = {"omega": point.omega, "one_plus_epsilon": point.one_plus_epsilon, "epsilon": point.epsilon,
           "beams": point.beams, "num_candidates": point.num_candidates, "block_kl": point.block_kl,
           "final_choices": point.final_choices, "layer_choices": point.layer_choices, "num_images": num_images,
           "num_ok": len(ok), "num_failed": num_images - len(ok),
           "num_exact": sum(1 for r in ok if r["exact"]), "warmup_s": warmup_s,
           "num_retimed": sum(1 for r in ok if r.get("retimed")),
           "error": error if error is not None else (None if ok else "every image failed")}
    agg["all_exact"] = bool(ok) and agg["num_exact"] == num_images
    for k in AGGREGATES:
        vals = [r[k] for r in ok if r.get(k) is not None]
        agg[k] = float(np.mean(vals)) if vals else None
    return agg


def _model_info(cm, spec: str) -> dict:
    return {"spec": str(spec), "name": cm.name, "param_hash": cm.ref.param_hash.hex(), "card": dict(cm.card),
            "num_layers": int(cm.model.num_layers),
            "config": {k: (list(v) if isinstance(v, tuple) else v)
                       for k, v in dataclasses.asdict(cm.config).items()}}


def run(grid: Grid, sets: Sequence[ImageSet], model: Any = "default", *, seed: int = 0,
        mc_samples: int = DEFAULT_MC_SAMPLES, progress: bool = True, warmup: bool = True) -> AblationResult:
    """Code every image at every grid point (with decode and exactness check) and estimate the ELBOs."""
    from tqdm.auto import tqdm

    from irec_jax import modelzoo

    try:
        cm = modelzoo.load_model(model)
    except ValueError as e:
        raise EvalError(f"--model {model!r}: {e}") from None
    images = ablation_images(sets, cm.image_channels)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    stats = [mc_elbo(cm, img, mc_samples, seed, s, i)
             for s, i, img in tqdm(images, desc="MC ELBO", leave=False, disable=not progress)]
    points, rows = [], []
    with _CompileCounter() as compiles:
        bar = tqdm(grid.points, desc="ablation", disable=not progress)
        for point in bar:
            bar.set_postfix_str(f"{point.label} N={point.num_candidates}", refresh=True)
            _run_point(point, images, stats, cm, seed, warmup, compiles, points, rows, progress)
    return AblationResult(grid, _model_info(cm, model), stats, [(s.name, s.source) for s in sets], points,
                          rows, seed, mc_samples, started, time.perf_counter() - t0)


class _CompileCounter:
    """Counts JAX compilations (``jax.monitoring`` compile events) while active."""

    def __init__(self):
        self.count = 0

    def _listener(self, event: str, duration: float, **kwargs) -> None:
        if event.startswith("/jax/core/compile/backend_compile"):
            self.count += 1

    def __enter__(self) -> "_CompileCounter":
        import jax.monitoring

        jax.monitoring.register_event_duration_secs_listener(self._listener)
        return self

    def __exit__(self, *exc) -> None:
        import jax.monitoring

        jax.monitoring.unregister_event_duration_listener(self._listener)


def _run_point(point: GridPoint, images, stats, cm, seed: int, warmup: bool, compiles: _CompileCounter,
               points: list, rows: list, progress: bool) -> None:
    """Warm up, then code, decode and check every image at ``point``; appends to ``points`` and ``rows``."""
    from tqdm.auto import tqdm

    from irec_jax import codec

    warm_s, error, mine = None, None, []
    try:
        settings = point.settings(seed)
        if warmup:
            w0 = time.perf_counter()
            data = codec.compress_report(images[0][2], model=cm, settings=settings, fallback=False, refine=0)[0]
            codec.decompress(data, model=cm)
            warm_s = time.perf_counter() - w0
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # also pyo3 PanicException from the Rust coders
        error = error_text(e)
    if error is None:
        for (_, _, img), st in zip(tqdm(images, desc=point.label, leave=False, disable=not progress), stats):
            try:
                before = compiles.count
                data, rep = codec.compress_report(img, model=cm, settings=settings, fallback=False, refine=0)
                enc_compiled = compiles.count > before
                if warmup and enc_compiled:  # a new padded shape compiled: time a compiled call
                    again, rep2 = codec.compress_report(img, model=cm, settings=settings, fallback=False,
                                                        refine=0)
                    if again != data:
                        raise RuntimeError("a second encode of the same image gave different bytes")
                    rep = rep2
                before = compiles.count
                d0 = time.perf_counter()
                out = codec.decompress(data, model=cm)
                dec_s = time.perf_counter() - d0
                dec_compiled = compiles.count > before
                if warmup and dec_compiled:
                    d0 = time.perf_counter()
                    out = codec.decompress(data, model=cm)
                    dec_s = time.perf_counter() - d0
                exact, detail = same_image(img, out)
                row = _row(point, st, rep, exact, detail, dec_s)
                row["retimed"] = bool(warmup and (enc_compiled or dec_compiled))
                row["compiled_in_timed_call"] = bool(not warmup and (enc_compiled or dec_compiled))
                mine.append(row)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:
                mine.append(_failed_row(point, st, error_text(e)))
    else:
        mine = [_failed_row(point, st, error) for st in stats]
    rows += mine
    points.append(_aggregate(point, mine, len(images), warm_s, error))


def ablate(grid: Grid, sets: Sequence[ImageSet], model: Any = "default", out: str = "eval_out", *,
           seed: int = 0, mc_samples: int = DEFAULT_MC_SAMPLES, progress: bool = True, plots: bool = True,
           warmup: bool = True, echo: Callable[[str], None] = print) -> tuple[AblationResult, dict[str, str]]:
    """Run, write the outputs to ``out`` and echo the table (the ``eval.py --ablation`` entry point)."""
    res = run(grid, sets, model, seed=seed, mc_samples=mc_samples, progress=progress, warmup=warmup)
    paths = write_outputs(res, out, plots=plots)
    echo(format_table(res))
    echo(f"wrote {os.path.abspath(out)}/ ({', '.join(sorted(os.path.basename(p) for p in paths.values()))})")
    return res, paths
