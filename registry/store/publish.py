"""`registry publish`: an evaluated adapter becomes an immutable version in a store.

Publishing needs proof: a `report.json` whose gate passed, made for these exact weights (same
fingerprint). Outputs made with smoke-run overrides (`--max-steps`, `--base-model`, `--seed`) are
refused. The version holds the PEFT files, a model card and `registry.json`: the training
provenance plus the eval summary and the sha256 of every other file, which `pull` verifies.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from registry.artifact import (
    CARD,
    PEFT_FILES,
    REGISTRY_JSON,
    REPORT_JSON,
    WEIGHTS,
    Provenance,
    check_folder_limits,
    check_safetensors,
    read_provenance,
)
from registry.core.fs import sha256_bytes
from registry.errors import GateFailed, InvalidInput
from registry.spec.base_model import BUILTIN_CARD_NOTES
from registry.store.base import PublishResult, Store


def _read_report(path: Path) -> dict[str, Any]:
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise GateFailed(f"{path} is missing: evaluate it with `registry eval` first") from None
    except ValueError:
        raise InvalidInput(f"{path} is not valid JSON") from None
    if not isinstance(report, dict):
        raise InvalidInput(f"{path} is not a JSON object")
    return report


def check_publishable(name: str, adapter_dir: Path) -> tuple[Provenance, dict]:
    """(provenance, report) when the folder may be published; raises otherwise."""
    check_folder_limits(adapter_dir)  # bounded: nothing is read before count and sizes pass
    try:
        provenance = read_provenance(adapter_dir)
    except FileNotFoundError:
        where = adapter_dir / REGISTRY_JSON
        raise GateFailed(f"{where} is missing: train it with `registry train`") from None
    if provenance.name != name:
        raise InvalidInput(f"{adapter_dir} holds adapter {provenance.name!r}, not {name!r}")
    if provenance.overrides:
        used = ", ".join(f"{k}={v}" for k, v in provenance.overrides.items())
        raise InvalidInput(
            f"{adapter_dir} was made with overrides ({used}); such outputs are smoke runs and "
            "cannot be published: train without overrides"
        )
    report = _read_report(adapter_dir / REPORT_JSON)
    if report.get("fingerprint") != provenance.fingerprint:
        raise GateFailed(
            f"{adapter_dir}/{REPORT_JSON} was made for other weights "
            f"({report.get('fingerprint')} != {provenance.fingerprint}): run `registry eval`"
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
    check_safetensors(adapter_dir / WEIGHTS)
    return provenance, report


def eval_summary(report: dict) -> dict[str, Any]:
    return {
        "n_items": report.get("n_items"),
        "metrics": report.get("metrics", {}),
        "general_drift": report.get("general_drift"),
        "gate": {"passed": report["gate"]["passed"], "rules": report["gate"].get("rules", [])},
    }


def model_card(provenance: Provenance, report: dict, repo_id: str | None = None) -> str:
    """README.md with Hub metadata (base_model, library_name: peft, model-index)."""
    spec = provenance.spec
    base = provenance.base_model
    name, version = provenance.name, provenance.version
    metrics = report.get("metrics", {})
    results = [
        {"type": metric, "name": f"{metric} (adapter)", "value": round(values["adapter"], 4)}
        for metric, values in metrics.items()
        if isinstance(values.get("adapter"), int | float)
    ]
    front = {
        "base_model": base["model_id"],
        "base_model_relation": "adapter",
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
    training = provenance.training
    body = [
        f"# {name} {version}",
        "",
        spec.get("description") or "A LoRA adapter published by the adapter registry.",
        "",
        f"- base model: `{base['model_id']}` (revision `{base['revision']}`)",
        *_base_note(base),
        f"- method: {spec.get('method', 'lora')}, rank {spec.get('lora', {}).get('r')}",
        f"- fingerprint: `{provenance.fingerprint}`",
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
        f'base = AutoModelForCausalLM.from_pretrained("{base["model_id"]}"{_revision_arg(base)})',
        f'model = PeftModel.from_pretrained(base, "{repo_id or name}", revision="v{version}")',
        "```",
    ]
    return "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n\n" + "\n".join(body) + "\n"


def _base_note(base: dict[str, Any]) -> list[str]:
    """For a builtin base: which Hub model it corresponds to and how it differs."""
    note = BUILTIN_CARD_NOTES.get(str(base.get("ref")))
    if note is None:
        return []
    hub_id, how = note
    matches = f"it corresponds to `{hub_id}` on the Hub" if hub_id else "no Hub counterpart"
    return [f"- the base is the registry's `{base['ref']}` ({matches}): {how}"]


def _revision_arg(base: dict[str, Any]) -> str:
    revision = str(base.get("revision", ""))
    return f', revision="{revision}"' if re.fullmatch(r"[0-9a-f]{40}", revision) else ""


def build_version_files(
    provenance: Provenance, report: dict, adapter_dir: Path, repo_id: str | None
) -> dict[str, bytes]:
    files = {fname: (adapter_dir / fname).read_bytes() for fname in PEFT_FILES}
    files[CARD] = model_card(provenance, report, repo_id).encode()
    manifest = provenance.updated(
        eval=eval_summary(report),
        published_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        files={fname: sha256_bytes(data) for fname, data in sorted(files.items())},
    )
    files[REGISTRY_JSON] = manifest.manifest_bytes()
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
    return store.publish(name, provenance.version, files, private=private)
