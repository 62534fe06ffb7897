"""Plan: what a change to the registry repo asks CI to do, read from git alone.

`plan(base)` compares the head (a commit, `HEAD` by default, or the working tree) with its merge
base with `base` -- the same three-dot comparison GitHub shows on a pull request -- and says per
adapter whether to train it (`new`, `retrain`), publish the old weights under a new version
(`bump`), point the store back at a published version (`rollback`), retire it (`retire`), or do
nothing (`unchanged`: the spec file changed only in formatting or comments).
Adapters the change does not touch are absent from the plan.

Why it is fast on a registry of 1,000 adapters: one `git diff --name-status` lists what changed,
then `git cat-file --batch` reads only the changed specs and `.dvc` files. A dataset change is
found by diffing the two DVC `.dir` listings (read from the DVC cache or a local remote) and
mapped to the specs that name the changed files through an index of the spec texts keyed by
the `adapters/` tree id (registry.gitops.plan_index: one lookup, not a read of every spec); no
model and no dataset file is read. If a `.dir` listing is not available locally, every file under
that DVC output counts as possibly changed and the affected entries say so (`data_unverified`).

Rules (bad input -> InvalidInput, exit 2, naming the spec file and its `version` line):
  * a spec whose content (any key, or the content of its data files) changed must bump `version`;
  * a version may go backwards only to a published version (that is a rollback);
  * with a store (`held`), an adapter that ends on a published version must declare the weights
    that version holds: the two-PR race (both bump to 1.1.0, each changes another key) planned
    against the PR head finds 1.1.0 published with other weights (registry.gitops.conflicts).
The weights key compared for bump-vs-retrain mirrors `registry.spec.fingerprint` without loading the
base model: the spec minus version/description/eval/publish, with data paths replaced by content
hashes. The base model ref is pinned (builtin name or 40-hex commit), so the ref identifies it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from registry.artifact import Provenance
from registry.core.git import (
    ContentHasher,
    DvcReader,
    GitReader,
    Snapshot,
    data_changes,
    norm_path,
)
from registry.core.semver import parse_version
from registry.errors import InvalidInput, Problem
from registry.gitops.conflicts import compare, declared_data, diff_keys
from registry.gitops.plan_index import specs_naming
from registry.spec.fingerprint import NOT_WEIGHTS
from registry.spec.loader import key_line, load_light
from registry.spec.schema import SPEC_FILENAME, parse_spec

TRAIN_ACTIONS = ("new", "retrain")  # the only actions that put an adapter in the matrix
_DATA_PATHS = ("data.train", "data.eval")  # where files live, not what they hold
_SPEC_RE = re.compile(rf"^adapters/([^/]+)/{re.escape(SPEC_FILENAME)}$")

Published = Callable[[str], Iterable[str]] | Mapping[str, Iterable[str]]
Held = Callable[[str, str], Provenance | None]  # (name, version) -> its registry.json in the store


@dataclass(frozen=True)
class PlanEntry:
    name: str
    action: str  # new | retrain | bump | rollback | retire | unchanged
    old_version: str | None
    new_version: str | None
    reason: str
    spec: str  # repo-relative path of the spec file
    reuse_version: str | None = None  # bump: the version whose weights are published again
    data_unverified: bool = False  # a DVC .dir listing was missing: data may have changed


@dataclass(frozen=True)
class Plan:
    base: str  # the commit compared against (merge base of the base ref and the head)
    head: str | None  # the head commit; None for the working tree
    entries: list[PlanEntry] = field(default_factory=list)

    @property
    def to_train(self) -> list[PlanEntry]:
        return [e for e in self.entries if e.action in TRAIN_ACTIONS]

    def to_json(self) -> dict[str, Any]:
        """`matrix` feeds `strategy.matrix: ${{ fromJSON(needs.plan.outputs.matrix) }}`.

        Actions rejects an empty matrix, so `matrix.include` may be empty only when `has_work`
        is false, and the training job is guarded with `if: needs.plan.outputs.has_work == 'true'`
        (a skipped job never expands its matrix).
        """
        include = [{"name": e.name, "version": e.new_version} for e in self.to_train]
        return {
            "base": self.base,
            "head": self.head,
            "has_work": bool(include),
            "adapters": [asdict(e) for e in self.entries],
            "matrix": {"include": include},
        }

    def describe(self) -> str:
        """One line per adapter, for people."""
        if not self.entries:
            return "no adapter changed"
        rows = []
        for e in self.entries:
            versions = f"{e.old_version or '-'} -> {e.new_version or '-'}"
            rows.append(f"{e.action:<9} {e.name:<24} {versions:<20} {e.reason}")
        return "\n".join(rows)


# -- the plan ------------------------------------------------------------------------------------


def _key_line(text: bytes | None, key: str) -> int | None:
    return key_line(text, key)  # bounded loader: spec blobs come from PRs


def _light(text: bytes | None) -> dict:
    """The raw YAML mapping, for specs that are not validated here (base side, candidates)."""
    return load_light(text)


def _data_roles(data: dict) -> dict[str, str]:
    """{"data.train#content": path, ...} for the data files a raw spec names."""
    d = data.get("data") if isinstance(data.get("data"), dict) else {}
    return {
        f"data.{k}#content": norm_path(d[k]) for k in ("train", "eval") if isinstance(d.get(k), str)
    }


def _data_paths(data: dict) -> list[str]:
    return list(_data_roles(data).values())


def _declared_before(git: GitReader, commit: str, path: str, version: str) -> bool:
    """Was `version` ever declared by this spec in the base history? (Stand-in for 'published'
    when no store is given: main's specs are what gets published.)"""
    log = git.run("log", "--format=", "-p", "-U0", "--no-ext-diff", commit, "--", path).decode()
    pattern = rf"^[+-]version:\s*['\"]?{re.escape(version)}['\"]?\s*(#.*)?$"
    return re.search(pattern, log, re.MULTILINE) is not None


_BUMP_HINT = "bump version: a published version never changes content"
_UNSURE = "data may have changed but its DVC .dir listing is not here (dvc fetch); not checked"


@dataclass(frozen=True)
class _Side:
    """One spec file on one side of the comparison."""

    text: bytes | None  # None: the file does not exist on this side
    raw: dict  # the YAML mapping as written (unvalidated)
    dump: dict | None  # the validated spec; None when absent or invalid


def _side(text: bytes | None, path: str, name: str, strict: bool) -> _Side:
    """Parse a spec; `strict` (the head side) turns problems into InvalidInput."""
    if text is None:
        return _Side(None, {}, None)
    try:
        spec = parse_spec(text, path)
        if spec.name != name:
            line = _key_line(text, "name")
            message = f"name {spec.name!r} differs from its folder {name!r}"
            raise InvalidInput([Problem(path, message, line=line, field="name")])
    except UnicodeDecodeError:
        if strict:
            raise InvalidInput([Problem(path, "spec file is not UTF-8 text")]) from None
        return _Side(text, {}, None)
    except InvalidInput:
        if strict:
            raise
        return _Side(text, _light(text), None)
    return _Side(text, _light(text), spec.model_dump(mode="json"))


def _content(dump: dict, hashes: dict[str, str]) -> dict:
    """The spec with each data file's content hash beside its path (`data.train#content`)."""
    data = dict(dump.get("data") or {})
    for key in ("train", "eval"):
        if isinstance(data.get(key), str):
            data[f"{key}#content"] = hashes.get(norm_path(data[key]), "missing")
    return {**dump, "data": data}


def _unsure(view: dict, key: str) -> bool:
    """Is `key` a data content hash that could not be verified (listing unavailable)?"""
    if not key.endswith("#content"):
        return False
    return str(view.get("data", {}).get(key.split(".", 1)[1], "")).startswith("unverified:")


def _describe(keys: list[str]) -> str:
    shown = [k.replace("#content", " content") for k in keys[:6]]
    return ", ".join(shown) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")


def _is_lower(version: str, than: str) -> bool:
    try:
        return parse_version(version) < parse_version(than)
    except InvalidInput:  # an invalid base version: nothing to go backwards from
        return False


def _decide(
    name: str,
    path: str,
    old: _Side,
    new: _Side,
    hashes: tuple[dict[str, str], dict[str, str]],
    is_published: Callable[[str, str, str, bool], bool],
) -> PlanEntry | Problem | None:
    """The action for one adapter whose spec or data changed (None: nothing really changed)."""
    old_version = str(old.raw["version"]) if old.raw.get("version") is not None else None
    if new.dump is None:
        return PlanEntry(name, "retire", old_version, None, "spec deleted", path)
    v = new.dump["version"]
    line = _key_line(new.text, "version")

    def entry(action: str, reason: str, **kw: Any) -> PlanEntry:
        return PlanEntry(name, action, old_version, v, reason, path, **kw)

    def problem(message: str, hint: str = _BUMP_HINT) -> Problem:
        return Problem(path, message, line=line, field="version", hint=hint)

    after = _content(new.dump, hashes[1])
    if old_version is None:
        if is_published(name, path, v, False):
            return entry("rollback", f"{v} is already published: it becomes current, no training")
        unsure = any(_unsure(after, f"data.{k}#content") for k in ("train", "eval"))
        return entry("new", "new adapter", data_unverified=unsure)
    before = _content(old.dump, hashes[0]) if old.dump else {"<base spec invalid>": True}
    changed = [k for k in diff_keys(before, after) if k != "version"]
    unsure = [k for k in changed if _unsure(before, k) or _unsure(after, k)]
    sure = [k for k in changed if k not in unsure]
    if v == old_version:
        if sure:
            return problem(f"the spec changed ({_describe(sure)}) but its version is still {v}")
        if unsure:
            return entry("unchanged", _UNSURE, data_unverified=True)
        return entry("unchanged", "formatting or comments only")
    backwards = _is_lower(v, old_version)
    if is_published(name, path, v, backwards):
        return entry("rollback", f"{v} is already published: the current version moves to it")
    if backwards:
        hint = f"use a version above {old_version}, or roll back to a published one"
        return problem(f"version goes backwards ({old_version} -> {v}) to an unpublished one", hint)
    weights = [k for k in changed if k.split(".")[0] not in NOT_WEIGHTS and k not in _DATA_PATHS]
    if weights:
        note = f" ({_UNSURE.split(';')[0]}: assumed changed)" if unsure else ""
        return entry(
            "retrain", f"changed: {_describe(weights)}{note}", data_unverified=bool(unsure)
        )
    what = f"changed: {_describe(changed)}" if changed else "version bump only"
    return entry("bump", f"{what}; weights of {old_version} reused", reuse_version=old_version)


def _decide_data_only(
    name: str,
    path: str,
    text: bytes | None,
    raw: dict,
    hashes: tuple[dict[str, str], dict[str, str]],
) -> PlanEntry | Problem | None:
    """An adapter whose spec file is unchanged but names a changed data file.

    The text is the same on both sides, so only the data hashes can differ: no need to validate
    the spec (this keeps the no-listing fallback cheap when it touches every adapter).
    """
    version = str(raw.get("version"))
    diffs = {k: p for k, p in _data_roles(raw).items() if hashes[0].get(p) != hashes[1].get(p)}
    sure = [k for k, p in diffs.items() if not any(h[p].startswith("unverified:") for h in hashes)]
    if sure:
        message = f"the spec changed ({_describe(sure)}) but its version is still {version}"
        line = _key_line(text, "version")
        return Problem(path, message, line=line, field="version", hint=_BUMP_HINT)
    if diffs:
        return PlanEntry(name, "unchanged", version, version, _UNSURE, path, data_unverified=True)
    return None  # named a changed data path only as text (a grep false positive)


def _against_store(
    entries: list[PlanEntry],
    texts: Mapping[str, bytes | None],
    ids: dict[str, str],
    top: Path,
    held: Held,
) -> tuple[list[PlanEntry], list[Problem]]:
    """Entries that end on a published version (rollback, unchanged) vs the store's copy of it:
    other weights under that number are a conflict, reported on the spec's `version` line with
    both fingerprints (registry.gitops.conflicts, the check `registry sync` makes)."""
    kept: list[PlanEntry] = []
    problems: list[Problem] = []
    for e in entries:
        manifest = None
        if e.action in ("rollback", "unchanged") and e.new_version:
            manifest = held(e.name, e.new_version)
        if manifest is None:
            kept.append(e)
            continue
        text = texts.get(e.spec)
        spec = parse_spec(text or b"", e.spec)
        check = compare(spec, declared_data(spec, ids, top), manifest)
        if check.conflict:
            line = _key_line(text, "version")
            problems.append(Problem(e.spec, check.line(), line=line, field="version"))
        else:
            kept.append(replace(e, reason=f"{e.reason}; {check.note()}") if check.unverified else e)
    return kept, problems


def plan(
    base_ref: str,
    *,
    repo: Path = Path("."),
    head_ref: str | None = "HEAD",
    published: Published | None = None,
    held: Held | None = None,
) -> Plan:
    """What changed between the merge base of `base_ref` and `head_ref`.

    `head_ref=None` plans the working tree (untracked files included; run `dvc add` first so
    `datasets.dvc` is current). `published` gives the store's versions of an adapter (a callable
    or a mapping); without it, a version declared earlier in the base history of the spec counts
    as published (main's specs are what `registry sync` publishes). `held` gives a published
    version's registry.json: then an adapter that ends on a published version whose weights
    differ from the head's spec and data is a problem too (a conflict, as sync reports it).
    Raises InvalidInput listing every problem found.
    """
    top = GitReader(Path(repo)).run("rev-parse", "--show-toplevel").decode().strip()
    git = GitReader(Path(top))  # paths in git's output are relative to the top
    base = git.commit(base_ref)
    head = git.commit(head_ref) if head_ref is not None else None
    merge_base = git.merge_base(base, head or git.commit("HEAD"))
    old, new, dvc = Snapshot(git, merge_base), Snapshot(git, head), DvcReader(git.repo)
    changes = git.changed(merge_base, head)
    spec_files = {m.group(1): p for p in changes if (m := _SPEC_RE.match(p))}

    # Specs whose file did not change but whose data did: found as text, confirmed below.
    data_files, unverified = data_changes(old, new, dvc, changes)
    needles = data_files | {f"{d}/" for d in unverified}
    data_only: dict[str, str] = {}
    for p in specs_naming(git, new, needles):
        if (m := _SPEC_RE.match(p)) and m.group(1) not in spec_files:
            data_only[m.group(1)] = p
    data_only_text = new.read(data_only.values())
    data_only_raw = {p: _light(t) for p, t in data_only_text.items()}

    problems: list[Problem] = []
    sides: dict[str, tuple[_Side, _Side]] = {}
    old_text, new_text = old.read(spec_files.values()), new.read(spec_files.values())
    for name, path in spec_files.items():
        try:
            new_side = _side(new_text[path], path, name, strict=True)
            sides[name] = (_side(old_text[path], path, name, strict=False), new_side)
        except InvalidInput as exc:
            problems += exc.problems
    # Hash every data path the specs name, in one batch per side.
    same = [p for raw in data_only_raw.values() for p in _data_paths(raw)]
    old_paths = [p for o, _ in sides.values() for p in _data_paths(o.raw)] + same
    new_paths = [p for _, n in sides.values() for p in _data_paths(n.raw)] + same
    hashes = (ContentHasher(old, dvc).hashes(old_paths), ContentHasher(new, dvc).hashes(new_paths))

    def is_published(name: str, path: str, version: str, backwards: bool) -> bool:
        if isinstance(published, Mapping):
            return version in set(published.get(name, ()))
        if published is not None:
            return version in set(published(name))
        # No store: only a step back is looked up (one `git log`), in the spec's base history.
        return backwards and _declared_before(git, merge_base, path, version)

    entries: list[PlanEntry] = []
    decisions = [
        _decide(name, spec_files[name], *sides[name], hashes, is_published) for name in sides
    ]
    for name, path in data_only.items():
        text, raw = data_only_text[path], data_only_raw[path]
        decisions.append(_decide_data_only(name, path, text, raw, hashes))
    for decided in decisions:
        if isinstance(decided, Problem):
            problems.append(decided)
        elif decided is not None:
            entries.append(decided)
    if held is not None:
        texts = {**new_text, **data_only_text}
        entries, conflicts = _against_store(entries, texts, hashes[1], git.repo, held)
        problems += conflicts
    if problems:
        raise InvalidInput(sorted(problems, key=lambda p: p.file))
    entries.sort(key=lambda e: e.name)
    return Plan(base=merge_base, head=head, entries=entries)
