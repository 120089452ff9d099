"""Artifact manifests: what a model or index folder holds, written beside it and verified on load."""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from core.artifacts import onnx_file
from core.errors import CmarError
from core.files import sha256_file
from core.fusion import check_modality_weights
from core.modalities import MODALITY_NAMES, ModalityKind

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: the same records as untyped objects (read and checked as version 2)
MANIFEST_FILE = "manifest.json"
MAX_MANIFEST_BYTES = 16 * 2**20  # a manifest is a few kB; a larger file is refused unread


class FileEntry(BaseModel):
    """One file of an artifact folder."""

    sha256: str
    bytes: int


class ModalityEntry(BaseModel):
    """One encoder of a model: its input and its ONNX file."""

    kind: ModalityKind
    input_dim: int
    file: str


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HubPenalty(_Record):
    """The hub penalty the index ranks with: cos(q, c) - beta/2 * c's mean cosine to its k nearest."""

    k: int = 0
    beta: float = 0.0  # 0 = rank by cosine alone


class ModalityBalance(_Record):
    """Offsets added to the score when a query of one modality subset meets a candidate of another
    (`core.balance`), fitted at build time (`index_build.balance`); no subsets = no balance."""

    subsets: list[str] = []  # slot -> modality subset name ("audio", "audio+cf", ...)
    offsets: list[list[float]] = []  # (S, S): B[query slot][candidate slot], in cosine units
    strength: float = 0.0  # the share of the fitted offsets applied (0 = off)
    k: int = 0  # the list length whose shares the fit evens out
    artists: int = 0  # full-coverage artists the fit simulated the subsets on
    splits: int = 0  # random assignments of those artists to subsets, averaged
    shares: list[list[float]] = []  # (S, S) simulated shares of each subset in each query subset's top k, after

    @model_validator(mode="after")
    def _square(self) -> ModalityBalance:
        if len(self.offsets) != len(self.subsets) or any(len(row) != len(self.subsets) for row in self.offsets):
            raise ValueError("balance offsets must be an S x S matrix for its S subsets")
        if not all(math.isfinite(v) and abs(v) <= 1 for row in self.offsets for v in row):
            raise ValueError("balance offsets must be finite numbers from -1 to 1 (cosine units)")
        return self


class SearchSetting(_Record):
    """The graph search setting and its recall@recall_k against exact search (an exact index: ef_search 0)."""

    ef_search: int = 0
    recall_k: int = 0
    recall: float = 1.0
    recall_queries: int = 0


class BuildRecord(_Record):
    """Where the index came from and what building it cost (seconds)."""

    catalog: str = ""
    catalog_fingerprint: str = ""
    batch_size: int = 0
    encode_fuse_s: float = 0.0
    balance_s: float | None = None
    index_s: float = 0.0
    hub_penalties_s: float | None = None
    index_add_s: float | None = None
    tune_s: float | None = None
    precompute_s: float | None = None
    total_s: float = 0.0


class SelfCheck(_Record):
    """The build's self-check: exact index, every artist's first neighbour is itself; graph, a sample in top 10."""

    checked: int = 0
    ok: bool = True
    first_is_self: int | None = None  # exact index
    self_in_top10: int | None = None  # graph index


class _Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    schema_version: int = SCHEMA_VERSION
    created_at: str = ""
    embedding_dim: int
    files: dict[str, FileEntry] = {}


