"""The paper's ablation of the iREC coder over Ω, 1+ε and B: ``python eval.py --ablation``.

Every grid point (Ω nats per step, 1+ε candidate oversampling, B beams; N =
floor(exp(Ω(1+ε))) candidates per step) codes every image with the real
codec (``irec_jax.codec.compress_report``), decodes it back
(``codec.decompress``) and checks the pixels bit for bit. Per image and
point it reports, from the *real* byte counts of the file:

- ``coding_overhead`` = 8·index_bytes / KL bits, KL = Σ_l KL(q_l‖p_l) along
  the coded path (``CodecReport.kl_nats``); ``coding_overhead_ideal`` =
  index_bits_ideal (Σ_b K_b log2 N) / KL bits.
- ``residual_overhead`` = 8·residual_bytes / E_q[−log2 p(x|z)];
  ``residual_overhead_ideal`` = −log2 p(x|ẑ) (under the coder's integer
  frequency tables, the codec's ideal figure) over the same expectation.
  The expectation is a **Monte Carlo estimate** (S posterior samples
  through the codec's integer model, ``irec_jax.analysis.elbo_samples``, with
  −log2 p(x|z) under the same integer tables; the standard error is reported).
- ``total_overhead`` = 8·total_bytes / negative-ELBO bits, with the negative
  ELBO = E_q[Σ_l KL_l + (−log2 p(x|z))] estimated by the same S samples (MC,
  standard error reported). Every byte of the file (header included) counts.
- ``bpd`` = 8·total_bytes / (H·W·C), ``encode_s`` (the codec's own wall clock
  of a call that compiled nothing: the first call of each setting is an
  untimed warm-up, and an image that makes JAX compile a new padded shape is
  coded a second time for its timing, ``retimed``), ``decode_s`` (likewise),
  ``exact`` (decoded == original).

All overheads are ratios: 1.00 = no overhead, 1.18 = +18%.

A point's aggregates are means over the images that did not fail (inexact
ones included and counted). A failing point or image is recorded with its
error and the run goes on.

Outputs (``write_outputs``): ``ablation.json`` (see ``to_json``),
``ablation_table.txt`` and, for each B, Ω × (1+ε) heatmaps (one PNG per
metric, one panel per B): ``ablation_total_overhead.png``,
``ablation_coding_overhead.png``, ``ablation_residual_overhead.png``,
``ablation_encode_s.png``.

Images: the model must see them as they are, so they need even H and W and
the model's channel count (RGB); the bundled 32×32 crops and 64×64 photos
qualify.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

from irec_jax.bench.evaluate import EvalError, ImageSet, same_image

__all__ = [
    "GRIDS", "GridPoint", "Grid", "make_grid", "named_grid", "parse_axis", "ImageStats", "mc_elbo",
    "ablation_images", "default_sets", "AblationResult", "run", "to_json", "format_table", "write_outputs",
    "plot_heatmaps", "ablate",
]

# The original's full grid, and a smaller one that runs in a few minutes on two shared CPU cores.
GRIDS: dict[str, dict[str, tuple]] = {
    "default": {"omega": (2.0, 3.0, 4.0), "one_plus_epsilon": (1.0, 1.2), "beams": (1, 10, 20)},
    "full": {"omega": (2.0, 3.0, 4.0, 5.0, 6.0), "one_plus_epsilon": (1.0, 1.1, 1.2, 1.5),
             "beams": (1, 10, 50)},
}
# Images each grid uses by default (first N bundled 32x32 crops) when no --limit is given.
DEFAULT_LIMIT = {"default": 4, "full": 8}
DEFAULT_MC_SAMPLES = 16

# Heatmap metrics: (key in a point's aggregates, title, number format).
HEATMAPS = (
    ("total_overhead", "total overhead: 8·file bytes / −ELBO bits (MC)", "{:.3f}"),
    ("coding_overhead", "coding overhead: 8·index bytes / KL bits", "{:.3f}"),
    ("residual_overhead", "residual overhead: 8·residual bytes / E_q[−log2 p(x|z)] (MC)", "{:.3f}"),
    ("encode_s", "encode seconds per image (after warm-up)", "{:.2f}"),
)


# --- the grid -------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class GridPoint:
    """One coder setting: Ω (nats per step), 1+ε (oversampling), B (beams)."""

    omega: float
    one_plus_epsilon: float
    beams: int

    @property
    def epsilon(self) -> float:
        return round(self.one_plus_epsilon - 1.0, 12)  # 1.1 - 1 is 0.10000000000000009 otherwise

    @property
    def num_candidates(self) -> int:
        from irec_jax import entropy
        return entropy.num_candidates(entropy.CoderSettings(self.omega, self.epsilon, self.beams))

    @property
    def label(self) -> str:
        return f"Ω={self.omega:g} 1+ε={self.one_plus_epsilon:g} B={self.beams}"

    def settings(self, seed: int = 0):
        """The codec's settings for this point; ValueError if the codec refuses them."""
        from irec_jax import codec
        return codec.coder_settings(omega=float(self.omega), epsilon=float(self.epsilon),
                                    beams=int(self.beams), seed=int(seed))


