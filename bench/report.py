"""bench.json and its readable summary, bench.md."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from bench import compare

TARGETS = {  # name -> (what is compared, at least)
    "get_similar_k10": ("api.get_similar_k10 ratio_to_ceiling, every concurrency", 0.8),
    "post_similar_k10": ("api.post_similar_k10 ratio_to_ceiling, every concurrency", 0.25),
    "encode_fuse": ("build.encode_fuse_artists_per_s", 30_000),
}


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if "model name" in ln), "")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 if hasattr(os, "sysconf") else 0
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def targets(bench: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target of the issue: the measured value (the worst over concurrencies) and whether it is met."""
    out: dict[str, dict[str, Any]] = {}
    by_server = bench.get("api_by_server") or {"": bench.get("api", {})}
    for number, (server, api) in enumerate(by_server.items()):
        for case in ("get_similar_k10", "post_similar_k10"):
            if case in api:
                value = min(entry["ratio_to_ceiling"] for entry in api[case].values())
                name = case if number == 0 else f"{case} ({server})"  # the first server's keep their names
                out[name] = {"measured": value, "target": TARGETS[case][1], "met": value >= TARGETS[case][1]}
    if "build" in bench:
        value = bench["build"]["encode_fuse_artists_per_s"]
        out["encode_fuse"] = {"measured": value, "target": TARGETS["encode_fuse"][1], "met": value >= 30_000}
    if "compare" in bench and bench["compare"]["items"] >= compare.ITEMS:
        value = bench["compare"]["wall_s"]
        out["compare_100k_s"] = {"measured": value, "target": compare.TARGET_S, "met": value <= compare.TARGET_S}
    if "scale" in bench and bench["scale"].get("n_artists", 0) >= 1_000_000:
        scale = bench["scale"]
        out["scale_build_s"] = {"measured": scale["build_s"], "target": 600, "met": scale["build_s"] <= 600}
        out["scale_recall"] = {
            "measured": scale["recall_at_200"],
            "target": 0.95,
            "met": (scale["recall_at_200"] or 0) >= 0.95,
        }
        out["scale_p50_ms"] = {"measured": scale["p50_ms"], "target": 5.0, "met": scale["p50_ms"] <= 5.0}
    return out


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _why(bench: dict[str, Any]) -> list[str]:
    """Each case's server CPU per request against the ceiling's: the throughput ratio's cause."""
    api = bench["api"]
    if "ceiling_bare" not in api:
        return []
    level = max(api["ceiling_bare"], key=lambda name: int(name[1:]))
    ceiling = api["ceiling_bare"][level].get("server_cpu_us")
    if not ceiling:
        return []
    lines = [
        f"Server CPU per request at {level} (the server is one process; when it is the limit, its",
        "throughput is the inverse of this cost, and the ratio to the ceiling is the ratio of costs):",
        "",
    ]
    for case, levels in api.items():
        cost = levels[level].get("server_cpu_us")
        if cost:
            lines.append(f"- {case}: {cost:.0f} us ({cost / ceiling:.1f} x the ceiling's {ceiling:.0f} us)")
    profile = bench.get("profile_us", {})
    if profile:
        batched = next((k for k in profile if k.startswith("asgi.post_similar_k10_together")), "")
        lines += [
            "",
            f"In process, one cold-start POST alone: {profile.get('post.parse_validate', 0):.0f} us parsing and "
            f"validating the body, {profile.get('post.tag_lookup', 0):.0f} us of vocabulary look-ups, "
            f"{profile.get('post.encode_fuse', 0):.0f} us in the encoders and fusion, "
            f"{profile.get('post.search_k10', 0):.0f} us searching; "
            f"{profile.get('asgi.post_similar_k10', 0):.0f} us through the app. Per query in a batch "
            f"(`{batched}`): {profile.get(batched, 0):.0f} us through the app. "
            f"The front layer costs {profile.get('asgi.front', 0):.1f} us per request over the bare app "
            f"({profile.get('asgi.bare', 0):.1f} us).",
        ]
    return [*lines, ""]


def summary(bench: dict[str, Any]) -> str:
    """bench.md: the tables, the targets and where the time goes."""
    lines = ["# cmar benchmark", "", f"Command: `{bench['command']}`", ""]
    m = bench["machine"]
    lines += [f"Machine: {m['cpus']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}.", ""]
    if "targets" in bench:
        lines += ["## Targets", ""]
        rows = [
            [name, t["measured"], t["target"], "yes" if t["met"] else "**no**"] for name, t in bench["targets"].items()
        ]
        lines += [*_table(["target", "measured", "goal", "met"], rows), ""]
    if "api" in bench:
        lines += ["## API under load", "", bench.get("api_setup", ""), ""]
        rows = [
            [case, level, round(e["rps"]), _ms(e["p50_ms"]), _ms(e["p99_ms"]), e["errors"], e["ratio_to_ceiling"]]
            for case, levels in bench["api"].items()
            for level, e in levels.items()
        ]
        lines += _table(["case", "concurrency", "req/s", "p50 ms", "p99 ms", "errors", "ratio to ceiling"], rows)
        lines += [""]
    for server, api in list(bench.get("api_by_server", {}).items())[1:]:
        lines += [f"The same cases served by {server}, against the bare app on {server}:", ""]
        rows = [
            [case, level, round(e["rps"]), _ms(e["p50_ms"]), _ms(e["p99_ms"]), e["errors"], e["ratio_to_ceiling"]]
            for case, levels in api.items()
            for level, e in levels.items()
        ]
        lines += [*_table(["case", "concurrency", "req/s", "p50 ms", "p99 ms", "errors", "ratio to ceiling"], rows), ""]
    if "api" in bench:
        lines += _why(bench)
    if "profile_us" in bench:
        lines += ["## Where a request's time goes (microseconds per call, in process)", ""]
        lines += [*_table(["stage", "us"], [[k, v] for k, v in bench["profile_us"].items()]), ""]
    for section, title in (("build", "Index build"), ("build_demo", "Index build (demo catalogue)")):
        if section in bench:
            lines += [f"## {title}", "", "```json", json.dumps(bench[section], indent=1), "```", ""]
    if "training" in bench:
        rows = [
            [name, t["n_train"], t["epochs"], t["s_per_epoch"], t["train_s"], t["peak_rss_mb"]]
            for name, t in bench["training"].items()
        ]
        lines += ["## Training", ""]
        lines += [*_table(["catalogue", "training artists", "epochs", "s/epoch", "total s", "peak MiB"], rows), ""]
    if "compare" in bench:
        c = bench["compare"]
        lines += ["## cmar compare", "", f"`{c['command']} --n {' '.join(map(str, c['cutoffs']))}`: two spaces of "
                  f"{c['items']:,} items x {c['dim']} ({c['metric']}) in {c['wall_s']} s, peak {c['peak_rss_mb']} MiB; "
                  + ", ".join(f"S_{n} = {v}" for n, v in c["S"].items()) + ".", ""]  # fmt: skip
    for section, title in (("scale", "Scale"), ("peer", "Peer engine, same vectors and queries")):
        if section in bench:
            lines += [f"## {title}", "", "```json", json.dumps(bench[section], indent=1), "```", ""]
    return "\n".join(lines) + "\n"


def write(out: Path, bench: dict[str, Any]) -> None:
    """Write bench.json and bench.md into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    bench["targets"] = targets(bench)
    (out / "bench.json").write_text(json.dumps(bench, indent=1))
    (out / "bench.md").write_text(summary(bench))
