"""The GitOps loop end to end: the workflows' command sequence in a temporary git + DVC repo.

Every step runs the real `registry` CLI in a subprocess, as the PR and publish workflows do:
PR: plan --json -> dvc pull -> validate -> train -> eval (the gate); main: validate -> sync.
Covered: publish on merge, pull by version, rollback by `git revert` (no training), a burst of
three merges synced once (all three versions published), and retirement of a deleted spec,
against the local store and against the Hub test server with the real huggingface_hub client.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gitrepo import Repo, actions, add_toy, bump, hub_env, make_repo

pytestmark = pytest.mark.slow


def _run_files(repo: Repo) -> dict[str, float]:
    """Every file training or evaluation writes in the repo, with its mtime."""
    runs = repo.root / "runs"
    return (
        {str(p): p.stat().st_mtime for p in runs.rglob("*") if p.is_file()} if runs.exists() else {}
    )


def test_pr_merge_publish_pull_revert_burst_retire(tmp_path: Path):
    repo = make_repo(tmp_path, (tmp_path / "store").as_uri(), {})

    # PR 1: a new adapter. CI trains and gates it; merge; sync publishes it.
    repo.pr("add-toy", "Add toy 1.0.0", lambda: add_toy(repo))
    (entry,) = repo.pr_ci()
    assert entry["action"] == "new"
    repo.merge("add-toy")
    result = repo.sync()
    assert actions(result) == {("toy", "1.0.0"): "published"}
    # the PR's evaluation (same weights, eval config, previous version) is reused, not redone
    assert "reused cached weights and their evaluation" in result[0]["detail"]
    assert [v["version"] for v in repo.versions()] == ["1.0.0"]
    pulled = repo.registry("pull", "toy@1.0.0", "--out", str(tmp_path / "pulled"))
    assert "toy 1.0.0 @" in pulled.stdout

    # Re-running sync is a no-op.
    assert actions(repo.sync()) == {("toy", "1.0.0"): "current"}

    # PR 2: retrain as 1.1.0; merge; sync publishes and moves current.
    repo.pr("toy-r4", "toy 1.1.0", lambda: bump(repo, "1.1.0", r=4, alpha=8))
    assert repo.pr_ci()[0]["action"] == "retrain"
    merge_2 = repo.merge("toy-r4")
    result = repo.sync()
    assert actions(result) == {("toy", "1.1.0"): "published"}
    assert "and their evaluation" in result[0]["detail"]  # PR 2 compared against 1.0.0 too
    report = json.loads((repo.root / "out" / "toy" / "report.json").read_text())
    assert report["contenders"] == ["base", "adapter", "previous"]

    # Roll back by reverting the merge: no training, seconds.
    repo.git("revert", "--no-edit", "-m", "1", merge_2)
    before = _run_files(repo)
    result = repo.sync()
    assert actions(result) == {("toy", "1.0.0"): "rollback"}
    assert _run_files(repo) == before  # nothing trained or evaluated: only the pointer moved
    assert [v["version"] for v in repo.versions() if v["current"]] == ["1.0.0"]
    current = repo.registry("pull", "toy", "--out", str(tmp_path / "current")).stdout
    assert current.startswith("toy 1.0.0 @")

    # A burst: three merges land before any sync runs (GitHub cancels the pending runs in
    # between); one sync publishes all three. Description-only bumps keep it fast: the
    # weights are reused by fingerprint, the versions are new.
    for i, version in enumerate(["1.2.0", "1.3.0", "1.4.0"]):

        def change(v=version):
            bump(repo, v)
            spec = repo.spec()
            spec["description"] = f"toy {v}"
            repo.write_spec(spec)

        repo.pr(f"burst-{i}", f"toy {version}", change)
        repo.merge(f"burst-{i}")
    result = actions(repo.sync())
    assert {k: v for k, v in result.items() if v == "published"} == {
        ("toy", "1.2.0"): "published",
        ("toy", "1.3.0"): "published",
        ("toy", "1.4.0"): "published",
    }
    infos = repo.versions()
    assert [v["version"] for v in infos] == ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0"]
    assert [v["version"] for v in infos if v["current"]] == ["1.4.0"]

    # Deleting the spec retires the adapter; its versions stay pullable by exact version.
    repo.git("rm", "-q", "-r", "adapters/toy")
    repo.git("commit", "-q", "-m", "Retire toy")
    assert actions(repo.sync()) == {("toy", None): "retired"}
    assert repo.registry("pull", "toy", ok=False).returncode == 2
    assert repo.registry("pull", "toy@1.2.0").returncode == 0


def test_publish_and_rollback_on_the_hub_test_server(tmp_path: Path, monkeypatch):
    from hub_server import running_hub

    with running_hub(monkeypatch) as hub:
        repo = make_repo(tmp_path, "hf://acme", hub_env(hub.url))
        repo.pr("add-toy", "Add toy 1.0.0", lambda: add_toy(repo))
        repo.pr_ci()
        repo.merge("add-toy")
        assert actions(repo.sync()) == {("toy", "1.0.0"): "published"}
        # a version bump without retraining: same weights, new version, no training
        repo.pr("toy-110", "toy 1.1.0", lambda: bump(repo, "1.1.0"))
        merge = repo.merge("toy-110")
        assert actions(repo.sync()) == {("toy", "1.1.0"): "published"}
        repo.git("revert", "--no-edit", "-m", "1", merge)
        assert actions(repo.sync()) == {("toy", "1.0.0"): "rollback"}
        assert [v["version"] for v in repo.versions() if v["current"]] == ["1.0.0"]
        out = repo.registry("pull", "toy", "--out", str(tmp_path / "pulled"))
        assert out.stdout.startswith("toy 1.0.0 @")
        # the token reached every Hub call, and no command printed it
        writes = [r for r in hub.log if r.method in ("POST", "DELETE")]
        assert writes and all(
            r.authorization == "Bearer hf_test_token_never_printed" for r in writes
        )
        assert repo.transcript and not any(
            "hf_test_token_never_printed" in t for t in repo.transcript
        )


def test_sync_full_trusts_no_cache_on_the_hub_test_server(tmp_path: Path, monkeypatch):
    """A warm no-op sync costs one listing of the org; `--full` makes every read a cold run
    makes; and only `--full` sees a tag moved against the contract (tags never move, so the
    warm run trusts the one it remembers; pull resolves afresh either way)."""
    import yaml
    from hub_server import running_hub
    from storekit import make_files

    from registry.core.fs import sha256_file
    from registry.store.hub import HubStore

    with running_hub(monkeypatch) as hub:
        env = {**hub_env(hub.url), "REGISTRY_CACHE": str(tmp_path / "cache")}
        repo = make_repo(tmp_path, "hf://acme", env)
        add_toy(repo)
        repo.dvc("add", "-q", "datasets")
        repo.git("add", "-A")
        repo.git("commit", "-q", "-m", "toy 1.0.0")
        data = {r: sha256_file(repo.root / f"datasets/toy/{r}.jsonl") for r in ("train", "eval")}

        def version_files(fingerprint: str, **extra) -> dict[str, bytes]:
            files = make_files("1.0.0", fingerprint=fingerprint)
            manifest = {**json.loads(files["registry.json"]), "datasets": data, **extra}
            return {**files, "registry.json": json.dumps(manifest).encode()}

        store = HubStore("acme")  # an earlier run published it: seeded, nothing is trained here
        store.publish("toy", "1.0.0", version_files("fp-toy"))
        store.set_current("toy", "1.0.0")
        runs = {}
        for label, args in [("cold", ()), ("warm", ()), ("full", ("--full",))]:
            hub.clear_log()
            result = json.loads(repo.registry("sync", "--quiet", "--json", *args).stdout)
            # (huggingface_hub itself fetches /api/agent-harnesses once a day: not ours)
            ours = [r for r in hub.requests() if r[1] != "/api/agent-harnesses"]
            runs[label] = (actions(result), ours)
        assert all(done == {("toy", "1.0.0"): "current"} for done, _ in runs.values()), runs
        assert runs["warm"][1] == [("GET", "/api/models")]
        assert len(runs["full"][1]) == len(runs["cold"][1]) > 1, runs

        # v1.0.0 deleted and made again on other weights (by hand, against the contract)
        spec = yaml.safe_load((repo.root / "adapters/toy/adapter.yaml").read_text())
        spec["lora"]["r"] = 4
        files = version_files("fp-other", spec=spec)
        hub_repo = hub.repos["acme/toy"]
        hub_repo.tags["v1.0.0"] = hub.new_commit(hub_repo, files, hub_repo.branches["main"], "x")
        warm = json.loads(repo.registry("sync", "--quiet", "--json").stdout)
        assert actions(warm) == {("toy", "1.0.0"): "current"}
        full = repo.registry("sync", "--quiet", "--json", "--full", ok=False)
        assert full.returncode == 4, full.stdout + full.stderr
        assert actions(json.loads(full.stdout)) == {("toy", "1.0.0"): "conflict"}
        assert "fp-other" in full.stdout
