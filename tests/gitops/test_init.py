"""`registry init` and `registry new`: a team's own registry repo, from an empty folder to a
rollback.

The CLI runs in subprocesses (exit codes as users see them) in real git + DVC repositories. The
generated workflows are held to the same linters and structural rules as this repository's own
(tests/test_workflows.py's checkers, imported), and their calls are checked against the reusable
workflows of this checkout, which is the tool repository they pin. The slow test plays the
workflows' command sequence in a repo made by `registry init`: PR -> plan -> dvc pull ->
validate -> train -> eval -> merge -> sync -> pull -> a second version -> git revert -> sync
rolls back.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import test_workflows as tw
import yaml
from conftest import toy_records, write_jsonl
from gitrepo import Repo, actions

from registry.gitops.init import PLACEHOLDER, parse_github_repo, read_pins, tool_checkout
from registry.spec.data import normalise, parse_examples
from registry.spec.scaffold import split_eval
from registry.spec.schema import json_schema

ROOT = Path(__file__).resolve().parents[2]
TOOL_REPO = "acme/lora-registry"
TOOL_REF = "0123456789abcdef0123456789abcdef01234567"
IDENTITY = {
    "GIT_AUTHOR_NAME": "Team",
    "GIT_AUTHOR_EMAIL": "team@example.com",
    "GIT_COMMITTER_NAME": "Team",
    "GIT_COMMITTER_EMAIL": "team@example.com",
}
TINY = "builtin:tiny-llama"


def shell(cwd: Path, store: str = "file:///unused") -> Repo:
    """A Repo wrapper to run commands in any folder (init runs before the repo exists)."""
    return Repo(cwd, store, IDENTITY)


def init(tmp_path: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    return shell(tmp_path).registry("init", *args, ok=ok)


def make_registry(tmp_path: Path, name: str = "team") -> Path:
    init(tmp_path, name, "--tool-repo", TOOL_REPO, "--tool-ref", TOOL_REF)
    return tmp_path / name


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One repo made by `registry init`; tests that change it work on a copy."""
    return make_registry(tmp_path_factory.mktemp("init"))


@pytest.fixture
def team(template: Path, tmp_path: Path) -> Repo:
    root = tmp_path / "team"
    shutil.copytree(template, root, symlinks=True)
    return shell(root)


# -- registry init -------------------------------------------------------------------------------


def test_init_makes_one_commit_with_git_dvc_schema_readme_and_workflows(template: Path):
    repo = shell(template)
    assert repo.git("branch", "--show-current") == "main"
    assert repo.git("rev-list", "--count", "HEAD") == "1"
    assert repo.git("status", "--porcelain") == ""  # everything init wrote is committed
    tracked = set(repo.git("ls-files").splitlines())
    assert {
        "README.md",
        ".gitignore",
        ".dvcignore",
        ".dvc/config",
        "datasets.dvc",
        "adapters/.gitkeep",
        "schema/adapter.schema.json",
        ".github/workflows/pr.yml",
        ".github/workflows/publish.yml",
        ".github/workflows/pr-comment.yml",
        ".github/actionlint.yaml",
        ".github/CODEOWNERS",
    } <= tracked
    assert json.loads((template / "schema/adapter.schema.json").read_text()) == json_schema()
    # a local DVC remote beside the repo, the default; datasets/ is DVC's, not git's
    remote = repo.sh(sys.executable, "-m", "dvc", "remote", "list").stdout.split()
    assert remote[:2] == ["local", str(template.parent / "team-dvc-remote")]
    assert (template.parent / "team-dvc-remote").is_dir()
    assert yaml.safe_load((template / "datasets.dvc").read_text())["outs"][0]["path"] == "datasets"
    assert "/datasets" in (template / ".gitignore").read_text().splitlines()
    # the README tells the three stories and how to adopt it, with every placeholder filled
    readme = (template / "README.md").read_text()
    for heading in (
        "### 1. Add or change an adapter: open a PR",
        "### 2. Use an adapter: pull it by version",
        "### 3. Roll back: revert the commit",
        "## Set-up (once)",
        "## Upgrading the pinned tool",
        "## What the trust boundary guarantees",
    ):
        assert heading in readme
    assert f"https://github.com/{TOOL_REPO}/blob/{TOOL_REF}/docs/ci.md" in readme
    for path in tracked:
        assert not PLACEHOLDER.findall((template / path).read_text()), path
    # an empty registry is a valid one
    assert repo.registry("validate").returncode == 0


