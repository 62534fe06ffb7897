"""Fuzzing the two parsers a pull request feeds: specs (YAML) and datasets (JSONL).

Over 10,000 generated cases per run (the count is printed in the summary: `fuzz: N cases`).
The spec generator builds YAML *structure*, not only values: block and flow collections,
anchors and aliases (alias bombs included), tags (safe, unsafe, unknown), merge keys,
non-string and duplicate keys, deep nesting, odd scalars (.nan, 2024-01-01, 5,000 digits),
several documents, and odd encodings (UTF-16/32, BOMs, invalid bytes, NUL, CRLF, truncation).
Every case must end in a Spec or in InvalidInput naming the file and a line inside it; any
other exception is a bug (it would be exit 1 with a traceback). Bounds themselves are tested
with exact inputs in test_hostile.py.
"""

from __future__ import annotations

import json
import random

import pytest
from fuzzcount import count
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.errors import InvalidInput
from registry.spec.data import parse_examples
from registry.spec.loader import MAX_NODES, key_line, load_light
from registry.spec.schema import parse_spec

pytestmark = pytest.mark.reliability
FILE = "adapters/fuzz/adapter.yaml"
FAST = {"deadline": None, "suppress_health_check": list(HealthCheck)}

VALID = {
    "name": "fuzz",
    "version": "1.0.0",
    "base_model": "builtin:tiny-llama",
    "data": {"format": "chat", "train": "datasets/fuzz/train.jsonl"},
    "training": {"max_steps": 3},
    "eval": {"metrics": ["exact_match"], "gate": [{"metric": "exact_match", "min": 0.1}]},
}
KEYS = [*VALID, "method", "lora", "publish", "quantization", "description", "extra"]
SCALARS = [
    "1", "0", "-1", "1.5", "1e3", "1.0e+999", ".nan", ".NaN", ".inf", "-.inf", "~", "null",
    "yes", "no", "on", "Off", "0x1F", "0o17", "0b101", "1_000", "1:30", "2024-01-01",
    "2024-01-01T00:00:00Z", "''", '""', "'it''s'", '"\\u00e9\\t"', '"\\ud800"', '"\\0"',
    '"\\x00"', "9" * 40, "9" * 5000, "-" + "1" * 31, "=", "<<", "!", "&", "lora", "qlora",
    "chat", "builtin:tiny-llama", "datasets/fuzz/train.jsonl", "../etc/passwd.jsonl",
    "/abs.jsonl", '"a\\\\b.jsonl"', '"x\\0y.jsonl"', "exact_match", "general_drift",
]  # fmt: skip
TAGS = [
    "!!str ", "!!int ", "!!float ", "!!bool ", "!!null ", "!!binary ", "!!timestamp ",
    "!!set ", "!!omap ", "!!pairs ", "!!merge ", "!!python/object:os.system ",
    "!!python/object/apply:os.system ", "!!python/name:builtins.eval ", "!custom ", "! ",
    "!<tag:yaml.org,2002:str> ", "!<!foo> ",
]  # fmt: skip


