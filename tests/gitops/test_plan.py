"""registry.gitops.plan on real temporary git repos: what a change asks CI to do."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from registry.errors import InvalidInput
from registry.gitops.plan import plan

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def spec_text(name: str, version: str = "1.0.0", r: int = 8, description: str = "demo") -> str:
    return (
        f"name: {name}\n"
        f"version: {version}\n"
        f"description: {description}\n"
        "base_model: builtin:tiny-llama\n"
        f"lora: {{r: {r}, alpha: 16}}\n"
        "data:\n"
        "  format: chat\n"
        f"  train: datasets/{name}/train.jsonl\n"
        f"  eval: datasets/{name}/eval.jsonl\n"
        "training: {max_steps: 5}\n"
    )


class Repo:
    """A registry repo under git, its datasets tracked through a hand-written datasets.dvc."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.git("init", "-q", "-b", "main")
        (root / ".gitignore").write_text("/datasets/\n/.dvc/cache/\n")

    def git(self, *args: str) -> str:
        env = {**os.environ, **GIT_ENV}
        out = subprocess.run(
            ["git", *args], cwd=self.root, env=env, check=True, capture_output=True
        )
        return out.stdout.decode()

    def write_spec(self, name: str, text: str | None = None, **kw) -> None:
        path = self.root / "adapters" / name / "adapter.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text if text is not None else spec_text(name, **kw))

    def remove_spec(self, name: str) -> None:
        shutil.rmtree(self.root / "adapters" / name)

    def write_data(self, files: dict[str, str], cache: bool = True) -> None:
        """Write datasets/ files and track the folder as DVC does (datasets.dvc + .dir object)."""
        for rel, content in files.items():
            path = self.root / "datasets" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        entries = []
        for path in sorted(p for p in (self.root / "datasets").rglob("*") if p.is_file()):
            md5 = hashlib.md5(path.read_bytes()).hexdigest()
            entries.append(
                {"md5": md5, "relpath": path.relative_to(self.root / "datasets").as_posix()}
            )
        listing = json.dumps(entries).encode()
        dir_md5 = hashlib.md5(listing).hexdigest()
        if cache:
            obj = self.root / ".dvc/cache/files/md5" / dir_md5[:2] / f"{dir_md5[2:]}.dir"
            obj.parent.mkdir(parents=True, exist_ok=True)
            obj.write_bytes(listing)
        (self.root / "datasets.dvc").write_text(
            f"outs:\n- md5: {dir_md5}.dir\n  hash: md5\n  path: datasets\n"
        )

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def branch(self, name: str = "pr") -> None:
        self.git("checkout", "-q", "-b", name)


def data_for(*names: str, tag: str = "") -> dict[str, str]:
    return {
        f"{n}/{split}.jsonl": json.dumps({"prompt": f"{n} {split} {tag}", "completion": "x"}) + "\n"
        for n in names
        for split in ("train", "eval")
    }


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """main holds adapters alpha@1.0.0 and beta@1.0.0; the test continues on branch `pr`."""
    r = Repo(tmp_path / "repo")
    r.write_spec("alpha")
    r.write_spec("beta")
    r.write_data(data_for("alpha", "beta"))
    r.commit("main")
    r.branch()
    return r


def run_plan(repo: Repo, **kw):
    return plan("main", repo=repo.root, **kw)


def by_name(result) -> dict:
    return {e.name: e for e in result.entries}


def test_new_spec_is_trained(repo: Repo) -> None:
    repo.write_spec("gamma")
    repo.write_data(data_for("gamma"))
    repo.commit()
    result = run_plan(repo, published={})
    assert [(e.name, e.action, e.old_version, e.new_version) for e in result.entries] == [
        ("gamma", "new", None, "1.0.0")
    ]
    assert result.to_json()["matrix"] == {"include": [{"name": "gamma", "version": "1.0.0"}]}


def test_weights_change_with_bump_retrains(repo: Repo) -> None:
    repo.write_spec("alpha", version="1.1.0", r=16)
    repo.commit()
    (entry,) = run_plan(repo, published={"alpha": {"1.0.0"}}).entries
    assert (entry.action, entry.old_version, entry.new_version) == ("retrain", "1.0.0", "1.1.0")
    assert "lora.r" in entry.reason


def test_version_bump_alone_reuses_weights(repo: Repo) -> None:
    repo.write_spec("alpha", version="1.0.1", description="better words")
    repo.commit()
    result = run_plan(repo, published={"alpha": {"1.0.0"}})
    (entry,) = result.entries
    assert (entry.action, entry.reuse_version) == ("bump", "1.0.0")
    assert "description" in entry.reason
    assert result.to_json()["has_work"] is False
    assert result.to_json()["matrix"] == {"include": []}


