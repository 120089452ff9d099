"""The disambiguation report: a table per data set, and two plots (distance histograms, homonym groups)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


def _ci(value: float, ci: list[float] | tuple[float, float]) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def summary(report: dict[str, Any]) -> str:
    """A readable summary.md of `evaluation.disambiguation.run`'s output."""
    lines = [
        f"# Artist disambiguation on {report['data']} (unseen artists)",
        "",
        f"{report['n_tracks']:,} tracks of {report['n_artists']:,} artists; audio: {report['features']}. "
        f"Trained on {report['n_train_tracks']:,} tracks of {report['n_train_artists']:,} artists; "
        f"{report['n_test_artists']} unseen test artists with 2+ tracks.",
        "",
        "| method | accuracy [95% CI] | EER [95% CI] (lower is better) | homonym ARI (sd) "
        "| homonym AMI (sd) [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for name, m in report["methods"].items():
        lines.append(
            f"| {name} | {_ci(m['accuracy'], m['accuracy_ci'])} | {_ci(m['eer'], m['eer_ci'])} | "
            f"{m['ari']:.3f} ({m['ari_sd']:.3f}) | {m['ami']:.3f} ({m['ami_sd']:.3f}) "
            f"[{m['ami_ci'][0]:.3f}, {m['ami_ci'][1]:.3f}] |"
        )
    first = next(iter(report["methods"].values()))
    lines += [
        "",
        f"Classification among {first['n_test_artists']} artist models ({first['n_test_tracks']} test tracks; "
        f"chance {1 / first['n_test_artists']:.3f}). Homonym groups per draw: {first['groups_per_draw']:.1f} "
        f"(sizes over all draws {first['group_sizes']}), {report['config']['draws']} draws, threshold by 5-fold CV.",
    ]
    cross = {n: m["cross_album"] for n, m in report["methods"].items() if "cross_album" in m}
    if cross:
        c0 = next(iter(cross.values()))
        lines += [
            "",
            f"## Across albums ({c0['n_artists']} artists with 2+ albums, {c0['n_tracks']} test tracks)",
            "",
            "| method | accuracy, model and test from different albums [95% CI] | same artists, random split |",
            "|---|---|---|",
        ]
        lines += [
            f"| {n} | {_ci(c['accuracy'], c['accuracy_ci'])} | {c['same_album_accuracy_same_artists']:.3f} |"
            for n, c in cross.items()
        ]
    return "\n".join(lines) + "\n"


def _pairs(
    emb: npt.NDArray[np.float32], labels: npt.NDArray[np.int64], artists: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    from scipy.spatial.distance import pdist

    rows = np.flatnonzero(np.isin(labels, artists))
    i, j = np.triu_indices(len(rows), k=1)  # pdist's order
    return pdist(emb[rows].astype(np.float64)), labels[rows][i] == labels[rows][j]


def plot_distances(
    embs: dict[str, npt.NDArray[np.float32]], labels: npt.NDArray[np.int64], artists: npt.NDArray[np.int64], path: Path
) -> None:
    """Histograms of same-artist and different-artist track distances, one panel per method (unseen artists)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(embs), figsize=(4 * len(embs), 3.2), squeeze=False)
    for ax, (name, emb) in zip(axes[0], embs.items(), strict=True):
        d, same = _pairs(emb, labels, artists)
        scale = np.quantile(d, 0.99) if d.size else 1.0
        bins = np.linspace(0, scale, 40)
        ax.hist(d[~same], bins=bins, density=True, alpha=0.6, label="different artists")
        ax.hist(d[same], bins=bins, density=True, alpha=0.6, label="same artist")
        ax.set_title(name)
        ax.set_xlabel("Euclidean distance")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_groups(
    embs: dict[str, npt.NDArray[np.float32]],
    labels: npt.NDArray[np.int64],
    artists: npt.NDArray[np.int64],
    seed: int,
    path: Path,
) -> None:
    """PCA maps of four unseen artists' tracks (a homonym group of 4), coloured by the true artist, per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    counts = np.bincount(labels)
    rich = artists[np.argsort(-counts[artists], kind="stable")][:8]
    group = np.random.default_rng(seed).choice(rich, size=min(4, len(rich)), replace=False)
    rows = np.flatnonzero(np.isin(labels, group))
    fig, axes = plt.subplots(1, len(embs), figsize=(3.4 * len(embs), 3.2), squeeze=False)
    for ax, (name, emb) in zip(axes[0], embs.items(), strict=True):
        xy = PCA(n_components=2, random_state=seed).fit_transform(emb[rows])
        for k, a in enumerate(group):
            own = labels[rows] == a
            ax.scatter(xy[own, 0], xy[own, 1], s=14, label=f"artist {k + 1}")
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
