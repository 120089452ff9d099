"""Request and response bodies of the API."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model, model_validator

from core.modalities import MODALITIES, MODALITY_NAMES, ModalityKind
from core.names import MIN_TAG_WEIGHT, has_surrogates
from service.settings import MAX_K


def _unicode_text(value: str) -> str:
    if has_surrogates(value):
        raise ValueError("must be valid Unicode text (found a lone surrogate such as \\ud800)")
    if "\0" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(_unicode_text)]  # every string a client sends: no lone surrogate, no NUL
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]  # a JSON number: not true, not "1"
Vector = list[Number]
Weight = Annotated[
    float,
    Field(
        strict=True,
        ge=MIN_TAG_WEIGHT,
        allow_inf_nan=False,
        description=f"a count, e.g. how many listeners used the tag; >= {MIN_TAG_WEIGHT:g}",
    ),
]
SetItems = list[Text] | list[Vector] | dict[Text, Weight]


MAX_ITEMS = 1000  # tags (or tag vectors) in one request


class _ModalitiesBase(BaseModel):
    """Checks shared by every body that describes an artist by its modalities (queries and writes)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(cls.model_fields))
            if unknown:
                others = " and ".join(f for f in cls.model_fields if f not in MODALITY_NAMES)
                raise ValueError(
                    f"unknown modality {unknown[0]!r}; expected any of {', '.join(MODALITY_NAMES)} (and {others})"
                )
            if not any(data.get(name) is not None for name in MODALITY_NAMES):
                raise ValueError(f"give at least one modality: {', '.join(MODALITY_NAMES)}")
        return data

    def given(self) -> dict[str, Any]:
        """The modalities this query gives, in registry order."""
        return {name: getattr(self, name) for name in MODALITY_NAMES if getattr(self, name) is not None}


class _QueryBase(_ModalitiesBase):
    """A cold-start query's own field."""

    k: int = Field(10, ge=1, le=MAX_K, description=f"number of results, 1 to {MAX_K}")


class _WriteBase(_ModalitiesBase):
    """A written artist's own field."""

    name: Text = Field(min_length=1, max_length=500, description="the artist's display name")


def _modality_field(kind: ModalityKind, description: str) -> Any:
    if kind is ModalityKind.VECTOR:
        return (Vector | None, Field(None, min_length=1, description=f"{description}: one vector"))
    return (
        SetItems | None,
        Field(
            None,
            min_length=1,
            max_length=MAX_ITEMS,
            description=f"{description}: names in the model's vocabulary (each weighing 1), "
            "an object of names and weights (e.g. how many listeners used each tag), or vectors",
        ),
    )


SimilarQuery = create_model(  # one optional field per registry modality
    "SimilarQuery",
    __base__=_QueryBase,
    __doc__="A cold-start query: any non-empty subset of modalities, and k.",
    **{m.name: _modality_field(m.kind, m.description) for m in MODALITIES},
)


ArtistWrite = create_model(  # PUT /artists/{id}: a name and one optional field per registry modality
    "ArtistWrite",
    __base__=_WriteBase,
    __doc__="An artist to add or replace: its name and any non-empty subset of modalities.",
    **{m.name: _modality_field(m.kind, m.description) for m in MODALITIES},
)


class WriteResult(BaseModel):
    """What a write did."""

    artist_id: str
    name: str | None = Field(None, description="the artist's name (None after a delete)")
    modalities: list[str] = Field(default_factory=list, description="the modalities it is served with")
    created: bool = Field(False, description="true if the artist was not served before")
    deleted: bool = False
    unknown_tags: list[str] = Field(default_factory=list, description="tag names not in the vocabulary, ignored")


class SwapRequest(BaseModel):
    """New artifacts to serve; a folder left out is the one configured at start-up."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    dry_run: bool = Field(
        False, description="verify the new artifacts and report the churn of the similar lists, without swapping"
    )
    model_dir: Text | None = Field(None, min_length=1, max_length=4096, description="model folder (cmar export)")
    index_dir: Text | None = Field(
        None, min_length=1, max_length=4096, description="index folder (cmar build-index), built with that model"
    )


class ChurnedArtist(BaseModel):
    """One artist's NN-similarity between the served and the new similar lists."""

    artist_id: str
    s10: float
    s200: float


class Churn(BaseModel):
    """How much the similar lists change: mean NN-similarity S_n over a sample (Tovstogan et al. 2022)."""

    sampled: int = Field(description="artists served by both and compared (up to 1,000)")
    s10: float | None = Field(description="mean share of the 10 most similar artists kept, 0 to 1")
    s200: float | None = Field(description="mean share of the 200 most similar artists kept, 0 to 1")
    most_changed: list[ChurnedArtist] = Field(description="the 10 sampled artists whose lists change most")


