"""What one training run trains: the spec with its smoke-run overrides applied, its base model,
its datasets' hashes and its fingerprint, all decided before any model is loaded.

An override that changes nothing is dropped (so `--seed 42` on a seed-42 spec is a regular
run); one that changes something is recorded in registry.json, and publish refuses such output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from registry.artifact import Provenance
from registry.core.git import head_commit
from registry.errors import InvalidInput, Problem
from registry.spec.base_model import ResolvedModel, resolve_base_model
from registry.spec.fingerprint import dataset_hashes, fingerprint
from registry.spec.schema import Spec
from registry.train import batching
from registry.train.output import package_versions


@dataclass(frozen=True)
class TrainingPlan:
    """What one training run trains: the spec with its overrides applied, and its identity."""

    spec: Spec  # as written
    effective: Spec  # overrides applied: what is trained and fingerprinted
    overrides: dict[str, Any]  # recorded in registry.json; publish refuses such outputs
    base: ResolvedModel
    datasets: dict[str, str]
    fingerprint: str

    @property
    def key(self) -> str:
        return self.fingerprint.split(":", 1)[1]

    def provenance(self, metrics: dict[str, Any]) -> Provenance:
        """registry.json of this run's adapter (the key order is the file's)."""
        spec = self.spec
        return Provenance(
            {
                "name": spec.name,
                "version": spec.version,
                "fingerprint": self.fingerprint,
                "base_model": self.base.provenance(),
                "datasets": self.datasets,
                "spec": spec.model_dump(mode="json"),
                "git_commit": head_commit(spec.path.parent if spec.path else spec.root),
                "packages": package_versions(),
                "overrides": self.overrides,
                "training": metrics,
            }
        )


def plan_training(
    spec: Spec,
    *,
    max_steps: int | None = None,
    seed: int | None = None,
    base_model: str | None = None,
) -> TrainingPlan:
    """Apply overrides, check the data, resolve the base and fingerprint the result."""
    wanted = {"training.max_steps": max_steps, "training.seed": seed, "base_model": base_model}
    changes = {k: v for k, v in wanted.items() if v is not None}
    try:
        effective = spec.with_overrides(**changes) if changes else spec
    except ValidationError as exc:
        problems = [
            Problem("<overrides>", e["msg"], field=".".join(map(str, e["loc"])))
            for e in exc.errors()
        ]
        raise InvalidInput(problems) from None
    before, after = spec.model_dump(mode="json"), effective.model_dump(mode="json")
    overrides: dict[str, Any] = {}
    length = ("max_steps", "epochs")
    if [after["training"][k] for k in length] != [before["training"][k] for k in length]:
        overrides["max_steps"] = max_steps
    if after["training"]["seed"] != before["training"]["seed"]:
        overrides["seed"] = seed
    if after["base_model"] != before["base_model"]:
        overrides["base_model"] = base_model
    batching.load_splits(effective)  # bad data is InvalidInput now, before loading any model
    base = resolve_base_model(effective.base_model)
    datasets = dataset_hashes(effective)
    fp = fingerprint(effective, base, datasets)
    return TrainingPlan(spec, effective, overrides, base, datasets, fp)
