"""The fingerprint: one hash of everything that determines an adapter's weights.

Same fingerprint -> same weights (up to hardware numerics), so a trained artifact is reused and
never retrained; a published version is identified by it. What goes in: the spec minus the keys
that cannot change the weights (version, description, eval, publish), the base model's identity
and weights hash, the content hashes of the datasets, and the training recipe's version.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from registry.spec.data import file_sha256

if TYPE_CHECKING:
    from registry.spec.base_model import ResolvedModel
    from registry.spec.schema import Spec

# Bump when the training loop changes in a way that changes the weights for the same inputs.
RECIPE_VERSION = 2
NOT_WEIGHTS = ("version", "description", "eval", "publish")


def dataset_hashes(spec: Spec) -> dict[str, str]:
    """sha256 of each data file the spec names (train, and eval: it drives validation)."""
    hashes = {"train": file_sha256(spec.train_path)}
    if spec.eval_path is not None:
        hashes["eval"] = file_sha256(spec.eval_path)
    return hashes


def fingerprint_inputs(spec: Spec, base: ResolvedModel, datasets: dict[str, str]) -> dict:
    # exclude_none: a new optional key of the schema, left unset, does not retrain every adapter
    dumped = spec.model_dump(mode="json", exclude_none=True)
    weights_spec = {k: v for k, v in dumped.items() if k not in NOT_WEIGHTS}
    # Data paths are where files live, not what they hold: hash the content instead.
    weights_spec["data"] = {
        k: v for k, v in weights_spec["data"].items() if k not in ("train", "eval")
    }
    return {
        "recipe": RECIPE_VERSION,
        "spec": weights_spec,
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
