"""The API's JSON parser: DRF's, with JSON nested too deeply to read answered as a 400."""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            # json raises this, not a ValueError, for '[[[[...' a few thousand deep.
            raise ParseError("JSON parse error - nested too deeply") from None
