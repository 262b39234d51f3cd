"""Bad input, table-driven (issue 22): every case exits with status 2 and one error line, no
traceback, and leaves an existing output folder byte-for-byte as it was (the CLI in-process)."""

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_user_error, run_cli
from denoiserlens.data import disks
from denoiserlens.models import UNet, preset_config, save_model


def _bomb_png(path):
    """A PNG whose header claims 100000 x 100000 pixels (a decompression bomb), with a tiny body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    t = tmp_path_factory.mktemp("bad")
    torch.manual_seed(0)
    save_model(UNet(preset_config("tiny")).eval(), t / "m", data={"channel_means": [0.4]})
    np.save(t / "d.npy", disks(6, 16, seed=0).images[:, 0])
    Image.fromarray(disks(1, 16, seed=1).images[0, 0]).save(t / "img.png")
    (t / "bombs").mkdir()
    _bomb_png(t / "bombs" / "bomb.png")
    (t / "mixed").mkdir()
    for i, size in enumerate((16, 24, 16)):
        Image.fromarray(np.full((size, size), 40 * i, np.uint8)).save(t / "mixed" / f"{i}.png")
    np.save(t / "empty.npy", np.zeros((0, 16, 16), np.uint8))
    p = run_cli(["represent", "--model", t / "m", "--data", t / "d.npy", "--sigmas", "25",
                 "--n-noise", "2", "--out", t / "store"])  # fmt: skip
    assert p.returncode == 0, p.stderr
    (t / "corrupt-meta").mkdir()
    for f in (t / "store").iterdir():
        (t / "corrupt-meta" / f.name).write_bytes(f.read_bytes())
    (t / "corrupt-meta" / "meta.json").write_text("{not json")
    (t / "truncated").mkdir()
    for f in (t / "store").iterdir():
        data = f.read_bytes()
        (t / "truncated" / f.name).write_bytes(
            data[: len(data) // 2] if f.suffix == ".npy" else data
        )
    (t / "bad-config").mkdir()
    for f in (t / "m").iterdir():
        (t / "bad-config" / f.name).write_bytes(f.read_bytes())
    (t / "bad-config" / "config.json").write_text('{"model": ')
    return t


M, D, IMG, BOMB, MIXED, STORE = "{m}", "{d}", "{img}", "{bomb}", "{mixed}", "{store}"
CASES = [
    # (command line with placeholders, a phrase of the one error line)
    (["train", "--data", "disks:0:32", "--steps", "1"], "no images"),
    (["represent", "--model", M, "--data", "disks:0:32"], "no images"),
    (["train", "--data", D, "--steps", "1", "--batch-size", "2", "--lr", "nan"], "--lr"),
    (["train", "--data", D, "--steps", "1", "--batch-size", "2", "--lr", "-1"], "--lr"),
    (["train", "--data", D, "--steps", "1", "--batch-size", "2", "--lr", "inf"], "--lr"),
    (
        ["train", "--data", D, "--steps", "1", "--batch-size", "2", "--sigma-max", "inf"],
        "--sigma-max",
    ),
    (
        ["train", "--data", D, "--steps", "1", "--batch-size", "2", "--max-minutes", "-1"],
        "--max-minutes",
    ),
    (["train", "--data", BOMB, "--steps", "1"], "too large"),
    (["denoise", "--model", M, "--input", IMG, "--sigma", "inf"], "--sigma"),
    (["denoise", "--model", M, "--input", BOMB, "--sigma", "25"], "too large"),
    (["evaluate", "--model", M, "--data", D, "--sigmas", "inf"], "finite"),
    (["evaluate", "--model", M, "--data", D, "--limit", "-1"], "--limit"),
    (["evaluate", "--model", M, "--data", "{empty}"], "no images"),
    (["evaluate", "--model", M, "--data", BOMB], "too large"),
    (["jacobian", "--model", M, "--data", D, "--sigmas", "inf"], "finite"),
    (["represent", "--model", M, "--data", D, "--sigmas", "inf"], "finite"),
    (["represent", "--model", M, "--data", BOMB], "too large"),
    (["sample", "--model", M, "--n", "1", "--size", "16", "--sigma-0", "inf"], "--sigma-0"),
    (["reconstruct", "--model", M, "--data", D, "--sigma-max", "inf"], "--sigma-max"),
    (["distance", "--model", M, "--data", D, "--n-noise", "0"], "--n-noise"),
    (["distance", "--model", M, "--data", D, "--n-noise", "-1"], "--n-noise"),
    (["distance", "--model", M, "--data", D, "--phi-sigma", "-5"], "--phi-sigma"),
    (["distance", "--model", M, "--data", D, "--phi-sigma", "nan"], "--phi-sigma"),
    (["distance", "--model", M, "--data", D, "--phi-sigma", "inf"], "--phi-sigma"),
    (["distance", "--model", M, "--data", MIXED, "--images", "3"], "differ in size"),
    (["slope", "--model", M, "--data", MIXED], "differ in size"),
    (["analyze", "--store", STORE, "--reference", "inf"], "--reference"),
    (["analyze", "--store", "{corrupt_meta}"], "meta.json"),
    (["neighbours", "--store", "{corrupt_meta}"], "meta.json"),
    (["analyze", "--store", "{truncated}"], "M.npy"),
    (["recalibrate", "--model", "{bad_config}"], "config.json"),
]


@pytest.mark.parametrize(
    "case", range(len(CASES)), ids=lambda k: " ".join(CASES[k][0][:1] + CASES[k][0][-2:])
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(files, tmp_path, case):
    argv, phrase = CASES[case]
    names = {"m": files / "m", "d": files / "d.npy", "img": files / "img.png",
             "bomb": files / "bombs", "mixed": files / "mixed", "store": files / "store",
             "empty": files / "empty.npy", "corrupt_meta": files / "corrupt-meta",
             "truncated": files / "truncated", "bad_config": files / "bad-config"}  # fmt: skip
    args = [a.format(**{k: str(v) for k, v in names.items()}) for a in argv]
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("an earlier result")
    if args[0] == "train":  # a run directory must not exist: refusing it would hide the case
        args += ["--run-dir", str(tmp_path / "run")]
    elif args[0] in ("represent", "recalibrate"):  # a store, a run directory likewise
        args += ["--out", str(tmp_path / "run")]
    else:
        args += ["--out", str(out)]
    before = {p.name: p.read_bytes() for p in files.rglob("*") if p.is_file()}
    proc = run_cli(args)
    assert_user_error(proc, phrase)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {"keep.txt": b"an earlier result"}
    assert not (tmp_path / "run").exists()
    assert {p.name: p.read_bytes() for p in files.rglob("*") if p.is_file()} == before


def test_the_table_covers_every_command_that_reads_images():
    commands = {argv[0] for argv, _ in CASES}
    assert {"train", "represent", "denoise", "evaluate", "jacobian", "sample", "reconstruct",
            "distance", "slope", "analyze", "neighbours", "recalibrate"} <= commands  # fmt: skip
