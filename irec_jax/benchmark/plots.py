"""PNG plots of a benchmark run (matplotlib's Agg canvas; no pyplot, no global backend switch).

``plot_mean_bpd``: grouped bars, mean per-image bpd of each codec on each set
(hatched where some images decoded inexactly). ``plot_per_image``: every
image's bpd per codec, one panel per set. ``plot_vs_reference``: each codec's
per-image bpd against a reference codec's (PNG by default), y = x drawn, rows far
from it (BB-ANS single files) in panels of their own.
``plot_heatmaps``: annotated heatmaps on one colour scale (the ablation's
Ω × (1+ε) grids, one panel per beam width).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from irec_jax.benchmark.runner import Results

__all__ = ["plot_mean_bpd", "plot_per_image", "plot_vs_reference", "plot_all", "plot_heatmaps"]


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path)
    return path


def _colors(n: int):
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_mean_bpd(results: "Results", cells: list, path: str) -> str:
    """Grouped bar chart: x = image sets, one bar per codec, height = mean of per-image bpd."""
    codecs = [c for c, _, _ in results.codecs]
    sets = [s for s, _, _ in results.sets]
    by = {(c.codec, c.set): c for c in cells}
    fig = _figure(max(5.0, 1.2 + 0.45 * len(codecs) * len(sets)), 4.2)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(1, len(codecs))
    for i, (codec, color) in enumerate(zip(codecs, _colors(len(codecs)))):
        xs = np.arange(len(sets)) + (i - (len(codecs) - 1) / 2) * width
        for x, s in zip(xs, sets):
            cell = by[codec, s]
            if cell.mean_bpd is None:
                ax.text(x, 0, "n/a" if cell.unavailable else "failed", rotation=90, ha="center", va="bottom",
                        fontsize=7)
                continue
            ax.bar(x, cell.mean_bpd, width, color=color, edgecolor="black", linewidth=0.5,
                   hatch="//" if cell.num_inexact else None, label=codec if s == sets[0] else None)
            ax.text(x, cell.mean_bpd, f"{cell.mean_bpd:.2f}", ha="center", va="bottom", fontsize=6, rotation=90)
    ax.set_xticks(np.arange(len(sets)), [f"{s} ({n})" for s, n, _ in results.sets])
    ax.set_ylabel("mean bits/dim (per-image, whole files)")
    ax.set_title("Lossless rate by codec (hatched: some images inexact)", fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    for codec, color in zip(codecs, _colors(len(codecs))):  # codecs with no bar still get a legend entry
        if codec not in labels:
            handles.append(ax.bar([np.nan], [np.nan], color=color)[0])
            labels.append(codec)
    ax.legend(handles, labels, fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_ylim(bottom=0)
    return _save(fig, path)


def plot_per_image(results: "Results", path: str) -> str:
    """One panel per set: every image's bpd for each codec (x = codec); inexact images as red x."""
    codecs = [c for c, _, _ in results.codecs]
    sets = [s for s, _, _ in results.sets]
    fig = _figure(max(4.5, 0.6 * len(codecs) + 1.5) * len(sets), 4.0)
    rng = np.random.default_rng(0)  # jitter only
    for k, s in enumerate(sets):
        ax = fig.add_subplot(1, len(sets), k + 1)
        for i, (codec, color) in enumerate(zip(codecs, _colors(len(codecs)))):
            rows = [r for r in results.rows if r.set == s and r.codec == codec and r.bpd is not None]
            good = [r.bpd for r in rows if r.exact and r.error is None]
            bad = [r.bpd for r in rows if not (r.exact and r.error is None)]
            marker = "D" if rows and rows[0].kind == "set" else "o"
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(good)), good, s=14, color=color, marker=marker)
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(bad)), bad, s=20, color="red", marker="x")
        ax.set_xticks(range(len(codecs)), codecs, rotation=45, ha="right", fontsize=7)
        ax.set_title(s, fontsize=9)
        if k == 0:
            ax.set_ylabel("bits/dim per image")
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _ratio_to(results: "Results", reference: str, codec: str) -> float:
    """Median over images of ``codec``'s bpd / ``reference``'s (NaN when no image has both)."""
    ref = {(r.set, r.image): r.bpd for r in results.rows if r.codec == reference and r.bpd}
    ratios = [r.bpd / ref[r.set, r.image] for r in results.rows
              if r.codec == codec and r.bpd is not None and (r.set, r.image) in ref]
    return float(np.median(ratios)) if ratios else float("nan")


