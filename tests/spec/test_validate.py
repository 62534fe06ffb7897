"""`registry validate` end to end through the real console entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import toy_records, write_jsonl

from registry.spec.validate import validate


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "registry", *args], cwd=cwd, capture_output=True, text=True
    )


def test_valid_repo_passes_with_stats(toy_repo: Path):
    (result,) = validate(root=toy_repo)
    assert result.ok, result.problems
    assert result.stats["train"].examples == 64 and result.stats["eval"].examples == 16
    assert result.stats["train"].answer_tokens < result.stats["train"].tokens


def test_cli_reports_every_problem_with_exit_2_and_no_traceback(toy_repo: Path):
    spec = toy_repo / "adapters/toy/adapter.yaml"
    spec.write_text(spec.read_text().replace("r: 8", "r: 0").replace("dropout: 0.0", "dropot: 0"))
    with open(toy_repo / "datasets/toy/train.jsonl", "a") as fh:
        fh.write("{broken\n")
    proc = run_cli("validate", "--no-tokens", cwd=toy_repo)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "adapters/toy/adapter.yaml:6: lora.r:" in proc.stdout
    assert "lora.dropot: error: unknown key" in proc.stdout


def test_data_errors_name_file_and_line(toy_repo: Path):
    with open(toy_repo / "datasets/toy/train.jsonl", "a") as fh:
        fh.write('{"messages": [{"role": "user", "content": "x"}]}\n')
    proc = run_cli("validate", "toy", "--no-tokens", cwd=toy_repo)
    assert proc.returncode == 2
    assert "datasets/toy/train.jsonl:65: messages: error: the last message" in proc.stdout


def test_leakage_fails_and_duplicates_only_warn(toy_repo: Path):
    train = toy_records(64, seed=1)
    write_jsonl(toy_repo / "datasets/toy/train.jsonl", train + [{**train[0], "id": "copy"}])
    (result,) = validate(root=toy_repo, check_tokens=False)
    assert result.ok and any("exact duplicate" in p.message for p in result.warnings)
    write_jsonl(toy_repo / "datasets/toy/eval.jsonl", [train[3]])
    (result,) = validate(root=toy_repo, check_tokens=False)
    assert not result.ok and "also in the train set" in result.errors[0].message


def test_too_long_examples_warn(toy_repo: Path):
    spec = toy_repo / "adapters/toy/adapter.yaml"
    spec.write_text(spec.read_text().replace("max_seq_len: 128", "max_seq_len: 60"))
    (result,) = validate(root=toy_repo)
    assert result.ok
    assert result.stats["train"].over_max_len == 64
    assert any("dropped in training" in p.message for p in result.warnings)


def test_json_output_and_show_example(toy_repo: Path):
    proc = run_cli("validate", "--json", cwd=toy_repo)
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads(proc.stdout)
    assert entry["ok"] and entry["stats"]["train"]["examples"] == 64
    proc = run_cli("validate", "toy", "--show-example", "0", cwd=toy_repo)
    assert proc.returncode == 0, proc.stderr
    assert "⟦" in proc.stdout and "trained" in proc.stdout
    proc = run_cli("validate", "toy", "--show-example", "999", cwd=toy_repo)
    assert proc.returncode == 2 and "has 64 examples" in proc.stderr


def test_an_empty_registry_is_valid_but_said(tmp_path: Path):
    proc = run_cli("validate", cwd=tmp_path)
    assert proc.returncode == 0 and "no adapter specs" in proc.stderr
    proc = run_cli("validate", "missing", "--no-tokens", cwd=tmp_path)
    assert proc.returncode == 2 and "spec file not found" in proc.stdout


def test_schema_command_prints_json_schema(tmp_path: Path):
    proc = run_cli("schema", cwd=tmp_path)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["title"] == "LoRA adapter spec"
