"""`registry export --format vllm|tgi`: verified copies under versioned names, the engines'
own configuration syntax, warnings for what their defaults refuse. Driven through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from servekit import publish

from registry.artifact import verify_folder
from registry.cli import cli
from registry.store import open_store
from registry.store.pull import pull


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_model):
    tmp = tmp_path_factory.mktemp("export")
    store = open_store((tmp / "store").as_uri())
    publish(store, tmp, tiny_model, "alpha", "1.0.0")
    publish(store, tmp, tiny_model, "alpha", "1.1.0")
    publish(store, tmp, tiny_model, "beta", "1.0.0", r=32)
    store.set_current("alpha", "1.1.0")
    store.set_current("beta", "1.0.0")
    return store


def export(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["export", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def commits(store) -> dict[str, str]:
    return {f"{n}@{v.version}": v.commit for n in ("alpha", "beta") for v in store.versions(n)}


def test_vllm_lora_modules_of_the_current_set(store, tmp_path):
    out = tmp_path / "lora"
    code, stdout, stderr = export("--format", "vllm", "--store", store.url, "--out", str(out))
    assert code == 0, stderr
    modules = [json.loads(line) for line in stdout.splitlines()]
    assert [m["name"] for m in modules] == ["alpha@1.1.0", "beta@1.0.0"]
    for m in modules:
        assert set(m) == {"name", "path", "base_model_name"}
        assert m["base_model_name"] == "registry/tiny-llama"
        assert Path(m["path"]) == out.resolve() / m["name"]
        verify_folder(Path(m["path"]))  # the copies are the verified bytes
    assert "beta@1.0.0 has LoRA rank 32 > vLLM's default max_lora_rank 16" in stderr
    assert "--max-lora-rank 32" in stderr
    assert "alpha@1.1.0 has LoRA rank" not in stderr
    audit = json.loads((out / "export.json").read_text())
    assert {f"{e['name']}@{e['version']}": e["commit"] for e in audit}.items() <= commits(
        store
    ).items()


def test_tgi_env_from_a_lockfile_names_commits(store, tmp_path):
    lock = tmp_path / "adapters.lock"
    pull("alpha@1.0.0", store, lock=lock)
    store.set_current("alpha", "1.0.0")
    store.set_current("alpha", "1.1.0")  # the store moved on; the lock did not
    out = tmp_path / "tgi"
    code, stdout, _ = export("--format", "tgi", "--lock", str(lock), "--store", store.url,
                             "--out", str(out))  # fmt: skip
    assert code == 0
    lines = stdout.splitlines()
    env = [ln for ln in lines if not ln.startswith("#")]
    assert len(env) == 1 and env[0].startswith("LORA_ADAPTERS=")
    # parsed as TGI parses it: comma-separated `id` or `id=path`
    pairs = [part.split("=") for part in env[0].removeprefix("LORA_ADAPTERS=").split(",")]
    assert pairs == [["alpha@1.0.0", str(out.resolve() / "alpha@1.0.0")]]
    assert f"alpha@1.0.0: {store.url}/alpha @ {commits(store)['alpha@1.0.0']}" in lines[0]


def test_merged_export_through_the_cli(store, tmp_path):
    code, stdout, stderr = export("alpha@1.0.0", "--merged", "--out", str(tmp_path / "m"),
                                  "--store", store.url)  # fmt: skip
    assert code == 0, stderr
    assert "identical on 3/3" in stdout
    assert (tmp_path / "m" / "model.safetensors").exists()


def test_bad_combinations_are_usage_errors(store, tmp_path):
    for args in (
        [],  # neither --format nor --merged
        ["--format", "vllm", "--merged"],
        ["--merged", "alpha@1.0.0"],  # no --out
        ["--merged", "alpha@1.0.0", "beta@1.0.0", "--out", str(tmp_path / "m")],
    ):
        code, _, _ = export(*args, "--store", store.url)
        assert code == 2, args
