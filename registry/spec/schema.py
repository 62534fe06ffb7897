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
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from registry.errors import InvalidInput, Problem
from registry.spec.eval_config import (  # noqa: F401 - re-exported: the schema's one home
    GATE_METRICS,
    METRICS,
    EvalConfig,
    GateRule,
    RegressionSuite,
)
from registry.spec.eval_config import (
    Strict as _Strict,
)
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
# random-llama-*: real Llama shapes with random weights, for memory plans and bench/gpu.py.
BUILTIN_MODELS = ("smollm2-135m-instruct", "tiny-llama", "random-llama-1b", "random-llama-8b")
HUB_REF_PATTERN = r"^[A-Za-z0-9][\w.-]*/[\w.-]+@[0-9a-f]{40}$"


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
    """The training recipe. Everything here but the runtime keys (gradient_checkpointing,
    attn_implementation, distributed) is part of the fingerprint."""

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
    # How the run computes, not what it computes: none of these keys is in the fingerprint
    # (registry.spec.fingerprint.RUNTIME_KEYS).
    gradient_checkpointing: bool | Literal["auto"] = Field(
        "auto",
        description="recompute activations in backward to save memory (auto: on for GPU runs "
        "whose memory plan says activations dominate, and for QLoRA on GPU); not fingerprinted",
    )
    attn_implementation: Literal["sdpa", "flash_attention_2", "eager"] = Field(
        "sdpa",
        description="attention kernel (flash_attention_2 needs the flash-attn package and a "
        "CUDA GPU); not fingerprinted",
    )
    distributed: Literal["auto", "ddp", "fsdp"] = Field(
        "auto",
        description="with `registry train --nproc N`: ddp replicates the base on every device, "
        "fsdp shards it (FSDP2; for bases that do not fit one device); auto: ddp unless the "
        "memory plan says the replicated model does not fit, then fsdp; not fingerprinted",
    )

    @model_validator(mode="after")
    def _epochs_xor_steps(self) -> TrainingConfig:
        if self.epochs is not None and self.max_steps is not None:
            raise ValueError("set either epochs or max_steps, not both")
        if self.epochs is None and self.max_steps is None:
            object.__setattr__(self, "epochs", 1.0)
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
