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

__all__ = ["HEATMAPS", "METRICS_DOC", "TABLE_COLUMNS", "to_json", "format_table", "plot_heatmaps", "write_outputs"]

# Heatmap metrics: (key in a point's aggregates, title, number format).
HEATMAPS = (
    ("total_overhead", "total overhead: 8·file bytes / −ELBO bits (MC)", "{:.3f}"),
    ("coding_overhead", "coding overhead: index codelength / KL bits", "{:.3f}"),
    ("residual_overhead", "residual overhead: residual codelength / E_q[−log2 p(x|z)] (MC)", "{:.3f}"),
    ("encode_s", "encode seconds per image (after warm-up)", "{:.2f}"),
)


METRICS_DOC = {
    "coding_overhead": ("index_bits (exact codelength of step counts and indices in the streams) / KL bits "
                        "(KL = sum over layers of KL(q||p) along the coded path)"),
    "coding_overhead_ideal": "index_bits_ideal (sum_b K_b log2 N) / KL bits",
    "residual_overhead": ("residual_bits (-log2 p(x|z_hat), exact codelength under the integer coder tables) / "
                          "E_q[-log2 p(x|z)] (Monte Carlo estimate)"),
    "total_overhead": "8*total_bytes (whole file) / negative-ELBO bits (Monte Carlo estimate)",
    "*_mc_se": "standard error of the ratio from the Monte Carlo denominator alone",
    "bpd": "8*total_bytes / (H*W*C)",
    "index_bits": "exact codelength, bits, of the step counts and candidate indices of every latent layer",
    "residual_bits": "exact codelength, bits, of the pixels: -log2 p(x|z_hat) under the integer coder tables",
    "block_kl": ("encoder knob (not stored in files): target KL per block, nats (>= omega); smaller blocks: "
                 "less search work per block, more step counts to send and more rounding of K_b = ceil(KL_b/omega)"),
    "final_choices": ("encoder knob (not stored in files): how many of the last latent layer's final beams the "
                      "encoder compares by the pixels' exact codelength, keeping the smallest file (<= beams; "
                      "1 = the search's own pick); same index_bits, residual_bits can only drop, one likelihood "
                      "pass per choice"),
    "layer_choices": ("encoder knob (not stored in files): how many of every other latent layer's final beams "
                      "the encoder compares by an estimate of the rest of the file (the later layers' (1+eps) KL "
                      "along their posterior means, then the pixels' exact codelength), coding the cheapest "
                      "(<= beams; 1 = the search's own pick); the same layer's index bits, the later ones move"),
    "encode_s": ("codec encode wall clock, seconds, of a call that compiled nothing: the first call of each "
                 "setting is an untimed warm-up, and an image whose padded shapes compile anew is coded twice "
                 "(retimed: true) -- unless the run had no warm-up (then compiled_in_timed_call says so)"),
    "decode_s": "decode wall clock, seconds (retimed like encode_s)",
    "exact": "decoded pixels == original, bit for bit",
    "aggregates": "per point: means over the images that did not fail (inexact ones included)",
}

# The columns of ``ablation_table.txt`` (one line per grid point; means over the images).
TABLE_COLUMNS = {
    "B": "beams", "Ω": "omega, nats per step", "1+ε": "one_plus_epsilon", "N": "num_candidates per step",
    "block": "block_kl, target nats per block", "choice": "final_choices", "layer": "layer_choices",
    "bpd": "bpd",
    "total": "total_overhead", "coding": "coding_overhead", "(ideal)": "coding_overhead_ideal",
    "residual": "residual_overhead", "index b": "index_bits per image", "resid b": "residual_bits per image",
    "enc s": "encode_s", "dec s": "decode_s", "exact": "images decoded bit-exact / images",
}


def to_json(res: AblationResult) -> dict:
    """``ablation.json``: ``grid``, ``points`` (aggregates), ``rows`` (per image), ``images``
    (with their MC ELBO estimates), ``model`` (name, param_hash, card, spec), ``metrics`` (definitions),
    ``table_columns`` (the table's columns), ``started`` (UTC), ``wall_s``, ``seed``, ``mc_samples``,
    ``environment``. Grid points, points and rows carry ``block_kl``, ``final_choices`` and
    ``layer_choices``."""
    return finite({
        "name": "irec_jax iREC ablation",
        "description": ("Lossless iREC over omega (nats/step), 1+epsilon and beams B; N = floor(exp(omega"
                        "(1+epsilon))); and the encoder-only block_kl (nats per block), final_choices and "
                        "layer_choices. "
                        "Overheads are ratios (1.0 = none) from the real bytes of each file; "
                        "E_q[-log2 p(x|z)] and the negative ELBO are Monte Carlo estimates "
                        f"({res.mc_samples} posterior samples per image)."),
        "started": res.started,
        "wall_s": res.wall_s,
        "seed": res.seed,
        "mc_samples": res.mc_samples,
        "model": res.model,
        "grid": {"name": res.grid.name, "omega": list(res.grid.omega),
                 "one_plus_epsilon": list(res.grid.one_plus_epsilon), "beams": list(res.grid.beams),
                 "block_kl": list(res.grid.block_kl), "final_choices": list(res.grid.final_choices),
                 "layer_choices": list(res.grid.layer_choices),
                 "points": [{"omega": p.omega, "one_plus_epsilon": p.one_plus_epsilon, "epsilon": p.epsilon,
                             "beams": p.beams, "num_candidates": p.num_candidates, "block_kl": p.block_kl,
                             "final_choices": p.final_choices, "layer_choices": p.layer_choices}
                            for p in res.grid.points]},
        "images": [dict(dataclasses.asdict(s), shape=list(s.shape), dims=s.dims) for s in res.images],
        "sets": [{"name": n, "source": src} for n, src in res.sources],
        "points": res.points,
        "rows": res.rows,
        "metrics": METRICS_DOC,
        "table_columns": TABLE_COLUMNS,
        "environment": environment(jax=True),
    })


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def _key(d: dict) -> tuple:
    """A point's or row's grid coordinates."""
    return d["omega"], d["one_plus_epsilon"], d["beams"], d["block_kl"], d["final_choices"], d["layer_choices"]


