"""Benchmark of irec_jax.entropy: residual coding throughput, rate over the
ideal, peak memory; index coding rates and whether argmax indices are uniform;
the .irec header size.

Images: scikit-image's astronaut.png (NASA, public domain, lossless origin).
"32x32" is the crop [200:232, 240:272]; "768x512" is the 512x512 photo with
its left 256 columns mirrored onto its right edge (512 rows x 768 columns x 3).
Likelihood params are a causal neighbour predictor (loc = mean of the upper
and left pixels, log_scale from the local 5x5 prediction error), in 8-bit
levels: real-looking, not a trained model.

Run:  flock /tmp/irec-bench.lock python bench/entropy_bench.py [--reps 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

from irec_jax import entropy as E


def astronaut_images() -> dict[str, np.ndarray]:
    import skimage.data
    img = skimage.data.astronaut()
    return {"32x32": img[200:232, 240:272],
            "768x512": np.concatenate([img, img[:, :256][:, ::-1]], axis=1)}


def predictor_params(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(loc, log_scale) float64 [H, W, C] in 8-bit levels."""
    x = pixels.astype(np.float64)
    loc = np.full_like(x, 128.0)
    loc[1:, 1:] = (x[:-1, 1:] + x[1:, :-1]) / 2
    loc[0, 1:] = x[0, :-1]
    loc[1:, 0] = x[:-1, 0]
    pad = np.pad(np.abs(x - loc), ((2, 2), (2, 2), (0, 0)), mode="edge")
    local = sum(pad[i:i + x.shape[0], j:j + x.shape[1]] for i in range(5) for j in range(5)) / 25
    return loc, np.log(0.6 * local + 0.5)


def likelihood(pixels: np.ndarray, family: str) -> E.Likelihood:
    loc, log_scale = predictor_params(pixels)
    if family == "logistic":
        return E.FloatLogistic(loc, log_scale)
    k = int(family.split("-")[1])
    offsets = np.linspace(-4.0, 4.0, k)
    return E.FloatLogisticMixture(np.stack([np.full(loc.shape, -abs(o) / 4) for o in offsets], -1),
                             loc[..., None] + offsets,
                             log_scale[..., None] + np.linspace(-0.5, 0.5, k))


def best_of(fn, reps: int) -> tuple[float, float]:
    """(best wall seconds, best CPU seconds) over `reps` runs."""
    walls, cpus = [], []
    for _ in range(reps):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus)


def peak_memory(image: str, family: str, op: str) -> tuple[float, float]:
    """(tracemalloc peak MB, RSS peak minus RSS before MB) of one encode or
    decode, in a fresh process (setup done first). The RSS figure is an upper
    bound: it also counts the setup's own peak if that was higher."""
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        pixels = astronaut_images()[image]
        f.write(E.encode_residual(pixels, likelihood(pixels, family)))
        f.flush()
        out = subprocess.run([sys.executable, __file__, "--_memory", image, family, op, f.name],
                             check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1])


def _memory_child(image: str, family: str, op: str, path: str) -> None:
    pixels = astronaut_images()[image]
    params = likelihood(pixels, family)
    with open(path, "rb") as f:
        data = f.read()
    fn = (lambda: E.encode_residual(pixels, params)) if op == "encode" else \
        (lambda: E.decode_residual(data, params))
    with open("/proc/self/statm") as f:  # resident pages now
        rss0 = int(f.read().split()[1]) * resource.getpagesize() / 1024
    fn()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # peak, KiB
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(peak / 2**20, (rss1 - rss0) / 1024)


def residual_table(reps: int, families: list[str]) -> list[dict]:
    rows = []
    for image, pixels in astronaut_images().items():
        for family in families:
            params = likelihood(pixels, family)
            data = E.encode_residual(pixels, params)
            assert np.array_equal(E.decode_residual(data, params), pixels)
            r = reps if pixels.size > 10_000 else 20 * reps
            enc = best_of(lambda: E.encode_residual(pixels, params), r)
            dec = best_of(lambda: E.decode_residual(data, params), r)
            ideal = E.residual_bits(pixels, params)
            mem = [peak_memory(image, family, op) for op in ("encode", "decode")]
            rows.append(dict(
                image=image, family=family, subpixels=pixels.size,
                enc_mps=pixels.size / enc[0] / 1e6, enc_cpu_mps=pixels.size / enc[1] / 1e6,
                dec_mps=pixels.size / dec[0] / 1e6, dec_cpu_mps=pixels.size / dec[1] / 1e6,
                bpsp=8 * len(data) / pixels.size, ideal_bpsp=ideal / pixels.size,
                over_pct=100 * (8 * len(data) / ideal - 1),
                traced_mb=max(m[0] for m in mem), rss_mb=max(m[1] for m in mem)))
    return rows


def argmax_indices(rng: np.random.Generator, n: int, trials: int, bias: float) -> np.ndarray:
    """Argmax over n i.i.d. Gumbel scores per trial, plus `bias` * i / n for
    candidate i (bias = 0: exchangeable candidates)."""
    scores = rng.gumbel(size=(trials, n)) + bias * np.arange(n) / n
    return scores.argmax(-1)


def irec_argmax_indices(rng: np.random.Generator, n: int, trials: int, dims: int = 8) -> np.ndarray:
    """One iREC step: n candidates from the prior N(0, 1), pick the argmax of
    log q/p with q = N(mu, 0.5^2), mu random per trial."""
    mu = rng.normal(size=(trials, 1, dims))
    cand = rng.normal(size=(trials, n, dims))
    log_w = (-0.5 * ((cand - mu) / 0.5) ** 2 + 0.5 * cand ** 2).sum(-1)
    return log_w.argmax(-1)


