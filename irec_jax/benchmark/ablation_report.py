"""The outputs of an iREC ablation: ``ablation.json``, ``ablation_table.txt`` and the heatmaps.

See ``irec_jax.benchmark.ablation`` for what the metrics mean; the environment
record, strict-JSON cleaning and text tables are the benchmark's own
(``irec_jax.benchmark.report``), the heatmaps ``irec_jax.benchmark.plots``'.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from irec_jax.benchmark.ablation_grid import AblationResult
from irec_jax.benchmark.report import environment, finite, text_table

__all__ = ["HEATMAPS", "METRICS_DOC", "to_json", "format_table", "plot_heatmaps", "write_outputs"]

# Heatmap metrics: (key in a point's aggregates, title, number format).
HEATMAPS = (
    ("total_overhead", "total overhead: 8·file bytes / −ELBO bits (MC)", "{:.3f}"),
    ("coding_overhead", "coding overhead: 8·index bytes / KL bits", "{:.3f}"),
    ("residual_overhead", "residual overhead: 8·residual bytes / E_q[−log2 p(x|z)] (MC)", "{:.3f}"),
    ("encode_s", "encode seconds per image (after warm-up)", "{:.2f}"),
)


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


def to_json(res: AblationResult) -> dict:
    """``ablation.json``: ``grid``, ``points`` (aggregates), ``rows`` (per image), ``images``
    (with their MC ELBO estimates), ``model`` (name, param_hash, card, spec), ``metrics`` (definitions),
    ``started`` (UTC), ``wall_s``, ``seed``, ``mc_samples``, ``environment``."""
    return finite({
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
        "environment": environment(jax=True),
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
    lines.append(text_table(header, body))
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
    from irec_jax.benchmark import plots

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
