"""`registry validate`: a spec and its datasets, every problem at once.

Errors (malformed spec, malformed lines, empty texts, train/eval leakage) make the spec invalid;
warnings (duplicates, examples over max_seq_len, which training drops) inform. Bad content never
raises: it is in the results, whose `to_json()` is the `--json` output (the CLI only dumps it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.errors import InvalidInput, Problem
from registry.spec.data import (
    DatasetStats,
    Example,
    duplicate_problems,
    leakage_problems,
    parse_examples,
    token_stats,
)
from registry.spec.schema import SPEC_FILENAME, Spec, find_specs, load_spec


@dataclass
class SpecValidation:
    """One spec's findings: its problems (errors and warnings), token stats per split."""

    path: Path
    spec: Spec | None = None
    problems: list[Problem] = field(default_factory=list)
    stats: dict[str, DatasetStats] = field(default_factory=dict)
    examples: dict[str, list[Example]] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        """The result as `registry validate --json` prints it (one list entry per spec).

        Token lengths per example are left out (`lengths: null`): the summary stats say it.
        """
        return {
            "path": str(self.path),
            "ok": self.ok,
            "problems": [dict(vars(p)) for p in self.problems],
            "stats": {k: {**vars(v), "lengths": None} for k, v in self.stats.items()},
        }


def spec_paths(paths: list[Path] | None, root: Path = Path(".")) -> list[Path]:
    """Explicit paths (spec files or adapter folders), or every spec under adapters/."""
    if not paths:
        # An empty registry is valid (e.g. after the last adapter is retired); the CLI says so.
        return find_specs(root)
    return [p / SPEC_FILENAME if p.is_dir() else p for p in paths]


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def validate_spec(path: Path, *, check_tokens: bool = True) -> SpecValidation:
    result = SpecValidation(path)
    try:
        spec = load_spec(path)
    except InvalidInput as exc:
        result.problems.extend(exc.problems)
        return result
    result.spec = spec
    result.problems.extend(_suite_problems(spec))
    splits: dict[str, Path] = {}
    for split in ("train", "eval"):
        rel = getattr(spec.data, split)
        if rel is None:
            continue
        try:  # a folder, FIFO, device or a link leaving the repo: named at the spec's line
            splits[split] = spec.data_file(f"data.{split}", rel)
        except InvalidInput as exc:
            result.problems.extend(exc.problems)
    if len(splits) < (2 if spec.data.eval else 1):
        return result
    for split, data_path in splits.items():
        display = _display(data_path, spec.root)
        examples, problems = parse_examples(
            data_path, spec.data.format, spec.data.system_prompt, display
        )
        result.problems.extend(problems)
        result.problems.extend(duplicate_problems(examples, display))
        result.examples[split] = examples
    if "eval" in result.examples and result.examples["train"]:
        eval_display = _display(spec.eval_path, spec.root)
        result.problems.extend(
            leakage_problems(result.examples["train"], result.examples["eval"], eval_display)
        )
    if check_tokens and result.ok:
        _check_tokens(result, spec)
    return result


def _suite_problems(spec: Spec) -> list[Problem]:
    """The regression suites the spec names: found, regular files in the repo, every line valid
    (so a bad suite fails on the cheap hosted runner, not after training on the GPU)."""
    from registry.spec.suite import load_suites

    try:
        load_suites(spec)
    except InvalidInput as exc:
        return list(exc.problems)
    return []


def _check_tokens(result: SpecValidation, spec: Spec) -> None:
    """Token lengths with the base model's own tokenizer (the builtin is converted once)."""
    from registry.spec.base_model import load_tokenizer, resolve_base_model

    tokenizer = load_tokenizer(resolve_base_model(spec.base_model))
    max_len = spec.training.max_seq_len
    for split, examples in result.examples.items():
        stats, too_long = token_stats(tokenizer, examples, max_len)
        result.stats[split] = stats
        display = _display(spec.train_path if split == "train" else spec.eval_path, spec.root)
        for ex in too_long:
            result.problems.append(
                Problem(
                    display,
                    f"{len(tokenizer(ex.answer)['input_ids'])}+ answer tokens; the example is "
                    f"longer than training.max_seq_len={max_len} and is dropped in training",
                    ex.line,
                    severity="warning",
                    hint="raise training.max_seq_len or shorten the example",
                )
            )


def validate(
    paths: list[Path] | None = None, *, root: Path = Path("."), check_tokens: bool = True
) -> list[SpecValidation]:
    """Validate specs and their data; never raises for bad content (it is in the results)."""
    return [validate_spec(p, check_tokens=check_tokens) for p in spec_paths(paths, root)]


def format_stats(stats: DatasetStats) -> str:
    return (
        f"{stats.examples} examples, {stats.tokens} tokens ({stats.answer_tokens} trained), "
        f"length min/mean/p95/max {stats.min_len}/{stats.mean_len:.0f}/{stats.p95_len}/"
        f"{stats.max_len}"
    )
