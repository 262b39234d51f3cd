#!/usr/bin/env bash
# Issue 6: the C-alpha slope table. For each alpha, a bias-free UNet trained on 32x32 C-alpha
# images (blind, sigma uniform in [0, 128]/255), then output vs input PSNR on fresh images of the
# same alpha, with the optimal slope alpha / (alpha + 1).
#   benchmarks/calpha_slopes.sh OUT [STEPS]     (resumable: rerun the same command)
set -euo pipefail
out=$1 steps=${2:-3000}
bin=${DENOISERLENS:-.venv/bin/denoiserlens}
for alpha in 0.5 1 2; do
  run="$out/calpha-$alpha"
  resume=(); [[ -f "$run/train_state.safetensors" ]] && resume=(--resume)
  "$bin" train --data "c-alpha:20000:32:$alpha" --run-dir "$run" --preset compact --no-bias \
    --norm batch --residual --steps "$steps" --batch-size 32 --lr 1e-3 \
    --lr-halve-every $((steps / 3)) --sigma-dist uniform --sigma-min 0 --sigma-max 128 --bf16 \
    --channels-last --eval-every 1000 --checkpoint-every 250 --test-fraction 0.01 "${resume[@]}"
  "$bin" slope --model "$run" --data "c-alpha:300:32:$alpha:1" --alpha "$alpha" \
    --sigmas 5,10,20,40,80 --out "$out/slope-$alpha" | tail -2
done
