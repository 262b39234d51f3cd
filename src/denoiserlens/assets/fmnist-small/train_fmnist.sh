#!/usr/bin/env bash
# The paper-form grayscale model (issues 3, 4, 7): "small" preset (paper depth, half width), conv
# biases and bias-free layer normalization, direct output, sigma ~ 1/sqrt(sigma) on [0, 1] (paper
# Appendix A.3), on the 60k Fashion-MNIST training images centred on 32x32.
exec ../.venv/bin/denoiserlens train --data fashion-mnist --pad-to 32 \
  --run-dir runs/fmnist-small --preset small \
  --steps 4000 --batch-size 64 --lr 1e-3 --lr-halve-every 1500 \
  --sigma-dist sqrt --sigma-min 0 --sigma-max 255 --bf16 --channels-last \
  --eval-every 1000 --checkpoint-every 250 --test-fraction 0.02 --max-minutes 30 "$@"
