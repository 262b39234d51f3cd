import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli
from denoiserlens.analysis.clusters import kmeans, pair_separation, separation
from denoiserlens.analysis.labels import cluster_label_scores, knn_accuracy, purity, standardize
from denoiserlens.analysis.neighbours import nearest_neighbours
from denoiserlens.data import disks
from denoiserlens.models import UNet, preset_config, save_model

EXE = str(Path(sys.executable).parent / "denoiserlens")


def _blobs(n_per: int, centres: np.ndarray, sd: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([c + sd * rng.standard_normal((n_per, centres.shape[1])) for c in centres])
    return x.astype(np.float32), np.repeat(np.arange(len(centres)), n_per)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_neighbours_exact_and_faiss_agree(metric):
    rng = np.random.default_rng(0)
    x, _ = _blobs(300, rng.standard_normal((10, 32)) * 3, 1.0)
    q = x[::37]
    i_np, s_np = nearest_neighbours(q, x, 10, metric, method="numpy")
    i_flat, s_flat = nearest_neighbours(q, x, 10, metric, method="flat")
    # an IVF index probing every list is exact
    i_ivf, s_ivf = nearest_neighbours(q, x, 10, metric, method="ivf", nprobe=10_000)
    np.testing.assert_allclose(s_flat, s_np, rtol=1e-4, atol=1e-3)  # float32 rounding
    assert (i_flat == i_np).mean() > 0.99  # equal up to exact ties
    scale = np.abs(s_np).max()
    np.testing.assert_allclose(s_ivf, s_np, atol=0.01 * scale)  # 8-bit quantized vectors
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(i_ivf, i_np, strict=True)]) > 0.95
    assert np.all(
        np.diff(s_np, axis=1) <= 1e-6 if metric == "cosine" else np.diff(s_np, 1) >= -1e-4
    )
    # brute force check of the first query
    if metric == "cosine":
        a = x / np.linalg.norm(x, axis=1, keepdims=True)
        best = np.argsort(-(a @ a[0]))[:10]
    else:
        best = np.argsort(((x - x[0]) ** 2).sum(1))[:10]
    assert set(best) == set(i_np[0])


def test_neighbours_exclude_the_query_itself():
    x = np.random.default_rng(1).standard_normal((50, 8)).astype(np.float32)
    rows = np.array([3, 7, 11])
    idx, sim = nearest_neighbours(x[rows], x, 5, exclude=rows)
    assert idx.shape == (3, 5) and not np.any(idx == rows[:, None])
    plain, _ = nearest_neighbours(x[rows], x, 6)
    assert np.array_equal(plain[:, 0], rows) and np.array_equal(plain[:, 1:], idx)
    with pytest.raises(ValueError, match="k = 50"):
        nearest_neighbours(x[rows], x, 50, exclude=rows)


def test_separation_recovers_the_known_ratio():
    # two isotropic Gaussians (sd 1) whose centres are 6 apart: the ratio is 6
    d = 16
    centres = np.zeros((2, d))
    centres[1, 0] = 6.0
    x, g = _blobs(20_000, centres, 1.0, seed=2)
    dist, spread = pair_separation(x, g, 0, 1)
    assert dist == pytest.approx(6.0, rel=0.01) and spread == pytest.approx(1.0, rel=0.02)
    # eight clusters on a line 1.5 sd apart: pairs of neighbours are not separated, far ones are
    centres = np.zeros((8, d))
    centres[:, 0] = 1.5 * np.arange(8)
    x, g = _blobs(2000, centres, 1.0, seed=3)
    s = separation(x, g, n_pairs=1000)
    assert len(s["pairs"]) == 28
    expected = np.array([1.5 * abs(a - b) for a, b in s["pairs"]])
    np.testing.assert_allclose(s["ratio"], expected, rtol=0.05)
    assert s["fraction_separated"] == pytest.approx(np.mean(expected > 2))


