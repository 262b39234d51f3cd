#!/usr/bin/env bash
# Issue 19, item 3: the paper-form Fashion-MNIST model retrained with the authors' layer norm
# (x / (std + 1e-5) * gain), longer than the bundled one. Run from the checkout root, in the
# background, one thread beside other work; resume with --resume in the same session:
#   OMP_NUM_THREADS=1 nohup benchmarks/data/train_fmnist_v2.sh work/runs/fmnist-small-v2 &
# 2026-12-02 (Intel Xeon, AMX): 0.9 steps/s; stopped at step 6000 (BENCHMARKS.md, "Quality
# measures"). A later session without this run directory starts again, or continues from bundled
# weights with --init-from at the lr where it stopped.
RUN=${1:-work/runs/fmnist-small-v2}; shift || true
exec .venv/bin/denoiserlens train --data fashion-mnist --pad-to 32 --run-dir "$RUN" --preset small \
  --steps 9000 --batch-size 64 --lr 1e-3 --lr-halve-every 3000 \
  --sigma-dist sqrt --sigma-min 0 --sigma-max 255 --bf16 --channels-last \
  --eval-every 1000 --checkpoint-every 500 --test-fraction 0.02 --max-minutes 160 "$@"
