"""Portability check: files written on one backend / CPU code path decode exactly on every other.

Each (encoder, decoder) pair runs in fresh processes: the encoder process
writes .irec files of the images with ``JAX_PLATFORMS`` / ``XLA_FLAGS`` of
its configuration, every decoder process decodes all of them with its own,
and the table shows how many came back bit-exact (the CRC is checked too).
The configurations are XLA's CPU code paths (default, SSE4.2, AVX2, one
thread) plus ``gpu`` and ``tpu`` when JAX finds one, so on a GPU machine it
checks GPU -> CPU and CPU -> GPU both ways. Each decoder also reports the
SHA-256 of the integer likelihood tables it computed for the first image,
which must be the same everywhere.

    python bench/portability_check.py                  # bundled images, all available configs
    python bench/portability_check.py --images DIR --limit 4 --configs cpu,gpu

Exit status 0 when every pair decoded every file exactly, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CPU_FLAGS = {
    "cpu": "",
    "cpu-sse4.2": "--xla_cpu_max_isa=SSE4_2",
    "cpu-avx2": "--xla_cpu_max_isa=AVX2",
    "cpu-1thread": "--xla_cpu_multi_thread_eigen=false",
}

_ENCODE = r"""
import json, os, sys, time
import jax
from irec_jax import codec, imageio
out, paths = sys.argv[1], sys.argv[2:]
rows = []
for p in paths:
    img = imageio.read_image(p)
    t = time.perf_counter(); data = codec.compress(img); dt = time.perf_counter() - t
    name = os.path.basename(p) + ".irec"
    open(os.path.join(out, name), "wb").write(data)
    rows.append({"file": name, "bytes": len(data), "seconds": dt})
print(json.dumps({"backend": jax.default_backend(), "rows": rows}))
"""

_DECODE = r"""
import hashlib, json, os, sys, time
import jax, numpy as np
from irec_jax import codec, imageio
from irec_jax.errors import FormatError
src, paths = sys.argv[1], sys.argv[2:]
exact, failures, seconds = 0, [], 0.0
for p in paths:
    img = imageio.read_image(p)
    data = open(os.path.join(src, os.path.basename(p) + ".irec"), "rb").read()
    try:
        t = time.perf_counter(); out = codec.decompress(data); seconds += time.perf_counter() - t
        ok = out.shape == img.shape and np.array_equal(out, img)
    except FormatError as e:
        ok = False; failures.append(f"{os.path.basename(p)}: {e}")
    exact += ok
# Fingerprint of the integer likelihood of the first image's latent path.
cm = codec.modelzoo.load_model()
img = imageio.read_image(paths[0])
x = codec.model_input(img, cm.image_channels)
m, prm = cm.model, cm.params
state = m.initial_state(prm, x.shape)
for layer in range(m.num_layers):
    state = m.advance(prm, state, m.prior(prm, state, layer).loc, layer)
lik = m.likelihood(prm, state)
fp = hashlib.sha256(np.asarray(lik.loc).tobytes() + np.asarray(lik.inv_scale).tobytes()).hexdigest()[:16]
print(json.dumps({"backend": jax.default_backend(), "exact": exact, "failures": failures,
                  "seconds": seconds, "tables": fp}))
"""


def _env(config: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    env["IREC_NO_CACHE"] = "1"
    if config in CPU_FLAGS:
        env["JAX_PLATFORMS"] = "cpu"
        if CPU_FLAGS[config]:
            env["XLA_FLAGS"] = CPU_FLAGS[config]
    else:
        env["JAX_PLATFORMS"] = {"gpu": "cuda", "tpu": "tpu"}[config]
    return env


def _run(code: str, args: list[str], config: str, timeout: float) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], env=_env(config), capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{config}: {proc.stderr.strip().splitlines()[-1] if proc.stderr else proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _available(config: str) -> bool:
    if config in CPU_FLAGS:
        return True
    probe = "import jax; print(jax.default_backend())"
    try:
        proc = subprocess.run([sys.executable, "-c", probe], env=_env(config), capture_output=True, text=True,
                              timeout=120)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0 and proc.stdout.strip() == config


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default=None, help="folder of PNGs (default: the bundled images)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images")
    ap.add_argument("--configs", default="auto",
                    help=f"comma-separated from {sorted(CPU_FLAGS) + ['gpu', 'tpu']} (default: all available)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per process")
    args = ap.parse_args()

    from irec_jax.assets import bundled_images

    if args.images:
        paths = sorted(os.path.join(args.images, f) for f in os.listdir(args.images) if f.lower().endswith(".png"))
    else:
        paths = bundled_images("crops") + bundled_images("photos")
    paths = paths[: args.limit or None]
    if not paths:
        print("portability_check.py: error: no images", file=sys.stderr)
        return 2
    wanted = list(CPU_FLAGS) + ["gpu", "tpu"] if args.configs == "auto" else args.configs.split(",")
    unknown = [c for c in wanted if c not in CPU_FLAGS and c not in ("gpu", "tpu")]
    if unknown:
        print(f"portability_check.py: error: unknown configs {unknown}", file=sys.stderr)
        return 2
    configs = [c for c in wanted if _available(c)]
    print(f"{len(paths)} images; configurations: {', '.join(configs)}"
          + (f" (not available: {', '.join(sorted(set(wanted) - set(configs)))})" if set(wanted) - set(configs) else ""))

    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        enc = {}
        for c in configs:
            d = os.path.join(tmp, c)
            os.makedirs(d)
            t = time.perf_counter()
            enc[c] = _run(_ENCODE, [d, *paths], c, args.timeout)
            print(f"encoded on {c:12s} ({enc[c]['backend']}): {sum(r['bytes'] for r in enc[c]['rows']):,} bytes, "
                  f"{time.perf_counter() - t:.1f} s")
        sizes = {c: [r["bytes"] for r in enc[c]["rows"]] for c in configs}
        print("\nexact decodes (rows: encoder, columns: decoder); likelihood fingerprint per decoder")
        print(f"{'':14s}" + "".join(f"{c:>13s}" for c in configs))
        prints = {}
        for e in configs:
            cells = []
            for d in configs:
                r = _run(_DECODE, [os.path.join(tmp, e), *paths], d, args.timeout)
                prints.setdefault(d, r["tables"])
                ok &= r["exact"] == len(paths) and r["tables"] == prints[configs[0]]
                cells.append(f"{r['exact']:>5d}/{len(paths):<3d}{'' if not r['failures'] else '!':>4s}")
                for f in r["failures"]:
                    print(f"  {e} -> {d}: {f}")
            print(f"{e:14s}" + "".join(f"{c:>13s}" for c in cells))
        print("fingerprints: " + ", ".join(f"{d} {fp}" for d, fp in prints.items()))
        same_bytes = all(sizes[c] == sizes[configs[0]] for c in configs)
        print(f"encoders wrote {'identical sizes' if same_bytes else 'different sizes'} on every configuration "
              "(the encoder's float search may legitimately choose differently on other hardware)")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