def plot_vs_reference(results: "Results", path: str, reference: str = "PNG", far: float = 1.6) -> str | None:
    """Scatter of each image row's per-image bpd against ``reference``'s; None if fewer than two image rows.

    One column per set. The top row holds the rows near the reference, y = x
    drawn; rows whose median ratio to it exceeds ``far`` (BB-ANS single
    files) get a second row of panels of their own, so that they do not
    squeeze the others into a corner. One legend beside the panels, off the
    data. ``reference`` falls back to the first image row when it is not in the run.
    """
    image_codecs = [c for c, kind, _ in results.codecs if kind == "image"]
    if len(image_codecs) < 2:
        return None
    if reference not in image_codecs:
        reference = image_codecs[0]
    others = [c for c in image_codecs if c != reference]
    groups = [[c for c in others if not _ratio_to(results, reference, c) > far],
              [c for c in others if _ratio_to(results, reference, c) > far]]
    groups = [g for g in groups if g]
    sets = [s for s, _, _ in results.sets]
    fig = _figure(4.5 * len(sets) + 1.6, 3.6 * len(groups))
    fig.set_layout_engine("constrained")
    colors = dict(zip([c for c, _, _ in results.codecs], _colors(len(results.codecs))))
    for g, group in enumerate(groups):
        for k, s in enumerate(sets):
            ax = fig.add_subplot(len(groups), len(sets), g * len(sets) + k + 1)
            ref = {r.image: r.bpd for r in results.rows if r.set == s and r.codec == reference and r.bpd}
            lo, hi = np.inf, -np.inf
            for codec in group:
                pts = [(ref[r.image], r.bpd) for r in results.rows
                       if r.set == s and r.codec == codec and r.bpd and r.image in ref]
                if not pts:
                    continue
                x, y = np.array(pts).T
                lo, hi = min(lo, x.min(), y.min()), max(hi, x.max(), y.max())
                ax.scatter(x, y, s=14, color=colors[codec], label=codec)
            if g == 0 and np.isfinite(lo):
                ax.plot([lo, hi], [lo, hi], color="gray", linewidth=0.8, linestyle="--", label="y = x")
            ax.set_xlabel(f"{reference} bits/dim")
            if k == 0:
                ax.set_ylabel("codec bits/dim")
            ax.set_title(s if g == 0 else f"{s}: rows over {far:g}x {reference}", fontsize=9)
            ax.grid(alpha=0.3)
    handles: dict = {}
    for ax in fig.axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    if handles:
        fig.legend(list(handles.values()), list(handles), fontsize=7, loc="outside right upper")
    fig.savefig(path)
    return path


def plot_all(results: "Results", cells: list, out_dir: str) -> dict[str, str]:
    """The three plots as PNGs in ``out_dir``; returns ``{plot name: path}`` for those drawn."""
    paths = {"plot:mean_bpd": plot_mean_bpd(results, cells, os.path.join(out_dir, "mean_bpd.png")),
             "plot:per_image": plot_per_image(results, os.path.join(out_dir, "per_image_bpd.png"))}
    vs = plot_vs_reference(results, os.path.join(out_dir, "bpd_vs_reference.png"))
    if vs is not None:
        paths["plot:vs_reference"] = vs
    return paths


def plot_heatmaps(path: str, panels, row_labels, col_labels, *, title: str = "", xlabel: str = "",
                  ylabel: str = "", cmap: str = "viridis") -> str:
    """Annotated heatmaps side by side, sharing one colour scale; returns ``path``.

    ``panels``: (panel title, values [rows, cols] float, cell texts [rows, cols]
    or None) per panel; NaN cells are drawn grey (their text, e.g. "failed",
    is still written). Texts default to the values with three decimals.
    """
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    panels = list(panels)
    finite = np.concatenate([np.asarray(v, float)[np.isfinite(np.asarray(v, float))].ravel()
                             for _, v, _ in panels] or [np.zeros(0)])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    norm = Normalize(lo, hi)
    cm = colormaps[cmap].with_extremes(bad="lightgray")
    nr, nc = len(row_labels), len(col_labels)
    fig = _figure(max(3.2, 0.9 + 0.85 * nc) * len(panels) + 1.0, max(2.8, 1.4 + 0.5 * nr))
    fig.set_layout_engine("constrained")
    image = None
    axes = []
    for k, (name, values, texts) in enumerate(panels):
        values = np.asarray(values, float)
        ax = fig.add_subplot(1, len(panels), k + 1)
        axes.append(ax)
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cm, norm=norm, aspect="auto", origin="lower")
        for i in range(nr):
            for j in range(nc):
                v = values[i, j]
                text = texts[i][j] if texts is not None else ("" if not np.isfinite(v) else f"{v:.3f}")
                r, g, b, _ = cm(norm(v)) if np.isfinite(v) else (0.83, 0.83, 0.83, 1.0)
                color = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
        ax.set_xticks(range(nc), col_labels)
        ax.set_yticks(range(nr), row_labels)
        ax.set_xlabel(xlabel)
        if k == 0:
            ax.set_ylabel(ylabel)
        ax.set_title(name, fontsize=9)
    if title:
        import textwrap

        chars = max(40, int(fig.get_figwidth() * 13))
        fig.suptitle("\n".join(textwrap.fill(t, chars) for t in title.split("\n")), fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.9)
    fig.savefig(path)
    return path
