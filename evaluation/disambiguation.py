"""Artist disambiguation from track audio on unseen artists (Royo-Letelier et al., ISMIR 2018, Section 4).

Methods: `raw` (the input features, standardised on the training tracks), `classifier` (the
last hidden layer of an artist classifier, the paper's baseline), `triplet` and
`triplet_sideinfo` (`model_export.tracks`). Every method is trained on the training artists
only and judged on the unseen test artists:

- classification: each artist modelled by the mean embedding of up to 15 tracks; up to 5 other
  tracks each assigned to the nearest model (Euclidean); accuracy. An artist with t < 20
  tracks gives min(5, t // 2) test tracks and the rest (up to 15) to its model. Also across
  albums: for artists with tracks on 2+ albums, the model from the largest album and the test
  tracks from the others.
- verification: the distance between a test track and every artist model, own model =
  positive; equal error rate (EER).
- homonym clustering: the tracks of 2-4 test artists pooled as one name (`inference.homonyms`),
  Ward clustering with the threshold chosen by 5-fold cross-validation over groups (best mean
  AMI on the other folds); ARI and AMI per group; mean and sd over draws.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.spatial.distance import cdist

from core.errors import CmarError
from evaluation.metrics import bootstrap_ci
from evaluation.track_sets import TrackSet
from inference.homonyms import best_threshold, candidate_thresholds, group_scores, homonym_groups

log = logging.getLogger(__name__)

METHODS = ("raw", "classifier", "triplet", "triplet_sideinfo")
MODEL_TRACKS = 15  # tracks per artist model (the paper)
TEST_TRACKS = 5  # tracks per artist to classify (the paper)
FOLDS = 5  # cross-validation folds over homonym groups (the paper)
MIN_TRACKS = 2  # a test artist needs this many tracks (one for its model, one to test)


@dataclass
class Split:
    """Which artists are unseen (test) and which tracks train the models."""

    train: npt.NDArray[np.bool_]  # (T,) tracks of training artists
    test_artists: npt.NDArray[np.int64]  # artist labels of the unseen artists with 2+ tracks


@dataclass
class DisambiguationConfig:
    """The experiment's settings."""

    test_fraction: float = 0.3  # share of the artists with 2+ tracks held out as unseen (without --test-artists)
    draws: int = 10  # random draws of homonym groups
    seed: int = 0
    iterations: int | None = None  # training steps of every learned method (None: each method's default)
    methods: tuple[str, ...] = METHODS
    track: dict[str, Any] = field(default_factory=dict)  # TrackConfig fields other than the defaults


def split(data: TrackSet, labels: npt.NDArray[np.int64], ids: npt.NDArray[np.object_],
          test_artists: list[str] | None, config: DisambiguationConfig) -> Split:  # fmt: skip
    """The given unseen artists (their ids), or a seeded share of the artists with 2+ tracks."""
    counts = np.bincount(labels, minlength=len(ids))
    if test_artists is not None:
        index = {a: i for i, a in enumerate(ids.tolist())}
        unknown = [a for a in test_artists if a not in index]
        if unknown:
            raise CmarError(f"--test-artists: {len(unknown)} id(s) not in the data, e.g. {unknown[0]!r}")
        chosen = np.asarray([index[a] for a in test_artists], dtype=np.int64)
    else:
        eligible = np.flatnonzero(counts >= MIN_TRACKS)
        size = round(config.test_fraction * len(eligible))
        chosen = np.random.default_rng(config.seed).choice(eligible, size=size, replace=False)
    test = np.sort(chosen[counts[chosen] >= MIN_TRACKS])
    if len(test) < 4:
        raise CmarError(f"{data.name}: {len(test)} unseen artists with {MIN_TRACKS}+ tracks; at least 4 are needed")
    train = ~np.isin(labels, chosen)
    if len(np.unique(labels[train])) < 2:
        raise CmarError(f"{data.name}: fewer than 2 training artists")
    return Split(train=train, test_artists=test)


