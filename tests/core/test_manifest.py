"""Manifests: written with hashes and a version, refused when anything does not match."""

import json
from pathlib import Path

import pytest

from core.errors import CmarError
from core.files import atomic_folder
from core.manifest import MANIFEST_FILE, IndexManifest, ModalityEntry, ModelManifest, read_manifest, write_manifest
from core.modalities import ModalityKind


def _model_folder(folder: Path) -> ModelManifest:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "audio.onnx").write_bytes(b"fake model bytes")
    manifest = ModelManifest(
        embedding_dim=200,
        modalities={"audio": ModalityEntry(kind=ModalityKind.VECTOR, input_dim=8, file="audio.onnx")},
        max_tags=16,
    )
    return write_manifest(folder, manifest)


def test_round_trip_records_hashes_and_a_content_version(tmp_path: Path) -> None:
    written = _model_folder(tmp_path / "m")
    read = read_manifest(tmp_path / "m", ModelManifest)
    assert read == written
    assert read.files["audio.onnx"].bytes == len(b"fake model bytes")
    assert read.model_version.startswith("m-")
    # Same content, same version; other content, another version.
    assert _model_folder(tmp_path / "m2").model_version == written.model_version
    (tmp_path / "m2" / "audio.onnx").write_bytes(b"other bytes")
    assert write_manifest(tmp_path / "m2", read).model_version != written.model_version


def test_changed_file_is_refused_naming_expected_and_found(tmp_path: Path) -> None:
    _model_folder(tmp_path)
    (tmp_path / "audio.onnx").write_bytes(b"fake model bytez")  # same size, other content
    with pytest.raises(CmarError, match=r"its sha256 is not the .* the manifest records"):
        read_manifest(tmp_path, ModelManifest)


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    _model_folder(tmp_path)
    (tmp_path / "audio.onnx").write_bytes(b"fake")
    with pytest.raises(CmarError, match="not the 16 bytes the manifest records"):
        read_manifest(tmp_path, ModelManifest)


def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    _model_folder(tmp_path)
    raw = json.loads((tmp_path / MANIFEST_FILE).read_text())
    raw["schema_version"] = 99
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(raw))
    with pytest.raises(CmarError, match="schema version 99 is not supported; this cmar reads 1 and 2"):
        read_manifest(tmp_path, ModelManifest)


def test_wrong_kind_and_missing_manifest_are_refused(tmp_path: Path) -> None:
    _model_folder(tmp_path)
    with pytest.raises(CmarError, match="expected a manifest of kind 'index', found kind 'model'"):
        read_manifest(tmp_path, IndexManifest)
    with pytest.raises(CmarError, match="no such folder"):
        read_manifest(tmp_path / "absent", ModelManifest)
    (tmp_path / MANIFEST_FILE).unlink()
    with pytest.raises(CmarError, match=r"manifest\.json: missing"):
        read_manifest(tmp_path, ModelManifest)


def test_atomic_folder_keeps_the_old_folder_when_the_write_fails(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic_folder(target, "report") as tmp:
        (tmp / "manifest.json").write_text('{"kind": "report"}')
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError), atomic_folder(target, "report") as tmp:
        (tmp / "a.txt").write_text("second")
        raise RuntimeError("boom")
    assert (target / "a.txt").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left behind


FIXTURES = Path(__file__).parent / "fixtures"


def test_every_readable_schema_version_reads_into_the_typed_records() -> None:
    from core.manifest import BuildRecord, HubPenalty, SearchSetting, SelfCheck

    v1 = read_manifest(FIXTURES / "index-v1", IndexManifest, verify=False)  # free-form records, an extra key
    v2 = read_manifest(FIXTURES / "index-v2", IndexManifest, verify=False)  # what this version writes
    assert v1 == v2 and v2.schema_version == 2
    assert v2.hub == HubPenalty(k=100, beta=0.5) and isinstance(v2.search, SearchSetting)
    assert v2.self_check == SelfCheck(checked=3756, first_is_self=3756, ok=True)
    assert isinstance(v2.build, BuildRecord) and v2.build.batch_size == 16384


def test_an_unknown_schema_version_is_refused_by_name(tmp_path: Path) -> None:
    raw = json.loads((FIXTURES / "index-v2" / "manifest.json").read_text())
    raw["schema_version"] = 3
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(CmarError, match=r"schema version 3 is not supported; this cmar reads 1 and 2"):
        read_manifest(tmp_path, IndexManifest, verify=False)
    raw["schema_version"] = 2
    raw["search"]["nprobe"] = 4  # version 2 records are typed: no unknown fields
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(CmarError, match=r"invalid manifest at search.nprobe"):
        read_manifest(tmp_path, IndexManifest, verify=False)
