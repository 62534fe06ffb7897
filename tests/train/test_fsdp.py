"""FSDP2 (`training.distributed: fsdp`) on 2 gloo processes on the CPU: the same training as one
process, a plain PEFT adapter at the end, and the base really sharded.

Tolerances are relative and far above what was measured (AMD EPYC, 2 cores: losses within
1.2e-7 relative, gradient norms within 1.5e-7, weights within 3e-6 absolute of one process):
the ranks' gradients are reduce-scattered in another summation order, so the runs differ by
float32 rounding, never by a CPU's particular numerics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train import FAST, log, tensors, toy_spec

from registry.train import train

try:  # FSDP2; without it (an old torch) the reason is printed with the skip
    from torch.distributed.fsdp import fully_shard  # noqa: F401

    NO_FSDP = None
except ImportError as exc:
    NO_FSDP = f"FSDP2 (torch.distributed.fsdp.fully_shard) unavailable in torch {torch.__version__}: {exc}"

pytestmark = pytest.mark.skipif(NO_FSDP is not None, reason=NO_FSDP or "")

# A global batch the 2 ranks split 2 + 1, unpacked, and 3 validation batches: the ranks have
# different numbers of micro-batches and must still run forward passes in lockstep.
UNEVEN = {
    "training.batch_size": 1,
    "training.grad_accum": 3,
    "training.packing": False,
    "training.val_examples": 3,
}


@pytest.mark.parametrize(
    ("method", "changes"), [("lora", {}), ("qlora", UNEVEN)], ids=["lora", "qlora-uneven"]
)
def test_fsdp_two_processes_match_one(toy_repo, tiny_model, fresh_cache, tmp_path, method, changes):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    spec = toy_spec(toy_repo, method=method, **FAST, **changes)
    fresh_cache("single")
    single = train(spec, tmp_path / "single", progress=False)
    fresh_cache("fsdp")
    sharded_spec = spec.with_overrides(**{"training.distributed": "fsdp"})
    sharded = train(sharded_spec, tmp_path / "fsdp", nproc=2, progress=False)
    m = sharded.metrics
    assert sharded.fingerprint == single.fingerprint  # how it ran is not what it trained
    assert m["distributed"] == "fsdp" and m["world_size"] == 2
    assert single.metrics["distributed"] is None
    assert m["tokens"] == single.metrics["tokens"]

    steps = list(zip(log(single.adapter_dir), log(sharded.adapter_dir), strict=True))
    assert len(steps) == 12
    for one, two in steps:
        assert two["loss"] == pytest.approx(one["loss"], rel=1e-3)
        assert two["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-3)
    assert steps[-1][1]["loss"] < steps[0][1]["loss"]  # and it trains
    assert m["final_val_loss"] == pytest.approx(single.metrics["final_val_loss"], rel=1e-3)

    # the adapter: gathered whole on rank 0, the same keys, shapes and (nearly) values
    a, b = tensors(single.adapter_dir), tensors(sharded.adapter_dir)
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-3, atol=1e-4)
    configs = [json.loads((r.adapter_dir / "adapter_config.json").read_text())
               for r in (single, sharded)]  # fmt: skip
    for c in configs:  # a set inside peft: its order follows the process's hash seed
        c["target_modules"] = sorted(c["target_modules"])
    assert configs[0] == configs[1]

    # a plain PEFT folder: PeftModel.from_pretrained loads exactly the saved tensors
    base = AutoModelForCausalLM.from_pretrained(tiny_model.path)
    model = PeftModel.from_pretrained(base, sharded.adapter_dir)
    loaded = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    assert len(loaded) == len(b) > 0
    for key, value in b.items():
        assert torch.equal(loaded[key.replace(".weight", ".default.weight")], value)


def test_fsdp_shards_the_base_and_untied_heads_match(tmp_path):
    """Each rank holds about half of the base; an untied embedding and head are units of their
    own, and the sharded model trains as the whole one (a Llama built in the script)."""
    script = Path(__file__).with_name("fsdp_untied.py")
    out = tmp_path / "result"
    env = {**os.environ, "FSDP_RESULT": str(out)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(script)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("result-*.json"))]
    assert len(results) == 2
    for r in results:
        assert r["units"] == 2 + 2 + 1  # 2 layers, embedding, head, root
        assert 0.45 < r["local_fraction"] < 0.55, r  # this rank's share of the base
        assert r["sharded_losses"] == pytest.approx(r["whole_losses"], rel=1e-4)
        assert r["max_weight_diff"] < 1e-5
