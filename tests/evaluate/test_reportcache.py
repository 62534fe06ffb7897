"""Reports are reused only for the exact weights, eval config and previous version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from registry.artifact import fingerprint_of
from registry.evaluate.reportcache import recall_report, remember_report

EVAL = {"metrics": ["exact_match"], "limit": 32}


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_CACHE", str(tmp_path / "cache"))


def _report_dir(tmp_path: Path, **fields) -> tuple[Path, dict]:
    report = {"fingerprint": "sha256:aa", "eval_config": EVAL, "overrides": {}, **fields}
    folder = tmp_path / "out"
    folder.mkdir(exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report))
    (folder / "report.md").write_text("# report\n")
    return folder, report


def test_recall_report_returns_the_remembered_report_files(tmp_path: Path) -> None:
    folder, report = _report_dir(tmp_path)
    remember_report(folder, report, previous_fingerprint=None)
    into = tmp_path / "sync"
    assert recall_report("sha256:aa", EVAL, None, into=into) == report
    assert (into / "report.md").read_text() == "# report\n"


@pytest.mark.parametrize(
    "fingerprint, eval_config, previous",
    [
        ("sha256:bb", EVAL, None),  # other weights
        ("sha256:aa", {**EVAL, "limit": 64}, None),  # other eval config
        ("sha256:aa", EVAL, "sha256:cc"),  # compared against another version
    ],
)
def test_any_difference_is_a_miss(tmp_path: Path, fingerprint, eval_config, previous) -> None:
    folder, report = _report_dir(tmp_path)
    remember_report(folder, report, previous_fingerprint=None)
    assert recall_report(fingerprint, eval_config, previous, into=tmp_path / "sync") is None
    assert not (tmp_path / "sync" / "report.json").exists()


def test_reports_made_with_overrides_are_never_stored(tmp_path: Path) -> None:
    folder, report = _report_dir(tmp_path, overrides={"max_steps": 2})
    remember_report(folder, report, previous_fingerprint=None)
    assert recall_report("sha256:aa", EVAL, None, into=tmp_path / "sync") is None


def test_a_damaged_entry_is_a_miss_not_an_error(tmp_path: Path) -> None:
    from registry.evaluate.reportcache import _entry, report_key

    folder, report = _report_dir(tmp_path)
    remember_report(folder, report, previous_fingerprint=None)
    (_entry(report_key("sha256:aa", EVAL, None)) / "report.json").write_text("{not json")
    assert recall_report("sha256:aa", EVAL, None, into=tmp_path / "sync") is None


def test_fingerprint_of_reads_registry_json(tmp_path: Path) -> None:
    assert fingerprint_of(None) is None
    assert fingerprint_of(tmp_path) is None
    (tmp_path / "registry.json").write_text(json.dumps({"fingerprint": "sha256:dd"}))
    assert fingerprint_of(tmp_path) == "sha256:dd"
