#!/usr/bin/env bash
# Run from work/ (photos.txt: assets/gray-photos/make_photo_list.sh; textures/: make_texture_folder.py):
#   (cat photos.txt; ls $PWD/textures/*) > photos_textures.txt
# Grayscale photo model, recipe 2 (issue 2): photos shrunk to BSD's scale (longer side 512) plus
# 33 photographic nature textures, random flips and quarter turns, faster learning-rate decay.
exec ../.venv/bin/denoiserlens train --data @photos_textures.txt --channels 1 --max-side 512 \
  --patch-size 64 --patch-mode random --patches-per-image 1500 \
  --run-dir runs/gray-v2 --preset compact --no-bias --norm batch --residual --augment \
  --steps 18000 --batch-size 32 --lr 1e-3 --lr-halve-every 4500 \
  --sigma-dist uniform --sigma-min 0 --sigma-max 60 --bf16 --channels-last \
  --eval-every 1000 --checkpoint-every 500 --test-fraction 0.01 --max-minutes 110 "$@"
