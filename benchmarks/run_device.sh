#!/usr/bin/env bash
# The accelerator run of jdiff's speed benchmarks: one prepared script, results into $OUT (or
# benchmarks/results). Uses the machine's own jax/diffrax/equinox/flax/optax (jdiff from source).
#   bash benchmarks/run_device.sh [TAG]
set -uo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-h200}
DEST=${OUT:-benchmarks/results}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$DEST/device_$TAG.txt"
python3 -c "import jax, diffrax, equinox, flax; print(jax.__version__, jax.devices(), diffrax.__version__, equinox.__version__, flax.__version__)" 2>&1 | tee -a "$DEST/device_$TAG.txt"
timeout 120 python3 benchmarks/sampling_overhead.py --tag "$TAG" --out "$DEST" 2>&1 | tail -8
timeout 150 python3 benchmarks/likelihood.py --device-tag "$TAG" --out "$DEST" 2>&1 | tail -8
timeout 330 python3 benchmarks/sampling_speed.py --device-tag "$TAG" --repeats 5 --out "$DEST" 2>&1 | tail -60
ls -la "$DEST"
