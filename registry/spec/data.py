"""Datasets: read JSONL, check it, and turn examples into tokens with answer-only labels.

Training and evaluation share this module, so the prompt an adapter is trained on is exactly the
prompt it is evaluated on. Three record formats:

    chat        {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
                the last message is the assistant answer that is trained on
    completion  {"prompt": "...", "completion": "..."}         raw text, no chat template
    alpaca      {"instruction": "...", "input": "...", "output": "..."}   rendered as chat

An optional "id" key names an example (reports pair items by id); otherwise "line-<n>".
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import InvalidInput, Problem

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100  # label value PyTorch's cross-entropy skips: no loss on prompt tokens
FORMATS = ("chat", "completion", "alpaca")
ROLES = ("system", "user", "assistant")


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


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX on prompt tokens

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class DatasetStats:
    examples: int = 0
    tokens: int = 0
    answer_tokens: int = 0
    min_len: int = 0
    mean_len: float = 0.0
    p95_len: int = 0
    max_len: int = 0
    over_max_len: int = 0
    lengths: list[int] = field(default_factory=list, repr=False)


def file_sha256(path: Path) -> str:
    from registry.spec.base_model import sha256_file  # streamed: datasets may be large

    return sha256_file(Path(path))


# -- reading -----------------------------------------------------------------------------------


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
    ex_id = str(record.get("id", f"line-{line}"))
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


def parse_examples(
    path: Path, fmt: str, system_prompt: str | None = None, display: str | None = None
) -> tuple[list[Example], list[Problem]]:
    """Read every line, collecting all problems rather than stopping at the first."""
    where = display or str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return [], [Problem(where, "dataset file not found", hint="run `dvc pull` or `make data`")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return [], [Problem(where, "not UTF-8 text", line)]
    examples: list[Example] = []
    problems: list[Problem] = []
    seen_ids: dict[str, int] = {}
    # split on \n only: JSONL lines are \n-terminated, and editors number lines that way
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(
                Problem(where, f"invalid JSON: {exc.msg} (column {exc.colno})", line_no)
            )
            continue
        example, found = _parse_record(record, fmt, system_prompt, where, line_no)
        problems.extend(found)
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


# -- checks ------------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Casefold, strip accents and punctuation, collapse spaces: what 'near duplicate' means."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s]", " ", text.casefold())
    return " ".join(text.split())


def duplicate_problems(examples: list[Example], where: str) -> list[Problem]:
    """Exact and near duplicates inside one file: warnings (they waste steps, bias eval)."""
    problems = []
    exact: dict[tuple, int] = {}
    near: dict[str, int] = {}
    for ex in examples:
        key = (ex.prompt_text, ex.answer)
        if key in exact:
            problems.append(
                Problem(where, f"exact duplicate of line {exact[key]}", ex.line, severity="warning")
            )
            continue
        exact[key] = ex.line
        nkey = normalise(ex.prompt_text) + "\x00" + normalise(ex.answer)
        if nkey in near:
            problems.append(
                Problem(
                    where,
                    f"near duplicate of line {near[nkey]} (same text once normalised)",
                    ex.line,
                    severity="warning",
                )
            )
        else:
            near[nkey] = ex.line
    return problems


def leakage_problems(train: list[Example], evals: list[Example], eval_where: str) -> list[Problem]:
    """An eval prompt that also appears in train makes the gate measure memorisation."""
    train_prompts = {normalise(ex.prompt_text): ex.line for ex in train}
    return [
        Problem(
            eval_where,
            f"prompt also in the train set (train line {train_prompts[normalise(ex.prompt_text)]})",
            ex.line,
            hint="remove it from one of the files: the gate would measure memorisation",
        )
        for ex in evals
        if normalise(ex.prompt_text) in train_prompts
    ]


def token_stats(
    tokenizer: PreTrainedTokenizerBase, examples: list[Example], max_seq_len: int
) -> tuple[DatasetStats, list[Example]]:
    """Token statistics and the examples longer than max_seq_len."""
    lengths, answer_tokens, too_long = [], 0, []
    for ex in examples:
        tok = tokenize_example(tokenizer, ex)
        lengths.append(len(tok))
        answer_tokens += sum(1 for label in tok.labels if label != IGNORE_INDEX)
        if len(tok) > max_seq_len:
            too_long.append(ex)
    if not lengths:
        return DatasetStats(), too_long
    ordered = sorted(lengths)
    stats = DatasetStats(
        examples=len(lengths),
        tokens=sum(lengths),
        answer_tokens=answer_tokens,
        min_len=ordered[0],
        mean_len=sum(lengths) / len(lengths),
        p95_len=ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        max_len=ordered[-1],
        over_max_len=len(too_long),
        lengths=lengths,
    )
    return stats, too_long


# -- formatting and tokenizing -----------------------------------------------------------------


def render_prompt(tokenizer: PreTrainedTokenizerBase, example: Example) -> str:
    """The exact text the model sees before its answer (chat template + generation prompt)."""
    if example.prompt is not None:
        return example.prompt
    return tokenizer.apply_chat_template(
        list(example.messages), tokenize=False, add_generation_prompt=True
    )


def prompt_ids(tokenizer: PreTrainedTokenizerBase, example: Example) -> list[int]:
    return tokenizer(render_prompt(tokenizer, example), add_special_tokens=False)["input_ids"]


def tokenize_example(
    tokenizer: PreTrainedTokenizerBase, example: Example, max_seq_len: int | None = None
) -> TokenizedExample:
    """Prompt and answer tokenized separately and concatenated, answer + EOS trained on.

    Separate tokenization matters: at inference the model continues exactly these prompt
    tokens, so a merge across the prompt/answer boundary would train on a sequence it never
    sees. The EOS label teaches the adapter to stop.
    """
    p_ids = prompt_ids(tokenizer, example)
    a_ids = tokenizer(example.answer, add_special_tokens=False)["input_ids"]
    a_ids = [*a_ids, tokenizer.eos_token_id]
    input_ids = p_ids + a_ids
    labels = [IGNORE_INDEX] * len(p_ids) + a_ids
    if max_seq_len is not None:
        input_ids, labels = input_ids[:max_seq_len], labels[:max_seq_len]
    return TokenizedExample(input_ids, labels)


def show_example(
    tokenizer: PreTrainedTokenizerBase, example: Example, max_seq_len: int, color: bool = False
) -> str:
    """Render one example with the trained tokens marked, to catch silent masking bugs.

    Trained spans are wrapped in ⟦ ⟧ (or green when `color`); everything else is context.
    """
    tok = tokenize_example(tokenizer, example, max_seq_len)
    pieces, current, trained = [], [], None
    for tid, label in zip(tok.input_ids, tok.labels, strict=True):
        is_trained = label != IGNORE_INDEX
        if trained is not None and is_trained != trained:
            pieces.append((trained, current))
            current = []
        current.append(tid)
        trained = is_trained
    if current:
        pieces.append((trained, current))
    out = []
    for is_trained, ids in pieces:
        text = tokenizer.decode(ids, skip_special_tokens=False)
        if is_trained:
            out.append(f"\x1b[1;32m{text}\x1b[0m" if color else f"⟦{text}⟧")
        else:
            out.append(f"\x1b[2m{text}\x1b[0m" if color else text)
    n_trained = sum(1 for label in tok.labels if label != IGNORE_INDEX)
    header = (
        f"example {example.id} (line {example.line}): {len(tok)} tokens, "
        f"{n_trained} trained (marked {'green' if color else '⟦…⟧'}), "
        f"{len(tok) - n_trained} context"
    )
    return header + "\n" + "".join(out)
