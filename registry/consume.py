"""The consumer side in Python: one base model, many adapters by reference, fast switching.

    from registry.consume import load
    fleet = load(["ticket-json@^1.2", "support-tone@latest"], store="file:///srv/adapters")
    fleet.use("ticket-json")
    print(fleet.generate([{"role": "user", "content": "My order #123 never arrived"}]))

The base is loaded once; each adapter is a few MB of LoRA weights attached with PEFT, and a
switch only changes which LoRA matrices are active (bench/adapter_swap.py measures it against
reloading base + adapter). `export_merged` folds an adapter into the base for serving engines
without LoRA support and checks the merged model answers exactly like the adapter.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from registry.errors import InvalidInput
from registry.store import Store, open_store
from registry.store.pull import PulledAdapter, pull


def _adapter_key(pulled: PulledAdapter) -> str:
    # PEFT adapter names become module-dict keys: no dots allowed.
    return pulled.name


def _base_of(pulled: PulledAdapter) -> dict[str, Any]:
    return json.loads((pulled.path / "registry.json").read_text())["base_model"]


class AdapterFleet:
    """A base model with several adapters attached; `use` switches the active one."""

    def __init__(self, pulled: list[PulledAdapter], device: str | None = None) -> None:
        from peft import PeftModel

        from registry.spec.base_model import load_base_model, load_tokenizer, resolve_base_model

        if not pulled:
            raise InvalidInput("load() needs at least one adapter reference")
        bases = {_base_of(p)["sha256"] for p in pulled}
        if len(bases) != 1:
            raise InvalidInput("adapters in one fleet must share one base model (same sha256)")
        base_info = _base_of(pulled[0])
        resolved = resolve_base_model(base_info["ref"])
        if resolved.sha256 != base_info["sha256"]:
            raise InvalidInput(
                f"base model {base_info['ref']} here has sha256 {resolved.sha256[:12]}, the "
                f"adapters were trained on {base_info['sha256'][:12]}"
            )
        self.tokenizer = load_tokenizer(resolved)
        self.adapters = {_adapter_key(p): p for p in pulled}
        first, *rest = pulled
        base = load_base_model(resolved, device=device)
        base.config.use_cache = True
        self.model = PeftModel.from_pretrained(base, first.path, adapter_name=_adapter_key(first))
        for p in rest:
            self.model.load_adapter(p.path, adapter_name=_adapter_key(p))
        self.model.eval()
        from peft.tuners.tuners_utils import BaseTunerLayer

        # PeftModel.set_adapter walks every module of the model twice per switch (~10 ms on
        # SmolLM2). The adapter layers never change after loading: find them once here.
        self._adapter_layers = [m for m in self.model.modules() if isinstance(m, BaseTunerLayer)]
        self.active = ""
        self.use(_adapter_key(first))

    def use(self, name: str) -> None:
        """Make `name` the active adapter: a pointer switch in each adapter layer, no copy."""
        if name not in self.adapters:
            raise InvalidInput(f"adapter {name!r} is not loaded; loaded: {sorted(self.adapters)}")
        for layer in self._adapter_layers:
            layer.set_adapter(name, inference_mode=True)
        self.model.active_adapter = name
        self.model.base_model.active_adapter = name
        self.active = name

    def generate(self, messages: list[dict[str, str]] | str, max_new_tokens: int = 128) -> str:
        """Greedy answer of the active adapter to chat messages (or a raw prompt string)."""
        import torch

        prompt = (
            messages
            if isinstance(messages, str)
            else self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        )
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        inputs = inputs.to(self.model.device)
        with torch.no_grad():
            out = self.model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        return self.tokenizer.decode(
            out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True
        ).strip()


def load(
    refs: str | list[str], store: Store | str | None = None, device: str | None = None
) -> AdapterFleet:
    """Pull (verified) and attach adapters to one shared base model."""
    store = store if store is not None and not isinstance(store, str) else open_store(store)
    refs = [refs] if isinstance(refs, str) else list(refs)
    return AdapterFleet([pull(ref, store) for ref in refs], device=device)


def export_merged(
    ref: str,
    out: Path,
    store: Store | str | None = None,
    check_prompts: list[str] | None = None,
) -> dict[str, Any]:
    """Merge an adapter into its unquantized base (qlora adapters too) and save safetensors.

    Checks that the merged model's greedy outputs equal the adapter's on a few prompts; returns
    {"path", "checked", "matches"}. Raises when they differ.
    """
    fleet = load(ref, store)
    prompts = check_prompts or [
        "Write one sentence about the sea.",
        "List three prime numbers.",
        "My order #4417 has not arrived and I am upset.",
    ]
    expected = [fleet.generate([{"role": "user", "content": p}], 32) for p in prompts]
    merged = fleet.model.merge_and_unload()
    fleet.model = merged  # the fleet now generates with the merged weights
    got = [fleet.generate([{"role": "user", "content": p}], 32) for p in prompts]
    matches = sum(a == b for a, b in zip(expected, got, strict=True))
    if matches != len(prompts):
        raise InvalidInput(
            f"merged model differs from the adapter on {len(prompts) - matches} of "
            f"{len(prompts)} prompts; not exporting"
        )
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    merged.save_pretrained(out, safe_serialization=True)
    fleet.tokenizer.save_pretrained(out)
    pulled = next(iter(fleet.adapters.values()))
    (out / "registry-export.json").write_text(
        json.dumps(
            {
                "adapter": pulled.name,
                "version": pulled.version,
                "commit": pulled.commit,
                "base_model": _base_of(pulled),
                "merged": True,
            },
            indent=2,
        )
    )
    return {"path": str(out), "checked": len(prompts), "matches": matches}
