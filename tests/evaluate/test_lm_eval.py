"""lm-evaluation-harness tasks as regression suites, offline, on the tiny model.

The task is a local multiple-choice YAML (dataset_path: json, a JSONL the test writes), run by
lm-eval's own API. A zero-initialised adapter IS the base, so nothing breaks and the gate
passes through `registry eval`'s whole path; a damaged adapter changes answers, and the paired
accounting equals a recount from lm-eval's own sample logs of a separate run that loads the
task folder with lm-eval's own loader. The registry's checks of untrusted task folders
(`!function`, unknown keys, data outside the folder, unknown metrics, sandbox escapes) and the
missing-extra error are tested without a model where they can be.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
from test_evaluate import _damage, _peft

from registry.errors import InvalidInput
from registry.evaluate.markdown import md
from registry.evaluate.regression import run_suites
from registry.evaluate.run import evaluate
from registry.spec.schema import load_spec, parse_spec
from registry.spec.suite import load_suites

TASK = "tiny_mc"
TASK_DIR = "regression/lm_eval"
N_DOCS = 24
# one character each: the tiny model's tokenizer spells words out, so longer choices would
# differ by their token count, which no adapter can outweigh
CHOICES = ["A", "B", "C", "D"]

TASK_YAML = """\
task: tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: tiny_mc.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{{question}}\\nAnswer:"
doc_to_choice: "{{choices}}"
doc_to_target: label
metric_list:
  - metric: acc
"""


def write_task(root: Path, yaml_text: str = TASK_YAML) -> Path:
    folder = root / TASK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    rows = [
        {"question": f"Which letter names the {rng.choice(['cat', 'car', 'cup'])} #{i}?"}
        | {"choices": CHOICES, "label": rng.randrange(4)}
        for i in range(N_DOCS)
    ]
    (folder / "tiny_mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "tiny_mc.yaml").write_text(yaml_text)
    return folder


def task_spec(repo: Path, **entry):
    spec = load_spec(repo / "adapters" / "toy" / "adapter.yaml")
    return spec.with_overrides(
        **{"eval.regression": [{"lm_eval": TASK, "include_path": TASK_DIR, **entry}]}
    )


def recount(folder: Path, model, tokenizer, adapter: str, monkeypatch) -> dict:
    """broken/fixed/kept from lm-eval's own sample logs, the task loaded by lm-eval itself."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from registry.evaluate.generate import use_contender

    monkeypatch.chdir(folder)  # lm-eval hands data_files to datasets as they are: cwd-relative
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=16)
    manager = TaskManager(include_path=str(folder), include_defaults=False)
    acc = {}
    for contender in ("base", adapter):
        with use_contender(model, contender):
            out = lm_eval.simple_evaluate(
                model=lm, tasks=[TASK], task_manager=manager, log_samples=True, bootstrap_iters=0
            )
        acc[contender] = {s["doc_id"]: s["acc"] == 1.0 for s in out["samples"][TASK]}
    base, new = acc["base"], acc[adapter]
    assert sorted(base) == sorted(new) == list(range(N_DOCS))
    return {
        "broken": [f"{TASK}/{d}" for d in sorted(base) if base[d] and not new[d]],
        "fixed": sum(1 for d in base if new[d] and not base[d]),
        "kept": sum(1 for d in base if new[d] and base[d]),
        "base": "".join("1" if base[d] else "0" for d in sorted(base)),
        "adapter": "".join("1" if new[d] else "0" for d in sorted(base)),
    }


def test_a_zero_initialised_adapter_breaks_nothing_and_passes_the_gate(
    toy_repo: Path, tiny_model, tmp_path: Path
) -> None:
    write_task(toy_repo)
    model = _peft(tiny_model)  # LoRA B starts at zero: the adapter's log-likelihoods ARE the base's
    model.save_pretrained(tmp_path / "zero")
    spec = task_spec(toy_repo).with_overrides(
        **{
            "eval.gate": [{"suite": f"lm_eval:{TASK}", "max_drop_vs_base": 0.05}],
            "eval.metrics": ["exact_match"],
            "eval.limit": 2,
        }
    )
    report = evaluate(spec, tmp_path / "zero", out=tmp_path / "r", progress=False)
    r = report.regression[f"lm_eval:{TASK}"]
    assert (r.n, r.broken, r.fixed, r.kept) == (N_DOCS, 0, 0, r.base_correct)
    assert r.outcomes["base"] == r.outcomes["adapter"] and (r.delta, r.ci) == (0.0, (0.0, 0.0))
    assert f"{TASK_DIR}/tiny_mc.yaml" in r.source and r.source.startswith("lm-eval 0.4")
    assert report.passed, report.summary()
    [rule] = [x for x in report.gate.rules if x.metric == f"suite:lm_eval:{TASK}"]
    assert rule.passed
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    assert data["regression"][f"lm_eval:{TASK}"]["n"] == N_DOCS
    assert f"| {md(f'lm_eval:{TASK}')} | {N_DOCS} |" in (tmp_path / "r" / "report.md").read_text()


