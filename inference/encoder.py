"""The exported model run by ONNX Runtime: the one encoder used by the index build and the service."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from core.artifacts import COMPLETION_FILE, ENCODER_OUTPUT, vocab_names_file, vocab_vectors_file
from core.errors import CmarError
from core.fusion import Fusion
from core.manifest import ModelManifest, read_files, read_manifest
from core.modalities import ModalityKind
from core.names import normalize_tag
from core.vectors import FloatArray

log = logging.getLogger(__name__)


class Vocabulary:
    """The items of a set modality (tags) and their vectors."""

    def __init__(self, names: list[str], vectors: FloatArray) -> None:
        if len(names) != len(vectors):
            raise CmarError(f"vocabulary has {len(names)} names but {len(vectors)} vectors")
        self.names = names
        self.vectors = vectors
        self.index: dict[str, int] = {}  # canonical name (core.names.normalize_tag) -> row; the first wins
        for i, name in enumerate(names):
            self.index.setdefault(normalize_tag(name), i)

    @property
    def dim(self) -> int:
        """Dimension of the item vectors."""
        return int(self.vectors.shape[1])


class OnnxModel:
    """A verified model folder: one ONNX Runtime session per modality, plus the set vocabularies."""

    def __init__(self, folder: Path, verify: bool = True, threads: int = 0) -> None:
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder, ModelManifest, verify=False)
        files = read_files(self.folder, self.manifest, verify)  # loaded from these verified bytes only

        def file(name: str) -> bytes:
            if name not in files:
                raise CmarError(f"{self.folder}: the manifest does not list {name}")
            return files[name]

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0 = ONNX Runtime's default (all cores)
        self.sessions: dict[str, ort.InferenceSession] = {}
        self.vocabularies: dict[str, Vocabulary] = {}
        for name, entry in self.manifest.modalities.items():
            try:
                self.sessions[name] = ort.InferenceSession(
                    file(entry.file), options, providers=["CPUExecutionProvider"]
                )
            except CmarError:
                raise
            except Exception as exc:  # ONNX Runtime raises its own, unexported exception types
                raise CmarError(f"{self.folder / entry.file}: ONNX Runtime cannot load it ({exc})") from None
            if entry.kind is ModalityKind.SET:
                try:
                    names = json.loads(file(vocab_names_file(name)))
                    vectors = np.load(io.BytesIO(file(vocab_vectors_file(name))), allow_pickle=False)
                except ValueError as exc:
                    raise CmarError(f"{self.folder}: the {name} vocabulary does not load ({exc})") from None
                vectors = vectors.astype(np.float32)
                self.vocabularies[name] = Vocabulary(names, vectors)
                if self.vocabularies[name].dim != entry.input_dim:
                    raise CmarError(
                        f"{self.folder}: {name} vocabulary vectors have {self.vocabularies[name].dim} values, "
                        f"the encoder expects {entry.input_dim}"
                    )

        manifest = self.manifest
        self.fusion = Fusion.load(
            self.folder,
            manifest.modality_weights,
            manifest.completion,
            manifest.embedding_dim,
            data=files.get(COMPLETION_FILE),
        )

    def fuse(
        self, vectors: FloatArray, present: np.ndarray, names: list[str], batch_invariant: bool = False
    ) -> FloatArray:
        """Fuse this model's embeddings (M, N, D) of the modalities `names` into unit vectors (N, D).

        With the model's modality weights and completion, as `core.fusion.Fusion.fuse`.
        """
        return self.fusion.fuse(vectors, present, names, batch_invariant)

    @property
    def version(self) -> str:
        """The model version from the manifest."""
        return self.manifest.model_version

    @property
    def dim(self) -> int:
        """Dimension of the shared space."""
        return self.manifest.embedding_dim

    def kind(self, name: str) -> ModalityKind:
        """Kind of one of the model's modalities."""
        return self.manifest.modalities[name].kind

    def input_dim(self, name: str) -> int:
        """Input dimension of one of the model's modalities."""
        return self.manifest.modalities[name].input_dim

    def encode_vectors(self, name: str, x: FloatArray) -> FloatArray:
        """(B, d) inputs of a vector modality -> (B, D) unit vectors."""
        feeds = {self.sessions[name].get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)}
        return np.asarray(self.sessions[name].run([ENCODER_OUTPUT], feeds)[0])

    def encode_set(self, name: str, items: FloatArray, weights: np.ndarray) -> FloatArray:
        """(B, T, d) item vectors and (B, T) pooling weights (0 = padding) of a set modality -> (B, D)."""
        inputs = self.sessions[name].get_inputs()
        feeds = {
            inputs[0].name: np.ascontiguousarray(items, dtype=np.float32),
            inputs[1].name: np.ascontiguousarray(weights, dtype=np.float32),
        }
        return np.asarray(self.sessions[name].run([ENCODER_OUTPUT], feeds)[0])