@dataclasses.dataclass(frozen=True)
class Grid:
    """The axes of an ablation and its points (B outermost, then Ω, then 1+ε)."""

    name: str
    omega: tuple
    one_plus_epsilon: tuple
    beams: tuple

    @property
    def points(self) -> list[GridPoint]:
        return [GridPoint(o, e, b) for b in self.beams for o in self.omega for e in self.one_plus_epsilon]


def make_grid(omega: Sequence[float], one_plus_epsilon: Sequence[float], beams: Sequence[int],
              name: str = "custom", seed: int = 0) -> Grid:
    """A validated ``Grid``; ``EvalError`` naming the bad value (or grid point) otherwise.

    Ω > 0 (finite), 1+ε >= 1 (finite), B an integer in [1, 4096], no value
    repeated, and every (Ω, 1+ε) pair must give 2 .. 2^24 candidates.
    """
    from irec_jax.rec.settings import MAX_BEAMS

    axes = {"omega": omega, "one_plus_epsilon": one_plus_epsilon, "beams": beams}
    for axis, values in axes.items():
        values = list(values)
        if not values:
            raise EvalError(f"ablation grid: {axis} has no values")
        if len(set(values)) != len(values):
            raise EvalError(f"ablation grid: {axis} repeats a value: {values}")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise EvalError(f"ablation grid: {axis} value {v!r} is not a number")
            if not math.isfinite(float(v)):
                raise EvalError(f"ablation grid: {axis} value {v!r} is not finite")
            if axis == "omega" and not v > 0:
                raise EvalError(f"ablation grid: omega {v!r} must be > 0 nats per step")
            if axis == "one_plus_epsilon" and not v >= 1.0:
                raise EvalError(f"ablation grid: 1+epsilon {v!r} must be >= 1 (epsilon >= 0)")
            if axis == "beams" and (float(v) != int(v) or not 1 <= int(v) <= MAX_BEAMS):
                raise EvalError(f"ablation grid: beams {v!r} must be an integer in [1, {MAX_BEAMS}]")
    grid = Grid(name, tuple(float(v) for v in omega), tuple(float(v) for v in one_plus_epsilon),
                tuple(int(v) for v in beams))
    for p in grid.points:
        try:
            p.settings(seed)
        except ValueError as e:
            raise EvalError(f"ablation grid point {p.label}: {e}") from None
    return grid


def named_grid(name: str) -> Grid:
    """``GRIDS[name]`` as a ``Grid``; EvalError for an unknown name."""
    if name not in GRIDS:
        raise EvalError(f"unknown ablation grid {name!r}; known: {', '.join(GRIDS)}")
    return make_grid(**GRIDS[name], name=name)


def parse_axis(text: str, axis: str) -> tuple:
    """``"2,3,4"`` -> (2.0, 3.0, 4.0) (beams: ints); EvalError for anything unparsable."""
    parts = [t.strip() for t in str(text).split(",")]
    if not parts or any(not t for t in parts):
        raise EvalError(f"--{axis.replace('_', '-')} {text!r}: give comma-separated numbers, e.g. 2,3,4")
    out = []
    for t in parts:
        try:
            out.append(int(t) if axis == "beams" else float(t))
        except ValueError:
            kind = "an integer" if axis == "beams" else "a number"
            raise EvalError(f"--{axis.replace('_', '-')}: {t!r} is not {kind}") from None
    return tuple(out)


# --- images and the Monte Carlo ELBO --------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ImageStats:
    """Setting-independent facts about one image: MC estimates over ``samples`` posterior draws.

    ``eq_recon_bits``: E_{z~q}[−log2 p(x|z)]; ``nelbo_bits``: the negative ELBO
    (Σ KL + recon); ``kl_bits``: E_q[Σ_l KL_l] (each KL analytic given the
    sampled upper layers). ``*_se``: standard errors of the means (bits).
    """

    set: str
    image: str
    shape: tuple
    samples: int
    eq_recon_bits: float
    eq_recon_bits_se: float
    nelbo_bits: float
    nelbo_bits_se: float
    kl_bits: float
    kl_bits_se: float

    @property
    def dims(self) -> int:
        return int(np.prod(self.shape))


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
    from irec_jax.bench.evaluate import bundled_sets

    crops = bundled_sets()[0]
    return [ImageSet(crops.name, crops.images[:limit], crops.ids[:limit], crops.source)]


