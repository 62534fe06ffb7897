"""Errors and exit codes shared by the library and the CLI.

The CLI maps each exception class to the exit code of the DESIGN contract:
0 ok, 1 unexpected error (a bug), 2 invalid input, 3 gate failed, 4 conflict.
Library code raises these; it never calls sys.exit.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One finding about a user's input, pointing at the exact place to fix."""

    file: str
    message: str
    line: int | None = None
    field: str | None = None
    hint: str | None = None
    severity: str = "error"  # "error" blocks, "warning" informs

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        field = f" {self.field}:" if self.field else ""
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{where}:{field} {self.severity}: {self.message}{hint}"


class RegistryError(Exception):
    """Base class; an unexpected RegistryError is still a clean message, exit 1."""

    exit_code = 1


class InvalidInput(RegistryError):
    """Bad user input (spec, dataset, reference, option). Exit code 2."""

    exit_code = 2

    def __init__(self, problems: list[Problem] | str, file: str = "<input>") -> None:
        if isinstance(problems, str):
            problems = [Problem(file=file, message=problems)]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class GateFailed(RegistryError):
    """The adapter did not pass its gate (or has no passing report). Exit code 3."""

    exit_code = 3


class Conflict(RegistryError):
    """A version exists with other content, or a concurrent writer won. Exit code 4."""

    exit_code = 4


class StoreError(RegistryError):
    """The store failed after retries (network, server). Exit code 1 with a clear message."""

    exit_code = 1
