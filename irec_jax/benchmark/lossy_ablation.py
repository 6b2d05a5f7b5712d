"""The lossy iREC ablation: ``python eval.py --ablation --lossy [--lossy-model PATH] [--grid default|small]
[--feedback 0,10]``.

For one lossy model (``irec_jax.lossy``), every grid point -- the error
feedback's steps (``--feedback``: one value or a list; by default the codec's),
Ω (nats per step), 1+ε (candidate oversampling), B (beams) and the
distortion-aware final pick, ``final_choices`` = 1 (the search's own pick) or
= B (the encoder compares all B final beams of z1 with the image by squared
error and keeps the closest, ``irec_jax.lossy``) -- codes every image with the real codec
(``lossy.compress_report``) and decodes the file with
``irec_jax.codec.decompress`` (which checks the CRC of the encoder's own
reconstruction). Per image and point, from the real bytes and the decoded
pixels:

- ``bpp`` = 8·file bytes / (H·W), ``psnr`` of the decoded image (dB, RGB);
- ``gap_db`` = psnr − the ideal's PSNR and ``bpp_ratio`` = bpp / the ideal's
  bpp, the ideal being ``lossy.ideal_report`` on the same image with the same
  model (an estimate: the KL bits of both layers and the decode of one
  posterior sample), computed once per image;
- ``encode_s`` / ``decode_s``: wall clock of calls that compiled nothing
  (the first image of each point is coded once untimed; an image whose shape
  makes JAX compile anew is coded a second time for its timing, ``retimed``).

Per point: means over the images that did not fail. A failing point or image
is recorded with its error and the run goes on. Images under 64 px on a side
cannot be coded by the lossy models and are left out with one note.
Outputs (``write_outputs``): ``lossy_ablation.json`` and
``lossy_ablation_table.txt``. The grid axes, their validation and each point's
coder settings are the lossless ablation's (``ablation_grid``).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import time
from typing import Any, Callable, Sequence

import numpy as np

from irec_jax.benchmark.ablation import _CompileCounter, _model_info
from irec_jax.benchmark.ablation_grid import DEFAULT_BLOCK_KL, GridPoint, make_grid
from irec_jax.benchmark.errors import EvalError, error_text
from irec_jax.benchmark.report import environment, finite, text_table
from irec_jax.benchmark.sets import ImageSet, bundled_sets, first_images

__all__ = ["GRIDS", "LossyGrid", "make_lossy_grid", "lossy_images", "default_sets", "LossyAblationResult", "run",
           "to_json", "format_table", "write_outputs", "ablate"]

# Ω x (1+ε) x B, each B with final_choices 1 and B. "small": four points for a quick check. Both at the codec's
# error feedback (``feedback`` None) unless ``--feedback`` gives steps.
GRIDS: dict[str, dict[str, tuple]] = {
    "default": {"omega": (2.0, 3.0, 4.0), "one_plus_epsilon": (1.0, 1.1, 1.2), "beams": (1, 10, 20)},
    "small": {"omega": (3.0,), "one_plus_epsilon": (1.0, 1.2), "beams": (4,)},
}


@dataclasses.dataclass(frozen=True)
class LossyGrid:
    """Error feedback steps × Ω × (1+ε) × B, and per B the final pick among 1 and B final beams (one point
    when B = 1). ``feedback``: steps per part of z1 after the first (``irec_jax.lossy.feedback_steps``), None
    for the codec's default."""

    name: str
    omega: tuple
    one_plus_epsilon: tuple
    beams: tuple
    feedback: tuple = (None,)

    @property
    def points(self) -> list[GridPoint]:
        """One feedback value's points: B outermost, then final_choices (1, B), then Ω, then 1+ε."""
        return [GridPoint(o, e, b, DEFAULT_BLOCK_KL, c) for b in self.beams for c in dict.fromkeys((1, b))
                for o in self.omega for e in self.one_plus_epsilon]


