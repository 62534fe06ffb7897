"""Evaluation: the contenders' generations (generate.py), task metrics, regression suites, KL
drift, paired statistics, the gate, the report and the per-runner report cache.

`from registry.evaluate import evaluate` is the entry point (run.py); torch loads on first use.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "evaluate":
        from registry.evaluate.run import evaluate

        return evaluate
    raise AttributeError(f"module 'registry.evaluate' has no attribute {name!r}")