# --- one run --------------------------------------------------------------------------------------

def _error(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}" + (f": {msg}" if msg else "")


def _ratio(num: float, den: float) -> float | None:
    ok = math.isfinite(num) and math.isfinite(den) and den > 0
    return float(num / den) if ok else None


def _row(point: GridPoint, stats: ImageStats, rep, exact: bool, detail: str | None, decode_s: float) -> dict:
    kl_bits = float(sum(rep.kl_nats) / math.log(2.0))
    index_bits, residual_bits, total_bits = 8 * rep.index_bytes, 8 * rep.residual_bytes, 8 * rep.total_bytes
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
        "total_bytes": rep.total_bytes, "header_bytes": rep.header_bytes, "index_bytes": rep.index_bytes,
        "residual_bytes": rep.residual_bytes,
        "kl_bits": kl_bits, "kl_bits_per_layer": [float(k / math.log(2.0)) for k in rep.kl_nats],
        "log_ratio_bits": float(sum(rep.log_ratio_nats) / math.log(2.0)),
        "index_bits_ideal": float(rep.index_bits_ideal), "residual_bits_ideal": float(rep.residual_bits_ideal),
        "eq_recon_bits": stats.eq_recon_bits, "nelbo_bits": stats.nelbo_bits,
        "coding_overhead": _ratio(index_bits, kl_bits),
        "coding_overhead_ideal": _ratio(rep.index_bits_ideal, kl_bits),
        "residual_overhead": residual,
        "residual_overhead_ideal": _ratio(rep.residual_bits_ideal, stats.eq_recon_bits),
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
            "num_candidates": point.num_candidates, "exact": False, "error": error}


# Per-point aggregates: means over the images that did not fail.
AGGREGATES = ("total_overhead", "coding_overhead", "coding_overhead_ideal", "residual_overhead",
              "residual_overhead_ideal", "bpd", "encode_s", "decode_s", "total_bytes", "index_bytes",
              "residual_bytes", "kl_bits")


def _aggregate(point: GridPoint, rows: list[dict], num_images: int, warmup_s: float | None,
               error: str | None) -> dict:
    ok = [r for r in rows if r.get("error") is None]
    agg = {"omega": point.omega, "one_plus_epsilon": point.one_plus_epsilon, "epsilon": point.epsilon,
           "beams": point.beams, "num_candidates": point.num_candidates, "num_images": num_images,
           "num_ok": len(ok), "num_failed": num_images - len(ok),
           "num_exact": sum(1 for r in ok if r["exact"]), "warmup_s": warmup_s,
           "num_retimed": sum(1 for r in ok if r.get("retimed")),
           "error": error if error is not None else (None if ok else "every image failed")}
    agg["all_exact"] = bool(ok) and agg["num_exact"] == num_images
    for k in AGGREGATES:
        vals = [r[k] for r in ok if r.get(k) is not None]
        agg[k] = float(np.mean(vals)) if vals else None
    return agg


@dataclasses.dataclass
class AblationResult:
    """What ``run`` measured."""

    grid: Grid
    model: dict
    images: list  # of ImageStats
    sources: list  # of (set name, source)
    points: list  # of per-point aggregate dicts, grid order
    rows: list  # of per-image row dicts
    seed: int
    mc_samples: int
    started: str
    wall_s: float


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
            codec.decompress(codec.compress_report(images[0][2], model=cm, settings=settings)[0], model=cm)
            warm_s = time.perf_counter() - w0
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # also pyo3 PanicException from the Rust coders
        error = _error(e)
    if error is None:
        for (_, _, img), st in zip(tqdm(images, desc=point.label, leave=False, disable=not progress), stats):
            try:
                before = compiles.count
                data, rep = codec.compress_report(img, model=cm, settings=settings)
                enc_compiled = compiles.count > before
                if warmup and enc_compiled:  # a new padded shape compiled: time a compiled call
                    again, rep2 = codec.compress_report(img, model=cm, settings=settings)
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
                mine.append(_failed_row(point, st, _error(e)))
    else:
        mine = [_failed_row(point, st, error) for st in stats]
    rows += mine
    points.append(_aggregate(point, mine, len(images), warm_s, error))


# --- outputs --------------------------------------------------------------------------------------