def make_lossy_grid(omega: Sequence[float], one_plus_epsilon: Sequence[float], beams: Sequence[int],
                    name: str = "custom", seed: int = 0, feedback: Sequence[int | None] = (None,)) -> LossyGrid:
    """A ``LossyGrid``, its axes and (Ω, 1+ε, B) points checked by ``ablation_grid.make_grid`` (EvalError naming
    a bad value); final_choices = B is valid wherever final_choices = 1 is. ``feedback``: steps, each None (the
    codec's default) or an int in 0..10000, without repeats."""
    from irec_jax.codec import check_refine

    axes = make_grid(omega, one_plus_epsilon, beams, name=name, seed=seed)
    feedback = tuple(feedback)
    if not feedback or len(set(feedback)) != len(feedback):
        raise EvalError(f"ablation grid: feedback {feedback!r}: give one or more distinct step counts")
    for f in feedback:
        try:
            check_refine(f, "feedback")
        except ValueError as e:
            raise EvalError(f"ablation grid: {e}") from None
    return LossyGrid(name, axes.omega, axes.one_plus_epsilon, axes.beams, feedback)


def lossy_images(sets: Sequence[ImageSet]) -> tuple[list[tuple[str, str, np.ndarray]], str | None]:
    """((set, id, image) of every RGB image with both sides >= 64, a note on those left out or None);
    EvalError when none is left."""
    from irec_jax.lossy import MIN_SIDE

    out, left = [], []
    for s in sets:
        for img, image_id in zip(s.images, s.ids):
            ok = img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= MIN_SIDE
            (out if ok else left).append((s.name, image_id, img))
    note = None if not left else (f"left out {len(left)} of {len(left) + len(out)} images that are not RGB with both "
                                  f"sides >= {MIN_SIDE} px (the lossy models' minimum), e.g. {left[0][0]}/{left[0][1]}")
    if not out:
        raise EvalError(f"no image the lossy models can code: {note}")
    return out, note


def default_sets(limit: int | None = None) -> list[ImageSet]:
    """The bundled 64x64 photos ("photos64"), the first ``limit`` of them."""
    return [first_images(bundled_sets()[1], limit)]


@dataclasses.dataclass
class LossyAblationResult:
    """What ``run`` measured."""

    grid: LossyGrid
    model: dict  # ablation._model_info
    images: list  # of dicts: set, image, height, width, ideal_bits, ideal_bpp, ideal_psnr, ideal_s
    points: list  # of per-point aggregate dicts, grid order
    rows: list  # of per-image row dicts
    notes: list  # of str
    seed: int
    started: str
    wall_s: float


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    from irec_jax import metrics

    return float(metrics.psnr(a, b))


def _ideal(cm, set_name: str, image_id: str, img: np.ndarray, refine: int) -> dict:
    from irec_jax import lossy

    t0 = time.perf_counter()
    bits, decoded = lossy.ideal_report(img, model=cm, refine=refine)
    h, w, _ = img.shape
    return {"set": set_name, "image": image_id, "height": h, "width": w, "ideal_bits": float(bits),
            "ideal_bpp": float(bits) / (h * w), "ideal_psnr": _psnr(img, decoded),
            "ideal_s": time.perf_counter() - t0}


def _point_fields(point: GridPoint, feedback: int) -> dict:
    return {"feedback_steps": feedback, "omega": point.omega, "one_plus_epsilon": point.one_plus_epsilon,
            "epsilon": point.epsilon, "beams": point.beams, "num_candidates": point.num_candidates,
            "final_choices": point.final_choices}


