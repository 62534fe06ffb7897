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

    python scripts/calibrate_regression.py --adapter runs/pr1 [--scale 2 --scale 3] [--resamples 20] \
        [--json out.json] [--plot out.png]

Generations are remembered in the registry cache (keyed by the adapter file's sha256 and the
scale), like every evaluation, so a rerun is cheap.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from registry.core.fs import sha256_file  # noqa: E402
from registry.evaluate.calibration import (  # noqa: E402
    mcnemar_sample_size,
    resampled_pass_rate,
    scaled_adapter,
)
from registry.evaluate.gate import within_max_drop  # noqa: E402
from registry.evaluate.regression import account  # noqa: E402
from registry.spec.suite import suite_path  # noqa: E402


def contender_name(scale: float) -> str:
    """A PEFT adapter name for a scale (module names cannot hold a dot: 1.5 -> x1_5)."""
    return "x" + f"{scale:g}".replace(".", "_")


def render_plot(out: dict, path: Path) -> None:
    """Delta with its 95% interval per LoRA B scale, the rule's bound, and the resampled pass
    rate written over each point: where the interval crosses the bound the verdict is luck."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(out["adapters"].values(), key=lambda r: r["scale"])
    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    for r in rows:
        colour = "#2e7d32" if r["passes_full_suite"] else "#c62828"
        low, high = r["ci"]
        ax.errorbar(
            r["scale"],
            r["delta"],
            yerr=[[r["delta"] - low], [high - r["delta"]]],
            fmt="o",
            color=colour,
            capsize=4,
        )
        ax.annotate(
            f"{r['broken']} broken / {r['fixed']} fixed\npasses {r['resampled_pass_rate']:.0%}",
            (r["scale"], high),
            xytext=(0, 6),
            textcoords="offset points",
            ha="center",
            fontsize=7,
        )
    ax.axhline(-out["bound"], color="#c62828", linestyle="--", linewidth=1)
    ax.axhline(0.0, color="#9e9e9e", linewidth=1)
    ax.set_xlabel("LoRA B scale (1 = the adapter as trained)", fontsize=8)
    ax.set_ylabel("accuracy change vs base, 95% paired CI", fontsize=8)
    ax.set_title(
        f"general suite, n={out['n']}: the rule passes when the interval's lower end is above\n"
        f"the dashed line ({-out['bound']:+.2f}); % = share of {out['resamples']} resampled "
        "suites on which it passes",
        fontsize=8,
    )
    scales = [r["scale"] for r in rows]
    ax.set_xlim(min(scales) - 0.35, max(scales) + 0.35)
    ax.set_ylim(top=max(r["ci"][1] for r in rows) + 0.08)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapter", type=Path, required=True)
    ap.add_argument("--base-model", default="builtin:smollm2-135m-instruct")
    ap.add_argument("--scale", type=float, action="append", help="LoRA B factor (repeatable; 2)")
    ap.add_argument("--bound", type=float, default=0.05, help="max_drop_vs_base of the rule")
    ap.add_argument("--resamples", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--plot", type=Path, help="also draw them here (PNG)")
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
    scaled = [contender_name(scale) for scale in scales]
    for name, scale in zip(scaled, scales, strict=True):
        model.load_adapter(str(scaled_adapter(args.adapter, scale, tmp / name)), adapter_name=name)
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

    out: dict = {
        "n": len(items),
        "bound": args.bound,
        "resamples": args.resamples,
        "scales": scales,
        "adapters": {},
    }
    for contender, scale in zip(contenders, [1.0, *scales], strict=True):
        full = account(
            "general",
            "general",
            items,
            answers["base"],
            answers[contender],
            ok["base"],
            ok[contender],
        )
        pass_rate = resampled_pass_rate(
            ok["base"], ok[contender], max_drop=args.bound, resamples=args.resamples
        )
        discordant = (full.broken + full.fixed) / full.n
        out["adapters"][contender] = {
            "scale": scale,
            "base_correct": full.base_correct,
            "adapter_correct": full.adapter_correct,
            "broken": full.broken,
            "fixed": full.fixed,
            "kept": full.kept,
            "delta": full.delta,
            "ci": list(full.ci),
            "p": full.p,
            "passes_full_suite": within_max_drop(full.ci[0], args.bound),
            "resampled_pass_rate": pass_rate,
            "discordant_rate": discordant,
            "n_for_80pct_power_at_5pt_drop": mcnemar_sample_size(discordant),
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
        label = "as trained" if name == "x1" else f"LoRA B x{r['scale']:g}"
        print(
            f"| {label} | {r['base_correct']} | {r['adapter_correct']} | {r['broken']} | "
            f"{r['fixed']} | {r['delta']:+.3f} [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}] | "
            f"{r['p']:.2g} | {'pass' if r['passes_full_suite'] else 'FAIL'} | "
            f"{r['resampled_pass_rate']:.0%} | {r['n_for_80pct_power_at_5pt_drop']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    if args.plot:
        render_plot(out, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