METRICS_DOC = {
    "coding_overhead": "8*index_bytes / KL bits (KL = sum over layers of KL(q||p) along the coded path)",
    "coding_overhead_ideal": "index_bits_ideal (sum_b K_b log2 N) / KL bits",
    "residual_overhead": "8*residual_bytes / E_q[-log2 p(x|z)] (Monte Carlo estimate)",
    "residual_overhead_ideal": "-log2 p(x|z_hat) (integer coder tables) / E_q[-log2 p(x|z)] (Monte Carlo estimate)",
    "total_overhead": "8*total_bytes (whole file) / negative-ELBO bits (Monte Carlo estimate)",
    "*_mc_se": "standard error of the ratio from the Monte Carlo denominator alone",
    "bpd": "8*total_bytes / (H*W*C)",
    "encode_s": ("codec encode wall clock, seconds, of a call that compiled nothing: the first call of each "
                 "setting is an untimed warm-up, and an image whose padded shapes compile anew is coded twice "
                 "(retimed: true) -- unless the run had no warm-up (then compiled_in_timed_call says so)"),
    "decode_s": "decode wall clock, seconds (retimed like encode_s)",
    "exact": "decoded pixels == original, bit for bit",
    "aggregates": "per point: means over the images that did not fail (inexact ones included)",
}


def _environment() -> dict:
    import jax

    env = {"python": sys.version.split()[0], "platform": platform.platform(), "numpy": np.__version__,
           "jax": jax.__version__, "jax_backend": jax.default_backend(), "cpu_count": os.cpu_count()}
    try:
        env["loadavg"] = list(os.getloadavg())
    except OSError:
        env["loadavg"] = None
    return env