def _code(img: np.ndarray, cm, settings, enc: dict, compiles: _CompileCounter, warmup: bool) -> dict:
    """One image at one point: encode (``enc``: the refine and feedback steps), decode (CRC checked), scores
    and times (retimed after a compile)."""
    from irec_jax import codec, lossy

    before = compiles.count
    data, rep = lossy.compress_report(img, model=cm, settings=settings, **enc)
    retimed = warmup and compiles.count > before
    if retimed:  # a new shape compiled: time a compiled call
        again, rep = lossy.compress_report(img, model=cm, settings=settings, **enc)
        if again != data:
            raise RuntimeError("a second encode of the same image gave different bytes")
    for _ in range(2):
        before = compiles.count
        d0 = time.perf_counter()
        out = codec.decompress(data, model=cm)
        decode_s = time.perf_counter() - d0
        if not (warmup and compiles.count > before):
            break
        retimed = True
    return {"total_bytes": len(data), "bpp": 8.0 * len(data) / (img.shape[0] * img.shape[1]),
            "psnr": _psnr(img, out), "index_bits": float(rep.index_bits), "kl_bpp": float(rep.kl_bpp),
            "encode_s": float(rep.encode_seconds), "decode_s": decode_s, "retimed": bool(retimed)}


# Per-point aggregates: means over the images that did not fail.
AGGREGATES = ("bpp", "psnr", "gap_db", "bpp_ratio", "ideal_bpp", "ideal_psnr", "kl_bpp", "index_bits",
              "total_bytes", "encode_s", "decode_s")


def _run_point(point: GridPoint, images, ideals, cm, enc: dict, seed: int, warmup: bool,
               compiles: _CompileCounter, progress: bool) -> tuple[dict, list[dict]]:
    from tqdm.auto import tqdm

    from irec_jax import codec, lossy

    base = _point_fields(point, enc["feedback"])
    error, warm_s, rows = None, None, []
    try:
        settings = point.settings(seed)
        if warmup:
            w0 = time.perf_counter()
            codec.decompress(lossy.compress(images[0][2], model=cm, settings=settings, **enc), model=cm)
            warm_s = time.perf_counter() - w0
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # also pyo3 PanicException from the Rust coders
        error = error_text(e)
    label = f"fb={enc['feedback']} {point.label}"
    for (set_name, image_id, img), ideal in zip(tqdm(images, desc=label, leave=False, disable=not progress),
                                                ideals):
        row = {"set": set_name, "image": image_id, "height": img.shape[0], "width": img.shape[1], **base,
               "ideal_bpp": ideal["ideal_bpp"], "ideal_psnr": ideal["ideal_psnr"], "error": error}
        if error is None:
            try:
                row.update(_code(img, cm, settings, enc, compiles, warmup))
                row["gap_db"] = row["psnr"] - ideal["ideal_psnr"]
                row["bpp_ratio"] = row["bpp"] / ideal["ideal_bpp"] if ideal["ideal_bpp"] > 0 else None
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:
                row["error"] = error_text(e)
        rows.append(row)
    ok = [r for r in rows if r["error"] is None]
    agg = {**base, "num_images": len(rows), "num_ok": len(ok), "warmup_s": warm_s,
           "num_retimed": sum(1 for r in ok if r["retimed"]),
           "error": error if error is not None else (None if ok else "every image failed")}
    for k in AGGREGATES:
        vals = [r[k] for r in ok if r.get(k) is not None]
        agg[k] = float(np.mean(vals)) if vals else None
    return agg, rows


def _load(model: Any):
    from irec_jax import lossy, modelzoo

    try:
        return lossy.check_lossy_model(modelzoo.lossy_model(None, model))
    except ValueError as e:  # ModelError
        raise EvalError(f"--lossy-model {model}: {e}" if model is not None else
                        f"the lossy ablation needs --lossy-model PATH ({e})") from None


