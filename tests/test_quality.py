"""Quality measures (issue 19): Frechet distance against closed forms, pixel statistics, a classifier
that learns a known rule, class agreement, and the commands that print them."""

import json

import numpy as np
import pytest
import scipy.linalg
from click.testing import CliRunner

from conftest import assert_user_error, run_cli
from denoiserlens.cli import main
from denoiserlens.data import ImageSet
from denoiserlens.errors import UserError
from denoiserlens.quality import (
    BUNDLED_CLASSIFIER,
    ClassifierConfig,
    frechet_distance,
    frechet_from_moments,
    histogram_distance,
    images_as_float,
    load_classifier,
    pixel_stats,
    reconstruction_quality,
    sample_quality,
    save_classifier,
    train_classifier,
)


def test_frechet_closed_forms():
    # diagonal (commuting) covariances: ||mu1 - mu2||^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    want = 1 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 1) ** 2
    assert frechet_from_moments(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(want, abs=1e-9)
    # general covariances: tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), a second formula of the same
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    s1, s2 = m1 @ m1.T + 0.1 * np.eye(4), m2 @ m2.T + 0.1 * np.eye(4)
    r = scipy.linalg.sqrtm(s1).real
    want = np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(r @ s2 @ r).real)
    assert frechet_from_moments(np.zeros(4), s1, np.zeros(4), s2) == pytest.approx(want, rel=1e-8)
    # from samples: identical sets are at 0; a shift by c moves it by |c|^2
    x = rng.normal(size=(500, 3))
    assert frechet_distance(x, x) == pytest.approx(0, abs=1e-8)
    assert frechet_distance(x, x + [3.0, 0, 0]) == pytest.approx(9.0, rel=1e-6)
    with pytest.raises(UserError, match="at least 2"):
        frechet_distance(x[:1], x)


def test_pixel_statistics_and_histogram_distance():
    x = np.zeros((2, 1, 2, 2))
    x[0, 0, 0, 0] = 1.0  # image 0: one white pixel; image 1: black
    s = pixel_stats(x)
    assert (s.mean, s.max, s.min) == (pytest.approx(1 / 8), 0.5, 0.0)
    assert s.std == pytest.approx(np.sqrt(1 / 8 * 7 / 8))
    rng = np.random.default_rng(1)
    y = rng.uniform(0, 0.5, size=(10, 1, 8, 8))
    assert histogram_distance(y, y + 0.25) == pytest.approx(0.25)  # a shift moves every pixel
    assert histogram_distance(y, y[::-1]) == pytest.approx(0, abs=1e-12)  # order does not matter


