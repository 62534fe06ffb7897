"""Bounded, safe YAML loading for specs: the one way any module turns spec bytes into data.

Specs come from pull requests (forks included) and are parsed on hosted runners, so loading must
refuse hostile input in bounded time and memory, naming the file and line (InvalidInput, exit 2):

- size: at most MAX_SPEC_BYTES (a real spec is a few KB); a file is checked to be a regular file
  and read at most that far, so a FIFO, a device or a giant file never blocks or fills memory;
- encoding: UTF-8 only (a UTF-8 BOM is dropped); UTF-16/32 and invalid bytes are refused with the
  line of the first bad byte; control characters YAML forbids (NUL...) name their line;
- structure: one document; nesting at most MAX_DEPTH (checked while composing, so a 20,000-deep
  flow collection never reaches Python's recursion limit); at most MAX_NODES nodes counted with
  every alias expanded (so a "billion laughs" alias bomb is refused after a few thousand steps,
  never expanded); a recursive alias is refused;
- types: JSON-like only. Tags other than str/int/float/bool/null/seq/map (e.g. !!python/object,
  !!binary, !!set, custom !tags) are refused; merge keys (`<<`) and timestamps are not resolved
  (a `<<` key is refused, a date stays a string); keys must be strings (`yes:`/`1:` must be
  quoted) and unique at every depth; integers are at most MAX_INT_DIGITS digits.

The loader is PyYAML's SafeLoader with `compose_node` wrapped (the bounds are counted as events
arrive, before anything is built), on libyaml's parser when PyYAML has it (~5x faster: the plan
job reads every changed spec) and on the pure-Python one otherwise. Construction still uses
SafeConstructor, which shares aliased objects rather than copying them.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from registry.errors import InvalidInput, Problem

MAX_SPEC_BYTES = 256 * 1024
MAX_DEPTH = 64
MAX_NODES = 20_000  # with aliases expanded; a real spec has a few hundred
MAX_INT_DIGITS = 30

_TAG = "tag:yaml.org,2002:"
ALLOWED_TAGS = frozenset(_TAG + t for t in ("str", "int", "float", "bool", "null", "seq", "map"))
_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


_C = yaml.constructor.SafeConstructor
_TYPED = {
    _TAG + "int": _C.construct_yaml_int,
    _TAG + "float": _C.construct_yaml_float,
    _TAG + "bool": _C.construct_yaml_bool,
}


class _Refused(Exception):
    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message = message
        self.line = mark.line + 1 if mark is not None else None


class _Resolver(yaml.resolver.Resolver):
    """YAML 1.1 implicit types minus timestamps and merge keys (both surprise, merge expands)."""


_Resolver.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_TAG + "timestamp", _TAG + "merge")]
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}


class _Bounds(yaml.composer.Composer):
    """PyYAML's composer with the bounds, mixed below with libyaml's parser or the Python one."""

    def _start_bounds(self) -> None:
        self._depth = 0
        self._count = 0  # nodes so far, every alias counted as the size of what it names
        self._sizes: dict[int, int] = {}  # id(node) -> expanded size, once the node is complete

    def _add(self, n: int, mark: Any) -> None:
        self._count += n
        if self._count > MAX_NODES:
            raise _Refused(
                f"more than {MAX_NODES} YAML nodes (aliases expanded); a spec is far smaller", mark
            )

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        compose = yaml.composer.Composer.compose_node
        if self.check_event(AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None:
                size = self._sizes.get(id(target))
                if size is None:
                    raise _Refused(f"recursive alias *{event.anchor}", event.start_mark)
                self._add(size, event.start_mark)
            return compose(self, parent, index)
        event = self.peek_event()
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        before = self._count
        self._add(1, event.start_mark)
        node = compose(self, parent, index)
        self._depth -= 1
        _check_node(node)
        if isinstance(node, ScalarNode) and node.tag in _TYPED:
            self._check_scalar(node)
        self._sizes[id(node)] = self._count - before
        return node

    def _check_scalar(self, node: ScalarNode) -> None:
        """A typed scalar converts (`!!bool 1` does not), and a float is finite."""
        try:
            value = _TYPED[node.tag](self, node)  # type: ignore[operator]
        except Exception:  # PyYAML's converters fail in many ways on odd text ('' -> IndexError)
            kind = node.tag.removeprefix(_TAG)
            raise _Refused(f"not a valid {kind}: {node.value[:60]!r}", node.start_mark) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise _Refused("NaN and infinity are not allowed in a spec", node.start_mark)


class _PyLoader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    _Bounds,
    yaml.constructor.SafeConstructor,
    _Resolver,
):
    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        _Resolver.__init__(self)
        self._start_bounds()


_BoundedLoader: type = _PyLoader
if getattr(yaml, "__with_libyaml__", False):  # libyaml parses ~10x faster; composing stays here
    from yaml._yaml import CParser

    class _CLoader(_Bounds, CParser, yaml.constructor.SafeConstructor, _Resolver):  # type: ignore[misc]
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            _Resolver.__init__(self)
            self._start_bounds()

    _BoundedLoader = _CLoader


def _check_node(node: Node) -> None:
    if node.tag not in ALLOWED_TAGS:
        raise _Refused(f"YAML tag {node.tag.replace(_TAG, '!!')!r} is not allowed", node.start_mark)
    if isinstance(node, ScalarNode):
        try:  # a "\\ud800" escape: libyaml refuses it, the Python parser lets it through
            node.value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Refused(
                "a lone surrogate (\\ud800-\\udfff) is not text", node.start_mark
            ) from None
    if isinstance(node, ScalarNode) and node.tag == _TAG + "int":
        digits = sum(c.isdigit() for c in node.value)
        if digits > MAX_INT_DIGITS:
            raise _Refused(f"an integer of {digits} digits", node.start_mark)
    if isinstance(node, MappingNode):
        seen: set[str] = set()
        for key, _ in node.value:
            if not isinstance(key, ScalarNode) or key.tag != _TAG + "str":
                shown = key.value if isinstance(key, ScalarNode) else "a collection"
                raise _Refused(
                    f"keys must be strings, got {shown!r} (quote it)"[:200], key.start_mark
                )
            if key.value == "<<":
                raise _Refused("merge keys (<<) are not supported in specs", key.start_mark)
            if key.value in seen:
                raise _Refused(f"duplicate key {key.value[:80]!r}", key.start_mark)
            seen.add(key.value)


def decode(raw: bytes, file: str) -> str:
    """Spec bytes as text: UTF-8 (BOM dropped), at most MAX_SPEC_BYTES, else InvalidInput."""
    if len(raw) > MAX_SPEC_BYTES:
        raise InvalidInput(
            [Problem(file, f"{len(raw)} bytes; a spec may hold at most {MAX_SPEC_BYTES}")]
        )
    for bom, name in _BOMS.items():
        if raw.startswith(bom):
            raise InvalidInput([Problem(file, f"{name} text; a spec must be UTF-8", line=1)])
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InvalidInput([Problem(file, "not UTF-8 text", line=line)]) from None


def read_spec_bytes(path: Path, display: str | None = None) -> bytes:
    """A spec file's bytes: a regular file (not a FIFO, device or folder), bounded in size."""
    display = display or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise InvalidInput([Problem(display, "spec file not found")]) from None
    except (OSError, ValueError) as exc:
        raise InvalidInput([Problem(display, f"cannot open the spec: {_reason(exc)}")]) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidInput([Problem(display, "not a regular file")])
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(MAX_SPEC_BYTES + 1)
    finally:
        os.close(fd)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def load_yaml(text: str | bytes, file: str) -> tuple[Any, Node | None]:
    """Parse one YAML document under the bounds above; return (data, node graph).

    Raises InvalidInput naming `file` and the line for every kind of refusal and syntax error.
    """
    if isinstance(text, bytes):
        text = decode(text, file)
    else:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            line = text[: exc.start].count("\n") + 1
            raise InvalidInput([Problem(file, "not valid Unicode text", line=line)]) from None
        if size > MAX_SPEC_BYTES:
            raise InvalidInput([Problem(file, f"a spec may hold at most {MAX_SPEC_BYTES} bytes")])
    text = text.removeprefix("\ufeff")
    try:
        loader = _BoundedLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except _Refused as exc:
        raise InvalidInput([Problem(file, exc.message, line=exc.line)]) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        char = exc.character
        shown = f"U+{char:04X}" if isinstance(char, int) else repr(char)
        message = f"control character {shown} is not allowed in YAML"
        raise InvalidInput([Problem(file, message, line=line)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        message = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else None
        raise InvalidInput([Problem(file, f"YAML syntax: {message}", line=line)]) from None
    except (ValueError, OverflowError) as exc:  # a scalar the constructor cannot convert
        raise InvalidInput([Problem(file, f"YAML value: {exc}"[:300])]) from None
    return data, node


def line_index(node: Node | None, prefix: tuple = ()) -> dict[tuple, int]:
    """Map every key path in the YAML tree to its 1-based line (bounded: MAX_NODES expanded)."""
    lines: dict[tuple, int] = {}
    if node is None:
        return lines
    stack = [(node, prefix)]
    while stack:
        current, path = stack.pop()
        lines.setdefault(path, current.start_mark.line + 1)
        if isinstance(current, MappingNode):
            for key_node, value_node in current.value:
                sub = (*path, key_node.value)
                lines[sub] = key_node.start_mark.line + 1
                stack.append((value_node, sub))
        elif isinstance(current, SequenceNode):
            stack.extend((item, (*path, i)) for i, item in enumerate(current.value))
    return lines


def line_for(lines: dict[tuple, int], loc: tuple) -> int | None:
    """The line of `loc`, or of its nearest ancestor that is in the file."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def key_line(text: str | bytes | None, *keys: str) -> int | None:
    """The line of a dotted key in spec text, or None if the text does not load or lacks it."""
    if text is None:
        return None
    try:
        _, node = load_yaml(text, "<spec>")
    except InvalidInput:
        return None
    return line_index(node).get(keys)


def load_light(text: str | bytes | None) -> dict:
    """The raw mapping of spec text (bounded); {} for text that does not load or is no mapping."""
    if text is None:
        return {}
    try:
        data, _ = load_yaml(text, "<spec>")
    except InvalidInput:
        return {}
    return data if isinstance(data, dict) else {}
