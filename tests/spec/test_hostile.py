"""Hostile specs and datasets, as a pull request (a fork's included) could commit them.

Every case runs the real CLI (`registry validate --no-tokens`, one `registry plan`) in a
subprocess under an address-space limit, and must end with exit 2, the message naming the
file and line (and the field where there is one), and no traceback. The memory bound is the
OS's (RLIMIT_AS): an input that made the parser grow would die with MemoryError (exit 1) and
fail the test. A wall-clock cap (WALL_S) only stops a hang, e.g. a read blocking on a FIFO;
the inputs are refused after bounded work (the loader's node and depth counts, the dataset's
byte and line bounds), not after some time, so nothing here depends on the CPU's speed.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from registry.spec.data import MAX_DATASET_BYTES, MAX_LINE_BYTES
from registry.spec.loader import MAX_SPEC_BYTES

pytestmark = pytest.mark.reliability

MEMORY_LIMIT = 768 << 20  # address space; the CLI validating a spec needs ~250 MB of it
WALL_S = 60
SPEC = "adapters/ab/adapter.yaml"
GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
SPEC_TEXT = """\
name: ab
version: 1.0.0
base_model: builtin:tiny-llama
data:
  format: chat
  train: {train}
  eval: datasets/x/eval.jsonl
training: {{max_steps: 3}}
"""  # data.train is on line 6


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


# The child's own peak. Not wait4's ru_maxrss: Linux folds the pre-exec memory's high-water mark
# into it, and before exec the child is a fork of this pytest process, so it would report
# pytest's size (~1 GB once a suite has loaded models), not the CLI's. VmHWM belongs to the
# process image exec made; the CLI writes it on the way out (atexit runs on sys.exit too).
PEAK_WRAPPER = """\
import atexit, os, runpy, sys
def _peak():
    with open("/proc/self/status") as status, open(os.environ["HOSTILE_PEAK_FILE"], "w") as out:
        out.write(next(x.split()[1] for x in status if x.startswith("VmHWM:")))
