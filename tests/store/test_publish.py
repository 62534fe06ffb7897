"""Publishing: only gated, override-free outputs; immutable, idempotent versions; a model card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from storekit import make_adapter_dir

from registry.errors import Conflict, GateFailed, InvalidInput
from registry.store import open_store
from registry.store.publish import publish_version


@pytest.fixture
def store(tmp_path: Path):
    return open_store((tmp_path / "store").as_uri())


def test_publish_then_versions_then_idempotent(tmp_path: Path, store):
    adapter = make_adapter_dir(tmp_path / "a")
    first = publish_version("toy", adapter, store)
    assert first.status == "published" and first.version == "1.0.0"
    again = publish_version("toy", adapter, store)
    assert again.status == "exists" and again.commit == first.commit
    (info,) = store.versions("toy")
    assert info.version == "1.0.0" and info.fingerprint == "sha256:" + "1" * 64


def test_other_content_same_version_is_a_conflict(tmp_path: Path, store):
    publish_version("toy", make_adapter_dir(tmp_path / "a"), store)
    other = make_adapter_dir(tmp_path / "b", fingerprint="sha256:" + "2" * 64, seed=1)
    with pytest.raises(Conflict, match="bump"):
        publish_version("toy", other, store)


def test_refuses_without_passing_report(tmp_path: Path, store):
    failing = make_adapter_dir(tmp_path / "a", passed=False)
    with pytest.raises(GateFailed, match="gate did not pass"):
        publish_version("toy", failing, store)
    missing = make_adapter_dir(tmp_path / "b")
    (missing / "report.json").unlink()
    with pytest.raises(GateFailed, match="registry eval"):
        publish_version("toy", missing, store)
    stale = make_adapter_dir(tmp_path / "c")
    report = json.loads((stale / "report.json").read_text())
    report["fingerprint"] = "sha256:" + "9" * 64
    (stale / "report.json").write_text(json.dumps(report))
    with pytest.raises(GateFailed, match="other weights"):
        publish_version("toy", stale, store)
    assert store.versions("toy") == []


def test_refuses_outputs_made_with_overrides(tmp_path: Path, store):
    smoke = make_adapter_dir(tmp_path / "a", overrides={"max_steps": 5})
    with pytest.raises(InvalidInput, match="max_steps=5"):
        publish_version("toy", smoke, store)


def test_refuses_a_non_safetensors_weights_file(tmp_path: Path, store):
    bad = make_adapter_dir(tmp_path / "a")
    (bad / "adapter_model.safetensors").write_bytes(b"\x80\x04pickle" * 10)
    with pytest.raises(InvalidInput, match="safetensors"):
        publish_version("toy", bad, store)


def test_model_card_has_hub_metadata_and_manifest_hashes_every_file(tmp_path: Path, store):
    publish_version("toy", make_adapter_dir(tmp_path / "a"), store)
    dest = tmp_path / "dl"
    dest.mkdir()
    store.download("toy", "1.0.0", dest)
    card = (dest / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["base_model"] == "registry/tiny-llama" and front["library_name"] == "peft"
    assert front["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.9
    manifest = json.loads((dest / "registry.json").read_text())
    assert set(manifest["files"]) == {
        "adapter_model.safetensors",
        "adapter_config.json",
        "README.md",
    }
    assert manifest["eval"]["gate"]["passed"] is True
    assert "token" not in card.lower()


def _real_peft_files(adapter: Path, base, provenance_base: dict) -> None:
    """Replace the kit's stand-in PEFT files with ones the real writer makes on the tiny model."""
    import shutil

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from registry.artifact import Provenance
    from registry.train.output import write_adapter

    info = json.loads((adapter / "registry.json").read_text())
    info["base_model"] = provenance_base
    (adapter / "registry.json").write_text(json.dumps(info))
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base.path),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    written = adapter.parent / f"{adapter.name}-peft"
    write_adapter(
        written,
        model,
        model_id=provenance_base["model_id"],
        revision=provenance_base["revision"],
        log=[],
        provenance=Provenance({**info, "training": {}}),
    )
    for fname in ("adapter_model.safetensors", "adapter_config.json"):
        shutil.copy(written / fname, adapter / fname)


@pytest.mark.parametrize(
    "ref, model_id, revision, note",
    [
        ("builtin:tiny-llama", "registry/tiny-llama", None, "no Hub counterpart"),
        (
            "builtin:smollm2-135m-instruct",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "gguf-q4_1-0123456789abcdef",
            "dequantized to float32 from the Q4_1 GGUF",
        ),
        ("org/model@" + "c" * 40, "org/model", "c" * 40, None),
    ],
)
def test_published_card_and_config_name_the_exact_base(
    tmp_path: Path, store, tiny_model, ref, model_id, revision, note
):
    from huggingface_hub import ModelCard
    from peft import PeftConfig

    revision = revision or tiny_model.revision
    adapter = make_adapter_dir(tmp_path / "a")
    base = {"ref": ref, "model_id": model_id, "revision": revision, "sha256": "0" * 64}
    _real_peft_files(adapter, tiny_model, base)
    publish_version("toy", adapter, store)
    dest = tmp_path / "dl"
    dest.mkdir()
    store.download("toy", "1.0.0", dest)

    card = ModelCard.load(dest / "README.md")  # huggingface_hub's own parser
    assert card.data.base_model == model_id
    assert card.data.to_dict()["base_model_relation"] == "adapter"
    assert card.data.library_name == "peft"
    if note is None:  # a Hub base: loaded at its exact commit, no builtin note
        assert f'revision="{revision}"' in card.text and "registry's `builtin" not in card.text
    else:
        assert f"registry's `{ref}`" in card.text and note in card.text
    config = PeftConfig.from_pretrained(dest)  # PEFT's own reader
    assert config.base_model_name_or_path == model_id
    assert config.revision == revision
