#!/usr/bin/env bash
# Run from work/ (photos.txt from make_photo_list.sh; gcompris/ from extract_gcompris_photos.py):
#   (cat photos.txt; ls $PWD/gcompris/*) > photos_gcompris.txt
# Grayscale photo model, recipe 4 (issue 2): the 50 wallpaper photos plus the 115 animal and
# monument photos of gcompris-qt-data, longer side 1024, random flips and quarter turns, one run
# from scratch within the 2-hour budget; no normalization (recipe 3 with batch normalization
# swung by up to 1.7 dB on Set68 between checkpoints).
exec ../.venv/bin/denoiserlens train --data @photos_gcompris.txt --channels 1 --max-side 1024 \
  --patch-size 64 --patch-mode random --patches-per-image 1000 \
  --run-dir runs/gray-v4 --preset compact --no-bias --norm none --residual --augment \
  --steps 20000 --batch-size 32 --lr 1e-3 --lr-halve-every 5000 \
  --sigma-dist uniform --sigma-min 0 --sigma-max 60 --bf16 --channels-last \
  --eval-every 2000 --checkpoint-every 500 --test-fraction 0.01 --max-minutes 112 "$@"
