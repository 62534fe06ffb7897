"""`registry sync`: make the store match every spec on main, idempotently.

For each spec: when its declared version is published, only the store's current pointer moves
(a rollback by `git revert` trains nothing and takes seconds); when it is not, the adapter is
trained (reusing a cached artifact with the same fingerprint), evaluated, gated and published,
then made current. Adapters whose spec was deleted are retired: their versions stay pullable by
exact version. Sync reconciles the whole of main, not one commit's diff, so a burst of merges
loses nothing and a rerun after a failure finishes the job.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.core.semver import parse_version
from registry.errors import GateFailed, RegistryError
from registry.evaluate.reportcache import fingerprint_of, recall
from registry.gitops.history import checkout, declared_versions
from registry.spec.schema import Spec, find_specs, load_spec


@dataclass
class SyncAction:
    name: str
    declared: str | None  # version main declares (None: retired)
    action: str  # published | rollback | promote | current | retired | failed
    detail: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _work_dir(root: Path, spec: Spec) -> Path:
    return root / "runs" / "sync" / f"{spec.name}-{spec.version}"


def publish_declared(spec: Spec, store, *, work: Path, progress: bool = True) -> str:
    """Train (or reuse), evaluate (or reuse a matching report), gate, publish. Returns detail."""
    from registry.evaluate.run import evaluate
    from registry.store.publish import publish_version
    from registry.train.loop import train

    result = train(spec, work, progress=progress)
    report_path = result.adapter_dir / "report.json"
    report = _matching_report(report_path, result.fingerprint, spec)
    previous_dir = None
    if report is None:
        # Compared against the current version, as the pull request's evaluation was: then the
        # PR's report (same weights, eval config and previous version) is reused, not redone.
        previous_dir = current_version_dir(spec, store)
        eval_config = spec.eval.model_dump(mode="json")
        previous_fp = fingerprint_of(previous_dir)
        report = recall(result.fingerprint, eval_config, previous_fp, into=result.adapter_dir)
    reused_report = report is not None
    if report is None:
        evaluate(spec, result.adapter_dir, previous_adapter_dir=previous_dir, progress=progress)
        report = json.loads(report_path.read_text())
    if not report["gate"]["passed"]:
        failing = [r["message"] for r in report["gate"]["rules"] if not r["passed"]]
        raise GateFailed(f"{spec.name} {spec.version}: gate failed: " + "; ".join(failing))
    published = publish_version(
        spec.name,
        result.adapter_dir,
        store,
        repo_id=spec.publish.repo,
        private=spec.publish.private,
    )
    reuse = "reused cached weights" if result.cached else "trained"
    if reused_report:
        reuse += " and their evaluation"
    return f"{reuse}, gate passed, {published.status} at {published.commit[:12]}"


def current_version_dir(spec: Spec, store) -> Path | None:
    """The store's current version of the adapter (pulled, verified), unless it is this version:
    the "previous" contender of an evaluation (no regression vs what is served now)."""
    from registry.store.pull import pull

    current = store.current(spec.name)
    if not current or current == spec.version:
        return None
    return pull(f"{spec.name}@{current}", store).path


def _matching_report(path: Path, fingerprint: str, spec: Spec) -> dict | None:
    """A report is reusable only for these exact weights and this exact eval config."""
    if not path.exists():
        return None
    report = json.loads(path.read_text())
    if report.get("fingerprint") != fingerprint:
        return None
    if report.get("eval_config") not in (None, spec.eval.model_dump(mode="json")):
        return None
    return report


def _move_current(spec: Spec, store) -> SyncAction:
    current = store.current(spec.name)
    if current == spec.version:
        return SyncAction(spec.name, spec.version, "current", "already current")
    store.set_current(spec.name, spec.version)
    if current is None:
        return SyncAction(spec.name, spec.version, "promote", "made current")
    direction = "rollback" if parse_version(spec.version) < parse_version(current) else "promote"
    return SyncAction(spec.name, spec.version, direction, f"current {current} -> {spec.version}")


def _publish_history(
    store, root: Path, specs: list[Spec], history: int, dry_run: bool, progress: bool
) -> list[SyncAction]:
    """Versions declared by recent merges but superseded before a sync ran (a burst)."""
    head = {s.name: s.version for s in specs}
    actions = []
    seen: set[tuple[str, str]] = set()
    for item in declared_versions(root, history):
        key = (item.name, item.version)
        if item.name not in head or head[item.name] == item.version or key in seen:
            continue
        seen.add(key)
        if item.version in {v.version for v in store.versions(item.name)}:
            continue
        start = time.perf_counter()
        if dry_run:
            action = SyncAction(item.name, item.version, "published", "dry run: would publish")
        else:
            try:
                with checkout(root, item.commit) as tree:
                    spec = load_spec(tree / "adapters" / item.name / "adapter.yaml")
                    detail = publish_declared(
                        spec, store, work=_work_dir(root, spec), progress=progress
                    )
                action = SyncAction(
                    item.name, item.version, "published", f"from {item.commit[:12]}: {detail}"
                )
            except RegistryError as exc:
                action = SyncAction(item.name, item.version, "failed", str(exc).splitlines()[0])
        action.seconds = time.perf_counter() - start
        actions.append(action)
    return actions


def sync(
    store,
    *,
    root: Path = Path("."),
    dry_run: bool = False,
    progress: bool = True,
    history: int = 20,
) -> list[SyncAction]:
    """Reconcile the store with every spec under `root/adapters` and with the versions the
    last `history` first-parent commits of main declared. Never stops at the first failure:
    each adapter is independent; failures are reported at the end."""
    specs = [load_spec(p) for p in find_specs(root)]
    declared = {s.name for s in specs}
    actions = _publish_history(store, root, specs, history, dry_run, progress)
    for spec in specs:
        start = time.perf_counter()
        published = {v.version for v in store.versions(spec.name)}
        try:
            if spec.version in published:
                action = (
                    SyncAction(spec.name, spec.version, "current", "dry run")
                    if dry_run
                    else _move_current(spec, store)
                )
            elif dry_run:
                action = SyncAction(spec.name, spec.version, "published", "dry run: would publish")
            else:
                detail = publish_declared(
                    spec, store, work=_work_dir(root, spec), progress=progress
                )
                moved = _move_current(spec, store)
                action = SyncAction(
                    spec.name, spec.version, "published", f"{detail}; {moved.detail}"
                )
        except RegistryError as exc:
            action = SyncAction(spec.name, spec.version, "failed", str(exc).splitlines()[0])
        action.seconds = time.perf_counter() - start
        actions.append(action)
    for name in sorted(set(store.list_adapters()) - declared):
        start = time.perf_counter()
        changed = False if dry_run else store.retire(name)
        detail = "spec deleted; versions stay pullable" if changed or dry_run else "already retired"
        actions.append(SyncAction(name, None, "retired", detail, time.perf_counter() - start))
    return actions