def test_init_pins_one_commit_in_every_call_of_the_reusable_workflows(template: Path):
    pins = read_pins(template)
    assert {(p.workflow, p.job) for p in pins} == {
        ("pr.yml", "registry"),
        ("publish.yml", "publish"),
    }
    for pin in pins:
        assert (pin.uses_repo, pin.uses_ref) == (TOOL_REPO, TOOL_REF)
        assert (pin.tool_repo, pin.tool_ref) == (TOOL_REPO, TOOL_REF)  # installs what it runs


def test_init_defaults_to_the_commit_of_the_running_checkout(tmp_path: Path):
    proc = init(tmp_path, "team", "--tool-repo", TOOL_REPO)
    checkout = tool_checkout()
    if checkout is None:  # an installed package, not a checkout: its version tag, with a warning
        import registry

        expected = f"v{registry.__version__}"
        assert "can be moved" in proc.stderr
    else:
        expected = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        print(f"pinned the running checkout {ROOT} at {expected}")
        # a commit pin says which release it is, as this repository's own pins do
        for path in generated(tmp_path / "team"):
            assert tw.check_pin_comments(path.read_text()) == [], path.name
    assert {(p.uses_ref, p.tool_ref) for p in read_pins(tmp_path / "team")} == {(expected,) * 2}


@pytest.mark.parametrize(
    ("url", "repo"),
    [
        ("https://github.com/acme/lora-registry.git", "acme/lora-registry"),
        ("https://github.com/acme/lora-registry", "acme/lora-registry"),
        ("git@github.com:acme/lora-registry.git", "acme/lora-registry"),
        ("ssh://git@github.com/acme/lora.registry.git\n", "acme/lora.registry"),
        ("https://x-access-token@github.com/acme/r/", "acme/r"),
        ("https://gitlab.com/acme/lora-registry.git", None),
        ("https://github.com/acme/lora-registry/extra", None),
        ("https://github.com/ac me/x", None),
    ],
)
def test_parse_github_repo(url: str, repo: str | None):
    assert parse_github_repo(url) == repo


def test_init_refuses_a_folder_that_is_not_empty_and_touches_nothing(tmp_path: Path):
    dest = tmp_path / "team"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    proc = init(tmp_path, "team", "--tool-repo", TOOL_REPO, "--tool-ref", TOOL_REF, ok=False)
    assert proc.returncode == 2, proc.stderr
    assert f"{dest}: error: is not empty (notes.txt)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["notes.txt"]
    assert (dest / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "team-dvc-remote").exists()


def test_init_accepts_a_fresh_clone_of_an_empty_repository(tmp_path: Path):
    dest = tmp_path / "team"
    dest.mkdir()
    shell(dest).git("init", "-q", "-b", "trunk")  # what `git clone` of an empty repo leaves
    init(tmp_path, "team", "--tool-repo", TOOL_REPO, "--tool-ref", TOOL_REF)
    repo = shell(dest)
    assert repo.git("branch", "--show-current") == "main"
    assert repo.git("rev-list", "--count", "HEAD") == "1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tool-repo", "acme"], "--tool-repo: error: 'acme' is not OWNER/NAME"),
        (["--tool-repo", TOOL_REPO, "--tool-ref", "main"], "--tool-ref: error: 'main'"),
        (
            ["--tool-repo", TOOL_REPO, "--tool-ref", TOOL_REF, "--dvc-remote", "team/remote"],
            "is inside the new repository",
        ),
    ],
)
def test_init_rejects_bad_options_before_writing_anything(tmp_path, args, message):
    proc = init(tmp_path, "team", *args, ok=False)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_tag_pin_works_but_warns(tmp_path: Path):
    proc = init(tmp_path, "team", "--tool-repo", TOOL_REPO, "--tool-ref", "v0.1.0")
    assert "can be moved" in proc.stderr and "git ls-remote" in proc.stderr
    assert {p.uses_ref for p in read_pins(tmp_path / "team")} == {"v0.1.0"}


