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

from registry.artifact import read_provenance
from registry.errors import InvalidInput
from registry.store import Store, open_store
from registry.store.pull import PulledAdapter, pull


def _adapter_key(pulled: PulledAdapter) -> str:
    # PEFT adapter names become module-dict keys: no dots allowed.
    return pulled.name


def _base_of(pulled: PulledAdapter) -> dict[str, Any]:
    return read_provenance(pulled.path).base_model


class AdapterFleet:
    """A base model with several adapters attached; `use` switches the active one."""

    def __init__(
        self,
        pulled: list[PulledAdapter],
        device: str | None = None,
        keys: list[str] | None = None,
    ) -> None:
        """`keys` names each adapter inside the model (default: its name); a server holding
        two versions of one adapter gives them distinct keys."""
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
        keys = list(keys) if keys is not None else [_adapter_key(p) for p in pulled]
        if len(keys) != len(pulled) or len(set(keys)) != len(keys) or any("." in k for k in keys):
            raise InvalidInput(f"adapter keys must be unique, one per adapter, no dots: {keys}")
        self.base = resolved
        self.tokenizer = load_tokenizer(resolved)
        self.adapters = dict(zip(keys, pulled, strict=True))
        (first_key, first), *rest = self.adapters.items()
        base = load_base_model(resolved, device=device)
        base.config.use_cache = True
        self.model = PeftModel.from_pretrained(base, first.path, adapter_name=first_key)
        for key, p in rest:
            self.model.load_adapter(p.path, adapter_name=key)
        self.model.eval()
        self._find_layers()
        self.active = ""
        self.use(first_key)

    def _find_layers(self) -> None:
        from peft.tuners.tuners_utils import BaseTunerLayer

        # PeftModel.set_adapter walks every module of the model twice per switch (~10 ms on
        # SmolLM2). The adapter layers change only when an adapter is attached or detached:
        # find them then, not per switch.
        self._adapter_layers = [m for m in self.model.modules() if isinstance(m, BaseTunerLayer)]

    def attach(self, pulled: PulledAdapter, key: str) -> None:
        """Load one more (pulled, verified) adapter onto the shared base under `key`.

        Not thread-safe with `generate`: a server calls it from the thread that generates."""
        if key in self.adapters or "." in key:
            raise InvalidInput(f"adapter key {key!r} is taken or has a dot")
        if _base_of(pulled)["sha256"] != self.base.sha256:
            raise InvalidInput(
                f"{pulled.name} {pulled.version} was trained on another base model than this "
                f"fleet's {self.base.ref} (sha256 differs)"
            )
        self.model.load_adapter(pulled.path, adapter_name=key)
        self.model.eval()
        self.adapters[key] = pulled
        self._find_layers()
        self.use(self.active)  # loading must not change which adapter answers

    def detach(self, key: str) -> None:
        """Unload an adapter (its memory is freed); the last one stays."""
        if key not in self.adapters:
            raise InvalidInput(f"adapter {key!r} is not loaded")
        if len(self.adapters) == 1:
            raise InvalidInput("cannot detach the fleet's last adapter")
        if self.active == key:  # PEFT would pick another itself, with a warning
            self.use(next(k for k in self.adapters if k != key))
        self.model.delete_adapter(key)
        del self.adapters[key]
        self._find_layers()
        self.use(self.active)

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
