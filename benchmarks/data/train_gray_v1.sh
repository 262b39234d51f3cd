#!/usr/bin/env bash
# Recipe 1, stage 1 (issue 2): compact bias-free UNet with batch norm, 64x64 patches of 50 photos.
exec ../.venv/bin/denoiserlens train --data @photos.txt --channels 1 --max-side 1024 \
  --patch-size 64 --patch-mode random --patches-per-image 2000 \
  --run-dir runs/gray-v1 --preset compact --no-bias --norm batch --residual \
  --steps 12000 --batch-size 32 --lr 1e-3 --lr-halve-every 4000 \
  --sigma-dist uniform --sigma-min 0 --sigma-max 60 --bf16 --channels-last \
  --eval-every 500 --checkpoint-every 250 --test-fraction 0.01 --max-minutes 105 "$@"
