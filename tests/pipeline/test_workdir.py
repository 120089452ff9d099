"""`cmar run --skip-existing` reuses artifacts only when they verify and match the catalogue."""

import shutil
from pathlib import Path

from catalog.synthetic import SyntheticSpec, write_synthetic
from pipeline.workdir import Workdir, artifacts_ready
from tests.conftest import Built


def test_artifacts_ready_only_for_the_same_catalogue_and_intact_files(built: Built, tmp_path: Path) -> None:
    work = Workdir(tmp_path / "work")
    shutil.copytree(built.model, work.model)
    shutil.copytree(built.index, work.index)
    assert artifacts_ready(work, built.catalog)

    other = tmp_path / "other"
    write_synthetic(other, SyntheticSpec(n_artists=50, n_styles=2, seed=1))
    assert not artifacts_ready(work, other)

    (work.index / "index.faiss").write_bytes(b"broken")
    assert not artifacts_ready(work, built.catalog)
    assert not artifacts_ready(Workdir(tmp_path / "empty"), built.catalog)


def test_a_workdir_with_the_main_job_s_map_can_be_run_again(built: Built, tmp_path: Path) -> None:
    """`cmar run` draws WORKDIR/map; a second run (the compose builder's --skip-existing) must accept it as its own."""
    import pytest

    from core.errors import CmarError
    from evaluation.maps import make_map
    from evaluation.nn_similarity import load_space

    work = Workdir(tmp_path / "work")
    work.claim()
    make_map(load_space(str(built.index)), "pca", 0, work.root / "map")
    work.claim()  # the map is one of the workdir's own folders
    (work.root / "notes.txt").write_text("mine")
    with pytest.raises(CmarError, match=r"notes\.txt"):  # while anything else is still refused
        work.claim()