def test_a_damaged_adapter_is_counted_as_lm_evals_own_sample_logs_say(
    toy_repo: Path, tiny_model, tiny_tokenizer, monkeypatch
) -> None:
    folder = write_task(toy_repo)
    model = _damage(_peft(tiny_model), scale=1.0)
    spec = task_spec(toy_repo)
    [(name, r)] = run_suites(
        spec, model, tiny_tokenizer, base_id="b", adapter="default", adapter_id="a", progress=False
    ).items()
    assert name == f"lm_eval:{TASK}" and r.n == N_DOCS
    assert r.broken + r.fixed > 0  # the damage moved some answers
    want = recount(folder, model, tiny_tokenizer, "default", monkeypatch)
    assert [b["id"] for b in r.broken_items] == want["broken"]
    assert (r.fixed, r.kept) == (want["fixed"], want["kept"])
    assert (r.outcomes["base"], r.outcomes["adapter"]) == (want["base"], want["adapter"])
    assert r.delta == pytest.approx((r.fixed - r.broken) / N_DOCS)
    for b in r.broken_items:  # side by side: the letter each chose, and the one acc wanted
        assert b["base"] in CHOICES and b["adapter"] in CHOICES and b["base"] != b["adapter"]
        assert b["check"].startswith("acc: ") and b["prompt"].endswith("?\nAnswer:")


def test_the_limit_and_a_metric_the_task_does_not_report(
    toy_repo: Path, tiny_model, tiny_tokenizer
) -> None:
    write_task(toy_repo)
    model = _peft(tiny_model)
    kw = {"base_id": "b", "adapter": "default", "adapter_id": "a", "progress": False}
    [r] = run_suites(task_spec(toy_repo, limit=5), model, tiny_tokenizer, **kw).values()
    assert r.n == 5 and [b for b in r.outcomes.values()] == [r.outcomes["base"]] * 2
    with pytest.raises(InvalidInput) as exc:
        run_suites(task_spec(toy_repo, metric="exact_match", limit=3), model, tiny_tokenizer, **kw)
    [problem] = exc.value.problems
    assert problem.field == "eval.regression.0" and "'exact_match' is not reported" in str(problem)


def test_a_template_reaching_python_internals_is_refused_by_the_sandbox(
    toy_repo: Path, tiny_model, tiny_tokenizer, tmp_path: Path
) -> None:
    import datasets.config
    import lm_eval.utils

    escape = "{{ cycler.__init__.__globals__.os.system('touch " + str(tmp_path / "pwned") + "') }}"
    write_task(toy_repo, TASK_YAML.replace('"{{question}}\\nAnswer:"', json.dumps(escape)))
    before = (lm_eval.utils.env, datasets.config.HF_HUB_OFFLINE)
    with pytest.raises(InvalidInput) as exc:
        run_suites(
            task_spec(toy_repo, limit=2),
            _peft(tiny_model),
            tiny_tokenizer,
            base_id="b",
            adapter="default",
            adapter_id="a",
            progress=False,
        )
    assert "template reaches outside the document" in str(exc.value)
    assert f"{TASK_DIR}/tiny_mc.yaml" in str(exc.value)
    assert not (tmp_path / "pwned").exists()
    assert (lm_eval.utils.env, datasets.config.HF_HUB_OFFLINE) == before  # restored


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ("  - metric: acc\n", "metric_list.0.metric", "Input should be 'acc'"),
        ("dataset_path: json\n", "dataset_path", "Input should be 'json'"),
        ("    test: tiny_mc.jsonl\n", "dataset_kwargs.data_files.test.0", "stay inside"),
        ('doc_to_text: "{{question}}\\nAnswer:"\n', "doc_to_text", "No filter named"),
        ("test_split: test\n", None, "set test_split or validation_split"),
    ],
)
def test_a_local_task_is_checked_before_lm_eval_sees_it(
    toy_repo: Path, change: str, field: str | None, message: str
) -> None:
    """Each refused value is one lm-eval itself would accept."""
    bad = {
        "  - metric: acc\n": "  - metric: someone/remote_metric\n",  # evaluate.load would run it
        "dataset_path: json\n": "dataset_path: /home\n",  # any folder of the runner
        "    test: tiny_mc.jsonl\n": "    test: ../../adapters/toy/adapter.yaml.jsonl\n",
        'doc_to_text: "{{question}}\\nAnswer:"\n': "doc_to_text: \"{{question|regex_replace('(a+)+$', '')}}\"\n",
        "test_split: test\n": "",
    }[change]
    text = TASK_YAML.replace(change, bad)
    assert text != TASK_YAML
    write_task(toy_repo, text)
    with pytest.raises(InvalidInput) as exc:
        load_suites(task_spec(toy_repo))
    problems = exc.value.problems
    assert any(message in p.message for p in problems), problems
    hit = next(p for p in problems if message in p.message)
    assert hit.file == f"{TASK_DIR}/tiny_mc.yaml" and hit.field == field
    if field is not None:  # the line of the offending value in the task file
        assert bad.strip(" -\n") in text.splitlines()[hit.line - 1]


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ("doc_to_text: !function utils.doc_to_text\n", None, "tag"),  # would import utils.py
        ("filter_list: [{name: x, filter: [{function: take_first}]}]\n", "filter_list", "unknown"),
        ("include: other.yaml\n", "include", "unknown key"),
    ],
)
def test_python_filters_and_includes_are_refused_in_local_tasks(
    toy_repo: Path, extra: str, field: str | None, message: str
) -> None:
    text = TASK_YAML.replace('doc_to_text: "{{question}}\\nAnswer:"\n', "") + extra
    write_task(toy_repo, text)
    (toy_repo / TASK_DIR / "utils.py").write_text("raise SystemExit('imported')\n")
    with pytest.raises(InvalidInput) as exc:
        load_suites(task_spec(toy_repo))
    [problem] = exc.value.problems
    assert problem.file == f"{TASK_DIR}/tiny_mc.yaml" and problem.field == field
    assert message in problem.message and problem.line == len(text.splitlines())


