"""File names inside model and index folders, named once for every writer and reader."""

from __future__ import annotations


# Model folder (written by `cmar export`).
def onnx_file(modality: str) -> str:
    """The ONNX encoder of a modality."""
    return f"{modality}.onnx"


def vocab_names_file(modality: str) -> str:
    """The item names (JSON list) of a set modality's vocabulary."""
    return f"{modality}_vocab.json"


def vocab_vectors_file(modality: str) -> str:
    """The item vectors (.npy, float32, one row per name) of a set modality's vocabulary."""
    return f"{modality}_vectors.npy"


# ONNX input and output names.
VECTOR_INPUT = "x"
SET_INPUT = "items"
SET_WEIGHTS = "weights"  # (B, T) pooling weights of the items; 0 marks padding
ENCODER_OUTPUT = "embedding"

# Track model folder (written by `cmar tracks train`).
TRACK_ONNX_FILE = "track_encoder.onnx"  # track audio (B, d) -> unit vectors (B, e); input VECTOR_INPUT

# Checkpoint folder (written by `cmar train`).
CHECKPOINT_FILE = "checkpoint.pt"
TRAIN_FILE = "train.json"
COMPLETION_FILE = "completion.npz"  # modality completion maps (checkpoint and model folders)

# Index folder (written by `cmar build-index`).
INDEX_FILE = "index.faiss"
INDEX_ARTISTS_FILE = "artists.parquet"  # artist_id, name, modalities, in index order
NEIGHBOURS_FILE = "neighbours.npy"  # (N, K) int32: each artist's K most similar rows, precomputed
NEIGHBOUR_SCORES_FILE = "neighbour_scores.npy"  # (N, K) float32: their cosines
TAG_COUNTS_FILE = "tag_counts.json"  # set modality -> {item name: indexed artists carrying it}
# For explanations (`service.explain`): each artist's own modality embeddings and its tags.
MODALITY_EMBEDDINGS_FILE = "modality_embeddings.npz"  # modality -> (N, D) float16 unit embeddings, 0 = absent
ARTIST_ITEMS_FILE = "artist_items.parquet"  # per set modality: {name}_items list<string>, {name}_weights list<float>

# Map folder (written by `cmar map`).
MAP_FILE = "map.parquet"  # id, x, y: one row per item of the source space
MAP_MANIFEST_FILE = "manifest.json"  # kind "map": method, params, seed, source, preservation
