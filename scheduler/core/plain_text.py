"""Markup as plain text: what a page or a webhook receiver answered, in a line people can read."""

from __future__ import annotations

import html
import re

from django.utils.html import strip_tags

_SCRIPTS = re.compile(r"(?is)<(script|style)\b.*?</\1\s*>")
# Block ends are line ends: "<title>502 Bad Gateway</title><h1>..." gives its title first.
_BLOCK_ENDS = re.compile(r"(?i)<(br|/p|/h[1-6]|/title|/div|/li|/tr)\b[^>]*>")


def text_lines(markup: str) -> list[str]:
    """The non-empty lines of text in `markup`, tags stripped, entities read, spaces collapsed."""
    text = _BLOCK_ENDS.sub("\n", _SCRIPTS.sub(" ", markup or ""))
    lines = (" ".join(part.split()) for part in html.unescape(strip_tags(text)).splitlines())
    return [line for line in lines if line]


def shortened(line: str, length: int) -> str:
    """`line`, cut to `length` characters with an ellipsis when longer."""
    return line if len(line) <= length else line[: length - 1].rstrip() + "…"
