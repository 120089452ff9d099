"""report.md and the plots of an OLGA evaluation: the tables beside the paper's numbers, and the claims."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from evaluation import coherence, cold_start
from evaluation.report import fmt_ci, write_report

# The paper (MSD training, OLGA evaluation) and an independent implementation on this development data.
PAPER = {"raw": {"contrastive": (0.2387, 0.2264)}, "fmc": {"contrastive": (0.3560, 0.1666)}}
REFERENCE = {
    "raw": {"contrastive": 0.254, "single:tag": 0.233, "rand": 0.226, "pca": 0.224},
    "raw_gini": {"contrastive": 0.215, "rand": 0.197},
    "fmc": {"contrastive": 0.574, "single:tag": 0.574},
    "entropy": {"contrastive": 1.91, "pca": 1.33, "rand": 1.36},
}
BASELINES = ("single:audio", "single:tag", "single:cf", "pca", "rand")


def _table(setting: str, data: dict[str, Any]) -> list[str]:
    lines = [
        f"### {setting} setting ({data['n_universe']} artists)",
        "",
        "| method | nDCG@200 [95% CI] | Gini@200 | queries answered | indexed | reference nDCG |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    ref = REFERENCE.get(setting, {})
    for name, r in data["methods"].items():
        reference = f"{ref[name]:.3f}" if name in ref else ""
        lines.append(
            f"| {name} | {fmt_ci(r)} | {r['gini']:.3f} | {r['n_answered']} / {r['n_queries']} "
            f"| {r['n_indexed']} | {reference} |"
        )
    return [*lines, ""]


def alignment_section(data: dict[str, Any]) -> list[str]:
    """Distances in the shared space (our reading of the paper's Figure 5, labelled as such)."""
    if not data:
        return []
    lines = [
        "## Distances (our reading of the paper's Figure 5, kept beside the ECL analysis below)",
        "",
        "Cross-modal: cosine distance between two modalities of the same artist (intra) and of different "
        "artists (inter); Kendall's tau between popularity, log(plays + 1), and the intra distance.",
        "",
        "| modalities | artists | intra | inter | tau (popularity, intra) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for pair, r in data["cross_modal"].items():
        lines.append(
            f"| {pair} | {r['n_artists']} | {r['intra']:.3f} | {r['inter']:.3f} "
            f"| {r['kendall_tau_popularity_vs_intra']:+.3f} (p {r['kendall_p']:.1g}) |"
        )
    lines += [
        "",
        "Ground-truth clusters: cosine distance from an artist to its similar artists (intra) and to "
        "random artists (inter), for every method (raw setting).",
        "",
        "| method | intra | inter | intra / inter |",
        "| --- | --- | --- | --- |",
    ]
    for name, r in data["clusters"].items():
        lines.append(f"| {name} | {r['intra']:.3f} | {r['inter']:.3f} | {r['ratio']:.3f} |")
    tau = data.get("clusters_vs_ndcg", {})
    if tau:
        lines += [
            "",
            f"Kendall's tau between the methods' raw nDCG@200 and their separation (lower intra/inter): "
            f"{tau['kendall_tau']:+.3f} (p {tau['p_value']:.1g}, {tau['n_methods']} methods).",
        ]
    return [*lines, ""]


def claims(metrics: dict[str, Any]) -> list[str]:
    """A paragraph per claim of the paper, with the verdict measured here."""
    raw = metrics["settings"]["raw"]["methods"]
    fmc = metrics["settings"]["fmc"]["methods"]
    groups = metrics["modality_groups"]
    ours = raw["contrastive"]
    out = ["## The claims", ""]

    beaten = [b for b in BASELINES if ours["ndcg_ci"][0] > raw[b]["ndcg_ci"][1]]
    verdict = "holds" if len(beaten) == len(BASELINES) else "fails"
    out.append(
        f"**(a) In the raw setting the fused contrastive index beats every single modality, PCA and Rand "
        f"with non-overlapping 95% CIs: {verdict}.** Contrastive {fmt_ci(ours)}; "
        + "; ".join(f"{b} {fmt_ci(raw[b])}" for b in BASELINES)
        + "."
    )
    rivals = [b for b in BASELINES if b in raw]
    lowest = min(["contrastive", *rivals], key=lambda n: raw[n]["gini"])
    verdict_b = "holds" if lowest == "contrastive" else "fails"
    gini_line = (
        f"\n**(b) It has the lowest Gini@200 of the paper's methods: {verdict_b}.** "
        f"Contrastive {ours['gini']:.3f}; " + "; ".join(f"{b} {raw[b]['gini']:.3f}" for b in rivals) + "."
    )
    if "contrastive (cosine)" in raw and "rand (hub penalty)" in raw:
        gini_line += (
            f" Most of this comes from the product's hub penalty: ranked by plain cosine the model's Gini is "
            f"{raw['contrastive (cosine)']['gini']:.3f}, and the same penalty on Rand gives "
            f"{raw['rand (hub penalty)']['gini']:.3f} (nDCG {raw['rand (hub penalty)']['ndcg']:.3f})."
        )
    out.append(gini_line)
    top = max((n for n in groups if n in ("contrastive", *BASELINES)), key=lambda n: groups[n]["entropy"])
    out.append(
        "\n**(c) It has the highest modality-group entropy of the paper's methods: "
        f"{'holds' if top == 'contrastive' else 'fails'}.** "
        + "; ".join(f"{n} {g['entropy']:.3f}" for n, g in groups.items())
        + f" (maximum ln 7 = {np.log(7):.3f})."
    )
    if "contrastive_full_coverage" in raw:
        fc = raw["contrastive_full_coverage"]
        better = ours["ndcg_ci"][0] > fc["ndcg_ci"][1]
        out.append(
            f"\n**(d) Training on every artist with at least two modalities beats training on full-coverage "
            f"artists only: {'holds' if better else 'fails'}.** Raw setting: {fmt_ci(ours)} against "
            f"{fmt_ci(fc)}; FMC setting: {fmt_ci(fmc['contrastive'])} against "
            f"{fmt_ci(fmc['contrastive_full_coverage'])}."
        )
    versus = metrics.get("all_vs_pairs") or {}
    if versus:
        best = max(versus, key=lambda n: raw[n]["ndcg"])
        all_three = next(n for n in raw if n.startswith("contrastive[") and n.count("+") == 2)
        d = versus[best]
        verdict = "yes" if d["diff_ci"][0] > 0 else "a tie (the CI holds 0)" if d["diff_ci"][1] >= 0 else "no"
        out.append(
            f"\n**All three modalities at least as good as the best pair ({best}): {verdict}.** Raw nDCG@200 "
            f"{raw[all_three]['ndcg']:.4f} against "
            f"{raw[best]['ndcg']:.4f}; all three minus the pair, paired over the same queries: {d['diff']:+.4f} "
            f"(95% CI {d['diff_ci'][0]:+.4f} to {d['diff_ci'][1]:+.4f}). Every artist a method cannot represent "
            "still counts in its queries' ideal DCG (DESIGN), so a pair is not excused the audio-only artists."
        )
    tag = fmc["single:tag"]
    out.append(
        f"\n**FMC against tags alone:** contrastive {fmt_ci(fmc['contrastive'])}, tags {fmt_ci(tag)}: "
        + (
            "a clear win."
            if fmc["contrastive"]["ndcg_ci"][0] > tag["ndcg_ci"][1]
            else "no clear win (CIs overlap or tags lead)."
        )
    )
    return [*out, ""]


def _fusion(train: dict[str, Any]) -> str:
    """The training config's fusion (modality weights, completion) in words."""
    weights = ", ".join(f"{m} {w:g}" for m, w in train.get("modality_weights", {}).items()) or "all 1"
    completed = ", ".join(f"{s} (weight {w:g})" for s, w in train.get("completion", {}).items() if w) or "off"
    return (
        f"fusion weights {weights}; modality completion {completed} "
        "(`contrastive[x]` and the modality groups are fused as the product fuses)"
    )


def summarise(metrics: dict[str, Any]) -> str:
    """report.md."""
    cov = metrics["coverage"]
    train = metrics["training"]
    lines = [
        "# OLGA: cross-modal artist retrieval, reproduced",
        "",
        f"Data: {cov['artists']} OLGA artists, {cov['with_any_modality']} with at least one modality "
        f"(audio {cov['with_audio']}, CF {cov['with_cf']}, tags {cov['with_tag']}, all three {cov['with_all_three']}); "
        f"{cov['edges']} ground-truth edges; {cov['lastfm_users']} Last.fm users; {cov['tags_kept']} tags kept.",
        "",
        f"Model {metrics['model_version']}: trained on artists with >= {train['min_modalities']} modalities, "
        f"temperature {train['temperature']}, lr {train['lr']}, batch {train['batch_size']}, "
        f"best epoch {metrics['best_epoch']} of {metrics['epochs_run']} (early stopping on the validation loss); "
        f"{_fusion(train)}. "
        f"Featurizers: {metrics['featurize']}. Run time {metrics['seconds']:.0f} s.",
        "",
        "Metrics as in DESIGN.md: nDCG@200 (binary relevance, bootstrap 95% CI over queries, 1000 resamples), "
        "Gini@200 over universe artists. A single-modality method only queries and retrieves artists that have "
        "its modality; its unanswerable queries count 0. `contrastive[x+y]` is the model fed only those inputs.",
        "",
        "The paper (MSD training, OLGA evaluation): raw nDCG@200 0.2387, Gini 0.2264; FMC 0.3560, Gini 0.1666. "
        "Reference column: an independent implementation on this development data.",
        "",
        "## Retrieval",
        "",
    ]
    for setting, data in metrics["settings"].items():
        lines += _table(setting, data)
    lines += [
        "## Modality groups (top 5, FMC artists in 7 groups)",
        "",
        "| method | mean entropy (sd over splits) | reference |",
        "| --- | --- | --- |",
    ]
    for name, g in metrics["modality_groups"].items():
        ref = REFERENCE["entropy"].get(name)
        spread = f" ({g['entropy_sd']:.3f})" if "entropy_sd" in g else ""
        lines.append(f"| {name} | {g['entropy']:.3f}{spread} | {ref if ref is not None else ''} |")
    n_splits = next(iter(metrics["modality_groups"].values())).get("n_splits", 1)
    lines += [
        "",
        f"Groups: {', '.join(metrics['modality_group_names'])}; {metrics['modality_group_size']} artists each; "
        f"entropy and matrices averaged over {n_splits} random assignments of artists to groups.",
        "",
    ]
    pop = metrics.get("popularity", {})
    if pop:
        lines += [
            "## Popularity (20 bins of queries by log(plays + 1), least popular first)",
            "",
            "| method | " + " | ".join(str(i + 1) for i in range(len(pop["bin_mean_pop"]))) + " |",
            "| --- " * (len(pop["bin_mean_pop"]) + 1) + "|",
        ]
        for name in ("contrastive", *BASELINES):
            if name in pop["methods"]:
                lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in pop["methods"][name]) + " |")
        lines.append("")
    lines += alignment_section(metrics.get("alignment", {}))
    lines += coherence.report_lines(_ecl(metrics))
    lines += cold_start.report_lines(metrics.get("cold_start", {}))
    lines += claims(metrics)
    lines += [
        "Plots: `figure1_ndcg.png` (nDCG with CIs), `figure2_modality_groups.png` (share matrices), "
        "`figure4_popularity.png` (nDCG by popularity).",
        "",
    ]
    return "\n".join(lines)


