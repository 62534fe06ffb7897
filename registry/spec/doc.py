"""Render the spec reference (docs/spec.md) from the pydantic models, the one source of truth.

`python -m registry.spec.doc > docs/spec.md`; a test fails when the committed file is stale.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from registry.spec.schema import Spec


def _type_name(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "").replace("registry.spec.schema.", "")
    return text.replace("<class '", "").replace("'>", "").replace("NoneType", "null")


def _default(field) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        value = field.default_factory()
        return f"`{value.model_dump() if isinstance(value, BaseModel) else value}`"
    return f"`{field.default}`"


def _section(model: type[BaseModel], prefix: str, out: list[str]) -> None:
    out += [f"### `{prefix or 'top level'}`", "", (model.__doc__ or "").strip(), ""]
    out += ["| key | type | default | description |", "|---|---|---|---|"]
    nested = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        inner = [a for a in getattr(annotation, "__args__", ()) if isinstance(a, type)]
        sub = next(
            (a for a in (annotation, *inner) if isinstance(a, type) and issubclass(a, BaseModel)),
            None,
        )
        if sub is not None:
            nested.append((sub, f"{prefix}.{name}" if prefix else name))
        description = (field.description or "").replace("|", "\\|")
        out.append(f"| `{name}` | `{_type_name(annotation)}` | {_default(field)} | {description} |")
    out.append("")
    for sub, path in nested:
        if sub.__name__ == "GateRule":
            path += "[]"
        _section(sub, path, out)


def render() -> str:
    out = [
        "# Spec reference (`adapters/<name>/adapter.yaml`)",
        "",
        "Generated from `registry/spec/schema.py` by `python -m registry.spec.doc`; do not edit by hand.",
        "Unknown keys are errors at every level. `registry schema` prints the JSON Schema.",
        "",
    ]
    _section(Spec, "", out)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
