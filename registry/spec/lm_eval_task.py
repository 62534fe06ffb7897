"""Local lm-evaluation-harness tasks (`eval.regression: [{lm_eval: NAME, include_path: DIR}]`):
the task's YAML is read and checked by the registry, and lm-eval receives only a plain dict.

A task folder comes from a pull request, and lm-eval's own loading is not safe for it: its YAML
loader runs `!function` (imports the Python file beside the YAML), a metric name it does not
know is fetched and run by `evaluate.load`, `dataset_path` may name any folder of the runner
(whose files would then be quoted in the report), and its Jinja templates render unsandboxed (a
template can reach Python internals). So:

- every `*.yaml` / `*.yml` directly in the folder (at most MAX_TASK_FILES) is read bounded and
  safe-loaded by registry.spec.loader: custom tags such as `!function` are refused with their
  line. The entry's task is the one file whose `task:` is its name.
- That file must fit LocalTask, a closed subset of lm-eval's TaskConfig (unknown keys refused):
  a packaged file dataset (json, csv, parquet) whose `data_files` are paths relative to the task
  folder, regular files inside the repo; the per-item metrics acc, acc_norm and exact_match; no
  filters, includes, groups, Python functions or promptsource prompts.
- Templates must parse in Jinja's sandbox with its default filters only (lm-eval's
  `regex_replace` would run untrusted patterns); at run time lm-eval renders them in that
  sandbox too (registry.evaluate.lm_eval), which refuses access to Python internals.

Nothing here imports lm-eval: `registry validate` checks a local task on a runner without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from registry.errors import InvalidInput, Problem
from registry.spec.loader import line_for, line_index, load_yaml, read_spec_bytes
from registry.spec.paths import file_problem, path_text_problem

if TYPE_CHECKING:
    from registry.spec.schema import RegressionSuite, Spec

MAX_TASK_FILES = 256
MAX_DATA_FILES = 32
MAX_DATA_BYTES = 256 << 20  # datasets loads the whole file into its Arrow cache
SUFFIXES = {"json": (".jsonl", ".json"), "csv": (".csv",), "parquet": (".parquet",)}
PER_ITEM_METRICS = ("acc", "acc_norm", "exact_match")  # right or wrong per document


def _template(value: str) -> str:
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import SandboxedEnvironment

    try:
        SandboxedEnvironment().from_string(value)  # compiled: unknown filters are refused too
    except TemplateSyntaxError as exc:
        raise ValueError(f"template line {exc.lineno}: {exc.message}") from None
    return value


Template = Annotated[str, Field(max_length=10_000), AfterValidator(_template)]
Text = Annotated[str, Field(max_length=1_000)]
SplitName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
DataPath = Annotated[str, Field(min_length=1, max_length=1024)]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Metric(_Closed):
    metric: Literal[PER_ITEM_METRICS]  # type: ignore[valid-type]
    aggregation: Literal["mean"] | None = None
    higher_is_better: bool | None = None
    ignore_case: bool | None = None
    ignore_punctuation: bool | None = None


class Generation(_Closed):
    until: list[Text] | Text | None = Field(None, max_length=32)
    max_gen_toks: int | None = Field(None, ge=1, le=4096)
    do_sample: Literal[False] | None = None  # greedy: the same answer on every run
    temperature: Literal[0] | None = None


class Fewshot(_Closed):
    sampler: Literal["default", "first_n"] | None = None


class DatasetKwargs(_Closed):
    data_files: (
        DataPath
        | Annotated[list[DataPath], Field(min_length=1, max_length=MAX_DATA_FILES)]
        | Annotated[dict[SplitName, DataPath | list[DataPath]], Field(min_length=1, max_length=8)]
    )


class LocalTask(_Closed):
    """The lm-eval task keys a local task may use (docs/regression.md)."""

    task: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    task_alias: Text | None = None
    dataset_path: Literal["json", "csv", "parquet"]
    dataset_kwargs: DatasetKwargs
    training_split: SplitName | None = None
    validation_split: SplitName | None = None
    test_split: SplitName | None = None
    fewshot_split: SplitName | None = None
    output_type: Literal["multiple_choice", "generate_until", "loglikelihood"] = "generate_until"
    doc_to_text: Template | None = None
    doc_to_target: Template | int | None = None
    doc_to_choice: Template | Annotated[list[Template], Field(max_length=100)] | None = None
    description: Template | None = None
    gen_prefix: Template | None = None
    target_delimiter: Text | None = None
    fewshot_delimiter: Text | None = None
    num_fewshot: int | None = Field(None, ge=0, le=32)
    fewshot_config: Fewshot | None = None
    metric_list: list[Metric] | None = Field(None, min_length=1, max_length=8)
    generation_kwargs: Generation | None = None
    metadata: dict[str, str | int | float | bool | None] | None = Field(None, max_length=32)

    @model_validator(mode="after")
    def _coherent(self) -> LocalTask:
        if self.test_split is None and self.validation_split is None:
            raise ValueError("set test_split or validation_split: the documents lm-eval scores")
        if self.output_type == "multiple_choice" and self.doc_to_choice is None:
            raise ValueError("a multiple_choice task needs doc_to_choice")
        return self

    def data_files(self) -> list[tuple[tuple[Any, ...], str]]:
        """(location in the YAML, path) of every data file."""
        files = self.dataset_kwargs.data_files
        where = ("dataset_kwargs", "data_files")
        if isinstance(files, str):
            return [(where, files)]
        if isinstance(files, list):
            return [((*where, i), f) for i, f in enumerate(files)]
        out = []
        for split, value in files.items():
            values = [value] if isinstance(value, str) else value
            out += [((*where, split, i), f) for i, f in enumerate(values)]
        return out


@dataclass(frozen=True)
class LocalTaskFile:
    """A checked local task: its YAML file and the config dict lm-eval receives."""

    display: str  # the YAML, relative to the repo root
    config: dict[str, Any]  # the checked keys; data_files absolute


def entry_field(spec: Spec, entry: RegressionSuite) -> str:
    """The dotted spec field of a regression entry, e.g. `eval.regression.1`."""
    return f"eval.regression.{spec.eval.regression.index(entry)}"


def local_task(spec: Spec, entry: RegressionSuite) -> LocalTaskFile:
    """The checked local task of an `{lm_eval: NAME, include_path: DIR}` entry."""
    assert entry.lm_eval is not None and entry.include_path is not None
    field = entry_field(spec, entry)
    return load_local_task(
        spec.root, entry.include_path, entry.lm_eval, lambda m: spec.problem(field, m)
    )


def entry_problems(spec: Spec, entry: RegressionSuite) -> list[Problem]:
    """What can be said of an lm_eval entry without lm-eval (`registry validate`): a local
    task's folder, YAML and data files. A task of lm-eval's own is checked when it runs."""
    if entry.include_path is None:
        return []
    try:
        local_task(spec, entry)
    except InvalidInput as exc:
        return list(exc.problems)
    return []


def load_local_task(
    root: Path, include_path: str, name: str, problem: Callable[[str], Problem]
) -> LocalTaskFile:
    """The task `name` of the folder `root/include_path`, checked; InvalidInput lists every
    problem (`problem(message)` is one about the spec entry itself, at its line)."""
    root = Path(root).resolve()
    folder = root / include_path
    real = os.path.realpath(folder)
    if os.path.commonpath([str(root), real]) != str(root):
        raise InvalidInput([problem(f"include_path {include_path!r} leads outside the repo")])
    if not os.path.isdir(real):
        raise InvalidInput([problem(f"include_path {include_path!r} is not a folder in the repo")])
    files = _yaml_files(folder, problem)
    problems: list[Problem] = []
    found: list[tuple[str, dict[str, Any], Any]] = []
    for path in files:
        display = f"{include_path}/{path.name}"
        if reason := file_problem(root, display):
            problems.append(Problem(display, reason))
            continue
        try:
            data, node = load_yaml(read_spec_bytes(path, display), display)
        except InvalidInput as exc:
            problems += exc.problems
            continue
        if isinstance(data, dict) and data.get("task") == name:
            found.append((display, data, node))
    if problems:
        raise InvalidInput(problems)
    if len(found) != 1:
        where = ", ".join(d for d, _, _ in found)
        raise InvalidInput(
            [
                problem(
                    f"{len(found)} YAML files in {include_path} define task {name!r}"
                    + (f" ({where})" if found else "")
                    + "; expected one"
                )
            ]
        )
    display, data, node = found[0]
    lines = line_index(node)
    try:
        task = LocalTask.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(_validation_problems(exc, display, lines)) from None
    config = task.model_dump(exclude_none=True)
    config["dataset_kwargs"]["data_files"] = _data_files(task, root, include_path, display, lines)
    return LocalTaskFile(display, config)


def _yaml_files(folder: Path, problem: Callable[[str], Problem]) -> list[Path]:
    found = []
    with os.scandir(folder) as entries:
        for i, entry in enumerate(entries):
            if i >= 10 * MAX_TASK_FILES:
                break
            if entry.name.endswith((".yaml", ".yml")):
                found.append(Path(entry.path))
    if len(found) > MAX_TASK_FILES:
        raise InvalidInput([problem(f"more than {MAX_TASK_FILES} YAML files in the task folder")])
    return sorted(found)


def _data_files(
    task: LocalTask, root: Path, include_path: str, display: str, lines: dict
) -> str | list[str] | dict[str, Any]:
    """The data files made absolute, after checking each stays a regular file in the repo."""
    problems: list[Problem] = []
    suffixes = SUFFIXES[task.dataset_path]
    resolved: dict[tuple, str] = {}
    for loc, rel in task.data_files():
        field = ".".join(map(str, loc))
        line = line_for(lines, loc)
        reason = path_text_problem(rel, suffix="")
        if reason is None and not rel.endswith(suffixes):
            reason = f"a {task.dataset_path} dataset reads {' or '.join(suffixes)} files"
        repo_rel = f"{include_path}/{rel}"
        reason = reason or file_problem(root, repo_rel)
        if reason is None and not (root / repo_rel).is_file():
            reason = f"{repo_rel} not found (paths are relative to the task folder)"
        if reason is None and (size := (root / repo_rel).stat().st_size) > MAX_DATA_BYTES:
            reason = f"{size} bytes; a local task's data file may hold at most {MAX_DATA_BYTES}"
        if reason:
            problems.append(Problem(display, reason, line=line, field=field))
        resolved[loc] = str(root / repo_rel)
    if problems:
        raise InvalidInput(problems)
    files = task.dataset_kwargs.data_files
    if isinstance(files, str):
        return resolved[("dataset_kwargs", "data_files")]
    if isinstance(files, list):
        return [resolved[("dataset_kwargs", "data_files", i)] for i in range(len(files))]
    out: dict[str, Any] = {}
    for split, value in files.items():
        count = 1 if isinstance(value, str) else len(value)
        values = [resolved[("dataset_kwargs", "data_files", split, i)] for i in range(count)]
        out[split] = values[0] if isinstance(value, str) else values
    return out


def _validation_problems(exc: ValidationError, file: str, lines: dict) -> list[Problem]:
    problems = []
    for err in exc.errors():
        # pydantic adds union/literal tags to loc (e.g. 'list[str]'); keep the YAML's keys only
        loc = tuple(p for p in err["loc"] if isinstance(p, int) or "[" not in str(p))
        loc = tuple(p for p in loc if p not in ("str", "int", "function-after"))
        message = err["msg"].removeprefix("Value error, ")
        hint = None
        if err["type"] == "extra_forbidden":
            message = "unknown key, or an lm-eval feature a local task may not use"
            hint = "allowed: " + ", ".join(LocalTask.model_fields) if len(loc) == 1 else None
        elif err["type"] == "missing":
            message = "required key is missing"
        field = ".".join(map(str, loc)) or None
        problems.append(Problem(file, message, line=line_for(lines, loc), field=field, hint=hint))
    return problems
