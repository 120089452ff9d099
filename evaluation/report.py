"""Write a report: metrics.json and a readable summary.md side by side."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN and infinity become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_report(out_dir: Path, metrics: dict[str, Any], summary: str, name: str = "metrics") -> None:
    """Write `<name>.json` and `summary.md` into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(_clean(metrics), indent=2))
    (out_dir / "summary.md").write_text(summary)


def fmt_ci(result: dict[str, Any]) -> str:
    """'0.254 [0.249, 0.258]' for a method's nDCG."""
    lo, hi = result["ndcg_ci"]
    return f"{result['ndcg']:.3f} [{lo:.3f}, {hi:.3f}]"
