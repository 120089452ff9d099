"""Request and response bodies of the API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

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


MAX_OFFSET = 10_000  # results skipped by paging
MAX_EXCLUDE = 1000  # ids one query may exclude


def _modality_names(value: list[str] | None) -> list[str] | None:
    for name in value or []:
        if name not in MODALITY_NAMES:
            raise ValueError(f"unknown modality {name!r}; expected any of {', '.join(MODALITY_NAMES)}")
    return value


Popularity = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class SimilarOptions(BaseModel):
    """Filters, paging, order and explanations of a similar-artist query (both similar routes).

    Filters keep only results that pass all of them; the ranking is otherwise the same. An
    artist whose popularity is unknown (a written one, or any artist of an index built from a
    catalogue without popularity; a catalogue that gives popularity for some artists counts
    the others as 0) is left out by either popularity bound.
    """

    modalities: Annotated[list[str] | None, AfterValidator(_modality_names)] = Field(
        None, max_length=len(MODALITY_NAMES), description="only results indexed with all of these modalities"
    )
    exclude: list[Text] | None = Field(None, max_length=MAX_EXCLUDE, description="ids never to return")
    min_popularity: Popularity | None = Field(None, description="only results at least this popular")
    max_popularity: Popularity | None = Field(None, description="only results at most this popular")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description=f"results to skip (paging), 0 to {MAX_OFFSET}")
    order: Literal["similar", "dissimilar"] = Field(
        "similar", description="similar: most similar first; dissimilar: the far end of the list, least similar first"
    )
    explain: bool = Field(False, description="add to each result why it is similar (cosines per modality pair, tags)")

    @field_validator("max_popularity")
    @classmethod
    def _bounds(cls, high: float | None, info: ValidationInfo) -> float | None:
        low = info.data.get("min_popularity")
        if low is not None and high is not None and low > high:
            raise ValueError(f"must not be below min_popularity ({low:g}), got {high:g}")
        return high

    def options(self) -> SimilarOptions:
        """These options alone (a query body's, without its modalities and k)."""
        return SimilarOptions.model_validate({f: getattr(self, f) for f in SimilarOptions.model_fields})

    @property
    def plain(self) -> bool:
        """True when nothing is asked beyond the default (the fast paths answer)."""
        return self.filtered is False and not self.explain

    @property
    def filtered(self) -> bool:
        """True when results are filtered, paged or reversed: the whole ranking is needed."""
        return bool(
            self.modalities
            or self.exclude
            or self.min_popularity is not None
            or self.max_popularity is not None
            or self.offset
            or self.order != "similar"
        )


SIMILAR_OPTIONS = tuple(SimilarOptions.model_fields)


class _QueryBase(_ModalitiesBase, SimilarOptions):
    """A cold-start query's own fields: k, and the options of `SimilarOptions`."""

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


MAX_BATCH_QUERIES = 100  # artists or cold-start queries in one batch request
MAX_BATCH_RESULTS = 20_000  # results (queries x k) of one batch request
MAX_EXPLAINED = 2_000  # explained results of one batch request (each costs about 50 us and 1 kB)
MAX_RANKED = 10  # filtered, paged or reversed queries of one batch request (each ranks every served artist)


def _batch_size(queries: int, k_total: int, explained: int, where: str, ranked: int = 0) -> None:
    """The caps on one batch's work: results, explained results and whole rankings (ValueError naming `where`)."""
    if ranked > MAX_RANKED:
        raise ValueError(
            f"{where}: {ranked} of them filter, page or reverse the ranking, each ranking every served artist; "
            f"at most {MAX_RANKED} per request"
        )
    if k_total > MAX_BATCH_RESULTS:
        raise ValueError(f"{where} ask for {k_total} results in all; at most {MAX_BATCH_RESULTS} per request")
    if explained > MAX_EXPLAINED:
        raise ValueError(f"{where} ask for {explained} explained results; at most {MAX_EXPLAINED} per request")


class SimilarBatch(SimilarOptions):
    """POST /artists/similar: the similar lists of many served artists, with the same k and options."""

    model_config = ConfigDict(extra="forbid")

    artist_ids: list[Annotated[Text, Field(min_length=1)]] = Field(
        min_length=1, max_length=MAX_BATCH_QUERIES, description=f"served artists' ids, 1 to {MAX_BATCH_QUERIES}"
    )
    k: int = Field(
        10, ge=1, le=MAX_K, description=f"results per artist, 1 to {MAX_K}; ids x k at most {MAX_BATCH_RESULTS}"
    )

    @model_validator(mode="after")
    def _work(self) -> SimilarBatch:
        n = len(set(self.artist_ids))
        _batch_size(n, n * self.k, n * self.k if self.explain else 0, f"{n} artists x k = {self.k}",
                    n if self.filtered else 0)  # fmt: skip
        return self


class ColdStartBatch(BaseModel):
    """POST /similar/batch: many cold-start queries, each as POST /similar takes it."""

    model_config = ConfigDict(extra="forbid")

    queries: list[SimilarQuery] = Field(  # type: ignore[valid-type]
        min_length=1,
        max_length=MAX_BATCH_QUERIES,
        description=f"1 to {MAX_BATCH_QUERIES} queries; their k add up to at most {MAX_BATCH_RESULTS}",
    )

    @model_validator(mode="after")
    def _work(self) -> ColdStartBatch:
        ks = [q.k for q in self.queries]
        explained = sum(q.k for q in self.queries if q.explain)
        _batch_size(len(ks), sum(ks), explained, f"{len(ks)} queries", sum(q.filtered for q in self.queries))
        return self


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


class ModalityPair(BaseModel):
    """How one of the query's modalities compares with one of the result's."""

    query_modality: str
    result_modality: str
    cosine: float = Field(description="cosine between the two modality embeddings, -1 to 1")
    contribution: float = Field(
        description="the pair's share of the score (weights x cosine over the fused norms); shares add up to it"
    )
    completed: list[Literal["query", "result"]] | None = Field(
        None, description="the side(s) whose modality here is predicted by the model (completion), not given"
    )


class SharedTag(BaseModel):
    """A tag both artists carry."""

    tag: str
    modality: str
    weight: float = Field(description="the smaller of its two weights, each side's heaviest tag = 1")


class Explanation(BaseModel):
    """Why a result is similar to the query (`explain=true`)."""

    pairs: list[ModalityPair] = Field(
        description="every pair of the query's and the result's modalities, largest share first"
    )
    strongest: dict[str, str] | None = Field(description="the pair with the largest share")
    shared_tags: list[SharedTag] = Field(description="up to 5 tags both carry, strongest first")


class Neighbour(BaseModel):
    """One similar artist."""

    artist_id: str
    name: str
    score: float = Field(description="cosine similarity to the query, -1 to 1")
    modalities: list[str] = Field(description="the modalities this artist is indexed with")
    explanation: Explanation | None = Field(
        None, description="with explain=true only; null when the index holds no explanation data"
    )


class _Page(BaseModel):
    """Where a page of results starts, in what order, and how many artists passed the filters (with options only)."""

    offset: int | None = Field(None, description="results skipped (with options only)")
    order: str | None = Field(None, description="similar or dissimilar (with options only)")
    total: int | None = Field(None, description="served artists that passed the filters (filtered answers only)")


class SimilarResponse(_Page):
    """The nearest artists to an indexed artist."""

    artist_id: str
    k: int
    results: list[Neighbour]


class SimilarBatchResponse(BaseModel):
    """The similar lists of many artists, in the order asked; ids not served are listed apart."""

    k: int
    answers: list[SimilarResponse]
    missing: list[str] = Field(description="ids asked for that are not served (no answer for them)")


class ColdStartResponse(_Page):
    """The nearest artists to a cold-start query."""

    modalities: list[str] = Field(description="the modalities the query was encoded from")
    unknown_tags: list[str] = Field(default_factory=list, description="tag names not in the vocabulary, ignored")
    k: int
    results: list[Neighbour]


class ColdStartBatchResponse(BaseModel):
    """One answer per cold-start query, in the order given."""

    answers: list[ColdStartResponse]


class Artist(BaseModel):
    """An indexed artist."""

    artist_id: str
    name: str
    modalities: list[str]
    popularity: float | None = Field(
        None, description="the catalogue's popularity; null for written artists or none given"
    )


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


MAX_MAP_POINTS = 10_000  # points of one GET /map page
MAX_MAP_OFFSET = 100_000_000  # far beyond any index this service can hold


class MapPoint(BaseModel):
    """A served artist's position on the map."""

    artist_id: str
    name: str
    x: float
    y: float
    placed_by: Literal["map", "neighbours"] = Field(
        description="map: the map folder holds it; neighbours: at the median position of its 5 nearest mapped artists"
    )


class MapPage(BaseModel):
    """A page of the map of the served artists, and what the map is."""

    map: str = Field(description="the map folder's name")
    method: str | None = Field(description="how it was made: pca, random, tsne, umap")
    seed: int | None
    source: str | None = Field(description="the name of the space it was made from")
    n_items: int = Field(description="items the map folder holds")
    preservation: dict[str, float] = Field(
        description="S_n: share of each item's n nearest in the source that stay its n nearest on the map"
    )
    source_index_version: str | None = Field(description="the index the map was drawn from (null: not an index)")
    drawn_for_served_index: bool | None = Field(
        description="false when the service serves another index (after a swap, say): positions and "
        "preservation are those of the map's own index, artists it lacks placed by their neighbours; "
        "null when the map does not record its index (drawn from another kind of space, or by an older cmar)"
    )
    served: int = Field(description="artists served now")
    served_on_map: int = Field(description="of them, those the map folder holds")
    placed_by_neighbours: int = Field(description="of them, those placed by their nearest mapped artists")
    bounds: list[float] | None = Field(description="x0, y0, x1, y1 of every placed artist")
    total: int = Field(description="placed artists in the box (all of them without a box)")
    offset: int
    limit: int
    points: list[MapPoint]
    unplaced_total: int = Field(description="served artists the map cannot place (it holds none of the served)")
    unplaced: list[str] = Field(description="a page of them (offset, limit), without a box")


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
