"""lm-evaluation-harness tasks as regression suites: `eval.regression: [{lm_eval: TASK}]`.

lm-eval scores its own task (MMLU, ARC, HellaSwag, or a local task file) through its Python
API, `simple_evaluate` with `log_samples=True`, twice on the model the evaluation already
loaded, wrapped in lm-eval's HFLM (it takes an instantiated model and tokenizer): once with
the adapter disabled (the base) and once with it active, switched by
registry.evaluate.generate.use_contender. Per document, the sample log's value of the task's
primary metric (the entry's `metric`, else the first the task reports, e.g. `acc`) says right
or wrong; base and adapter are paired by (task, doc_id) and handed back as a TaskOutcome, which
regression.run_suites counts with the same `account` as a suite file's answers, so
the gate (`{suite: "lm_eval:arc_easy", max_drop_vs_base: 0.05}`) and the report treat the task
like any suite.

Invariants:
- lm-eval is an optional extra: a spec that names a task where it is not installed is bad
  input (InvalidInput, exit 2) naming eval.regression and `pip install 'lora-registry[lm-eval]'`.
- A task without `include_path` is lm-eval's own (its code, its Hub dataset: the runner needs
  the Hub or a filled HF cache). A local task is never handed to lm-eval as a folder:
  registry.spec.lm_eval_task checks its YAML and passes a config dict, which runs with the Hub
  offline and its templates rendered in Jinja's sandbox (lm-eval's are not sandboxed).
- Only metrics that are right or wrong per document (0 or 1) are counted; of a task with
  several filters, the first (e.g. gsm8k's strict-match) is read.
- Deterministic: log-likelihoods or greedy generation; lm-eval's own fixed seeds (its defaults,
  as its CLI uses) for few-shot sampling; no lm-eval bootstrap (the registry's statistics are).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from registry.errors import InvalidInput, Problem
from registry.evaluate.generate import BASE, use_contender
from registry.spec.lm_eval_task import entry_field as _field
from registry.spec.lm_eval_task import local_task

if TYPE_CHECKING:
    from registry.spec.lm_eval_task import LocalTaskFile
    from registry.spec.schema import RegressionSuite, Spec

INSTALL = "pip install 'lora-registry[lm-eval]'"
MAX_PROMPT_CHARS = 2000  # a few-shot context is long; its end holds the question


def entries(spec: Spec) -> list[RegressionSuite]:
    """The spec's lm-eval entries, in spec order."""
    return [e for e in spec.eval.regression if e.lm_eval is not None]


def require(spec: Spec) -> Any:
    """The lm_eval package, or InvalidInput when the spec names a task and it is missing."""
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM  # noqa: F401  (needs accelerate: the [hf] extra)
    except ImportError as exc:
        todo = entries(spec)
        names = ", ".join(e.name for e in todo)
        problem = spec.problem(
            _field(spec, todo[0]),
            f"{names} needs lm-evaluation-harness, which is not installed ({exc.msg})",
        )
        raise InvalidInput([replace(problem, hint=INSTALL)]) from None
    return lm_eval


def run_tasks(spec: Spec, model: Any, tokenizer: Any, *, adapter: str) -> list[TaskOutcome]:
    """Every lm-eval entry of the spec, scored by lm-eval on the base and on `adapter`."""
    todo = entries(spec)
    if not todo:
        return []
    lm_eval = require(spec)
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    # HFLM keeps the model as is (it calls eval() and tie_weights()); the evaluation's
    # tokenizer already has a pad token, and HFLM restores the padding side it changes.
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=spec.eval.batch_size)
    builtin = None
    results = []
    for entry in todo:
        local = local_task(spec, entry) if entry.include_path is not None else None
        if local is None and builtin is None:
            builtin = TaskManager()  # indexes lm-eval's own tasks (seconds)
        samples = {}
        for contender in (BASE, adapter):
            with use_contender(model, contender):
                samples[contender] = _samples(lm_eval, lm, spec, entry, local, builtin)
        results.append(_paired(spec, entry, local, samples[BASE], samples[adapter], adapter))
    return results