# -- the generated workflows: linters, structural rules, and their calls of the tool -------------


def generated(root: Path) -> list[Path]:
    return sorted((root / ".github" / "workflows").glob("*.yml"))


def test_generated_workflows_pass_actionlint(template: Path):
    tw.tool("shellcheck")  # actionlint checks run: scripts only when shellcheck is on PATH
    config = template / ".github" / "actionlint.yaml"
    proc = tw.run(
        [
            tw.tool("actionlint"),
            "-no-color",
            "-config-file",
            str(config),
            *map(str, generated(template)),
        ]
    )
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr


def test_generated_workflows_pass_zizmor(template: Path):
    assert tw.severe(tw.zizmor(template)) == []
    # the one inline ignore is the comment workflow's workflow_run trigger, as in this repo
    assert set(tw.severe(tw.zizmor(template, no_ignores=True))) == {
        ("dangerous-triggers", "pr-comment.yml")
    }


@pytest.mark.parametrize("name", ["pr.yml", "publish.yml", "pr-comment.yml"])
def test_generated_workflows_follow_the_security_rules(template: Path, name: str):
    text = (template / ".github" / "workflows" / name).read_text()
    assert tw.all_problems(tw.load(text)) == []


def call_problems(caller: dict, tool_root: Path) -> list[str]:
    """Each call of the tool's reusable workflow is one the pinned tool can take: the file
    exists, its inputs and secrets are declared there, the required ones are given, the
    caller's events are those it is written for, and it installs the commit it calls."""
    found = []
    for job_id, job in tw.jobs(caller).items():
        uses = str(job.get("uses", ""))
        if "/.github/workflows/" not in uses or uses.startswith("./"):
            continue
        target, _, ref = uses.partition("@")
        repo, _, name = target.partition("/.github/workflows/")
        path = tool_root / ".github" / "workflows" / name
        if not path.exists():
            found.append(f"{job_id}: {name} is not a workflow of the tool")
            continue
        call = tw.own_triggers(tw.load(path.read_text()))["workflow_call"] or {}
        inputs, secrets = call.get("inputs") or {}, call.get("secrets") or {}
        given, passed = job.get("with") or {}, job.get("secrets") or {}
        found += [
            f"{job_id}: input {k} is not declared by {name}" for k in set(given) - set(inputs)
        ]
        found += [
            f"{job_id}: secret {k} is not declared by {name}" for k in set(passed) - set(secrets)
        ]
        for kind, declared, value in (("input", inputs, given), ("secret", secrets, passed)):
            for key, spec in declared.items():
                if (spec or {}).get("required") and key not in value:
                    found.append(f"{job_id}: required {kind} {key} of {name} is not given")
        events = set(tw.own_triggers(caller))
        if events - tw.CALLED_FROM.get(name, set()):
            found.append(f"{job_id}: {name} is not written for {sorted(events)}")
        if (given.get("tool-repo"), given.get("tool-ref")) != (repo, ref):
            found.append(
                f"{job_id}: installs {given.get('tool-repo')}@{given.get('tool-ref')}, "
                f"calls {repo}@{ref}"
            )
    return found


@pytest.mark.parametrize("name", ["pr.yml", "publish.yml"])
def test_generated_calls_match_the_reusable_workflows_of_this_tool(template: Path, name: str):
    caller = tw.load((template / ".github" / "workflows" / name).read_text())
    assert call_problems(caller, ROOT) == []
    (job,) = tw.jobs(caller).values()
    assert "uses" in job  # a few lines: all the steps live in the pinned tool


