#!/usr/bin/env bash
# The headline path on a machine with one NVIDIA GPU and no network, in under 8 minutes (builder/bench/gpu_check.py):
# a random-weight V2-Small model, the CUDA feed against the estimator, a short generation with depth at 518 on
# scikit-image's photographs, verify --depth 4 on it, bf16 against fp32, a generation at 224, and
# `scripts/benchmark.py --sections gpu` in the time left. Each step's status and figures: OUTDIR/gpu_check.json;
# its output: OUTDIR/gpu_check.log; the benchmark's report: OUTDIR/benchmark.json.
#
#   scripts/gpu_check.sh OUTDIR                # on the GPU machine
#   scripts/gpu_check.sh OUTDIR --cpu-smoke    # the same flow on CPU at tiny sizes
#
# Needs: python3 (PYTHON=... for another) with torch (CUDA), transformers, accelerate, pillow, numpy, pyarrow,
# packaging and scikit-image; and datasets, dill, multiprocess, xxhash, either installed or as wheels in
# .whl/ at the repository root (GPU_CHECK_WHEELS=... for another folder), fetched on a machine with network:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 xxhash==4.1.0
# datasets 5.2.0 also needs pyarrow>=24, fsspec<=2026.9.0 and huggingface-hub>=1.31 from the image: the
# environment step lists any requirement not met. Exit code 0: all steps passed; 1: some did not; 2: usage.
set -u
started=$(date +%s)
out=${1:-}
if [ -z "$out" ] || [ "${out#-}" != "$out" ]; then
    echo "usage: scripts/gpu_check.sh OUTDIR [--cpu-smoke]" >&2
    exit 2
fi
shift
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
wheels=${GPU_CHECK_WHEELS:-$root/.whl}
needed="datasets, dill, multiprocess, xxhash"
mkdir -p "$out" || exit 2
if ! "$python" -c "import $needed" 2>/dev/null; then
    if ! ls "$wheels"/*.whl >/dev/null 2>&1; then
        echo "error: $needed are not all installed and $wheels holds no wheels: fetch them as this script's" \
             "header says (scripts/gpu_check.sh)" >&2
        exit 2
    fi
    site=${TMPDIR:-/tmp}/fgbg-gpu-check-site
    echo "installing $(ls "$wheels"/*.whl | xargs -n1 basename | tr '\n' ' ')into $site"
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
        "$wheels"/*.whl || { echo "error: installing the wheels of $wheels failed" >&2; exit 2; }
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    "$python" -c "import $needed" || { echo "error: still missing after the install: $needed" >&2; exit 2; }
fi
exec "$python" "$root/scripts/gpu_check.py" "$out" --started "$started" "$@"
