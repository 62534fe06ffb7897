"""The calibration tools: a scaled adapter copy is the same adapter at another strength, the
resampled pass rate reads the gate's own statistics, and the McNemar sample size delivers the
power it promises (checked by simulation, not by its formula)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from test_evaluate import _damage, _peft
from test_regression import outcomes

from registry.core.fs import sha256_file
from registry.evaluate.calibration import (
    WEIGHTS_FILE,
    mcnemar_sample_size,
    resampled_pass_rate,
    scaled_adapter,
)
from registry.evaluate.stats import mcnemar


@pytest.fixture
def adapter(tiny_model, tmp_path: Path) -> Path:
    _damage(_peft(tiny_model), scale=0.5).save_pretrained(tmp_path / "adapter")
    return tmp_path / "adapter"


def test_a_scaled_copy_multiplies_lora_b_only_and_leaves_the_original(adapter, tmp_path) -> None:
    from safetensors.torch import load_file

    before = sha256_file(adapter / WEIGHTS_FILE)
    out = scaled_adapter(adapter, 2.0, tmp_path / "x2")
    original, scaled = load_file(str(adapter / WEIGHTS_FILE)), load_file(str(out / WEIGHTS_FILE))
    assert original.keys() == scaled.keys() and any("lora_B" in k for k in scaled)
    for key, tensor in original.items():
        factor = 2.0 if "lora_B" in key else 1.0
        assert scaled[key].equal(tensor * factor), key
    assert (out / "adapter_config.json").read_bytes() == (
        adapter / "adapter_config.json"
    ).read_bytes()
    assert sha256_file(adapter / WEIGHTS_FILE) == before
    with pytest.raises(ValueError, match="copy"):
        scaled_adapter(adapter, 2.0, adapter)


def test_scale_zero_is_the_base_model_and_scale_one_the_adapter(adapter, tiny_model, tmp_path):
    import torch
    from peft import PeftModel

    from registry.spec.base_model import load_base_model

    ids = torch.tensor([[1, 5, 9, 13, 2]])
    with torch.no_grad():
        base = load_base_model(tiny_model).eval()(ids).logits
        as_trained = PeftModel.from_pretrained(load_base_model(tiny_model), str(adapter))
        trained = as_trained.eval()(ids).logits
        zero = PeftModel.from_pretrained(
            load_base_model(tiny_model), str(scaled_adapter(adapter, 0.0, tmp_path / "x0"))
        )
        one = PeftModel.from_pretrained(
            load_base_model(tiny_model), str(scaled_adapter(adapter, 1.0, tmp_path / "x1"))
        )
        assert not torch.allclose(trained, base)  # the fixture's adapter does change the model
        torch.testing.assert_close(zero.eval()(ids).logits, base)
        torch.testing.assert_close(one.eval()(ids).logits, trained)


def test_an_adapter_without_lora_b_is_refused(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    (tmp_path / "a").mkdir()
    save_file({"w": torch.ones(2)}, str(tmp_path / "a" / WEIGHTS_FILE))
    with pytest.raises(ValueError, match="no lora_B"):
        scaled_adapter(tmp_path / "a", 2.0, tmp_path / "b")


def test_the_resampled_pass_rate_separates_harmless_from_damaging() -> None:
    same = [True] * 150 + [False] * 150
    assert resampled_pass_rate(same, same, max_drop=0.05, resamples=10) == 1.0
    base, harmful = outcomes(300, broken=60, fixed=5, both_wrong=60)  # a net drop of 18 points
    assert resampled_pass_rate(base, harmful, max_drop=0.05, resamples=10) == 0.0
    base, churn = outcomes(300, broken=15, fixed=15, both_wrong=60)  # churn, no net change
    assert resampled_pass_rate(base, churn, max_drop=0.05, resamples=20) >= 0.8
    with pytest.raises(ValueError):
        resampled_pass_rate([True], [True, False], max_drop=0.05)


def test_the_mcnemar_sample_size_gives_the_power_it_promises() -> None:
    p_discordant, drop = 0.2, 0.05
    n = mcnemar_sample_size(p_discordant, drop, power=0.8)
    assert mcnemar_sample_size(0.3, drop) > n > mcnemar_sample_size(0.2, 0.1)
    # Simulate suites of n items with that discordance and net drop: McNemar must reject at
    # 0.05 in about 80% of them (300 trials: a binomial sd of 2.3 points).
    rng = random.Random(0)
    p_broken, p_fixed = (p_discordant + drop) / 2, (p_discordant - drop) / 2
    rejected = 0
    for _ in range(300):
        base, adapter = [], []
        for _ in range(n):
            u = rng.random()
            b, a = (
                (1.0, 0.0) if u < p_broken else (0.0, 1.0) if u < p_broken + p_fixed else (1.0, 1.0)
            )
            base.append(b)
            adapter.append(a)
        rejected += mcnemar(adapter, base) < 0.05
    assert 0.72 <= rejected / 300 <= 0.88, (n, rejected)
