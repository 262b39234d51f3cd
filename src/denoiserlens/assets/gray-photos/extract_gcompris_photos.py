"""Writes the photos packed in Debian's `gcompris-qt-data` Qt resource files into a folder (see
../shared/data/README.md): every RGB or gray JPEG/WebP image of the activities in
`PHOTO_ACTIVITIES` whose shorter side is at least `--min-side` pixels: 115 photos of animals,
monuments and musicians, 1024-1920 pixels wide. None of them is a Berkeley (BSD) image, so Set68
stays a clean test set.

    apt-get install -y --no-install-recommends gcompris-qt-data
    python extract_gcompris_photos.py gcompris/

The `.rcc` layout is Qt's (qtbase `src/corelib/io/qresource.cpp`, `rcc.cpp`): a header ('qres',
version, offsets of the tree, data and names sections, big-endian), a tree of fixed-size nodes
(name offset, flags, then either child count and first child, or locale and data offset; a
modification time from version 2 on), names as UTF-16 with a length and a hash, data as a
length-prefixed blob, zlib-compressed with a 4-byte size in front when the node's flag says so.
"""

from __future__ import annotations

import argparse
import io
import struct
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

RCC_DIR = Path("/usr/share/gcompris-qt/rcc")
# The activities whose large images are photographs (looked at one by one); the others hold
# drawings, or photo cut-outs with transparency (the `lang` vocabulary images).
PHOTO_ACTIVITIES = (
    "erase",
    "explore_monuments",
    "explore_world_animals",
    "explore_farm_animals",
    "explore_world_music",
)
COMPRESSED, DIRECTORY, COMPRESSED_ZSTD = 0x01, 0x02, 0x04


def rcc_files(blob: bytes) -> Iterator[tuple[str, bytes]]:
    """Yield (path, content) for every file of a Qt binary resource (`.rcc`)."""
    if blob[:4] != b"qres":
        raise ValueError("not a Qt resource file (no 'qres' magic)")
    version, tree, data, names = struct.unpack(">4I", blob[4:20])
    node_size = 22 if version >= 2 else 14

    def name_of(node: int) -> str:
        (offset,) = struct.unpack(">I", blob[tree + node * node_size : tree + node * node_size + 4])
        (length,) = struct.unpack(">H", blob[names + offset : names + offset + 2])
        return blob[names + offset + 6 : names + offset + 6 + 2 * length].decode("utf-16-be")

    def walk(node: int, prefix: str) -> Iterator[tuple[str, bytes]]:
        base = tree + node * node_size
        (flags,) = struct.unpack(">H", blob[base + 4 : base + 6])
        if flags & DIRECTORY:
            count, first = struct.unpack(">2I", blob[base + 6 : base + 14])
            for child in range(first, first + count):
                yield from walk(child, f"{prefix}{name_of(child)}/")
            return
        (offset,) = struct.unpack(">I", blob[base + 10 : base + 14])
        (size,) = struct.unpack(">I", blob[data + offset : data + offset + 4])
        content = blob[data + offset + 4 : data + offset + 4 + size]
        if flags & COMPRESSED_ZSTD:
            return  # not used by these files; skipped rather than guessed
        if flags & COMPRESSED:
            content = zlib.decompress(content[4:])
        yield prefix.rstrip("/"), content

    yield from walk(0, "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the photos to")
    parser.add_argument("--min-side", type=int, default=256, help="smallest shorter side kept")
    args = parser.parse_args()
    if not RCC_DIR.exists():
        sys.exit(f"{RCC_DIR} is absent: apt-get install gcompris-qt-data")
    args.out.mkdir(parents=True, exist_ok=True)
    kept = 0
    for activity in PHOTO_ACTIVITIES:
        for path, content in rcc_files((RCC_DIR / f"{activity}.rcc").read_bytes()):
            if not path.lower().endswith((".jpg", ".jpeg", ".webp")):
                continue
            with Image.open(io.BytesIO(content)) as im:
                if im.mode not in ("RGB", "L") or min(im.size) < args.min_side:
                    continue
            name = f"{activity}-{path.replace('/', '_')}"
            (args.out / name).write_bytes(content)
            kept += 1
    print(f"{kept} photos in {args.out}")


if __name__ == "__main__":
    main()
