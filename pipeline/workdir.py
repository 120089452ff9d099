"""The main job: catalogue -> train -> export -> index, each stage's output in its own folder."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import CmarError
from core.manifest import IndexManifest, ModelManifest, read_manifest
from core.outputs import claim_output, folder_kind, mark_folder

if TYPE_CHECKING:
    from model_export.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Workdir:
    """Where each stage writes, under one folder."""

    root: Path

    @property
    def catalog(self) -> Path:
        """The demo catalogue (when no catalogue is given)."""
        return self.root / "catalog"

    @property
    def checkpoint(self) -> Path:
        """The training checkpoint."""
        return self.root / "checkpoint"

    @property
    def model(self) -> Path:
        """The exported model."""
        return self.root / "model"

    @property
    def index(self) -> Path:
        """The index."""
        return self.root / "index"

    def claim(self, overwrite: bool = False, demo_catalog: bool = False) -> None:
        """Make `root` a workdir: new, empty or an earlier workdir whose stage folders cmar may
        replace (`core.outputs`), checked before any work; CmarError otherwise.

        With `demo_catalog`, the demo catalogue will be written to `catalog/`: refused if a
        catalogue other than the demo is there (pass it with --catalog instead).
        """
        claim_output(self.root, "workdir", overwrite)
        for stage, kind in (("checkpoint", "checkpoint"), ("model", "model"), ("index", "index"), ("map", "map")):
            claim_output(self.root / stage, kind, overwrite)
        if demo_catalog:
            claim_output(self.catalog, "catalog", overwrite)
            if not overwrite and self.catalog.exists() and not is_demo_catalog(self.catalog):
                raise CmarError(
                    f"{self.catalog}: holds a catalogue that is not the demo; use it with --catalog {self.catalog}, "
                    "or pass --overwrite to replace it with the demo"
                )
        if folder_kind(self.root) != "workdir":
            mark_folder(self.root, "workdir")


def is_demo_catalog(folder: Path) -> bool:
    """True if `folder` is the demo catalogue `cmar run` generates (the default synthetic spec)."""
    from dataclasses import asdict

    from catalog.synthetic import SyntheticSpec

    try:
        raw = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    source = raw.get("source", {}) if isinstance(raw, dict) else {}
    return isinstance(source, dict) and source.get("synthetic") == json.loads(json.dumps(asdict(SyntheticSpec())))


def artifacts_ready(work: Workdir, catalog_dir: Path) -> bool:
    """True if the model and index folders exist, verify, belong together and come from this catalogue."""
    from catalog.io import catalog_fingerprint

    try:
        model = read_manifest(work.model, ModelManifest)
        index = read_manifest(work.index, IndexManifest)
    except CmarError as exc:
        log.info("artifacts not ready: %s", exc)
        return False
    if index.model.model_version != model.model_version:
        log.info("artifacts not ready: the index was built with another model")
        return False
    if index.build.catalog_fingerprint != catalog_fingerprint(catalog_dir):
        log.info("artifacts not ready: the index was built from another catalogue")
        return False
    return True


def build_artifacts(
    catalog_dir: Path, work: Workdir, config: TrainConfig, progress: bool = True, overwrite: bool = False
) -> IndexManifest:
    """Train on a catalogue, export the model and build its index under `work` (see `Workdir.claim`)."""
    # Imported here: torch is needed only by the stages that train.
    from index_build.build import build_index
    from model_export.export import export
    from model_export.train import train

    work.claim(overwrite)
    train(catalog_dir, work.checkpoint, config, progress=progress, overwrite=overwrite)
    export(work.checkpoint, work.model, overwrite=overwrite)
    return build_index(catalog_dir, work.model, work.index, progress=progress, overwrite=overwrite)
