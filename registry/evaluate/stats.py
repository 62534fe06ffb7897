"""Paired statistics for comparing two contenders scored on the same eval items.

Why paired: both contenders answer the same items, and item difficulty varies far more than the
difference between models. Resampling item-level *differences* removes the difficulty variance,
so the interval on the mean delta is much narrower than comparing two independent means.

- Interval: percentile bootstrap of the mean paired difference, seeded (same data -> same
  report). It is accurate to about the nominal level from n ~ 30 and under-covers below that,
  which is why small samples get a warning.
- p-value: exact McNemar (binomial on the discordant pairs) for 0/1 metrics, the test that uses
  exactly the information that changes between the models; for continuous metrics, the
  null-shifted paired bootstrap p-value (the bootstrap distribution recentred on 0).
- Power: minimum detectable effect at 80% power, so a gate that cannot pass at this sample size
  says so instead of failing mysteriously.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from statistics import NormalDist

import numpy as np

SMALL_SAMPLE = 30  # below this, intervals are wide and the percentile bootstrap under-covers
_EXACT_MCNEMAR_MAX = (
    1000  # exact binomial sums stay cheap up to here; beyond, chi-square is exact enough
)


@dataclass(frozen=True)
class Comparison:
    """`a` minus `b` on one metric, over the same n items."""

    metric: str
    a: str
    b: str
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    test: str  # "mcnemar" | "bootstrap"
    sd: float  # standard deviation of the per-item differences (for power estimates)

    def to_json(self) -> dict:
        return asdict(self)


def _as_pair(a: list[float], b: list[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired samples must have the same length, got {x.shape} and {y.shape}")
    if len(x) == 0:
        raise ValueError("paired samples are empty")
    return x, y


def bootstrap_means(diffs: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """Means of `samples` resamples (with replacement) of diffs; chunked to bound memory."""
    rng = np.random.default_rng(seed)
    n = len(diffs)
    chunk = max(1, 2_000_000 // n)
    out = np.empty(samples)
    for start in range(0, samples, chunk):
        stop = min(samples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = diffs[idx].mean(axis=1)
    return out


def paired_bootstrap(
    a: list[float], b: list[float], *, samples: int = 2000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float, float, float]:
    """(mean delta, CI low, CI high, two-sided p) for mean(a - b), percentile bootstrap."""
    x, y = _as_pair(a, b)
    diffs = x - y
    delta = float(diffs.mean())
    if np.all(diffs == diffs[0]):
        return delta, delta, delta, 1.0 if delta == 0 else 0.0
    means = bootstrap_means(diffs, samples, seed)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    # Null-shifted p: how often a resample strays from the observed mean by at least |delta|.
    extreme = np.count_nonzero(np.abs(means - delta) >= abs(delta))
    p = (extreme + 1) / (samples + 1)
    return delta, float(low), float(high), float(min(1.0, p))


def mcnemar(a: list[float], b: list[float], *, exact: bool | None = None) -> float:
    """Two-sided McNemar p-value for paired 0/1 outcomes.

    Only discordant pairs carry information: b01 = items a gets right and b wrong, b10 the
    reverse. Exact: 2 * P(Binomial(b01 + b10, 1/2) <= min). Otherwise the continuity-corrected
    chi-square (|b01 - b10| - 1)^2 / (b01 + b10) with 1 degree of freedom.
    """
    x, y = _as_pair(a, b)
    if not (np.isin(x, (0.0, 1.0)).all() and np.isin(y, (0.0, 1.0)).all()):
        raise ValueError("McNemar needs 0/1 outcomes")
    only_a = int(np.count_nonzero((x == 1) & (y == 0)))
    only_b = int(np.count_nonzero((x == 0) & (y == 1)))
    n = only_a + only_b
    if n == 0:
        return 1.0
    if exact is None:
        exact = n <= _EXACT_MCNEMAR_MAX
    if exact:
        tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1))
        return float(min(Fraction(1), Fraction(2 * tail, 2**n)))
    chi2 = (abs(only_a - only_b) - 1) ** 2 / n
    return float(math.erfc(math.sqrt(chi2 / 2)))


def compare(
    metric: str,
    a_name: str,
    a: list[float],
    b_name: str,
    b: list[float],
    *,
    binary: bool,
    samples: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Paired comparison of contender a against b on one metric (delta = a - b)."""
    delta, low, high, p_boot = paired_bootstrap(a, b, samples=samples, seed=seed)
    x, y = _as_pair(a, b)
    sd = float(np.std(x - y, ddof=1)) if len(x) > 1 else 0.0
    if binary:
        return Comparison(
            metric, a_name, b_name, delta, low, high, mcnemar(a, b), len(x), "mcnemar", sd
        )
    return Comparison(metric, a_name, b_name, delta, low, high, p_boot, len(x), "bootstrap", sd)


def min_detectable_effect(sd: float, n: int, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true mean difference a two-sided test at `alpha` detects with `power`.

    MDE = (z_{1-alpha/2} + z_{power}) * sd / sqrt(n): about 2.8 standard errors.
    """
    if n < 2:
        return math.inf
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return z * sd / math.sqrt(n)


def planning_sd(comparison: Comparison, binary: bool) -> float:
    """The per-item sd used for power estimates.

    For 0/1 metrics with few discordant pairs the observed sd is unreliably small (zero when the
    models agree everywhere), so it is floored at the sd of a 10%-discordant comparison.
    """
    if binary:
        return max(comparison.sd, math.sqrt(0.1))
    return comparison.sd


def power_warning(
    comparison: Comparison, *, threshold: float, binary: bool, higher_better: bool = True
) -> str | None:
    """A warning when a delta rule with this threshold is unlikely to pass at this sample size.

    A delta rule passes when the lower 95% bound clears the threshold, i.e. when the true gain is
    about threshold + MDE. If that exceeds what the metric can move (or n is small), say so.
    """
    sd = planning_sd(comparison, binary)
    mde = min_detectable_effect(sd, comparison.n)
    needed = threshold + mde
    vs = comparison.b.replace("_", " ")
    if comparison.n < SMALL_SAMPLE or (binary and needed > 1.0):
        direction = "gain" if higher_better else "drop"
        return (
            f"{comparison.metric} vs {vs}: n={comparison.n} items; to clear a threshold of "
            f"{threshold:g} with 80% power the true {direction} must be about {needed:.3g} "
            f"(minimum detectable effect {mde:.3g}); add eval items for a sharper gate"
        )
    return None