def test_call_check_flags_a_drifted_call(template: Path):
    caller = tw.load((template / ".github" / "workflows" / "publish.yml").read_text())
    (job,) = tw.jobs(caller).values()
    job["with"]["tool-ref"] = "f" * 40  # installs another commit than it calls
    job["with"]["no-such-input"] = "x"
    del job["secrets"]
    found = "\n".join(call_problems(caller, ROOT))
    assert "installs" in found and "no-such-input" in found and "HF_TOKEN" in found


def test_generated_comment_workflow_is_this_repositorys_and_follows_pr_checks(template: Path):
    mine = tw.load((template / ".github" / "workflows" / "pr-comment.yml").read_text())
    assert mine == tw.load((ROOT / ".github" / "workflows" / "pr-comment.yml").read_text())
    pr = tw.load((template / ".github" / "workflows" / "pr.yml").read_text())
    assert tw.own_triggers(mine)["workflow_run"]["workflows"] == [pr["name"]]


# -- registry new ----------------------------------------------------------------------------------


def alpaca_records(n: int) -> list[dict]:
    return [
        {
            "instruction": f"Describe item {i} in a sentence.",
            "input": f"item {i} is a {['red', 'blue', 'green'][i % 3]} box",
            "output": f"Item {i} is a box, and its colour is {['red', 'blue', 'green'][i % 3]}, "
            "which is all there is to say about it.",
        }
        for i in range(n)
    ]


