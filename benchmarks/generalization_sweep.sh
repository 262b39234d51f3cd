#!/usr/bin/env bash
# Issue 6: memorization vs generalization on Fashion-MNIST (32x32, padded), two compact bias-free
# UNets per training-set size N on disjoint sets, SAMPLES (64) samples each from the same seeds.
#   benchmarks/generalization_sweep.sh OUT [SIZES] [STEPS] [SAMPLES]
# Resumable: rerun the same command (models resume from their checkpoints, samples are kept).
set -euo pipefail
out=$1 sizes=${2:-1,10,100,1000,10000} steps=${3:-4000} samples=${4:-64}
exec "${DENOISERLENS:-.venv/bin/denoiserlens}" generalization --data fashion-mnist --pad-to 32 \
  --sizes "$sizes" --preset compact --residual --steps "$steps" --batch-size 64 --bf16 \
  --n-samples "$samples" --out "$out"
