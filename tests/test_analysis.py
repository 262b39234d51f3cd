import numpy as np
import pytest

from denoiserlens.analysis import (
    block_sparsity,
    channel_participation,
    cosine_similarity,
    most_selective_channels,
    participation_ratio,
    selectivity_summary,
    specialized_channels,
    stability_curves,
    top_images,
)


@pytest.mark.parametrize("d", [1, 7, 512])
def test_participation_ratio_known_answers(d):
    one_hot = np.zeros(d)
    one_hot[d // 2] = 3.0
    assert participation_ratio(one_hot) == pytest.approx(1 / d)
    assert participation_ratio(np.full(d, 0.25)) == pytest.approx(1.0)
    k = max(1, d // 4)  # k equal active channels: PR = k / d
    a = np.zeros(d)
    a[:k] = 2.0
    assert participation_ratio(a) == pytest.approx(k / d)
    assert np.isnan(participation_ratio(np.zeros(d)))


def test_participation_ratio_along_axes():
    a = np.array([[1.0, 0, 0, 0], [1, 1, 1, 1]])
    np.testing.assert_allclose(participation_ratio(a), [0.25, 1.0])
    np.testing.assert_allclose(participation_ratio(a, axis=0), [1.0, 0.5, 0.5, 0.5])


def test_block_sparsity_quartiles_and_skips_single_channels():
    rng = np.random.default_rng(0)
    s = block_sparsity({"E1.in": rng.random((10, 1)), "M": np.eye(8)[rng.integers(0, 8, 50)]})
    assert list(s) == ["M"] and s["M"]["median"] == pytest.approx(1 / 8) and s["M"]["n"] == 50


def test_cosine_and_stability_curves():
    a = np.array([[1.0, 0], [1, 1]])
    np.testing.assert_allclose(cosine_similarity(a, 2 * a), [1, 1])
    np.testing.assert_allclose(cosine_similarity(a, a[:, ::-1]), [0, 1])
    rng = np.random.default_rng(0)
    base = rng.random((20, 6))
    # a block whose summary only grows in amplitude with noise is perfectly stable
    stable = np.stack([base * (1 + s) for s in (0.1, 0.5, 1.0)])
    noisy = np.stack([base + s * rng.random((20, 6)) * 5 for s in (0.1, 0.5, 1.0)])
    curves = stability_curves({"M": stable, "E1": noisy}, [0.1, 0.5, 1.0], reference=0.5)
    np.testing.assert_allclose(curves["M"], 1.0)
    assert curves["E1"][1] == pytest.approx(1.0) and curves["E1"][0] < 0.999
    with pytest.raises(ValueError, match="reference"):
        stability_curves({"M": stable}, [0.1, 0.4, 1.0], reference=0.5)


def test_selectivity_on_a_constructed_representation():
    n = 100
    phi = np.zeros((n, 4))
    phi[7, 0] = 5.0  # selective: one image of a hundred
    phi[:, 1] = 1.0  # common: every image equally
    phi[:50, 2] = np.linspace(1, 2, 50)  # half the images
    pr = channel_participation(phi)
    np.testing.assert_allclose(pr[:2], [1 / n, 1.0])
    assert 0.45 < pr[2] < 0.5 and np.isnan(pr[3])  # channel 3 is dead
    summary = selectivity_summary(phi)
    assert summary["dead"] == 1 and summary["fraction_below"] == pytest.approx(1 / 3)
    assert summary["fraction_above"] == pytest.approx(1 / 3)
    assert most_selective_channels(phi, 2).tolist() == [0, 2]
    assert top_images(phi, 2, 3).tolist() == [49, 48, 47]
    assert specialized_channels(phi, 7).tolist() == [0]
    assert specialized_channels(phi, 60).tolist() == []


def test_channel_statistics_known_answers():
    from denoiserlens.analysis.channel_stats import (
        channel_statistics,
        marginal_kurtosis,
        pca_dimension,
        spatial_sparsity,
    )

    n = 200
    rng = np.random.default_rng(0)
    phi = rng.uniform(1, 2, size=(n, 3))  # common, light-tailed channels (excess kurtosis -1.2)
    phi[:, 2] = 0.0
    phi[5, 2] = 1.0  # active on one image: a Bernoulli(p = 1/n) marginal
    p = 1 / n
    k = marginal_kurtosis(phi)
    assert k[2] == pytest.approx((1 - 3 * p + 3 * p * p) / (p * (1 - p)) - 3, rel=1e-9)
    assert -1.5 < k[0] < -0.9
    maps = np.zeros((4, 2, 8, 8))
    maps[:, 0, 3, 3] = 1.0  # one pixel: spatial PR 1/64
    maps[:, 1] = 2.0  # constant: spatial PR 1
    np.testing.assert_allclose(spatial_sparsity(maps), [1 / 64, 1.0])
    # maps = coefficients x orthonormal patterns; orthogonal equal-norm coefficients: exact variances
    patterns = np.linalg.qr(rng.normal(size=(64, 3)))[0].T  # (3, 64) orthonormal
    coef = rng.normal(size=(12, 3))
    coef -= coef.mean(0)
    coef = np.linalg.qr(coef)[0]  # centred, orthonormal columns
    one = (coef[:, :1] @ patterns[:1]).reshape(12, 1, 8, 8)
    three = (coef @ patterns).reshape(12, 1, 8, 8)
    assert pca_dimension(np.concatenate([one, three], 1)).tolist() == [1, 3]
    st = channel_statistics(phi, np.abs(rng.normal(size=(10, 3, 4, 4))))
    assert set(st["spearman_with_channel_pr"]) == {"kurtosis", "spatial_pr", "pca_dim"}


def test_union_of_subspaces_on_a_constructed_representation():
    from denoiserlens.analysis.subspaces import active_dimension, subspace_channels

    rng = np.random.default_rng(1)
    n, d = 60, 10
    phi = np.zeros((n, d))
    phi[:, 0] = rng.uniform(1, 2, n)  # common to all
    phi[:30, 3] = rng.uniform(1, 2, 30)  # selective for group A (rows 0-29)
    phi[30:, 7] = rng.uniform(1, 2, 30)  # selective for group B
    phi[:, 1] = rng.uniform(1, 2, n) * 0.5  # another, weaker common channel
    phi[0, 5] = 1.0  # a channel active on one image only
    a, b = np.arange(30), np.arange(30, 60)
    ch = subspace_channels(phi, a, b, low=0.6, high=0.8)
    assert ch == {"common": 0, "selective_a": 3, "selective_b": 7}
    dims = active_dimension(phi, fraction=0.999999)
    assert dims[0] == 4 and (dims[1:] == 3).all()
    assert active_dimension(np.eye(4)[:1] * 5).tolist() == [1]


def test_block_sparsity_leaves_out_the_images_by_name():
    rng = np.random.default_rng(0)
    rgb = {"E1.in": rng.random((10, 3)), "E1": rng.random((10, 8)), "D1": rng.random((10, 3))}
    assert list(block_sparsity(rgb, exclude=("E1.in", "D1"))) == ["E1"]


def test_bimodality_coefficient_known_answers():
    from denoiserlens.analysis.findings import UNIFORM_BIMODALITY, bimodality_coefficient

    rng = np.random.default_rng(0)
    n = 200_000
    assert bimodality_coefficient(rng.random(n)) == pytest.approx(UNIFORM_BIMODALITY, abs=0.005)
    assert bimodality_coefficient(rng.standard_normal(n)) == pytest.approx(1 / 3, abs=0.005)
    two_modes = np.concatenate([rng.normal(0.15, 0.05, n // 2), rng.normal(0.8, 0.05, n // 2)])
    assert bimodality_coefficient(two_modes) > 0.8
    assert np.isnan(bimodality_coefficient(np.ones(10)))


def test_paper_findings_verdicts_follow_the_numbers():
    from denoiserlens.analysis.findings import paper_findings

    q = {"q1": 0.2, "q3": 0.3}
    metrics = {
        "sparsity": {
            "E2.in": {"median": 0.5, **q},
            "E2": {"median": 0.6, **q},
            "M.in": {"median": 0.5, **q},
            "M": {"median": 0.25, **q},
            "D2.in": {"median": 0.5, **q},
            "D2": {"median": 0.4, **q},
        },
        "stability": {
            "reference": 0.5,
            "sigmas": [0.1, 0.5, 0.9],
            "cosine": {"E2": [0.5, 1.0, 0.6], "M": [0.9, 1.0, 0.95]},
        },
        "selectivity": {"bimodality": 0.7, "fraction_below": 0.4, "fraction_above": 0.3},
        "channel_statistics": {
            "spearman_with_channel_pr": {"kurtosis": -0.5, "spatial_pr": 0.4, "pca_dim": 0.3}
        },
    }
    found = paper_findings(metrics)
    assert len(found) == 5 and all(f["holds"] for f in found), found
    metrics["sparsity"]["D2"]["median"] = 0.55  # D2 no longer sparsifies
    metrics["sparsity"]["M"]["median"] = 0.45  # and phi is not sparse enough
    metrics["stability"]["cosine"]["E2"] = [0.99, 1.0, 0.99]  # E2 is the most stable
    metrics["selectivity"]["fraction_above"] = 0.05  # no common mode
    metrics["channel_statistics"]["spearman_with_channel_pr"]["kurtosis"] = 0.1
    assert not any(f["holds"] for f in paper_findings(metrics))
    assert paper_findings({}) == []
