"""Downsampled ImageNet as distributed (issue 21, item 1): small synthetic files of exactly that
layout (key ``data``: uint8 rows of 12288 = 3 x 64 x 64 in channel-major order; key ``labels``:
1..1000), uncompressed and compressed, read lazily, several at once."""

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_user_error, run_cli
from denoiserlens.data import read_source
from denoiserlens.data.imageset import FileRows, StackedRows
from denoiserlens.errors import UserError
from denoiserlens.models import UNet, preset_config, save_model
from denoiserlens.represent import RepresentConfig, Store, represent


def _batch(n: int, seed: int, side: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 256, (n, 3 * side * side), dtype=np.uint8)
    return rows, rng.integers(1, 1001, n)  # labels as distributed: 1..1000


def _write(path, rows, labels, compressed=False, **more):
    save = np.savez_compressed if compressed else np.savez
    save(path, data=rows, labels=labels, **more)
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("DENOISERLENS_CACHE", str(folder))
    return folder


@pytest.mark.parametrize("compressed", [False, True])
def test_a_batch_reads_as_its_images_channel_major_with_0_based_labels(tmp_path, cache, compressed):
    rows, labels = _batch(5, seed=0)
    rows[0] = 0
    rows[0, :4096] = 255  # the first plane of row 0 is red
    mean = rows.mean(axis=0)  # the training batches carry their mean image too
    path = _write(tmp_path / "train_data_batch_1.npz", rows, labels, compressed, mean=mean)
    ims = read_source(str(path))
    assert ims.images.shape == (5, 3, 64, 64) and ims.images.dtype == np.uint8
    np.testing.assert_array_equal(ims.images, rows.reshape(5, 3, 64, 64))
    assert (ims[0][0] == 255).all() and (ims[0][1:] == 0).all()
    np.testing.assert_array_equal(ims.labels, labels - 1)
    assert isinstance(ims.images, FileRows), "read into memory, not from the file per row"
    cached = sorted(p.name for p in cache.glob("[!.]*")) if cache.exists() else []  # no locks
    if not compressed:  # read where it lies in the zip file: nothing copied
        assert cached == []
        assert Path(ims.images.path) == path
    else:  # decompressed once into the cache (images only; labels are small)
        assert len(cached) == 1 and cached[0].startswith("train_data_batch_1.data.")
        before = (cache / cached[0]).stat().st_mtime_ns
        again = read_source(str(path))
        assert (cache / cached[0]).stat().st_mtime_ns == before  # reused, not rewritten
        np.testing.assert_array_equal(again.images, ims.images)


def test_many_files_at_once_in_natural_order_stay_on_disk(tmp_path, cache):
    parts = {k: _batch(3 + k, seed=k) for k in (1, 2, 10)}
    folder = tmp_path / "Imagenet64_train"
    folder.mkdir()
    for k, (rows, labels) in parts.items():
        _write(folder / f"train_data_batch_{k}.npz", rows, labels, compressed=k == 2)
    ims = read_source(str(folder / "*.npz"))
    assert isinstance(ims.images, StackedRows) and len(ims) == 4 + 5 + 13
    order = (1, 2, 10)  # batch_10 after batch_2, not between 1 and 2
    want = np.concatenate([parts[k][0] for k in order]).reshape(-1, 3, 64, 64)
    np.testing.assert_array_equal(ims.images[np.arange(len(ims))], want)
    np.testing.assert_array_equal(ims.labels, np.concatenate([parts[k][1] for k in order]) - 1)
    assert ims.names[4] == "train_data_batch_2.npz:0"
    for key in (0, 4, 8, 9, -1):  # rows on both sides of each file boundary
        np.testing.assert_array_equal(ims[key], want[key])
    np.testing.assert_array_equal(ims.images[7:11], want[7:11])
    np.testing.assert_array_equal(ims.images[[12, 3, 12]], want[[12, 3, 12]])
    with pytest.raises(IndexError):
        ims.images[22]
    assert ims.subset([21, 0]).fingerprint == ims.subset([21, 0]).fingerprint
    np.testing.assert_array_equal(ims.subset([21, 0]).images, want[[21, 0]])


@pytest.mark.parametrize("compressed", [False, True])
def test_broken_files_of_the_layout_are_one_line_errors(tmp_path, cache, compressed):
    rows, labels = _batch(4, seed=3)
    cases = {
        "rows and labels": (rows, labels[:3], "4 rows but 3 labels"),
        "row length": (rows[:, :12000], labels, "rows of 12000 values are not 3 x S x S"),
        "0-based labels": (rows, np.r_[0, labels[1:]], "labels must be 1-based"),
        "not uint8": (rows.astype(np.float32), labels, "must be uint8 rows"),
    }
    for name, (r, lab, phrase) in cases.items():
        path = _write(tmp_path / f"{name.replace(' ', '_')}.npz", r, lab, compressed)
        with pytest.raises(UserError, match=phrase):
            read_source(str(path))
    assert not list(cache.glob("*.tmp")) if cache.exists() else True
    path = tmp_path / "rows and labels.npz"
    _write(path, rows, labels[:3], compressed)
    save_model(UNet(preset_config("tiny")), tmp_path / "m")
    assert_user_error(
        run_cli(["represent", "--model", tmp_path / "m", "--data", path, "--out", tmp_path / "s"]),
        "4 rows but 3 labels",
    )
    assert not (tmp_path / "s").exists()
    assert_user_error(
        run_cli(
            [
                "evaluate",
                "--model",
                tmp_path / "m",
                "--data",
                tmp_path / "missing*.npz",
                "--out",
                tmp_path / "e",
            ]
        ),
        "no file or folder matches",
    )


