#!/usr/bin/env bash
# Issue 19: what a reader sees, measured on a Fashion-MNIST model with the bundled classifier.
#   benchmarks/quality.sh MODEL OUT [N_SAMPLES] [PRESETS]
# 1. N unconditional samples per preset (default 200; ks2021 and representation) against 2N
#    Fashion-MNIST test images padded to 32: pixel statistics, Frechet distance in the
#    classifier's features and the data-vs-data floor at the same N (sample --reference).
# 2. Figure 7 with 10 targets, the first test image of each class, x 8 reconstructions each,
#    the CLI's defaults: class agreement (reconstruct prints it).
# Outputs (samples.png, fig7_reconstructions.png, quality.json, reconstruct.json) under OUT.
set -euo pipefail
MODEL=$1 OUT=$2 N=${3:-200} PRESETS=${4:-ks2021 representation}
BIN=${BIN:-.venv/bin}
for preset in $PRESETS; do
  "$BIN/denoiserlens" sample --model "$MODEL" --n "$N" --size 32 --preset "$preset" \
    --reference fashion-mnist:test --out "$OUT/samples-$preset" ${BF16:+--bf16}
done
ROWS=$("$BIN/python" -c "
import numpy as np
from denoiserlens.data import fashion_mnist
lab = fashion_mnist('test').labels
print(','.join(str(int(np.flatnonzero(lab == c)[0])) for c in range(10)))")
"$BIN/denoiserlens" reconstruct --model "$MODEL" --data fashion-mnist:test --pad-to 32 \
  --rows "$ROWS" --n-samples 8 --out "$OUT/reconstructions" ${BF16:+--bf16}
