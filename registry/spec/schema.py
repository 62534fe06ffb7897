"""The adapter spec: the one source of truth for the schema of `adapters/<name>/adapter.yaml`.

Every other module reads a `Spec`, never raw YAML. Unknown keys are errors at every level
(`extra="forbid"`), YAML is loaded by registry.spec.loader (safe, bounded, duplicate keys
rejected), and every validation error is mapped back to the file, line and dotted field of the
YAML so users can fix it at once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from registry.errors import InvalidInput, Problem
from registry.spec.eval_checks import json_schema_problem, regex_problem
from registry.spec.loader import (
    key_line,
    line_for,
    line_index,
    load_yaml,
    read_spec_bytes,
)
from registry.spec.paths import check_file, file_problem, path_text_problem

SPEC_FILENAME = "adapter.yaml"
NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
# semver 2.0.0 (no leading zeros, optional pre-release and build metadata)
SEMVER_PATTERN = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
BUILTIN_MODELS = ("smollm2-135m-instruct", "tiny-llama")
HUB_REF_PATTERN = r"^[A-Za-z0-9][\w.-]*/[\w.-]+@[0-9a-f]{40}$"
METRICS = (
    "exact_match",  # normalised string equality
    "json_valid",  # the output parses as JSON
    "json_schema",  # parses and matches eval.json_schema
    "json_field_f1",  # field-level F1 of flattened JSON key/value pairs
    "contains",  # the reference (or eval.contains) appears in the output
    "regex",  # the output matches eval.regex
    "rouge_l",  # ROUGE-L F-measure
    "loss",  # token-level loss (perplexity) on the reference answers
    "stops",  # generation ended with EOS before max_new_tokens
)
GATE_METRICS = (*METRICS, "general_drift")


class _Strict(BaseModel):
    # NaN/Infinity pass `gt`/`le` bounds unnoticed (inf > 0); no spec number means them
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LoraConfig(_Strict):
    """Adapter shape. `target_modules: all-linear` targets every linear layer but the head."""

    r: int = Field(8, ge=1, le=1024, description="LoRA rank")
    alpha: float = Field(16, gt=0, description="LoRA scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the LoRA input")
    target_modules: list[str] | Literal["all-linear"] = Field(
        default=["q_proj", "k_proj", "v_proj", "o_proj"], min_length=1
    )
    bias: Literal["none", "all", "lora_only"] = Field("none", description="train biases too")
    use_rslora: bool = Field(False, description="rank-stabilised scaling alpha/sqrt(r)")
    layers_to_transform: list[int] | None = Field(
        None,
        min_length=1,
        description="Adapt only these decoder layers (0-based); default all. Backpropagation "
        "stops at the lowest one, so upper layers only train faster",
    )

    @field_validator("layers_to_transform")
    @classmethod
    def _distinct_layers(cls, layers: list[int] | None) -> list[int] | None:
        if layers and (min(layers) < 0 or len(set(layers)) != len(layers)):
            raise ValueError("distinct layer indices >= 0")
        return layers


class QuantizationConfig(_Strict):
    """4-bit base-model settings for QLoRA (bitsandbytes)."""

    bits: Literal[4] = 4
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto = bfloat16 on CUDA, float32 on CPU"
    )


class DataConfig(_Strict):
    """Where the examples are and how they are formatted (see registry/spec/data.py)."""

    format: Literal["chat", "completion", "alpaca"] = Field(
        description="record format of the JSONL files"
    )
    train: str = Field(description="JSONL path relative to the repo root")
    eval: str | None = Field(None, description="JSONL path relative to the repo root")
    system_prompt: str | None = Field(
        None, description="Used in training, evaluation and by the prompt-only baseline"
    )
    validation: Literal["holdout", "eval", "none"] = Field(
        "holdout",
        description="what the validation loss (and early stopping) reads: `holdout`, a fixed"
        " fraction of train; `eval`, the eval file (the gate's own items: the report warns when"
        " early stopping picks a checkpoint on them); `none`",
    )
    validation_fraction: float = Field(
        0.1, gt=0, lt=0.5, description="the fraction of train held out when validation: holdout"
    )

    @field_validator("train", "eval")
    @classmethod
    def _plain_repo_path(cls, value: str | None) -> str | None:
        # the string alone; what it names on disk is checked by Spec.train_path/eval_path
        if value is not None and (reason := path_text_problem(value)):
            raise ValueError(reason)
        return value


class TrainingConfig(_Strict):
    """The training recipe. Everything here is part of the fingerprint."""

    epochs: float | None = Field(None, gt=0, le=1000)
    max_steps: int | None = Field(None, ge=1)
    learning_rate: float = Field(2e-4, gt=0, le=1)
    batch_size: int = Field(8, ge=1, le=4096)
    grad_accum: int = Field(1, ge=1, le=1024, description="gradient accumulation steps")
    max_seq_len: int = Field(512, ge=8, le=131072)
    seed: int = Field(42, ge=0)
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    packing: bool = Field(
        True, description="pack examples into full rows (no cross-attention between them)"
    )
    eval_every: int | None = Field(None, ge=1, description="validation loss every N steps")
    val_examples: int = Field(
        128, ge=1, description="validation loss uses the first N validation examples (its cost)"
    )
    save_every: int | None = Field(None, ge=1, description="checkpoint every N steps")
    early_stopping_patience: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _epochs_xor_steps(self) -> TrainingConfig:
        if self.epochs is not None and self.max_steps is not None:
            raise ValueError("set either epochs or max_steps, not both")
        if self.epochs is None and self.max_steps is None:
            object.__setattr__(self, "epochs", 1.0)
        return self


class GateRule(_Strict):
    """One gate condition: on a task metric (deltas on the lower bound of the paired 95%
    interval) or on a regression suite (the accuracy drop's bound, the broken count)."""

    metric: Literal[GATE_METRICS] | None = None  # type: ignore[valid-type]
    suite: str | None = Field(None, description="a suite listed in eval.regression")
    min_delta_vs_base: float | None = None
    min_delta_vs_prompt: float | None = None
    max_regression_vs_previous: float | None = Field(None, ge=0)
    min: float | None = None
    max: float | None = None
    max_drop_vs_base: float | None = Field(
        None,
        ge=0,
        le=1,
        description="suite rules: the 95% interval must rule out an accuracy drop beyond this",
    )
    max_broken: int | None = Field(
        None, ge=0, description="suite rules: at most this many items the base got right break"
    )

    @model_validator(mode="after")
    def _has_condition(self) -> GateRule:
        metric_keys = ("min_delta_vs_base", "min_delta_vs_prompt", "max_regression_vs_previous")
        metric_keys += ("min", "max")
        suite_keys = ("max_drop_vs_base", "max_broken")
        if (self.metric is None) == (self.suite is None):
            raise ValueError("a gate rule names exactly one of metric or suite")
        own, other = (suite_keys, metric_keys) if self.suite else (metric_keys, suite_keys)
        what = f"suite {self.suite!r}" if self.suite else f"metric {self.metric!r}"
        wrong = [k for k in other if getattr(self, k) is not None]
        if wrong:
            raise ValueError(f"{', '.join(wrong)} cannot apply to {what}")
        if all(getattr(self, k) is None for k in own):
            raise ValueError(f"gate rule on {what} has no condition")
        return self


class RegressionSuite(_Strict):
    """A regression suite the adapter must not break (docs/regression.md): a suite file, or an
    lm-evaluation-harness task run through its Python API (the `lm-eval` extra)."""

    suite: str | None = Field(
        None,
        description="`general` (shipped), a name under regression/ at the repo root, or a "
        ".jsonl path from the repo root",
    )
    lm_eval: str | None = Field(
        None,
        description="instead of `suite`: an lm-evaluation-harness task or group (`arc_easy`, "
        "`mmlu`), right or wrong per item by its own metric; reported and gated as "
        "`lm_eval:<task>` (needs `pip install 'lora-registry[lm-eval]'`)",
    )
    include_path: str | None = Field(
        None,
        description="with lm_eval: a repo folder holding the task's YAML (a local task, run "
        "offline; checked by the registry before lm-eval sees it)",
    )
    metric: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9_]{0,63}$",
        description="with lm_eval: the per-item metric that decides right or wrong (default: "
        "the task's first, e.g. `acc`)",
    )
    num_fewshot: int | None = Field(
        None, ge=0, le=32, description="with lm_eval: few-shot examples (default: the task's)"
    )
    limit: int | None = Field(
        None, ge=1, description="the first N items only (with lm_eval: of each task of a group)"
    )

    @property
    def name(self) -> str:
        """The suite's name in reports and gate rules."""
        if self.lm_eval is not None:
            return f"lm_eval:{self.lm_eval}"
        ref = self.suite or ""
        return Path(ref).stem if ref.endswith(".jsonl") else ref

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        # Only the keys an entry uses: a suite entry dumps exactly as before lm_eval existed, so
        # the eval_config of published reports (compared by sync and the report cache) matches.
        return {k: v for k, v in handler(self).items() if v is not None or k == "limit"}

    @model_validator(mode="after")
    def _reference(self) -> RegressionSuite:
        if (self.suite is None) == (self.lm_eval is None):
            raise ValueError("a regression entry names exactly one of suite or lm_eval")
        if self.lm_eval is not None:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", self.lm_eval):
                raise ValueError(
                    f"lm_eval {self.lm_eval[:200]!r}: a task name (letters, digits, '_.-')"
                )
            if self.include_path is not None and (
                reason := path_text_problem(self.include_path, suffix="")
            ):
                raise ValueError(f"include_path: {reason}")
            return self
        lm_eval_only = ("include_path", "metric", "num_fewshot")
        if unused := [k for k in lm_eval_only if getattr(self, k) is not None]:
            raise ValueError(f"{', '.join(unused)}: only with lm_eval")
        ref = self.suite
        if ref.endswith(".jsonl"):
            if reason := path_text_problem(ref):
                raise ValueError(f"suite path: {reason}")
        elif not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", ref):
            raise ValueError(
                f"suite {ref!r}: a name ([a-z0-9][a-z0-9_-]*) or a path ending in .jsonl"
            )
        return self