class _Anchors:
    """Anchors defined so far in one document (aliases may name them, or a missing one)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def new(self) -> str:
        self.names.append(f"a{len(self.names)}")
        return self.names[-1]


# The generators take a random.Random seeded by hypothesis: hypothesis' own fine-grained draws
# cost ~10 ms a case here, which would make 10,000 cases several minutes. A failure prints the
# generated text and hypothesis replays the seed.


def _text(rng: random.Random, size: int = 12) -> str:
    pool = "abc xyz-_:#&*!|>'\"{}[],?%@`\t\u00e9\u2028\U0001f600"
    return "".join(rng.choice(pool) for _ in range(rng.randint(0, size)))


def flow_node(rng: random.Random, anchors: _Anchors, depth: int = 0) -> str:
    """One YAML flow node: a scalar, a flow sequence or mapping, an alias; maybe tagged/anchored."""
    kinds = ["scalar"] * 3 + ["text"] * 2 + ["alias"] + (["seq", "map"] * 2 if depth < 4 else [])
    kind = rng.choice(kinds)
    if kind == "alias":
        if anchors.names and rng.random() < 0.95:
            return "*" + rng.choice(anchors.names)
        return "*undefined" if rng.random() < 0.3 else rng.choice(SCALARS)
    prefix = rng.choice(TAGS) if rng.random() < 0.2 else ""
    if rng.random() < 0.2:
        prefix += f"&{anchors.new()} "
    if kind == "scalar":
        return prefix + rng.choice(SCALARS)
    if kind == "text":
        return prefix + json.dumps(_text(rng), ensure_ascii=rng.random() < 0.5)
    items = [flow_node(rng, anchors, depth + 1) for _ in range(rng.randint(0, 4))]
    if kind == "seq":
        return prefix + "[" + ", ".join(items) + "]"
    keys = [rng.choice([*KEYS, "r", "<<", "1", "yes", "[a]", "a", "? b"]) for _ in items]
    return prefix + "{" + ", ".join(f"{k}: {v}" for k, v in zip(keys, items, strict=True)) + "}"


def spec_text(rng: random.Random) -> str:
    """A block mapping close to a valid spec, with generated structure in place of values."""
    anchors = _Anchors()
    lines = []
    if rng.random() < 0.7:  # the valid keys, so many cases get as far as pydantic
        lines = [f"{k}: {json.dumps(v)}" for k, v in VALID.items() if rng.random() < 0.8]
    for _ in range(rng.randint(0, 4)):
        key = rng.choice([*KEYS, "<<", "1", "? [a]", "yes", "name", "data"])
        if key in VALID and rng.random() < 0.4:
            value = json.dumps(VALID[key])  # JSON is YAML flow: the valid value, maybe anchored
            value = f"&{anchors.new()} {value}" if rng.random() < 0.5 else value
        elif rng.random() < 0.2:  # a block collection, one level down
            value = "".join(
                f"\n  {rng.choice(['- ', 'r: ', 'train: ', '<<: ', 'format: '])}"
                + flow_node(rng, anchors, 2)
                for _ in range(rng.randint(1, 3))
            )
        else:
            value = flow_node(rng, anchors)
        lines.append(f"{key}: {value}")
    if rng.random() < 0.1:  # deep nesting, sometimes past the bound
        depth = rng.randint(1, 200)
        lines.append("description: " + "[" * depth + "x" + "]" * depth)
    if rng.random() < 0.05:  # block nesting by indentation
        lines.extend(" " * i + "k:" for i in range(rng.randint(1, 90)))
    if rng.random() < 0.02:  # a huge scalar
        lines.append("description: " + "x" * rng.choice([1000, 300_000]))
    return "\n".join(lines) + "\n"


def laugh_bomb(width: int, depth: int) -> str:
    """The alias bomb ("billion laughs"): each level lists the previous one `width` times."""
    rows = ['l0: &l0 ["lol"]']
    rows += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, depth + 1)]
    return "\n".join(rows) + "\n"


def _encode(rng: random.Random, text: str) -> bytes:
    """The text as a PR could commit it: odd encodings, BOMs, stray bytes, CRLF, truncation."""
    how = rng.choice(["utf-8"] * 6 + ["utf-8-sig", "utf-16", "utf-32", "latin-1"])
    data = text.encode(how, errors="surrogatepass" if how.startswith("utf") else "replace")
    for _ in range(rng.randint(0, 2)):
        op = rng.choice(["crlf", "cr", "nul", "ff", "cut", "docs", "directive", "tab"])
        at = rng.randint(0, len(data))
        if op == "crlf":
            data = data.replace(b"\n", b"\r\n")
        elif op == "cr":
            data = data.replace(b"\n", b"\r")
        elif op == "nul":
            data = data[:at] + b"\x00" + data[at:]
        elif op == "ff":
            data = data[:at] + b"\xff\xfe" + data[at:]
        elif op == "cut":
            data = data[:at]
        elif op == "docs":
            data = data + b"---\n" + data
        elif op == "directive":
            data = b"%YAML 1.1\n---\n" + data
        else:
            data = data.replace(b"  ", b"\t", 1)
    return data


def _check_spec_bytes(data: bytes) -> None:
    count("spec")
    # YAML also breaks lines at a lone CR (and NEL, LS, PS), as editors do
    n_lines = max(data.count(b"\n"), len(data.decode("utf-8", "replace").splitlines())) + 1
    try:
        parse_spec(data, FILE)
    except InvalidInput as exc:
        assert exc.problems and all(p.file == FILE for p in exc.problems)
        assert all(p.line is None or 1 <= p.line <= n_lines for p in exc.problems), (exc, data)
    # the plan's light readers take the same bytes and never raise
    assert isinstance(load_light(data), dict)
    key_line(data, "version")


@settings(max_examples=6000, **FAST)
@given(st.randoms(use_true_random=True))
def test_generated_yaml_structure_never_crashes(rng):
    text = spec_text(rng)
    _check_spec_bytes(_encode(rng, text) if rng.random() < 0.3 else text.encode())


@settings(max_examples=1000, **FAST)
@given(st.randoms(use_true_random=True))
def test_the_pure_python_parser_keeps_the_same_bounds(rng):
    """Without libyaml the loader runs on PyYAML's Python parser: same refusals, no crash."""
    from registry.spec import loader

    text = spec_text(rng)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loader, "_BoundedLoader", loader._PyLoader)
        _check_spec_bytes(_encode(rng, text) if rng.random() < 0.3 else text.encode())


@settings(max_examples=600, **FAST)
@given(st.integers(2, 12), st.integers(1, 12))
def test_alias_bombs_are_refused_when_they_expand_past_the_bound(width, depth):
    count("spec")
    text = laugh_bomb(width, depth)
    with pytest.raises(InvalidInput) as caught:  # no `name`: invalid either way
        parse_spec(text, FILE)
    bombs = [p for p in caught.value.problems if "YAML nodes" in p.message]
    sizes = [2]  # expanded nodes per row: l0 is a list and its string; l_i lists l_{i-1} w times
    for _ in range(depth):
        sizes.append(1 + width * sizes[-1])
    if 1 + sum(1 + n for n in sizes) > MAX_NODES:  # the root, then each key and its value
        assert len(caught.value.problems) == len(bombs) == 1 and 1 <= bombs[0].line <= depth + 1
    else:
        assert not bombs


