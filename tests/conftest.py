"""Shared fixtures: an isolated cache, the tiny model, and a toy registry repo on disk."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

# Every `dvc` a test runs (directly or through the CLI) would otherwise fork an analytics
# daemon that tries the network: wasted processes on a machine with none, and noise in CI.
os.environ["DVC_NO_ANALYTICS"] = "1"

TOY_SPEC = """\
name: toy
version: 1.0.0
description: Animal sounds; the tiny random model lowers its loss on them in a few steps
base_model: builtin:tiny-llama
method: lora
lora: {{r: 8, alpha: 16, dropout: 0.0, target_modules: [q_proj, k_proj, v_proj, o_proj]}}
data:
  format: chat
  train: datasets/toy/train.jsonl
  eval: datasets/toy/eval.jsonl
  system_prompt: Answer with the sound the animal makes.
training: {{max_steps: {max_steps}, learning_rate: 5.0e-3, batch_size: 8, max_seq_len: 128, seed: 0, warmup_ratio: 0.0}}
eval:
  metrics: [exact_match, loss]
  max_new_tokens: 8
  few_shot: 0
  regression: []  # the shipped general suite is tested on its own (tests/evaluate/test_regression.py)
  gate:
    - {{metric: loss, min_delta_vs_base: 0.1}}
"""

SOUNDS = {"cat": "meow", "dog": "woof", "cow": "moo", "duck": "quack"}


def toy_records(n: int, seed: int, offset: int = 0) -> list[dict]:
    """Distinct prompts ("<adjective> <animal> #<k>") whose answer depends only on the animal."""
    rng = random.Random(seed)
    adjectives = ["big", "small", "old", "young", "happy", "sleepy", "brown", "white"]
    records = []
    for i in range(n):
        animal = rng.choice(sorted(SOUNDS))
        prompt = f"{rng.choice(adjectives)} {animal} #{offset + i}"
        records.append(
            {
                "id": f"toy-{offset + i}",
                "messages": [
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": SOUNDS[animal]},
                ],
            }
        )
    return records


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture(scope="session", autouse=True)
def registry_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Isolate the artifact cache per test session; keep converted models if the user set one.

    REGISTRY_TEST_MODEL_CACHE lets slow tests reuse the converted SmolLM2 across runs.
    """
    cache = tmp_path_factory.mktemp("registry-cache")
    shared_models = os.environ.get("REGISTRY_TEST_MODEL_CACHE")
    if shared_models:
        Path(shared_models).mkdir(parents=True, exist_ok=True)
        (cache / "models").symlink_to(Path(shared_models).resolve())
    os.environ["REGISTRY_CACHE"] = str(cache)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return cache


@pytest.fixture(scope="session")
def tiny_model(registry_cache):
    from registry.spec.base_model import resolve_base_model

    return resolve_base_model("builtin:tiny-llama")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model):
    from registry.spec.base_model import load_tokenizer

    return load_tokenizer(tiny_model)


@pytest.fixture
def toy_repo(tmp_path: Path) -> Path:
    """A registry repo folder (no git) with adapters/toy and its datasets."""
    root = tmp_path / "repo"
    spec_dir = root / "adapters" / "toy"
    spec_dir.mkdir(parents=True)
    (spec_dir / "adapter.yaml").write_text(TOY_SPEC.format(max_steps=30))
    write_jsonl(root / "datasets/toy/train.jsonl", toy_records(64, seed=1))
    write_jsonl(root / "datasets/toy/eval.jsonl", toy_records(16, seed=2, offset=1000))
    return root


@pytest.fixture
def fresh_cache(monkeypatch, tmp_path, registry_cache, tiny_model):
    """A new artifact cache (so nothing is a cache hit) sharing the session's converted models."""

    def make(name: str = "cache") -> Path:
        cache = tmp_path / f"cache-{name}"
        cache.mkdir()
        (cache / "models").symlink_to(registry_cache / "models")
        monkeypatch.setenv("REGISTRY_CACHE", str(cache))
        return cache

    return make


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--calibration",
        action="store_true",
        help="also run the calibration tests (train the shipped ticket-json; ~11 min)",
    )


CALIBRATION = Path(__file__).parent / "calibration"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """tests/calibration trains the shipped recipe for real (~11 min): too slow for the
    15-minute suite, so it is its own suite (`make test-calibration`, which CI runs after
    `make test`), not collected without --calibration rather than collected and skipped."""
    if collection_path == CALIBRATION and not config.getoption("--calibration"):
        return True
    return None


def pytest_report_header(config: pytest.Config) -> str | None:
    if not config.getoption("--calibration"):
        return "tests/calibration: not in this run (make test-calibration runs it; CI does)"
    return None


def pytest_terminal_summary(terminalreporter) -> None:
    """`fuzz: N cases` in every run's output (CI runs pytest without -s), per parser."""
    from fuzzcount import CASES

    if CASES:
        parts = ", ".join(f"{target} {n}" for target, n in sorted(CASES.items()))
        terminalreporter.write_line(f"fuzz: {sum(CASES.values())} cases ({parts})")