def test_label_metrics_known_answers():
    labels = np.array([0, 0, 1, 1, 2, 2])
    perfect = np.array([5, 5, 3, 3, 9, 9])  # the same partition, other names
    assert cluster_label_scores(perfect, labels) == pytest.approx(
        {"nmi": 1.0, "ari": 1.0, "purity": 1.0}
    )
    one = np.zeros(6, dtype=int)
    scores = cluster_label_scores(one, labels)
    assert scores["nmi"] == pytest.approx(0.0) and scores["ari"] == pytest.approx(0.0)
    assert scores["purity"] == pytest.approx(2 / 6)
    assert purity(np.array([0, 0, 0, 1, 1, 1]), np.array([0, 0, 1, 1, 1, 2])) == pytest.approx(
        4 / 6
    )


def test_knn_accuracy_votes_and_breaks_ties_by_the_nearest():
    ref = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
    ref_labels = np.array([0, 0, 1, 1])
    q = np.array([[1, 0.05], [0.05, 1]], np.float32)
    assert knn_accuracy(ref, ref_labels, q, np.array([0, 1]), k=3) == 1.0
    # k = 2 with one neighbour of each label: the nearest decides
    q2 = np.array([[1, 0.5]], np.float32)
    assert knn_accuracy(ref[[0, 2]], np.array([0, 1]), q2, np.array([0]), k=2) == 1.0


