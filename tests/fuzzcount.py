"""How many generated cases the fuzz tests ran, for the terminal summary (tests/conftest.py).

A module of its own so the tests and the conftest hook share one counter however pytest imports
conftest.
"""

from __future__ import annotations

from collections import Counter

CASES: Counter[str] = Counter()


def count(target: str) -> None:
    CASES[target] += 1