class SwapResult(BaseModel):
    """What is served after a swap, and before it (after a dry run: what would be)."""

    model_config = ConfigDict(protected_namespaces=())

    swapped: bool = Field(True, description="false for a dry run")
    churn: Churn | None = Field(None, description="how much the similar lists change")
    model_version: str
    index_version: str
    previous_model_version: str
    previous_index_version: str
    n_artists: int
    replayed_writes: int


class Neighbour(BaseModel):
    """One similar artist."""

    artist_id: str
    name: str
    score: float = Field(description="cosine similarity to the query, -1 to 1")
    modalities: list[str] = Field(description="the modalities this artist is indexed with")


class SimilarResponse(BaseModel):
    """The nearest artists to an indexed artist."""

    artist_id: str
    k: int
    results: list[Neighbour]


class ColdStartResponse(BaseModel):
    """The nearest artists to a cold-start query."""

    modalities: list[str] = Field(description="the modalities the query was encoded from")
    unknown_tags: list[str] = Field(default_factory=list, description="tag names not in the vocabulary, ignored")
    k: int
    results: list[Neighbour]


class Artist(BaseModel):
    """An indexed artist."""

    artist_id: str
    name: str
    modalities: list[str]


class ArtistMatch(BaseModel):
    """A served artist found by name."""

    artist_id: str
    name: str
    modalities: list[str]
    popularity: float | None = Field(description="the catalogue's popularity, null when it gave none")
    score: float = Field(
        description="100 the same name, 97 a prefix to a word's end, 95 a prefix, 90 a word's prefix, 75 to 89 fuzzy"
    )


class ArtistMatches(BaseModel):
    """Served artists found by name, best first."""

    q: str
    results: list[ArtistMatch]


class TagMatch(BaseModel):
    """A tag of the model's vocabulary."""

    tag: str = Field(description="the tag as the vocabulary spells it")
    modality: str
    artists: int | None = Field(description="indexed artists carrying it; null for an index built before the counts")


class TagMatches(BaseModel):
    """The model's tags beginning with a prefix, most carried first."""

    q: str
    results: list[TagMatch]


MAX_TRACKS = 2000  # tracks in one clustering request (Ward clustering keeps n^2 / 2 distances)


class TrackInput(BaseModel):
    """One track to cluster: an id of the client's and its audio features (the track model's input)."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[Text, Field(min_length=1, max_length=256, description="the client's id for the track")]
    audio: Annotated[Vector, Field(min_length=1, description="the track's audio features, as the track model takes")]


class TrackClustersQuery(BaseModel):
    """Tracks filed under one name, to split into the artists behind them (Royo-Letelier et al. 2018)."""

    model_config = ConfigDict(extra="forbid")

    tracks: Annotated[list[TrackInput], Field(min_length=1, max_length=MAX_TRACKS)]
    threshold: Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)] | None = Field(
        None, description="Ward linkage height to cut at (default: the track model's, chosen at training)"
    )


class TrackCluster(BaseModel):
    """One cluster: the tracks taken for one artist."""

    cluster: int = Field(description="0 = the cluster of the first track given, then in order of appearance")
    track_ids: list[str]


class TrackClustersResponse(BaseModel):
    """The clusters of the tracks given."""

    track_model: str = Field(description="version of the track model that embedded them")
    threshold: float
    n_clusters: int
    confidence: float = Field(
        description="1 - threshold / height of the lowest refused merge, in [0, 1]; 0 for one cluster"
    )
    clusters: list[TrackCluster]


class ErrorDetail(BaseModel):
    """An error: a message, or (422) FastAPI's list of {loc, msg, type}, naming the field."""

    detail: str | list[dict[str, Any]]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorDetail,
        "description": "the body is not readable (not UTF-8, not parseable JSON), or the path's escapes are not UTF-8",
    },
    401: {"model": ErrorDetail, "description": "an API key is needed (writes, admin; reads if closed)"},
    403: {"model": ErrorDetail, "description": "the API key is wrong, or the server has none"},
    404: {"model": ErrorDetail, "description": "no such artist (or, for /tracks/clusters, no track model is loaded)"},
    413: {"model": ErrorDetail, "description": "the body is over the size limit"},
    422: {"model": ErrorDetail, "description": "a field is invalid; the message says which and what was expected"},
    503: {"model": ErrorDetail, "description": "artifacts are not loaded yet, or (writes) the write cannot be stored"},
}


class Health(BaseModel):
    """Liveness."""

    status: str


class Readiness(BaseModel):
    """Readiness and what is being served."""

    status: str
    model_version: str
    index_version: str
    n_artists: int
    modalities: list[str]
    writes_available: bool = Field(description="whether PUT and DELETE can be stored now")
    writes_problem: str | None = Field(None, description="why writes are unavailable (null when they are)")
    skipped_writes: int = Field(0, description="stored rows that could not be read back at start-up (see the log)")
