"""The general rule on the shipped ticket-json recipe, trained for real and then damaged.

The check behind docs/calibration.md. It trains adapters/ticket-json on the embedded SmolLM2
(~3.5 min on 2 cores) and runs `registry eval` twice (~7 min; 11 min in all on 2 idle cores), each over 32 task items (as the demo does)
and all 512 general items, so it is not part of `make test`: `make test-calibration` runs it,
and CI (.ci/run) does on every build. Everything goes through the CLI in a scratch repo whose
datasets are rebuilt from the recipe, with an empty cache: nothing measured earlier is reused.

What must hold (the figures in brackets are one AMD EPYC run, docs/calibration.md):

- the adapter as trained passes its whole gate, task rules and `{suite: general,
  max_drop_vs_base: 0.05}` alike [37 broken / 39 fixed, delta +0.004, CI lower end -0.029;
  it passes 19 of 20 suites resampled from the items];
- its copy with LoRA B x2, which breaks more general answers than it fixes, fails the general
  rule itself (not only the task rules) with no per-adapter bound, and report.md lists what it
  broke, base answer beside adapter answer [64 broken / 46 fixed, delta -0.035, CI lower end
  -0.076; it fails 19 of 20 resampled suites].
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from registry.evaluate.calibration import scaled_adapter

ROOT = Path(__file__).resolve().parents[2]
NAME = "ticket-json"
pytestmark = [pytest.mark.slow, pytest.mark.calibration]


def _registry(repo: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "registry", *args, "--quiet"],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=3600,
    )
    print(proc.stdout[-3000:], proc.stderr[-2000:], sep="\n")
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(scratch repo, trained adapter folder): the shipped spec on data rebuilt from the recipe."""
    repo = tmp_path_factory.mktemp("calibration-repo")
    shutil.copytree(ROOT / "adapters" / NAME, repo / "adapters" / NAME)
    subprocess.run(
        [sys.executable, str(ROOT / "scripts/make_datasets.py"), "--out", str(repo / "datasets")],
        check=True,
        capture_output=True,
    )
    run = repo / "runs" / NAME
    proc = _registry(repo, "train", NAME, "--out", str(run))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return repo, run


def _evaluate(repo: Path, adapter: Path, out: Path) -> tuple[int, dict, str]:
    # The first 32 task items, as `registry demo` evaluates (the task rules still apply); every
    # item of the general suite: the rule under test reads that one.
    proc = _registry(
        repo, "eval", NAME, "--adapter", str(adapter), "--out", str(out), "--limit", "32"
    )
    assert proc.returncode in (0, 3), proc.stderr[-2000:]  # 3: the gate failed, as designed
    report = json.loads((out / "report.json").read_text())
    return proc.returncode, report, (out / "report.md").read_text()


def _general_rule(report: dict) -> dict:
    (rule,) = [r for r in report["gate"]["rules"] if r["metric"] == "suite:general"]
    assert rule["rule"] == "max_drop_vs_base" and rule["threshold"] == pytest.approx(0.05)
    return rule


def test_the_general_rule_passes_the_recipe_and_fails_its_doubled_copy(trained, tmp_path):
    repo, run = trained
    code, report, _ = _evaluate(repo, run, tmp_path / "x1")
    as_trained = report["regression"]["general"]
    assert code == 0, f"the shipped recipe must pass its gate: {report['gate']}"
    assert _general_rule(report)["passed"]

    x2 = scaled_adapter(run, 2.0, tmp_path / "adapter-x2")
    code, report, markdown = _evaluate(repo, x2, tmp_path / "x2")
    doubled = report["regression"]["general"]
    print(
        f"general suite, n={as_trained['n']}: as trained {as_trained['broken']} broken / "
        f"{as_trained['fixed']} fixed (delta {as_trained['delta']:+.3f}, CI lower "
        f"{as_trained['ci'][0]:+.3f}); LoRA B x2 {doubled['broken']} / {doubled['fixed']} "
        f"(delta {doubled['delta']:+.3f}, CI lower {doubled['ci'][0]:+.3f})"
    )
    assert code == 3
    assert not _general_rule(report)["passed"], "the general rule itself must fail x2"
    assert doubled["broken"] > as_trained["broken"]
    assert len(doubled["broken_items"]) == doubled["broken"]
    # report.md shows the broken items side by side: prompt, base answer, adapter answer.
    assert f"#### Broken in general: {doubled['broken']} item(s)" in markdown
    first = doubled["broken_items"][0]
    (row,) = [line for line in markdown.splitlines() if line.startswith(f"| {first['id']} |")]
    assert row.count(" | ") == 4  # id, prompt, check, base answer, adapter answer
