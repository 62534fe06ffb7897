"""The fingerprint: one hash of everything that determines an adapter's weights.

Same fingerprint -> same weights (up to hardware numerics), so a trained artifact is reused and
never retrained; a published version is identified by it. What goes in: the spec minus the keys
that cannot change the weights (version, description, eval, publish), the base model's identity
and weights hash, the content hashes of the datasets, and the training recipe's version.

Stable across tool upgrades: a key the schema gains later is left out while it holds its
default (which must keep the old behaviour), so upgrading the tool retrains nothing; the keys
of recipe 2 (RECIPE2_KEYS) are always written, as they always were, so no existing fingerprint
moves. The other half of that contract: changing the default of a weight-relevant key changes
the weights of every spec that leaves it out, so it bumps RECIPE_VERSION
(tests/spec/test_fingerprint.py snapshots the defaults with the recipe version to enforce it).
"""

from __future__ import annotations

import hashlib
import json
import typing
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined, to_jsonable_python

from registry.spec.data import file_sha256

if TYPE_CHECKING:
    from registry.spec.base_model import ResolvedModel
    from registry.spec.schema import Spec

# Bump when the training loop changes in a way that changes the weights for the same inputs.
# 3: validation holds out 10% of train by default (was: the eval file).
RECIPE_VERSION = 3
NOT_WEIGHTS = ("version", "description", "eval", "publish")
_DATA_PATHS = ("data.train", "data.eval")  # where files live: their content is hashed instead
# How a run computes, never what: the same weights up to float rounding, so left out.
RUNTIME_KEYS = (
    "training.gradient_checkpointing",
    "training.attn_implementation",
    "training.distributed",
)
# The weight-relevant keys fingerprints carried at recipe 2, written whenever set (not None),
# default or not. Frozen: never add to it (a new key is left out at its default instead).
RECIPE2_KEYS = frozenset(
    {
        "name", "base_model", "method",
        "lora.r", "lora.alpha", "lora.dropout", "lora.target_modules", "lora.bias",
        "lora.use_rslora", "lora.layers_to_transform",
        "quantization.bits", "quantization.quant_type", "quantization.double_quant",
        "quantization.compute_dtype",
        "data.format", "data.system_prompt", "data.validation_fraction",
        "training.epochs", "training.max_steps", "training.learning_rate", "training.batch_size",
        "training.grad_accum", "training.max_seq_len", "training.seed", "training.scheduler",
        "training.warmup_ratio", "training.weight_decay", "training.max_grad_norm",
        "training.packing", "training.eval_every", "training.val_examples",
        "training.save_every", "training.early_stopping_patience",
    }
)  # fmt: skip
_REQUIRED = "<required>"


def weights_data(spec: Spec) -> tuple[str, ...]:
    """The data files (keys of `data`) that shape the weights: train, and eval only when it
    drives validation (`data.validation: eval`); otherwise the eval file can change without
    retraining. Also what `registry sync` compares with a published version's datasets."""
    if spec.eval_path is not None and spec.data.validation == "eval":
        return ("train", "eval")
    return ("train",)


def dataset_hashes(spec: Spec) -> dict[str, str]:
    """sha256 of each data file that shapes the weights (`weights_data`)."""
    paths = {"train": spec.train_path, "eval": spec.eval_path}
    return {role: file_sha256(paths[role]) for role in weights_data(spec)}


def weights_spec(spec: Spec) -> dict:
    """The keys of the spec that determine the weights (data paths left out: their content
    is hashed instead). Also what `registry sync` compares with a published version's spec."""
    dumped = spec.model_dump(mode="json")
    view = {k: v for k, v in dumped.items() if k not in NOT_WEIGHTS}
    return _pruned(view, weight_defaults(type(spec)), "")


def _pruned(view: dict[str, Any], defaults: dict[str, Any], prefix: str) -> dict[str, Any]:
    """`view` without the data paths, the unset keys of recipe 2 (None: left out, as recipe 2
    did) and the keys added since that hold their default."""
    out: dict[str, Any] = {}
    for key, value in view.items():
        path = prefix + key
        if path in _DATA_PATHS or path in RUNTIME_KEYS:
            continue
        if any(p.startswith(path + ".") for p in defaults):  # a section (lora, training, ...)
            if isinstance(value, dict):  # None: an optional section left unset, left out
                inner = _pruned(value, defaults, path + ".")
                if inner or any(p.startswith(path + ".") for p in RECIPE2_KEYS):
                    out[key] = inner
        elif path in RECIPE2_KEYS:
            if value is not None:
                out[key] = value
        elif value != defaults.get(path, _REQUIRED):
            out[key] = value
    return out


def weight_defaults(model: type[BaseModel] | None = None, prefix: str = "") -> dict[str, Any]:
    """{dotted key: default (JSON form)} of every weight-relevant key of the schema; "<required>"
    where there is none. What the fingerprint leaves out when a spec holds it."""
    if model is None:
        from registry.spec.schema import Spec

        model = Spec
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        path = prefix + name
        if (not prefix and name in NOT_WEIGHTS) or path in _DATA_PATHS or path in RUNTIME_KEYS:
            continue
        sub = _submodel(info.annotation)
        if sub is not None:
            out.update(weight_defaults(sub, path + "."))
            continue
        default = info.get_default(call_default_factory=True)
        out[path] = _REQUIRED if default is PydanticUndefined else to_jsonable_python(default)
    return out


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The config class of a nested section (`lora`, `training`, `quantization | None`)."""
    for candidate in typing.get_args(annotation) or (annotation,):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def fingerprint_inputs(spec: Spec, base: ResolvedModel, datasets: dict[str, str]) -> dict:
    return {
        "recipe": RECIPE_VERSION,
        "spec": weights_spec(spec),
        "base_model": {"model_id": base.model_id, "revision": base.revision, "sha256": base.sha256},
        "datasets": datasets,
    }


def fingerprint(spec: Spec, base: ResolvedModel, datasets: dict[str, str] | None = None) -> str:
    """`sha256:<hex>` over the canonical JSON of `fingerprint_inputs`."""
    datasets = dataset_hashes(spec) if datasets is None else datasets
    canonical = json.dumps(
        fingerprint_inputs(spec, base, datasets), sort_keys=True, separators=(",", ":")
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
