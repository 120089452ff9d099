"""Cold-start inputs: checked against the model and encoded, for queries and writes alike."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import HTTPException

from core.modalities import ModalityKind
from core.names import normalize_tag
from service.artifacts import Artifacts


def unprocessable(loc: list[str | int], msg: str) -> HTTPException:
    """A 422 in the same shape as FastAPI's validation errors: where, and what was expected."""
    return HTTPException(status_code=422, detail=[{"loc": loc, "msg": msg, "type": "value_error"}])


SetInputs = dict[str, tuple[np.ndarray, np.ndarray]]  # modality -> (item vectors (T, d), raw weights (T,))


def query_inputs(artifacts: Artifacts, query: Any) -> tuple[dict[str, np.ndarray], SetInputs, list[str]]:
    """Check a query (or a written artist) against the model: encoder inputs and the unknown tag names."""
    model = artifacts.model
    vectors: dict[str, np.ndarray] = {}
    sets: SetInputs = {}
    unknown_tags: list[str] = []
    for name, value in query.given().items():
        loc: list[str | int] = ["body", name]
        if name not in model.sessions:
            raise unprocessable(loc, f"this model has no {name} encoder; it accepts {', '.join(model.sessions)}")
        dim = model.input_dim(name)
        if model.kind(name) is ModalityKind.VECTOR:
            vectors[name] = _finite(loc, value, dim)
            continue
        if isinstance(value, dict) or isinstance(value[0], str):
            weighted, given = _canonical(loc, value)
            vocab = model.vocabularies[name]
            rows = {t: vocab.index[t] for t in weighted if t in vocab.index}
            unknown_tags = [given[t] for t in weighted if t not in vocab.index]  # as the client wrote them
            if not rows:
                raise unprocessable(loc, f"none of the {len(weighted)} tag name(s) is in the model's vocabulary")
            # Heaviest first, ties by vocabulary row: the order the catalogue's tables use
            # (catalog.tables.SetTable.from_rows), so neither key order nor list order decides
            # which tags fill the encoder's slots.
            order = sorted(rows, key=lambda t: (-weighted[t], rows[t]))
            sets[name] = (vocab.vectors[[rows[t] for t in order]], np.array([weighted[t] for t in order]))
        else:
            items = np.stack([_finite([*loc, i], v, dim) for i, v in enumerate(value)])
            sets[name] = (items, np.ones(len(items)))
    return vectors, sets, unknown_tags


def _canonical(loc: list[str | int], value: list[str] | dict[str, float]) -> tuple[dict[str, float], dict[str, str]]:
    """Tag names in canonical form (`core.names.normalize_tag`) with their weights (1 for a list),
    and each canonical name's spelling as given.

    A name repeated in a list counts once; two names of an object that are one tag after
    normalising (e.g. "Rock" and "rock") are a 422, since their weights would be ambiguous.
    """
    pairs = value.items() if isinstance(value, dict) else ((t, 1.0) for t in value)
    weighted: dict[str, float] = {}
    given: dict[str, str] = {}
    for raw, weight in pairs:
        tag = normalize_tag(raw)
        if not tag:
            raise unprocessable(loc, f"tag name {raw!r} is empty after trimming white space")
        if tag in weighted and isinstance(value, dict):
            raise unprocessable(
                loc, f"tag names {given[tag]!r} and {raw!r} are the same tag {tag!r}; give it once with one weight"
            )
        weighted[tag] = float(weight)
        given.setdefault(tag, raw)
    return weighted, given


def _finite(loc: list[str | int], value: list[float], dim: int) -> np.ndarray:
    if len(value) != dim:
        raise unprocessable(loc, f"expected a vector of {dim} numbers, got {len(value)}")
    arr = np.asarray(value, dtype=np.float64)
    if np.abs(arr).max(initial=0.0) > np.finfo(np.float32).max:
        raise unprocessable(loc, "values must be finite 32-bit floats (|x| < 3.4e38)")
    return arr.astype(np.float32)


def encode_checked(artifacts: Artifacts, vectors: dict[str, np.ndarray], sets: SetInputs) -> np.ndarray:
    """The fused unit vector of checked inputs; a 422 if the encoders overflow on them."""
    encoded = artifacts.encode_query(vectors, sets)
    if not np.isfinite(encoded).all() or not encoded.any():
        given = ", ".join([*vectors, *sets])
        raise unprocessable(
            ["body"],
            f"the model cannot encode these {given} values: they are far outside "
            "the range of its training data (overflow)",
        )
    return encoded