class ModelManifest(_Manifest):
    """A trained model exported to ONNX: one encoder per modality it was trained with."""

    kind: Literal["model"] = "model"
    model_version: str = ""
    modalities: dict[str, ModalityEntry]
    max_tags: int  # the tag encoder attends over at most this many tags per artist
    modality_weights: dict[str, float] = {}  # modality -> weight in the fused sum (absent = 1)
    completion: dict[str, float] = {}  # modality subset -> weight of its completion (maps in completion.npz)
    training: dict[str, Any] = {}  # the config that rebuilds the model
    metrics: dict[str, Any] = {}  # training metrics (loss per epoch, parity check)

    @model_validator(mode="after")
    def _consistent(self) -> ModelManifest:
        problems = []
        if self.embedding_dim < 1 or self.max_tags < 1:
            problems.append("embedding_dim and max_tags must be >= 1")
        for name, entry in self.modalities.items():
            if name not in MODALITY_NAMES:
                problems.append(f"unknown modality {name!r}")
            elif entry.file != onnx_file(name) or entry.input_dim < 1:
                problems.append(f"modality {name!r} must name file {onnx_file(name)!r} and an input_dim >= 1")
        problems += check_modality_weights(self.modality_weights)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class TrackModelManifest(_Manifest):
    """A track encoder exported to ONNX (Royo-Letelier et al. 2018) and the threshold that cuts its clusters."""

    kind: Literal["track_model"] = "track_model"
    model_version: str = ""
    method: Literal["triplet", "triplet_sideinfo", "classifier"]
    input_dim: int  # audio values per track
    cluster_threshold: float  # Ward linkage height above which clusters stay apart
    training: dict[str, Any] = {}  # the config that rebuilds the model
    metrics: dict[str, Any] = {}  # training loss, threshold choice, parity check

    @model_validator(mode="after")
    def _consistent(self) -> TrackModelManifest:
        if self.embedding_dim < 1 or self.input_dim < 1:
            raise ValueError("embedding_dim and input_dim must be >= 1")
        if not (self.cluster_threshold > 0 and self.cluster_threshold < 1e6):
            raise ValueError("cluster_threshold must be a number > 0")
        return self


class IndexManifest(_Manifest):
    """A FAISS index of fused artist vectors and the model manifest it was built with."""

    @property
    def stored_dim(self) -> int:
        """Dimension of the vectors in the FAISS index: the embedding, plus one coordinate per query slot
        of the modality balance, or one for the hub penalty alone."""
        if self.balance.subsets:
            return self.embedding_dim + len(self.balance.subsets)
        return self.embedding_dim + (1 if self.hub.beta > 0 else 0)

    kind: Literal["index"] = "index"
    index_version: str = ""
    model: ModelManifest
    index_type: str
    hub: HubPenalty = HubPenalty()
    balance: ModalityBalance = ModalityBalance()
    n_artists: int  # artists in the index
    n_unindexed: int  # catalogue artists with no modality, left out
    modality_counts: dict[str, int]
    self_check: SelfCheck = SelfCheck()
    search: SearchSetting = SearchSetting()
    neighbours_k: int = 0  # length of the precomputed similar lists (0 = none; every query searches)
    build: BuildRecord = BuildRecord()


M = TypeVar("M", bound=_Manifest)


def _fingerprint(files: dict[str, FileEntry]) -> str:
    """A short version string derived from the content of the files."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}:{files[name].sha256}\n".encode())
    return digest.hexdigest()[:16]


def write_manifest(folder: Path, manifest: M) -> M:
    """Hash every file in `folder` into the manifest, set its version and write it there."""
    folder = Path(folder)
    files = {
        p.name: FileEntry(sha256=sha256_file(p), bytes=p.stat().st_size)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MANIFEST_FILE
    }
    update: dict[str, Any] = {
        "files": files,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if isinstance(manifest, ModelManifest | TrackModelManifest):
        update["model_version"] = f"m-{_fingerprint(files)}"
    elif isinstance(manifest, IndexManifest):
        update["index_version"] = f"i-{_fingerprint(files)}"
    final = manifest.model_copy(update=update)
    (folder / MANIFEST_FILE).write_text(final.model_dump_json(indent=2))
    return final


def read_manifest(folder: Path, cls: type[M], verify: bool = True) -> M:
    """Read and check a manifest: schema version, kind, and (if `verify`) every file's sha256.

    Raises CmarError naming what was expected and what was found.
    """
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise CmarError(f"{folder}: no such folder")
    if not path.exists() and not path.is_symlink():
        raise CmarError(f"{path}: missing; expected the manifest of a cmar {cls.model_fields['kind'].default} folder")
    try:  # never through a symbolic link, and nothing of a file's content echoed if it is not JSON
        raw = json.loads(read_file(folder, MANIFEST_FILE, max_size=MAX_MANIFEST_BYTES))
    except (ValueError, RecursionError):
        raise CmarError(f"{path}: not valid JSON") from None
    if not isinstance(raw, dict):
        raise CmarError(f"{path}: expected a JSON object")
    expected_kind = cls.model_fields["kind"].default
    if "kind" in raw and raw.get("kind") != expected_kind:  # another cmar folder: say which, before any version
        raise CmarError(f"{path}: expected a manifest of kind {expected_kind!r}, found kind {raw.get('kind')!r}")
    found_schema = raw.get("schema_version")
    if found_schema not in READABLE_VERSIONS:
        raise CmarError(
            f"{path}: schema version {found_schema!r} is not supported; this cmar reads "
            f"{' and '.join(map(str, READABLE_VERSIONS))} (rebuild the folder with this version)"
        )
    raw = _upgrade(raw)
    if raw.get("kind") != expected_kind:
        raise CmarError(f"{path}: expected a manifest of kind {expected_kind!r}, found kind {raw.get('kind')!r}")
    try:
        manifest = cls.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CmarError(f"{path}: invalid manifest at {where}: {first['msg']}") from None
    for name in manifest.files:
        if not _plain_name(name):
            raise CmarError(f"{path}: lists {name!r}, which is not a file name inside the folder; refused")
    if verify:
        verify_files(folder, manifest)
    return manifest


def _upgrade(raw: dict[str, Any]) -> dict[str, Any]:
    """A manifest of an older readable version in the current layout (1 -> 2: the records become typed)."""
    if raw.get("schema_version") == 1:
        raw = {**raw, "schema_version": 2}
        if isinstance(raw.get("model"), dict):
            raw["model"] = {**raw["model"], "schema_version": 2}
        records: dict[str, type[_Record]] = {
            "hub": HubPenalty,
            "search": SearchSetting,
            "build": BuildRecord,
            "self_check": SelfCheck,
        }
        for key, record in records.items():  # version 1 kept free-form objects: keep what version 2 names
            if isinstance(raw.get(key), dict):
                raw[key] = {k: v for k, v in raw[key].items() if k in record.model_fields}
    return raw


def _plain_name(name: str) -> bool:
    """A file name with no folder part: not absolute, no '/' or '\\', not '.' or '..', no NUL."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0") and name == name.strip()