def run(grid: LossyGrid, sets: Sequence[ImageSet], model: Any = None, *, seed: int = 0, progress: bool = True,
        warmup: bool = True, refine: int | None = None) -> LossyAblationResult:
    """The ideal of every image, then every image coded and decoded at every grid point (the grid's error
    feedback values outermost). ``model``: a lossy model folder, train.py workdir or ``CodecModel``; None: the
    bundled middle quality. ``refine``: the posterior refinement steps of both the coder and the ideal
    (``irec_jax.lossy.refine_steps``; None: the codec's default for the model), so that the gap is the
    coder's alone."""
    from tqdm.auto import tqdm

    from irec_jax import lossy

    cm = _load(model)
    try:
        refine = lossy.refine_steps(cm, refine)
    except ValueError as e:  # also ModelError
        raise EvalError(f"--refine: {e}") from None
    try:
        feedback = list(dict.fromkeys(lossy.feedback_steps(cm, f, refine) for f in grid.feedback))
    except ValueError as e:  # also ModelError
        raise EvalError(f"--feedback: {e}") from None
    images, note = lossy_images(sets)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    ideals = [_ideal(cm, s, i, img, refine)
              for s, i, img in tqdm(images, desc="ideal", leave=False, disable=not progress)]
    points, rows = [], []
    with _CompileCounter() as compiles:
        for fb, point in tqdm([(f, p) for f in feedback for p in grid.points], desc="lossy ablation",
                              disable=not progress):
            enc = {"refine": refine, "feedback": fb}
            agg, mine = _run_point(point, images, ideals, cm, enc, seed, warmup, compiles, progress)
            points.append(agg)
            rows += mine
    info = {**_model_info(cm, model if model is not None else cm.name), "refine_steps": refine,
            "feedback_steps": feedback}
    return LossyAblationResult(grid, info, ideals, points, rows,
                               [note] if note else [], seed, started, time.perf_counter() - t0)


# --- outputs --------------------------------------------------------------------------------------

METRICS_DOC = {
    "bpp": "8 * file bytes / (H*W): the real .irec file, header included",
    "psnr": ("PSNR-RGB (dB) of the image irec_jax.codec.decompress returns (CRC of the encoder's reconstruction "
             "checked)"),
    "ideal_bpp": ("estimate: KL(q||p) of both latent layers in bits / (H*W), against the model's integer priors "
                  "(irec_jax.lossy.ideal_report): what an ideal relative entropy coder would spend"),
    "ideal_psnr": "estimate: PSNR of the integer synthesis of one posterior sample (fixed key)",
    "gap_db": "psnr - ideal_psnr, same image and model (negative: the coder's pick decodes worse than the sample)",
    "bpp_ratio": "bpp / ideal_bpp (1 = no rate overhead over the ideal coder)",
    "kl_bpp": "KL bits per pixel along the coded path (the coder's own KL, z1's prior given the coded z2)",
    "index_bits": "exact codelength, bits, of the step counts and candidate indices",
    "final_choices": ("1: the search's own pick; B: the encoder compares all B final beams of z1 with the image by "
                      "squared error and keeps the closest (same index bits; irec_jax.lossy)"),
    "feedback_steps": ("the coder's error feedback: Adam steps on the posteriors of z1's dims still to code before "
                       "each of its parts after the first (irec_jax.lossy.FEEDBACK_CHUNKS parts); 0: none"),
    "encode_s": ("encode wall clock, seconds, of a call that compiled nothing (the first image of each point is "
                 "coded once untimed; an image whose shape compiles anew is coded again: retimed)"),
    "decode_s": "decode wall clock, seconds (codec.decompress; retimed like encode_s)",
    "aggregates": "per point: means over the images that did not fail",
}


def to_json(res: LossyAblationResult) -> dict:
    """``lossy_ablation.json``: ``grid``, ``points``, ``rows``, ``images`` (with their ideal), ``model``,
    ``notes``, ``metrics``, ``started`` (UTC), ``wall_s``, ``seed``, ``environment``."""
    g = res.grid
    return finite({
        "name": "irec_jax lossy iREC ablation",
        "description": ("Lossy iREC over the error feedback's steps, omega (nats/step), 1+epsilon, beams B and the "
                        "final pick (final_choices 1 or B, by squared error); bpp from the real bytes, PSNR of the "
                        "decoded file, gap to the ideal (an estimate: KL rate and one posterior sample's decode) on "
                        "the same image."),
        "started": res.started, "wall_s": res.wall_s, "seed": res.seed, "model": res.model,
        "grid": {"name": g.name, "omega": list(g.omega), "one_plus_epsilon": list(g.one_plus_epsilon),
                 "beams": list(g.beams), "final_choices": "1 and B", "feedback_steps": res.model["feedback_steps"],
                 "points": [_point_fields(p, f) for f in res.model["feedback_steps"] for p in g.points]},
        "images": res.images, "points": res.points, "rows": res.rows, "notes": res.notes,
        "metrics": METRICS_DOC, "environment": environment(jax=True),
    })


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _where(d: dict) -> str:
    """A point's or row's grid coordinates, for messages."""
    return (f"fb={d['feedback_steps']} B={d['beams']} choice={d['final_choices']} Ω={d['omega']:g} "
            f"1+ε={d['one_plus_epsilon']:g}")