def _where(d: dict) -> str:
    return (f"B={d['beams']} Ω={d['omega']:g} 1+ε={d['one_plus_epsilon']:g} block={d['block_kl']:g} "
            f"choices={d['final_choices']}:{d['layer_choices']}")


def format_table(res: AblationResult) -> str:
    """The terminal table: one line per grid point (grid order: B, block, choice, layer, Ω, 1+ε), then the
    failures. Columns: ``TABLE_COLUMNS``."""
    n = len(res.images)
    nelbo = np.mean([s.nelbo_bits / s.dims for s in res.images])
    lines = [
        f"iREC ablation: model {res.model['name']} ({res.model['param_hash']}), "
        f"{n} images, grid {res.grid.name!r}, {len(res.points)} points, {res.wall_s:.0f} s",
        f"negative ELBO (MC, {res.mc_samples} samples/image): mean {nelbo:.4f} bits/dim; overheads are ratios "
        "(1.000 = none), means over images; coding: step counts + indices, (ideal): indices alone",
        "block: block_kl (target nats per block); choice: final_choices (last-layer beams compared by pixel "
        "bits); layer: layer_choices (other layers' beams compared by the rest of the file); index b / resid b: "
        "exact codelengths in bits per image",
    ]
    header = list(TABLE_COLUMNS)
    body = []
    for p in res.points:
        body.append([str(p["beams"]), f"{p['omega']:g}", f"{p['one_plus_epsilon']:g}", str(p["num_candidates"]),
                     f"{p['block_kl']:g}", str(p["final_choices"]), str(p["layer_choices"]),
                     _fmt(p["bpd"], ".4f"), _fmt(p["total_overhead"]), _fmt(p["coding_overhead"]),
                     _fmt(p["coding_overhead_ideal"]), _fmt(p["residual_overhead"]),
                     _fmt(p["index_bits"], ".1f"), _fmt(p["residual_bits"], ".1f"),
                     _fmt(p["encode_s"], ".2f"), _fmt(p["decode_s"], ".2f"),
                     "FAILED" if p["error"] else f"{p['num_exact']}/{p['num_images']}"])
    lines.append(text_table(header, body))
    failed = {_key(p) for p in res.points if p["error"]}
    for p in res.points:
        if p["error"]:
            lines.append(f"failed: {_where(p)}: {p['error']}")
    for r in res.rows:
        if r.get("error") is None and not r["exact"]:
            lines.append(f"inexact: {_where(r)} {r['set']}/{r['image']}: {r.get('detail')}")
        elif r.get("error") is not None and _key(r) not in failed:
            lines.append(f"error: {_where(r)} {r['set']}/{r['image']}: {r['error']}")
    return "\n".join(lines)


def _panels(grid) -> list[tuple[str, int, float, int, int]]:
    """(panel title, B, block_kl, final_choices, layer_choices) per heatmap panel, in grid order. The
    title names block and choices only where the grid varies them (else the figure title does)."""
    out = []
    for b in grid.beams:
        for k in grid.block_kl:
            for c in grid.final_choices:
                for lc in grid.layer_choices:
                    name = f"B = {b}"
                    if len(grid.block_kl) > 1:
                        name += f", block = {k:g}"
                    if len(grid.final_choices) > 1:
                        name += f", choices = {c}"
                    if len(grid.layer_choices) > 1:
                        name += f", layer choices = {lc}"
                    out.append((name, b, k, c, lc))
    return out


def plot_heatmaps(res: AblationResult, out_dir: str) -> dict[str, str]:
    """For each metric of ``HEATMAPS``: one PNG, one Ω × (1+ε) panel per (B, block_kl,
    final_choices, layer_choices), annotated cells."""
    from irec_jax.benchmark import plots

    by = {_key(p): p for p in res.points}
    grid = res.grid
    fixed = []  # the knobs the panels do not tell apart go to the figure title
    if len(grid.block_kl) == 1:
        fixed.append(f"block_kl {grid.block_kl[0]:g}")
    if len(grid.final_choices) == 1:
        fixed.append(f"final_choices {grid.final_choices[0]}")
    if len(grid.layer_choices) == 1:
        fixed.append(f"layer_choices {grid.layer_choices[0]}")
    paths = {}
    for key, title, fmt in HEATMAPS:
        panels = []
        for name, b, k, c, lc in _panels(grid):
            values = np.full((len(grid.omega), len(grid.one_plus_epsilon)), np.nan)
            texts = np.full(values.shape, "", dtype=object)
            for i, o in enumerate(grid.omega):
                for j, e in enumerate(grid.one_plus_epsilon):
                    p = by[o, e, b, k, c, lc]
                    v = p.get(key)
                    if v is None:
                        texts[i, j] = "failed"
                        continue
                    values[i, j] = v
                    texts[i, j] = fmt.format(v) + ("" if p["all_exact"] else "\n(inexact)")
            panels.append((name, values, texts))
        paths[f"heatmap:{key}"] = plots.plot_heatmaps(
            os.path.join(out_dir, f"ablation_{key}.png"), panels,
            row_labels=[f"{o:g}" for o in grid.omega], col_labels=[f"{e:g}" for e in grid.one_plus_epsilon],
            title=(f"{title}\n{len(res.images)} images, model {res.model['name']} ({res.model['param_hash']})"
                   + "".join(f", {f}" for f in fixed)),
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
