"""The lossy benchmark's report: BD figures, the text table, CompressAI JSON, per-image rows, RD plots.

``bd_table(curves, anchor_names, test_name)`` gives Bjøntegaard deltas of one
test curve against anchors (the PyPI ``bjontegaard`` package, Akima
interpolation by default): BD-rate at equal PSNR, BD-PSNR at equal rate and
BD-rate at equal MS-SSIM (dB). A curve with too few points, points that do
not rise in both rate and quality, or no overlap gives a row error, not an
exception. ``gap_table`` pairs iREC's coded curve with its ideal (an estimate)
model by model: the dB its files lose to the ideal coder's sample and the bpp
ratio of the files to the ideal KL rate. ``write_lossy_outputs`` writes ``compressai/<codec>.json`` (one
CompressAI file per curve), ``lossy_results.json``, ``lossy_rows.csv``,
``lossy_table.txt`` and four plots (PSNR and MS-SSIM dB against bpp, linear
and log x); ``reference_curves()`` are published curves shipped in
``reference_curves.json`` (drawn dashed, never downloaded). ``run_lossy_suite``
is ``eval.py --lossy``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import warnings
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from irec_jax.benchmark.errors import EvalError, error_text
from irec_jax.benchmark.lossy import (IREC, IREC_CURVES, IREC_IDEAL, LOSSY_NAMES, Curve, LossyResults, LossyRow,
                                      classical_lossy_codecs, curves, irec_lossy_codecs, run_lossy)
from irec_jax.benchmark.report import _slug, environment, finite, text_table
from irec_jax.benchmark.sets import load_sets

if TYPE_CHECKING:
    from irec_jax.benchmark.suite import EvalSpec

__all__ = ["BD_METHOD", "MIN_BD_POINTS", "BDRow", "bd_table", "GapRow", "gap_table", "ideal_psnr_at",
           "reference_curves", "compressai_entry",
           "format_lossy_table", "plot_rd", "write_lossy_outputs", "run_lossy_suite"]

BD_METHOD = "akima"  # bjontegaard's Akima-spline interpolation (its other methods: "pchip", "cubic")
MIN_BD_POINTS = 4  # Bjøntegaard's original method fits four points
REFERENCE_FILE = "reference_curves.json"


# --- Bjøntegaard deltas --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class BDRow:
    """``test`` against ``anchor``: BD-rate in % (negative: fewer bits at equal quality), BD-PSNR in dB
    (positive: better at equal rate). A value is None where it could not be computed (``error`` says why);
    ``note`` flags a partial overlap of the curves."""

    anchor: str
    test: str
    method: str
    bd_rate: float | None  # % at equal PSNR
    bd_psnr: float | None  # dB at equal bpp
    bd_rate_ms_ssim: float | None  # % at equal MS-SSIM dB
    test_estimate: bool
    error: str | None
    note: str | None


_METRIC_LABEL = {"psnr": "PSNR", "ms_ssim_db": "MS-SSIM dB"}


def _bd_points(curve: Curve, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(bpp [P], quality [P]) of ``curve``'s finished points, sorted by bpp; ValueError unless there are at
    least ``MIN_BD_POINTS`` and both rise strictly."""
    label = _METRIC_LABEL[metric]
    pts = sorted((b, m) for b, m in zip(curve.bpp, getattr(curve, metric)) if b is not None and m is not None)
    if len(pts) < MIN_BD_POINTS:
        raise ValueError(f"{curve.name} has {len(pts)} {label} points, BD needs {MIN_BD_POINTS}")
    rate, quality = np.asarray(pts, float).T
    bad = np.flatnonzero((np.diff(rate) <= 0) | (np.diff(quality) <= 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{curve.name} is not monotone: {label} {quality[i]:.3f} -> {quality[i + 1]:.3f} "
                         f"from {rate[i]:.4f} to {rate[i + 1]:.4f} bpp")
    return rate, quality


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Length of the intersection of the ranges of ``a`` and ``b`` over the length of their union."""
    union = max(a.max(), b.max()) - min(a.min(), b.min())
    return max(min(a.max(), b.max()) - max(a.min(), b.min()), 0.0) / union if union > 0 else 1.0


def _bd(kind: str, anchor: Curve, test: Curve, metric: str, method: str) -> tuple[float | None, str | None,
                                                                                    str | None]:
    """(value, error, note) of ``bjontegaard.bd_rate`` / ``bd_psnr`` (``kind``) on ``metric``."""
    label = f"BD-{'rate' if kind == 'rate' else 'PSNR'} ({_METRIC_LABEL[metric]})"
    try:
        import bjontegaard

        ra, qa = _bd_points(anchor, metric)
        rt, qt = _bd_points(test, metric)
        fn = bjontegaard.bd_rate if kind == "rate" else bjontegaard.bd_psnr
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # overlap: measured below, said in the note
            value = float(fn(ra, qa, rt, qt, method=method, require_matching_points=False, min_overlap=0.0))
    except Exception as e:
        return None, f"{label}: {error_text(e)}", None
    along = (qa, qt) if kind == "rate" else (np.log10(ra), np.log10(rt))
    overlap = _overlap(*along)
    if not np.isfinite(value) or overlap == 0:
        return None, f"{label}: the curves do not overlap", None
    note = f"{label} over {100 * overlap:.0f}% overlap" if overlap < 0.75 else None
    return value, None, note


def _has(curve: Curve, metric: str) -> bool:
    """Whether ``curve`` has any point with ``metric``."""
    return any(v is not None for v in getattr(curve, metric))


def bd_table(curve_list: Sequence[Curve], anchor_names: Sequence[str], test_name: str,
             method: str = BD_METHOD) -> list[BDRow]:
    """One ``BDRow`` per anchor: curve ``test_name`` against each of ``anchor_names`` (curves by name; a
    missing curve or a failed figure is the row's ``error``, never an exception)."""
    by_name = {c.name: c for c in curve_list}
    test = by_name.get(test_name)
    rows = []
    for name in anchor_names:
        anchor = by_name.get(name)
        missing = [n for n, c in ((name, anchor), (test_name, test)) if c is None]
        if missing:
            rows.append(BDRow(name, test_name, method, None, None, None, bool(test and test.estimate),
                              f"no curve named {' or '.join(map(repr, missing))} in this run", None))
            continue
        results = [_bd("rate", anchor, test, "psnr", method), _bd("psnr", anchor, test, "psnr", method)]
        if _has(anchor, "ms_ssim_db") and _has(test, "ms_ssim_db"):
            results.append(_bd("rate", anchor, test, "ms_ssim_db", method))
        else:  # no MS-SSIM at all (images too small): not an error, the table says n/a
            results.append((None, None, None))
        errors = [e for _, e, _ in results if e]
        notes = [n for _, _, n in results if n]
        rows.append(BDRow(name, test_name, method, *(v for v, _, _ in results), test.estimate,
                          "; ".join(errors) or None, "; ".join(notes) or None))
    return rows


# --- coded against ideal ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class GapRow:
    """One rate point (model) of a coded curve against its ideal estimate, means over the images:
    ``psnr_gap_db`` = PSNR of the decoded files minus PSNR of the ideal's decode (negative: the coder loses),
    ``bpp_ratio`` = bpp of the files / the ideal KL bpp (1 = no rate overhead), ``psnr_gap_equal_rate_db`` =
    PSNR of the files minus the ideal *curve*'s PSNR at the files' bpp (``ideal_psnr_at``: the gap between
    the curves, which also counts the files' extra bits). None where a side failed."""

    setting: str
    bpp: float | None
    bpp_ideal: float | None
    bpp_ratio: float | None
    psnr: float | None
    psnr_ideal: float | None
    psnr_gap_db: float | None
    num_images: int
    num_images_ideal: int
    psnr_gap_equal_rate_db: float | None = None


def ideal_psnr_at(bpp: float, curve: Curve) -> float | None:
    """The PSNR of ``curve`` at ``bpp`` > 0: linear in log bpp between its points (sorted by bpp), extended
    from its first or last segment outside them; None with fewer than 2 distinct points that have both."""
    pts = sorted((np.log(b), p) for b, p in zip(curve.bpp, curve.psnr) if b is not None and b > 0 and p is not None)
    if len(pts) < 2 or bpp <= 0:
        return None
    x = float(np.log(bpp))
    k = min(max(int(np.searchsorted([b for b, _ in pts], x)) - 1, 0), len(pts) - 2)
    (b0, p0), (b1, p1) = pts[k], pts[k + 1]
    return float(p0 + (p1 - p0) * (x - b0) / (b1 - b0)) if b1 > b0 else None


def gap_table(curve_list: Sequence[Curve], coded: str = IREC, ideal: str = IREC_IDEAL) -> list[GapRow]:
    """``coded`` against ``ideal`` at each of ``coded``'s settings (its point order); [] unless both ran."""
    by_name = {c.name: c for c in curve_list}
    if coded not in by_name or ideal not in by_name:
        return []
    c, i = by_name[coded], by_name[ideal]
    at = {s: k for k, s in enumerate(i.settings)}
    rows = []
    for k, setting in enumerate(c.settings):
        j = at.get(setting)
        bi, pi, ni = (None, None, 0) if j is None else (i.bpp[j], i.psnr[j], i.num_images[j])
        b, p = c.bpp[k], c.psnr[k]
        curve_psnr = ideal_psnr_at(b, i) if b is not None else None
        rows.append(GapRow(str(setting), b, bi, b / bi if b is not None and bi else None, p, pi,
                           p - pi if p is not None and pi is not None else None, c.num_images[k], ni,
                           p - curve_psnr if p is not None and curve_psnr is not None else None))
    return rows


# --- published reference curves -------------------------------------------------------------------

def reference_curves(path: str | None = None) -> list[Curve]:
    """The published curves of ``reference_curves.json`` (shipped in the package) as ``Curve`` records with
    ``source`` set (repository, path, commit, dataset). Reads the file; never the network."""
    path = path or os.path.join(os.path.dirname(os.path.abspath(__file__)), REFERENCE_FILE)
    with open(path) as f:
        doc = json.load(f)
    out = []
    for entry in doc["curves"]:
        r = entry["results"]
        n = len(r["bpp"])
        ms = tuple(r.get("ms-ssim") or [None] * n)
        none = (None,) * n
        out.append(Curve(entry["name"], entry["description"], "quality", tuple(range(1, n + 1)), tuple(r["bpp"]),
                         tuple(r["psnr-rgb"]), ms, tuple(None if v is None else -10 * np.log10(1 - v) for v in ms),
                         none, none, (entry.get("num_images"),) * n, (0,) * n, source=entry["source"]))
    return out


# --- tables and files -----------------------------------------------------------------------------

def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _format_gaps(gaps: Sequence[GapRow]) -> str:
    body = [[g.setting, _num(g.bpp, ".4f"), _num(g.bpp_ideal, ".4f"), _num(g.bpp_ratio, ".3f"), _num(g.psnr, ".2f"),
             _num(g.psnr_ideal, ".2f"), _num(g.psnr_gap_db, "+.2f"), _num(g.psnr_gap_equal_rate_db, "+.2f"),
             f"{g.num_images}/{g.num_images_ideal}"]
            for g in gaps]
    return text_table(["model", "bpp", "ideal bpp", "bpp ratio", "PSNR dB", "ideal PSNR", "gap dB",
                       "gap at equal bpp", "images"], body,
                      f"{IREC} coded vs {IREC_IDEAL} (an estimate: KL bits of both layers; decode of one posterior "
                      "sample), per model: bpp ratio = file bpp / ideal bpp, gap = PSNR of the files - PSNR "
                      "of the ideal, gap at equal bpp = PSNR of the files - the ideal curve's PSNR at their bpp "
                      "(linear in log bpp between its points)", left=1)


def _bd_problems(bd_rows: Sequence[BDRow]) -> list[str]:
    """One line per (test, error) with the anchors it holds for, then the partial-overlap notes."""
    errors: dict = {}
    for r in bd_rows:
        if r.error:
            errors.setdefault((r.test, r.error), []).append(r.anchor)
    lines = [f"BD {test} vs {', '.join(anchors)}: {error}" for (test, error), anchors in errors.items()]
    return lines + [f"BD {r.test} vs {r.anchor}: {r.note}" for r in bd_rows if r.note]


def format_lossy_table(results: LossyResults, curve_list: Sequence[Curve], bd_rows: Sequence[BDRow] = (),
                       gaps: Sequence[GapRow] = ()) -> str:
    """The readable summary: one block of rows per codec (setting, mean bpp, PSNR, MS-SSIM, MS-SSIM dB,
    ms per image), then the BD table, the coded-vs-ideal gaps, then unavailable codecs, failures and notes,
    once each."""
    n = sum(k for _, k, _ in results.sets)
    body = []
    for c in curve_list:
        for i, setting in enumerate(c.settings):
            failed = f" !{c.num_failed[i]}" if c.num_failed[i] else ""
            body.append([c.name + (" (estimate)" if c.estimate else "") if i == 0 else "",
                         f"{c.setting_name} {setting}", _num(c.bpp[i], ".4f") + failed, _num(c.psnr[i], ".2f"),
                         _num(c.ms_ssim[i], ".4f"), _num(c.ms_ssim_db[i], ".2f"),
                         _num(None if c.encoding_time[i] is None else 1e3 * c.encoding_time[i], ".1f"),
                         _num(None if c.decoding_time[i] is None else 1e3 * c.decoding_time[i], ".1f")])
    sets = ", ".join(f"{name} ({k})" for name, k, _ in results.sets)
    parts = [text_table(["codec", "setting", "bpp", "PSNR dB", "MS-SSIM", "MS-SSIM dB", "enc ms", "dec ms"], body,
                        f"Lossy rate-distortion over {n} images ({sets}): per setting, mean bpp (8 * file bytes / "
                        "(H*W)) and mean per-image PSNR-RGB / MS-SSIM; ms per image", left=2)]
    if bd_rows:
        bd_body = [[r.test + (" (estimate)" if r.test_estimate else ""), r.anchor, _num(r.bd_rate, "+.2f"),
                    _num(r.bd_psnr, "+.3f"), _num(r.bd_rate_ms_ssim, "+.2f")] for r in bd_rows]
        parts.append(text_table(["test", "anchor", "BD-rate % (PSNR)", "BD-PSNR dB", "BD-rate % (MS-SSIM dB)"],
                                bd_body, f"Bjontegaard deltas ({bd_rows[0].method} interpolation; negative BD-rate "
                                "= fewer bits at equal quality)", left=2))
        parts += _bd_problems(bd_rows)
    if gaps:
        parts.append(_format_gaps(gaps))
    parts += [f"skipped: {name}: {reason}" for name, reason in results.unavailable.items()]
    seen = set()
    for r in results.rows:
        if r.error and r.codec not in seen:
            seen.add(r.codec)
            count = sum(1 for x in results.rows if x.codec == r.codec and x.error)
            parts.append(f"error: {r.codec}: {count} coding(s) failed, first {r.set}/{r.image} at "
                         f"{r.setting}: {r.error} (left out of the means: !N above)")
    parts += [f"note: {note}" for note in results.notes]
    return "\n".join(parts)


def compressai_entry(curve: Curve) -> dict:
    """``curve`` in CompressAI's results schema (``{"name", "description", "results": {metric: [S]}}``),
    plus ``estimate``, ``settings`` and per-setting image counts beside ``results``."""
    desc = curve.description
    if curve.estimate:
        desc += "; estimate: the rate is a model's estimate, no file was written"
    return finite({"name": curve.name, "description": desc, "estimate": curve.estimate,
                   "setting_name": curve.setting_name, "settings": list(curve.settings),
                   "num_images": list(curve.num_images), "num_failed": list(curve.num_failed),
                   "results": {"bpp": list(curve.bpp), "psnr-rgb": list(curve.psnr), "ms-ssim": list(curve.ms_ssim),
                               "ms-ssim-db": list(curve.ms_ssim_db), "encoding_time": list(curve.encoding_time),
                               "decoding_time": list(curve.decoding_time)}})


def _to_json(results: LossyResults, curve_list: Sequence[Curve], bd_rows: Sequence[BDRow],
             references: Sequence[Curve], gaps: Sequence[GapRow] = ()) -> dict:
    return finite({
        "name": "irec_jax lossy benchmark",
        "description": ("Lossy compression of 8-bit RGB images. bpp = 8 * whole-file bytes / (H*W) (estimates "
                        "labelled); per setting the mean over images of bpp and of per-image PSNR-RGB and MS-SSIM "
                        "(CompressAI's averaging), every file decoded and scored on its uint8 decode. "
                        f"Started {results.started} UTC, {results.wall_s:.1f} s."),
        "curves": {c.name: compressai_entry(c) for c in curve_list},
        "bd": [dataclasses.asdict(r) for r in bd_rows],
        "gap": {"coded": IREC, "ideal": IREC_IDEAL,
                "description": ("per model (setting), means over images: psnr_gap_db = PSNR of the decoded files - "
                                "PSNR of the ideal's decode; bpp_ratio = file bpp / ideal KL bpp (an estimate); "
                                "psnr_gap_equal_rate_db = PSNR of the decoded files - the ideal curve's PSNR at "
                                "their bpp (linear in log bpp between its points, extended from its end segments)"),
                "rows": [dataclasses.asdict(g) for g in gaps]},
        "references": [{"name": c.name, "source": c.source} for c in references],
        "sets": [{"name": n, "num_images": k, "source": s} for n, k, s in results.sets],
        "unavailable": dict(results.unavailable),
        "notes": list(results.notes),
        "rows": [dataclasses.asdict(r) for r in results.rows],
        "environment": environment(),
    })


def _draw(ax, curve: Curve, metric: str, color, reference: bool, max_bpp: float | None) -> None:
    pts = sorted((b, v) for b, v in zip(curve.bpp, getattr(curve, metric)) if b is not None and v is not None
                 and (max_bpp is None or b <= max_bpp))
    if not pts:
        return
    x, y = np.asarray(pts, float).T
    if reference:
        label = f"{curve.name} (published, {curve.source.get('dataset', '?')}; measured elsewhere)"
        ax.plot(x, y, color=color, linestyle="--", marker="x", markersize=4, linewidth=1.0, label=label)
    else:
        ax.plot(x, y, color=color, linestyle=":" if curve.estimate else "-", marker="o", markersize=3.5,
                linewidth=1.3, label=curve.name + (" (estimate)" if curve.estimate else ""))


def plot_rd(curve_list: Sequence[Curve], path: str, metric: str = "psnr", log_x: bool = False,
            references: Sequence[Curve] = ()) -> str:
    """One RD plot: ``metric`` ("psnr" or "ms_ssim_db") against bpp, a line with markers per curve (estimates
    dotted), ``references`` dashed within 1.25x the measured bpp range; returns ``path``."""
    from irec_jax.benchmark.plots import _colors, _figure

    fig = _figure(7.2, 6.0)
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot(1, 1, 1)
    colors = _colors(len(curve_list) + len(references))
    measured = [b for c in curve_list for b, v in zip(c.bpp, getattr(c, metric)) if b is not None and v is not None]
    for curve, color in zip(curve_list, colors):
        _draw(ax, curve, metric, color, False, None)
    for curve, color in zip(references, colors[len(curve_list):]):
        _draw(ax, curve, metric, color, True, 1.25 * max(measured) if measured else None)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("bits per pixel" + (" (log scale)" if log_x else ""))
    ax.set_ylabel({"psnr": "PSNR-RGB (dB)", "ms_ssim_db": "MS-SSIM (dB) = -10 log10(1 - MS-SSIM)"}[metric])
    title = f"{'PSNR' if metric == 'psnr' else 'MS-SSIM'} vs rate"
    if not measured:
        title += " (no measured points: MS-SSIM needs images over 160 px)" if metric == "ms_ssim_db" else ""
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    handles, labels = ax.get_legend_handles_labels()
    if handles:  # below the axes: RD curves fill every corner of a log-x plot
        fig.legend(handles, labels, fontsize=7, ncol=2, loc="outside lower center")
    fig.savefig(path)
    return path


def write_lossy_outputs(results: LossyResults, curve_list: Sequence[Curve], bd_rows: Sequence[BDRow], out_dir: str,
                        plots: bool = True, references: Sequence[Curve] = (),
                        gaps: Sequence[GapRow] = ()) -> dict[str, str]:
    """Write compressai/<codec>.json, lossy_results.json, lossy_rows.csv, lossy_table.txt and the four plots
    into ``out_dir``; return ``{what: path}``."""
    os.makedirs(os.path.join(out_dir, "compressai"), exist_ok=True)
    paths = {"results": os.path.join(out_dir, "lossy_results.json"), "rows": os.path.join(out_dir, "lossy_rows.csv"),
             "table": os.path.join(out_dir, "lossy_table.txt")}
    for c in curve_list:
        paths[f"compressai:{c.name}"] = p = os.path.join(out_dir, "compressai", f"{_slug(c.name)}.json")
        with open(p, "w") as f:
            json.dump(compressai_entry(c), f, indent=2, default=str)
    with open(paths["results"], "w") as f:
        json.dump(_to_json(results, curve_list, bd_rows, references, gaps), f, indent=2, default=str)
    with open(paths["rows"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[fl.name for fl in dataclasses.fields(LossyRow)])
        writer.writeheader()
        writer.writerows(dataclasses.asdict(r) for r in results.rows)
    with open(paths["table"], "w") as f:
        f.write(format_lossy_table(results, curve_list, bd_rows, gaps) + "\n")
    if plots:
        for metric in ("psnr", "ms_ssim_db"):
            for log_x in (False, True):
                name = f"rd_{metric}{'_logx' if log_x else ''}"
                paths[f"plot:{name}"] = plot_rd(curve_list, os.path.join(out_dir, f"{name}.png"), metric, log_x,
                                                references)
    return paths


# --- eval.py --lossy ------------------------------------------------------------------------------

def _bd_rows(results: LossyResults, curve_list: Sequence[Curve], anchor: str) -> tuple[list[BDRow], str | None]:
    """Every classical curve against ``anchor``; iREC's curves against every classical curve and iREC coded
    against its ideals, over the images iREC coded (the classical curves recomputed on them when iREC left
    some out), and a note then."""
    classical = [c.name for c in curve_list if c.name not in IREC_CURVES]
    rows = [row for name in classical if name != anchor for row in bd_table(curve_list, [anchor], name)]
    tests = [c.name for c in curve_list if c.name in IREC_CURVES]
    if not tests:
        return rows, None
    coded = {(r.set, r.image) for r in results.rows if r.codec in tests}
    everything = {(r.set, r.image) for r in results.rows}
    same = curve_list if coded == everything else curves(results, coded)
    rows += [row for test in tests for row in bd_table(same, classical, test)]
    if IREC in tests:  # the coder against the ideal of what it codes and of the network's own posteriors
        rows += bd_table(same, [name for name in tests if name != IREC], IREC)
    note = None if same is curve_list else (f"BD of {' and '.join(tests)}: against the classical curves over the "
                                            f"{len(coded)} images iREC coded, not all {len(everything)}")
    return rows, note


def run_lossy_suite(spec: EvalSpec, anchor: str = "JPEG-420", echo: Callable[[str], None] = print,
                    lossy_models: Sequence[str] = (), refine: int | None = None, feedback: int | None = None
                    ) -> tuple[LossyResults, dict[str, str]]:
    """``eval.py --lossy``: load ``spec``'s sets, sweep its codecs (``spec.codecs`` names classical lossy
    codecs; None: all) and iREC's two curves over ``lossy_models`` (model folders or train.py workdirs;
    none: the bundled qualities; no model at all: skipped with a note), write the outputs to ``spec.out``
    (BD of every classical curve against ``anchor`` and of iREC against every classical curve; iREC's
    coded-vs-ideal gaps; published references in the plots) and echo the table. ``refine``, ``feedback``
    and ``spec.effort``: ``irec_lossy_codecs``'. ``spec.model`` and ``spec.batch`` are not used."""
    codecs = classical_lossy_codecs(spec.codecs)  # before loading: an unknown codec fails fast
    if anchor.lower() not in {n.lower() for n in LOSSY_NAMES}:
        raise EvalError(f"unknown BD anchor {anchor!r}; known: {', '.join(LOSSY_NAMES)}")
    irec, why_not = irec_lossy_codecs(lossy_models, refine, feedback, spec.effort)  # why_not: one note in the table
    sets = load_sets(spec.suite, spec.images, spec.dataset, spec.split, spec.limit, spec.data_dir, spec.progress)
    results = run_lossy(sets, codecs + irec, progress=spec.progress, warmup=spec.warmup)
    curve_list = curves(results)
    anchor = next((c.name for c in curve_list if c.name.lower() == anchor.lower()), anchor)
    bd_rows, bd_note = _bd_rows(results, curve_list, anchor)
    results = dataclasses.replace(results, notes=results.notes + tuple(n for n in (why_not, bd_note) if n))
    gaps = gap_table(curve_list)
    paths = write_lossy_outputs(results, curve_list, bd_rows, spec.out, plots=spec.plots,
                                references=reference_curves(), gaps=gaps)
    echo(format_lossy_table(results, curve_list, bd_rows, gaps))
    echo(f"{sum(len(s) for s in sets)} images x {len(curve_list)} codecs ({sum(len(c.settings) for c in curve_list)}"
         f" settings) in {results.wall_s:.1f} s; wrote {os.path.abspath(spec.out)}/ (compressai/, lossy_results.json,"
         f" lossy_rows.csv, lossy_table.txt{', rd_*.png' if spec.plots else ''})")
    return results, paths
