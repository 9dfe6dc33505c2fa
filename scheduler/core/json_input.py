"""JSON that people type (CLI options, admin fields, webhook bodies): read, or refused with one
message that says what is wrong. Callers turn MalformedJSON into their own kind of error."""

from __future__ import annotations

import json
from typing import Any


class MalformedJSON(ValueError):
    pass


def read_json(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedJSON(
            f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise MalformedJSON(f"malformed JSON: not UTF-8 ({exc.reason})") from exc
    except ValueError as exc:  # Python refuses whole numbers of more than 4300 digits
        raise MalformedJSON("malformed JSON: a number has too many digits") from exc
    except RecursionError:  # json's answer to '[[[[...' a few thousand deep
        raise MalformedJSON("malformed JSON: nested too deeply") from None
