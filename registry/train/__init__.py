"""Training: `train(spec)` (run.py) plans the run (planning.py: overrides, fingerprint), reuses
a cached adapter or fits one (loop.py, the step loop) and delivers it (output.py).

Beside the loop: how to run (options.py, declared once), the model (model.py), batching,
frozen-prefix states (prefix.py), the loss and LR shape (loss.py), validation, checkpoints,
and data parallel (distributed.py: collectives; launch.py: torchrun; worker.py: one rank).
`from registry.train import train` is the entry point; it imports torch on first use.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "train":
        from registry.train.run import train

        return train
    raise AttributeError(f"module 'registry.train' has no attribute {name!r}")