def test_data_through_a_symlink_out_of_the_repo_and_a_missing_task_are_refused(
    toy_repo: Path, tmp_path: Path
) -> None:
    folder = write_task(toy_repo)
    secret = tmp_path / "secret.jsonl"
    secret.write_text('{"question": "token", "choices": ["a"], "label": 0}\n')
    (folder / "tiny_mc.jsonl").unlink()
    (folder / "tiny_mc.jsonl").symlink_to(secret)
    with pytest.raises(InvalidInput) as exc:
        load_suites(task_spec(toy_repo))
    assert "leads outside the repository" in str(exc.value)
    (folder / "tiny_mc.yaml").write_text(TASK_YAML.replace("task: tiny_mc", "task: other"))
    with pytest.raises(InvalidInput) as exc:
        load_suites(task_spec(toy_repo))
    [problem] = exc.value.problems
    assert problem.field == "eval.regression.0"
    assert "0 YAML files in regression/lm_eval define task 'tiny_mc'" in problem.message


def test_without_lm_eval_installed_the_spec_field_and_the_extra_are_named(
    toy_repo: Path, monkeypatch
) -> None:
    write_task(toy_repo)
    spec = task_spec(toy_repo)
    load_suites(spec)  # `registry validate` checks a local task without lm-eval
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # what `import lm_eval` sees uninstalled
    with pytest.raises(InvalidInput) as exc:
        run_suites(spec, None, None, base_id="b", adapter="adapter", adapter_id="a")
    [problem] = exc.value.problems
    assert problem.field == "eval.regression.0" and f"lm_eval:{TASK} needs" in problem.message
    assert problem.hint == "pip install 'lora-registry[lm-eval]'"
    assert exc.value.exit_code == 2


SPEC_HEAD = """\
name: toy
version: 1.0.0
base_model: builtin:tiny-llama
data: {format: chat, train: t.jsonl}
eval:
"""


def test_spec_entries_name_exactly_one_source_and_gate_rules_use_the_lm_eval_name() -> None:
    spec = parse_spec(
        SPEC_HEAD + "  regression: [general, {lm_eval: arc_easy, limit: 200, num_fewshot: 0}]\n"
        "  gate: [{suite: 'lm_eval:arc_easy', max_drop_vs_base: 0.05}]\n"
    )
    assert [e.name for e in spec.eval.regression] == ["general", "lm_eval:arc_easy"]
    # a suite entry dumps as before lm_eval existed: published reports' eval_config still match
    assert spec.eval.model_dump(mode="json")["regression"] == [
        {"suite": "general", "limit": None},
        {"lm_eval": "arc_easy", "num_fewshot": 0, "limit": 200},
    ]
    for regression, gate, message in [
        ("[{lm_eval: arc_easy, suite: general}]", "[]", "exactly one of suite or lm_eval"),
        ("[{limit: 3}]", "[]", "exactly one of suite or lm_eval"),
        ("[{suite: general, include_path: x}]", "[]", "include_path: only with lm_eval"),
        ("[{lm_eval: x, include_path: ../tasks}]", "[]", "stay inside the repo"),
        ("[{lm_eval: 'a b'}]", "[]", "a task name"),
        ("[{lm_eval: arc_easy}]", "[{suite: arc_easy, max_broken: 0}]", "not listed"),
    ]:
        with pytest.raises(InvalidInput) as exc:
            parse_spec(SPEC_HEAD + f"  regression: {regression}\n  gate: {gate}\n")
        assert message in str(exc.value), (regression, str(exc.value))


def test_evaluate_refuses_before_loading_anything_when_lm_eval_is_missing(
    toy_repo: Path, tmp_path: Path, monkeypatch
) -> None:
    # The adapter folder does not even exist: an error about lm-eval (not about the folder, and
    # not after minutes of generation) shows the check runs first.
    write_task(toy_repo)
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    with pytest.raises(InvalidInput) as exc:
        evaluate(task_spec(toy_repo), tmp_path / "no-such-adapter", progress=False)
    [problem] = exc.value.problems
    assert problem.field == "eval.regression.0" and "needs lm-evaluation-harness" in problem.message
    assert exc.value.exit_code == 2