def _samples(
    lm_eval: Any,
    lm: Any,
    spec: Spec,
    entry: RegressionSuite,
    local: LocalTaskFile | None,
    builtin: Any,
) -> dict[str, list[dict[str, Any]]]:
    """lm-eval's per-document sample logs, by task name (several for a group)."""
    if local is None:
        task, manager, guard = entry.lm_eval, builtin, contextlib.nullcontext()
    else:
        from lm_eval.tasks import TaskManager

        manager = TaskManager(include_defaults=False)
        task, guard = local.config, _untrusted(lm_eval)
    try:
        with guard:
            out = lm_eval.simple_evaluate(
                model=lm,
                tasks=[task],
                task_manager=manager,
                num_fewshot=entry.num_fewshot,
                limit=entry.limit,
                log_samples=True,
                bootstrap_iters=0,
                confirm_run_unsafe_code=False,
            )
    except Exception as exc:  # sorted by _task_error: the task's fault, or re-raised as is
        error = _task_error(spec, entry, local, exc)
        if error is exc:
            raise
        raise error from None
    samples = (out or {}).get("samples") or {}
    if not samples:
        why = f"lm-eval task {entry.lm_eval!r} logged no documents"
        raise InvalidInput([spec.problem(_field(spec, entry), why)])
    return samples


def _task_error(
    spec: Spec, entry: RegressionSuite, local: LocalTaskFile | None, exc: Exception
) -> Exception:
    """A bad task name or local task becomes InvalidInput; anything else stays itself."""
    import jinja2

    text = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
    if local is None and isinstance(exc, KeyError):
        why = f"lm-eval has no task {entry.lm_eval!r}"
        return InvalidInput([spec.problem(_field(spec, entry), why)])
    if local is not None and isinstance(
        exc, (jinja2.TemplateError, KeyError, ValueError, TypeError, IndexError)
    ):
        problem = Problem(local.display, f"lm-eval could not run the task: {text}")
        if isinstance(exc, jinja2.exceptions.SecurityError):
            problem = Problem(local.display, f"a template reaches outside the document: {text}")
        return InvalidInput([problem])
    if local is not None and type(exc).__module__.startswith("datasets"):
        return InvalidInput([Problem(local.display, f"its data did not load: {text}")])
    return exc


@contextlib.contextmanager
def _untrusted(lm_eval: Any) -> Iterator[None]:
    """For a local task: the Hub offline (its data is in the repo) and lm-eval's templates
    rendered in Jinja's sandbox, with the default filters only."""
    import datasets.config
    import lm_eval.utils as utils
    from jinja2 import Environment
    from jinja2.sandbox import SandboxedEnvironment

    original = getattr(utils, "env", None)
    if not isinstance(original, Environment) or not callable(getattr(utils, "apply_template", 0)):
        # lm-eval changed how it renders: refuse rather than render unsandboxed
        raise RuntimeError("this lm-eval version renders templates in an unknown way")
    sandbox = SandboxedEnvironment(
        undefined=original.undefined, keep_trailing_newline=original.keep_trailing_newline
    )
    # datasets reads HF_DATASETS_OFFLINE at import only; this is the value its loader checks
    offline = datasets.config.HF_HUB_OFFLINE
    utils.env, datasets.config.HF_HUB_OFFLINE = sandbox, True
    try:
        yield
    finally:
        utils.env, datasets.config.HF_HUB_OFFLINE = original, offline


@dataclass(frozen=True)
class _Check:
    text: str

    def describe(self) -> str:
        return self.text


@dataclass(frozen=True)
class _Doc:
    """One scored document, shaped like a suite item for regression.account (id, prompt,
    and a check that describes itself)."""

    id: str
    prompt: str
    check: _Check


@dataclass(frozen=True)
class TaskOutcome:
    """One lm-eval entry's documents in order, with each contender's answers and right/wrong."""

    name: str  # lm_eval:<task>
    source: str  # the lm-eval version and the task (or its file)
    items: list[_Doc]
    answers: dict[str, list[str]]  # contender -> shown answer per document
    ok: dict[str, list[bool]]  # contender -> right per document


