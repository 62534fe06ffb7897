"""Adapter swap latency vs reloading base + adapter, measured in one run on the same files.

Two LoRA adapters (random, non-zero B so they really change the output) are saved as plain PEFT
folders for the base model. We time:
  swap    AdapterFleet.use(name) on a fleet that holds both (one base in memory);
  reload  load_base_model + PeftModel.from_pretrained;
and the forward pass after each, reported separately (both pay it).
Target: a switch >= 50x faster than a reload.

    python bench/adapter_swap.py [--model builtin:smollm2-135m-instruct] [--repeats 5]
    python bench/adapter_swap.py --quick        # tiny model, 3 repeats: a smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from benchkit import parse_args, ratio
from peft import LoraConfig, PeftModel, get_peft_model

from registry.spec.base_model import load_base_model, load_tokenizer, resolve_base_model
from registry.store.pull import PulledAdapter


def make_adapter(base_ref: str, folder: Path, seed: int) -> PulledAdapter:
    resolved = resolve_base_model(base_ref)
    model = get_peft_model(
        load_base_model(resolved),
        LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]),
    )
    torch.manual_seed(seed)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)
    model.save_pretrained(folder)
    (folder / "registry.json").write_text(
        json.dumps({"name": f"bench-{seed}", "base_model": resolved.provenance()})
    )
    return PulledAdapter(f"bench-{seed}", "1.0.0", "0" * 40, folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:smollm2-135m-instruct")
    parser.add_argument("--repeats", type=int, default=5)
    args = parse_args(parser, {"model": "builtin:tiny-llama", "repeats": 3})

    from registry.consume import AdapterFleet

    with tempfile.TemporaryDirectory() as tmp:
        adapters = [make_adapter(args.model, Path(tmp) / f"a{i}", i) for i in range(2)]
        tokenizer = load_tokenizer(resolve_base_model(args.model))
        inputs = tokenizer("Hello there, how are you?", return_tensors="pt")

        def forward(model) -> None:
            with torch.no_grad():
                model(**inputs)

        fleet = AdapterFleet(adapters)
        forward(fleet.model)
        swaps, forwards = [], []
        for i in range(args.repeats * 2):
            start = time.perf_counter()
            fleet.use(adapters[i % 2].name)
            swaps.append(time.perf_counter() - start)
            start = time.perf_counter()
            forward(fleet.model)
            forwards.append(time.perf_counter() - start)
        with torch.no_grad():
            fleet.use(adapters[0].name)
            a = fleet.model(**inputs).logits
            fleet.use(adapters[1].name)
            b = fleet.model(**inputs).logits
        outputs_differ = not torch.allclose(a, b)

        reloads = []
        resolved = resolve_base_model(args.model)
        for i in range(args.repeats):
            start = time.perf_counter()
            model = PeftModel.from_pretrained(load_base_model(resolved), adapters[i % 2].path)
            reloads.append(time.perf_counter() - start)
            del model

    swap, reload, fwd = (statistics.median(x) for x in (swaps, reloads, forwards))
    print(
        f"model: {args.model}; repeats: {args.repeats}; adapters change outputs: {outputs_differ}"
    )
    print("| operation | median s |")
    print("|---|---:|")
    print(f"| swap adapter (set_adapter) | {swap:.6f} |")
    print(f"| reload base + adapter | {reload:.3f} |")
    print(f"| one forward pass (paid by both) | {fwd:.3f} |")
    print(
        f"\nswap is {reload / swap:.0f}x faster than a reload (target >= 50x); "
        f"with the next forward pass included: {(reload + fwd) / (swap + fwd):.1f}x"
    )
    ratio(
        "adapter swap vs reload",
        f"{reload / swap:.0f}x",
        ">= 50x",
        f"AdapterFleet.use vs load_base_model + PeftModel.from_pretrained, median of "
        f"{args.repeats}; {args.model.removeprefix('builtin:')}",
    )


if __name__ == "__main__":
    main()
