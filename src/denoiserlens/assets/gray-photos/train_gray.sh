#!/usr/bin/env bash
# The bundled grayscale photo model (issue 2, recipe 4; see README.md here). Run from work/:
#   bash ../src/denoiserlens/assets/gray-photos/make_photo_list.sh photos.txt
#   ../.venv/bin/python ../src/denoiserlens/assets/gray-photos/extract_gcompris_photos.py gcompris
#   (cat photos.txt; ls $PWD/gcompris/*) > photos_gcompris.txt
# The 50 wallpaper photos plus the 115 animal and monument photos of gcompris-qt-data, longer side
# 1024, random 64x64 patches with flips and quarter turns; compact bias-free residual UNet without
# normalization. One thread is the fastest here (OMP_NUM_THREADS=1, 4.2 steps/s on the Xeon);
# stop and go on with --resume (bit-exact), e.g. --max-minutes 60 twice.
exec ../.venv/bin/denoiserlens train --data @photos_gcompris.txt --channels 1 --max-side 1024 \
  --patch-size 64 --patch-mode random --patches-per-image 1000 \
  --run-dir runs/gray-photos --preset compact --no-bias --norm none --residual --augment \
  --steps 20000 --batch-size 32 --lr 1e-3 --lr-halve-every 5000 \
  --sigma-dist uniform --sigma-min 0 --sigma-max 60 --bf16 --channels-last \
  --eval-every 2000 --checkpoint-every 500 --test-fraction 0.01 "$@"
