"""Does the store hold, under the version main declares, the weights main's spec describes?

A published version never changes content, yet main can come to declare a published version
number with other content: two pull requests branched from one commit both bump to 1.1.0 and
change different keys (each plan passes against its base, git merges the identical version lines
cleanly), a direct push, a repo where the plan check is not required. `registry sync` and
`registry plan --store` ask this module before they treat a declared version as published, and
report a conflict instead of moving the current pointer to (or staying silent on) other weights.

What is compared: the weights view, the fingerprint's inputs that main's spec decides --
  * the spec minus version/description/eval/publish, data paths left out
    (`registry.spec.fingerprint.weights_spec`; the store's copy is re-validated by the current
    schema first, so a key added since with its default is no difference), the base model
    being named by its pinned ref, as `registry plan` does;
  * the sha256 of each data file that shapes the weights (`weights_data`: train, and eval when
    it drives validation), against the manifest's `datasets`.
Not compared: the recipe version and the base weights' sha256. A tool upgrade is no change of
main's spec, and a pinned ref names one base. Where both sides are known, main's fingerprint is
computed with the store's base identity, and an equal fingerprint is never a conflict.

The cost, at fleet scale: per adapter whose declared version is published, one small read of
that version's registry.json (`Store.manifest`) and the spec sync has parsed anyway; the data
side comes from the git/DVC metadata plan reads (`ContentHasher`: one `datasets.dvc` and its
`.dir` listing for the whole fleet), not from hashing datasets.

Bridging DVC's md5 to our sha256 (the choice): DVC names a file by its md5 (or git by its blob
id), the fingerprint by its sha256. A memo in the registry cache (`data-sha256/<md5|git>/<id>`)
maps a content id to the sha256 of that content. An entry is written only after one pass over
the local file computed both hashes and its md5 (or blob id) equalled the id, so an entry is a
fact about content, never about a path or a moment: a stale, unpulled or tampered working copy
cannot poison it (short of an md5 collision, which would fool DVC itself). With the runner's
cache kept, each dataset version is hashed once, ever; after that a sync reads no data at all.
Where neither the memo nor a matching local file knows the sha256 (plan on a runner without
`dvc pull`), that data file is reported as not verified, never assumed equal. Not chosen:
hashing every dataset on every sync (the cost grows with the fleet); recording DVC md5s in
the manifest (every version published so far lacks them; a possible later fast path).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.artifact import Provenance
from registry.core.cache import cache_dir
from registry.core.fs import atomic_file, sha256_file
from registry.core.git import ContentHasher, DvcReader, GitReader, Snapshot, norm_path
from registry.errors import InvalidInput
from registry.spec.fingerprint import NOT_WEIGHTS, fingerprint, weights_data, weights_spec
from registry.spec.schema import SPEC_FILENAME, Spec

_HEX = re.compile(r"^[0-9a-f]{32,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
ROLES = ("train", "eval")  # the keys of `data` that name files


def diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ (a missing key differs from any value)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(a.keys() | b.keys(), key=str):
            out += diff_keys(a.get(k, ...), b.get(k, ...), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if a == b else [prefix]


@dataclass(frozen=True)
class Check:
    """main's declared content vs the store's copy of the same version."""

    name: str
    version: str
    changed: tuple[str, ...]  # weights keys that differ: non-empty is a conflict
    unverified: tuple[str, ...]  # keys that could not be compared (data sha256 unknown here)
    store_fingerprint: str | None
    main_fingerprint: str | None  # None: not computable here (data unknown, other base)

    @property
    def conflict(self) -> bool:
        return bool(self.changed)

    @property
    def spec_file(self) -> str:
        return f"adapters/{self.name}/{SPEC_FILENAME}"

    def line(self) -> str:
        """The one line sync prints and plan reports: adapter, both fingerprints, the fix."""
        ours = self.main_fingerprint or "not computable here"
        return (
            f"{self.name} {self.version}: conflict: the store holds {self.version} with "
            f"fingerprint {self.store_fingerprint or 'unknown'}, main's spec declares other "
            f"weights (changed: {', '.join(self.changed)}; fingerprint {ours}); the store is "
            f"left as it is: bump version in {self.spec_file} to publish them"
        )

    def note(self) -> str:
        """Said beside the action when some of the content could not be compared."""
        return (
            f"not verified against the store's {self.version}: {', '.join(self.unverified)} "
            "(no sha256 known for its DVC md5 and no matching local file: dvc pull)"
        )


# -- main's side: data sha256 from git/DVC content ids ----------------------------------------


def _digests(path: Path) -> tuple[str, str, str]:
    """(md5, git blob id, sha256) of a file in one pass, bounded memory."""
    size = path.stat().st_size
    md5 = hashlib.md5(usedforsecurity=False)
    blob = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            md5.update(chunk)
            blob.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), blob.hexdigest(), sha.hexdigest()


def sha256_for(content_id: str, local: Path | None) -> str | None:
    """The sha256 of the content DVC/git names `content_id` (`md5:<hex>` or `git:<oid>`), from
    the memo, else from `local` when that file holds exactly that content; None when unknown
    (`missing`, an `unverified:` id, or no matching file here)."""
    kind, _, digest = content_id.partition(":")
    if kind not in ("md5", "git") or not _HEX.match(digest):
        return None
    memo = cache_dir("data-sha256", kind, digest)
    try:
        known = memo.read_text().strip()
        if _SHA256.match(known):
            return known
    except OSError:
        pass
    if local is None or not local.is_file():
        return None
    md5, blob, sha = _digests(local)
    if digest != (md5 if kind == "md5" else blob):
        return None  # the working copy is not that content (not pulled, edited): learn nothing
    try:
        with atomic_file(memo) as tmp:
            tmp.write_text(sha + "\n")
    except OSError:
        pass  # a read-only cache only costs a rehash next time
    return sha


def _local(top: Path, path: str) -> Path | None:
    """The working-tree file for a repo-relative path, when it stays inside the repo."""
    target = (top / path).resolve()
    return target if target.is_relative_to(top.resolve()) else None


def declared_data(
    spec: Spec, ids: Mapping[str, str], top: Path, prefix: str = ""
) -> dict[str, str | None]:
    """role -> sha256 (None: unknown here) of the data files that shape `spec`'s weights, from
    `ids` (repo-relative path -> content id, as ContentHasher gives them)."""
    out: dict[str, str | None] = {}
    for role in weights_data(spec):
        path = norm_path(os.path.join(prefix, getattr(spec.data, role)))
        out[role] = sha256_for(ids.get(path, "missing"), _local(top, path))
    return out


# -- the comparison -----------------------------------------------------------------------------


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


def stored_view(held: Provenance) -> dict | None:
    """The weights view of the spec a version was trained from (None: not recorded)."""
    raw = held.spec
    if not raw:
        return None
    try:
        return weights_spec(Spec.model_validate(raw))
    except ValueError:  # a schema the current one no longer accepts: compare as recorded
        view = {k: v for k, v in _drop_none(raw).items() if k not in NOT_WEIGHTS}
        data = view.get("data") if isinstance(view.get("data"), dict) else {}
        view["data"] = {k: v for k, v in data.items() if k not in ROLES}
        return view


def _main_fingerprint(spec: Spec, held: Provenance, data: Mapping[str, str | None]) -> str | None:
    """main's fingerprint with the store's base identity (same pinned ref: same base)."""
    from registry.spec.base_model import ResolvedModel

    base = held.base_model
    keys = ("model_id", "revision", "sha256")
    if held.base_ref != spec.base_model or not all(isinstance(base.get(k), str) for k in keys):
        return None
    if any(v is None for v in data.values()):
        return None
    resolved = ResolvedModel(spec.base_model, *(base[k] for k in keys[:2]), Path(), base["sha256"])
    return fingerprint(spec, resolved, dict(data))


def compare(spec: Spec, data: Mapping[str, str | None], held: Provenance) -> Check:
    """main's spec and data sha256s (`declared_data`) vs the store's copy of `spec.version`."""
    view = stored_view(held)
    changed: list[str] = []
    unverified: list[str] = []
    if view is None:
        unverified.append("the spec (the store's registry.json records none)")
    else:
        changed += diff_keys(view, weights_spec(spec))
    stored = held.data.get("datasets")
    stored = stored if isinstance(stored, dict) else {}
    # The files that shape main's weights (registry.spec.fingerprint.weights_data); a file the
    # store's version also hashed but that no longer shapes the weights is a tool change (the
    # recipe), not a change of main's spec.
    for role, ours in data.items():
        key = f"data.{role} content"
        if ours is None:
            unverified.append(key)
        elif ours != stored.get(role):
            changed.append(key)  # other content, or a file the store's version did not use
    main_fp = _main_fingerprint(spec, held, data) if changed else None
    if main_fp is not None and main_fp == held.fingerprint:
        changed = []  # the fingerprint is the truth: same inputs, same weights
    return Check(
        spec.name,
        spec.version,
        tuple(changed),
        tuple(unverified),
        held.fingerprint,
        main_fp,
    )


class Declared:
    """What main declares, read once per run: the content ids of every data file the specs
    under `root` name, from git/DVC metadata of `commit` (None: the working tree)."""

    def __init__(self, root: Path, specs: Iterable[Spec], commit: str | None = None) -> None:
        self.root, self.specs, self.commit = Path(root), list(specs), commit
        self._ids: dict[str, str] | None = None  # None: not read yet
        self._top: Path | None = None  # None: not a git repo
        self._prefix = ""

    def _load(self) -> None:
        try:
            top = GitReader(self.root).run("rev-parse", "--show-toplevel").decode().strip()
        except InvalidInput:  # not a git repo: the data files themselves are all there is
            self._ids = {}
            return
        git = GitReader(Path(top))
        self._top = Path(top)
        self._prefix = os.path.relpath(self.root.resolve(), Path(top).resolve())
        self._prefix = "" if self._prefix == "." else self._prefix
        paths = [
            norm_path(os.path.join(self._prefix, getattr(s.data, role)))
            for s in self.specs
            for role in weights_data(s)
        ]
        snapshot = Snapshot(git, self.commit)
        self._ids = ContentHasher(snapshot, DvcReader(git.repo)).hashes(paths)

    def data(self, spec: Spec) -> dict[str, str | None]:
        if self._ids is None:
            self._load()
        assert self._ids is not None
        if self._top is None:  # no git: hash the files (what training would read)
            files = {"train": spec.train_path, "eval": spec.eval_path}
            return {
                role: sha256_file(files[role]) if files[role].is_file() else None
                for role in weights_data(spec)
            }
        return declared_data(spec, self._ids, self._top, self._prefix)

    def check(self, spec: Spec, store) -> Check | None:
        """None when `spec.version` is not published in `store`."""
        held = store.manifest(spec.name, spec.version)
        return None if held is None else compare(spec, self.data(spec), held)
