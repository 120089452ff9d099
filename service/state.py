"""What the running app holds, in one typed object: settings, metrics, the served artifacts, the writes.

The lifespan fills it; handlers receive it (or its parts) as typed dependencies
(`service.deps`); a swap replaces `artifacts` with one assignment, so a request that took the
artifacts at its start finishes on them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.store import WriteStore
from service.batching import ColdStartBatcher
from service.settings import Settings

if TYPE_CHECKING:
    from inference.tracks import TrackModel
    from service.artifacts import Artifacts
    from service.maps import ServedMap
    from service.observe import Metrics


@dataclass
class Live:
    """The write database, the lock that orders writes and the end of swaps, and what start-up skipped."""

    store: WriteStore
    lock: threading.Lock = field(default_factory=threading.Lock)
    skipped: int = 0  # stored rows not served at start-up: damaged, or not for this model (logged)


@dataclass
class Serving:
    """The app's state (one per app, at `app.state.serving`)."""

    settings: Settings
    metrics: Metrics
    artifacts: Artifacts | None = None  # None until the lifespan has loaded them
    live: Live | None = None
    batcher: ColdStartBatcher = field(default_factory=ColdStartBatcher)  # cold starts that arrive together
    tracks: TrackModel | None = None  # the track model of POST /tracks/clusters (CMAR_TRACK_MODEL_DIR)
    map: ServedMap | None = None  # the map of GET /map (CMAR_MAP_DIR)
