"""Regression suites: JSONL files of prompts with checkable answers, loaded and validated whole.

A suite file is JSON Lines. An optional first line is a header,
`{"suite": NAME, "description": ..., "max_new_tokens": N, "system": ...}` (`system`: the
system prompt of every item that has none of its own); every other line is an item,
`{id, prompt, check, system?, max_new_tokens?, tags?, reference?}` where `check` is one of
the kinds in registry.spec.checks. `reference` is a known-right answer: the loader
requires it to pass its own check, which catches a mistyped check before it misjudges a model.

Suites come from pull requests, so loading is bounded (file and line size, item count) and
reports every bad line at once as an InvalidInput (exit 2) naming file, line and field, the
way datasets are reported (registry.spec.data). Nothing here imports torch.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from registry.errors import InvalidInput, Problem
from registry.spec.checks import KINDS, Check, check
from registry.spec.paths import check_file

if TYPE_CHECKING:
    from registry.spec.schema import Spec

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_LINE_BYTES = 1024 * 1024
MAX_ITEMS = 20_000
DEFAULT_MAX_NEW_TOKENS = 32  # answers are short: a long generation is a wrong one
SUITE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must be non-empty text")
    return value


class SuiteItem(BaseModel):
    """One prompt and the check its answer must pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=128, pattern=r"^[\w][\w.:/-]*$")
    prompt: str = Field(min_length=1, max_length=100_000)
    check: Check
    system: str | None = Field(None, max_length=100_000)
    max_new_tokens: int | None = Field(None, ge=1, le=4096)
    tags: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=32
    )
    reference: str | None = Field(None, max_length=100_000)

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        return _not_blank(value)

    def messages(self) -> list[dict[str, str]]:
        """The chat turns the model answers: the item's system prompt (if any), then the prompt."""
        turns = [{"role": "system", "content": self.system}] if self.system else []
        return [*turns, {"role": "user", "content": self.prompt}]


