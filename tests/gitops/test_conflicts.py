"""Main declaring a published version with other weights: sync and plan say so, the store stays.

End to end in a temporary git + DVC repo driven by the real CLI (tests/gitrepo.py), on the tiny
model: the two-PR race (both bump toy to 1.1.0, one changes the seed, the other the rank; git
merges them cleanly) against the local store, and a same-version data change pushed to main
against the Hub test server. Each ends with `sync` exit 4 naming toy and both fingerprints,
toy's versions and current pointer untouched, the other adapter synced; a version bump then
publishes normally. The md5 -> sha256 memo behind the cheap comparison is tested on real files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import TOY_SPEC, toy_records, write_jsonl
from gitrepo import Repo, actions, add_toy, bump, hub_env, make_repo

from registry.core.cache import cache_dir
from registry.gitops.conflicts import sha256_for


def add_fleet(repo: Repo) -> None:
    """toy and pal at 1.0.0, specs in block style so that PRs touch single lines (and git
    merges two PRs that change different keys without a conflict)."""
    add_toy(repo)
    repo.write_spec(repo.spec())
    pal = yaml.safe_load(TOY_SPEC.format(max_steps=12))
    pal["name"] = "pal"
    pal["data"].update(train="datasets/pal/train.jsonl", eval="datasets/pal/eval.jsonl")
    repo.write_spec(pal, "pal")
    write_jsonl(repo.root / "datasets/pal/train.jsonl", toy_records(64, seed=3))
    write_jsonl(repo.root / "datasets/pal/eval.jsonl", toy_records(16, seed=4, offset=1000))


def push(repo: Repo, title: str, change) -> None:
    """A commit straight on main (a direct push, or a repo without the required plan check)."""
    repo.git("checkout", "-q", "main")
    change()
    repo.dvc("add", "-q", "datasets")
    repo.dvc("push", "-q")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", title)


def edit(repo: Repo, name: str, **changes) -> None:
    """Set dotted keys of a spec, e.g. edit(repo, "toy", **{"training.seed": 1})."""
    spec = repo.spec(name)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = spec
        for key in parents:
            node = node[key]
        node[leaf] = value
    repo.write_spec(spec, name)


def sync(repo: Repo) -> tuple[int, dict[tuple[str, str | None], dict], str]:
    """The publish workflow's steps; returns (exit code, action by (name, version), stderr)."""
    repo.registry("validate", "--no-tokens")
    proc = repo.registry("sync", "--quiet", "--json", ok=False)
    assert proc.returncode in (0, 4), proc.stdout + proc.stderr
    return (
        proc.returncode,
        {(a["name"], a["declared"]): a for a in json.loads(proc.stdout)},
        proc.stderr,
    )


def state(repo: Repo, name: str) -> list[tuple]:
    """What the store holds for an adapter: (version, commit, fingerprint, current) each."""
    return [
        (v["version"], v["commit"], v["fingerprint"], v["current"]) for v in repo.versions(name)
    ]


def fingerprint(repo: Repo, name: str, version: str) -> str:
    (fp,) = [f for v, _, f, _ in state(repo, name) if v == version]
    return fp


def assert_conflict_line(line: str, store_fp: str, changed: str) -> None:
    assert line.startswith("toy ") and ": conflict: " in line
    assert f"fingerprint {store_fp}" in line  # the store's
    ours = line.split("; fingerprint ", 1)[1].split(")", 1)[0]
    assert ours.startswith("sha256:") and ours != store_fp  # main's, computed
    assert changed in line
    assert "bump version in adapters/toy/adapter.yaml" in line


pytestmark = pytest.mark.slow