def _paired(
    spec: Spec,
    entry: RegressionSuite,
    local: LocalTaskFile | None,
    base: dict[str, list[dict[str, Any]]],
    adapter: dict[str, list[dict[str, Any]]],
    adapter_name: str,
) -> TaskOutcome:
    import lm_eval

    scored = {BASE: _scored(spec, entry, base), adapter_name: _scored(spec, entry, adapter)}
    keys = sorted(scored[BASE])
    if keys != sorted(scored[adapter_name]) or any(
        scored[BASE][k][0] != scored[adapter_name][k][0] for k in keys
    ):  # lm-eval is deterministic in which documents it takes: this is a bug, not bad input
        raise RuntimeError("lm-eval scored other documents for the adapter than for the base")
    items = [scored[BASE][key][1] for key in keys]
    answers: dict[str, list[str]] = {side: [] for side in scored}
    ok: dict[str, list[bool]] = {side: [] for side in scored}
    for key in keys:
        for side in ok:
            ok[side].append(scored[side][key][2])
            answers[side].append(scored[side][key][3])
    what = local.display if local is not None else entry.lm_eval
    version = getattr(lm_eval, "__version__", "?")
    return TaskOutcome(entry.name, f"lm-eval {version}: {what}", items, answers, ok)


def _scored(
    spec: Spec, entry: RegressionSuite, samples: dict[str, list[dict[str, Any]]]
) -> dict[tuple[str, int], tuple[str, _Doc, bool, str]]:
    """(task, doc_id) -> (doc hash, item, right?, answer shown) from lm-eval's sample logs."""
    out = {}
    for task, records in samples.items():
        if not records:
            continue
        first_filter = records[0].get("filter")
        records = [r for r in records if r.get("filter") == first_filter]
        metric = entry.metric or records[0]["metrics"][0]
        for r in records:
            value = r.get(metric)
            if isinstance(value, bool):
                value = float(value)
            if not isinstance(value, (int, float)) or math.isnan(value) or value not in (0, 1):
                reported = ", ".join(r.get("metrics", []))
                raise InvalidInput(
                    [
                        spec.problem(
                            _field(spec, entry),
                            f"lm-eval task {task!r}: metric {metric!r} is "
                            + (f"{value!r}" if metric in r else "not reported")
                            + f" for doc {r.get('doc_id')}; a regression suite needs a metric"
                            f" that is 0 or 1 per document (reported: {reported})",
                        )
                    ]
                )
            prompt, answer, want = _shown(r, metric)
            doc = _Doc(f"{task}/{r['doc_id']}", prompt, _Check(want))
            out[(task, int(r["doc_id"]))] = (r.get("doc_hash", ""), doc, value == 1, answer)
    return out


def _shown(record: dict[str, Any], metric: str) -> tuple[str, str, str]:
    """The prompt, the answer the model gave, and what the metric wanted, for the report."""
    args = record.get("arguments") or [("",)]
    prompt = str(args[0][0]) if isinstance(args[0], (tuple, list)) and args[0] else str(args[0])
    if len(prompt) > MAX_PROMPT_CHARS:
        prompt = "\u2026" + prompt[-MAX_PROMPT_CHARS:]
    resps = record.get("filtered_resps") or []
    target = record.get("target")
    pairs = all(isinstance(x, (tuple, list)) and len(x) == 2 for x in resps)
    if resps and pairs and len(args) == len(resps) > 1:  # multiple choice: log-likelihoods
        choices = [str(a[1]).strip() if len(a) > 1 else "" for a in args]
        scores = [float(x[0]) for x in resps]
        if metric == "acc_norm":  # lm-eval normalises by the choice's length in characters
            scores = [s / max(len(c), 1) for s, c in zip(scores, choices, strict=True)]
        answer = choices[max(range(len(scores)), key=scores.__getitem__)]
        if isinstance(target, int) and 0 <= target < len(choices):
            target = choices[target]
    elif resps and pairs:  # one continuation: right when it is the greedy one
        answer = f"{'greedy' if resps[0][1] else 'not greedy'} (logprob {float(resps[0][0]):.2f})"
    else:
        answer = str(resps[0]) if resps else ""
    return prompt, answer, f"{metric}: {str(target)[:200]!r}"
