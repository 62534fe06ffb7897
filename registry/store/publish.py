"""`registry publish`: an evaluated adapter becomes an immutable version in a store.

Publishing needs proof: a `report.json` whose gate passed, made for these exact weights (same
fingerprint). Outputs made with smoke-run overrides (`--max-steps`, `--base-model`, `--seed`) are
refused. The version holds the PEFT files, a model card and `registry.json`: the training
provenance plus the eval summary and the sha256 of every other file, which `pull` verifies.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from registry.artifact import check_folder_limits, check_safetensors
from registry.errors import GateFailed, InvalidInput
from registry.store.base import MANIFEST, PublishResult, Store, sha256_bytes

PEFT_FILES = ("adapter_model.safetensors", "adapter_config.json")


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise GateFailed(f"{path} is missing: {what}") from None
    except ValueError:
        raise InvalidInput(f"{path} is not valid JSON") from None


def check_publishable(name: str, adapter_dir: Path) -> tuple[dict, dict]:
    """(provenance, report) when the folder may be published; raises otherwise."""
    check_folder_limits(adapter_dir)  # bounded: nothing is read before count and sizes pass
    provenance = _read_json(adapter_dir / "registry.json", "train it with `registry train`")
    if provenance.get("name") != name:
        raise InvalidInput(f"{adapter_dir} holds adapter {provenance.get('name')!r}, not {name!r}")
    if provenance.get("overrides"):
        used = ", ".join(f"{k}={v}" for k, v in provenance["overrides"].items())
        raise InvalidInput(
            f"{adapter_dir} was made with overrides ({used}); such outputs are smoke runs and "
            "cannot be published: train without overrides"
        )
    report = _read_json(adapter_dir / "report.json", "evaluate it with `registry eval` first")
    if report.get("fingerprint") != provenance.get("fingerprint"):
        raise GateFailed(
            f"{adapter_dir}/report.json was made for other weights "
            f"({report.get('fingerprint')} != {provenance.get('fingerprint')}): run `registry eval`"
        )
    if not report.get("gate", {}).get("passed"):
        failing = [
            r.get("message", "")
            for r in report.get("gate", {}).get("rules", [])
            if not r.get("passed")
        ]
        raise GateFailed(f"{name}: the gate did not pass: {'; '.join(failing) or 'no rules ran'}")
    for fname in PEFT_FILES:
        if not (adapter_dir / fname).is_file():
            raise InvalidInput(f"{adapter_dir}/{fname} is missing")
    check_safetensors(adapter_dir / "adapter_model.safetensors")
    return provenance, report


def eval_summary(report: dict) -> dict[str, Any]:
    return {
        "n_items": report.get("n_items"),
        "metrics": report.get("metrics", {}),
        "general_drift": report.get("general_drift"),
        "gate": {"passed": report["gate"]["passed"], "rules": report["gate"].get("rules", [])},
    }


def model_card(provenance: dict, report: dict, repo_id: str | None = None) -> str:
    """README.md with Hub metadata (base_model, library_name: peft, model-index)."""
    spec = provenance.get("spec", {})
    base = provenance["base_model"]
    name, version = provenance["name"], provenance["version"]
    metrics = report.get("metrics", {})
    results = [
        {"type": metric, "name": f"{metric} (adapter)", "value": round(values["adapter"], 4)}
        for metric, values in metrics.items()
        if isinstance(values.get("adapter"), int | float)
    ]
    front = {
        "base_model": base["model_id"],
        "library_name": "peft",
        "pipeline_tag": "text-generation",
        "tags": ["lora", spec.get("method", "lora"), "adapter-registry", f"version-{version}"],
        "model-index": [
            {
                "name": repo_id or name,
                "results": [
                    {
                        "task": {"type": "text-generation"},
                        "dataset": {"type": "custom", "name": f"{name} eval set"},
                        "metrics": results,
                    }
                ],
            }
        ],
    }
    rows = ["| metric | base | prompt baseline | adapter |", "|---|---:|---:|---:|"]
    for metric, values in metrics.items():
        cells = [values.get(k) for k in ("base", "prompt_baseline", "adapter")]
        rows.append(
            f"| {metric} | " + " | ".join("-" if c is None else f"{c:.3f}" for c in cells) + " |"
        )
    drift = report.get("general_drift")
    training = provenance.get("training", {})
    body = [
        f"# {name} {version}",
        "",
        spec.get("description") or "A LoRA adapter published by the adapter registry.",
        "",
        f"- base model: `{base['model_id']}` (revision `{base['revision']}`)",
        f"- method: {spec.get('method', 'lora')}, rank {spec.get('lora', {}).get('r')}",
        f"- fingerprint: `{provenance['fingerprint']}`",
        f"- eval items: {report.get('n_items')}; general drift: "
        + ("-" if drift is None else f"{drift:.4f}"),
        f"- training: {training.get('steps', '-')} steps, {training.get('wall_s', 0):.0f} s",
        "",
        "## Evaluation",
        "",
        *rows,
        "",
        "## Use",
        "",
        "```bash",
        f"registry pull {name}@{version}",
        "```",
        "",
        "```python",
        "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM",
        f'base = AutoModelForCausalLM.from_pretrained("{base["model_id"]}")',
        f'model = PeftModel.from_pretrained(base, "{repo_id or name}", revision="v{version}")',
        "```",
    ]
    return "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n\n" + "\n".join(body) + "\n"


def build_version_files(
    provenance: dict, report: dict, adapter_dir: Path, repo_id: str | None
) -> dict[str, bytes]:
    files = {fname: (adapter_dir / fname).read_bytes() for fname in PEFT_FILES}
    files["README.md"] = model_card(provenance, report, repo_id).encode()
    manifest = {
        **provenance,
        "eval": eval_summary(report),
        "published_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": {fname: sha256_bytes(data) for fname, data in sorted(files.items())},
    }
    files[MANIFEST] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    return files


def publish_version(
    name: str,
    adapter_dir: Path,
    store: Store,
    *,
    repo_id: str | None = None,
    private: bool = True,
) -> PublishResult:
    """Publish `adapter_dir` as version <its registry.json version> of `name`.

    Exit-code semantics: GateFailed (3) without a passing report for these weights, Conflict (4)
    when the version exists with another fingerprint, "exists" (0) when it exists with this one.
    """
    adapter_dir = Path(adapter_dir)
    provenance, report = check_publishable(name, adapter_dir)
    expected_repo = getattr(store, "repo_id", lambda n: None)(name)
    if repo_id and expected_repo and repo_id != expected_repo:
        raise InvalidInput(
            f"publish.repo {repo_id!r} is not in this store ({store.url} publishes {name} to "
            f"{expected_repo!r}); drop publish.repo or point --store at its org",
            file="publish.repo",
        )
    files = build_version_files(provenance, report, adapter_dir, repo_id or expected_repo)
    return store.publish(name, provenance["version"], files, private=private)
