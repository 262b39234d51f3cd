"""Writes the photographic nature textures of Debian's `ufoai-textures` (see ../shared/data/README.md)
into a folder: the RGB images of `textures/tex_nature/` at least 512 pixels on each side, without
the material maps (`_nm`, `_gm`, ...). 33 files: grass, dirt, rock, sand. None is a Berkeley image.

    apt-get install -y --no-install-recommends ufoai-textures
    python make_texture_folder.py textures/
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

from PIL import Image

PK3 = Path("/usr/share/games/ufoai/base/0textures.pk3")
MAPS = ("_nm", "_gm", "_sm", "_rm", "_hm", "_glow")


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "textures")
    if not PK3.exists():
        sys.exit(f"{PK3} is absent: apt-get install ufoai-textures")
    out.mkdir(parents=True, exist_ok=True)
    kept = 0
    with zipfile.ZipFile(PK3) as z:
        for info in z.infolist():
            name = info.filename
            if info.is_dir() or not name.startswith("textures/tex_nature/"):
                continue
            if any(m in name for m in MAPS):
                continue
            data = z.read(info)
            with Image.open(io.BytesIO(data)) as im:
                if im.mode != "RGB" or min(im.size) < 512:
                    continue
            (out / Path(name).name).write_bytes(data)
            kept += 1
    print(f"{kept} textures in {out}")


if __name__ == "__main__":
    main()
