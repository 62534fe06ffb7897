"""Reading datasets: JSONL files into Examples, bounded and strict, every problem located.

Three record formats:

    chat        {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
                the last message is the assistant answer that is trained on
    completion  {"prompt": "...", "completion": "..."}         raw text, no chat template
    alpaca      {"instruction": "...", "input": "...", "output": "..."}   rendered as chat

An optional "id" key (a string or an integer) names an example (reports pair items by id);
otherwise "line-<n>".

Datasets come from pull requests: reading is bounded (file size, line length, problem count),
strict JSON (no NaN/Infinity, no duplicate keys, no lone surrogates; a UTF-8 BOM is dropped,
UTF-16/32 refused), and every refusal names the file and line. Only regular files are read
(registry.spec.paths.open_regular: a FIFO or a device never blocks a reader).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from registry.errors import InvalidInput, Problem
from registry.spec.paths import open_regular

FORMATS = ("chat", "completion", "alpaca")
ROLES = ("system", "user", "assistant")
# Bounds on untrusted datasets: memory stays about one line plus the examples kept.
MAX_DATASET_BYTES = 512 << 20
MAX_LINE_BYTES = 4 << 20
MAX_PROBLEMS = 200
_UTF_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


@dataclass(frozen=True)
class Example:
    id: str
    line: int
    answer: str
    messages: tuple[dict[str, str], ...] = ()  # prompt turns (chat and alpaca)
    prompt: str | None = None  # raw prompt (completion)

    @property
    def prompt_text(self) -> str:
        """The user-visible prompt, for reports and leakage checks."""
        if self.prompt is not None:
            return self.prompt
        return "\n".join(m["content"] for m in self.messages if m["role"] != "system")


# -- reading -----------------------------------------------------------------------------------


class _Refuse(ValueError):
    """A JSON line we refuse although `json` would accept it (NaN, duplicate keys)."""


def _no_constants(name: str) -> Any:
    raise _Refuse(f"{name} is not JSON (use null or a number)")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _Refuse(f"duplicate key {dup[:80]!r}")
    return record


_DECODER = json.JSONDecoder(parse_constant=_no_constants, object_pairs_hook=_no_duplicates)


def _bad_unicode(record: Any) -> str | None:
    """The first field holding a lone surrogate (JSON allows \\ud800; UTF-8 and tokenizers don't)."""
    stack: list[tuple[str, Any]] = [("", record)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return where or "line"
        elif isinstance(node, dict):
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in node.items())
            stack.extend((where or "line", k) for k in node)
        elif isinstance(node, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(node))
    return None


def _text(record: dict, key: str, where: str, line: int, problems: list[Problem]) -> str | None:
    value = record.get(key)
    if value is None:
        problems.append(Problem(where, "required field is missing", line, key))
        return None
    if not isinstance(value, str):
        problems.append(Problem(where, f"must be a string, got {type(value).__name__}", line, key))
        return None
    return value


def _parse_record(
    record: Any, fmt: str, system_prompt: str | None, where: str, line: int
) -> tuple[Example | None, list[Problem]]:
    problems: list[Problem] = []
    if not isinstance(record, dict):
        return None, [Problem(where, "each line must be a JSON object", line)]
    allowed = {
        "chat": {"messages", "id"},
        "completion": {"prompt", "completion", "id"},
        "alpaca": {"instruction", "input", "output", "id"},
    }[fmt]
    for key in record:
        if key not in allowed:
            hint = f"format {fmt} allows: {', '.join(sorted(allowed))}"
            problems.append(Problem(where, "unknown field", line, key, hint))
    raw_id = record.get("id", f"line-{line}")
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or len(str(raw_id)) > 256:
        return None, [
            Problem(where, "id must be a string or an integer (<= 256 chars)", line, "id")
        ]
    if (bad := _bad_unicode(record)) is not None:
        return None, [Problem(where, "a lone surrogate (\\ud800-\\udfff) is not text", line, bad)]
    ex_id = str(raw_id)
    if fmt == "chat":
        messages = record.get("messages")
        if not isinstance(messages, list) or not messages:
            problems.append(
                Problem(where, "must be a non-empty list of {role, content}", line, "messages")
            )
            return None, problems
        turns = []
        for i, msg in enumerate(messages):
            fld = f"messages[{i}]"
            if not isinstance(msg, dict) or set(msg) != {"role", "content"}:
                problems.append(Problem(where, "must be {role, content}", line, fld))
                continue
            if msg["role"] not in ROLES:
                problems.append(Problem(where, f"role must be one of {ROLES}", line, f"{fld}.role"))
            if not isinstance(msg["content"], str):
                problems.append(Problem(where, "content must be a string", line, f"{fld}.content"))
                continue
            turns.append({"role": msg["role"], "content": msg["content"]})
        if problems:
            return None, problems
        if turns[-1]["role"] != "assistant":
            problems.append(
                Problem(where, "the last message must be the assistant answer", line, "messages")
            )
            return None, problems
        if turns[0]["role"] != "system" and system_prompt:
            turns.insert(0, {"role": "system", "content": system_prompt})
        answer, prompt_turns = turns[-1]["content"], tuple(turns[:-1])
        if not any(t["role"] == "user" for t in prompt_turns):
            problems.append(Problem(where, "needs at least one user message", line, "messages"))
        example = Example(ex_id, line, answer, messages=prompt_turns)
        texts = {"messages[-1].content": answer, "messages (user)": example.prompt_text}
    elif fmt == "completion":
        prompt = _text(record, "prompt", where, line, problems)
        answer = _text(record, "completion", where, line, problems)
        if problems:
            return None, problems
        example = Example(ex_id, line, answer, prompt=prompt)
        texts = {"prompt": prompt, "completion": answer}
    else:
        instruction = _text(record, "instruction", where, line, problems)
        answer = _text(record, "output", where, line, problems)
        extra = record.get("input", "")
        if not isinstance(extra, str):
            problems.append(Problem(where, "must be a string", line, "input"))
        if problems:
            return None, problems
        user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        turns = [{"role": "user", "content": user}]
        if system_prompt:
            turns.insert(0, {"role": "system", "content": system_prompt})
        example = Example(ex_id, line, answer, messages=tuple(turns))
        texts = {"instruction": instruction, "output": answer}
    for fld, text in texts.items():
        if not text.strip():
            problems.append(Problem(where, "empty or whitespace-only text", line, fld))
    return (None if problems else example), problems


def _lines(
    fh: BinaryIO, where: str, problems: list[Problem], max_line: int
) -> Iterator[tuple[int, str]]:
    """(number, text) of each line, bounded: an over-long or non-UTF-8 line is a problem."""
    line_no = 0
    while raw := fh.readline(max_line + 1):
        line_no += 1
        if len(raw) > max_line and not raw.endswith(b"\n"):
            problems.append(Problem(where, f"a line longer than {max_line} bytes", line_no))
            while (rest := fh.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass  # skip the rest of the line without holding it
            continue
        if line_no == 1:
            for bom, name in _UTF_BOMS:
                if raw.startswith(bom):
                    problems.append(Problem(where, f"{name} text; JSONL must be UTF-8", 1))
                    return
            raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM some editors write
        try:
            yield line_no, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(Problem(where, f"not UTF-8 text (byte {exc.start + 1})", line_no))


def parse_examples(
    path: Path,
    fmt: str,
    system_prompt: str | None = None,
    display: str | None = None,
    *,
    max_bytes: int = MAX_DATASET_BYTES,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> tuple[list[Example], list[Problem]]:
    """Read every line, collecting all problems rather than stopping at the first.

    Bounded: the file is a regular file of at most `max_bytes`, read line by line (each at most
    `max_line_bytes`); at most MAX_PROBLEMS problems are kept (then a count of the rest).
    """
    where = display or str(path)
    try:
        fh = open_regular(path)
    except FileNotFoundError:
        return [], [Problem(where, "dataset file not found", hint="run `dvc pull` or `make data`")]
    except OSError as exc:
        return [], [Problem(where, f"cannot read the dataset: {exc.strerror or exc}")]
    examples: list[Example] = []
    problems: list[Problem] = []
    seen_ids: dict[str, int] = {}
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if size > max_bytes:
            return [], [Problem(where, f"{size} bytes; a dataset may hold at most {max_bytes}")]
        for line_no, line in _lines(fh, where, problems, max_line_bytes):
            if not line.strip():
                continue
            try:
                record = _DECODER.decode(line)
            except json.JSONDecodeError as exc:
                hint = "lines must end with \\n, not a lone \\r" if "\r" in line.rstrip() else None
                problems.append(
                    Problem(
                        where, f"invalid JSON: {exc.msg} (column {exc.colno})", line_no, hint=hint
                    )
                )
                continue
            except RecursionError:
                problems.append(Problem(where, "invalid JSON: nested too deeply", line_no))
                continue
            except ValueError as exc:  # NaN, duplicate keys, an integer of 4,300+ digits
                problems.append(Problem(where, f"invalid JSON: {str(exc)[:200]}", line_no))
                continue
            example, found = _parse_record(record, fmt, system_prompt, where, line_no)
            problems.extend(found)
            if len(problems) > MAX_PROBLEMS:
                break
            if example is None:
                continue
            if example.id in seen_ids:
                problems.append(
                    Problem(
                        where,
                        f"id {example.id!r} already used on line {seen_ids[example.id]}",
                        line_no,
                        "id",
                    )
                )
                continue
            seen_ids[example.id] = line_no
            examples.append(example)
    if len(problems) > MAX_PROBLEMS:
        problems = problems[:MAX_PROBLEMS]
        problems.append(Problem(where, f"more than {MAX_PROBLEMS} problems; reading stopped"))
    if not examples and not problems:
        problems.append(Problem(where, "dataset has no examples"))
    return examples, problems


def load_examples(path: Path, fmt: str, system_prompt: str | None = None) -> list[Example]:
    """Read a dataset or raise InvalidInput listing every malformed line."""
    examples, problems = parse_examples(path, fmt, system_prompt)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise InvalidInput(errors)
    return examples
