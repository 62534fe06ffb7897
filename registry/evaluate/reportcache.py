"""Evaluation reports remembered by exactly what they measured.

An evaluation costs minutes of generation. `registry sync` on main evaluates the weights that
the pull request already evaluated; when both run against the same cache (one runner, or
`registry demo`) the PR's report is reused instead of generating everything again.

A report is reused only when all of these are identical:
- the weights (the adapter's fingerprint, which covers base model, data and training config),
- the eval config of the spec (metrics, gate, prompts, limit, ...),
- the version it was compared against (the previous version's fingerprint, or none).

Reports made with overrides (smoke runs) are never stored, so they can never be published.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from registry.artifact import REPORT_FILES, REPORT_JSON
from registry.core.cache import cache_dir
from registry.core.fs import atomic_dir


def report_key(
    fingerprint: str, eval_config: dict[str, Any], previous_fingerprint: str | None
) -> str:
    canonical = json.dumps(
        {"fingerprint": fingerprint, "eval": eval_config, "previous": previous_fingerprint},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _entry(key: str) -> Path:
    return cache_dir("reports", key)


def remember_report(
    report_dir: Path, report: dict[str, Any], previous_fingerprint: str | None
) -> None:
    """Store the report files of `report_dir` (written by `evaluate`) under their key."""
    if report.get("overrides") or not report.get("fingerprint"):
        return
    key = report_key(report["fingerprint"], report["eval_config"], previous_fingerprint)
    # A reader sees the whole entry or none of it; an equal entry already there is kept.
    with atomic_dir(_entry(key), replace=False) as staging:
        for name in REPORT_FILES:
            if (report_dir / name).is_file():
                shutil.copy2(report_dir / name, staging / name)


def recall_report(
    fingerprint: str,
    eval_config: dict[str, Any],
    previous_fingerprint: str | None,
    into: Path,
) -> dict[str, Any] | None:
    """Copy a remembered report for exactly these inputs into `into`; None when there is none."""
    entry = _entry(report_key(fingerprint, eval_config, previous_fingerprint))
    try:
        report = json.loads((entry / REPORT_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if report.get("fingerprint") != fingerprint or report.get("eval_config") != eval_config:
        return None  # a damaged or foreign entry: evaluate again
    into.mkdir(parents=True, exist_ok=True)
    for name in REPORT_FILES:
        if (entry / name).is_file():
            shutil.copy2(entry / name, into / name)
    return report