def _halves(n: int, seed: int) -> ImageSet:
    """Class 0: a bright left half, class 1: a bright right half; noise on both."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    x = rng.uniform(0, 80, size=(n, 1, 16, 16))
    for i, c in enumerate(labels):
        x[i, 0, :, 8 * c : 8 * c + 8] += 150
    return ImageSet(x.astype(np.uint8), [f"h:{i}" for i in range(n)], labels, ["left", "right"])


@pytest.fixture(scope="module")
def halves_classifier():
    cfg = ClassifierConfig(widths=(8, 8, 16), features=16, epochs=2, batch_size=32, lr=5e-3)
    return train_classifier(_halves(384, 0), cfg, data={})


def test_classifier_learns_a_known_rule_and_round_trips(halves_classifier, tmp_path):
    clf = halves_classifier
    assert clf.accuracy == 1.0 and clf.class_names == ["left", "right"]
    fresh = _halves(64, 5)
    x = images_as_float(fresh)
    assert np.array_equal(clf.predict(x), fresh.labels)
    save_classifier(clf, tmp_path / "c")
    back = load_classifier(tmp_path / "c")
    f0, p0 = clf.embed(x)
    f1, p1 = back.embed(x)
    assert np.array_equal(p0, p1) and np.allclose(f0, f1, atol=1e-6)
    save_classifier(clf, tmp_path / "h", half=True)  # float16 on disk, float32 in memory
    assert np.array_equal(load_classifier(tmp_path / "h").predict(x), fresh.labels)
    with pytest.raises(UserError, match="trained on 16x16 gray"):
        clf.predict(np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(UserError, match="needs labels"):
        train_classifier(ImageSet(np.zeros((40, 1, 8, 8), np.uint8), ["a"] * 40))


def test_classifier_training_is_seeded():
    cfg = ClassifierConfig(widths=(4, 4, 8), features=8, epochs=1, batch_size=32, seed=3)
    a, b = (train_classifier(_halves(96, 0), cfg) for _ in range(2))
    x = images_as_float(_halves(16, 2))
    assert np.array_equal(a.embed(x)[0], b.embed(x)[0])


def test_class_agreement(halves_classifier):
    targets = images_as_float(_halves(4, 7))
    labels = halves_classifier.predict(targets)
    same = np.repeat(targets, 3, axis=0)  # reconstructions identical to their targets
    q = reconstruction_quality(same, targets, halves_classifier, labels)
    assert q.agreement == 1.0 and q.chance == 0.5 and q.per_target == [1.0] * 4
    flipped = same[..., ::-1].copy()  # mirror images: the other class, every one
    q = reconstruction_quality(flipped, targets, halves_classifier)
    assert q.agreement == 0.0 and not q.from_labels
    with pytest.raises(UserError, match="do not split evenly"):
        reconstruction_quality(same[:5], targets, halves_classifier)


def test_sample_quality_floor_and_errors(halves_classifier):
    ref = images_as_float(_halves(600, 11))
    good = images_as_float(_halves(150, 12))  # fresh draws of the data: at the floor's scale
    blank = np.full_like(good, 0.3)  # grey frames
    q_good = sample_quality(good, ref, halves_classifier, seed=0)
    q_blank = sample_quality(blank, ref, halves_classifier, seed=0)
    assert q_good.frechet < 3 * q_good.frechet_floor < q_blank.frechet
    assert q_good.frechet_floor == q_blank.frechet_floor  # the floor depends on the seed alone
    assert abs(q_good.samples.mean - q_good.data.mean) < 0.02
    assert q_blank.samples.std == 0 and q_blank.histogram_distance > 0.1
    with pytest.raises(UserError, match="need 300 reference images"):
        sample_quality(good, ref[:299], halves_classifier)
    with pytest.raises(UserError, match="reference images are"):
        sample_quality(good[..., :8], ref, halves_classifier)


@pytest.mark.skipif(
    not (BUNDLED_CLASSIFIER / "weights.safetensors").exists(), reason="bundled classifier absent"
)
def test_bundled_classifier_on_held_out_fashion_mnist():
    from denoiserlens.data.transforms import pad_center

    clf = load_classifier()
    z = np.load(BUNDLED_CLASSIFIER.parent / "fmnist-test-2000.npz")
    x = pad_center(z["images"][:1000, None], 32).astype(np.float32) / 255
    assert clf.image_shape == (1, 32, 32) and clf.data == {"pad_to": 32}
    assert np.mean(clf.predict(x) == z["labels"][:1000]) > 0.88  # test images it never saw


def test_classifier_command(tmp_path):
    s = _halves(160, 0)
    np.savez(tmp_path / "halves.npz", images=s.images[:, 0], labels=s.labels)
    np.savez(tmp_path / "unlabelled.npz", images=s.images[:, 0])
    runner = CliRunner()
    args = [
        "classifier",
        "--data",
        str(tmp_path / "halves.npz"),
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--seed",
        "1",
    ]
    r = runner.invoke(main, [*args, "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    assert "2 classes, held-out accuracy" in r.output
    assert load_classifier(tmp_path / "c").image_shape == (1, 16, 16)
    before = (tmp_path / "c" / "weights.safetensors").read_bytes()
    r = runner.invoke(main, [*args, "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and "already holds a classifier" in r.output
    assert (tmp_path / "c" / "weights.safetensors").read_bytes() == before  # nothing overwritten
    r = runner.invoke(
        main,
        ["classifier", "--data", str(tmp_path / "unlabelled.npz"), "--out", str(tmp_path / "u")],
    )
    assert r.exit_code == 2 and "needs labels" in r.output
    assert not (tmp_path / "u" / "weights.safetensors").exists()


def test_sample_command_prints_quality(tmp_path):
    import sys
    from pathlib import Path

    from denoiserlens.models import UNet, preset_config, save_model

    s = _halves(40, 3)
    np.savez(tmp_path / "ref.npz", images=s.images[:, 0], labels=s.labels)
    model = UNet(preset_config("tiny"))
    save_model(model, tmp_path / "m", data={"channel_means": [0.4]})
    exe = str(Path(sys.executable).parent / "denoiserlens")
    base = [
        exe,
        "sample",
        "--model",
        tmp_path / "m",
        "--n",
        "4",
        "--size",
        "16",
        "--preset",
        "ks2021",
        "--max-steps",
        "3",
        "--reference",
        tmp_path / "ref.npz",
    ]
    proc = run_cli([*map(str, base), "--out", str(tmp_path / "s")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "no classifier takes these images: pixel statistics only" in proc.stderr
    q = json.loads((tmp_path / "s" / "quality.json").read_text())
    assert q["n"] == 4 and q["frechet"] is None and q["data"]["mean"] > 0.2
    x = np.load(tmp_path / "s" / "samples.npy")
    assert q["samples"]["mean"] == pytest.approx(float(x.mean()), abs=1e-6)
    bad = run_cli(
        [*map(str, base), "--out", str(tmp_path / "t"), "--classifier", tmp_path / "nothing"],
        capture_output=True,
        text=True,
    )
    assert_user_error(bad, "no classifier here")


def test_shrinkage_slope_of_a_linear_shrinker_is_its_factor():
    import torch

    from denoiserlens.quality import shrinkage_slopes

    x = torch.rand(64, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    m = float(x.mean())
    slopes = shrinkage_slopes(lambda y: m + 0.6 * (y - m), x, [0.0, 0.1, 0.5], seed=1)
    assert slopes[0] == pytest.approx(0.6, abs=1e-6)  # no noise: the factor (float32)
    assert slopes[1] == pytest.approx(0.6, abs=0.01) and slopes[2] == pytest.approx(0.6, abs=0.03)
    assert shrinkage_slopes(lambda y: y, x, [0.2])[0] == pytest.approx(1.0, abs=0.02)
