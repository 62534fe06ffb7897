"""registry.gitops.plan_index: which specs name a changed data file, from an index of the spec
texts keyed by the adapters/ tree id. It answers as `git grep -F` does, cold or warm; a damaged
index is never used; a new tree reads only the specs an earlier index does not hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_plan import Repo, data_for, spec_text

from registry.core.cache import cache_dir
from registry.core.git import GitReader, Snapshot
from registry.gitops import plan_index
from registry.gitops.plan import plan
from registry.spec.schema import SPEC_FILENAME

NEEDLES = [
    {"datasets/alpha/train.jsonl"},
    {"datasets/shared.jsonl"},
    {"datasets/beta/eval.jsonl", "datasets/gamma/train.jsonl"},
    {"datasets/"},
    {"datasets/alpha/"},
    {"nowhere.jsonl"},
]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch) -> Repo:
    monkeypatch.setenv("REGISTRY_CACHE", str(tmp_path / "cache"))
    r = Repo(tmp_path / "repo")
    r.write_spec("alpha")
    r.write_spec("beta", description="like datasets/alpha/train.jsonl, but shorter")
    shared = spec_text("gamma").replace("datasets/gamma/eval.jsonl", "datasets/shared.jsonl")
    r.write_spec("gamma", text=shared)
    r.write_spec("delta", text=shared.replace("gamma", "delta"))
    (r.root / "adapters" / "README.md").write_text("datasets/alpha/train.jsonl\n")  # not a spec
    r.write_data({**data_for("alpha", "beta", "gamma", "delta"), "shared.jsonl": "{}\n"})
    r.commit("main")
    return r


def lookups(repo: Repo) -> list[list[str]]:
    git = GitReader(repo.root)
    snap = Snapshot(git, git.commit("HEAD"))
    return [plan_index.specs_naming(git, snap, needles) for needles in NEEDLES]


def grep(repo: Repo) -> list[list[str]]:
    git = GitReader(repo.root)
    snap = Snapshot(git, git.commit("HEAD"))
    return [sorted(snap.grep(n, f"adapters/*/{SPEC_FILENAME}")) for n in NEEDLES]


def test_the_index_answers_as_git_grep_cold_and_warm(repo: Repo) -> None:
    expected = grep(repo)
    assert expected[0] == ["adapters/alpha/adapter.yaml", "adapters/beta/adapter.yaml"]
    assert expected[1] == ["adapters/delta/adapter.yaml", "adapters/gamma/adapter.yaml"]
    assert lookups(repo) == expected  # cold: builds the index
    assert list(cache_dir("plan-index").glob("*.json"))
    assert lookups(repo) == expected  # warm: from the index


def test_a_damaged_index_is_dropped_and_rebuilt(repo: Repo) -> None:
    expected = grep(repo)
    lookups(repo)
    (index,) = cache_dir("plan-index").glob("*.json")
    entry = json.loads(index.read_text())
    blob, text = entry["specs"]["gamma/adapter.yaml"]
    entry["specs"]["gamma/adapter.yaml"] = [blob, text.replace("shared", "hidden")]
    index.write_text(json.dumps(entry))
    assert lookups(repo) == expected
    index.write_text("{truncated")
    assert lookups(repo) == expected


def test_a_new_tree_reads_only_the_specs_it_changed(repo: Repo, monkeypatch) -> None:
    lookups(repo)
    repo.write_spec("beta", version="1.1.0")
    repo.write_spec("epsilon")
    repo.commit("beta 1.1.0, epsilon")
    read: list[bytes] = []
    real_run = GitReader.run

    def run(self, *args, stdin=None, **kw):
        if args[:2] == ("cat-file", "--batch") and stdin:
            read.extend(stdin.split())
        return real_run(self, *args, stdin=stdin, **kw)

    monkeypatch.setattr(GitReader, "run", run)
    found = lookups(repo)
    wanted = repo.git(
        "rev-parse", "HEAD:adapters/beta/adapter.yaml", "HEAD:adapters/epsilon/adapter.yaml"
    )
    assert sorted(read) == sorted(wanted.encode().split())
    monkeypatch.setattr(GitReader, "run", real_run)
    assert found == grep(repo)


def test_the_working_tree_and_oversized_specs_use_git_grep(repo: Repo, monkeypatch) -> None:
    git = GitReader(repo.root)
    worktree = Snapshot(git, None)
    assert plan_index.specs_naming(git, worktree, {"datasets/shared.jsonl"}) == [
        "adapters/delta/adapter.yaml",
        "adapters/gamma/adapter.yaml",
    ]
    monkeypatch.setattr(plan_index, "MAX_TOTAL", 10)
    assert lookups(repo) == grep(repo)
    assert not list(cache_dir("plan-index").glob("*.json"))


def test_a_data_only_change_is_planned_through_the_index(repo: Repo) -> None:
    repo.branch()
    repo.write_data({"shared.jsonl": '{"changed": 1}\n'})
    repo.write_spec("gamma", text=spec_text("gamma", version="1.1.0").replace(
        "datasets/gamma/eval.jsonl", "datasets/shared.jsonl"))  # fmt: skip
    repo.commit()
    with pytest.raises(Exception) as info:  # delta shares the file and did not bump
        plan("main", repo=repo.root, published={})
    assert [p.file for p in info.value.problems] == ["adapters/delta/adapter.yaml"]