def plots(out_dir: Path, metrics: dict[str, Any]) -> None:
    """Figures 1, 2 and 4 of the paper, as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for ax, (setting, data) in zip(axes, metrics["settings"].items(), strict=True):
        names = list(data["methods"])
        values = np.array([data["methods"][n]["ndcg"] for n in names])
        ci = np.array([data["methods"][n]["ndcg_ci"] for n in names])
        colors = [
            "tab:red" if n == "contrastive" else "tab:blue" if n.startswith("contrastive") else "tab:gray"
            for n in names
        ]
        ax.bar(range(len(names)), values, yerr=[values - ci[:, 0], ci[:, 1] - values], color=colors, capsize=3)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
        ax.set_title(f"nDCG@200, {setting} setting")
    fig.tight_layout()
    fig.savefig(out_dir / "figure1_ndcg.png", dpi=110)
    plt.close(fig)

    groups = metrics["modality_groups"]
    labels = metrics["modality_group_names"]
    cols = 4
    rows = -(-len(groups) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.ravel()[len(groups) :]:
        ax.axis("off")
    for ax, (name, g) in zip(axes.ravel(), groups.items(), strict=False):
        ax.imshow(np.array(g["matrix"]), vmin=0, vmax=1, cmap="viridis")
        ax.set_title(f"{name}\nentropy {g['entropy']:.2f}", fontsize=9)
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
    fig.supxlabel("group of the results")
    fig.supylabel("group of the query")
    fig.tight_layout()
    fig.savefig(out_dir / "figure2_modality_groups.png", dpi=110)
    plt.close(fig)

    pop = metrics.get("popularity", {})
    if pop:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for name in ("contrastive", *BASELINES):
            if name in pop["methods"]:
                ax.plot(range(1, len(pop["methods"][name]) + 1), pop["methods"][name], marker="o", ms=3, label=name)
        ax.set_xlabel("popularity bin of the query (1 = least popular)")
        ax.set_ylabel("nDCG@200")
        ax.legend(fontsize=8)
        ax.set_title("nDCG@200 by query popularity")
        fig.tight_layout()
        fig.savefig(out_dir / "figure4_popularity.png", dpi=110)
        plt.close(fig)


def write_olga_report(out_dir: Path, metrics: dict[str, Any]) -> None:
    """metrics.json, report.md (also as summary.md) and the plots."""
    text = summarise(metrics)
    write_report(out_dir, metrics, text)
    (out_dir / "report.md").write_text(text)
    plots(out_dir, metrics)
    coherence.plots(out_dir, _ecl(metrics))


def _ecl(metrics: dict[str, Any]) -> dict[str, Any]:
    """The coherence analysis as `evaluation.coherence.analysis` returns it (metrics.json splits off its tau)."""
    data = metrics.get("alignment", {})
    return {**data["ecl"], "kendall_tau": data["kendall_tau"]} if "ecl" in data else {}
