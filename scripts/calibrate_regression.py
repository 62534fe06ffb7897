#!/usr/bin/env python3
"""How well the general regression rule separates a good adapter from a damaging one.

For a trained adapter (e.g. the demo's ticket-json, `runs/pr1`) this answers the shipped general
suite with the base model, the adapter as trained, and the same adapter with its LoRA B scaled
(x2 by default: the damaged adapter of docs/calibration.md), then reports:

- each one's paired accounting (broken / fixed / kept, delta, 95% CI, McNemar p) and the verdict
  of the rule `{suite: general, max_drop_vs_base: BOUND}` on the full suite;
- over R suites resampled from the items (bootstrap, same size), how often each passes;
- the suite size at which a drop of 5 points is detected with 80% power (McNemar, two-sided
  alpha 0.05), from the adapter's own discordance rate.

    python scripts/calibrate_regression.py --adapter runs/pr1 [--scale 2 --scale 3] [--resamples 20]

Generations are remembered in the registry cache (keyed by the adapter file's sha256 and the
scale), like every evaluation, so a rerun is cheap.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from statistics import NormalDist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from registry.core.fs import sha256_file  # noqa: E402
from registry.evaluate.regression import account  # noqa: E402
from registry.spec.suite import suite_path  # noqa: E402


def scaled_copy(adapter: Path, scale: float, out: Path) -> Path:
    """The adapter with every lora_B multiplied by `scale` (a stronger, more damaging delta)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(adapter, out, dirs_exist_ok=True)
    tensors = load_file(str(adapter / "adapter_model.safetensors"))
    tensors = {k: (v * scale if "lora_B" in k else v) for k, v in tensors.items()}
    save_file(tensors, str(out / "adapter_model.safetensors"))
    return out


def sample_size(p_discordant: float, drop: float = 0.05, power: float = 0.8) -> int:
    """Items needed for McNemar to detect a net drop `drop` (Connor 1987 approximation)."""
    z_a, z_b = NormalDist().inv_cdf(0.975), NormalDist().inv_cdf(power)
    p_d = max(p_discordant, drop + 1e-9)
    n = (z_a * math.sqrt(p_d) + z_b * math.sqrt(p_d - drop**2)) ** 2 / drop**2
    return math.ceil(n)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapter", type=Path, required=True)
    ap.add_argument("--base-model", default="builtin:smollm2-135m-instruct")
    ap.add_argument("--scale", type=float, action="append", help="LoRA B factor (repeatable; 2)")
    ap.add_argument("--bound", type=float, default=0.05, help="max_drop_vs_base of the rule")
    ap.add_argument("--resamples", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    scales = args.scale or [2.0]

    import torch
    from peft import PeftModel

    from registry.evaluate.regression import suite_answers
    from registry.spec.base_model import load_base_model, load_tokenizer, resolve_base_model
    from registry.spec.checks import check
    from registry.spec.suite import load_suite

    started = time.perf_counter()
    suite = load_suite(suite_path("general", None))
    items = suite.items
    resolved = resolve_base_model(args.base_model)
    tokenizer = load_tokenizer(resolved)
    torch.manual_seed(0)
    model = PeftModel.from_pretrained(
        load_base_model(resolved), str(args.adapter), adapter_name="x1"
    )
    tmp = Path(tempfile.mkdtemp(prefix="calibrate-"))
    scaled = [f"x{scale:g}" for scale in scales]
    for name, scale in zip(scaled, scales, strict=True):
        model.load_adapter(str(scaled_copy(args.adapter, scale, tmp / name)), adapter_name=name)
    model.eval()

    base_id = resolved.weights_id(None)
    adapter_sha = sha256_file(args.adapter / "adapter_model.safetensors")
    contenders = ["x1", *scaled]
    answers, ok = {}, {}
    for contender in ("base", *contenders):
        weights = base_id if contender == "base" else f"calibrate:{adapter_sha}:{contender}"
        answers[contender] = suite_answers(
            model,
            tokenizer,
            items,
            suite.max_new_tokens,
            contender=contender,
            weights_id=weights,
            batch_size=args.batch_size,
            progress=True,
            desc=contender,
        )
        ok[contender] = [check(it, a) for it, a in zip(items, answers[contender], strict=True)]

    out: dict = {"n": len(items), "bound": args.bound, "scales": scales, "adapters": {}}
    rng = random.Random(0)
    resampled = [[rng.randrange(len(items)) for _ in items] for _ in range(args.resamples)]
    for contender in contenders:
        full = account(
            "general",
            "general",
            items,
            answers["base"],
            answers[contender],
            ok["base"],
            ok[contender],
        )
        passes = 0
        for idx in resampled:
            r = account(
                "general",
                "general",
                [items[i] for i in idx],
                [answers["base"][i] for i in idx],
                [answers[contender][i] for i in idx],
                [ok["base"][i] for i in idx],
                [ok[contender][i] for i in idx],
            )
            passes += r.ci[0] >= -args.bound
        discordant = (full.broken + full.fixed) / full.n
        out["adapters"][contender] = {
            "base_correct": full.base_correct,
            "adapter_correct": full.adapter_correct,
            "broken": full.broken,
            "fixed": full.fixed,
            "kept": full.kept,
            "delta": full.delta,
            "ci": list(full.ci),
            "p": full.p,
            "passes_full_suite": full.ci[0] >= -args.bound,
            "resampled_pass_rate": passes / args.resamples,
            "discordant_rate": discordant,
            "n_for_80pct_power_at_5pt_drop": sample_size(discordant),
            "broken_examples": full.broken_items[:5],
        }
    out["wall_s"] = round(time.perf_counter() - started, 1)
    shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"\ngeneral suite: n={len(items)}, rule max_drop_vs_base {args.bound}, "
        f"{args.resamples} resampled suites, {out['wall_s']} s"
    )
    print(
        "| adapter | base right | adapter right | broken | fixed | Δ [95% CI] | p | full suite "
        "| resampled pass rate | n for 80% power (5-pt drop) |"
    )
    print("|---|---:|---:|---:|---:|---|---:|---|---:|---:|")
    for name, r in out["adapters"].items():
        label = "as trained" if name == "x1" else f"LoRA B {name}"
        print(
            f"| {label} | {r['base_correct']} | {r['adapter_correct']} | {r['broken']} | "
            f"{r['fixed']} | {r['delta']:+.3f} [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}] | "
            f"{r['p']:.2g} | {'pass' if r['passes_full_suite'] else 'FAIL'} | "
            f"{r['resampled_pass_rate']:.0%} | {r['n_for_80pct_power_at_5pt_drop']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
