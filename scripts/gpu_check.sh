#!/usr/bin/env bash
# GPU check: files encoded on the GPU decode exactly on the CPU and the reverse
# (bench/portability_check.py), then the coder's speed on the GPU: the coder
# benchmark (bench/rec_bench.py), a 768x512 photo and batches of 32x32 images
# (bench/device_bench.py). For a device machine with JAX and a GPU but no
# network. The project never needs a GPU; this only checks one.
#
# Prepare here (a machine with network), once: the wheels the device image lacks,
# for its Python 3.12, in an ignored folder that the run carries:
#
#   echo /.wheels/ >> .git/info/exclude
#   pip download constriction==0.5.0 ml_collections tensorboardX --no-deps \
#       --python-version 3.12 --only-binary=:all: --platform manylinux2014_x86_64 \
#       --platform manylinux_2_17_x86_64 --platform any -d .wheels
#
# Then on the device machine, from the repository root (carry .wheels):
#
#   bash scripts/gpu_check.sh            # ~8 minutes: 12 images, cpu, cpu-sse4.2, gpu; speed
#
# It prints the encoder x decoder table of exact decodes and exits non-zero on
# any mismatch, then the speed tables. Files it writes go to $OUT when that is set.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
venv=$(mktemp -d "${TMPDIR:-/tmp}/irec-gpu.XXXXXX")
# The image's own JAX (with its CUDA plugin) and numpy stay visible.
"$py" -m venv --system-site-packages "$venv"
. "$venv/bin/activate"
if [ -d .wheels ]; then
  pip install --quiet --no-index --find-links .wheels constriction ml_collections tensorboardX
fi
pip install --quiet --no-deps --no-build-isolation -e .
python -c "import jax; print('jax', jax.__version__, 'devices', jax.devices())"
out=${OUT:-.}
python bench/portability_check.py --configs cpu,cpu-sse4.2,gpu "$@" 2>&1 | tee "$out/gpu_check.txt"
python bench/device_bench.py --size 768x512 --batch 32 2>&1 | tee "$out/device_bench.txt"
python bench/rec_bench.py 2>&1 | tee "$out/rec_bench.txt"
