#!/usr/bin/env bash
# Grayscale photo model, recipe 3 (issue 2): the bundled model's recipe (recipe 4,
# assets/gray-photos/train_gray.sh: same data, schedule and seed) with batch normalization, which
# swung by up to 1.7 dB on Set68 between checkpoints. Run from work/; later options override.
exec "$(dirname "$0")/../../src/denoiserlens/assets/gray-photos/train_gray.sh" --norm batch \
  --run-dir runs/gray-v3 --max-minutes 112 "$@"
