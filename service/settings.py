"""Service settings, read from the environment (CMAR_*) and validated at start-up."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import CmarError

if TYPE_CHECKING:
    from inference.tracks import TrackModel
    from service.maps import ServedMap

MAX_K = 1000  # the API contract: k is between 1 and 1000


class Settings(BaseSettings):
    """Where the artifacts are and how the API behaves."""

    model_config = SettingsConfigDict(env_prefix="CMAR_", protected_namespaces=("settings_",))

    model_dir: Path = Field(Path("cmar-data/model"), description="model folder (cmar export)")
    index_dir: Path = Field(Path("cmar-data/index"), description="index folder (cmar build-index)")
    track_model_dir: Path | None = Field(
        None, description="track model folder (cmar tracks train) for POST /tracks/clusters (unset = that route 404s)"
    )
    map_dir: Path | None = Field(
        None, description="map folder (cmar map) for GET /map and the web page's map; unset = no map"
    )
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8000, ge=0, le=65535, description="port to listen on (0 = any free port)")
    verify_hashes: bool = Field(True, description="check every artifact file's sha256 at start-up")
    onnx_threads: int = Field(1, ge=0, description="ONNX Runtime threads per query (0 = all cores)")
    search_threads: int = Field(
        1, ge=1, description="BLAS and OpenMP threads per search (more only helps very large exact indexes)"
    )
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = Field(
        "info", description="critical, error, warning, info, debug or trace"
    )
    access_log: bool = Field(False, description="log every request (costs about a tenth of the throughput)")
    log_format: Literal["json", "text"] = Field("json", description="log lines as JSON objects, or as text")
    writes_db: Path | None = Field(
        None,
        description="SQLite database of artists written through the API (default: writes.sqlite3 beside the index)",
    )
    api_key: SecretStr | None = Field(None, description="key for writes and admin (unset = those are refused)")
    read_key_required: bool = Field(False, description="reads need a key: the read key or the API key")
    read_key: SecretStr | None = Field(
        None, description="a key for reads only (with read_key_required), e.g. for the web page's users"
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, description="largest request body accepted (413 above)")
    max_header_bytes: int = Field(
        65_536, ge=1024, description="largest request line and headers accepted (431 above; the connection closes)"
    )
    max_headers: int = Field(100, ge=8, description="most header fields accepted in one request (431 above)")
    header_timeout: float = Field(
        10.0, gt=0, description="seconds a client has to send a request's headers (the connection is closed after)"
    )
    body_timeout: float = Field(
        30.0, gt=0, description="seconds a client has to send a request's body after its headers (then 408, closed)"
    )
    max_connections: int = Field(
        1000, ge=1, description="open connections served at once; above it new ones get a 503 and are closed"
    )
    server: Literal["uvicorn", "granian"] = Field(
        "uvicorn",
        description="HTTP server: uvicorn (holds every limit above) or granian (no connection cap; see the README)",
    )
    resume_swap: bool = Field(
        True, description="a restart serves the folders of the last swap (recorded beside the write database)"
    )

    @field_validator("track_model_dir", "map_dir", mode="before")
    @classmethod
    def _empty_path_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value

    @field_validator("api_key", "read_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value

    @model_validator(mode="after")
    def _read_key_closes_reads(self) -> Settings:
        if self.read_key is not None and not self.read_key_required:
            raise ValueError("CMAR_READ_KEY is set but reads are open: set CMAR_READ_KEY_REQUIRED=true too")
        return self


def load_track_model(settings: Settings) -> TrackModel | None:
    """The track model of CMAR_TRACK_MODEL_DIR, verified; None when unset. CmarError if it does not load."""
    from inference.tracks import TrackModel

    if settings.track_model_dir is None:
        return None
    return TrackModel(settings.track_model_dir, verify=settings.verify_hashes, threads=settings.onnx_threads)


def load_map(settings: Settings) -> ServedMap | None:
    """The map of CMAR_MAP_DIR; None when unset. CmarError if it is not a readable map folder."""
    from service.maps import ServedMap

    return None if settings.map_dir is None else ServedMap(settings.map_dir)


def writes_db(settings: Settings) -> Path:
    """Where the write database is: the setting, or writes.sqlite3 in the index folder's parent."""
    return settings.writes_db or settings.index_dir.parent / "writes.sqlite3"


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and `overrides`; a CmarError naming the bad setting otherwise."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        if not name:  # a check across settings: its message names them
            raise CmarError(f"invalid settings: {message}") from None
        raise CmarError(f"invalid setting {name} (CMAR_{name.upper()}): {message}") from None


@lru_cache
def get_settings() -> Settings:
    """The process's settings (cached; tests override this dependency)."""
    return load_settings()