def format_table(res: LossyAblationResult) -> str:
    """One line per grid point (feedback steps, B, final pick, Ω, 1+ε), then failures and notes."""
    ideal_bpp = np.mean([i["ideal_bpp"] for i in res.images])
    ideal_psnr = np.mean([i["ideal_psnr"] for i in res.images])
    title = (f"Lossy iREC ablation: model {res.model['name']} ({res.model['param_hash']}), {len(res.images)} images, "
             f"grid {res.grid.name!r}, {len(res.points)} points, {res.wall_s:.0f} s, posteriors refined "
             f"{res.model.get('refine_steps', 0)} steps (coder and ideal); fb: the coder's error feedback, steps a "
             "part\n"
             f"ideal (estimate: KL rate, one posterior sample's decode): mean {ideal_bpp:.4f} bpp, {ideal_psnr:.2f} dB;"
             " gap = PSNR - ideal PSNR, ratio = bpp / ideal bpp, means over images; choice: final beams compared "
             "by squared error")
    body = [[str(p["feedback_steps"]), str(p["beams"]), str(p["final_choices"]), f"{p['omega']:g}",
             f"{p['one_plus_epsilon']:g}", str(p["num_candidates"]), _fmt(p["bpp"], ".4f"), _fmt(p["psnr"], ".2f"),
             _fmt(p["gap_db"], "+.2f"),
             _fmt(p["bpp_ratio"], ".3f"), _fmt(p["encode_s"], ".2f"), _fmt(p["decode_s"], ".2f"),
             "FAILED" if p["error"] else f"{p['num_ok']}/{p['num_images']}"] for p in res.points]
    header = ["fb", "B", "choice", "Ω", "1+ε", "N", "bpp", "PSNR dB", "gap dB", "ratio", "enc s", "dec s", "ok"]
    lines = [text_table(header, body, title)]
    lines += [f"failed: {_where(p)}: {p['error']}" for p in res.points if p["error"]]
    failed = {_where(p) for p in res.points if p["error"]}
    lines += [f"error: {_where(r)} {r['set']}/{r['image']}: {r['error']}" for r in res.rows
              if r["error"] and _where(r) not in failed]
    lines += [f"note: {n}" for n in res.notes]
    return "\n".join(lines)


def write_outputs(res: LossyAblationResult, out_dir: str) -> dict[str, str]:
    """``lossy_ablation.json`` and ``lossy_ablation_table.txt`` in ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {"json": os.path.join(out_dir, "lossy_ablation.json"),
             "table": os.path.join(out_dir, "lossy_ablation_table.txt")}
    with open(paths["json"], "w") as f:
        json.dump(to_json(res), f, indent=2, allow_nan=False)
    with open(paths["table"], "w") as f:
        f.write(format_table(res) + "\n")
    return paths


def ablate(grid: LossyGrid, sets: Sequence[ImageSet], model: Any = None, out: str = "eval_out", *, seed: int = 0,
           progress: bool = True, warmup: bool = True, refine: int | None = None,
           echo: Callable[[str], None] = print) -> tuple[LossyAblationResult, dict[str, str]]:
    """Run, write the outputs to ``out`` and echo the table (``eval.py --ablation --lossy``)."""
    res = run(grid, sets, model, seed=seed, progress=progress, warmup=warmup, refine=refine)
    paths = write_outputs(res, out)
    echo(format_table(res))
    echo(f"wrote {os.path.abspath(out)}/ ({', '.join(sorted(os.path.basename(p) for p in paths.values()))})")
    return res, paths
