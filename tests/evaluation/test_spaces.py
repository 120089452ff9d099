"""`cmar evaluate spaces` on tiny data: a Jamendo-format folder, the pair groups, the findings, the command's errors."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluation.nn_similarity import Space
from evaluation.spaces import architecture, group_pairs, jamendo_spaces, projections, run, team


def _jamendo(folder: Path, n: int = 60, seed: int = 0) -> Path:
    """Four runs of two teams: A's two runs are near copies of one space, B's of another."""
    rng = np.random.default_rng(seed)
    (folder / "spaces").mkdir(parents=True)
    with (folder / "tracks.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["track_id", "artist_id", "album_id"])
        writer.writerows([[f"t{i}", f"a{i % 7}", f"b{i % 11}"] for i in range(n)])
    base_a, base_b = rng.normal(size=(n, 8)), rng.normal(size=(n, 8))
    spaces = {
        "TeamA_run1_crnn": base_a,
        "TeamA_run2": base_a + 0.01 * rng.normal(size=(n, 8)),
        "TeamB_1_crnn": base_b,
        "TeamB_2_resnet34": base_b + 0.01 * rng.normal(size=(n, 8)),
    }
    for name, vectors in spaces.items():
        np.save(folder / "spaces" / f"{name}.npy", vectors.astype(np.float32))
    return folder


def test_team_and_architecture_come_from_the_run_names() -> None:
    assert team("Taiinn-Taiwan_run_1_vqvae+gru") == "Taiinn-Taiwan" != team("TaiInn-Innsbruck_run_1")
    assert architecture("Taiinn-Taiwan_run_1_vqvae+gru") == "VQ-VAE + GRU"
    assert architecture("CP-JKU_2_faresnet") == architecture("CP-JKU_5_resnet34") == "ResNet"
    assert architecture("AugLi_crnn") == "CRNN" and architecture("AMLAG_submission1") is None


def test_pair_groups_average_the_right_pairs() -> None:
    names = ["A_1_crnn", "A_2", "B_1_crnn", "B_2"]
    matrix = [[1, 0.9, 0.3, 0.1], [0.9, 1, 0.2, 0.0], [0.3, 0.2, 1, 0.8], [0.1, 0.0, 0.8, 1]]
    groups = group_pairs(names, matrix)
    assert groups["same_team"] == {"mean": pytest.approx(0.85), "pairs": 2}
    assert groups["other_team"] == {"mean": pytest.approx(0.15), "pairs": 4}
    assert groups["same_arch"] == {"mean": 0.3, "pairs": 1} and groups["other_arch"]["pairs"] == 0


def test_the_jamendo_section_finds_the_teams_and_writes_the_report(tmp_path: Path) -> None:
    folder = _jamendo(tmp_path / "jamendo")
    assert jamendo_spaces(folder)[0].name == "TeamA_run1_crnn"
    result = run(tmp_path / "out", folder, None, cutoffs=(5, 10), maps=False)
    groups = result["jamendo"]["cosine"]["groups"]["10"]
    assert groups["same_team"]["mean"] > 0.9 > 0.5 > groups["other_team"]["mean"]
    text = (tmp_path / "out" / "spaces.md").read_text()
    assert "Runs of one team agree more than runs of different teams" in text
    assert "Too few runs of different teams name the same architecture (1 pair)" in text
    assert (tmp_path / "out" / "jamendo_euclidean" / "heatmap_S10.png").is_file()
    assert json.loads((tmp_path / "out" / "spaces.json").read_text())["cutoffs"] == [5, 10]


def test_projections_measure_preservation_and_seed_agreement() -> None:
    rng = np.random.default_rng(1)
    space = Space("s", np.array([f"i{i}" for i in range(300)]), rng.normal(size=(300, 5)).astype(np.float32))
    part = projections(space, "euclidean", methods=("pca", "random"))
    pca, rand = part["methods"]["pca"], part["methods"]["random"]
    assert pca["seed_agreement"]["10"] == 1.0  # PCA does not depend on the seed
    assert rand["seed_agreement"]["10"] < 1.0  # two random projections differ
    assert 0 < rand["preservation"][0]["10"] < pca["preservation"][0]["10"] <= 1


def test_the_command_needs_data_and_names_a_bad_workdir(tmp_path: Path) -> None:
    base = [sys.executable, "-m", "cli.main", "evaluate", "spaces", "--out", str(tmp_path / "r")]
    none = subprocess.run(base, capture_output=True, text=True, check=False)
    assert none.returncode == 1 and "give --jamendo DIR, --olga DIR or both" in none.stderr
    (tmp_path / "w").mkdir()
    bad = subprocess.run([*base, "--olga", str(tmp_path), "--olga-work", str(tmp_path / "w")],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert bad.returncode == 1 and "expected a workdir with catalog/" in bad.stderr and bad.stderr.count("\n") == 1
