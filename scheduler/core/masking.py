"""Secrets in task arguments, masked wherever arguments are shown to people.

A key is secret when it contains one of the configured words (SECRET_ARGUMENT_KEYS: password,
token, api_key, ...), compared in lower case with '-' read as '_' ("X-Api-Key" contains
"api_key"). The string values under a secret key are replaced by MASK, at any depth of nested
dicts and lists; numbers, booleans and None stay, so counts such as `prompt_tokens` remain
readable and an empty secret still shows as empty.

Arguments that could not be parsed (Celery cuts a long repr at 1024 characters) are masked as
text: the value after `"api_key": `, `'api_key': ` or `api_key=` is replaced up to its closing
quote, or up to the next delimiter, or, when cut short, to the end.

Task messages carry their arguments twice: as they are, for the task, and as the `argsrepr` and
`kwargsrepr` that Celery logs, sends in its events and stores with the result. config/celery.py
masks those (`mask_serialised`); what the results table holds is therefore masked too, and a
run whose arguments held a secret cannot be retried from it (`holds_mask`). Log records of
Celery's own loggers are masked by `MaskSecretsFilter` (runs in the caller have no repr).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from django.conf import settings

MASK = "********"


def _normal(key: str) -> str:
    return key.lower().replace("-", "_")


def is_secret_key(key: object, keys: Iterable[str]) -> bool:
    """Whether `key` names a secret: it contains one of `keys` (any case, '-' as '_')."""
    return _is_secret(key, _words(tuple(keys)))


# Every run's events are masked in the worker (scheduler/live/events.py), with the same few keys
# and the same dozen words each time: the words are normalised once per set of keys, and each
# key's verdict is kept (a bounded cache: payloads may carry keys of any name).
@lru_cache(maxsize=16)
def _words(keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_normal(word) for word in keys if word)


@lru_cache(maxsize=4096)
def _secret_name(key: str, words: tuple[str, ...]) -> bool:
    name = _normal(key)
    return any(word in name for word in words)


def _is_secret(key: object, words: tuple[str, ...]) -> bool:
    return isinstance(key, str) and _secret_name(key, words)


def mask(value: Any, keys: Iterable[str]) -> Any:
    """`value` with the strings under secret keys replaced by MASK; the input is not changed."""
    return _mask(value, _words(tuple(keys)), secret=False)


# Values that are never masked, by exact type: most of a payload, told apart without the
# slower isinstance checks against abstract classes below.
_PLAIN = frozenset({int, float, bool, type(None)})


def _mask(value: Any, words: tuple[str, ...], *, secret: bool) -> Any:
    if type(value) in _PLAIN:
        return value
    if type(value) is str:
        return MASK if secret and value else value
    if type(value) is dict or isinstance(value, Mapping):
        return {
            name: _mask(item, words, secret=secret or _is_secret(name, words))
            for name, item in value.items()
        }
    if isinstance(value, list | tuple):
        items = [_mask(item, words, secret=secret) for item in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, str | bytes) and secret and value:
        return MASK
    return value


@lru_cache(maxsize=16)
def _pattern(keys: tuple[str, ...]) -> re.Pattern[str] | None:
    words = [re.escape(_normal(word)).replace("_", "[-_]") for word in keys if word]
    if not words:
        return None
    name = rf"[\w.-]*(?:{'|'.join(words)})[\w.-]*"
    return re.compile(
        # The key, bare or quoted (its quotes maybe escaped, as in a JSON string of a repr),
        # starting where a word starts: one attempt per word keeps long text linear.
        rf"(?<![\w.-])(?P<key>(?:\\?[\"'])?{name}(?:\\?[\"'])?\s*[:=]\s*)"
        # A quoted value up to its closing quote (or the end, when cut short), else a bare one.
        r"(?:(?P<quote>\\?[\"'])(?P<quoted>(?:\\.|.)*?)(?:(?P=quote)|$)|(?P<bare>[^,;}&\]\)\n]+))",
        re.IGNORECASE | re.DOTALL,
    )


def mask_text(text: str, keys: Iterable[str]) -> str:
    """`text` with the value after each secret key (`key: value`, `key=value`) replaced."""
    pattern = _pattern(tuple(keys))
    if pattern is None or not text:
        return text

    def replace(match: re.Match[str]) -> str:
        if match.group("quote") is not None:
            quote = match.group("quote")
            return f"{match.group('key')}{quote}{MASK}{quote}"
        return f"{match.group('key')}{MASK}"

    return pattern.sub(replace, text)


def configured_keys() -> tuple[str, ...]:
    """SECRET_ARGUMENT_KEYS (its default is config/env.py's DEFAULT_SECRET_KEYS).

    Nothing of config is imported here: config/celery.py imports this package while `config`
    itself is still loading.
    """
    return tuple(settings.SECRET_ARGUMENT_KEYS)  # read per call: settings load after this module


def masked(value: Any) -> Any:
    """`mask` with the configured keys: for arguments about to be shown."""
    return mask(value, configured_keys())


def masked_text(text: str) -> str:
    """`mask_text` with the configured keys: for arguments that are only text."""
    return mask_text(text, configured_keys())


def mask_serialised(text: str, keys: Iterable[str]) -> str:
    """A repr of arguments with secret values masked: parsed and written again when it is JSON
    (what we send), else masked as text (a Python repr, maybe cut short)."""
    try:
        value = json.loads(text)
    except ValueError:
        return mask_text(text, keys)
    return json.dumps(mask(value, keys))


def holds_mask(value: Any) -> bool:
    """Whether MASK stands anywhere in `value`: arguments stored masked, not the real ones."""
    if isinstance(value, Mapping):
        return any(holds_mask(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(holds_mask(item) for item in value)
    return isinstance(value, str) and MASK in value


class MaskSecretsFilter(logging.Filter):
    """Masks the task arguments in the records of a logger (Celery's name them in their args,
    and again in their `data` extra, for structured handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        keys = configured_keys()
        if isinstance(record.args, Mapping):
            record.args = _masked_context(record.args, keys)
        data = getattr(record, "data", None)
        if isinstance(data, Mapping):
            record.data = _masked_context(data, keys)
        return True


def _masked_context(context: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {
        name: mask_text(value, keys) if isinstance(value, str) else mask(value, keys)
        for name, value in context.items()
    }
