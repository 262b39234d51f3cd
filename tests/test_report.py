import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli
from denoiserlens.data import disks
from denoiserlens.models import UNet, preset_config, save_model
from denoiserlens.report import SECTIONS

EXE = str(Path(sys.executable).parent / "denoiserlens")
EVIL = "<img src=x onerror=alert(1)>"
CHEAP = """
images = 24
eval_images = 4
bm3d_images = 1
n_noise = 2
stability_sigmas = [10, 50, 127.5]
clusters = 3
queries = [0, 1]
samples = 4
targets = [0]
reconstruction_steps = 3
distance_images = 3
distance_samples = 2
distance_steps = 8
distance_sigmas = 5
jacobian_k = 3
explorer_images = 24
bf16 = false
"""


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    torch.manual_seed(0)
    save_model(UNet(preset_config("tiny")).eval(), tmp / "m")
    ims = disks(24, 16, seed=0)
    for i, im in enumerate(ims.images):
        label = "small" if ims.params[i, 0] < 4 else "large"
        (tmp / "data" / label).mkdir(parents=True, exist_ok=True)
        name = EVIL if i == 0 else f"disk{i:02d}"
        Image.fromarray(im[0]).save(tmp / "data" / label / f"{name}.png")
    (tmp / "cheap.toml").write_text(CHEAP)
    args = [
        EXE,
        "report",
        "--model",
        str(tmp / "m"),
        "--data",
        str(tmp / "data"),
        "--labels-from-dirs",
        "--config",
        str(tmp / "cheap.toml"),
        "--out",
        str(tmp / "r"),
    ]
    p = run_cli(args, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return tmp, args


def test_report_writes_every_section_and_valid_metrics(report_dir):
    tmp, _ = report_dir
    metrics = json.loads((tmp / "r/metrics.json").read_text())
    assert set(metrics["sections"]) == set(SECTIONS)
    assert not any(s["skipped"] for s in metrics["sections"].values()), metrics["sections"]
    page = (tmp / "r/index.html").read_text()
    for name in SECTIONS[:-1]:
        assert f"<section id='{name}'>" in page
    for src in [line.split("src='")[1].split("'")[0] for line in page.split("<img")[1:]]:
        with Image.open(tmp / "r" / src) as im:  # every figure exists and is a PNG
            assert im.format == "PNG" and min(im.size) >= 16, src
    assert metrics["sections"]["representation"]["findings"]
    quality = metrics["sections"]["samples"]["quality"]  # 16x16: no classifier, pixels only
    assert quality["n"] == 4 and quality["frechet"] is None and quality["data"]["max"] > 0.5
    assert "pixels (samples vs data): mean" in page
    assert len(list((tmp / "r/explorer").glob("*.png"))) == 24
    assert "denoising/vs-bm3d/psnr.png" in page  # BM3D and the model, same images and noise
    vs = json.loads((tmp / "r/denoising/vs-bm3d/results.json").read_text())
    assert {r["method"] for r in vs["table"]} == {"model", "BM3D"} and len(vs["images"]) == 1


def test_names_from_the_data_are_escaped(report_dir):
    tmp, _ = report_dir
    page = (tmp / "r/index.html").read_text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and EVIL not in page
    js = (tmp / "r/explorer-data.js").read_text()
    assert EVIL not in js and "\\u003cimg src=x onerror=alert(1)>" in js
    explorer = (tmp / "r/explorer.html").read_text()
    assert "innerHTML" not in explorer and "textContent" in explorer
    data = json.loads((tmp / "r/explorer.json").read_text())
    assert EVIL + ".png" in [d["name"].split("/")[-1] for d in data["images"]]


def test_rerun_reuses_finished_sections(report_dir):
    tmp, args = report_dir
    saved = {p.name: p.stat().st_mtime_ns for p in (tmp / "r/sections").glob("*.json")}
    (tmp / "r/sections/distance.json").unlink()  # as if interrupted during that section
    p = run_cli(args, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    now = {p.name: p.stat().st_mtime_ns for p in (tmp / "r/sections").glob("*.json")}
    assert set(now) == set(saved)
    assert all(now[n] == saved[n] for n in saved if n != "distance.json")


def test_the_distance_command_and_section_give_identical_numbers(report_dir):
    # one experiment (stages.run_distance), two entry points: the report's settings
    # (distance_images 3, samples 2, 8 levels, 5 sigmas, phi at 25) written as the command's flags
    tmp, _ = report_dir
    args = [
        EXE,
        "distance",
        "--model",
        str(tmp / "m"),
        "--data",
        str(tmp / "data"),
        "--labels-from-dirs",
        "--rows",
        "0,1,2",
        "--n-samples",
        "2",
        "--steps",
        "7",
        "--grid",
        "5",
        "--phi-sigma",
        "25",
        "--out",
        str(tmp / "cli-distance"),
    ]
    p = run_cli(args, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    command = json.loads((tmp / "cli-distance/distance.json").read_text())
    section = json.loads((tmp / "r/sections/distance.json").read_text())["section"]["numbers"]
    assert command["d_sq"] == section["d_sq"] and command["tau"] == section["tau"]
    assert command["constants"] == section["constants"]


def test_the_sample_and_reconstruct_commands_and_sections_give_identical_numbers(report_dir):
    # one stage each (stages.run_sample, stages.run_reconstruct), two entry points: the report's
    # settings (4 samples of the ks2021 preset; target row 0, 3 levels, n_noise 2) as flags
    tmp, _ = report_dir
    common = ["--model", str(tmp / "m")]
    data = ["--data", str(tmp / "data"), "--labels-from-dirs"]
    sample = ["sample", *common, "--n", "4", "--size", "16", "--preset", "ks2021"]
    p = run_cli([EXE, *sample, *data[:2], "--out", str(tmp / "cli-sample")], capture_output=True)
    assert p.returncode == 0, p.stderr
    rec = ["reconstruct", *common, *data, "--rows", "0", "--steps", "3", "--n-noise", "2"]
    p = run_cli([EXE, *rec, "--out", str(tmp / "cli-rec")], capture_output=True)
    assert p.returncode == 0, p.stderr
    sections = tmp / "r/sections"
    section = json.loads((sections / "samples.json").read_text())["section"]["numbers"]
    command = json.loads((tmp / "cli-sample/sampling.json").read_text())
    assert section["median_steps"] == int(np.median(command["steps"]))
    report_samples = np.asarray(Image.open(tmp / "r/samples/fig19_samples.png"))
    assert np.array_equal(report_samples, np.asarray(Image.open(tmp / "cli-sample/samples.png")))
    section = json.loads((sections / "reconstructions.json").read_text())["section"]["numbers"]
    command = json.loads((tmp / "cli-rec/reconstruct.json").read_text())
    assert section["phi_cosine_median"] == sorted(command["phi_cosine"][0])[3]  # torch.median


def test_changed_settings_recompute_only_the_sections_that_read_them(report_dir, tmp_path):
    tmp, args = report_dir
    shutil.copytree(tmp / "r", tmp_path / "r")
    args = args[:-1] + [str(tmp_path / "r")]
    saved = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "r/sections").glob("*.json")}
    (tmp_path / "c.toml").write_text(CHEAP.replace("jacobian_k = 3", "jacobian_k = 2"))
    p = run_cli(args[:-3] + [str(tmp_path / "c.toml")] + args[-2:], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    now = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "r/sections").glob("*.json")}
    assert [n for n in saved if now[n] != saved[n]] == ["jacobian.json"]
    # a setting of the representation store: a new store replaces the old one, no error
    (old_store,) = (tmp_path / "r/representation").glob("store-*")
    (tmp_path / "c.toml").write_text(CHEAP.replace("n_noise = 2", "n_noise = 3"))
    p = run_cli(args[:-3] + [str(tmp_path / "c.toml")] + args[-2:], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    (new_store,) = (tmp_path / "r/representation").glob("store-*")
    assert new_store != old_store
    assert json.loads((new_store / "meta.json").read_text())["n_noise"] == 3
    metrics = json.loads((tmp_path / "r/metrics.json").read_text())
    assert not any(s["skipped"] for s in metrics["sections"].values())


def test_report_errors(tmp_path, report_dir):
    tmp, _ = report_dir
    for args, message in (
        (["--model", str(tmp_path / "none"), "--data", str(tmp / "data")], "no such model"),
        (["--model", str(tmp / "m"), "--data", str(tmp_path / "none")], "none"),
        (["--model", str(tmp / "m")], "both --model and --data"),
        (["--model", str(tmp / "m"), "--data", str(tmp / "data"), "--skip", "nope"], "nope"),
    ):
        p = run_cli(
            [EXE, "report", *args, "--out", str(tmp_path / "x")], capture_output=True, text=True
        )
        assert p.returncode == 2 and message in p.stderr, (args, p.stderr)
        assert not (tmp_path / "x").exists()


def _chromium() -> str | None:
    for path in ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"):
        if Path(path).exists():
            return path
    return None


def test_report_in_a_headless_browser(report_dir):
    """Every image loads, every section is there, the explorer shows a clicked image's
    neighbours, and the hostile file name runs nothing."""
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium here (Debian package chromium; .ci/run installs it)")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    tmp, _ = report_dir
    broken_js = (
        "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
        ".map(i => i.src)"
    )
    dialogs = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto((tmp / "r/index.html").as_uri())
        page.wait_for_load_state("load")
        assert page.evaluate(broken_js) == []
        assert page.evaluate("document.images.length") >= 10
        for name in SECTIONS[:-1]:
            assert page.locator(f"section#{name} h2").count() == 1, name
        page.click("#explorer-link")
        page.wait_for_load_state("load")
        assert page.locator("#grid img").count() == 24
        assert page.evaluate(broken_js) == []
        page.click("#grid img[data-row='3']")
        page.wait_for_selector("#phi-neighbours img")
        assert page.locator("#phi-neighbours img").count() == 8
        assert page.locator("#pixel-neighbours img").count() == 8
        assert page.locator("#grid img.selected").get_attribute("data-row") == "3"
        page.click("#grid img[data-row='0']")  # the image named like markup
        assert EVIL in page.locator("#panel").inner_text()
        assert page.locator("#panel img[src='x']").count() == 0
        browser.close()
    assert dialogs == []


def test_the_bundled_model_and_images_work_offline():
    from denoiserlens.data import open_data, to_float
    from denoiserlens.evaluation import noisy_image, psnr
    from denoiserlens.models import load_model
    from denoiserlens.report import bundled_defaults

    model_path, spec = bundled_defaults()
    model, images = load_model(model_path), open_data(spec)
    assert len(images) == 2000 and images.fixed_size == (32, 32) and images.labels is not None
    assert np.bincount(images.labels).min() > 150  # all ten classes
    x = to_float(images.as_array()[:64])
    y = torch.cat([noisy_image(x[i : i + 1], 25 / 255, 0, i) for i in range(64)])
    gain = float((psnr(model.denoise(y).clamp(0, 1), x) - psnr(y, x)).mean())
    assert gain > 5  # dB over the noisy input at sigma 25


def test_report_bf16_defaults_to_where_it_is_native_and_warns_where_emulated(
    report_dir, monkeypatch, tmp_path
):
    from click.testing import CliRunner

    from denoiserlens.cli import main
    from denoiserlens.report.config import ReportConfig

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for native in (False, True):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda n=native: n)
        assert ReportConfig().bf16 is native and ReportConfig(bf16=True).bf16 is True
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    tmp, args = report_dir
    (tmp_path / "bf16.toml").write_text(CHEAP.replace("bf16 = false", "bf16 = true"))
    run = args[1:-4] + ["--config", str(tmp_path / "bf16.toml"), "--out", str(tmp_path / "r")]
    r = CliRunner().invoke(main, run + ["--skip", ",".join(SECTIONS)])
    assert r.exit_code == 0, r.output
    assert "bf16 (report setting) is emulated" in r.stderr
