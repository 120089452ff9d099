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