def test_standardized_knn_finds_a_label_hidden_under_a_large_channel():
    """The label lives in a small channel; a large uninformative one dominates the cosine."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 600)
    x = np.stack(
        [100 + 20 * rng.standard_normal(600), 1 + 0.1 * labels, np.zeros(600)], axis=1
    ).astype(np.float32)
    x[:, 1] += 0.01 * rng.standard_normal(600)
    zref, zq = standardize(x[:400], x[400:])
    np.testing.assert_allclose(zref.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(zref[:, :2].std(0), 1, atol=1e-4)
    assert np.all(zref[:, 2] == 0)  # a dead channel: not divided by zero
    raw = knn_accuracy(x[:400], labels[:400], x[400:], labels[400:], k=5)
    standardized = knn_accuracy(zref, labels[:400], zq, labels[400:], k=5)
    assert raw < 0.75 and standardized > 0.9, (raw, standardized)


@pytest.mark.parametrize("method", ["sklearn", "faiss"])
def test_kmeans_finds_separated_clusters_reproducibly(method):
    rng = np.random.default_rng(4)
    x, g = _blobs(200, rng.standard_normal((6, 20)) * 10, 1.0, seed=4)
    a = kmeans(x, 6, seed=0, n_init=4, method=method)
    b = kmeans(x, 6, seed=0, n_init=4, method=method)
    assert cluster_label_scores(a.assignment, g)["nmi"] == pytest.approx(1.0)
    assert np.array_equal(a.assignment, b.assignment) and a.centroids.shape == (6, 20)


@pytest.fixture(scope="module")
def labelled_stores(tmp_path_factory):
    """A tiny model's stores (trained-weights stand-in and random-weights control) of labelled
    disks read from an .npz file, so that the images can be reopened."""
    tmp = tmp_path_factory.mktemp("semantics")
    torch.manual_seed(0)
    save_model(UNet(preset_config("tiny")).eval(), tmp / "m")
    ims = disks(120, 32, seed=5)
    np.savez(tmp / "disks.npz", images=ims.images, labels=(ims.params[:, 0] > 8).astype(np.int64))
    common = [
        "--model",
        tmp / "m",
        "--data",
        tmp / "disks.npz",
        "--sigmas",
        "25,50",
        "--n-noise",
        "2",
        "--blocks",
        "E1,M",
    ]
    for name, extra in (("s", []), ("r", ["--random-weights", "--seed", "3"])):
        p = run_cli(
            [EXE, "represent", *map(str, common), "--out", str(tmp / name), *extra],
            capture_output=True,
            text=True,
        )
        assert p.returncode == 0, p.stderr
    return tmp


def _run(*args):
    return run_cli([EXE, *map(str, args)], capture_output=True, text=True)


def test_cluster_neighbours_and_probe_commands(labelled_stores):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from denoiserlens.data import split_indices

    t = labelled_stores
    p = _run("neighbours", "--store", t / "s", "--out", t / "n", "--query", "0,5", "--k", "6")
    assert p.returncode == 0, p.stderr
    nn = json.loads((t / "n/neighbours.json").read_text())
    assert [q["row"] for q in nn["queries"]] == [0, 5]
    assert all(len(q["phi"]) == 6 and q["row"] not in q["phi"] for q in nn["queries"])
    assert (t / "n/fig14_neighbours.png").stat().st_size > 5000

    p = _run("cluster", "--store", t / "s", "--out", t / "c", "--k", "4", "--n-init", "2")
    assert p.returncode == 0, p.stderr
    c = json.loads((t / "c/clusters.json").read_text())
    assignment = np.load(t / "c/assignments.npy")
    assert assignment.shape == (120,) and sum(c["sizes"]) == 120
    assert set(c["labels"]) == {"nmi", "ari", "purity"}
    # the scores recomputed from the written assignments: purity by hand, NMI and ARI by sklearn
    labels = np.load(t / "disks.npz")["labels"]
    phi = np.load(t / "s/M.npy")[0].astype(np.float64)  # sigma 25, the first of the store
    majority = sum(np.bincount(labels[assignment == j]).max() for j in range(4))
    assert c["labels"]["purity"] == pytest.approx(majority / 120, abs=1e-12)
    assert c["labels"]["nmi"] == pytest.approx(normalized_mutual_info_score(labels, assignment))
    assert c["labels"]["ari"] == pytest.approx(adjusted_rand_score(labels, assignment))
    # k-means' fixed point: every row is assigned to its nearest centroid, the inertia is the sum
    # of those squared distances, and the sizes count the assignments
    centroids = np.load(t / "c/centroids.npy").astype(np.float64)
    d2 = ((phi[:, None] - centroids[None]) ** 2).sum(-1)
    assert np.array_equal(d2.argmin(1), assignment)
    assert c["inertia"] == pytest.approx(d2.min(1).sum(), rel=1e-4)
    assert c["sizes"] == np.bincount(assignment, minlength=4).tolist()

    def ratio(groups, a, b):  # centroid distance over the spread along the centroid line
        xa, xb = phi[groups == a], phi[groups == b]
        u = xa.mean(0) - xb.mean(0)
        dist = np.linalg.norm(u)
        return dist / np.sqrt(0.5 * (np.var(xa @ (u / dist)) + np.var(xb @ (u / dist))))

    ratios = [ratio(assignment, a, b) for a in range(4) for b in range(a + 1, 4)]
    cs, cl = c["cluster_separation"], c["class_separation"]
    assert cs["pairs"] == 6 and cs["fraction_separated"] == np.mean(np.array(ratios) > 2)
    assert cs["median_ratio"] == pytest.approx(np.median(ratios))
    assert cl["pairs"] == 1 and cl["median_ratio"] == pytest.approx(ratio(labels, 0, 1))
    assert cl["fraction_separated"] == float(ratio(labels, 0, 1) > 2)
    for fig in ("fig6_separation", "fig6_members", "fig6_tsne"):
        assert (t / "c" / f"{fig}.png").stat().st_size > 5000

    p = _run(
        "probe",
        "--store",
        f"trained={t / 's'}",
        "--store",
        f"random={t / 'r'}",
        "--out",
        t / "p",
        "--k",
        "5",
    )
    assert p.returncode == 0, p.stderr
    rows = json.loads((t / "p/probe.json").read_text())["rows"]
    assert [(r["representation"], r["sigma_255"]) for r in rows] == [
        ("pixels", None),
        ("trained", 25.0),
        ("trained", 50.0),
        ("random", 25.0),
        ("random", 50.0),
    ]
    # each accuracy recomputed with scikit-learn on the probe's split (k = 5 of two labels: no
    # tied votes), from the pixels and from each store's phi at each sigma
    ref, qry = split_indices(120, 0.2, 0)
    features = [np.load(t / "disks.npz")["images"].reshape(120, -1) / 255.0]
    features += [np.load(t / f"{s}/M.npy")[i].astype(np.float64) for s in "sr" for i in (0, 1)]
    for r, x in zip(rows, features, strict=True):
        z = StandardScaler().fit(x[ref])
        knn = KNeighborsClassifier(5, metric="cosine", algorithm="brute")
        linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=0))
        expected = {
            "knn": knn.fit(x[ref], labels[ref]).score(x[qry], labels[qry]),
            "knn_standardized": knn.fit(z.transform(x[ref]), labels[ref]).score(
                z.transform(x[qry]), labels[qry]
            ),
            "linear": linear.fit(x[ref], labels[ref]).score(x[qry], labels[qry]),
        }
        assert {m: r[m] for m in expected} == pytest.approx(expected, abs=1e-9), r
    assert rows[0]["dim"] == 32 * 32 and rows[1]["dim"] == 64
    assert "pixels" in p.stdout and "random" in p.stdout
    p = _run("probe", "--store", t / "s", "--out", t / "p-e1", "--key", "E1", "--no-pixels")
    assert p.returncode == 0, p.stderr
    probed = json.loads((t / "p-e1/probe.json").read_text())
    assert probed["key"] == "E1" and [r["dim"] for r in probed["rows"]] == [8, 8]  # E1: 8 channels
    # the random-weights store is not the model's
    meta = json.loads((t / "r/meta.json").read_text())
    assert "random weights, seed 3" in meta["model"]["path"]
    assert (
        meta["model"]["weights_hash"]
        != json.loads((t / "s/meta.json").read_text())["model"]["weights_hash"]
    )


def test_semantic_commands_refuse_bad_input(labelled_stores, tmp_path):
    t = labelled_stores
    ims = disks(20, 32, seed=6)
    np.save(tmp_path / "nolabels.npy", ims.images)
    p = _run(
        "represent",
        "--model",
        t / "m",
        "--data",
        tmp_path / "nolabels.npy",
        "--out",
        tmp_path / "u",
        "--sigmas",
        "25",
        "--n-noise",
        "1",
    )
    assert p.returncode == 0, p.stderr
    for args, message in (
        (["probe", "--store", tmp_path / "u", "--out", tmp_path / "p"], "needs labels"),
        (["cluster", "--store", t / "s", "--out", tmp_path / "c", "--k", "500"], "k = 500"),
        (["neighbours", "--store", t / "s", "--out", tmp_path / "n", "--query", "999"], "outside"),
        (["neighbours", "--store", t / "s", "--out", tmp_path / "n", "--query", "a"], "--query"),
        (
            ["cluster", "--store", t / "s", "--out", tmp_path / "c", "--k", "3", "--sigma", "7"],
            "no sigma 7",
        ),
        (
            ["probe", "--store", t / "s", "--store", tmp_path / "u", "--out", tmp_path / "p"],
            "other images",
        ),
        (
            ["probe", "--store", t / "s", "--out", tmp_path / "p", "--k", "0"],
            "0 is not in the range x>=1",
        ),
        (["probe", "--store", t / "s", "--out", tmp_path / "p", "--key", "E9"], "no array 'E9'"),
        (
            ["cluster", "--store", t / "s", "--out", tmp_path / "c", "--k", "3", "--n-init", "0"],
            "--n-init",
        ),
    ):
        p = _run(*args)
        assert p.returncode == 2 and message in p.stderr, (args, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1
    assert not any((tmp_path / d).exists() for d in ("p", "c", "n"))