def test_a_cut_compressed_member_is_refused_and_nothing_is_cached(tmp_path, cache):
    rows, labels = _batch(6, seed=4)
    whole = _write(tmp_path / "whole.npz", rows, labels, compressed=True)
    cut = tmp_path / "cut.npz"
    with zipfile.ZipFile(whole) as src, zipfile.ZipFile(cut, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info)
            dst.writestr(info.filename, body[: len(body) // 2] if "data" in info.filename else body)
    with pytest.raises(UserError, match="cut short"):
        read_source(str(cut))
    assert not list(cache.glob("[!.]*")), "a half-decompressed member was left in the cache"
    assert not list(cache.glob("*.tmp")), "its temporary was left"


def test_train_and_represent_on_the_layout_equal_the_same_images_in_memory(tmp_path, cache):
    folder = tmp_path / "in64"
    folder.mkdir()
    parts = [_batch(12, seed=k) for k in range(2)]
    for k, (rows, labels) in enumerate(parts):
        _write(folder / f"train_data_batch_{k + 1}.npz", rows, labels, compressed=k == 1)
    spec = str(folder / "train_data_batch_*.npz")
    run = tmp_path / "run"
    done = run_cli(
        [
            "train",
            "--data",
            spec,
            "--preset",
            "tiny",
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--test-fraction",
            "0.2",
            "--run-dir",
            run,
        ]
    )
    assert done.returncode == 0, done.stderr
    data = json.loads((run / "config.json").read_text())["data"]
    assert data["count"] == 24 and data["train_count"] == 19

    torch.manual_seed(0)
    model = UNet(preset_config("tiny", image_channels=3)).eval()
    save_model(model, tmp_path / "m")
    lazy = read_source(spec)
    memory = lazy.subset(np.arange(len(lazy)))  # the same rows, read into one in-memory array
    assert isinstance(lazy.images, StackedRows) and isinstance(memory.images, np.ndarray)
    cfg = RepresentConfig(sigmas=(0.1,), n_noise=2, chunk_size=5)
    a = represent(model, lazy, tmp_path / "a", cfg).phi(0.1)
    b = represent(model, memory, tmp_path / "b", cfg).phi(0.1)
    np.testing.assert_array_equal(a, b)
    assert Store(tmp_path / "a").meta["data"]["fingerprint"] == lazy.fingerprint


def test_loader_workers_read_the_files_themselves(tmp_path, cache):
    # the rows pickle as a path and an offset (not as their pixels); each worker opens the file
    import pickle

    from torch.utils.data import DataLoader

    from denoiserlens.data import UInt8Images, collate_to_float

    for k in (1, 2):
        _write(tmp_path / f"train_data_batch_{k}.npz", *_batch(5, seed=k), compressed=k == 2)
    ims = read_source(str(tmp_path / "*.npz"))
    assert len(pickle.dumps(ims.images)) < 2000
    rows = np.arange(10)[::-1].copy()
    loader = DataLoader(
        UInt8Images(ims, rows), batch_size=4, num_workers=2, collate_fn=collate_to_float
    )
    got = torch.cat(list(loader))
    np.testing.assert_array_equal(got.numpy(), ims.images[rows] / np.float32(255))


def test_damaged_members_and_an_unwritable_cache_are_one_line_errors(tmp_path, cache, monkeypatch):
    rows, labels = _batch(5, seed=6)
    # a stored member whose header claims 10 rows but holds 5: not read on into the next member
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (10, 12288)}
    )
    lab = io.BytesIO()
    np.save(lab, np.arange(1, 11))
    short = tmp_path / "short.npz"
    with zipfile.ZipFile(short, "w", zipfile.ZIP_STORED) as z:
        z.writestr("data.npy", header.getvalue() + rows.tobytes())
        z.writestr("labels.npy", lab.getvalue())
    with pytest.raises(UserError, match="cut short"):
        read_source(str(short))
    # bytes flipped inside a compressed member's deflate stream
    whole = _write(tmp_path / "whole.npz", rows, labels, compressed=True)
    raw = bytearray(whole.read_bytes())
    with zipfile.ZipFile(whole) as z:
        info = z.getinfo("data.npy")
    middle = info.header_offset + 30 + len(info.filename) + 20 + info.compress_size // 2
    raw[middle : middle + 64] = bytes(64)
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(bytes(raw))
    with pytest.raises(UserError, match="damaged.npz"):
        read_source(str(damaged))
    assert not list(cache.glob("[!.]*")) and not list(cache.glob("*.tmp")), "a damaged copy stayed"
    with pytest.raises(UserError, match="not 3 x S x S"):  # rows of no value
        read_source(str(_write(tmp_path / "empty_rows.npz", rows[:, :0], labels)))
    monkeypatch.setenv("DENOISERLENS_CACHE", "/proc/no-cache-here")
    with pytest.raises(UserError, match="cache folder /proc/no-cache-here is not writable"):
        read_source(str(whole))


def test_file_rows_index_as_numpy_does(tmp_path):
    data = np.arange(6 * 2 * 3, dtype=np.uint8).reshape(6, 1, 2, 3)
    (tmp_path / "a.bin").write_bytes(b"xx" + data.tobytes())
    rows = FileRows(tmp_path / "a.bin", 2, data.shape)
    for key in (slice(3, 1), slice(10, 20), slice(None, None, 2), slice(-2, None), [5, 0, 5]):
        np.testing.assert_array_equal(rows[key], data[key])
    np.testing.assert_array_equal(rows[-1], data[-1])
    assert np.asarray(FileRows(tmp_path / "a.bin", 2, (0, 1, 2, 3))).shape == (0, 1, 2, 3)
    for bad in ([1.7], np.array([True, False] * 3)):
        with pytest.raises(TypeError):
            rows[bad]
    with pytest.raises(IndexError):
        rows[6]
