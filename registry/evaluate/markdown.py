"""Untrusted text made inert for GitHub Markdown, and the number formats of the report tables.

Model outputs and PR-controlled strings (spec names, prompts, suite items) reach the PR comment;
`md()` is the only way any of them enters a Markdown file: no HTML, links, images, @mentions,
emphasis or broken tables can come through it.
"""

from __future__ import annotations

import re
from typing import Any

CELL_CHARS = 160

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
# Markdown syntax that can act mid-line: emphasis, code spans, links/images ("[" starts both),
# table cells, strike-through, headings, and GitHub's $math$. Cells never start a line (they
# follow "| " or "- "), so list and heading markers at line start cannot occur.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#$])")


def md(text: Any, limit: int | None = CELL_CHARS) -> str:
    """Untrusted text -> inert Markdown for a table cell or a line.

    HTML becomes entities, Markdown syntax is backslash-escaped (no links, images, emphasis,
    code spans or table breaks), @mentions and bare URLs are defused with a zero-width space,
    newlines become a visible ⏎ so a cell stays one line, and bidi/control characters are dropped.
    """
    text = str(text)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    text = _CONTROL.sub("", text)
    # Bare URLs are autolinked by GitHub even when escaped: a zero-width space breaks them.
    text = text.replace("://", ":\u200b//").replace("www.", "www\u200b.")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = text.replace("@", "@\u200b")
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", " ⏎ ")
    return text if text.strip() else "∅"


def num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "–"
    return f"{x:.{digits}f}"


def signed(x: float) -> str:
    return f"{x:+.3f}"
