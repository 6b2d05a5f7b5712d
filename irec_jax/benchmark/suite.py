"""The lossless image benchmark behind ``eval.py``: what to run (``EvalSpec``) and the wiring.

``run_suite(spec)`` loads the image sets (``irec_jax.benchmark.sets``), builds
the rows (``irec_jax.benchmark.classical`` plus ``extra_codecs``, by default the
model rows of ``irec_jax.benchmark.model_rows``), runs them
(``irec_jax.benchmark.runner``) and writes and prints the report
(``irec_jax.benchmark.report``). Rows follow ``irec_jax.benchmark.rows``.

Extension points for the lead: ``extra_codecs(model_spec)`` returns the
model-based rows (iREC, BB-ANS) that ``eval.py`` adds to the classical ones;
an ablation-like study is ``runner.run(sets, rows)`` over variant rows (each
with its own name) followed by ``report.write_outputs``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Sequence

from irec_jax.benchmark import classical
from irec_jax.benchmark.errors import EvalError
from irec_jax.benchmark.model_rows import model_rows as extra_codecs
from irec_jax.benchmark.report import format_table, write_outputs
from irec_jax.benchmark.runner import Results, run
from irec_jax.benchmark.sets import load_sets

__all__ = ["EvalSpec", "extra_codecs", "build_codecs", "run_suite"]


def build_codecs(names: Sequence[str] | None = None, model_spec: str | None = "default",
                 refine: int | None = None, effort: str = "default") -> list:
    """Classical rows plus ``extra_codecs(model_spec, refine, effort)``; ``names`` (case-insensitive) picks and
    orders them."""
    from irec_jax import codec

    try:
        codec.check_effort(effort)
    except ValueError as e:
        raise EvalError(str(e)) from None
    rows = list(classical.classical_codecs())
    try:
        extra = list(extra_codecs(model_spec, refine=refine, effort=effort))
    except Exception as e:
        wanted = None if names is None else {n.lower() for n in names}
        if wanted is None or not wanted <= {c.name.lower() for c in rows}:
            raise EvalError(f"cannot build the model codec rows for --model {model_spec!r}: "
                            f"{type(e).__name__}: {e}") from e
        extra = []
    rows += extra
    by_name: dict[str, Any] = {}
    for c in rows:
        if c.name.lower() in by_name:
            raise EvalError(f"two codec rows are named {c.name!r}")
        by_name[c.name.lower()] = c
    if names is None:
        return rows
    unknown = [n for n in names if n.lower() not in by_name]
    if unknown:
        raise EvalError(f"unknown codec(s) {', '.join(unknown)}; known: {', '.join(c.name for c in rows)}")
    return [by_name[n.lower()] for n in dict.fromkeys(names)]


@dataclasses.dataclass(frozen=True)
class EvalSpec:
    """What ``eval.py`` asks for. Sets: the suite's, one per ``images`` folder ("DIR" or "NAME=DIR"),
    and the tfds ``dataset``; ``limit`` keeps the first N images of each folder/dataset."""

    suite: str | None = None
    images: tuple = ()
    dataset: str | None = None
    split: str = "test"
    limit: int | None = None
    data_dir: str | None = None
    model: str = "default"
    codecs: tuple | None = None
    out: str = "eval_out"
    progress: bool = True
    plots: bool = True
    warmup: bool = True
    batch: int = 32  # iREC encodes images of one shape this many at a time (runner.run)
    refine: int | None = None  # iREC's posterior refinement steps per tile (None: the effort's)
    effort: str = "default"  # iREC's encoder preset (codec.EFFORTS)


def run_suite(spec: EvalSpec, echo: Callable[[str], None] = print) -> tuple[Results, dict[str, str]]:
    """Load the sets, build the rows, run, write the outputs to ``spec.out`` and echo the table."""
    codecs = build_codecs(spec.codecs, spec.model, spec.refine, spec.effort)  # before loading: an unknown codec fails fast
    sets = load_sets(spec.suite, spec.images, spec.dataset, spec.split, spec.limit, spec.data_dir,
                     spec.progress)
    results = run(sets, codecs, progress=spec.progress, warmup=spec.warmup, batch=spec.batch)
    paths = write_outputs(results, spec.out, plots=spec.plots)
    echo(format_table(results))
    if spec.batch > 1:
        echo(f"iREC encoded images of one shape in batches of up to {spec.batch} (codec.compress_batch); its "
             "encode seconds are each batch's time over its images. Every file was decoded on its own.")
    echo(f"{sum(len(s) for s in sets)} images x {len(codecs)} codecs in {results.wall_s:.1f} s; "
         f"wrote {os.path.abspath(spec.out)}/ (results.json, rows.csv, table.txt, compressai/, plots)")
    return results, paths