def _finite(x: Any) -> Any:
    """``x`` with every non-finite float replaced by None (strict JSON)."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def to_json(res: AblationResult) -> dict:
    """``ablation.json``: ``grid``, ``points`` (aggregates), ``rows`` (per image), ``images``
    (with their MC ELBO estimates), ``model`` (name, param_hash, card, spec), ``metrics`` (definitions),
    ``started`` (UTC), ``wall_s``, ``seed``, ``mc_samples``, ``environment``."""
    return _finite({
        "name": "irec_jax iREC ablation",
        "description": ("Lossless iREC over omega (nats/step), 1+epsilon and beams B; N = floor(exp(omega"
                        "(1+epsilon))). Overheads are ratios (1.0 = none) from the real bytes of each file; "
                        "E_q[-log2 p(x|z)] and the negative ELBO are Monte Carlo estimates "
                        f"({res.mc_samples} posterior samples per image)."),
        "started": res.started,
        "wall_s": res.wall_s,
        "seed": res.seed,
        "mc_samples": res.mc_samples,
        "model": res.model,
        "grid": {"name": res.grid.name, "omega": list(res.grid.omega),
                 "one_plus_epsilon": list(res.grid.one_plus_epsilon), "beams": list(res.grid.beams),
                 "points": [{"omega": p.omega, "one_plus_epsilon": p.one_plus_epsilon, "epsilon": p.epsilon,
                             "beams": p.beams, "num_candidates": p.num_candidates} for p in res.grid.points]},
        "images": [dict(dataclasses.asdict(s), shape=list(s.shape), dims=s.dims) for s in res.images],
        "sets": [{"name": n, "source": src} for n, src in res.sources],
        "points": res.points,
        "rows": res.rows,
        "metrics": METRICS_DOC,
        "environment": _environment(),
    })


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def format_table(res: AblationResult) -> str:
    """The terminal table: one line per grid point (B, Ω, 1+ε order), then the failures."""
    n = len(res.images)
    nelbo = np.mean([s.nelbo_bits / s.dims for s in res.images])
    lines = [
        f"iREC ablation: model {res.model['name']} ({res.model['param_hash']}), "
        f"{n} images, grid {res.grid.name!r}, {len(res.points)} points, {res.wall_s:.0f} s",
        f"negative ELBO (MC, {res.mc_samples} samples/image): mean {nelbo:.4f} bits/dim; overheads are ratios "
        "(1.000 = none), means over images; (ideal) = uniform-code index bits / float64 residual",
    ]
    header = ["B", "Ω", "1+ε", "N", "bpd", "total", "coding", "(ideal)", "residual", "(ideal)", "enc s",
              "dec s", "exact"]
    body = []
    for p in res.points:
        body.append([str(p["beams"]), f"{p['omega']:g}", f"{p['one_plus_epsilon']:g}", str(p["num_candidates"]),
                     _fmt(p["bpd"], ".4f"), _fmt(p["total_overhead"]), _fmt(p["coding_overhead"]),
                     _fmt(p["coding_overhead_ideal"]), _fmt(p["residual_overhead"]),
                     _fmt(p["residual_overhead_ideal"]), _fmt(p["encode_s"], ".2f"), _fmt(p["decode_s"], ".2f"),
                     "FAILED" if p["error"] else f"{p['num_exact']}/{p['num_images']}"])
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    line = lambda r: "  ".join(v.rjust(w) for v, w in zip(r, widths))  # noqa: E731
    rule = "-" * len(line(header))
    lines += [rule, line(header), rule] + [line(r) for r in body] + [rule]
    for p in res.points:
        if p["error"]:
            lines.append(f"failed: B={p['beams']} Ω={p['omega']:g} 1+ε={p['one_plus_epsilon']:g}: {p['error']}")
    for r in res.rows:
        if r.get("error") is None and not r["exact"]:
            lines.append(f"inexact: B={r['beams']} Ω={r['omega']:g} 1+ε={r['one_plus_epsilon']:g} "
                         f"{r['set']}/{r['image']}: {r.get('detail')}")
        elif r.get("error") is not None and not any(p["error"] for p in res.points
                                                    if (p["omega"], p["one_plus_epsilon"], p["beams"])
                                                    == (r["omega"], r["one_plus_epsilon"], r["beams"])):
            lines.append(f"error: B={r['beams']} Ω={r['omega']:g} 1+ε={r['one_plus_epsilon']:g} "
                         f"{r['set']}/{r['image']}: {r['error']}")
    return "\n".join(lines)


def plot_heatmaps(res: AblationResult, out_dir: str) -> dict[str, str]:
    """For each metric of ``HEATMAPS``: one PNG, one Ω × (1+ε) panel per B, annotated cells."""
    from irec_jax.bench import plots

    by = {(p["beams"], p["omega"], p["one_plus_epsilon"]): p for p in res.points}
    grid = res.grid
    paths = {}
    for key, title, fmt in HEATMAPS:
        panels = []
        for b in grid.beams:
            values = np.full((len(grid.omega), len(grid.one_plus_epsilon)), np.nan)
            texts = np.full(values.shape, "", dtype=object)
            for i, o in enumerate(grid.omega):
                for j, e in enumerate(grid.one_plus_epsilon):
                    p = by[b, o, e]
                    v = p.get(key)
                    if v is None:
                        texts[i, j] = "failed"
                        continue
                    values[i, j] = v
                    texts[i, j] = fmt.format(v) + ("" if p["all_exact"] else "\n(inexact)")
            panels.append((f"B = {b}", values, texts))
        paths[f"heatmap:{key}"] = plots.plot_heatmaps(
            os.path.join(out_dir, f"ablation_{key}.png"), panels,
            row_labels=[f"{o:g}" for o in grid.omega], col_labels=[f"{e:g}" for e in grid.one_plus_epsilon],
            title=f"{title}\n{len(res.images)} images, model {res.model['name']} ({res.model['param_hash']})",
            xlabel="1+ε", ylabel="Ω (nats/step)")
    return paths


def write_outputs(res: AblationResult, out_dir: str, plots: bool = True) -> dict[str, str]:
    """``ablation.json``, ``ablation_table.txt`` and the heatmaps in ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {"json": os.path.join(out_dir, "ablation.json"), "table": os.path.join(out_dir, "ablation_table.txt")}
    if plots:
        paths.update(plot_heatmaps(res, out_dir))
    doc = to_json(res)
    doc["files"] = {k: os.path.basename(v) for k, v in paths.items()}
    with open(paths["json"], "w") as f:
        json.dump(doc, f, indent=2, allow_nan=False)
    with open(paths["table"], "w") as f:
        f.write(format_table(res) + "\n")
    return paths


def ablate(grid: Grid, sets: Sequence[ImageSet], model: Any = "default", out: str = "eval_out", *,
           seed: int = 0, mc_samples: int = DEFAULT_MC_SAMPLES, progress: bool = True, plots: bool = True,
           warmup: bool = True, echo: Callable[[str], None] = print) -> tuple[AblationResult, dict[str, str]]:
    """Run, write the outputs to ``out`` and echo the table (the ``eval.py --ablation`` entry point)."""
    res = run(grid, sets, model, seed=seed, mc_samples=mc_samples, progress=progress, warmup=warmup)
    paths = write_outputs(res, out, plots=plots)
    echo(format_table(res))
    echo(f"wrote {os.path.abspath(out)}/ ({', '.join(sorted(os.path.basename(p) for p in paths.values()))})")
    return res, paths