atexit.register(_peak)
sys.argv[0] = "registry"
runpy.run_module("registry", run_name="__main__", alter_sys=True)
"""


@dataclass
class Run:
    rc: int
    out: str
    max_rss_mb: float


def registry(repo: Path, *args: str) -> Run:
    """The CLI in a subprocess under the memory limit, and its own peak RSS (VmHWM)."""
    peak_file = repo / ".peak"
    with open(repo / ".out", "w+b") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", PEAK_WRAPPER, *args],
            cwd=repo,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_limits,
            env={**os.environ, "REGISTRY_DEBUG": "", "HOSTILE_PEAK_FILE": str(peak_file)},
        )
        timer = threading.Timer(WALL_S, proc.kill)
        timer.start()
        try:
            proc.wait()
        finally:
            timer.cancel()
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    peak_kb = int(peak_file.read_text()) if peak_file.exists() else float("inf")
    return Run(proc.returncode, text, peak_kb / 1024)


def make_repo(root: Path, spec: str | bytes | None = None, train: bytes | None = None) -> Path:
    (root / "adapters/ab").mkdir(parents=True)
    (root / "datasets/x").mkdir(parents=True)
    spec = SPEC_TEXT.format(train="datasets/x/train.jsonl") if spec is None else spec
    (root / SPEC).write_bytes(spec.encode() if isinstance(spec, str) else spec)
    line = json.dumps(GOOD).encode() + b"\n"
    (root / "datasets/x/train.jsonl").write_bytes(line if train is None else train)
    (root / "datasets/x/eval.jsonl").write_bytes(line.replace(b"hi", b"hello"))
    return root


def assert_refused(run: Run, where: str, message: str, field: str | None = None) -> None:
    assert run.rc == 2, run.out
    assert "Traceback" not in run.out and "unexpected error" not in run.out, run.out
    assert where in run.out, run.out
    assert message in run.out, run.out
    if field is not None:
        assert f"{where}: {field}:" in run.out, run.out
    assert run.max_rss_mb < MEMORY_LIMIT / 2**20  # also enforced by RLIMIT_AS


def test_the_harness_accepts_a_valid_repo(tmp_path):
    run = registry(make_repo(tmp_path), "validate", "--no-tokens")
    assert run.rc == 0, run.out


# -- YAML: resource exhaustion and odd documents --------------------------------------------------

LAUGHS = "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 10)
)  # nine levels of nine: 9**9 = 387,420,489 strings once expanded
YAML_CASES = {
    "alias bomb": ('l0: &l0 ["lol"]\n' + LAUGHS, ":6", "YAML nodes (aliases expanded)"),
    "recursive alias": ("name: &a [*a]\n", ":1", "recursive alias"),
    "flow nesting 20,000 deep": ("[" * 20000 + "]" * 20000 + "\n", ":1", "nest"),
    "block nesting": ("".join(" " * i + "k:\n" for i in range(100)), ":64", "nested deeper"),
    "huge scalar": ("name: x\ndescription: " + "x" * MAX_SPEC_BYTES + "\n", SPEC, "bytes"),
    "huge integer": ("name: x\nversion: 1.0.0\nseed: " + "9" * 5000 + "\n", ":3", "digits"),
    "python tag": ("name: !!python/object/apply:os.system [id]\n", ":1", "not allowed"),
    "unknown tag": ("name: x\ndescription: !vault abc\n", ":2", "'!vault' is not allowed"),
    "binary tag": ("name: x\ndescription: !!binary aGk=\n", ":2", "not allowed"),
    "set tag": ("name: x\nlora: !!set {a, b}\n", ":2", "not allowed"),
    "merge key": ("base: &b {r: 8}\nlora:\n  <<: *b\n", ":3", "merge keys"),
    "integer key": ("name: x\n1: one\n", ":2", "keys must be strings"),
    "boolean key": ("name: x\nyes: one\n", ":2", "keys must be strings"),
    "collection key": ("name: x\n? [a, b]\n: c\n", ":2", "keys must be strings"),
    "duplicate key at depth": (
        "name: x\ntraining:\n  seed: 1\n  lr: 2\n  seed: 3\n",
        ":5",
        "duplicate key 'seed'",
    ),
    "NaN": ("name: x\nlora: {alpha: .nan}\n", ":2", "NaN and infinity"),
    "infinity": ("name: x\ntraining:\n  max_grad_norm: .inf\n", ":3", "NaN and infinity"),
    "bad typed scalar": ("name: x\nlora: {r: !!int '8a'}\n", ":2", "not a valid int"),
    "two documents": ("name: x\n---\nname: y\n", ":2", "another document"),
    "empty file": ("", ":1", "a spec must be a YAML mapping"),
    "only a comment": ("# nothing\n", ":1", "a spec must be a YAML mapping"),
    "a list": ("- name: x\n", ":1", "a spec must be a YAML mapping"),
    "lone surrogate escape": ('name: x\ndata: {train: "\\ud800.jsonl"}\n', ":2", "Unicode"),
}
BYTE_CASES = {
    "UTF-16 with BOM": ("name: x\n".encode("utf-16"), ":1", "UTF-16 text"),
    "UTF-32 with BOM": ("name: x\n".encode("utf-32"), ":1", "UTF-32 text"),
    "invalid UTF-8": (b"name: x\nversion: 1.0.0\ndescription: \xff\xfe\n", ":3", "not UTF-8"),
    "NUL byte": (b"name: x\nversion: 1.0.0\ndescription: a\x00b\n", ":3", "not allowed in YAML"),
    "latin-1": ("name: x\ndescription: caf\xe9\n".encode("latin-1"), ":2", "not UTF-8"),
}


@pytest.mark.parametrize("case", sorted(YAML_CASES))
def test_hostile_yaml_is_refused(tmp_path, case):
    text, where, message = YAML_CASES[case]
    run = registry(make_repo(tmp_path, spec=text), "validate", "--no-tokens")
    assert_refused(run, SPEC + where if where.startswith(":") else where, message)


@pytest.mark.parametrize("case", sorted(BYTE_CASES))
def test_hostile_bytes_are_refused(tmp_path, case):
    data, where, message = BYTE_CASES[case]
    run = registry(make_repo(tmp_path, spec=data), "validate", "--no-tokens")
    assert_refused(run, SPEC + where, message)


@pytest.mark.parametrize(
    "prefix, newline", [(b"\xef\xbb\xbf", b"\n"), (b"", b"\r\n")], ids=["utf-8 BOM", "CRLF"]
)
def test_utf8_bom_and_crlf_are_accepted(tmp_path, prefix, newline):
    spec = prefix + SPEC_TEXT.format(train="datasets/x/train.jsonl").encode()
    run = registry(
        make_repo(tmp_path, spec=spec.replace(b"\n", newline)), "validate", "--no-tokens"
    )
    assert run.rc == 0, run.out


def test_a_giant_spec_file_is_refused_without_reading_it(tmp_path):
    repo = make_repo(tmp_path)
    with open(repo / SPEC, "r+b") as fh:
        fh.truncate(8 << 30)  # sparse: 8 GiB that cost no disk; reading it would exhaust memory
    assert_refused(registry(repo, "validate", "--no-tokens"), SPEC, "a spec may hold at most")


def test_the_plan_job_refuses_a_spec_bomb_from_a_pr(tmp_path):
    """The hosted plan job parses specs from git objects: the same bounded loader."""
    repo = make_repo(tmp_path)

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "0")
    (repo / SPEC).write_text('l0: &l0 ["lol"]\n' + LAUGHS)
    git("add", SPEC)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "bomb")
    run = registry(repo, "plan", "--base", "main~1", "--head", "HEAD")
    assert_refused(run, SPEC + ":6", "YAML nodes")


# -- paths a spec points at -------------------------------------------------------------------------


def _folder(repo: Path) -> str:
    (repo / "datasets/x/dir.jsonl").mkdir()
    return "datasets/x/dir.jsonl"


def _fifo(repo: Path) -> str:
    os.mkfifo(repo / "datasets/x/fifo.jsonl")  # reading it would block forever
    return "datasets/x/fifo.jsonl"


def _socket(repo: Path) -> str:
    here = os.getcwd()
    os.chdir(repo / "datasets/x")  # a short relative name: AF_UNIX paths are limited to ~100
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind("sock.jsonl")
        sock.close()
    finally:
        os.chdir(here)
    return "datasets/x/sock.jsonl"


def _device(repo: Path) -> str:
    try:  # a character device like /dev/zero: reading it never ends
        os.mknod(repo / "datasets/x/zero.jsonl", stat.S_IFCHR | 0o600, os.makedev(1, 5))
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD; the symlink-to-device case covers it")
    return "datasets/x/zero.jsonl"


def _link_out(repo: Path) -> str:
    outside = repo.parent / "secret.jsonl"
    outside.write_text(json.dumps(GOOD) + "\n")
    (repo / "datasets/x/out.jsonl").symlink_to(outside)
    return "datasets/x/out.jsonl"


def _link_device(repo: Path) -> str:
    (repo / "datasets/x/zero.jsonl").symlink_to("/dev/zero")
    return "datasets/x/zero.jsonl"


def _link_parent_out(repo: Path) -> str:
    outside = repo.parent / "elsewhere"
    outside.mkdir()
    (outside / "t.jsonl").write_text(json.dumps(GOOD) + "\n")
    (repo / "datasets/y").symlink_to(outside)
    return "datasets/y/t.jsonl"


def _link_loop(repo: Path) -> str:
    (repo / "datasets/x/a.jsonl").symlink_to("b.jsonl")
    (repo / "datasets/x/b.jsonl").symlink_to("a.jsonl")
    return "datasets/x/a.jsonl"


def _link_dangling_out(repo: Path) -> str:
    (repo / "datasets/x/gone.jsonl").symlink_to("/nonexistent/gone.jsonl")
    return "datasets/x/gone.jsonl"


def _parent_is_file(repo: Path) -> str:
    return "datasets/x/train.jsonl/t.jsonl"


FS_CASES: dict[str, tuple[Callable[[Path], str], str]] = {
    "a folder": (_folder, "a folder, not a regular file"),
    "a FIFO": (_fifo, "a FIFO, not a regular file"),
    "a socket": (_socket, "a socket, not a regular file"),
    "a symlink out of the repo": (_link_out, "leads outside the repository"),
    "a device": (_device, "a device, not a regular file"),
    "a symlink to a device": (_link_device, "leads outside the repository"),
    "a symlinked folder out of the repo": (_link_parent_out, "leads outside the repository"),
    "a symlink loop": (_link_loop, "a symlink loop"),
    "a dangling symlink out of the repo": (_link_dangling_out, "leads outside the repository"),
    "a parent that is a file": (_parent_is_file, "not a folder"),
}
TEXT_CASES = {
    "absolute": ("/etc/passwd.jsonl", "relative to the repo root"),
    "parent": ("../../outside.jsonl", "stay inside the repo"),
    "parent inside": ("datasets/../datasets/x/train.jsonl", "stay inside the repo"),
    "home": ("~/train.jsonl", "relative to the repo root"),
    "backslash": ('"datasets\\\\x\\\\train.jsonl"', "backslash"),
    "windows drive": ('"C:/train.jsonl"', "relative to the repo root"),
    "NUL": ('"datasets/x/t\\0.jsonl"', "control characters"),
    "newline": ('"datasets/x/t\\n.jsonl"', "control characters"),
    "URL": ("https://example.com/t.jsonl", "a URL"),
    "empty": ('""', "empty path"),
    "dot parts": ("./datasets/x/train.jsonl", "not a normalised path"),
    "double slash": ("datasets//x/train.jsonl", "not a normalised path"),
    "trailing slash": ("datasets/x/", "not a normalised path"),
    "git internals": (".git/config.jsonl", "git or DVC internals"),
    "no suffix": ("datasets/x/train.txt", "expected a .jsonl file"),
    "only the suffix": ("datasets/x/.jsonl", "expected a .jsonl file"),
    "long component": ("datasets/" + "a" * 300 + ".jsonl", "longer than 255"),
    "long path": ("/".join(["d" * 200] * 8) + ".jsonl", "characters; at most"),
    "not a string": ("[a, b]", "Input should be a valid string"),
}


@pytest.mark.parametrize("case", sorted(FS_CASES))
def test_data_paths_must_be_regular_files_in_the_repo(tmp_path, case):
    make, message = FS_CASES[case]
    repo = make_repo(tmp_path / "repo")
    rel = make(repo)
    (repo / SPEC).write_text(SPEC_TEXT.format(train=rel))
    run = registry(repo, "validate", "--no-tokens")
    assert_refused(run, f"{SPEC}:6", message, field="data.train")


@pytest.mark.parametrize("case", sorted(TEXT_CASES))
def test_data_path_text_is_checked(tmp_path, case):
    value, message = TEXT_CASES[case]
    repo = make_repo(tmp_path)
    (repo / SPEC).write_text(SPEC_TEXT.format(train=value))
    run = registry(repo, "validate", "--no-tokens")
    assert_refused(run, f"{SPEC}:6", message, field="data.train")


def test_a_symlink_inside_the_repo_is_followed(tmp_path):
    repo = make_repo(tmp_path)
    (repo / "datasets/x/alias.jsonl").symlink_to("train.jsonl")
    (repo / SPEC).write_text(SPEC_TEXT.format(train="datasets/x/alias.jsonl"))
    assert registry(repo, "validate", "--no-tokens").rc == 0


def test_the_spec_itself_must_not_lead_out_of_the_repo(tmp_path):
    repo = make_repo(tmp_path / "repo")
    outside = tmp_path / "outside" / "ab"
    outside.mkdir(parents=True)
    (outside / "adapter.yaml").write_text(SPEC_TEXT.format(train="datasets/x/train.jsonl"))
    (repo / SPEC).unlink()
    (repo / "adapters/ab").rmdir()
    (repo / "adapters/ab").symlink_to(outside)
    run = registry(repo, "validate", "--no-tokens")
    assert_refused(run, SPEC, "leads outside the repository")


# -- eval settings: checked on the hosted runner, not after training ------------------------------

EVAL_CASES = {
    "schema type is not a type": ("{json_schema: {type: 12}}", "not a valid JSON Schema"),
    "schema keyword of the wrong kind": (
        "{json_schema: {type: object, required: yes_please}}",
        "not a valid JSON Schema",
    ),
    "remote $ref": (
        "{json_schema: {$ref: 'https://example.com/s.json'}}",
        "leaves the document",
    ),
    "file $ref": ("{json_schema: {$ref: 'other.json#/a'}}", "leaves the document"),
    "dangling $ref": ("{json_schema: {$ref: '#/$defs/missing'}}", "does not resolve"),
    "unknown anchor": ("{json_schema: {$ref: '#nope'}}", "no $anchor"),
    "nested $id": (
        "{json_schema: {properties: {a: {$id: 'https://x/y', type: string}}}}",
        "nested $id",
    ),
    "unknown $schema": (
        "{json_schema: {$schema: 'https://example.com/mine', type: object}}",
        "not a known JSON Schema draft",
    ),
    "bad pattern in schema": (
        "{json_schema: {type: string, pattern: '(unclosed'}}",
        "not a valid JSON Schema",
    ),
    "regex does not compile": ("{regex: '(unclosed'}", "eval.regex does not compile"),
    "regex repetition overflow": ("{regex: 'a{4294967296}'}", "eval.regex does not compile"),
    "regex nested too deeply": ("{regex: '" + "(" * 1500 + ")" * 1500 + "'}", "eval.regex"),
}


@pytest.mark.parametrize("case", sorted(EVAL_CASES))
def test_eval_settings_are_checked_at_validate(tmp_path, case):
    setting, message = EVAL_CASES[case]
    spec = SPEC_TEXT.format(train="datasets/x/train.jsonl") + f"eval: {setting}\n"
    run = registry(make_repo(tmp_path, spec=spec), "validate", "--no-tokens")
    assert_refused(run, f"{SPEC}:9", message, field="eval")


def test_a_local_ref_schema_is_accepted(tmp_path):
    schema = (
        "{json_schema: {$defs: {s: {type: string}}, type: object,"
        " properties: {a: {$ref: '#/$defs/s'}}, required: [a]}, metrics: [json_schema]}"
    )
    spec = SPEC_TEXT.format(train="datasets/x/train.jsonl") + f"eval: {schema}\n"
    run = registry(make_repo(tmp_path, spec=spec), "validate", "--no-tokens")
    assert run.rc == 0, run.out


# -- datasets ---------------------------------------------------------------------------------------

TRAIN = "datasets/x/train.jsonl"
GOOD_LINE = json.dumps(GOOD).encode()
DATA_CASES = {
    "deep JSON nesting": (b"[" * 100_000 + b"]" * 100_000, 2, "nested too deeply"),
    "NaN": (b'{"prompt": NaN}', 2, "NaN is not JSON"),
    "Infinity": (b'{"messages": [], "x": -Infinity}', 2, "-Infinity is not JSON"),
    "invalid UTF-8": (b'{"messages": "\xff"}', 2, "not UTF-8 text"),
    "NUL bytes": (b"\x00" * 64, 2, "invalid JSON"),
    "NUL inside a string": (b'{"id": "a\x00b"}', 2, "invalid JSON"),
    "duplicate keys": (
        b'{"messages": [{"role": "user", "content": "a"}], "messages": []}',
        2,
        "duplicate key 'messages'",
    ),
    "lone surrogate": (GOOD_LINE.replace(b'"yo"', b'"\\ud800"'), 2, "lone surrogate"),
    "huge integer": (b'{"id": 1' + b"0" * 5000 + b"}", 2, "invalid JSON"),
    "id of the wrong type": (GOOD_LINE[:-1] + b', "id": [1, 2]}', 2, "id must be a string"),
    "lone CR line ends": (GOOD_LINE + b"\r" + GOOD_LINE, 2, "not a lone"),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_hostile_dataset_lines_are_refused(tmp_path, case):
    line, number, message = DATA_CASES[case]
    repo = make_repo(tmp_path, train=GOOD_LINE + b"\n" + line + b"\n")
    run = registry(repo, "validate", "--no-tokens")
    assert_refused(run, f"{TRAIN}:{number}", message)


def test_a_huge_line_is_refused_without_holding_it(tmp_path):
    repo = make_repo(tmp_path, train=GOOD_LINE + b"\n" + b"x" * (3 * MAX_LINE_BYTES) + b"\n")
    run = registry(repo, "validate", "--no-tokens")
    assert_refused(run, f"{TRAIN}:2", f"a line longer than {MAX_LINE_BYTES} bytes")


def test_a_giant_dataset_is_refused_without_reading_it(tmp_path):
    repo = make_repo(tmp_path)
    with open(repo / TRAIN, "r+b") as fh:
        fh.truncate(4 * MAX_DATASET_BYTES)  # sparse: no disk used, more than the memory limit
    assert_refused(registry(repo, "validate", "--no-tokens"), TRAIN, "a dataset may hold")


def test_a_utf16_dataset_is_refused(tmp_path):
    repo = make_repo(tmp_path, train=(json.dumps(GOOD) + "\n").encode("utf-16"))
    assert_refused(registry(repo, "validate", "--no-tokens"), f"{TRAIN}:1", "UTF-16 text")


def test_many_bad_lines_give_a_bounded_report(tmp_path):
    repo = make_repo(tmp_path, train=b"{bad\n" * 100_000)
    run = registry(repo, "validate", "--no-tokens")
    assert_refused(run, f"{TRAIN}:200", "more than 200 problems")
    assert run.out.count("invalid JSON") == 200


@pytest.mark.parametrize(
    "data", [b"\xef\xbb\xbf" + GOOD_LINE + b"\n", GOOD_LINE + b"\r\n"], ids=["utf-8 BOM", "CRLF"]
)
def test_utf8_bom_and_crlf_datasets_are_accepted(tmp_path, data):
    assert registry(make_repo(tmp_path, train=data), "validate", "--no-tokens").rc == 0


@pytest.mark.parametrize("kind", ["FIFO", "folder"])
def test_a_spec_that_is_not_a_regular_file_is_refused(tmp_path, kind):
    repo = make_repo(tmp_path)
    (repo / SPEC).unlink()
    os.mkfifo(repo / SPEC) if kind == "FIFO" else (repo / SPEC).mkdir()
    # a folder named adapter.yaml is taken for an adapter folder without its spec
    message = "not a regular file" if kind == "FIFO" else "spec file not found"
    assert_refused(registry(repo, "validate", "--no-tokens"), SPEC, message)
