#!/usr/bin/env bash
# Issue 19, item 3: a colour model on photo and texture patches (no Berkeley image, so Set5 and
# BSD100 in ../shared/data/test_images/color stay clean test sets). The paper's form at half
# width (small preset, the authors' layer norm), blind over sigma in [0, 255]/255 with the
# paper's 1/sqrt(sigma) density, so that it can also be sampled from. Run from the checkout root:
#   apt-get install -y --no-install-recommends lomiri-wallpapers-16.04 mate-backgrounds \
#       palapeli-data plasma-workspace-wallpapers ufoai-textures gcompris-qt-data
#   mkdir -p work/color && cd work/color
#   bash ../../src/denoiserlens/assets/gray-photos/make_photo_list.sh photos.txt
#   ../../.venv/bin/python ../../src/denoiserlens/assets/gray-photos/make_texture_folder.py textures
#   ../../.venv/bin/python ../../src/denoiserlens/assets/gray-photos/extract_gcompris_photos.py gcompris
#   (cat photos.txt; ls $PWD/gcompris/*; ls $PWD/textures/*) > sources.txt; cd ../..
#   OMP_NUM_THREADS=1 nohup benchmarks/data/train_color_v1.sh work/runs/color-small-v1 &
# Stop and go on with the same command plus --resume (bit-exact).
RUN=${1:-work/runs/color-small-v1}; shift || true
exec .venv/bin/denoiserlens train --data @work/color/sources.txt --channels 3 --max-side 1024 \
  --patch-size 64 --patch-mode random --patches-per-image 200 --augment \
  --run-dir "$RUN" --preset small --norm layer \
  --steps 40000 --batch-size 32 --lr 1e-3 --lr-halve-every 12000 \
  --sigma-dist sqrt --sigma-min 0 --sigma-max 255 --bf16 --channels-last --compile \
  --eval-every 2000 --checkpoint-every 500 --test-fraction 0.01 --max-minutes 150 "$@"