class SuiteHeader(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: str = Field(pattern=SUITE_NAME_PATTERN)
    description: str = Field("", max_length=10_000)
    max_new_tokens: int | None = Field(None, ge=1, le=4096)
    system: str | None = Field(None, max_length=100_000)


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    items: tuple[SuiteItem, ...]
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    path: str = ""

    def tokens_for(self, item: SuiteItem) -> int:
        """The generation budget of one item: its own, else the suite's."""
        return item.max_new_tokens or self.max_new_tokens


def _fields_of(loc: tuple, model: type[BaseModel]) -> list[str]:
    """The keys allowed where a validation error points (for 'did you mean' hints)."""
    for prev, part in zip((None, *loc), loc, strict=False):
        if isinstance(part, str) and part in KINDS and (prev == "check" or isinstance(prev, int)):
            model = KINDS[part]
    return [f.alias or name for name, f in model.model_fields.items()]


def _problems(
    exc: ValidationError, where: str, line: int, model: type[BaseModel] = SuiteItem
) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        # the discriminator's value shows up in the location ('check', 'exact', 'answer'): drop it
        keys = [
            p
            for prev, p in zip((None, *loc), loc, strict=False)
            if not (p in KINDS and (prev == "check" or isinstance(prev, int)))
        ]
        field = ".".join(str(p) for p in keys) or None
        message, hint = err["msg"].removeprefix("Value error, "), None
        if err["type"] == "extra_forbidden":
            message = "unknown field"
            allowed = _fields_of(loc[:-1], model)
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
        elif err["type"] == "missing":
            message = "required field is missing"
        elif err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            field = f"{field}.type" if field else "type"
            message = "unknown check type" if err["type"] == "union_tag_invalid" else message
            hint = "one of: " + ", ".join(KINDS)
        problems.append(Problem(where, message, line, field, hint))
    return problems


def _read_text(path: Path, where: str) -> str:
    try:
        if not path.is_file():
            raise InvalidInput([Problem(where, "suite file not found (or not a regular file)")])
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InvalidInput(
                [
                    Problem(
                        where,
                        f"suite file is over {MAX_FILE_BYTES // (1024 * 1024)} MB",
                    )
                ]
            )
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)  # bounded even if the file grows meanwhile
    except OSError as exc:
        raise InvalidInput(
            [Problem(where, f"cannot read the suite file: {exc.strerror}")]
        ) from None
    if len(raw) > MAX_FILE_BYTES:
        raise InvalidInput([Problem(where, f"suite file is over {MAX_FILE_BYTES >> 20} MB")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            [Problem(where, "not UTF-8 text", raw[: exc.start].count(b"\n") + 1)]
        ) from None


def _item(record: Any, where: str, line: int, problems: list[Problem]) -> SuiteItem | None:
    if not isinstance(record, dict):
        problems.append(Problem(where, "each line must be a JSON object", line))
        return None
    if "suite" in record:
        problems.append(Problem(where, "a suite header must be the first line", line, "suite"))
        return None
    try:
        item = SuiteItem.model_validate(record)
    except ValidationError as exc:
        problems.extend(_problems(exc, where, line))
        return None
    except RecursionError:
        problems.append(Problem(where, "nested too deeply", line))
        return None
    if item.reference is not None and not check(item, item.reference):
        problems.append(
            Problem(
                where,
                "the reference answer fails the item's own check",
                line,
                "reference",
            )
        )
    return item


def load_suite(path: str | Path, display: str | None = None) -> Suite:
    """Read and validate a whole suite file; raise InvalidInput listing every bad line."""
    path = Path(path)
    where = display or str(path)
    text = _read_text(path, where)
    header: SuiteHeader | None = None
    items: list[SuiteItem] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    first = True
    # split on \n only: JSONL lines are \n-terminated, and editors number lines that way
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        if len(line.encode("utf-8")) > MAX_LINE_BYTES:
            problems.append(Problem(where, f"line is over {MAX_LINE_BYTES >> 10} KB", line_no))
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(
                Problem(where, f"invalid JSON: {exc.msg} (column {exc.colno})", line_no)
            )
            continue
        except RecursionError:
            problems.append(Problem(where, "nested too deeply", line_no))
            continue
        if first and isinstance(record, dict) and "suite" in record:
            first = False
            try:
                header = SuiteHeader.model_validate(record)
            except ValidationError as exc:
                problems.extend(_problems(exc, where, line_no, SuiteHeader))
            continue
        first = False
        item = _item(record, where, line_no, problems)
        if item is None:
            continue
        if item.id in seen:
            problems.append(
                Problem(
                    where,
                    f"id {item.id!r} already used on line {seen[item.id]}",
                    line_no,
                    "id",
                )
            )
            continue
        seen[item.id] = line_no
        if header and header.system and item.system is None:
            item = item.model_copy(update={"system": header.system})
        items.append(item)
        if len(items) > MAX_ITEMS:
            problems.append(Problem(where, f"more than {MAX_ITEMS} items", line_no))
            break
    if not items and not problems:
        problems.append(Problem(where, "suite has no items"))
    if problems:
        raise InvalidInput(problems)
    return Suite(
        name=header.suite if header else path.stem,
        description=header.description if header else "",
        items=tuple(items),
        max_new_tokens=(header.max_new_tokens if header else None) or DEFAULT_MAX_NEW_TOKENS,
        path=where,
    )


# -- the suites a spec names -------------------------------------------------------------------

GENERAL = "general"  # shipped in the package
SHARED_DIR = "regression"  # repo-level folder of suites shared across adapters, by name


def suite_path(ref: str, root: Path | None) -> Path:
    """Where a suite reference points: the shipped suite, a shared name, or a repo path."""
    if ref == GENERAL:
        return Path(str(resources.files("registry") / "resources" / "regression" / "general.jsonl"))
    base = Path(root) if root is not None else Path.cwd()
    rel = Path(ref) if ref.endswith(".jsonl") else Path(SHARED_DIR) / f"{ref}.jsonl"
    return base / rel


def load_suites(spec: Spec) -> list[tuple[str, int | None, Suite]]:
    """(name, limit, suite) for every `eval.regression` entry, all problems reported at once."""
    from registry.spec.lm_eval_task import entry_problems

    loaded, problems = [], []
    for i, entry in enumerate(spec.eval.regression):
        if entry.lm_eval is not None:  # run by registry/evaluate/lm_eval.py; its files checked here
            problems += entry_problems(spec, entry)
            continue
        path = suite_path(entry.suite, spec.root)
        if entry.suite != GENERAL:
            # A suite comes from the PR like any data: a regular file inside the repo, or nothing.
            rel = path.relative_to(spec.root or Path.cwd()).as_posix()
            if reason := check_file(spec.root or Path.cwd(), rel):
                problems.append(spec.problem(f"eval.regression.{i}", reason))
                continue
            if not path.exists():
                why = f"suite {entry.suite!r}: {rel} does not exist"
                problems.append(spec.problem(f"eval.regression.{i}", why))
                continue
        try:
            suite = load_suite(path)
        except InvalidInput as exc:
            problems += exc.problems
            continue
        loaded.append((entry.name, entry.limit, suite))
    if problems:
        raise InvalidInput(problems)
    names = [e.name for e in spec.eval.regression]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        where = str(spec.path or "adapter.yaml")
        raise InvalidInput(
            [Problem(where, f"suite {d!r} listed twice", field="eval.regression") for d in dupes]
        )
    return loaded