def model_and_test_tracks(
    labels: npt.NDArray[np.int64], artists: npt.NDArray[np.int64], rng: np.random.Generator
) -> tuple[dict[int, npt.NDArray[np.int64]], dict[int, npt.NDArray[np.int64]]]:
    """Each artist's model tracks (up to 15) and test tracks (min(5, t // 2)), drawn at random."""
    models, tests = {}, {}
    for a in artists.tolist():
        tracks = rng.permutation(np.flatnonzero(labels == a))
        n_test = min(TEST_TRACKS, len(tracks) // 2)
        tests[a] = tracks[:n_test]
        models[a] = tracks[n_test : n_test + MODEL_TRACKS]
    return models, tests


def cross_album_tracks(
    labels: npt.NDArray[np.int64], albums: npt.NDArray[np.object_], artists: npt.NDArray[np.int64],
    rng: np.random.Generator,
) -> tuple[dict[int, npt.NDArray[np.int64]], dict[int, npt.NDArray[np.int64]]]:  # fmt: skip
    """For artists with tracks on 2+ albums: model tracks from the largest album, test tracks from the others."""
    models, tests = {}, {}
    for a in artists.tolist():
        tracks = np.flatnonzero(labels == a)
        names, counts = np.unique(albums[tracks].astype(str), return_counts=True)
        if len(names) < 2:
            continue
        largest = names[np.argmax(counts)]
        own = albums[tracks].astype(str) == largest
        models[a] = rng.permutation(tracks[own])[:MODEL_TRACKS]
        tests[a] = rng.permutation(tracks[~own])[:TEST_TRACKS]
    return models, tests


def classify(
    emb: npt.NDArray[np.float32], models: dict[int, npt.NDArray[np.int64]], tests: dict[int, npt.NDArray[np.int64]]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """Distances (n_test_tracks, n_models) of test tracks to the artist models, truth mask, owner of each row."""
    order = sorted(models)
    centres = np.stack([emb[models[a]].mean(axis=0) for a in order])
    rows = [(a, t) for a in sorted(tests) for t in tests[a].tolist()]
    x = emb[[t for _, t in rows]]
    d = cdist(x.astype(np.float64), centres.astype(np.float64))
    column = {a: i for i, a in enumerate(order)}
    truth = np.zeros(d.shape, dtype=bool)
    truth[np.arange(len(rows)), [column[a] for a, _ in rows]] = True
    return d, truth, np.asarray([a for a, _ in rows], dtype=np.int64)


def equal_error_rate(distances: npt.NDArray[np.float64], positive: npt.NDArray[np.bool_]) -> float:
    """EER of accepting pairs whose distance is below a threshold: where false accepts = false rejects."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(positive.ravel(), -distances.ravel())
    fnr = 1 - tpr
    i = int(np.argmin(np.abs(fnr - fpr)))
    if i + 1 < len(fpr) and (fnr[i] - fpr[i]) * (fnr[i + 1] - fpr[i + 1]) < 0:  # interpolate the crossing
        j = i + 1
        t = (fnr[i] - fpr[i]) / ((fnr[i] - fpr[i]) - (fnr[j] - fpr[j]))
        return float(fpr[i] + t * (fpr[j] - fpr[i]))
    return float((fpr[i] + fnr[i]) / 2)


def clustering_scores(
    emb: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    artists: npt.NDArray[np.int64],
    config: DisambiguationConfig,
) -> dict[str, Any]:
    """Homonym ARI and AMI: per draw, 5-fold CV of the threshold over groups; mean, sd over draws, CI over groups."""
    rng = np.random.default_rng(config.seed + 1)
    per_draw_ari, per_draw_ami, all_ari, all_ami, chosen = [], [], [], [], []
    sizes: dict[int, int] = {}
    for _ in range(config.draws):
        groups = homonym_groups(artists, rng)
        embs, truths = [], []
        for group in groups:
            members = np.flatnonzero(np.isin(labels, group))
            embs.append(emb[members])
            truths.append(np.unique(labels[members], return_inverse=True)[1])
            sizes[len(group)] = sizes.get(len(group), 0) + 1
        thresholds = candidate_thresholds(embs)
        ari, ami = group_scores(embs, truths, thresholds)
        folds = rng.permutation(len(groups)) % FOLDS
        got_ari, got_ami = np.zeros(len(groups)), np.zeros(len(groups))
        for f in range(FOLDS):
            held = folds == f
            if not held.any():
                continue
            best = best_threshold(thresholds, ami[~held].mean(axis=0)) if (~held).any() else len(thresholds) // 2
            chosen.append(float(thresholds[best]))
            got_ari[held], got_ami[held] = ari[held, best], ami[held, best]
        per_draw_ari.append(got_ari.mean())
        per_draw_ami.append(got_ami.mean())
        all_ari += got_ari.tolist()
        all_ami += got_ami.tolist()
    return {
        "ari": float(np.mean(per_draw_ari)),
        "ari_sd": float(np.std(per_draw_ari)),
        "ari_ci": bootstrap_ci(all_ari),
        "ami": float(np.mean(per_draw_ami)),
        "ami_sd": float(np.std(per_draw_ami)),
        "ami_ci": bootstrap_ci(all_ami),
        "groups_per_draw": len(all_ami) / max(config.draws, 1),
        "group_sizes": {str(k): v for k, v in sorted(sizes.items())},
        "threshold_median": float(np.median(chosen)) if chosen else None,
    }


def _bootstrap_artists(values_by_artist: dict[int, npt.NDArray[np.float64]], seed: int) -> tuple[float, float]:
    """95% CI of a per-track mean, resampling artists."""
    artists = sorted(values_by_artist)
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(1000):
        pick = rng.integers(0, len(artists), len(artists))
        means.append(np.concatenate([values_by_artist[artists[i]] for i in pick]).mean())
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def _eer_ci(
    d: npt.NDArray[np.float64], truth: npt.NDArray[np.bool_], owners: npt.NDArray[np.int64], seed: int
) -> tuple[float, float]:
    """95% CI of the EER, resampling test artists (their test tracks, against every model)."""
    artists = np.unique(owners)
    rows_of = {a: np.flatnonzero(owners == a) for a in artists.tolist()}
    rng = np.random.default_rng(seed)
    eers = []
    for _ in range(200):
        rows = np.concatenate([rows_of[int(a)] for a in rng.choice(artists, len(artists))])
        eers.append(equal_error_rate(d[rows], truth[rows]))
    return float(np.quantile(eers, 0.025)), float(np.quantile(eers, 0.975))


def evaluate_embedding(
    emb: npt.NDArray[np.float32], data: TrackSet, labels: npt.NDArray[np.int64], test: npt.NDArray[np.int64],
    config: DisambiguationConfig,
) -> dict[str, Any]:  # fmt: skip
    """Every measure of one method's embedding of the tracks (rows of training artists are not used)."""
    models, tests = model_and_test_tracks(labels, test, np.random.default_rng(config.seed + 2))
    d, truth, owners = classify(emb, models, tests)
    correct = truth[np.arange(len(d)), d.argmin(axis=1)]
    by_artist = {a: correct[owners == a].astype(float) for a in np.unique(owners).tolist()}
    out: dict[str, Any] = {
        "n_test_artists": len(test),
        "n_test_tracks": len(d),
        "accuracy": float(correct.mean()),
        "accuracy_ci": _bootstrap_artists(by_artist, config.seed),
        "eer": equal_error_rate(d, truth),
        "eer_ci": _eer_ci(d, truth, owners, config.seed),
    }
    if data.albums is not None:
        c_models, c_tests = cross_album_tracks(labels, data.albums, test, np.random.default_rng(config.seed + 3))
        if len(c_tests) >= 2:
            all_models = {**models, **c_models}
            cd, ctruth, cowners = classify(emb, all_models, c_tests)
            ccorrect = ctruth[np.arange(len(cd)), cd.argmin(axis=1)]
            out["cross_album"] = {
                "n_artists": len(c_tests),
                "n_tracks": len(cd),
                "accuracy": float(ccorrect.mean()),
                "accuracy_ci": _bootstrap_artists(
                    {a: ccorrect[cowners == a].astype(float) for a in np.unique(cowners).tolist()}, config.seed
                ),
                "same_album_accuracy_same_artists": float(correct[np.isin(owners, list(c_tests))].mean()),
            }
    out.update(clustering_scores(emb, labels, test, config))
    return out


def embeddings(method: str, data: TrackSet, labels: npt.NDArray[np.int64], s: Split, config: DisambiguationConfig,
               progress: bool = False) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:  # fmt: skip
    """Every track embedded by `method`, trained on the training tracks only; and training notes."""
    train = s.train
    if method == "raw":
        mean, std = data.audio[train].mean(axis=0), data.audio[train].std(axis=0)
        return ((data.audio - mean) / np.where(std > 0, std, 1)).astype(np.float32), {}
    from model_export.tracks import embed, method_config, train_tracks

    track_config = method_config(method, **{**config.track, "iterations": config.iterations, "seed": config.seed})
    tags = [data.tags[i] for i in np.flatnonzero(train)]
    trained = train_tracks(data.audio[train], labels[train], tags, track_config, progress)
    notes = {
        "config": track_config.to_dict(),
        "loss_first": trained.losses[0],
        "loss_last": trained.losses[-1],
        "side_info_rate": trained.side_info_rate,
    }
    return embed(trained.encoder, data.audio), notes


def run(
    data: TrackSet,
    test_artists: list[str] | None,
    config: DisambiguationConfig,
    plots: Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """The whole experiment on one data set: metrics of every method, as `metrics.json` holds them."""
    ids, labels = data.artist_labels()
    s = split(data, labels, ids, test_artists, config)
    out: dict[str, Any] = {
        "data": data.name,
        "features": data.features,
        "n_tracks": len(labels),
        "n_artists": len(ids),
        "n_train_tracks": int(s.train.sum()),
        "n_train_artists": len(np.unique(labels[s.train])),
        "n_test_artists": len(s.test_artists),
        "test_artists": ids[s.test_artists].tolist(),
        "config": vars(config),
        "methods": {},
    }
    embs = {}
    for method in config.methods:
        log.info("%s: %s", data.name, method)
        emb, notes = embeddings(method, data, labels, s, config, progress)
        embs[method] = emb
        out["methods"][method] = {**evaluate_embedding(emb, data, labels, s.test_artists, config), "training": notes}
    if plots is not None:
        from evaluation.disambiguation_report import plot_distances, plot_groups

        plot_distances(embs, labels, s.test_artists, plots / f"{data.name}_distances.png")
        plot_groups(embs, labels, s.test_artists, config.seed, plots / f"{data.name}_groups.png")
    return out
