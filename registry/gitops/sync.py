"""`registry sync`: make the store match every spec on main, idempotently.

For each spec: when its declared version is published, only the store's current pointer moves
(a rollback by `git revert` trains nothing and takes seconds); when it is not, the adapter is
trained (reusing a cached artifact with the same fingerprint), evaluated, gated and published,
then made current. Adapters whose spec was deleted are retired: their versions stay pullable by
exact version. Sync reconciles the whole of main, not one commit's diff, so a burst of merges
loses nothing and a rerun after a failure finishes the job.

The store is read as one fleet (registry.store.base.fleet_session): on the Hub, one listing of
the org says which adapters are unchanged since the last run, and those cost no request; the
others are read up front with a few threads (`prefetch`); output stays in spec order. Whether a
declared version is published is asked of that version alone (`store.manifest`), not of a
complete list of versions. `registry sync --full` (the store's trust_cache False) trusts no cache.

A declared version that is published with other weights than main's spec and data describe
(two PRs that bumped to the same version, a push without a bump) is a conflict: that adapter's
store stays as it is, current included, the run goes on with the others and ends with exit 4,
one line per conflict naming both fingerprints and the fix (bump the version). The comparison
reads git/DVC metadata and one registry.json per adapter, not the datasets
(registry.gitops.conflicts).

`--adopt DIR` publishes a pull request run's adapter (DIR/NAME/) without training it again,
but only when `adopt_artifact` finds it to be exactly what main's spec and data train and its
report to have judged those very bytes against the version served now; anything else is
trained and evaluated here. Sync never trusts a shared cache for this: the publish job has its
own (docs/ci.md).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.artifact import fingerprint_of
from registry.core.semver import parse_version
from registry.errors import Conflict, GateFailed, InvalidInput, RegistryError
from registry.evaluate.reportcache import recall_report
from registry.gitops.conflicts import Declared
from registry.gitops.history import checkout, declared_versions
from registry.spec.schema import Spec, find_specs, load_spec
from registry.store.base import fleet_session, is_valid_version, prefetch
from registry.store.pull import current_version_dir


@dataclass
class SyncAction:
    name: str
    declared: str | None  # version main declares (None: retired)
    action: str  # published | rollback | promote | current | retired | failed | conflict
    detail: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _work_dir(root: Path, spec: Spec) -> Path:
    return root / "runs" / "sync" / f"{spec.name}-{spec.version}"


def publish_declared(
    spec: Spec, store, *, work: Path, progress: bool = True, adopt: Path | None = None
) -> str:
    """Adopt a verified PR artifact, or train (or reuse), evaluate (or reuse a matching
    report) and gate; then publish. Returns detail."""
    from registry.store.publish import publish_version

    why = adopt_artifact(spec, adopt / spec.name, store, work) if adopt else "no --adopt"
    if why is None:  # check_publishable still insists on its passing gate
        adapter_dir, how = work, "adopted the PR run's weights and evaluation"
    else:
        adapter_dir, how = _train_and_evaluate(spec, store, work, progress)
        if adopt:
            how = f"not adopted ({why}); {how}"
    published = publish_version(
        spec.name,
        adapter_dir,
        store,
        repo_id=spec.publish.repo,
        private=spec.publish.private,
    )
    return f"{how}, gate passed, {published.status} at {published.commit[:12]}"


def _train_and_evaluate(spec: Spec, store, work: Path, progress: bool) -> tuple[Path, str]:
    from registry.evaluate.run import evaluate
    from registry.train import train

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
        report = recall_report(
            result.fingerprint, eval_config, previous_fp, into=result.adapter_dir
        )
    reused_report = report is not None
    if report is None:
        evaluate(spec, result.adapter_dir, previous_adapter_dir=previous_dir, progress=progress)
        report = json.loads(report_path.read_text())
    if not report["gate"]["passed"]:
        failing = [r["message"] for r in report["gate"]["rules"] if not r["passed"]]
        raise GateFailed(f"{spec.name} {spec.version}: gate failed: " + "; ".join(failing))
    reuse = "reused cached weights" if result.cached else "trained"
    if reused_report:
        reuse += " and their evaluation"
    return result.adapter_dir, reuse


class _NotAdopted(Exception):
    """Raised inside the staging block: the copy is dropped, `work` stays as it was."""


def adopt_artifact(spec: Spec, folder: Path, store, work: Path) -> str | None:
    """Make `work` a PR run's adapter folder if it may be published as is; else say why.

    It may when: it holds exactly the PEFT files, registry.json and report.json, regular files
    within the size limits; it is this adapter and version, made without overrides; its report
    names the sha256 of exactly these weights, used main's eval config and compared against the
    version the store serves now; and both carry the fingerprint this (trusted) code computes
    from main's spec and data. Copies are checked, not the originals, so what is published is
    what was verified.
    """
    from registry.artifact import (
        PEFT_FILES,
        REGISTRY_JSON,
        REPORT_JSON,
        WEIGHTS,
        check_folder_limits,
        check_safetensors,
        read_provenance,
    )
    from registry.core.fs import atomic_dir, sha256_file
    from registry.train.planning import plan_training

    expected = {*PEFT_FILES, REGISTRY_JSON, REPORT_JSON}

    def problems(staged: Path) -> Iterator[str]:  # lazily, cheap first: the first one decides
        check_folder_limits(folder)
        names = {p.name for p in folder.iterdir()}
        if names != expected:
            yield f"it holds {sorted(names)}, not {sorted(expected)}"
        for name in sorted(names):
            if (folder / name).is_symlink() or not (folder / name).is_file():
                yield f"{name} is not a regular file"
            shutil.copyfile(folder / name, staged / name)
        provenance = read_provenance(staged)
        report = json.loads((staged / REPORT_JSON).read_text(encoding="utf-8"))
        if (provenance.name, provenance.version) != (spec.name, spec.version):
            yield "it is another adapter or version"
        if provenance.overrides or report.get("overrides"):
            yield "it was made with overrides"
        if report["adapter"]["sha256"] != {f: sha256_file(staged / f) for f in PEFT_FILES}:
            yield "its files are not the ones its report judged (sha256)"
        if report.get("eval_config") != spec.eval.model_dump(mode="json"):
            yield "its report used another eval config"
        fingerprint = plan_training(spec).fingerprint
        if provenance.fingerprint != fingerprint or report["fingerprint"] != fingerprint:
            yield "its fingerprint is not the one main's spec and data give"
        previous = fingerprint_of(current_version_dir(spec, store))
        # () never equals a fingerprint or None: a report that does not record it never matches
        if report.get("previous_fingerprint", ()) != previous:
            yield "its report compared against another version than the one served now"
        check_safetensors(staged / WEIGHTS)

    if folder.is_symlink() or not folder.is_dir():
        return f"no artifact for {spec.name}"
    try:
        with atomic_dir(work) as staged:
            why = next(problems(staged), None)
            if why is not None:
                raise _NotAdopted(why)
    except _NotAdopted as exc:
        return str(exc)
    except (InvalidInput, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"unreadable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return None


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


def _declared_published(spec: Spec, store, content: Declared, dry_run: bool) -> SyncAction:
    """main declares a published version: make it current, unless the store holds other weights
    under that number (a conflict: nothing changes; the fix is a version bump). Content that
    could not be compared is said beside the action, never assumed equal."""
    check = content.check(spec, store)
    if check is not None and check.conflict:
        return SyncAction(spec.name, spec.version, "conflict", check.line())
    if dry_run:
        action = SyncAction(spec.name, spec.version, "current", "dry run")
    else:
        action = _move_current(spec, store)
    if check is not None and check.unverified:
        action.detail += f"; {check.note()}"
    return action


def outcome(actions: list[SyncAction]) -> RegistryError | None:
    """The error a run ends with: Conflict (exit 4) when any adapter conflicts with the store,
    else GateFailed (exit 3) when any failed; None when all synced."""
    conflicts = [a for a in actions if a.action == "conflict"]
    failed = [a for a in actions if a.action == "failed"]
    also = f"; {len(failed)} failed: {', '.join(a.name for a in failed)}" if failed else ""
    if conflicts:
        lines = "\n".join(a.detail for a in conflicts)
        return Conflict(f"{len(conflicts)} adapter(s) conflict with the store{also}\n{lines}")
    if failed:
        return GateFailed(
            f"{len(failed)} adapter(s) failed to sync: {', '.join(a.name for a in failed)}"
        )
    return None


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
    store,
    root: Path,
    specs: list[Spec],
    history: int,
    dry_run: bool,
    progress: bool,
    adopt: Path | None,
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
        if _is_published(store, item.name, item.version):
            continue
        start = time.perf_counter()
        if dry_run:
            action = SyncAction(item.name, item.version, "published", "dry run: would publish")
        else:
            try:
                with checkout(root, item.commit) as tree:
                    spec = load_spec(tree / "adapters" / item.name / "adapter.yaml")
                    detail = publish_declared(
                        spec, store, work=_work_dir(root, spec), progress=progress, adopt=adopt
                    )
                action = SyncAction(
                    item.name, item.version, "published", f"from {item.commit[:12]}: {detail}"
                )
            except RegistryError as exc:
                action = SyncAction(item.name, item.version, "failed", str(exc).splitlines()[0])
        action.seconds = time.perf_counter() - start
        actions.append(action)
    return actions


def _is_published(store, name: str, version: str) -> bool:
    """One version's tag, not the list of all versions (the Hub answers it from the session)."""
    return is_valid_version(version) and store.manifest(name, version) is not None