class EvalConfig(_Strict):
    """Metrics, the gate, and generation settings for `registry eval`."""

    metrics: list[Literal[METRICS]] = Field(  # type: ignore[valid-type]
        default=["exact_match"], min_length=1
    )
    gate: list[GateRule] = Field(default_factory=list)
    regression: list[RegressionSuite] = Field(
        default_factory=lambda: [RegressionSuite(suite="general")],
        description="suites the base and the adapter both answer: what the adapter broke is"
        " counted, shown and gated by `{suite: NAME, max_drop_vs_base: X}` rules",
    )
    max_new_tokens: int = Field(128, ge=1, le=8192)
    batch_size: int = Field(16, ge=1, le=1024)
    few_shot: int = Field(
        3, ge=0, le=32, description="train examples shown to the prompt-only baseline"
    )
    baseline_system_prompt: str | None = Field(
        None,
        description="the prompt-only baseline's system prompt (default: data.system_prompt);"
        " lets the baseline use a long engineered prompt while the adapter trains on a terse one",
    )
    json_schema: dict[str, Any] | None = Field(None, description="for the json_schema metric")
    regex: str | None = Field(None, description="for the regex metric")
    contains: str | None = Field(None, description="for the contains metric (default: reference)")
    limit: int | None = Field(None, ge=1, description="evaluate on the first N items only")
    bootstrap_samples: int = Field(2000, ge=100, le=100000)

    @field_validator("regression", mode="before")
    @classmethod
    def _suite_names(cls, value: Any) -> Any:
        """`regression: [general, faq]` is short for `[{suite: general}, {suite: faq}]`."""
        if isinstance(value, list):
            return [{"suite": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _metric_settings(self) -> EvalConfig:
        if "json_schema" in self.metrics and self.json_schema is None:
            raise ValueError("metric json_schema needs eval.json_schema")
        if "regex" in self.metrics:
            if self.regex is None:
                raise ValueError("metric regex needs eval.regex")
        if self.regex is not None and (reason := regex_problem(self.regex)):
            raise ValueError(f"eval.regex {reason}")
        if self.json_schema is not None and (reason := json_schema_problem(self.json_schema)):
            raise ValueError(f"eval.json_schema: {reason}")
        suites = [s.name for s in self.regression]
        for rule in self.gate:
            if rule.suite is not None:
                if rule.suite not in suites:
                    raise ValueError(f"gate suite {rule.suite!r} is not listed in eval.regression")
                continue
            if rule.metric not in (*self.metrics, "general_drift"):
                raise ValueError(f"gate metric {rule.metric!r} is not listed in eval.metrics")
            if rule.min_delta_vs_prompt is not None and self.few_shot == 0:
                raise ValueError(
                    "min_delta_vs_prompt needs the prompt baseline: set eval.few_shot >= 1"
                )
            deltas = (rule.min_delta_vs_base, rule.min_delta_vs_prompt)
            if rule.metric == "general_drift" and any(d is not None for d in deltas):
                raise ValueError("general_drift is bounded with min/max, not deltas")
        return self


class PublishConfig(_Strict):
    """Where `registry sync` publishes (default repo: <store org>/<name>)."""

    repo: str | None = Field(None, pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
    private: bool = True
    tags: list[str] = Field(default_factory=list)


class Spec(_Strict):
    """An adapter spec. Paths in `data` are relative to the registry repo root."""

    name: str = Field(pattern=NAME_PATTERN, description="equals the folder name under adapters/")
    version: str = Field(pattern=SEMVER_PATTERN, description="semver; main's value is current")
    description: str = Field("", description="one line for the model card")
    base_model: str = Field(
        description="builtin:<name> or <org>/<model>@<40-hex commit> (pinned)",
    )
    method: Literal["lora", "qlora", "dora"] = Field(
        "lora", description="qlora = 4-bit base (bitsandbytes); dora = weight-decomposed LoRA"
    )
    lora: LoraConfig = Field(default_factory=LoraConfig)
    quantization: QuantizationConfig | None = None
    data: DataConfig
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)

    _path: Path | None = PrivateAttr(None)
    _root: Path | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _cross_field(self) -> Spec:
        ref = self.base_model
        if ref.startswith("builtin:"):
            if ref.removeprefix("builtin:") not in BUILTIN_MODELS:
                raise ValueError(
                    f"base_model: unknown builtin {ref!r}; known: "
                    + ", ".join(f"builtin:{m}" for m in BUILTIN_MODELS)
                )
        elif not re.match(HUB_REF_PATTERN, ref):
            raise ValueError(
                "base_model: a Hub model must be pinned to a full commit, "
                f"like 'HuggingFaceTB/SmolLM2-135M-Instruct@<40-hex>', got {ref!r}"
            )
        if self.method == "qlora" and self.quantization is None:
            object.__setattr__(self, "quantization", QuantizationConfig())
        if self.method != "qlora" and self.quantization is not None:
            raise ValueError("quantization: only used with method: qlora")
        return self

    # -- paths ---------------------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def root(self) -> Path:
        return self._root or Path.cwd()

    @property
    def train_path(self) -> Path:
        """The train file; InvalidInput (spec file, line, field) unless a regular file in root."""
        return self.data_file("data.train", self.data.train)

    @property
    def eval_path(self) -> Path | None:
        return self.data_file("data.eval", self.data.eval) if self.data.eval else None

    def data_file(self, field: str, rel: str) -> Path:
        """`root/rel`, refused unless it is a regular file inside the repo (or missing)."""
        if reason := check_file(self.root, rel):
            raise InvalidInput([self.problem(field, reason)])
        return self.root / rel

    def problem(self, field: str, message: str) -> Problem:
        """A finding about `field` (dotted) that only a later stage can make, with its line."""
        file, line = str(self.path or "<spec>"), None
        if self.path is not None:
            try:
                _, node = load_yaml(read_spec_bytes(self.path), file)
                line = line_for(line_index(node), tuple(field.split(".")))
            except InvalidInput:
                line = None
        return Problem(file=file, message=message, line=line, field=field)

    def with_overrides(self, **changes: Any) -> Spec:
        """A copy with dotted-key overrides, e.g. {"training.max_steps": 5}; re-validated."""
        data = self.model_dump(mode="json")
        for dotted, value in changes.items():
            *parents, leaf = dotted.split(".")
            node = data
            for key in parents:
                node = node[key]
            node[leaf] = value
            if dotted == "training.max_steps":
                node["epochs"] = None
        new = Spec.model_validate(data)
        new._path, new._root = self._path, self._root
        return new


def json_schema() -> dict[str, Any]:
    """JSON Schema of the spec, for editors (`# yaml-language-server: $schema=...`)."""
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "LoRA adapter spec"
    return schema


# -- loading -----------------------------------------------------------------------------------


def _problems_from_validation(
    exc: ValidationError, file: str, lines: dict[tuple, int]
) -> list[Problem]:
    problems = []
    for err in exc.errors():
        # pydantic adds union/literal tags to loc (e.g. 'list[str]'); keep the user's keys only
        loc = tuple(p for p in err["loc"] if isinstance(p, int) or not _is_pydantic_tag(p))
        field = ".".join(str(p) for p in loc) or None
        message = err["msg"].removeprefix("Value error, ")
        hint = None
        if err["type"] == "extra_forbidden":
            message = "unknown key"
            hint = _suggest(str(loc[-1]) if loc else "", err["loc"])
        elif err["type"] == "missing":
            message = "required key is missing"
        elif err["type"] == "string_pattern_mismatch" and loc[-1:] == ("version",):
            hint = "use semver, e.g. 1.2.0"
        elif err["type"] == "string_pattern_mismatch" and loc[-1:] == ("name",):
            hint = "lowercase letters, digits and '-', 2-63 chars, starting with a letter/digit"
        problems.append(
            Problem(file=file, line=line_for(lines, loc), field=field, message=message, hint=hint)
        )
    return problems


def _is_pydantic_tag(part: str) -> bool:
    """Union members show up in error locations as tags like 'list[str]'; they are not keys."""
    return "[" in part or part in {"str", "int", "float", "bool"}


def _suggest(key: str, loc: tuple) -> str | None:
    import difflib

    model: type[BaseModel] = Spec
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if hasattr(model, "model_fields") else None
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    close = difflib.get_close_matches(key, list(model.model_fields), n=1)
    return f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(model.model_fields)}"


def parse_spec(text: str | bytes, file: str = "<spec>") -> Spec:
    """Parse and validate spec text. Raises InvalidInput listing every problem found.

    YAML loading is bounded and strict (registry.spec.loader): size, depth, alias expansion,
    tags, key types and duplicates are all refused with file and line before validation.
    """
    data, node = load_yaml(text, file)
    if not isinstance(data, dict):
        raise InvalidInput([Problem(file, "a spec must be a YAML mapping", line=1)])
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(_problems_from_validation(exc, file, line_index(node))) from None


def load_spec(path: str | Path, root: str | Path | None = None) -> Spec:
    """Load `adapters/<name>/adapter.yaml`; the folder name must equal the spec name.

    `root` is the registry repo root (data paths are relative to it); by default the folder
    holding `adapters/`.
    """
    path = Path(path)
    if path.is_dir():
        path = path / SPEC_FILENAME
    display = str(path)
    text = read_spec_bytes(path, display)
    spec = parse_spec(text, display)
    if path.parent.name != spec.name:
        line = key_line(text, "name")
        raise InvalidInput(
            [
                Problem(
                    display,
                    f"name {spec.name!r} differs from its folder {path.parent.name!r}",
                    line=line,
                    field="name",
                    hint="the folder under adapters/ must be named like the adapter",
                )
            ]
        )
    spec._path = path
    if root is not None:
        spec._root = Path(root)
    elif path.parent.parent.name == "adapters":
        spec._root = path.parent.parent.parent
    if spec._root is not None and (
        reason := file_problem(spec._root, os.path.relpath(path, spec._root))
    ):
        raise InvalidInput([Problem(display, f"the spec is {reason}")])
    return spec


def find_specs(root: str | Path = ".") -> list[Path]:
    """Every spec under `<root>/adapters/`, sorted by name."""
    return sorted((Path(root) / "adapters").glob(f"*/{SPEC_FILENAME}"))