@settings(max_examples=900, **FAST)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_as_spec_never_crash(data):
    _check_spec_bytes(data)


@settings(max_examples=500, **FAST)
@given(st.text(max_size=300))
def test_arbitrary_text_as_spec_never_crashes(text):
    _check_spec_bytes(text.encode("utf-8", "surrogatepass"))


# -- datasets ------------------------------------------------------------------------------------

RECORDS = {
    "chat": {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
    "completion": {"prompt": "2+2=", "completion": "4"},
    "alpaca": {"instruction": "Say", "input": "", "output": "hi"},
}


def json_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.choice(
        ["none", "bool", "int", "big", "float", "text"] + ["list", "dict"] * (depth < 3)
    )
    if kind == "list":
        return [json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == "dict":
        return {_text(rng, 6): json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return {
        "none": None,
        "bool": rng.random() < 0.5,
        "int": rng.randint(-5, 5),
        "big": rng.randint(-(2**70), 2**70),
        "float": rng.uniform(-1e9, 1e9),
        "text": _text(rng),
    }[kind]


RAW_LINES = [
    b"NaN", b"Infinity", b"-Infinity", b'{"prompt": NaN, "completion": "x"}',
    b'{"prompt": "a", "prompt": "b", "completion": "c"}', b'{"prompt": "\\ud800", "completion": "x"}',
    b'{"prompt": "a\x00b", "completion": "c"}', b"\x00\x00\x00", b"\xff\xfe\xfd", b"\xef\xbb\xbf{}",
    b'{"prompt": 1' + b"0" * 5000 + b', "completion": "c"}', b"{" * 3000, b"[" * 100_000,
    b'{"id": [1], "prompt": "p", "completion": "c"}', b'{"id": true, "prompt": "p", "completion": "c"}',
    b"\r", b"   ", b"{}", b"[]", b'"text"', b"1e999", b'{"messages": "x"}',
]  # fmt: skip


def jsonl_file(rng: random.Random, fmt: str) -> bytes:
    lines = []
    for _ in range(rng.randint(0, 8)):
        kind = rng.choice(["valid", "valid", "mutated", "mutated", "raw", "text"])
        if kind == "valid":
            lines.append(json.dumps(RECORDS[fmt], ensure_ascii=rng.random() < 0.5).encode())
        elif kind == "mutated":
            record = json.loads(json.dumps(RECORDS[fmt]))
            record[rng.choice([*record, "id", "extra"])] = json_value(rng)
            if fmt == "chat" and rng.random() < 0.5:  # inside the messages, too
                turns = record["messages"] if isinstance(record["messages"], list) else []
                msg = rng.choice(turns) if turns else None
                if isinstance(msg, dict):
                    msg[rng.choice(["role", "content", "name"])] = json_value(rng)
            lines.append(json.dumps(record).encode())
        elif kind == "raw":
            lines.append(rng.choice(RAW_LINES))
        else:
            lines.append(_text(rng, 40).encode("utf-8", "surrogatepass"))
    sep = rng.choice([b"\n", b"\n", b"\r\n", b"\r"])
    prefix = rng.choice([b"", b"", b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\x00\x00\xfe\xff"])
    return prefix + sep.join(lines) + (sep if rng.random() < 0.8 else b"")


@settings(max_examples=4000, **FAST)
@given(st.randoms(use_true_random=True))
def test_generated_datasets_never_crash(tmp_path_factory, rng):
    count("dataset")
    fmt = rng.choice(["chat", "completion", "alpaca"])
    raw = jsonl_file(rng, fmt)
    path = tmp_path_factory.getbasetemp() / "fuzz.jsonl"
    path.write_bytes(raw)
    max_line = rng.choice([4 << 20, 64])  # a small bound too, to hit it often
    examples, problems = parse_examples(path, fmt, max_line_bytes=max_line)
    n_lines = raw.count(b"\n") + 1
    for p in problems:
        assert p.file == str(path)
        assert p.line is None or 1 <= p.line <= n_lines, (p, raw[:300])
    assert len(examples) <= n_lines
    for ex in examples:  # what is kept is text a tokenizer and a report can take
        for text in (ex.answer, ex.prompt_text, ex.id):
            text.encode("utf-8")


def test_the_fuzz_reaches_its_case_count():
    """Runs last in this file: the cases above ran (a lower count means a generator broke)."""
    from fuzzcount import CASES

    if not (CASES["spec"] and CASES["dataset"]):
        pytest.skip("run on its own: the fuzz tests above were deselected")
    assert CASES["spec"] >= 8000 and CASES["dataset"] >= 3000, CASES
