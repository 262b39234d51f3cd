#!/usr/bin/env bash
# Stage 2 of the grayscale photo model: fine-tune the stage-1 snapshot (train_gray_v1.sh, step 4750)
# at a lower learning rate on the same patches. runs/stage1 = that snapshot, from git history:
#   git show e0b08bc:src/denoiserlens/assets/gray-photos/weights.safetensors (and config.json).
exec ../.venv/bin/denoiserlens train --data @photos.txt --channels 1 --max-side 1024 \
  --patch-size 64 --patch-mode random --patches-per-image 2000 \
  --run-dir runs/gray-photos-ft --preset compact --no-bias --norm batch --residual \
  --init-from runs/stage1 \
  --steps 5000 --batch-size 32 --lr 5e-4 --lr-halve-every 2000 \
  --sigma-dist uniform --sigma-min 0 --sigma-max 60 --bf16 --channels-last \
  --eval-every 500 --checkpoint-every 250 --test-fraction 0.01 --max-minutes 100 "$@"