def index_table(seed: int = 0) -> list[dict]:
    from scipy.stats import chisquare
    rng = np.random.default_rng(seed)
    n, trials = 36, 200_000
    rows = []
    for name, draw in [
            ("argmax iid Gumbel", lambda t: argmax_indices(rng, n, t, 0.0)),
            ("iREC step argmax (D=8)", lambda t: irec_argmax_indices(rng, n, t)),
            ("position-biased (+0.5 i/N)", lambda t: argmax_indices(rng, n, t, 0.5)),
            ("position-biased (+2 i/N)", lambda t: argmax_indices(rng, n, t, 2.0))]:
        train, test = draw(trials), draw(trials)
        counts = np.bincount(test, minlength=n)
        p_value = float(chisquare(counts).pvalue)
        layers = [E.LayerIndices(np.full(trials // 50, 50), test)]
        table = E.TableIndexModel(np.bincount(train, minlength=n) + 0.5)
        bits = {m: 8 * len(E.encode_indices(layers, n, model)) / trials
                for m, model in [("uniform", E.UniformIndexModel()), ("table", table),
                                 ("adaptive", E.AdaptiveIndexModel())]}
        freq = counts / trials
        rows.append(dict(case=name, chi2_p=p_value, max_over_min=counts.max() / counts.min(),
                         entropy=float(-(freq * np.log2(freq)).sum()), **bits))
    return rows, n


def step_table() -> list[dict]:
    """Index-section bytes beyond the indices' own n log2 N bits, per block:
    step counts, per-layer varints and the range coder's flush together."""
    rng = np.random.default_rng(1)
    rows = []
    for layers, blocks, spread in [(1, 8, (60, 71)), (1, 64, (60, 71)), (24, 8, (60, 71)),
                                   (24, 8, (1, 4))]:
        ls = [E.LayerIndices(s := rng.integers(*spread, blocks), rng.integers(0, 36, s.sum()))
              for _ in range(layers)]
        total = 8 * len(E.encode_indices(ls, 36))
        idx_only = sum(x.indices.size for x in ls) * math.log2(36)
        rows.append(dict(layers=layers, blocks=blocks, spread=f"{spread[0]}..{spread[1] - 1}",
                         extra_bits_per_block=(total - idx_only) / (layers * blocks)))
    return rows


def header_bytes() -> int:
    model = E.ModelRef("rvae-cifar10", E.param_hash([np.zeros(3)]))
    c = E.Container(E.Header(model, E.CoderSettings(), 32, 32, 3),
                    (b"\0" * 1000, b"\0" * 600), 0)
    return len(E.pack(c, [model])) - 1600


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--families", default="logistic,mixture-3")
    ap.add_argument("--json", default=None)
    ap.add_argument("--_memory", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._memory:
        _memory_child(*args._memory)
        return
    res = residual_table(args.reps, args.families.split(","))
    print("Residual coding (best of reps; wall = elapsed, cpu = process time; "
          "Msp/s = 1e6 subpixels/s)")
    print(f"{'image':8} {'likelihood':10} {'subpix':>8} {'enc wall':>9} {'enc cpu':>8} "
          f"{'dec wall':>9} {'dec cpu':>8} {'bits/sp':>8} {'ideal':>7} {'over %':>7} "
          f"{'traced MB':>9} {'RSS+ MB':>8}")
    print("(traced MB: tracemalloc peak of numpy allocations; RSS+ MB: process RSS peak "
          "minus RSS before the call, an upper bound)")
    for r in res:
        print(f"{r['image']:8} {r['family']:10} {r['subpixels']:8d} {r['enc_mps']:9.2f} "
              f"{r['enc_cpu_mps']:8.2f} {r['dec_mps']:9.2f} {r['dec_cpu_mps']:8.2f} "
              f"{r['bpsp']:8.4f} {r['ideal_bpsp']:7.4f} {r['over_pct']:7.4f} "
              f"{r['traced_mb']:9.1f} {r['rss_mb']:8.1f}")
    idx, n = index_table()
    print(f"\nIndex coding, N = {n}, 200k indices per case "
          f"(bits/index; log2 N = {math.log2(n):.4f}; table fitted on a separate 200k)")
    print(f"{'case':28} {'chi2 p':>8} {'max/min':>8} {'entropy':>8} {'uniform':>8} "
          f"{'table':>8} {'adaptive':>8}")
    for r in idx:
        print(f"{r['case']:28} {r['chi2_p']:8.3g} {r['max_over_min']:8.3f} {r['entropy']:8.4f} "
              f"{r['uniform']:8.4f} {r['table']:8.4f} {r['adaptive']:8.4f}")
    steps = step_table()
    print("\nIndex section beyond n log2 N (step counts + per-layer varints + coder flush)")
    for r in steps:
        print(f"  {r['layers']:2d} layer(s) x {r['blocks']:2d} blocks, K_b in {r['spread']:7}: "
              f"{r['extra_bits_per_block']:.2f} bits/block")
    print(f"\n.irec header + framing + CRC, default model, 32x32x3, 2 sections: "
          f"{header_bytes()} bytes")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"name": "irec_jax.entropy", "residual": res, "indices": idx,
                       "steps": steps, "header_bytes": header_bytes()}, f, indent=1)


if __name__ == "__main__":
    main()
