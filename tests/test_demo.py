import json

import numpy as np

from denoiserlens.data import disks, read_source
from denoiserlens.demo import BUNDLED_GRAY, demo_images, run_demo
from denoiserlens.models import load_model, preset_config
from denoiserlens.train import TrainConfig, train


def test_skimage_source_is_offline_and_converts():
    ims = read_source("skimage:camera,coffee", channels=1)
    assert ims.channels == 1 and len(ims) == 2 and ims.fixed_size is None
    demo = demo_images(64)
    assert demo.as_array().shape == (10, 1, 64, 64)


def test_demo_on_a_tiny_model(tmp_path):
    run = tmp_path / "tiny"
    cfg = TrainConfig(steps=30, batch_size=8, eval_every=30, checkpoint_every=30, sigma_max=0.3)
    train(preset_config("tiny").to_dict(), disks(100, 32, seed=0), cfg, run, progress=False)
    images = demo_images(32).subset([0, 4])
    out = run_demo(tmp_path / "demo", model=load_model(run), images=images, sigmas=(25 / 255,))
    res = json.loads((tmp_path / "demo/results.json").read_text())
    assert {r["method"] for r in res["table"]} == {"denoiserlens", "BM3D"}
    assert np.isfinite(out["gain_over_bm3d_db"]["25"])
    assert (tmp_path / "demo/examples.png").stat().st_size > 5000


def test_bundled_model_loads_when_present():
    if not (BUNDLED_GRAY / "weights.safetensors").exists():
        import pytest

        pytest.skip("no bundled model in this checkout")
    model = load_model(BUNDLED_GRAY)
    assert model.image_channels == 1 and not model.training


def test_bundled_assets_stay_small():
    from denoiserlens.demo import ASSETS

    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    assert total <= 20 * 2**20  # issue 7: 20 MB at most for the bundled models
