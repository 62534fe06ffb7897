"""Paired statistics: McNemar by hand, bootstrap coverage by simulation, power estimates."""

from __future__ import annotations

import numpy as np
import pytest

from registry.evaluate.stats import (
    compare,
    mcnemar,
    min_detectable_effect,
    paired_bootstrap,
    power_warning,
)


def _pairs(only_a: int, only_b: int, both: int = 0, neither: int = 0) -> tuple[list, list]:
    a = [1.0] * only_a + [0.0] * only_b + [1.0] * both + [0.0] * neither
    b = [0.0] * only_a + [1.0] * only_b + [1.0] * both + [0.0] * neither
    return a, b


def test_mcnemar_exact_hand_computed() -> None:
    # 8 vs 2 discordant pairs: p = 2 * (C(10,0) + C(10,1) + C(10,2)) / 2^10 = 112 / 1024
    a, b = _pairs(8, 2, both=5, neither=5)
    assert mcnemar(a, b) == pytest.approx(112 / 1024)
    assert mcnemar(b, a) == pytest.approx(112 / 1024)  # symmetric
    assert mcnemar(*_pairs(5, 5)) == 1.0
    assert mcnemar(*_pairs(0, 0, both=3, neither=3)) == 1.0  # no discordant pair: no evidence


def test_mcnemar_continuity_corrected() -> None:
    # chi2 = (|30 - 10| - 1)^2 / 40 = 9.025; P(chi2_1 >= 9.025) = 0.0026631...
    assert mcnemar(*_pairs(30, 10), exact=False) == pytest.approx(0.0026631, rel=1e-4)


def test_mcnemar_rejects_non_binary() -> None:
    with pytest.raises(ValueError):
        mcnemar([0.5, 1.0], [0.0, 1.0])


def test_bootstrap_is_deterministic_and_brackets_the_mean() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.5, 1, 50).tolist(), rng.normal(0, 1, 50).tolist()
    first = paired_bootstrap(a, b, samples=1000, seed=7)
    assert first == paired_bootstrap(a, b, samples=1000, seed=7)
    delta, low, high, _ = first
    assert low < delta < high
    assert delta == pytest.approx(np.mean(np.subtract(a, b)))


@pytest.mark.parametrize("kind", ["normal", "binary"])
def test_bootstrap_interval_covers_true_delta_at_nominal_rate(kind: str) -> None:
    """200 simulated paired datasets: the 95% interval holds the true delta ~95% of the time."""
    rng = np.random.default_rng(2024)
    true_delta, covered, runs = 0.2, 0, 200  # measured here: 0.925 (normal), 0.945 (binary)
    for i in range(runs):
        if kind == "normal":
            skill = rng.normal(0, 1, 60)  # shared item difficulty: the reason to pair
            a = skill + true_delta + rng.normal(0, 0.5, 60)
            b = skill + rng.normal(0, 0.5, 60)
        else:  # correlated 0/1 outcomes: P(a)=0.7, P(b)=0.5
            u = rng.random(80)
            a = (u < 0.7).astype(float)
            b = (u < 0.5).astype(float)
            flip = rng.random(80) < 0.2  # independent noise on b; P(b) stays 0.5
            b[flip] = (rng.random(flip.sum()) < 0.5).astype(float)
        _, low, high, _ = paired_bootstrap(a.tolist(), b.tolist(), samples=1000, seed=i)
        covered += low <= true_delta <= high
    assert 0.90 <= covered / runs <= 0.99


def test_bootstrap_p_value_separates_effect_from_noise() -> None:
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 1, 100)
    _, _, _, p_null = paired_bootstrap((noise + 0.01).tolist(), noise[::-1].tolist(), seed=0)
    _, _, _, p_effect = paired_bootstrap((noise + 1.0).tolist(), noise.tolist(), seed=0)
    assert p_null > 0.2
    assert p_effect < 0.01


def test_identical_contenders_give_a_zero_width_interval() -> None:
    assert paired_bootstrap([1.0, 0.0, 1.0], [1.0, 0.0, 1.0]) == (0.0, 0.0, 0.0, 1.0)


def test_compare_picks_the_test_by_metric_kind() -> None:
    a, b = _pairs(6, 1, both=3)
    binary = compare("exact_match", "adapter", a, "base", b, binary=True)
    assert (binary.test, binary.n, binary.a, binary.b) == ("mcnemar", 10, "adapter", "base")
    assert binary.delta == pytest.approx(0.5)
    assert binary.p_value == pytest.approx(mcnemar(a, b))
    continuous = compare(
        "rouge_l", "adapter", [0.9, 0.8, 0.7], "base", [0.1, 0.2, 0.4], binary=False
    )
    assert continuous.test == "bootstrap"


def test_paired_samples_must_align() -> None:
    with pytest.raises(ValueError):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        paired_bootstrap([], [])


def test_min_detectable_effect() -> None:
    # (z_0.975 + z_0.8) * sd / sqrt(n) = (1.95996 + 0.84162) / 10
    assert min_detectable_effect(1.0, 100) == pytest.approx(0.280158, rel=1e-4)
    assert min_detectable_effect(1.0, 400) == pytest.approx(0.280158 / 2, rel=1e-4)


def test_power_warning_for_small_samples_only() -> None:
    a, b = _pairs(6, 0, both=5, neither=5)
    small = compare("exact_match", "adapter", a, "base", b, binary=True)
    note = power_warning(small, threshold=0.2, binary=True)
    assert note is not None and "n=16" in note
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, 500)
    large = compare("rouge_l", "adapter", (x + 0.3).tolist(), "base", x.tolist(), binary=False)
    assert power_warning(large, threshold=0.1, binary=False) is None
