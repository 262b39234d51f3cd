#!/usr/bin/env bash
# Issue 4, what makes phi semantic: the normalization ablation on Fashion-MNIST. The compact
# bias-free residual UNet of the bundled photo model, with NORM = none (its recipe) or batch,
# trained like the bundled Fashion-MNIST model (60k training images centred on 32x32, 4000 steps
# of 64, Adam 1e-3 halving every 1500, sigma ~ 1/sqrt(sigma) on [0, 255]/255). Resumable.
# The ablation toward the paper's form: BIAS=bias adds convolution biases (needed by NORM=layer),
# OUTPUT=direct makes the network output x_hat itself instead of y + net(y).
# BF16=0 trains in float32 (for CPUs without native bf16, where autocast is emulated: a step was
# 12x slower than in float32 on an AMD Zen 3).
#   OMP_NUM_THREADS=1 [BIAS=bias] [OUTPUT=direct] [BF16=0] benchmarks/data/train_fmnist_compact.sh NORM RUN_DIR
set -euo pipefail
norm=$1 run=$2; shift 2
resume=(); [[ -f "$run/train_state.safetensors" ]] && resume=(--resume)
residual=(--residual); [[ ${OUTPUT:-residual} == direct ]] && residual=()
bf16=(--bf16); [[ ${BF16:-1} == 0 ]] && bf16=()
exec "${DENOISERLENS:-.venv/bin/denoiserlens}" train --data fashion-mnist --pad-to 32 \
  --run-dir "$run" --preset compact "--${BIAS:-no-bias}" --norm "$norm" "${residual[@]}" \
  --steps 4000 --batch-size 64 --lr 1e-3 --lr-halve-every 1500 \
  --sigma-dist sqrt --sigma-min 0 --sigma-max 255 "${bf16[@]}" --channels-last \
  --eval-every 1000 --checkpoint-every 250 --test-fraction 0.02 "${resume[@]}" "$@"
