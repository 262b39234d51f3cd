#!/usr/bin/env bash
# Writes photos.txt: the photos from Debian's wallpaper packages (see ../shared/data/README.md),
# one file per wallpaper (the largest JPEG of each plasma wallpaper; its PNGs are illustrations).
# None of them is a Berkeley (BSD) image, so Set68 stays a clean test set.
# apt-get install -y --no-install-recommends lomiri-wallpapers-16.04 mate-backgrounds palapeli-data \
#     plasma-workspace-wallpapers
set -eu
out=${1:-photos.txt}
{
  ls /usr/share/backgrounds/*.jpg /usr/share/backgrounds/mate/nature/*.jpg \
     /usr/share/palapeli/collection/*.jpg
  for d in /usr/share/wallpapers/*/contents/images; do
    ls -S "$d"/*.jpg 2>/dev/null | head -n 1 || true
  done
} > "$out"
wc -l < "$out"
