"""Cold-start inputs: checked against the model and encoded, for queries and writes alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import HTTPException

from core.modalities import ModalityKind
from core.names import normalize_tag
from service.artifacts import Artifacts


def _error(error: Any) -> dict[str, Any]:
    msg = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    # Only the client's field names: pydantic adds the union member it tried ("list[str]", "function-after[...]").
    loc = [p for p in error.get("loc", ()) if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))]
    if loc == ["body"] and error.get("type") == "missing":
        msg = "a JSON body is required: an object with any of the modalities and k"
    return {"loc": loc, "msg": msg, "type": error.get("type", "value_error")}


def validation_errors(errors: list[Any]) -> list[dict[str, Any]]:
    """FastAPI's errors with clean locations, and only the most specific of each field.

    A value that fits no form of a union (tag names, tag weights, tag vectors) fails every
    form; the error that reached deepest into the value says what is wrong, so the shallower
    ones about the same field are dropped (`{"tag": {"rock": 1e-9}}` gives one error, about the weight).
    """
    cleaned = [_error(e) for e in errors]
    deepest = [
        e
        for e in cleaned
        if not any(len(o["loc"]) > len(e["loc"]) and o["loc"][: len(e["loc"])] == e["loc"] for o in cleaned)
    ]
    unique = {(tuple(e["loc"]), e["msg"]): e for e in deepest}
    return list(unique.values())


def unprocessable(loc: list[str | int], msg: str) -> HTTPException:
    """A 422 in the same shape as FastAPI's validation errors: where, and what was expected."""
    return HTTPException(status_code=422, detail=[{"loc": loc, "msg": msg, "type": "value_error"}])


SetInputs = dict[str, tuple[np.ndarray, np.ndarray]]  # modality -> (item vectors (T, d), raw weights (T,))


@dataclass(frozen=True)
class QueryInputs:
    """A query (or a written artist) checked against the model: what its encoders take.

    vectors: modality -> (d,) input vector. sets: modality -> (T, d) item vectors, heaviest
    first, and their (T,) raw weights. unknown_tags: tag names not in the vocabulary, as given.
    """

    vectors: dict[str, np.ndarray]
    sets: SetInputs
    unknown_tags: list[str]
    items: dict[str, dict[str, float]] = field(default_factory=dict)  # set modality -> named items the encoder takes

    @property
    def modalities(self) -> list[str]:
        """The modalities given, in the order the query gave them."""
        return [*self.vectors, *self.sets]

    def n_items(self, name: str) -> int:
        """How many items (tags) of set modality `name` the query gives that the model knows (0 if none)."""
        return len(self.sets[name][1]) if name in self.sets else 0


def query_inputs(artifacts: Artifacts, query: Any) -> QueryInputs:
    """Check a query (or a written artist) against the model; a 422 naming the field if it does not fit."""
    model = artifacts.model
    vectors: dict[str, np.ndarray] = {}
    sets: SetInputs = {}
    unknown_tags: list[str] = []
    named: dict[str, dict[str, float]] = {}
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
            named[name] = {t: weighted[t] for t in order[: model.manifest.max_tags]}  # the ones the encoder takes
        else:
            items = np.stack([_finite([*loc, i], v, dim) for i, v in enumerate(value)])
            sets[name] = (items, np.ones(len(items)))
    return QueryInputs(vectors, sets, unknown_tags, named)


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


def encode_many(artifacts: Artifacts, inputs: list[QueryInputs]) -> list[np.ndarray | HTTPException]:
    """The fused (D,) unit vector of each checked input, or the 422 of one the encoders overflow on
    (located at the first modality whose embedding is not finite, else at the body).

    One ONNX Runtime call per encoder for all of them (`Artifacts.encode_modalities`); each
    answer is the same whatever else is in the list.
    """
    return [fused for fused, _ in encode_parts(artifacts, inputs)]


def encode_parts(
    artifacts: Artifacts, inputs: list[QueryInputs]
) -> list[tuple[np.ndarray | HTTPException, dict[str, np.ndarray]]]:
    """`encode_many`, with each input's own unit embedding per given modality (D,), from the same call
    (what explanations and written artists' details need)."""
    stack, present = artifacts.encode_modalities([(i.vectors, i.sets) for i in inputs])
    names = list(artifacts.model.sessions)
    encoded = artifacts.model.fuse(stack, present, names, batch_invariant=True)
    usable = np.logical_and(np.isfinite(encoded).all(axis=1), encoded.any(axis=1))
    out: list[tuple[np.ndarray | HTTPException, dict[str, np.ndarray]]] = []
    for b, (vector, ok, i) in enumerate(zip(encoded, np.atleast_1d(usable), inputs, strict=True)):
        own = {n: stack[m, b] for m, n in enumerate(names) if present[m, b]}
        if ok:
            out.append((vector, own))
            continue
        broken = [n for m, n in enumerate(names) if present[m, b] and not np.isfinite(stack[m, b]).all()]
        out.append((_overflow(i, broken[0] if broken else None), own))
    return out


def _overflow(inputs: QueryInputs, modality: str | None) -> HTTPException:
    return unprocessable(
        ["body", modality] if modality else ["body"],
        f"the model cannot encode these {modality or ', '.join(inputs.modalities)} values: they are far outside "
        "the range of its training data (overflow)",
    )


def encode_checked(artifacts: Artifacts, inputs: QueryInputs) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The fused (D,) unit vector of checked inputs and their own embedding per modality; a 422 if the
    encoders overflow on them."""
    encoded, own = encode_parts(artifacts, [inputs])[0]
    if isinstance(encoded, HTTPException):
        raise encoded
    return encoded, own
