"""ECL, CD_intra and CD_inter against hand-computed values, and against the O(n^2) definition."""

import numpy as np
import pytest

from evaluation.coherence import analysis, coherence, findings, kendall_matrix

R = 1 - np.sqrt(0.5)  # cosine distance between (1, 0) and (1, 1) / sqrt(2)


def test_three_artists_by_hand() -> None:
    audio = np.array([[1.0, 0], [0, 1], [1, 0]])
    cf = np.array([[2.0, 0], [1, 0], [0, 3]])  # lengths do not matter: cosine distances
    got = coherence({"audio": audio, "cf": cf})
    np.testing.assert_allclose(got["ecl_pairs"]["audio-cf"], [-0.5, 0.5, 1.0])
    np.testing.assert_allclose(got["ecl_pairs"]["cf-audio"], [-0.5, 1.0, 0.5])
    np.testing.assert_allclose(got["ecl"], [-0.5, 0.75, 0.75])
    np.testing.assert_allclose(got["cd_intra"], [0, R, R], atol=1e-12)
    np.testing.assert_allclose(got["cd_inter"], [R, R / 2, R / 2], atol=1e-12)


def test_matches_the_quadratic_definition_on_random_embeddings() -> None:
    rng = np.random.default_rng(0)
    emb = {m: rng.normal(size=(30, 5)) for m in ("audio", "cf", "tag")}
    got = coherence(emb)
    unit = {m: e / np.linalg.norm(e, axis=1, keepdims=True) for m, e in emb.items()}
    n = 30
    ecl = np.zeros(n)
    pairs = [(u, v) for u in unit for v in unit if u != v]
    for u, v in pairs:
        d = 1 - unit[u] @ unit[v].T  # d_ij^uv
        ecl += np.array([d[i, i] - np.delete(d[i], i).mean() for i in range(n)])
    np.testing.assert_allclose(got["ecl"], ecl / len(pairs), atol=1e-12)
    centre = sum(unit.values()) / 3
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    inter = 1 - centre @ centre.T
    np.testing.assert_allclose(got["cd_inter"], [np.delete(inter[i], i).mean() for i in range(n)], atol=1e-12)


def test_kendall_matrix_and_findings() -> None:
    x = np.arange(20.0)
    m = kendall_matrix({"ecl": x, "cd_intra": x**2, "cd_inter": np.r_[x[::2], x[1::2]] % 3, "ndcg": -x, "pop": x})
    tau = np.array(m["tau"])
    assert tau[0, 1] == pytest.approx(1.0) and tau[0, 3] == pytest.approx(-1.0) and (np.diag(tau) == 1).all()
    f = findings(m)
    assert f["ecl_tied_to_cd_intra"]["holds"] and f["ecl_negative_with_ndcg"]["holds"]


def test_analysis_reports_every_pair_and_the_figure_points() -> None:
    rng = np.random.default_rng(1)
    emb = {m: rng.normal(size=(50, 4)) for m in ("audio", "cf", "tag")}
    out = analysis(emb, pop=rng.random(50), ndcg=rng.random(50), max_points=10)
    assert out["n_artists"] == 50 and len(out["ecl_pairs_mean"]) == 6
    assert out["kendall_tau"]["names"] == ["ecl", "cd_intra", "cd_inter", "ndcg", "pop"]
    assert all(len(v) == 10 for v in out["points"].values())
    with pytest.raises(ValueError, match="2\\+ modalities"):
        coherence({"audio": emb["audio"]})