def completion_records(n: int) -> list[dict]:
    return [
        {
            "prompt": f"Ticket {i}: printer {i % 5} is jammed\nJSON:",
            "completion": json.dumps({"device": "printer", "unit": i % 5, "issue": "jam"}),
        }
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("records", "fmt", "gate_metric"),
    [
        (toy_records(64, seed=1), "chat", "exact_match"),
        (alpaca_records(40), "alpaca", "rouge_l"),
        (completion_records(30), "completion", "json_field_f1"),
    ],
    ids=["chat", "alpaca", "completion"],
)
def test_new_scaffolds_a_valid_spec_from_each_format(
    team: Repo, tmp_path, records, fmt, gate_metric
):
    source = tmp_path / "data.jsonl"
    write_jsonl(source, records)
    if fmt == "chat":  # some editors start UTF-8 with a BOM: it must not land mid-file
        source.write_bytes(b"\xef\xbb\xbf" + source.read_bytes())
    proc = team.registry("new", "thing", "--data", str(source), "--base-model", TINY)
    assert f"{fmt} data" in proc.stdout
    spec_path = team.root / "adapters/thing/adapter.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    assert spec["data"]["format"] == fmt and spec["lora"]["r"] == 8
    assert spec["base_model"] == TINY and spec["version"] == "1.0.0"
    task, prompt, broke_nothing = spec["eval"]["gate"]
    assert task == {"metric": gate_metric, "min_delta_vs_base": 0.05}
    assert prompt == {"metric": gate_metric, "min_delta_vs_prompt": 0.0}
    assert broke_nothing == {"suite": "general", "max_drop_vs_base": 0.05}
    assert team.registry("validate", "--no-tokens", "adapters/thing").returncode == 0

    # every line lands once, byte for byte, in train or eval; no prompt is in both
    lines = source.read_text(encoding="utf-8-sig").splitlines()
    train = (team.root / "datasets/thing/train.jsonl").read_text().splitlines()
    evals = (team.root / "datasets/thing/eval.jsonl").read_text().splitlines()
    assert sorted(train + evals) == sorted(lines)
    assert len(evals) == min(len(lines) // 2, max(-(-len(lines) // 10), 20))
    assert f"{len(train)} to train on" in spec_path.read_text()
    # the data is DVC's (two files), the spec and the pointer are staged, nothing committed
    pointer = yaml.safe_load((team.root / "datasets.dvc").read_text())["outs"][0]
    assert pointer["nfiles"] == 2
    staged = set(team.git("diff", "--cached", "--name-only").splitlines())
    assert staged == {"adapters/thing/adapter.yaml", "datasets.dvc"}
    assert team.git("rev-list", "--count", "HEAD") == "1"


def test_split_is_deterministic_whatever_the_order_and_keeps_copies_together(tmp_path: Path):
    records = toy_records(50, seed=3)
    records += [dict(r, id=r["id"] + "-copy") for r in records[:10]]  # same prompts again
    write_jsonl(tmp_path / "a.jsonl", records)
    random.Random(0).shuffle(records)
    write_jsonl(tmp_path / "b.jsonl", records)
    held = []
    for name in ("a.jsonl", "b.jsonl"):
        examples, problems = parse_examples(tmp_path / name, "chat")
        assert not [p for p in problems if p.severity == "error"]
        train, evals = split_eval(examples)
        assert len(train) + len(evals) == 60 and 20 <= len(evals) <= 30
        train_prompts = {normalise(e.prompt_text) for e in train}
        assert not any(normalise(e.prompt_text) in train_prompts for e in evals)
        held.append(sorted(e.id for e in evals))
    assert held[0] == held[1]


def test_new_with_an_eval_file_copies_both_verbatim(team: Repo, tmp_path: Path):
    write_jsonl(tmp_path / "train.jsonl", toy_records(24, seed=1))
    write_jsonl(tmp_path / "eval.jsonl", toy_records(8, seed=2, offset=1000))
    team.registry(
        "new",
        "toy",
        "--data",
        str(tmp_path / "train.jsonl"),
        "--eval",
        str(tmp_path / "eval.jsonl"),
        "--base-model",
        TINY,
        "--method",
        "dora",
    )
    for name in ("train.jsonl", "eval.jsonl"):
        assert (team.root / "datasets/toy" / name).read_bytes() == (tmp_path / name).read_bytes()
    assert team.spec()["method"] == "dora"


def bad_line(tmp_path: Path) -> Path:
    records = toy_records(10, seed=1)
    records[2] = {"messages": [{"role": "user", "content": "hi"}]}  # line 3: no answer
    write_jsonl(tmp_path / "bad.jsonl", records)
    return tmp_path / "bad.jsonl"


def leaky_eval(tmp_path: Path) -> Path:
    write_jsonl(tmp_path / "train.jsonl", toy_records(10, seed=1))
    write_jsonl(tmp_path / "leak.jsonl", toy_records(3, seed=1))  # the same prompts
    return tmp_path / "train.jsonl"


@pytest.mark.parametrize(
    ("case", "make_args", "expected"),
    [
        (
            "a bad line",
            lambda t: ["toy", "--data", str(bad_line(t))],
            "bad.jsonl:3: messages: error",
        ),
        (
            "an unknown format",
            lambda t: ["toy", "--data", str(write_and(t / "q.jsonl", [{"q": "a", "a": "b"}]))],
            "q.jsonl:1: error: cannot tell the format from the keys (a, q)",
        ),
        ("a bad name", lambda t: ["Bad_Name", "--data", str(bad_line(t))], "name: error: invalid"),
        (
            "a Hub model without a commit",
            lambda t: ["toy", "--data", str(ok_data(t)), "--base-model", "org/model"],
            "--base-model: base_model: error: base_model: a Hub model must be pinned",
        ),
        (
            "an eval set that leaks train prompts",
            lambda t: ["toy", "--data", str(leaky_eval(t)), "--eval", str(t / "leak.jsonl")],
            "leak.jsonl:1: error: prompt also in the train set (train line 1)",
        ),
        ("too few examples", lambda t: ["toy", "--data", str(ok_data(t, 3))], "at least 4"),
        ("a missing file", lambda t: ["toy", "--data", str(t / "nope.jsonl")], "not found"),
    ],
)
def test_new_rejects_bad_input_with_exit_2_and_writes_nothing(
    team: Repo, tmp_path: Path, case, make_args, expected
):
    args = make_args(tmp_path)
    if "--base-model" not in args:
        args += ["--base-model", TINY]
    proc = team.registry("new", *args, ok=False)
    assert proc.returncode == 2, (case, proc.stdout, proc.stderr)
    assert expected in proc.stderr, (case, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in (team.root / "adapters").iterdir()) == [".gitkeep"]
    assert not (team.root / "datasets").exists() or not any((team.root / "datasets").iterdir())
    assert team.git("status", "--porcelain") == ""


def write_and(path: Path, records: list[dict]) -> Path:
    write_jsonl(path, records)
    return path


def ok_data(tmp_path: Path, n: int = 30) -> Path:
    return write_and(tmp_path / "ok.jsonl", toy_records(n, seed=1))


def test_new_never_overwrites_an_adapter(team: Repo, tmp_path: Path):
    team.registry("new", "toy", "--data", str(ok_data(tmp_path)), "--base-model", TINY)
    before = (team.root / "adapters/toy/adapter.yaml").read_text()
    proc = team.registry(
        "new", "toy", "--data", str(ok_data(tmp_path, 40)), "--base-model", TINY, ok=False
    )
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert (team.root / "adapters/toy/adapter.yaml").read_text() == before
    assert len((team.root / "datasets/toy/train.jsonl").read_text().splitlines()) == 15


# -- end to end: the workflows' command sequence in a repo made by `registry init` ---------------


@pytest.mark.slow
def test_init_new_and_the_workflow_sequence_on_the_tiny_model(tmp_path: Path):
    root = make_registry(tmp_path)
    repo = Repo(root, (tmp_path / "store").as_uri(), IDENTITY)
    write_jsonl(tmp_path / "sounds.jsonl", toy_records(80, seed=1))

    def add_toy() -> None:
        repo.registry("new", "toy", "--data", str(tmp_path / "sounds.jsonl"), "--base-model", TINY)
        spec = repo.spec()
        assert spec["lora"]["r"] == 8
        # what the team would tune in its PR: the tiny random model learns the loss, not text
        spec["data"]["system_prompt"] = "Answer with the sound the animal makes."
        spec["training"] = {
            "max_steps": 12,
            "learning_rate": 5.0e-3,
            "batch_size": 8,
            "max_seq_len": 128,
            "seed": 0,
            "warmup_ratio": 0.0,
        }
        spec["eval"].update(  # as conftest's TOY_SPEC: the general suite is not for it
            metrics=["exact_match", "loss"],
            max_new_tokens=8,
            few_shot=0,
            regression=[],
            gate=[{"metric": "loss", "min_delta_vs_base": 0.1}],
        )
        repo.write_spec(spec)

    # PR 1 adds the adapter; CI plans, pulls the data, validates, trains, gates; merge; sync.
    repo.pr("add-toy", "Add toy 1.0.0", add_toy)
    (entry,) = repo.pr_ci()
    assert entry["action"] == "new"
    repo.merge("add-toy")
    assert actions(repo.sync()) == {("toy", "1.0.0"): "published"}
    pulled = repo.registry("pull", "toy@1.0.0", "--out", str(tmp_path / "pulled"))
    assert pulled.stdout.startswith("toy 1.0.0 @")

    # PR 2 retrains as 1.1.0; merge; sync publishes it as current.
    def bump() -> None:
        spec = repo.spec()
        spec["version"] = "1.1.0"
        spec["lora"].update(r=4, alpha=8)
        repo.write_spec(spec)

    repo.pr("toy-r4", "toy 1.1.0", bump)
    assert repo.pr_ci()[0]["action"] == "retrain"
    merge_2 = repo.merge("toy-r4")
    assert actions(repo.sync()) == {("toy", "1.1.0"): "published"}

    # Roll back by reverting the merge: sync moves current back, no training.
    repo.git("revert", "--no-edit", "-m", "1", merge_2)
    assert actions(repo.sync()) == {("toy", "1.0.0"): "rollback"}
    assert [v["version"] for v in repo.versions() if v["current"]] == ["1.0.0"]
    current = repo.registry("pull", "toy", "--out", str(tmp_path / "current"))
    assert current.stdout.startswith("toy 1.0.0 @")
    # the data travelled through the DVC remote that init configured
    assert any((tmp_path / "team-dvc-remote").rglob("*"))


def test_new_outside_a_registry_says_so(tmp_path: Path):
    proc = shell(tmp_path).registry("new", "toy", "--data", str(ok_data(tmp_path)), ok=False)
    assert proc.returncode == 2
    assert "not a registry repository (no adapters/ folder)" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.jsonl"]
