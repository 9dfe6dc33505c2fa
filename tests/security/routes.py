"""Every route of a URL conf, walked through its includes, and a concrete URL for each.

The security tests call every route this finds, so a route added later is checked without
anyone listing it. Values for the route's parameters come from `samples` (an existing object's
id, by parameter name), else from a dummy the parameter's converter or regex accepts.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern
from rest_framework.renderers import TemplateHTMLRenderer
from rest_framework.views import APIView

DUMMIES = ("1", "dummy", "a", str(uuid.UUID(int=1)))
_ROUTE_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")
_GROUP_START = re.compile(r"\(\?P<(?P<name>\w+)>")


@dataclass(frozen=True)
class Route:
    """One URLPattern with the patterns of the includes above it."""

    chain: tuple[URLPattern | URLResolver, ...]

    @property
    def pattern(self) -> URLPattern:
        last = self.chain[-1]
        assert isinstance(last, URLPattern)
        return last

    @property
    def template(self) -> str:
        """The route as written, includes joined: 'api/tasks/<task_id:task_id>/'."""
        return "".join(str(part.pattern) for part in self.chain)

    @property
    def callback(self) -> Callable[..., Any]:
        return self.pattern.callback

    @property
    def view_class(self) -> type | None:
        return getattr(self.callback, "cls", None) or getattr(self.callback, "view_class", None)

    @property
    def is_api(self) -> bool:
        """A DRF view answering JSON (not an HTML page such as the API's docs)."""
        cls = self.view_class
        if not (isinstance(cls, type) and issubclass(cls, APIView)):
            return False
        renderers = getattr(cls, "renderer_classes", [])
        return not any(issubclass(renderer, TemplateHTMLRenderer) for renderer in renderers)

    @property
    def is_admin(self) -> bool:
        return self.template.startswith("admin/")

    @property
    def model_admin(self) -> Any:
        """The ModelAdmin a route of the admin belongs to, when it is one of a model's."""
        return getattr(self.callback, "model_admin", None)

    @property
    def parameters(self) -> list[str]:
        names: list[str] = []
        for part in self.chain:
            names.extend(_parameters_of(part.pattern))
        return names

    def url(
        self, samples: Mapping[str, Sequence[object]], *, resolver: URLResolver | None = None
    ) -> str:
        """A concrete URL of this route that resolves to it (through `resolver`: the URL conf's
        unless given)."""
        url = "/" + "".join(_fill(part.pattern, samples, self.template) for part in self.chain)
        match = (resolver or get_resolver()).resolve(url)
        assert match.func is self.callback, (
            f"{url} (made for {self.template}) resolves to {match.route}: give its parameters "
            "sample values that only it matches"
        )
        return url


def routes(urlconf: str | None = None) -> list[Route]:
    """Every URLPattern of the URL conf, through every include, in resolution order."""
    return list(_walk(get_resolver(urlconf).url_patterns, ()))


def websocket_routes(
    patterns: Sequence[URLPattern | URLResolver],
) -> tuple[URLResolver, list[Route]]:
    """A resolver of Channels' URL patterns (as URLRouter matches them), and their routes."""
    return URLResolver(RegexPattern(r"^/"), list(patterns)), list(_walk(patterns, ()))


def _walk(
    patterns: Sequence[URLPattern | URLResolver], above: tuple[URLPattern | URLResolver, ...]
) -> Iterator[Route]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, (*above, entry))
        else:
            yield Route((*above, entry))


def _parameters_of(pattern: Any) -> list[str]:
    if isinstance(pattern, RoutePattern):
        return [match["name"] for match in _ROUTE_PARAMETER.finditer(str(pattern))]
    return [match["name"] for match in _GROUP_START.finditer(str(pattern))]


def _fill(pattern: Any, samples: Mapping[str, Sequence[object]], where: str) -> str:
    if isinstance(pattern, RoutePattern):
        return _fill_route(pattern, samples, where)
    if isinstance(pattern, RegexPattern):
        return _fill_regex(str(pattern), samples, where)
    raise AssertionError(f"{where}: a pattern of unknown type {type(pattern).__name__}")


def _fill_route(pattern: RoutePattern, samples: Mapping[str, Sequence[object]], where: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match["name"]
        converter = pattern.converters[name]
        chosen = _choose(name, converter.regex, samples, where)
        return str(converter.to_url(converter.to_python(chosen)))

    return _ROUTE_PARAMETER.sub(value, str(pattern))


def _fill_regex(regex: str, samples: Mapping[str, Sequence[object]], where: str) -> str:
    text = regex
    while (start := _GROUP_START.search(text)) is not None:
        end = _closing_paren(text, start.start())
        group = text[start.end() : end]
        text = (
            text[: start.start()] + _choose(start["name"], group, samples, where) + text[end + 1 :]
        )
    text = text.removeprefix("^").removesuffix("\\Z").removesuffix("$")
    assert not re.search(r"[()\[\]*+?{}|]", text), f"{where}: cannot write a URL for {regex!r}"
    return re.sub(r"\\(.)", r"\1", text)


def _closing_paren(text: str, opening: int) -> int:
    depth = 0
    index = opening
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    raise AssertionError(f"unbalanced group in {text!r}")


def _choose(name: str, regex: str, samples: Mapping[str, Sequence[object]], where: str) -> str:
    for candidate in (*samples.get(name, ()), *DUMMIES):
        text = str(candidate)
        if re.fullmatch(regex, text):
            return text
    raise AssertionError(
        f"{where}: no value for <{name}> matches {regex!r}: add one to the samples"
    )