def test_content_change_without_bump_is_invalid(repo: Repo) -> None:
    repo.write_spec("alpha", r=4)
    repo.commit()
    with pytest.raises(InvalidInput) as info:
        run_plan(repo, published={"alpha": {"1.0.0"}})
    assert info.value.exit_code == 2
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.field) == (
        "adapters/alpha/adapter.yaml",
        2,
        "version",
    )
    assert "lora.r" in problem.message and "1.0.0" in problem.message


def test_comment_only_edit_needs_no_bump(repo: Repo) -> None:
    repo.write_spec("alpha", text="# tuned by hand\n" + spec_text("alpha"))
    repo.commit()
    (entry,) = run_plan(repo, published={}).entries
    assert (entry.action, entry.reason) == ("unchanged", "formatting or comments only")


def test_version_backwards_to_unpublished_is_invalid(repo: Repo) -> None:
    repo.write_spec("alpha", version="0.9.0")
    repo.commit()
    with pytest.raises(InvalidInput) as info:
        run_plan(repo, published={"alpha": {"1.0.0"}})
    (problem,) = info.value.problems
    assert problem.line == 2 and problem.field == "version"
    assert "backwards" in problem.message


def test_version_backwards_to_published_is_rollback(repo: Repo) -> None:
    repo.write_spec("alpha", version="0.9.0", r=4)
    repo.commit()
    result = run_plan(repo, published={"alpha": {"0.9.0", "1.0.0"}})
    (entry,) = result.entries
    assert (entry.action, entry.old_version, entry.new_version) == ("rollback", "1.0.0", "0.9.0")
    assert result.to_json()["matrix"]["include"] == []


def test_revert_rolls_back_using_history_when_no_store(repo: Repo) -> None:
    repo.git("checkout", "-q", "main")
    repo.write_spec("alpha", version="1.1.0", r=16)
    bumped = repo.commit("1.1.0")
    repo.git("checkout", "-q", "-B", "pr")
    repo.git("revert", "--no-edit", bumped)
    (entry,) = run_plan(repo).entries  # published=None: main's history stands in for the store
    assert (entry.action, entry.new_version) == ("rollback", "1.0.0")


def test_deleted_spec_is_retired(repo: Repo) -> None:
    repo.remove_spec("beta")
    repo.commit()
    (entry,) = run_plan(repo, published={}).entries
    assert (entry.name, entry.action, entry.old_version, entry.new_version) == (
        "beta",
        "retire",
        "1.0.0",
        None,
    )


def test_untouched_adapters_are_absent(repo: Repo) -> None:
    repo.commit("empty")
    result = run_plan(repo, published={})
    assert result.entries == []
    assert result.to_json() == {
        "base": result.base,
        "head": result.head,
        "has_work": False,
        "adapters": [],
        "matrix": {"include": []},
    }


def test_dataset_change_with_bump_retrains_only_that_adapter(repo: Repo) -> None:
    repo.write_data(data_for("alpha", tag="v2"))
    repo.write_spec("alpha", version="1.1.0")
    repo.commit()
    result = run_plan(repo, published={})
    (entry,) = result.entries  # beta's data did not change: absent
    assert (entry.name, entry.action, entry.data_unverified) == ("alpha", "retrain", False)
    assert "data.train content" in entry.reason


def test_spec_mentioning_a_changed_path_as_text_is_not_affected(repo: Repo) -> None:
    repo.git("checkout", "-q", "main")
    repo.write_spec("beta", description="like datasets/alpha/train.jsonl, but shorter")
    repo.commit("beta mentions alpha's data in its description")
    repo.git("checkout", "-q", "-B", "pr")
    repo.write_data(data_for("alpha", tag="v2"))
    repo.write_spec("alpha", version="1.1.0")
    repo.commit()
    assert [e.name for e in run_plan(repo, published={}).entries] == ["alpha"]


def test_dataset_change_without_bump_is_invalid_even_if_spec_untouched(repo: Repo) -> None:
    repo.write_data({"beta/eval.jsonl": '{"prompt": "changed", "completion": "y"}\n'})
    repo.commit()
    with pytest.raises(InvalidInput) as info:
        run_plan(repo, published={})
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.field) == (
        "adapters/beta/adapter.yaml",
        2,
        "version",
    )
    assert "data.eval content" in problem.message


