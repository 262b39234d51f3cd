"""Bad input, table-driven (issue 22): every case exits with status 2 and one error line, no
traceback, and leaves an existing output folder byte-for-byte as it was (the CLI in-process)."""

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

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
    return make_files(tmp_path_factory.mktemp("bad"))


def make_files(t):
    """The good and broken files of the table, written into folder ``t``."""
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
    images = disks(6, 16, seed=0).images[:, 0]
    np.savez(t / "labelled.npz", images=images, labels=np.arange(6) % 2)  # for the label probe
    p = run_cli(
        [
            "represent",
            "--model",
            t / "m",
            "--data",
            t / "labelled.npz",
            "--sigmas",
            "25",
            "--n-noise",
            "2",
            "--out",
            t / "store",
        ]
    )
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
    _broken_files(t)
    return t


def _copy(src, dst, change=None):
    """A copy of folder ``src`` at ``dst``, each file's bytes passed through ``change(name, b)``."""
    dst.mkdir()
    for f in src.iterdir():
        data = f.read_bytes()
        (dst / f.name).write_bytes(data if change is None else change(f.name, data))


def _one(t, folder: str, name: str, data: bytes) -> None:
    (t / folder).mkdir()
    (t / folder / name).write_bytes(data)


def _broken_files(t) -> None:
    """Image, array, model, store and settings files that are broken in the ways users meet."""
    img = disks(1, 16, seed=1).images[0, 0]
    png, jpg = io.BytesIO(), io.BytesIO()
    Image.fromarray(img).save(png, format="PNG")
    Image.fromarray(img).save(jpg, format="JPEG", quality=90)
    _one(t, "cut-png", "x.png", png.getvalue()[: len(png.getvalue()) // 2])
    _one(t, "cut-jpeg", "x.jpg", jpg.getvalue()[: len(jpg.getvalue()) // 2])
    _one(t, "zero-byte", "x.png", b"")
    _one(t, "text-png", "x.png", b"this is a text file, not a PNG\n")
    for folder, shape in (("odd-size", (20, 20)), ("rgb", (16, 16, 3))):  # enough for any command
        (t / folder).mkdir()
        for i in range(8):
            Image.fromarray(np.full(shape, 30 * i, np.uint8)).save(t / folder / f"{i}.png")
    np.savez(t / "object.npz", images=np.array([{"a": 1}, None], dtype=object))
    idx = struct.pack(">BBBBIII", 0, 0, 8, 3, 4, 16, 16) + bytes(4 * 256)
    (t / "magic-images-idx3-ubyte").write_bytes(b"\x01\x02" + idx[2:])
    (t / "short-images-idx3-ubyte").write_bytes(idx[:316])
    _copy(
        t / "m", t / "cut-model", lambda n, b: b[: len(b) // 2] if n.endswith(".safetensors") else b
    )
    _copy(t / "m", t / "foreign-model")
    save_file({"encoder.weight": torch.zeros(3, 3)}, t / "foreign-model" / "weights.safetensors")
    torch.save({"state_dict": _Payload()}, t / "code.pt")
    (t / "text.pt").write_text("not a checkpoint")
    _copy(t / "store", t / "object-store")
    np.save(t / "object-store" / "M.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (t / "twins").mkdir()  # two inputs whose results would share one name
    Image.fromarray(img).save(t / "twins" / "img.png")
    Image.fromarray(img).save(t / "twins" / "img.jpg")
    for name, text in TOML.items():
        (t / f"{name}.toml").write_text(text)


class _Payload:
    """Pickled code: loading it with full unpickling would run ``print``."""

    def __reduce__(self):
        return (print, ("this checkpoint ran code",))


TOML = {
    "bf16-str": 'bf16 = "yes"',
    "seed-str": 'seed = "a"',
    "sigmas-number": "eval_sigmas = 5",
    "sigmas-str": 'stability_sigmas = ["a"]',
    "images-bool": "images = true",
    "images-float": "images = 1.5",
    "targets-negative": "targets = [-1]",
    "sigmas-empty": "eval_sigmas = []",
    "bm3d-negative": "bm3d_images = -1",
    "queries-beyond": "queries = [100000]",
    "sigmas-negative": "stability_sigmas = [-5.0]",
    "distance-grid-short": "distance_sigmas = 2",
    "distance-samples-zero": "distance_samples = 0",
    "not-toml": "images = = 3",
}


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
    (["distance", "--model", M, "--data", D, "--tau", "-1"], "--tau"),
    (["distance", "--model", M, "--data", D, "--tau", "nan"], "--tau"),
    (["distance", "--model", M, "--data", D, "--phi-sigma", "nan"], "--phi-sigma"),
    (["distance", "--model", M, "--data", D, "--phi-sigma", "inf"], "--phi-sigma"),
    (["distance", "--model", M, "--data", MIXED, "--images", "3"], "differ in size"),
    (["slope", "--model", M, "--data", MIXED], "differ in size"),
    (["analyze", "--store", STORE, "--reference", "inf"], "--reference"),
    (["analyze", "--store", "{corrupt_meta}"], "meta.json"),
    (["neighbours", "--store", "{corrupt_meta}"], "meta.json"),
    (["analyze", "--store", "{truncated}"], ".npy: truncated"),
    (["recalibrate", "--model", "{bad_config}"], "config.json"),
    (["denoise", "--model", M, "--input", "{twins}", "--sigma", "25"], "would both write"),
    (["denoise", "--model", M, "--input", IMG, "--sigma", "abc"], "is not a number"),
    (["sample", "--model", M, "--n", "two"], "is not a valid integer"),
]

# Every command against every broken file of the kind it reads: COMMANDS have slots {model},
# {data} and {store}; a fixture fills one slot, the good files the others. A fixture lists the
# commands for which it is not an error (train on RGB images trains an RGB model).
COMMANDS = {
    "train": ["train", "--data", "{data}", "--steps", "1", "--batch-size", "1", "--preset", "tiny"],
    "classifier": ["classifier", "--data", "{data}", "--epochs", "1"],
    "generalization": ["generalization", "--data", "{data}", "--sizes", "1", "--steps", "1"],
    "represent": [
        "represent",
        "--model",
        "{model}",
        "--data",
        "{data}",
        "--sigmas",
        "25",
        "--n-noise",
        "1",
    ],
    "denoise": ["denoise", "--model", "{model}", "--input", "{data}", "--sigma", "25"],
    "evaluate": ["evaluate", "--model", "{model}", "--data", "{data}"],
    "jacobian": ["jacobian", "--model", "{model}", "--data", "{data}"],
    "reconstruct": ["reconstruct", "--model", "{model}", "--data", "{data}"],
    "distance": ["distance", "--model", "{model}", "--data", "{data}"],
    "slope": ["slope", "--model", "{model}", "--data", "{data}"],
    "sample": ["sample", "--model", "{model}", "--n", "1", "--size", "16", "--data", "{data}"],
    "report": ["report", "--model", "{model}", "--data", "{data}"],
    "analyze": ["analyze", "--store", "{store}", "--model", "{model}"],
    "neighbours": ["neighbours", "--store", "{store}", "--k", "2"],
    "cluster": ["cluster", "--store", "{store}", "--k", "2"],
    "probe": ["probe", "--store", "{store}", "--k", "2"],
}
GOOD = {"model": M, "data": D, "store": STORE}
BROKEN = {  # slot: {fixture: (phrase of the error line, commands that accept it)}
    "data": {
        "{cut_png}": ("not a readable image", ()),
        "{cut_jpeg}": ("not a readable image", ()),
        "{zero_byte}": ("not a readable image", ()),
        "{text_png}": ("not a readable image", ()),
        BOMB: ("too large", ()),
        "{empty}": ("no images", ()),
        "{object}": ("not a readable numpy file", ()),
        "{idx_magic}": ("not an unsigned-byte IDX file", ()),
        "{idx_short}": ("truncated IDX file", ()),
        "{odd_size}": ("divisible by 8", ("classifier", "sample")),
        "{rgb}": ("channel", ("train", "classifier", "generalization", "sample")),  # sample: gray
    },
    "model": {
        "{cut_model}": ("not a readable safetensors file", ()),
        "{foreign_model}": ("does not fit the architecture", ()),
        "{bad_config}": ("config.json", ()),
    },
    "store": {
        "{corrupt_meta}": ("meta.json", ()),
        "{truncated}": (".npy: truncated", ()),
        "{object_store}": ("M.npy: truncated or not a float array", ()),
    },
}
CASES += [
    ([a.format(**{**GOOD, slot: fixture}) for a in argv], phrase)
    for slot, fixtures in BROKEN.items()
    for fixture, (phrase, accepted) in fixtures.items()
    for command, argv in COMMANDS.items()
    if f"{{{slot}}}" in argv and command not in accepted
]
CASES += [
    (["convert", "--checkpoint", "{code_pt}"], "not a plain tensor state dict"),
    (["convert", "--checkpoint", "{text_pt}"], "text.pt"),
    (["convert", "--checkpoint", "{cut_model}/weights.safetensors"], "not a readable safetensors"),
]
# The report's settings file, of the wrong types and values: refused before anything is written.
CASES += [
    (
        ["report", "--model", M, "--data", D, "--config", f"{{toml_{name.replace('-', '_')}}}"],
        "report setting" if name != "not-toml" else "not valid TOML",
    )
    for name in TOML
]


def placeholders(files) -> dict[str, str]:
    """The fixture files by placeholder name: {cut_png} is the folder cut-png, and so on."""
    names = {
        "m": "m",
        "d": "d.npy",
        "img": "img.png",
        "bomb": "bombs",
        "mixed": "mixed",
        "store": "store",
        "empty": "empty.npy",
        "object": "object.npz",
        "code_pt": "code.pt",
        "text_pt": "text.pt",
        "idx_magic": "magic-images-idx3-ubyte",
        "idx_short": "short-images-idx3-ubyte",
    }
    names.update({f"toml_{n.replace('-', '_')}": f"{n}.toml" for n in TOML})
    for p in files.iterdir():
        names.setdefault(p.name.replace("-", "_"), p.name)
    return {k: str(files / v) for k, v in names.items()}


def command_line(argv: list[str], names: dict[str, str], out, new) -> list[str]:
    """A case's command line: placeholders filled, and an output folder: ``out``, made here and
    holding an earlier result, or ``new`` where the command refuses an existing folder (a run
    directory, a store, a converted model), as refusing it would hide the case."""
    out.mkdir()
    (out / "keep.txt").write_text("an earlier result")
    args = [a.format(**names) for a in argv]
    if args[0] == "train":
        return [*args, "--run-dir", str(new)]
    return [*args, "--out", str(new if args[0] in ("represent", "recalibrate", "convert") else out)]


@pytest.mark.parametrize("case", range(len(CASES)), ids=lambda k: f"{k}:" + " ".join(CASES[k][0]))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(files, tmp_path, case):
    argv, phrase = CASES[case]
    out = tmp_path / "out"
    before = {p.name: p.read_bytes() for p in files.rglob("*") if p.is_file()}
    proc = run_cli(command_line(argv, placeholders(files), out, tmp_path / "run"))
    assert_user_error(proc, phrase)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {"keep.txt": b"an earlier result"}
    assert not (tmp_path / "run").exists()
    assert {p.name: p.read_bytes() for p in files.rglob("*") if p.is_file()} == before


def test_the_table_covers_every_command_that_reads_images():
    commands = {argv[0] for argv, _ in CASES}
    assert {
        "train",
        "represent",
        "denoise",
        "evaluate",
        "jacobian",
        "sample",
        "reconstruct",
        "distance",
        "slope",
        "analyze",
        "neighbours",
        "recalibrate",
    } <= commands


def test_16_bit_rgba_and_palette_images_are_read_as_they_look(tmp_path):
    """Not bad input: conversions. A 16-bit PNG is of 65535 even when dark (not rescaled by its
    own maximum), RGBA drops alpha, a palette image reads as its colours."""
    from denoiserlens.data import read_source

    v = np.arange(256, dtype=np.uint16).reshape(16, 16)
    Image.fromarray(v * 257).save(tmp_path / "bright16.png")
    Image.fromarray(v).save(tmp_path / "dark16.png")  # values 0..255 of 65535: near black
    assert Image.open(tmp_path / "dark16.png").mode == "I;16"
    assert np.array_equal(read_source(str(tmp_path / "bright16.png")).images[0, 0], v)
    assert read_source(str(tmp_path / "dark16.png")).images.max() == 1  # 255 / 257, rounded
    rgba = np.stack([np.full((16, 16), 200), v, np.full((16, 16), 7), v[::-1]], -1).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    got = read_source(str(tmp_path / "rgba.png")).images[0]
    assert np.array_equal(got.transpose(1, 2, 0), rgba[..., :3])
    pal = Image.fromarray(rgba[..., :3]).convert("P", palette=Image.ADAPTIVE, colors=16)
    pal.save(tmp_path / "pal.png")
    got = read_source(str(tmp_path / "pal.png")).images[0]
    assert np.array_equal(got.transpose(1, 2, 0), np.asarray(pal.convert("RGB")))


def test_float_tiffs_of_one_and_of_255(tmp_path):
    """A float TIFF within [0, 1] is of 1 (the usual range of float images), not near black; one
    above 1 is of 255."""
    from denoiserlens.data import read_source

    v = np.arange(256, dtype=np.float32).reshape(16, 16)
    Image.fromarray(v / 255, mode="F").save(tmp_path / "unit.tif")
    Image.fromarray(v, mode="F").save(tmp_path / "of255.tif")
    assert Image.open(tmp_path / "unit.tif").mode == "F"
    for name in ("unit.tif", "of255.tif"):
        assert np.array_equal(read_source(str(tmp_path / name)).images[0, 0], v.astype(np.uint8))
