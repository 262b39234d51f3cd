#!/usr/bin/env bash
# Run from work/, with runs/stage1 = the stage-1 snapshot (git show e0b08bc:src/denoiserlens/assets/gray-photos/...).
# Diagnostic (issue 2): does less downscaling of the photos (longer side 2048 instead of 1024) bring
# the training data closer to Set68? Fine-tune the stage-1 snapshot (Set68 sigma 25: 28.43 dB).
exec ../.venv/bin/denoiserlens train --data @photos.txt --channels 1 --max-side 2048 \
  --patch-size 64 --patch-mode random --patches-per-image 2000 \
  --run-dir runs/ft-2048 --preset compact --no-bias --norm batch --residual \
  --init-from runs/stage1 --steps 1500 --batch-size 32 --lr 2.5e-4 \
  --sigma-dist uniform --sigma-min 0 --sigma-max 60 --bf16 --channels-last \
  --eval-every 1500 --checkpoint-every 500 --test-fraction 0.01 "$@"