def test_two_prs_bumping_to_the_same_version_conflict_until_a_bump(tmp_path: Path):
    repo = make_repo(tmp_path, (tmp_path / "store").as_uri(), {})
    push(repo, "toy and pal 1.0.0", lambda: add_fleet(repo))
    code, result, _ = sync(repo)
    assert code == 0
    assert {k: a["action"] for k, a in result.items()} == {
        ("pal", "1.0.0"): "published",
        ("toy", "1.0.0"): "published",
    }

    # Two PRs from the same commit both bump toy to 1.1.0; one changes the seed, one the rank.
    def seed() -> None:
        bump(repo, "1.1.0")
        edit(repo, "toy", **{"training.seed": 1})

    repo.pr("seed", "toy 1.1.0: seed 1", seed)
    repo.pr("rank", "toy 1.1.0: rank 4", lambda: bump(repo, "1.1.0", r=4))
    repo.merge("seed")
    code, result, _ = sync(repo)
    assert code == 0 and result[("toy", "1.1.0")]["action"] == "published"
    before = state(repo, "toy")
    published_fp = fingerprint(repo, "toy", "1.1.0")

    # The PR check, planned against the PR head with the store, catches the race before merge.
    planned = repo.registry(
        "plan", "--base", "main", "--head", "rank", "--store", repo.store_url, ok=False
    )
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert "adapters/toy/adapter.yaml:2: version:" in planned.stderr
    assert_conflict_line(planned.stderr.split("error: ", 1)[1], published_fp, "lora.r")
    # With "require branches to be up to date" the second PR takes main in first; its plan then
    # finds 1.1.0 on the base with other content and refuses it too.
    repo.git("checkout", "-q", "-b", "rank-updated", "rank")
    repo.git("merge", "-q", "--no-edit", "main")
    repo.git("checkout", "-q", "main")
    updated = repo.registry("plan", "--base", "main", "--head", "rank-updated", ok=False)
    assert updated.returncode == 2, updated.stdout + updated.stderr
    assert "(lora.r) but its version is still 1.1.0" in updated.stderr

    # Unchecked, git merges the second PR cleanly: main declares 1.1.0 with weights nobody
    # trained. pal moves on in the same push.
    repo.merge("rank")
    spec = repo.spec()
    assert (spec["version"], spec["training"]["seed"], spec["lora"]["r"]) == ("1.1.0", 1, 4)
    push(repo, "pal 1.1.0", lambda: edit(repo, "pal", version="1.1.0", description="pal 1.1.0"))
    code, result, stderr = sync(repo)
    assert code == 4
    toy = result[("toy", "1.1.0")]
    assert toy["action"] == "conflict"
    assert_conflict_line(toy["detail"], published_fp, "lora.r")
    assert toy["detail"] in stderr  # the run's last word names it too
    assert result[("pal", "1.1.0")]["action"] == "published"  # the others still sync
    assert state(repo, "toy") == before  # no version, no current move
    assert [v for v, *_, current in state(repo, "pal") if current] == ["1.1.0"]

    # A dry run says the same and changes nothing either.
    dry = repo.registry("sync", "--dry-run", "--quiet", "--json", ok=False)
    assert dry.returncode == 4
    assert state(repo, "toy") == before

    # The fix the line names: bump the version. Sync publishes it normally.
    push(repo, "toy 1.2.0", lambda: bump(repo, "1.2.0"))
    code, result, _ = sync(repo)
    assert code == 0
    assert result[("toy", "1.2.0")]["action"] == "published"
    assert result[("pal", "1.1.0")]["action"] == "current"
    assert [v for v, *_, current in state(repo, "toy") if current] == ["1.2.0"]
    # 1.0.0 and 1.1.0 as they were (commit, fingerprint); current moved on to 1.2.0
    assert [v[:3] for v in state(repo, "toy")[:2]] == [v[:3] for v in before]


def test_same_version_data_change_pushed_to_main_on_the_hub(tmp_path: Path, monkeypatch):
    from hub_server import running_hub

    with running_hub(monkeypatch) as hub:
        repo = make_repo(tmp_path, "hf://acme", hub_env(hub.url))
        push(repo, "toy and pal 1.0.0", lambda: add_fleet(repo))
        code, result, _ = sync(repo)
        assert code == 0
        before = state(repo, "toy")
        published_fp = fingerprint(repo, "toy", "1.0.0")

        # A push to main changes toy's training data and keeps 1.0.0; pal is bumped with it.
        def change() -> None:
            write_jsonl(repo.root / "datasets/toy/train.jsonl", toy_records(64, seed=5))
            edit(repo, "pal", version="1.1.0", description="pal 1.1.0")

        push(repo, "toy: new data, same version", change)
        code, result, stderr = sync(repo)
        assert code == 4
        toy = result[("toy", "1.0.0")]
        assert toy["action"] == "conflict"
        assert_conflict_line(toy["detail"], published_fp, "data.train content")
        assert toy["detail"] in stderr
        assert result[("pal", "1.1.0")]["action"] == "published"
        assert state(repo, "toy") == before

        # After a version bump, sync publishes it normally.
        push(repo, "toy 1.1.0", lambda: bump(repo, "1.1.0"))
        code, result, _ = sync(repo)
        assert code == 0
        assert result[("toy", "1.1.0")]["action"] == "published"
        assert [v for v, *_, current in state(repo, "toy") if current] == ["1.1.0"]

        # Cheap: with the data files gone, the check still compares everything (from the git/DVC
        # metadata and the memo), so nothing is reported unverified and nothing is re-hashed.
        shutil.rmtree(repo.root / "datasets")
        proc = repo.registry("sync", "--quiet", "--json")
        again = json.loads(proc.stdout)
        assert actions(again) == {("pal", "1.1.0"): "current", ("toy", "1.1.0"): "current"}
        assert not any("not verified" in a["detail"] for a in again)
        assert not any("hf_test_token_never_printed" in t for t in repo.transcript)


def test_the_md5_to_sha256_memo_learns_only_from_matching_files(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("REGISTRY_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "train.jsonl"
    data.write_bytes(b'{"prompt": "cat", "completion": "meow"}\n')
    md5 = hashlib.md5(data.read_bytes()).hexdigest()
    sha = hashlib.sha256(data.read_bytes()).hexdigest()
    other = hashlib.md5(b"other content").hexdigest()

    # A working copy that is not the content DVC names teaches nothing.
    assert sha256_for(f"md5:{other}", data) is None
    assert not cache_dir("data-sha256", "md5", other).exists()
    # The matching file is hashed once; afterwards the memo answers without any file.
    assert sha256_for(f"md5:{md5}", data) == sha
    data.unlink()
    assert sha256_for(f"md5:{md5}", None) == sha
    assert sha256_for(f"md5:{md5}", data) == sha

    # git-tracked data is named by its blob id, checked the same way.
    data.write_bytes(b"line\n")
    blob = subprocess.run(
        ["git", "hash-object", str(data)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert sha256_for(f"git:{blob}", data) == hashlib.sha256(b"line\n").hexdigest()
    assert sha256_for(f"git:{'0' * 40}", data) is None

    # Ids that name no known content are unknown, never a guess.
    for content_id in ("missing", f"unverified:{md5}.dir:train.jsonl", "md5:../../etc"):
        assert sha256_for(content_id, data) is None
