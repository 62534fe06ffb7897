"""`registry new NAME --data FILE.jsonl`: a spec scaffold from a dataset, valid on creation.

The format (chat, alpaca, completion: registry/spec/data.py) is detected from the first record;
every record is then checked in that format, and any problem stops the scaffold before anything
is written. With one file, an eval set is split off deterministically: the examples whose
normalised prompt has the smallest sha256 until 10% (at least 20, at most half) are taken, all
copies of a prompt on one side, so the split never leaks and the same file always splits the
same way whatever its line order. Lines are copied byte for byte (ids and all).

Invariants:
- Never overwrites: `adapters/NAME` and `datasets/NAME` must not exist. If the written spec does
  not validate, both are removed again (they held only what this module wrote) and the problems
  are raised (InvalidInput, exit 2, each with file, line and field).
- The spec comes from the package template `resources/init/adapter.yaml`: r=8, a starter gate on
  a metric that fits the answers (JSON -> json_field_f1, short labels -> exact_match, longer
  text -> rouge_l) against the base model and the few-shot prompt baseline, a comment per key.
- The data ends up tracked by DVC (`dvc add datasets`) and the spec and pointer staged in git
  (through registry.core.git's run_dvc / run_git); nothing is committed or pushed (that is the
  user's PR).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import statistics
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from registry.core.git import run_dvc, run_git
from registry.errors import InvalidInput, Problem, RegistryError
from registry.spec.data import MAX_LINE_BYTES, Example, normalise, parse_examples
from registry.spec.paths import open_regular
from registry.spec.schema import NAME_PATTERN, SPEC_FILENAME, parse_spec

EVAL_FRACTION = 0.10
MIN_EVAL = 20  # the paired interval of the gate needs items; fewer than this says little
MIN_EXAMPLES = 4  # below this nothing can be split into two useful halves
SHORT_ANSWER_WORDS = 8  # a median answer this short is a label: exact_match judges it
MAX_PROBLEMS = 50  # shown; parse_examples itself stops reading at its own bound
DEFAULT_BASE_MODEL = "builtin:smollm2-135m-instruct"
METHODS = ("lora", "qlora", "dora")
# The keys that identify each record format (data.py's parser then checks every field).
FORMAT_KEYS = {"chat": {"messages"}, "completion": {"prompt", "completion"}}
FORMAT_KEYS["alpaca"] = {"instruction", "output"}
FORMATS_HINT = (
    "chat: {messages: [{role, content}, ...]}; completion: {prompt, completion}; "
    "alpaca: {instruction, input, output}"
)


@dataclass
class Scaffold:
    """What `new_spec` made."""

    name: str
    spec_path: Path
    format: str
    train: Path
    eval: Path
    n_train: int
    n_eval: int
    split: str  # how the eval set came to be, in words
    gate_metric: str
    warnings: list[Problem] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"{self.spec_path}: {self.format} data, {self.n_train} train / {self.n_eval} eval "
            f"examples ({self.split}); gate on {self.gate_metric} vs the base model and the "
            "prompt baseline"
        )


def detect_format(path: Path, display: str) -> str:
    """The format of the first non-empty record; reads only up to it, one bounded line."""
    try:
        fh = open_regular(path)
    except FileNotFoundError:
        raise InvalidInput([Problem(display, "dataset file not found")]) from None
    except OSError as exc:  # a folder, a FIFO, no permission
        raise InvalidInput([Problem(display, f"cannot read it: {exc.strerror or exc}")]) from None
    with fh:
        line_no, raw = 0, b""
        while chunk := fh.readline(MAX_LINE_BYTES + 1):
            line_no += 1
            raw = chunk.removeprefix(b"\xef\xbb\xbf") if line_no == 1 else chunk
            if raw.strip():
                break
    if not raw.strip():
        raise InvalidInput([Problem(display, "dataset has no examples")])
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, nested too deeply
        raise InvalidInput([Problem(display, f"invalid JSON: {str(exc)[:200]}", line_no)]) from None
    if not isinstance(record, dict):
        raise InvalidInput([Problem(display, "each line must be a JSON object", line_no)])
    keys = set(record) - {"id"}
    for fmt, needed in FORMAT_KEYS.items():
        if needed <= keys:
            return fmt
    found = ", ".join(sorted(keys)) or "none"
    raise InvalidInput(
        [
            Problem(
                display,
                f"cannot tell the format from the keys ({found})",
                line_no,
                hint=FORMATS_HINT,
            )
        ]
    )


def _read(path: Path, fmt: str, display: str) -> tuple[list[Example], list[Problem]]:
    """Every example, or InvalidInput naming the first MAX_PROBLEMS bad lines."""
    examples, problems = parse_examples(path, fmt, display=display)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        shown = errors[:MAX_PROBLEMS]
        if len(errors) > len(shown):
            shown.append(Problem(display, f"... and {len(errors) - len(shown)} more problems"))
        raise InvalidInput(shown)
    return examples, [p for p in problems if p.severity != "error"]


def split_eval(examples: list[Example]) -> tuple[list[Example], list[Example]]:
    """(train, eval): the prompts with the smallest hashes go to eval, duplicates together."""
    groups: dict[str, list[Example]] = {}
    for ex in examples:
        groups.setdefault(normalise(ex.prompt_text), []).append(ex)
    if len(groups) < 2:
        return examples, []
    limit = len(examples) // 2
    want = min(limit, max(math.ceil(len(examples) * EVAL_FRACTION), MIN_EVAL))
    chosen: set[int] = set()
    for key in sorted(groups, key=lambda k: hashlib.sha256(k.encode()).hexdigest()):
        if len(chosen) >= want:
            break
        if len(chosen) + len(groups[key]) <= limit:  # a big group of copies may not fit: skip it
            chosen.update(ex.line for ex in groups[key])
    held_out = [ex for ex in examples if ex.line in chosen]
    return [ex for ex in examples if ex.line not in chosen], held_out


def choose_metric(examples: list[Example]) -> tuple[list[str], str, str]:
    """(metrics, the gate's metric, why) from the shape of the answers."""
    answers = [ex.answer for ex in examples]

    def is_json_object(text: str) -> bool:
        try:
            return isinstance(json.loads(text), dict)
        except ValueError:
            return False

    if all(is_json_object(a) for a in answers):
        return (
            ["json_valid", "json_field_f1", "exact_match"],
            "json_field_f1",
            "the answers are JSON objects: field-level F1, parse rate, exact match",
        )
    words = statistics.median(len(a.split()) for a in answers)
    if words <= SHORT_ANSWER_WORDS:
        return ["exact_match"], "exact_match", f"short answers (median {words:g} words)"
    return ["rouge_l"], "rouge_l", f"free text (median {words:g} words): ROUGE-L overlap"


def _write_lines(source_text: list[str], examples: list[Example], target: Path) -> None:
    target.write_text("".join(source_text[ex.line - 1] + "\n" for ex in examples), "utf-8")


def _render_spec(values: dict[str, str]) -> str:
    text = resources.files("registry").joinpath("resources/init/adapter.yaml").read_text("utf-8")
    for key, value in values.items():
        text = text.replace(f"__{key}__", value)
    return text


def _blame_option(problem: Problem) -> Problem:
    """A schema error in the rendered spec can only come from --base-model: name it."""
    if "base_model" in f"{problem.field or ''} {problem.message}":
        return Problem("--base-model", problem.message, field="base_model", hint=problem.hint)
    return problem


def _rename(problem: Problem, copied: dict[str, str]) -> Problem:
    if problem.file in copied:
        return Problem(
            copied[problem.file],
            problem.message,
            problem.line,
            problem.field,
            problem.hint,
            problem.severity,
        )
    return problem


def new_spec(
    repo: str | Path,
    name: str,
    data_file: str | Path,
    *,
    eval_file: str | Path | None = None,
    base_model: str = DEFAULT_BASE_MODEL,
    method: str = "lora",
    check_tokens: bool = True,
) -> Scaffold:
    """Scaffold `adapters/NAME/adapter.yaml` and `datasets/NAME/` in the registry at `repo`."""
    from registry.spec.validate import validate_spec

    root = Path(repo)
    if not re.fullmatch(NAME_PATTERN, name):  # fullmatch: `$` alone lets "name\n" through
        raise InvalidInput(
            [
                Problem(
                    "<NAME>",
                    f"invalid adapter name {name!r}",
                    field="name",
                    hint="lowercase letters, digits and '-', 2-63 chars, starting with a "
                    "letter or digit",
                )
            ]
        )
    if method not in METHODS:
        raise InvalidInput([Problem("--method", f"{method!r}: one of {', '.join(METHODS)}")])
    if not (root / "adapters").is_dir():
        raise InvalidInput(
            [
                Problem(
                    str(root / "adapters"),
                    "not a registry repository (no adapters/ folder)",
                    hint="run it at the root of a repo made by `registry init`",
                )
            ]
        )
    spec_dir, data_dir = root / "adapters" / name, root / "datasets" / name
    taken = [p for p in (spec_dir, data_dir) if p.exists()]
    if taken:
        raise InvalidInput(
            [
                Problem(str(p), "already exists; `registry new` never overwrites", field="name")
                for p in taken
            ]
        )

    data_path = Path(data_file)
    fmt = detect_format(data_path, str(data_file))
    train, warnings = _read(data_path, fmt, str(data_file))
    if eval_file is not None:
        eval_path = Path(eval_file)
        eval_fmt = detect_format(eval_path, str(eval_file))
        if eval_fmt != fmt:
            raise InvalidInput(
                [Problem(str(eval_file), f"is {eval_fmt} data, {data_file} is {fmt}", 1)]
            )
        evals, more = _read(eval_path, fmt, str(eval_file))
        warnings += more
        split = f"eval from {eval_path.name}"
    else:
        if len(train) < MIN_EXAMPLES:
            raise InvalidInput(
                [
                    Problem(
                        str(data_file),
                        f"{len(train)} examples: at least {MIN_EXAMPLES} are needed to split off "
                        "an eval set",
                        hint="add examples, or give the eval set with --eval FILE.jsonl",
                    )
                ]
            )
        train, evals = split_eval(train)
        if not evals:
            raise InvalidInput(
                [Problem(str(data_file), "every example has the same prompt: nothing to evaluate")]
            )
        split = (
            f"{len(evals)} held out of {data_path.name}: the prompts with the smallest sha256, "
            f"{EVAL_FRACTION:.0%} with at least {MIN_EVAL}, at most half"
        )
    metrics, gate_metric, why = choose_metric(train + evals)
    values = {
        "NAME": name,
        "SOURCE": json.dumps(data_path.name),  # quoted and escaped: a file name is never YAML
        "FORMAT": fmt,
        "N_TRAIN": str(len(train)),
        "N_EVAL": str(len(evals)),
        "SPLIT_NOTE": "given with --eval" if eval_file is not None else "split off",
        "BASE_MODEL": json.dumps(base_model),
        "METHOD": method,
        "METRICS": "[" + ", ".join(metrics) + "]",
        "METRIC_NOTE": why,
        "GATE_METRIC": gate_metric,
    }
    spec_path = spec_dir / SPEC_FILENAME
    text = _render_spec(values)
    try:  # the schema first, in memory: a bad --base-model stops here, before any write
        parse_spec(text, str(spec_path))
    except InvalidInput as exc:
        raise InvalidInput([_blame_option(p) for p in exc.problems]) from None

    # Where validation reports copied files, point at the user's files (same lines).
    copied = {}
    if eval_file is not None:
        copied = {
            f"datasets/{name}/train.jsonl": str(data_file),
            f"datasets/{name}/eval.jsonl": str(eval_file),
        }
    spec_dir.mkdir(parents=True)
    try:
        data_dir.mkdir(parents=True)
        if eval_file is not None:
            shutil.copyfile(data_path, data_dir / "train.jsonl")
            shutil.copyfile(eval_path, data_dir / "eval.jsonl")
        else:
            # split on \n of the raw text, as parse_examples numbers lines
            lines = data_path.read_bytes().decode("utf-8-sig").split("\n")
            _write_lines(lines, train, data_dir / "train.jsonl")
            _write_lines(lines, evals, data_dir / "eval.jsonl")
        spec_path.write_text(text, "utf-8")
        result = validate_spec(spec_path, check_tokens=check_tokens)
        if not result.ok:
            raise InvalidInput([_rename(p, copied) for p in result.errors])
    except BaseException:
        # Only what this call created lives there (both folders were absent at the start).
        shutil.rmtree(spec_dir, ignore_errors=True)
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    run_dvc(root, "add", "-q", "datasets")
    staged = [f"adapters/{name}", "datasets.dvc", ".gitignore"]
    run_git(root, "add", "--", *[p for p in staged if (root / p).exists()], error=RegistryError)
    return Scaffold(
        name=name,
        spec_path=spec_path,
        format=fmt,
        train=data_dir / "train.jsonl",
        eval=data_dir / "eval.jsonl",
        n_train=len(train),
        n_eval=len(evals),
        split=split,
        gate_metric=gate_metric,
        warnings=warnings + result.warnings,
    )