def test_missing_dir_listing_marks_adapters_unverified(repo: Repo) -> None:
    shutil.rmtree(repo.root / ".dvc")
    repo.write_data(data_for("alpha", tag="v2"), cache=False)
    repo.write_spec("alpha", version="1.1.0")
    repo.commit()
    result = by_name(run_plan(repo, published={}))
    assert result["alpha"].action == "retrain" and result["alpha"].data_unverified
    assert "listing" in result["alpha"].reason
    # beta may have changed too, but that cannot be checked: reported, not an error, no training
    assert (result["beta"].action, result["beta"].data_unverified) == ("unchanged", True)


def test_dir_listing_is_read_from_a_local_remote(repo: Repo) -> None:
    repo.write_data(data_for("alpha", tag="v2"))
    repo.write_spec("alpha", version="1.1.0")
    dvc_dir = repo.root / ".dvc"
    (dvc_dir / "config").write_text(
        "[core]\n    remote = store\n['remote \"store\"']\n    url = ../../remote\n"
    )
    shutil.move(dvc_dir / "cache", repo.root.parent / "remote")  # the remote has DVC 3's layout
    repo.commit()
    (entry,) = run_plan(repo, published={}).entries
    assert (entry.action, entry.data_unverified) == ("retrain", False)


def test_plan_from_a_subfolder(repo: Repo) -> None:
    repo.write_spec("alpha", version="1.1.0", r=4)
    repo.commit()
    (entry,) = plan("main", repo=repo.root / "adapters", published={}).entries
    assert (entry.name, entry.action) == ("alpha", "retrain")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside dvc
def test_real_dvc_dataset_change(tmp_path: Path) -> None:
    dvc_repo = pytest.importorskip("dvc.repo")  # in-process: 3x faster than the dvc CLI
    r = Repo(tmp_path / "repo")
    (r.root / ".gitignore").unlink()  # dvc writes its own
    dvc = dvc_repo.Repo.init(str(r.root))
    try:
        for name in ("alpha", "beta"):
            r.write_spec(name)
        r.write_data(data_for("alpha", "beta"), cache=False)
        dvc.add(str(r.root / "datasets"))
        r.commit("main")
        r.branch()
        (r.root / "datasets/beta/train.jsonl").write_text('{"prompt": "new", "completion": "z"}\n')
        dvc.add(str(r.root / "datasets"))
    finally:
        dvc.close()
    r.write_spec("beta", version="2.0.0")
    r.commit()
    (entry,) = plan("main", repo=r.root, published={}).entries
    assert (entry.name, entry.action, entry.data_unverified) == ("beta", "retrain", False)
    assert entry.reason == "changed: data.train content"


def test_json_is_a_valid_actions_matrix(repo: Repo) -> None:
    repo.write_spec("gamma", version="0.1.0")
    repo.write_spec("alpha", version="1.0.1")
    repo.write_data(data_for("gamma"))
    repo.commit()
    doc = json.loads(json.dumps(run_plan(repo, published={}).to_json()))
    assert doc["has_work"] is True
    assert doc["matrix"] == {"include": [{"name": "gamma", "version": "0.1.0"}]}
    actions = {a["name"]: a["action"] for a in doc["adapters"]}
    assert actions == {"alpha": "bump", "gamma": "new"}
    assert set(doc["adapters"][0]) >= {"name", "action", "old_version", "new_version", "reason"}


def test_invalid_head_spec_names_file_and_line(repo: Repo) -> None:
    repo.write_spec("alpha", text=spec_text("alpha", version="1.1.0") + "epochs: 3\n")
    repo.commit()
    with pytest.raises(InvalidInput) as info:
        run_plan(repo, published={})
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.field) == (
        "adapters/alpha/adapter.yaml",
        11,
        "epochs",
    )


def test_folder_must_match_name(repo: Repo) -> None:
    repo.write_spec("gamma", text=spec_text("delta"))
    repo.commit()
    with pytest.raises(InvalidInput, match="differs from its folder"):
        run_plan(repo, published={})


def test_working_tree_includes_untracked_specs(repo: Repo) -> None:
    repo.write_spec("gamma")
    result = run_plan(repo, head_ref=None, published={})
    assert [(e.name, e.action) for e in result.entries] == [("gamma", "new")]
    assert result.head is None


def test_unknown_base_ref_is_invalid_input(repo: Repo) -> None:
    with pytest.raises(InvalidInput, match="unknown git ref"):
        plan("no-such-branch", repo=repo.root)
