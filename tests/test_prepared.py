"""Large folders prepared once (issue 21, item 2): each file decoded, its centred square resized
(bicubic, as the authors made their 80x80 sets), gray files converted or skipped, in worker
processes, into a cache read back row by row."""

import os

import numpy as np
import pytest
from PIL import Image

from conftest import assert_user_error, run_cli
from denoiserlens.data import DataSpec, center_crop_resize, open_data, read_image
from denoiserlens.data.imageset import FileRows
from denoiserlens.errors import UserError
from denoiserlens.models import UNet, preset_config, save_model


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DENOISERLENS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    root = tmp_path / "faces"
    for k, (h, w) in enumerate([(40, 56), (64, 30), (33, 33), (50, 70), (21, 48), (90, 45)]):
        sub = root / ("a" if k % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        im = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(im).save(sub / f"img{k}.{'png' if k % 3 else 'jpg'}")
    Image.fromarray(rng.integers(0, 256, (44, 36), dtype=np.uint8)).save(root / "a" / "gray.png")
    return root


def _spec(root, **kw):
    return DataSpec((str(root),), **{"channels": 3, "size": 16, "resample": "bicubic", **kw})


def test_a_folder_is_prepared_once_as_the_authors_made_their_sets(folder, tmp_path, monkeypatch):
    ims = open_data(_spec(folder, workers=2))
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    assert isinstance(ims.images, FileRows) and ims.images.shape == (7, 3, 16, 16)
    assert ims.names == [str(p) for p in files]
    for k, p in enumerate(files):  # the largest centred square, bicubic; gray replicated
        np.testing.assert_array_equal(ims[k], center_crop_resize(read_image(p, 3), 16, "bicubic"))
    gray = ims[ims.names.index(str(folder / "a" / "gray.png"))]
    assert (gray[0] == gray[1]).all() and (gray[1] == gray[2]).all()
    cached = sorted(p.name for p in (tmp_path / "cache").glob("[!.]*"))  # its lock aside
    assert len(cached) == 2 and cached[0].endswith(".json") and cached[1].endswith(".npy")

    def no_decoding(*a, **k):
        raise AssertionError("a file was decoded again")

    monkeypatch.setattr("denoiserlens.data.prepared.read_image", no_decoding)
    again = open_data(_spec(folder))  # no workers: a decode would run here and fail
    assert again.fingerprint == ims.fingerprint
    np.testing.assert_array_equal(np.asarray(again.images), np.asarray(ims.images))


def test_gray_files_skipped_labels_and_a_changed_file(folder, monkeypatch):
    ims = open_data(_spec(folder, gray_files="skip", labels_from_dirs=True))
    assert len(ims) == 6 and not any(n.endswith("gray.png") for n in ims.names)
    assert ims.label_names == ["a", "b"] and list(ims.labels) == [0, 0, 0, 1, 1, 1]
    lanczos = open_data(_spec(folder, resample="lanczos"))  # another setting: its own cache
    assert lanczos.fingerprint != open_data(_spec(folder)).fingerprint
    before = open_data(_spec(folder))
    target = folder / "b" / "img0.jpg"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(target)
    os.utime(target, ns=(1, 1))  # a new listing (size and time) is a new cache
    after = open_data(_spec(folder))
    k = after.names.index(str(target))
    assert not after[k].any() and before[k].any()


def test_a_corrupt_file_is_one_line_and_nothing_is_cached(folder, tmp_path):
    (folder / "b" / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(UserError, match="cut.png"):
        open_data(_spec(folder, workers=2))
    assert not list((tmp_path / "cache").glob("*.npy"))
    assert not list((tmp_path / "cache").glob(".*.tmp"))
    save_model(UNet(preset_config("tiny", image_channels=3)), tmp_path / "m")
    cmd = ["represent", "--model", tmp_path / "m", "--data", folder, "--size", "16"]
    proc = run_cli([*cmd, "--channels", "3", "--decode-workers", "2", "--out", tmp_path / "s"])
    assert_user_error(proc, "cut.png: not a readable image")
    assert not (tmp_path / "s").exists()


def test_with_size_a_folder_reads_as_it_does_without(folder, monkeypatch):
    # the same files (hidden folders too) and the same channel rule (palettes are colour)
    rng = np.random.default_rng(1)
    (folder / ".hidden").mkdir()
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(
        folder / ".hidden/x.png"
    )
    gray_palette = Image.fromarray(rng.integers(0, 256, (30, 30), dtype=np.uint8)).convert("P")
    gray_palette.save(folder / "b" / "palette.png")
    plain = open_data(DataSpec((str(folder),)))
    sized = open_data(DataSpec((str(folder),), size=16))  # channels as the files say
    assert sized.names == plain.names and sized.channels == plain.channels == 3
    calls = []
    monkeypatch.setattr("denoiserlens.data.prepared.is_gray_file", lambda p: calls.append(p))
    again = open_data(DataSpec((str(folder),), size=16))
    assert calls == [] and again.fingerprint == sized.fingerprint  # the cached run reads no header


def test_a_failed_preparation_leaves_no_index(folder, tmp_path):
    (folder / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 10)
    with pytest.raises(UserError, match="broken.jpg"):
        open_data(_spec(folder))
    assert not list((tmp_path / "cache").glob("[!.]*")) and not list(
        (tmp_path / "cache").glob("*.tmp")
    )
