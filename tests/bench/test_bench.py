"""`cmar bench` on tiny catalogues writes a complete report; the load generator stays on this machine."""

import json
from pathlib import Path

import pytest

from bench.loadgen import Request, run_load
from bench.run import BenchConfig, run_bench
from cli.main import main

CASES = ("ceiling_bare", "healthz", "get_similar_k10", "get_similar_k200", "post_similar_k10")


def test_bench_writes_every_section(tmp_path: Path) -> None:
    config = BenchConfig(
        out=tmp_path / "bench",
        duration_s=0.5,
        concurrency=(1, 4),
        demo_artists=500,
        scale_artists=3000,
        exact_limit=1000,  # the large catalogue takes the HNSW path
        epochs=2,
    )
    run_bench(config)
    bench = json.loads((tmp_path / "bench" / "bench.json").read_text())
    for case in CASES:
        for level in ("c1", "c4"):
            entry = bench["api"][case][level]
            assert entry["requests"] > 0 and entry["errors"] == 0, (case, level, entry)
            assert {"rps", "p50_ms", "p99_ms", "ratio_to_ceiling"} <= set(entry)
    assert bench["api"]["ceiling_bare"]["c1"]["ratio_to_ceiling"] == 1.0  # a bare ASGI app, not an endpoint
    assert "the ceiling a bare ASGI app" in bench["api_setup"]
    build = bench["build"]
    assert build["encode_fuse_artists_per_s"] > 0 and build["index_artists_per_s"] > 0
    assert build["bytes_per_artist"] >= 4 * 201 and build["peak_rss_mb"] > 0
    scale = bench["scale"]
    assert scale["n_artists"] == 3000 and scale["index_type"].startswith("IndexHNSWFlat")
    assert scale["recall_at_200"] >= 0.95 and scale["p50_ms"] > 0 and scale["startup_s"] > 0
    assert bench["peer"]["engine"].startswith("usearch") and 0 < bench["peer"]["recall_at_200"] <= 1
    assert bench["training"]["synthetic"]["epochs"] == 2 and bench["training"]["synthetic"]["s_per_epoch"] > 0
    assert set(bench["targets"]) >= {"get_similar_k10", "post_similar_k10", "encode_fuse"}
    summary = (tmp_path / "bench" / "bench.md").read_text()
    assert "get_similar_k10" in summary and "## Scale" in summary and "usearch" in summary


def test_the_load_generator_refuses_other_hosts() -> None:
    with pytest.raises(ValueError, match="refusing host"):
        run_load("example.invalid", 80, [Request("GET", "/")], 1, 0.1)


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["--duration", "0"], "--duration", 2),  # refused by the parser (exit 2), like any malformed option
        (["--concurrency", "0"], "--concurrency", 2),
        (["--olga", "nowhere"], "nowhere", 1),
        (["--only", "olga"], "--only olga needs --olga", 1),  # would run nothing
        (["--only", "compare", "--compare-items", "0"], "--compare-items", 1),
        (["--compare-items", "200"], "at least 1000", 1),  # too few items for the cutoff 200
        (["--compare-items", "20000000"], "--compare-items", 2),
    ],
)
def test_bad_bench_options_are_one_line_errors(
    args: list[str], message: str, code: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        exit_code = main(["bench", "--out", str(tmp_path), *args])
    except SystemExit as stop:
        exit_code = int(stop.code or 0)
    assert exit_code == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("cmar") and "error:" in err and message in err and "\n" not in err


def test_bench_times_cmar_compare_alone(tmp_path: Path) -> None:
    run_bench(BenchConfig(out=tmp_path / "bench", compare_items=3000, sections=("compare",)))
    bench = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert "api" not in bench and "scale" not in bench and "training" not in bench  # only the section asked for
    c = bench["compare"]
    assert c["items"] == 3000 and c["dim"] == 200 and c["wall_s"] > 0 and c["peak_rss_mb"] > 0
    assert 0.05 < c["S"]["10"] < 0.95 and 0.05 < c["S"]["200"] < 0.95  # related spaces: partial agreement
    assert "compare_100k_s" not in bench["targets"]  # the target is only judged at 100,000 items
    assert "## cmar compare" in (tmp_path / "bench" / "bench.md").read_text()
