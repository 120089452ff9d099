"""`cmar evaluate olga` end to end on a tiny folder: the report has the promised shape."""

import json
from pathlib import Path

import pytest

from cli.main import main
from tests.olga_folder import make_olga_folder


@pytest.mark.parametrize("with_queries", [False, True])
def test_evaluate_olga_writes_metrics_report_and_plots(tmp_path: Path, with_queries: bool) -> None:
    folder = make_olga_folder(tmp_path / "olga")
    args = ["-q", "evaluate", "olga", str(folder), "--out", str(tmp_path / "report"), "--epochs", "2"]
    if with_queries:
        (tmp_path / "queries.csv").write_text("mbid\n00000000-0000-0000-0000-000000000001\nnot-an-artist\n")
        args += ["--queries", str(tmp_path / "queries.csv"), "--no-full-coverage-run"]
    assert main(args) == 0
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    raw = metrics["settings"]["raw"]["methods"]
    expected = {"contrastive", "single:audio", "single:tag", "single:cf", "pca", "rand", "contrastive[audio+tag]"}
    assert expected <= set(raw)
    assert ("contrastive_full_coverage" in raw) is not with_queries
    for result in raw.values():
        assert set(result) >= {"ndcg", "ndcg_ci", "gini", "n_queries", "n_indexed"}
        assert 0 <= result["ndcg"] <= 1 and result["ndcg_ci"][0] <= result["ndcg"] <= result["ndcg_ci"][1]
    assert raw["contrastive"]["n_queries"] == (1 if with_queries else 42)
    assert raw["contrastive"]["n_indexed"] == 42  # every artist stays indexed
    assert set(metrics["settings"]["fmc"]["methods"]) == set(raw)
    groups = metrics["modality_groups"]
    assert len(groups["contrastive"]["matrix"]) == 7 and 0 <= groups["contrastive"]["entropy"] <= 1.95
    for name in ("report.md", "figure1_ndcg.png", "figure2_modality_groups.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    assert "The claims" in (tmp_path / "report" / "report.md").read_text()
    versus = metrics["all_vs_pairs"]  # all three minus each pair, paired over the same queries
    assert set(versus) == {"contrastive[audio+cf]", "contrastive[audio+tag]", "contrastive[cf+tag]"}
    for pair, d in versus.items():
        all_three = raw["contrastive[audio+cf+tag]"]["ndcg"] - raw[pair]["ndcg"]
        assert d["diff"] == pytest.approx(all_three, abs=1e-4) and d["diff_ci"][0] <= d["diff"] <= d["diff_ci"][1]
    assert "All three modalities at least as good as the best pair" in (tmp_path / "report" / "report.md").read_text()
    alignment = metrics["alignment"]
    if with_queries:  # one query artist: too few for the coherence analysis, which is left out with a warning
        assert "ecl" not in alignment
    else:
        assert alignment["kendall_tau"]["names"] == ["ecl", "cd_intra", "cd_inter", "ndcg", "pop"]
        assert alignment["ecl"]["n_artists"] >= 3 and set(alignment["ecl"]["findings"]) == {
            "ecl_tied_to_cd_intra", "ecl_independent_of_cd_inter", "ecl_negative_with_ndcg"
        }  # fmt: skip
        assert (tmp_path / "report" / "figure5_kendall.png").stat().st_size > 0
        assert "Kendall's tau (Figure 5)" in (tmp_path / "report" / "report.md").read_text()


def test_the_fusion_search_scores_the_product_default_as_the_product_index_does(tmp_path: Path) -> None:
    from catalog.featurize import FeaturizeConfig
    from catalog.olga import read_olga
    from evaluation.search import fusion_candidates, search_fusion, summarise
    from model_export.config import DEFAULT_COMPLETION, DEFAULT_MODALITY_WEIGHTS

    folder = make_olga_folder(tmp_path / "olga")
    report = tmp_path / "report"
    assert (
        main(["-q", "evaluate", "olga", str(folder), "--out", str(report), "--epochs", "2", "--no-full-coverage-run"])
        == 0
    )
    product = json.loads((report / "metrics.json").read_text())["settings"]

    results = search_fusion(read_olga(folder, FeaturizeConfig()), report / "work" / "model")
    assert set(results) == set(fusion_candidates())
    default = [
        r
        for r in results.values()
        if r["weights"] == DEFAULT_MODALITY_WEIGHTS and r["completion"] == DEFAULT_COMPLETION
    ]
    assert len(default) == 1  # the search includes the shipped default ...
    for setting in ("raw", "fmc"):  # ... and scores it exactly as the product's own index scored
        assert default[0][setting]["ndcg"] == pytest.approx(
            product[setting]["methods"]["contrastive"]["ndcg"], abs=1e-6
        )
        assert default[0][setting]["gini"] == pytest.approx(
            product[setting]["methods"]["contrastive"]["gini"], abs=1e-6
        )
    assert "## Fusion" in summarise({}, {"candidates": {}, "fusion": results})