def read_file(folder: Path, name: str, size: int | None = None, max_size: int | None = None) -> bytes:
    """The bytes of a regular file directly inside `folder`, never through a symbolic link.

    With `size`, a file of another size is refused before it is read.
    """
    path = Path(folder) / name
    if not _plain_name(name):
        raise CmarError(f"{folder}: {name!r} is not a file name inside the folder")
    if path.is_symlink():
        raise CmarError(f"{path}: a symbolic link; artifact files must be regular files in the folder")
    try:  # O_NONBLOCK: opening a FIFO or a device must not wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise CmarError(f"{path}: missing; the manifest lists it") from None
    except OSError as exc:
        raise CmarError(f"{path}: cannot read ({exc.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # a folder or a device: refused before Python opens it as a file
        os.close(fd)
        raise CmarError(f"{path}: not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if size is not None and info.st_size != size:  # refused before reading, however large it is
            raise CmarError(f"{path}: not the {size} bytes the manifest records (truncated or replaced?)")
        if max_size is not None and info.st_size > max_size:
            raise CmarError(f"{path}: over {max_size} bytes; not a cmar manifest")
        os.set_blocking(fd, True)
        return handle.read()


def read_files(folder: Path, manifest: _Manifest, verify: bool = True) -> dict[str, bytes]:
    """Every file the manifest lists, read once and checked (size, and sha256 if `verify`) on those bytes.

    Loaders build from these bytes, never from the files again, so what was verified is
    exactly what is loaded even if a file is replaced meanwhile. Raises CmarError naming the file.
    """
    out: dict[str, bytes] = {}
    for name, entry in manifest.files.items():
        data = read_file(folder, name, entry.bytes)
        path = Path(folder) / name
        if len(data) != entry.bytes:  # what was found is not echoed: the file may be a link to anything
            raise CmarError(f"{path}: not the {entry.bytes} bytes the manifest records (truncated or replaced?)")
        if verify and hashlib.sha256(data).hexdigest() != entry.sha256:
            raise CmarError(f"{path}: its sha256 is not the {entry.sha256[:16]}… the manifest records (changed?)")
        out[name] = data
    return out


def verify_files(folder: Path, manifest: _Manifest) -> None:
    """Check that every file the manifest lists is there with the recorded size and sha256."""
    for name, entry in manifest.files.items():
        path = Path(folder) / name
        if path.is_symlink() or not path.is_file():
            raise CmarError(f"{path}: missing or not a regular file; the manifest lists it")
        if path.stat().st_size != entry.bytes:
            raise CmarError(f"{path}: not the {entry.bytes} bytes the manifest records (truncated or replaced?)")
        if sha256_file(path) != entry.sha256:
            raise CmarError(f"{path}: its sha256 is not the {entry.sha256[:16]}… the manifest records (changed?)")
