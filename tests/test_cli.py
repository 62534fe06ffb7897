"""The CLI is documented like a tool people learn from its help: every command has examples."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from registry.cli import cli

COMMANDS = sorted(cli.commands)


def test_contract_commands_exist():
    contract = {
        "validate",
        "schema",
        "plan",
        "train",
        "eval",
        "publish",
        "sync",
        "pull",
        "versions",
        "demo",
    }
    assert contract <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_documents_itself(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    text = result.output
    assert len(text.splitlines()) > 5
    if name not in ("demo",):
        assert "Example" in text, f"`registry {name} --help` has no example"


def test_bad_option_is_exit_2_without_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "registry", "pull"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "registry", "pull", "Bad@Ref", "--store", "file:///nonexistent"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "bad adapter reference" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "registry", "versions", "toy", "--store", "ftp://x"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "bad store URL" in proc.stderr
