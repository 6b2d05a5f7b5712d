"""Reporting of a benchmark run: per-(codec, set) summaries, the text table, JSON, CSV and plots.

Outputs (``write_outputs``): ``results.json`` (CompressAI's results schema,
adapted to lossless: ``bpd`` for ``bpp``/``psnr``; see ``to_json``),
``compressai/<codec>.json`` (one file per codec, the schema proper),
``rows.csv``, ``table.txt`` and PNG plots (``irec_jax.benchmark.plots``).
``format_table`` prints the Table-1-shaped summary: codecs × sets, cells =
mean of per-image bpd. ``text_table``, ``finite`` and ``environment`` serve
the ablation's outputs too.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import platform
import re
import sys
from typing import Any, Callable, Sequence

import numpy as np

from irec_jax.benchmark.runner import Results, Row

__all__ = ["Cell", "summarize", "text_table", "format_table", "finite", "environment", "to_json",
           "write_outputs"]


@dataclasses.dataclass(frozen=True)
class Cell:
    """One codec on one set. ``mean_bpd``: mean of per-image bpd over images that did not fail
    (inexact ones included, and counted); ``total_bpd``: 8·Σbytes/Σdims over the same images.
    For set rows both are the whole set's bpd. Times are seconds per image. For a codec
    with a fallback (iREC), ``mean_bpd`` is the rate of the files users get (stored mode
    included) and ``model_bpd`` that of the model's own coding; ``num_stored`` counts the
    files that fell back."""

    codec: str
    set: str
    kind: str
    num_images: int
    num_failed: int
    num_inexact: int
    mean_bpd: float | None
    total_bpd: float | None
    encoding_time: float | None
    decoding_time: float | None
    unavailable: str | None
    # Codecs with a fallback (iREC's stored mode), over the same images; None for other codecs:
    num_stored: int | None = None  # files that fell back
    model_bpd: float | None = None  # mean of per-image bpd of the model's own coding
    model_bpd_total: float | None = None  # 8·Σmodel bytes/Σdims


def summarize(results: Results) -> list[Cell]:
    """One ``Cell`` per (codec, set), codecs in run order, sets in run order."""
    cells = []
    for codec, kind, _ in results.codecs:
        for set_name, n, _ in results.sets:
            rows = [r for r in results.rows if r.codec == codec and r.set == set_name]
            ok = [r for r in rows if r.error is None]
            failed = len(rows) - len(ok) if kind == "image" else (n if rows and rows[0].error else 0)
            inexact = sum(1 for r in ok if not r.exact)
            if kind == "set" and inexact:
                inexact = n
            mean_bpd = float(np.mean([r.bpd for r in ok])) if ok else None
            dims = sum(r.dims for r in ok)
            total_bpd = 8.0 * sum(r.bytes for r in ok) / dims if ok and dims else None
            imgs = sum(r.num_images for r in ok)
            enc = sum(r.encode_s for r in ok) / imgs if imgs else None
            dec = sum(r.decode_s for r in ok) / imgs if imgs else None
            fallback = [r for r in ok if r.model_bytes is not None]
            extra = {}
            if fallback:
                extra = dict(num_stored=sum(1 for r in fallback if r.stored),
                             model_bpd=float(np.mean([r.model_bpd for r in fallback])),
                             model_bpd_total=8.0 * sum(r.model_bytes for r in fallback)
                             / sum(r.dims for r in fallback))
            cells.append(Cell(codec, set_name, kind, n, failed, inexact, mean_bpd, total_bpd, enc, dec,
                              results.unavailable.get(codec), **extra))
    return cells


def _cell_text(cell: Cell, value: float | None) -> str:
    if cell.unavailable:
        return "n/a"
    if value is None:
        return "FAILED"
    text = f"{value:.3f}"
    marks = []
    if cell.num_inexact:
        marks.append(f"x{cell.num_inexact}")
    if cell.num_failed:
        marks.append(f"!{cell.num_failed}")
    if cell.num_stored:
        marks.append(f"s{cell.num_stored}")
    if cell.kind == "set":
        marks.append("set")
    return text + (f" ({','.join(marks)})" if marks else "")


def text_table(header: Sequence[str], body: Sequence[Sequence[str]], title: str | None = None,
               left: int = 0) -> str:
    """A fixed-width text table: ruled header, one line per row; the first ``left`` columns left-aligned,
    the rest right-aligned, two spaces apart; ``title`` (if any) above the top rule."""
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    line = lambda r: "  ".join(v.ljust(w) if i < left else v.rjust(w)  # noqa: E731
                               for i, (v, w) in enumerate(zip(r, widths)))
    rule = "-" * len(line(header))
    return "\n".join(([title] if title is not None else []) + [rule, line(header), rule]
                     + [line(r) for r in body] + [rule])


def _grid(title: str, results: Results, cells: list[Cell], fmt: Callable[[Cell], str]) -> str:
    by = {(c.codec, c.set): c for c in cells}
    header = ["codec"] + [f"{name} ({n})" for name, n, _ in results.sets]
    body = [[codec] + [fmt(by[codec, s]) for s, _, _ in results.sets] for codec, _, _ in results.codecs]
    return text_table(header, body, title, left=1)


def format_table(results: Results, cells: list[Cell] | None = None) -> str:
    """Table 1 of the paper, shaped: rows = codecs, columns = sets (image count in brackets).

    Three grids: mean of per-image bpd (the headline), bpd of the total bytes,
    and mean encode/decode milliseconds per image; then a legend and any
    unavailable or failing rows with their reasons.
    """
    cells = summarize(results) if cells is None else cells
    parts = [
        _grid("Lossless rate: mean of per-image bits/dim (bpd = 8 * file bytes / (H*W*C), every byte counted)",
              results, cells, lambda c: _cell_text(c, c.mean_bpd)),
        _grid("Lossless rate: total-bytes bits/dim (8 * sum bytes / sum H*W*C)",
              results, cells, lambda c: _cell_text(c, c.total_bpd)),
        *([_grid("The model's own coding (codecs with a fallback): mean of per-image bits/dim, whether or "
                 "not the file fell back", results, cells,
                 lambda c: "" if c.model_bpd is None else _cell_text(c, c.model_bpd))]
          if any(c.model_bpd is not None for c in cells) else []),
        _grid("Time per image, ms: encode / decode (wall clock)", results, cells,
              lambda c: "n/a" if c.unavailable or c.encoding_time is None else
              f"{1e3 * c.encoding_time:.1f} / {1e3 * c.decoding_time:.1f}"),
        "legend: xN = N images decoded inexactly (rate still counted), !N = N images failed (left out of the "
        "mean), sN = N files fell back to the stored mode (PNG-filtered deflate) because the model's coding "
        "was larger, (set) = set-level coder: bytes of the whole set, n/a = codec unavailable here, FAILED = "
        "every image failed",
    ]
    for name, reason in results.unavailable.items():
        parts.append(f"unavailable: {name}: {reason}")
    seen = set()
    for r in results.rows:
        if (r.error and not r.error.startswith("unavailable")) or (r.error is None and not r.exact):
            key = (r.codec, r.set)
            if key not in seen:
                seen.add(key)
                parts.append(f"{'error' if r.error else 'inexact'}: {r.codec} on {r.set}/{r.image}: "
                             f"{r.error or r.detail}")
    return "\n".join(parts)


def finite(x: Any) -> Any:
    """``x`` with every non-finite float (NaN, ±inf) replaced by None, through dicts, lists and tuples
    (strict JSON); numpy floats become Python floats."""
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def environment(jax: bool = False) -> dict:
    """The one environment record of every benchmark output: Python, platform, numpy, Pillow,
    imagecodecs (None when absent), CPU count and load average; with ``jax``, its version and backend."""
    import PIL

    env = {"python": sys.version.split()[0], "platform": platform.platform(), "numpy": np.__version__,
           "Pillow": PIL.__version__, "cpu_count": os.cpu_count()}
    try:
        import imagecodecs

        env["imagecodecs"] = imagecodecs.__version__
    except ImportError:
        env["imagecodecs"] = None
    if jax:
        import jax as jax_module

        env["jax"], env["jax_backend"] = jax_module.__version__, jax_module.default_backend()
    try:
        env["loadavg"] = list(os.getloadavg())
    except OSError:
        env["loadavg"] = None
    return env


# results.json key -> Cell attribute, in the order of the file.
_CELL_FIELDS = {"bpd": "mean_bpd", "bpd_total": "total_bpd", "encoding_time": "encoding_time",
                "decoding_time": "decoding_time", "num_images": "num_images", "num_failed": "num_failed",
                "num_inexact": "num_inexact", "num_stored": "num_stored", "model_bpd": "model_bpd",
                "model_bpd_total": "model_bpd_total"}


def _cell_values(cell: Cell) -> dict:
    return {k: finite(getattr(cell, attr)) for k, attr in _CELL_FIELDS.items()}


def to_json(results: Results, cells: list[Cell] | None = None) -> dict:
    """``results.json``: CompressAI's ``{"name", "description", "results": {metric: [...]}}``, lossless.

    ``results`` holds parallel lists, one entry per (codec, set) pair (where
    CompressAI has one per quality point): ``codec``, ``set``, ``bpd`` (mean
    of per-image bpd), ``bpd_total``, ``encoding_time`` / ``decoding_time``
    (mean seconds per image), ``num_images``, ``num_failed``, ``num_inexact``; and for
    codecs with a fallback (iREC; None for the others) ``num_stored`` (files that fell
    back to the stored mode), ``model_bpd`` / ``model_bpd_total`` (the model's own coding).
    ``codecs`` holds one CompressAI entry per codec (lists over ``set``),
    ``rows`` the per-image rows, ``sets`` and ``environment`` the context.
    """
    cells = summarize(results) if cells is None else cells
    flat: dict[str, list] = {k: [] for k in ("codec", "set", *_CELL_FIELDS)}
    for c in cells:
        for k, v in (("codec", c.codec), ("set", c.set), *_cell_values(c).items()):
            flat[k].append(v)
    per_codec = {}
    for name, kind, description in results.codecs:
        mine = [c for c in cells if c.codec == name]
        desc = description + ("" if kind == "image" else "; set-level (amortized) coder: bpd of the whole set")
        if name in results.unavailable:
            desc += f"; unavailable here: {results.unavailable[name]}"
        values = [_cell_values(c) for c in mine]
        per_codec[name] = {"name": name, "description": desc,
                           "results": {"set": [c.set for c in mine],
                                       **{k: [v[k] for v in values] for k in _CELL_FIELDS}}}
    return {
        "name": "irec_jax lossless benchmark",
        "description": ("Lossless compression of 8-bit images. bpd = 8 * whole-file bytes / (H*W*C); 'bpd' is the "
                        "mean of per-image bpd over images that did not fail, 'bpd_total' the bpd of the summed "
                        "bytes; times are mean wall-clock seconds per image; every image is decoded and compared "
                        f"bit for bit. Started {results.started} UTC, {results.wall_s:.1f} s."),
        "results": flat,
        "codecs": per_codec,
        "sets": [{"name": n, "num_images": k, "source": s} for n, k, s in results.sets],
        "rows": [dataclasses.asdict(r) for r in results.rows],
        "unavailable": dict(results.unavailable),
        "warmup_s": results.warmup_s,
        "environment": environment(jax="jax" in sys.modules),
    }


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "codec"


def write_outputs(results: Results, out_dir: str, plots: bool = True) -> dict[str, str]:
    """Write results.json, compressai/<codec>.json, rows.csv, table.txt and the plots; return their paths."""
    os.makedirs(out_dir, exist_ok=True)
    cells = summarize(results)
    doc = to_json(results, cells)
    paths = {"results": os.path.join(out_dir, "results.json"), "rows": os.path.join(out_dir, "rows.csv"),
             "table": os.path.join(out_dir, "table.txt")}
    with open(paths["results"], "w") as f:
        json.dump(doc, f, indent=2)
    os.makedirs(os.path.join(out_dir, "compressai"), exist_ok=True)
    for name, entry in doc["codecs"].items():
        p = os.path.join(out_dir, "compressai", f"{_slug(name)}.json")
        with open(p, "w") as f:
            json.dump(entry, f, indent=2)
        paths[f"compressai:{name}"] = p
    fields = [f.name for f in dataclasses.fields(Row)]
    with open(paths["rows"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in results.rows:
            writer.writerow(dataclasses.asdict(r))
    with open(paths["table"], "w") as f:
        f.write(format_table(results, cells) + "\n")
    if plots:
        from irec_jax.benchmark import plots as plotting

        paths.update(plotting.plot_all(results, cells, out_dir))
    return paths
