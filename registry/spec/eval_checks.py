"""Checks of the spec's evaluation settings that must fail on the cheap hosted runner.

`eval.json_schema` and `eval.regex` are only used at eval time, on the GPU runner after
training; a broken one found there wastes the whole run. So `registry validate` (through the
pydantic model) proves here that:

- `eval.regex` compiles, and is bounded in length;
- `eval.json_schema` is a valid schema for the draft it names (2020-12 by default; an unknown
  `$schema` is refused rather than silently replaced), every `pattern` in it compiles, it holds
  no NaN/Infinity, and every `$ref`/`$dynamicRef` is a fragment of this same document that
  resolves (no reference leaves it: nothing may be fetched, no `$id` re-bases it).

Each function returns a reason or None; the schema turns reasons into located errors.
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import unquote

import regex

from registry.spec.answers import compile_pattern

MAX_REGEX_CHARS = 2000
_REF_KEYS = ("$ref", "$dynamicRef", "$recursiveRef")


def regex_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be the eval regex, or None."""
    if len(pattern) > MAX_REGEX_CHARS:
        return f"a regex of {len(pattern)} characters; at most {MAX_REGEX_CHARS}"
    try:
        compile_pattern(pattern)  # the engine eval runs it with (time-bounded matches)
    except (regex.error, re.error, OverflowError, RecursionError, ValueError) as exc:
        return f"does not compile: {exc}"
    return None


def _pointer(doc: Any, fragment: str) -> bool:
    """Does the JSON pointer `fragment` ('' or '/a/b') name something in `doc`?"""
    node = doc
    for raw in fragment.split("/")[1:] if fragment else []:
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def _walk(doc: Any) -> list[tuple[str, Any]]:
    """(json path, value) of every dict entry, iteratively (depth is bounded by the loader)."""
    out, stack = [], [("$", doc)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                out.append((f"{path}.{k}", (k, v)))
                stack.append((f"{path}.{k}", v))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(node))
        elif isinstance(node, float) and not math.isfinite(node):
            out.append((path, ("", node)))
    return out


def json_schema_problem(schema: dict[str, Any]) -> str | None:
    """Why `schema` cannot be the eval JSON Schema, or None."""
    import jsonschema

    anchors = set()
    for path, (key, value) in _walk(schema):
        if isinstance(value, float) and not math.isfinite(value):
            return f"{path}: NaN/Infinity is not JSON"
        if key == "$anchor" and isinstance(value, str):
            anchors.add(value)
        if key == "$id" and path != "$.$id":
            return f"{path}: a nested $id re-bases references; not supported"
    for path, (key, value) in _walk(schema):
        if key not in _REF_KEYS or not isinstance(value, str):
            continue
        if not value.startswith("#"):
            return f"{path}: {value[:100]!r} leaves the document; only '#...' references"
        fragment = value[1:]
        if fragment.startswith("/") or not fragment:
            if not _pointer(schema, fragment):
                return f"{path}: {value[:100]!r} does not resolve in the schema"
        elif fragment not in anchors:
            return f"{path}: no $anchor {fragment[:100]!r} in the schema"
    root_id = schema.get("$id")
    if root_id is not None and not isinstance(root_id, str):
        return "$id must be a string"
    cls = jsonschema.Draft202012Validator  # what metrics.py uses when $schema is absent
    if "$schema" in schema:  # an unknown one would be replaced by the latest draft, silently
        cls = jsonschema.validators.validator_for(schema, default=None)
        if cls is None:
            return f"$schema {str(schema['$schema'])[:100]!r} is not a known JSON Schema draft"
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = exc.json_path if getattr(exc, "json_path", "$") != "$" else "the schema"
        return f"not a valid JSON Schema ({where}): {exc.message[:300]}"
    except (RecursionError, re.error, OverflowError, ValueError) as exc:
        return f"not a valid JSON Schema: {exc}"[:300]
    for path, (key, value) in _walk(schema):
        if key == "pattern" and isinstance(value, str) and (reason := regex_problem(value)):
            return f"{path}: pattern {reason}"
    return None
