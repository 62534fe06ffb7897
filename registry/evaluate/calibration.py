"""Calibrating a regression rule: does it fail an adapter that breaks general answers and pass
one that does not? The tools behind docs/calibration.md, callable from Python
(scripts/calibrate_regression.py is their command line, tests/calibration/ their CI check).

- `scaled_adapter`: a copy of a LoRA adapter folder with every `lora_B` multiplied by a factor.
  The adapter's update is B·A, so the factor scales the change it makes to the base model: 0 is
  the base itself, 1 the adapter as trained, 2 twice its change (a stronger, usually more
  damaging adapter that loads exactly like the original).
- `resampled_pass_rate`: over R suites resampled from the items (bootstrap, same size), how
  often the rule `max_drop_vs_base` passes: how much a verdict depends on which items a suite
  happened to hold.
- `mcnemar_sample_size`: the suite size at which a given net drop is detected with a given
  power, from the discordance (the share of items whose verdict changed).

Invariant: the adapter that is read is never modified; copies go where the caller says.
"""

from __future__ import annotations

import math
import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from statistics import NormalDist

from registry.evaluate.gate import within_max_drop
from registry.evaluate.generate import BASE
from registry.evaluate.stats import compare

WEIGHTS_FILE = "adapter_model.safetensors"


def scaled_adapter(adapter: Path, scale: float, out: Path) -> Path:
    """Copy the adapter folder `adapter` to `out` with every lora_B tensor times `scale`.

    Only LoRA B moves (DoRA magnitudes and any saved embeddings stay as trained), so the
    copy differs from the original in the strength of its update and nothing else.
    """
    from safetensors.torch import load_file, save_file

    adapter, out = Path(adapter), Path(out)
    if adapter.resolve() == out.resolve():
        raise ValueError("scaled_adapter writes a copy; out must not be the adapter's folder")
    tensors = load_file(str(adapter / WEIGHTS_FILE))
    if not any("lora_B" in key for key in tensors):
        raise ValueError(f"{adapter / WEIGHTS_FILE} has no lora_B tensors to scale")
    shutil.copytree(adapter, out, dirs_exist_ok=True)
    scaled = {k: (v * scale if "lora_B" in k else v) for k, v in tensors.items()}
    save_file(scaled, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    return out


def resampled_pass_rate(
    base_ok: Sequence[bool],
    adapter_ok: Sequence[bool],
    *,
    max_drop: float,
    resamples: int = 20,
    seed: int = 0,
) -> float:
    """The share of `resamples` bootstrap suites on which `max_drop_vs_base: max_drop` passes.

    Each resampled suite draws len(base_ok) items with replacement and gets the gate's own
    statistics (stats.compare: paired bootstrap interval) and test (gate.within_max_drop), so a
    pass here is a pass there.
    """
    n = len(base_ok)
    if n == 0 or n != len(adapter_ok):
        raise ValueError("base_ok and adapter_ok must be non-empty and the same length")
    rng = random.Random(seed)
    passes = 0
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        c = compare(
            "regression",
            "adapter",
            [float(adapter_ok[i]) for i in idx],
            BASE,
            [float(base_ok[i]) for i in idx],
            binary=True,
            seed=seed,
        )
        passes += within_max_drop(c.ci_low, max_drop)
    return passes / resamples


def mcnemar_sample_size(p_discordant: float, drop: float = 0.05, power: float = 0.8) -> int:
    """Items needed for McNemar (two-sided 0.05) to detect a net drop `drop` with `power`.

    Connor's (1987) approximation. A net drop of d needs at least d discordant items per item,
    so the discordance is floored at `drop`.
    """
    if not 0 < drop < 1:
        raise ValueError("drop must be in (0, 1)")
    z_a, z_b = NormalDist().inv_cdf(0.975), NormalDist().inv_cdf(power)
    p_d = max(p_discordant, drop + 1e-9)
    return math.ceil((z_a * math.sqrt(p_d) + z_b * math.sqrt(p_d - drop**2)) ** 2 / drop**2)
