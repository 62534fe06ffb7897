"""Store test material shared across test files: adapter folders, version files, and the exact
request sequence of a clean Hub publish."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hub_server import FakeHub

from registry.artifact import REGISTRY_JSON
from registry.core.fs import sha256_bytes

ORG, NAME, REPO = "test-org", "demo", "test-org/demo"


def make_adapter_dir(
    path: Path,
    *,
    name: str = "toy",
    version: str = "1.0.0",
    fingerprint: str = "sha256:" + "1" * 64,
    passed: bool = True,
    overrides: dict | None = None,
    seed: int = 0,
) -> Path:
    """A real (tiny) PEFT-shaped folder: safetensors weights, config, provenance, report."""
    import torch
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    save_file(
        {"base_model.model.layers.0.q_proj.lora_A.weight": torch.randn(4, 8, generator=gen)},
        path / "adapter_model.safetensors",
    )
    (path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    provenance = {
        "name": name,
        "version": version,
        "fingerprint": fingerprint,
        "base_model": {
            "ref": "builtin:tiny-llama",
            "model_id": "registry/tiny-llama",
            "revision": "r",
            "sha256": "0" * 64,
        },
        "spec": {"method": "lora", "lora": {"r": 4}, "description": "toy"},
        "overrides": overrides or {},
        "training": {"steps": 3, "wall_s": 1.0},
    }
    (path / "registry.json").write_text(json.dumps(provenance))
    report = {
        "name": name,
        "version": version,
        "fingerprint": fingerprint,
        "n_items": 16,
        "metrics": {"exact_match": {"base": 0.1, "prompt_baseline": 0.2, "adapter": 0.9}},
        "general_drift": 0.01,
        "gate": {
            "passed": passed,
            "rules": [
                {
                    "rule": "r",
                    "metric": "exact_match",
                    "value": 0.5,
                    "threshold": 0.2,
                    "passed": passed,
                    "message": "exact_match delta",
                }
            ],
        },
    }
    (path / "report.json").write_text(json.dumps(report))
    return path


def make_files(version: str, fingerprint: str = "fp-1", weights: bytes = b"\x00" * 64) -> dict:
    files = {
        "adapter_model.safetensors": weights,
        "adapter_config.json": b'{"r": 8}',
        "README.md": f"---\nlibrary_name: peft\n---\n# demo {version}\n".encode(),
    }
    manifest = {
        "name": "demo",
        "version": version,
        "fingerprint": fingerprint,
        "published_at": "2025-01-02T03:04:05+00:00",
        "eval": {"gate": {"passed": True}},
        "files": {name: sha256_bytes(data) for name, data in files.items()},
    }
    return {**files, REGISTRY_JSON: json.dumps(manifest).encode()}


STAGING = "registry-staging-v1.0.0"
SHA = "{sha}"

# The exact requests of a clean publish into a new repo (step name, method, path).
PUBLISH_SEQUENCE = [
    ("create-repo", "POST", "/api/repos/create"),
    ("refs", "GET", f"/api/models/{REPO}/refs"),
    ("create-branch", "POST", f"/api/models/{REPO}/branch/{STAGING}"),
    ("read-base", "GET", f"/api/models/{REPO}/revision/{SHA}"),
    ("validate-card", "POST", "/api/validate-yaml"),
    ("preupload", "POST", f"/api/models/{REPO}/preupload/{STAGING}"),
    ("commit", "POST", f"/api/models/{REPO}/commit/{STAGING}"),
    ("refs-again", "GET", f"/api/models/{REPO}/refs"),
    ("verify-head", "GET", f"/api/models/{REPO}/revision/{SHA}"),
    ("tag", "POST", f"/api/models/{REPO}/tag/{SHA}"),
    ("drop-branch", "DELETE", f"/api/models/{REPO}/branch/{STAGING}"),
]
STEPS = [step for step, _, _ in PUBLISH_SEQUENCE]


def normalized(hub: FakeHub) -> list[tuple[str, str]]:
    return [(m, re.sub(r"[0-9a-f]{40}", SHA, p)) for m, p in hub.requests()]