def sync(
    store,
    *,
    root: Path = Path("."),
    dry_run: bool = False,
    progress: bool = True,
    history: int = 20,
    adopt: Path | None = None,
) -> list[SyncAction]:
    """Reconcile the store with every spec under `root/adapters` and with the versions the
    last `history` first-parent commits of main declared. Never stops at the first failure:
    each adapter is independent; failures are reported at the end. `adopt`: a folder of PR
    run artifacts (adopt/NAME/), each published only if `adopt_artifact` accepts it."""
    specs = [load_spec(p) for p in find_specs(root)]
    with fleet_session(store):
        prefetch(store, [(s.name, s.version) for s in specs])
        return _reconcile(store, root, specs, dry_run, progress, history, adopt)


def _reconcile(
    store,
    root: Path,
    specs: list[Spec],
    dry_run: bool,
    progress: bool,
    history: int,
    adopt: Path | None,
) -> list[SyncAction]:
    declared = {s.name for s in specs}
    content = Declared(root, specs)  # read lazily, once, from git/DVC metadata
    actions = _publish_history(store, root, specs, history, dry_run, progress, adopt)
    for spec in specs:
        start = time.perf_counter()
        published = _is_published(store, spec.name, spec.version)
        try:
            if published:
                action = _declared_published(spec, store, content, dry_run)
            elif dry_run:
                action = SyncAction(spec.name, spec.version, "published", "dry run: would publish")
            else:
                detail = publish_declared(
                    spec, store, work=_work_dir(root, spec), progress=progress, adopt=adopt
                )
                moved = _move_current(spec, store)
                action = SyncAction(
                    spec.name, spec.version, "published", f"{detail}; {moved.detail}"
                )
        except Conflict as exc:  # another publisher made this version with other weights
            action = SyncAction(spec.name, spec.version, "conflict", str(exc).splitlines()[0])
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
