"""Training: options, the step loop (loop.py), batching, frozen-prefix caching, the loss,
checkpoints, and distributed data parallel (collectives, launcher and per-rank worker).

`from registry.train import train` is the entry point; it imports torch on first use.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "train":
        from registry.train.loop import train

        return train
    raise AttributeError(f"module 'registry.train' has no attribute {name!r}")
